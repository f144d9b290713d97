"""Regenerate the pre-flight corpus: certificates CUCM would refuse (and some it accepts).

    python tests/data/badcerts/generate.py        # rewrites every file here and cases.json

Uses ``cryptography`` directly, not the project's own CA, so the corpus is independent of the code
it tests. Dates are fixed and the manifest's ``now`` sits inside them, so the cases never age.
Keys are new on every run (the 8192-bit one takes a while); no CA private key is kept.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

HERE = Path(__file__).resolve().parent
NOW = datetime(2026, 6, 1, tzinfo=UTC)
START = datetime(2025, 1, 1, tzinfo=UTC)
END = datetime(2028, 1, 1, tzinfo=UTC)
IPSEC_ES = ObjectIdentifier("1.3.6.1.5.5.7.3.5")
SERVER_CLIENT = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
DS_KE_DE = {"digital_signature", "key_encipherment", "data_encipherment"}
PUB = "cucm-pub.example.com"
SUB1 = "cucm-sub1.example.com"

Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def name(cn: str, org: str = "Example Corp") -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


def key_usage(names: set[str]) -> x509.KeyUsage:
    fields = [
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
    ]
    return x509.KeyUsage(**{f: f in names for f in fields}, encipher_only=False, decipher_only=False)


def cert(
    subject: x509.Name,
    key: Key,
    issuer: tuple[x509.Certificate, Key] | None,
    *,
    sans: Sequence[x509.GeneralName] | None = None,
    ku: set[str] | None = None,
    eku: Sequence[ObjectIdentifier] | None = None,
    ca: bool | None = False,
    path_length: int | None = None,
    start: datetime = START,
    end: datetime = END,
    digest: hashes.HashAlgorithm | None = None,
) -> x509.Certificate:
    issuer_name, signer = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
        )
    )
    if ca is not None:
        b = b.add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True
        )
    if ku is not None:
        b = b.add_extension(key_usage(ku), critical=True)
    if eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if sans is not None:
        b = b.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return b.sign(signer, digest or hashes.SHA256())


def ca_cert(cn: str, key: Key, issuer: tuple[x509.Certificate, Key] | None, **kw: object) -> x509.Certificate:
    return cert(
        name(cn),
        key,
        issuer,
        ku={"key_cert_sign", "crl_sign"},
        ca=True,
        start=kw.pop("start", datetime(2024, 1, 1, tzinfo=UTC)),  # type: ignore[arg-type]
        end=kw.pop("end", datetime(2034, 1, 1, tzinfo=UTC)),
        **kw,
    )  # type: ignore[arg-type]


def dns(*names: str) -> list[x509.GeneralName]:
    return [x509.DNSName(n) for n in names]


def csr(key: Key, cn: str, sans: Sequence[x509.GeneralName]) -> x509.CertificateSigningRequest:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(name(cn, "Example Voice"))
        .add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        .sign(key, hashes.SHA256())
    )


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


def fp(c: x509.Certificate) -> str:
    return hashlib.sha256(c.public_bytes(Encoding.DER)).hexdigest()


def main() -> None:
    for sub in ("ca", "csr", "certs"):
        (HERE / sub).mkdir(exist_ok=True)
    files: dict[str, bytes] = {}
    cases: list[dict[str, object]] = []

    def put(path: str, data: bytes) -> str:
        files[path] = data
        return path

    def case(
        case_name: str,
        file_list: list[str],
        expect: str,
        message: str,
        *,
        csr_file: str = "csr/pub-tomcat.csr",
        cert_type: str = "tomcat",
        trusted: Sequence[str] = (),
        leaf: x509.Certificate | None = None,
        trust_to_upload: int | None = None,
        multi_server_nodes: Sequence[str] = (),
        keep_names: Sequence[str] = (),
    ) -> None:
        entry: dict[str, object] = {
            "name": case_name,
            "files": file_list,
            "csr": csr_file,
            "cert_type": cert_type,
            "trusted": list(trusted),
            "expect": expect,
            "message": message,
        }
        if leaf is not None:
            entry["leaf_sha256"] = fp(leaf)
        if trust_to_upload is not None:
            entry["trust_to_upload"] = trust_to_upload
        if multi_server_nodes:
            entry["multi_server_nodes"] = list(multi_server_nodes)
        if keep_names:
            entry["keep_names"] = list(keep_names)
        cases.append(entry)

    # ---------------------------------------------------------------- CAs
    root_key, int_key = rsa_key(), rsa_key()
    root = ca_cert("Example Root CA", root_key, None)
    inter = ca_cert("Example Issuing CA", int_key, (root, root_key), path_length=1)
    issuer = (inter, int_key)
    put("ca/root.pem", pem(root))
    put("ca/intermediate.pem", pem(inter))
    other_root_key = rsa_key()
    other_root = ca_cert("Other Root CA", other_root_key, None)
    put("ca/other-root.pem", pem(other_root))

    # ---------------------------------------------------------------- CSRs
    pub_sans = dns(PUB, "cucm-pub")
    keys = {t: rsa_key() for t in ("tomcat", "ipsec", "CAPF")}
    for t, k in keys.items():
        put(f"csr/pub-{t}.csr", csr(k, PUB, pub_sans).public_bytes(Encoding.PEM))
    ec_key = ec.generate_private_key(ec.SECP256R1())
    put("csr/pub-tomcat-ECDSA.csr", csr(ec_key, PUB, pub_sans).public_bytes(Encoding.PEM))
    ec384_key = ec.generate_private_key(ec.SECP384R1())
    put("csr/pub-CallManager-ECDSA-384.csr", csr(ec384_key, PUB, pub_sans).public_bytes(Encoding.PEM))
    ms_nodes = [PUB, "cucm-sub1.example.com", "imp1.example.com"]
    ms_cn = "cucm-pub-ms.example.com"
    put("csr/pub-tomcat-ms.csr", csr(keys["tomcat"], ms_cn, dns(*ms_nodes)).public_bytes(Encoding.PEM))
    put(
        "csr/garbage.csr",
        b"-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgQ1NS\n-----END CERTIFICATE REQUEST-----\n",
    )
    tkey = keys["tomcat"]
    sub1_key = rsa_key()

    def leaf(
        key: Key = tkey,
        *,
        cn: str = PUB,
        sans: Sequence[x509.GeneralName] | None = pub_sans,
        signer: tuple[x509.Certificate, Key] = issuer,
        **kw: object,
    ) -> x509.Certificate:
        kw.setdefault("ku", DS_KE_DE)
        kw.setdefault("eku", SERVER_CLIENT)
        return cert(name(cn, "Example Voice"), key, signer, sans=sans, **kw)  # type: ignore[arg-type]

    good = leaf()

    # ---------------------------------------------------------------- valid inputs
    case(
        "full chain PEM",
        [put("certs/ok-full-chain.pem", pem(good, inter, root))],
        "ok",
        "",
        leaf=good,
        trust_to_upload=2,
    )
    case(
        "DER leaf plus PEM chain",
        [
            put("certs/ok-leaf.der", good.public_bytes(Encoding.DER)),
            put("certs/ok-chain.pem", pem(inter, root)),
        ],
        "ok",
        "",
        leaf=good,
        trust_to_upload=2,
    )
    p7 = pkcs7.serialize_certificates([good, inter, root], Encoding.PEM)
    case("PKCS#7 PEM bundle", [put("certs/ok-bundle.p7b", p7)], "ok", "", leaf=good, trust_to_upload=2)
    p7der = pkcs7.serialize_certificates([root, good, inter], Encoding.DER)
    case(
        "PKCS#7 DER bundle, out of order",
        [put("certs/ok-bundle.p7c", p7der)],
        "ok",
        "",
        leaf=good,
        trust_to_upload=2,
    )
    case(
        "chain out of order",
        [put("certs/ok-out-of-order.pem", pem(root, good, inter))],
        "ok",
        "",
        leaf=good,
        trust_to_upload=2,
    )
    case(
        "leaf only, chain already trusted",
        [put("certs/ok-leaf.pem", pem(good))],
        "ok",
        "",
        trusted=["ca/root.pem", "ca/intermediate.pem"],
        leaf=good,
        trust_to_upload=0,
    )
    case(
        "leaf and intermediate, root trusted",
        [put("certs/ok-leaf-int.pem", pem(good, inter))],
        "ok",
        "",
        trusted=["ca/root.pem"],
        leaf=good,
        trust_to_upload=1,
    )
    case(
        "duplicates in the bundle",
        [put("certs/ok-duplicates.pem", pem(good, inter, inter, root, good))],
        "ok",
        "",
        leaf=good,
        trust_to_upload=2,
    )
    text = b"Certificate:\n    Data:\n        Version: 3 (0x2)\n        (openssl x509 -text output)\n"
    crlf = (text + pem(good) + b"some note between blocks\n" + pem(inter, root)).replace(b"\n", b"\r\n")
    case(
        "text around the blocks, CRLF",
        [put("certs/ok-with-text.pem", crlf)],
        "ok",
        "",
        leaf=good,
        trust_to_upload=2,
    )
    ipsec = leaf(keys["ipsec"], eku=[*SERVER_CLIENT, IPSEC_ES])
    case(
        "ipsec with IPsec End System",
        [put("certs/ok-ipsec.pem", pem(ipsec, inter, root))],
        "ok",
        "",
        csr_file="csr/pub-ipsec.csr",
        cert_type="ipsec",
        leaf=ipsec,
    )
    capf = leaf(keys["CAPF"], ku={"digital_signature", "key_cert_sign"}, ca=True, path_length=0)
    case(
        "CAPF as a CA",
        [put("certs/ok-capf.pem", pem(capf, inter, root))],
        "ok",
        "",
        csr_file="csr/pub-CAPF.csr",
        cert_type="CAPF",
        leaf=capf,
    )
    ecdsa = leaf(ec_key, ku={"digital_signature"})
    case(
        "tomcat-ECDSA on P-256",
        [put("certs/ok-ecdsa.pem", pem(ecdsa, inter, root))],
        "ok",
        "",
        csr_file="csr/pub-tomcat-ECDSA.csr",
        cert_type="tomcat-ECDSA",
        leaf=ecdsa,
    )

    ec384 = leaf(ec384_key, ku={"digital_signature"}, digest=hashes.SHA384())
    case(
        "CallManager-ECDSA on P-384 signed with SHA-384",
        [put("certs/ok-ecdsa-384.pem", pem(ec384, inter, root))],
        "ok",
        "",
        csr_file="csr/pub-CallManager-ECDSA-384.csr",
        cert_type="CallManager-ECDSA",
        leaf=ec384,
    )
    weak = leaf(ec384_key, ku={"digital_signature"})
    case(
        "P-384 key signed with SHA-256 (SG14: the hash must be as strong as the key)",
        [put("certs/ecdsa-384-sha256.pem", pem(weak, inter, root))],
        "WeakSignatureHash",
        "384-bit EC key but is signed with SHA256",
        csr_file="csr/pub-CallManager-ECDSA-384.csr",
        cert_type="CallManager-ECDSA",
    )
    ms = leaf(cn=ms_cn, sans=dns(*ms_nodes))
    case(
        "multi-server tomcat naming every node",
        [put("certs/ok-multi-server.pem", pem(ms, inter, root))],
        "ok",
        "",
        csr_file="csr/pub-tomcat-ms.csr",
        leaf=ms,
        multi_server_nodes=ms_nodes,
    )
    case(
        "multi-server tomcat, a node added since the CSR",
        ["certs/ok-multi-server.pem"],
        "MultiServerNodeMissing",
        "does not name cucm-sub2.example.com",
        csr_file="csr/pub-tomcat-ms.csr",
        multi_server_nodes=[*ms_nodes, "cucm-sub2.example.com"],
    )
    case(
        "a name the current certificate carries, lost",
        ["certs/ok-full-chain.pem"],
        "NameLost",
        "lacks jabber.example.com",
        keep_names=["cucm-pub.example.com", "jabber.example.com"],
    )

    # ---------------------------------------------------------------- relation to the CSR
    case(
        "key of another CSR",
        [put("certs/other-csr-key.pem", pem(leaf(rsa_key()), inter, root))],
        "PublicKeyMismatch",
        "CSR Public Key and Certificate Public Key Do Not Match",
    )
    case(
        "an extra SAN",
        [put("certs/extra-san.pem", pem(leaf(sans=dns(PUB, "cucm-pub", "extra.example.com")), inter, root))],
        "SanMismatch",
        "CSR SAN and Certificate SAN Does Not Match",
    )
    case(
        "a missing SAN",
        [put("certs/missing-san.pem", pem(leaf(sans=dns(PUB)), inter, root))],
        "SanMismatch",
        "lacks names the CSR has: cucm-pub",
    )
    ip_sans = [*pub_sans, x509.IPAddress(__import__("ipaddress").ip_address("10.0.0.10"))]
    case(
        "the CA added an IP SAN",
        [put("certs/ip-san-added.pem", pem(leaf(sans=ip_sans), inter, root))],
        "SanMismatch",
        "10.0.0.10",
    )
    case(
        "certificate of another node",
        [put("certs/other-node.pem", pem(leaf(sub1_key, cn=SUB1, sans=dns(SUB1, "cucm-sub1")), inter, root))],
        "CertificateOfAnotherNode",
        "cucm-sub1.example.com",
    )
    self_signed = cert(name(PUB, "Example Voice"), tkey, None, sans=pub_sans, ku=DS_KE_DE, eku=SERVER_CLIENT)
    case(
        "self-signed leaf", [put("certs/self-signed.pem", pem(self_signed))], "SelfSignedLeaf", "self-signed"
    )
    case(
        "wildcard",
        [put("certs/wildcard.pem", pem(leaf(cn="*.example.com", sans=dns("*.example.com")), inter, root))],
        "WildcardCertificate",
        "*.example.com",
    )

    # ---------------------------------------------------------------- dates and usages
    case(
        "expired",
        [
            put(
                "certs/expired.pem",
                pem(
                    leaf(start=datetime(2024, 1, 1, tzinfo=UTC), end=datetime(2025, 1, 1, tzinfo=UTC)),
                    inter,
                    root,
                ),
            )
        ],
        "CertificateExpired",
        "expired on 2025-01-01",
    )
    case(
        "not yet valid",
        [put("certs/not-yet-valid.pem", pem(leaf(start=datetime(2027, 1, 1, tzinfo=UTC)), inter, root))],
        "CertificateNotYetValid",
        "not valid before 2027-01-01",
    )
    case(
        "wrong key usage",
        [put("certs/wrong-ku.pem", pem(leaf(ku={"digital_signature"}), inter, root))],
        "WrongKeyUsage",
        "lacks key usage keyEncipherment (",
    )
    case(
        "no key usage",
        [put("certs/no-ku.pem", pem(leaf(ku=None), inter, root))],
        "WrongKeyUsage",
        "it has (none)",
    )
    case(
        "wrong EKU",
        [put("certs/wrong-eku.pem", pem(leaf(eku=[ExtendedKeyUsageOID.SERVER_AUTH]), inter, root))],
        "WrongExtendedKeyUsage",
        "lacks extended key usage clientAuth",
    )
    case(
        "ipsec without IPsec End System",
        [put("certs/ipsec-no-ipsec-eku.pem", pem(leaf(keys["ipsec"]), inter, root))],
        "WrongExtendedKeyUsage",
        "ipsecEndSystem",
        csr_file="csr/pub-ipsec.csr",
        cert_type="ipsec",
    )
    case(
        "CAPF without keyCertSign",
        [put("certs/capf-no-certsign.pem", pem(leaf(keys["CAPF"]), inter, root))],
        "WrongKeyUsage",
        "keyCertSign",
        csr_file="csr/pub-CAPF.csr",
        cert_type="CAPF",
    )
    case(
        "CAPF not a CA",
        [
            put(
                "certs/capf-not-ca.pem",
                pem(leaf(keys["CAPF"], ku={"digital_signature", "key_cert_sign"}), inter, root),
            )
        ],
        "WrongBasicConstraints",
        "CA:TRUE",
        csr_file="csr/pub-CAPF.csr",
        cert_type="CAPF",
    )
    case(
        "tomcat marked as a CA",
        [put("certs/tomcat-ca-true.pem", pem(leaf(ca=True), inter, root))],
        "WrongBasicConstraints",
        "end-entity",
    )
    print("generating an 8192-bit RSA key (slow)...", flush=True)
    case(
        "8192-bit RSA",
        [put("certs/rsa-8192.pem", pem(leaf(rsa_key(8192)), inter, root))],
        "KeyNotAllowed",
        "RSA key of 8192 bits",
    )
    case(
        "1024-bit RSA",
        [put("certs/rsa-1024.pem", pem(leaf(rsa_key(1024)), inter, root))],
        "KeyNotAllowed",
        "RSA key of 1024 bits",
    )

    # ---------------------------------------------------------------- chain
    case(
        "intermediate missing",
        [put("certs/missing-intermediate.pem", pem(good, root))],
        "MissingIntermediate",
        "Example Issuing CA",
    )
    case(
        "leaf alone, nothing trusted",
        [put("certs/leaf-only-untrusted.pem", pem(good))],
        "MissingIntermediate",
        "CA Certificate is Not Available in the Trust-Store",
    )
    rogue_key = rsa_key()
    rogue = ca_cert("Example Issuing CA", rogue_key, (root, root_key), path_length=1)
    forged = cert(
        name(PUB, "Example Voice"), tkey, (rogue, rogue_key), sans=pub_sans, ku=DS_KE_DE, eku=SERVER_CLIENT
    )
    # The forged leaf's key identifier points at the rogue key: drop it so only the signature can tell.
    forged = _without_aki(forged, (rogue, rogue_key))
    case(
        "signed by a different CA with the same name",
        [put("certs/bad-signature.pem", pem(forged, inter, root))],
        "ChainSignatureInvalid",
        "did not sign it",
    )
    old_int_key = rsa_key()
    old_int = ca_cert(
        "Example Old Issuing CA", old_int_key, (root, root_key), end=datetime(2026, 1, 1, tzinfo=UTC)
    )
    case(
        "expired intermediate",
        [
            put(
                "certs/expired-intermediate.pem",
                pem(
                    leaf(signer=(old_int, old_int_key), end=datetime(2025, 12, 31, tzinfo=UTC)), old_int, root
                ),
            )
        ],
        "CertificateExpired",
        "expired on 2025-12-31",
    )
    young = leaf(
        signer=(old_int, old_int_key),
        start=datetime(2025, 6, 1, tzinfo=UTC),
        end=datetime(2027, 1, 1, tzinfo=UTC),
    )
    case(
        "leaf outlives its expired intermediate",
        [put("certs/intermediate-expired.pem", pem(young, old_int, root))],
        "ChainCertificateExpired",
        "Example Old Issuing CA",
    )
    case(
        "an unrelated root in the bundle",
        [put("certs/unrelated-extra.pem", pem(good, inter, root, other_root))],
        "UnrelatedCertificate",
        "Other Root CA",
    )
    two = leaf(sub1_key, cn=SUB1, sans=dns(SUB1))
    case(
        "two nodes' certificates in one file",
        [put("certs/two-leaves.pem", pem(good, inter, root, two))],
        "UnrelatedCertificate",
        "cucm-sub1.example.com",
    )
    fake_ca_key = rsa_key()
    fake_ca = cert(
        name("Example Not A CA"), fake_ca_key, (root, root_key), ku={"digital_signature"}, ca=False
    )
    case(
        "issued by an end-entity certificate",
        [put("certs/issuer-not-ca.pem", pem(leaf(signer=(fake_ca, fake_ca_key)), fake_ca, root))],
        "NotACertificateAuthority",
        "not a CA certificate",
    )

    stale_key = rsa_key()
    stale = ca_cert("Example Issuing CA", stale_key, (root, root_key), start=datetime(2024, 6, 1, tzinfo=UTC))
    put("ca/intermediate-same-name.pem", pem(stale))
    case(
        "another CA certificate of the same name is trusted",
        ["certs/ok-full-chain.pem"],
        "TrustNameConflict",
        "already holds a different certificate named 'Example Issuing CA'",
        trusted=["ca/root.pem", "ca/intermediate-same-name.pem"],
    )
    case(
        "an impostor intermediate of the issuer's name",
        [put("certs/impostor-intermediate.pem", pem(good, stale, root))],
        "IssuerDoesNotVerify",
        "the files hold a CA certificate of that name",
    )

    # ---------------------------------------------------------------- not certificates
    rng = random.Random(4)
    case(
        "garbage bytes",
        [put("certs/garbage.bin", bytes(rng.randrange(256) for _ in range(700)))],
        "UnreadableCertificate",
        "neither PEM, DER nor PKCS#7",
    )
    full = pem(good)
    case(
        "truncated PEM",
        [put("certs/truncated.pem", full[: len(full) // 2])],
        "TruncatedCertificate",
        "no END line",
    )
    body = bytearray(full)
    body[100:104] = b"!!!!"
    case(
        "damaged base64",
        [put("certs/damaged-base64.pem", bytes(body))],
        "UnreadableCertificate",
        "not valid base64",
    )
    der = good.public_bytes(Encoding.DER)
    case(
        "truncated DER",
        [put("certs/truncated.der", der[: len(der) - 40])],
        "UnreadableCertificate",
        "neither PEM, DER nor PKCS#7",
    )
    case("empty file", [put("certs/empty.pem", b"")], "EmptyCertificateFile", "is empty")
    case("only whitespace", [put("certs/blank.pem", b"\n  \r\n\t\n")], "EmptyCertificateFile", "is empty")
    throwaway = rsa_key()
    case(
        "a private key instead of a certificate",
        [
            put(
                "certs/private-key.pem",
                throwaway.private_bytes(
                    Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                ),
            )
        ],
        "PrivateKeyInsteadOfCertificate",
        "holds a private key",
    )
    case(
        "a DER private key",
        [
            put(
                "certs/private-key.der",
                throwaway.private_bytes(
                    Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
                ),
            )
        ],
        "PrivateKeyInsteadOfCertificate",
        "holds a private key",
    )
    case(
        "the CSR instead of the certificate",
        ["csr/pub-tomcat.csr"],
        "CsrInsteadOfCertificate",
        "certificate signing request",
    )
    case(
        "a PEM block of another kind",
        [
            put(
                "certs/public-key.pem",
                throwaway.public_key().public_bytes(
                    Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                ),
            )
        ],
        "UnreadableCertificate",
        "'PUBLIC KEY'",
    )

    # ---------------------------------------------------------------- wrong context
    case(
        "unknown certificate type",
        ["certs/ok-full-chain.pem"],
        "UnknownCertType",
        "CallManager",
        cert_type="tomcat-RSA-9000",
    )
    case(
        "unreadable CSR on record",
        ["certs/ok-full-chain.pem"],
        "InvalidCsr",
        "CSR is unreadable",
        csr_file="csr/garbage.csr",
    )

    case(
        "only the chain, no node certificate",
        ["certs/ok-chain.pem"],
        "NodeCertificateMissing",
        "'Example Issuing CA' is a CA",
    )
    case(
        "only the root",
        ["ca/root.pem"],
        "NodeCertificateMissing",
        "the node's own certificate is not among them",
    )

    for path, data in files.items():
        (HERE / path).write_bytes(data)
    manifest = {"now": NOW.isoformat(), "cases": cases}
    (HERE / "cases.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{len(cases)} cases, {len(files)} files")


def _without_aki(c: x509.Certificate, signer: tuple[x509.Certificate, Key]) -> x509.Certificate:
    b = (
        x509.CertificateBuilder()
        .subject_name(c.subject)
        .issuer_name(c.issuer)
        .public_key(c.public_key())  # type: ignore[arg-type]
        .serial_number(c.serial_number)
        .not_valid_before(c.not_valid_before_utc)
        .not_valid_after(c.not_valid_after_utc)
    )
    for ext in c.extensions:
        if not isinstance(ext.value, x509.AuthorityKeyIdentifier):
            b = b.add_extension(ext.value, ext.critical)
    return b.sign(signer[1], hashes.SHA256())


if __name__ == "__main__":
    main()
