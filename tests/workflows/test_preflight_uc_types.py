"""The local CA and pre-flight for the IM&P types, the EC identities and multi-server certificates:
what the local CA issues passes, and each way a CA's answer can miss CUCM's rules is refused with
the fix."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from adapters.ca.local import LocalCA
from adapters.ca.port import CaRejected, Issued
from adapters.ca.profiles import IMP_TYPES, IPSEC_END_SYSTEM, profile_for
from workflows import preflight

NOW = dt.datetime.now(dt.UTC)
HOST = "imp1.example.com"
NODES = ["cucm-pub.example.com", "cucm-sub1.example.com", "imp1.example.com"]
SERVER, CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
_KU = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement")


def csr_for(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, cn: str, sans: list[str]) -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False)
        .sign(key, hashes.SHA384() if isinstance(key, ec.EllipticCurvePrivateKey) else hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA(tmp_path_factory.mktemp("ca"))


def issue(ca: LocalCA, csr: str, cert_type: str) -> Issued:
    result = ca.submit(csr, cert_type=cert_type, node=HOST)
    assert isinstance(result, Issued)
    return result


def check(
    ca: LocalCA, csr: str, cert_type: str, leaf: x509.Certificate, **kw: object
) -> preflight.ValidatedCertificate:
    root = x509.load_pem_x509_certificate(ca.root_pem.encode())
    inter = x509.load_pem_x509_certificate(ca.chain_pems[0].encode())
    # The local CA signs with the wall clock: validate at the moment of the test, not of collection.
    now = dt.datetime.now(dt.UTC)
    return preflight.validate(cert_type, csr, leaf, [inter], trusted_roots=[root], now=now, **kw)  # type: ignore[arg-type]


def hand_signed(
    ca: LocalCA,
    csr_pem: str,
    *,
    ku: set[str],
    eku: list[x509.ObjectIdentifier],
    digest: hashes.HashAlgorithm | None = None,
) -> x509.Certificate:
    """A leaf as a careless CA would sign it: the CSR's subject and SANs, the given usages and hash."""
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    inter = x509.load_pem_x509_certificate(ca.chain_pems[0].encode())
    key = serialization.load_pem_private_key((ca.folder / "intermediate.key").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    flags = {f: f in ku for f in _KU}
    return (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(inter.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(days=90))
        .add_extension(
            x509.KeyUsage(
                **flags, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        .add_extension(
            csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, digest or hashes.SHA256())
    )


# ---------------------------------------------------------------------------- IM&P profiles


@pytest.mark.parametrize("cert_type", [*IMP_TYPES, *(f"{t}-ECDSA" for t in IMP_TYPES)])
def test_imp_profiles_follow_imp125_and_the_local_ca_passes_preflight(
    ca: LocalCA, rsa_key: rsa.RSAPrivateKey, cert_type: str
) -> None:
    is_ec = cert_type.endswith("-ECDSA")
    key = ec.generate_private_key(ec.SECP256R1()) if is_ec else rsa_key
    csr = csr_for(key, HOST, [HOST])
    leaf = x509.load_pem_x509_certificate(issue(ca, csr, cert_type).leaf_pem.encode())
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    eku = list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert eku == [SERVER, CLIENT, IPSEC_END_SYSTEM]
    assert ku.digital_signature and ku.key_encipherment == ku.data_encipherment == (not is_ec)
    assert not ku.key_agreement
    assert check(ca, csr, cert_type, leaf).cert_type == cert_type


@pytest.mark.parametrize("cert_type", IMP_TYPES)
def test_imp_types_need_data_encipherment_and_client_auth_but_not_ipsec_end_system(
    ca: LocalCA, rsa_key: rsa.RSAPrivateKey, cert_type: str
) -> None:
    csr = csr_for(rsa_key, HOST, [HOST])
    full = {"digital_signature", "key_encipherment", "data_encipherment"}
    # An enterprise web-server template: no IPsec End System. Accepted.
    assert check(ca, csr, cert_type, hand_signed(ca, csr, ku=full, eku=[SERVER, CLIENT]))
    with pytest.raises(preflight.WrongKeyUsage, match="lacks key usage dataEncipherment"):
        check(ca, csr, cert_type, hand_signed(ca, csr, ku=full - {"data_encipherment"}, eku=[SERVER, CLIENT]))
    with pytest.raises(preflight.WrongExtendedKeyUsage) as info:
        check(ca, csr, cert_type, hand_signed(ca, csr, ku=full, eku=[SERVER]), client_auth_waived=True)
    # No waiver for the IM&P types: the tomcat waiver is not offered as the fix.
    assert "lacks extended key usage clientAuth" in str(info.value)
    assert "tomcat_client_auth" not in str(info.value)
    assert profile_for(cert_type) is not None and not profile_for(cert_type).waivable  # type: ignore[union-attr]


# ---------------------------------------------------------------------------- EC keys and hashes


@pytest.mark.parametrize(("curve", "digest"), [(ec.SECP256R1(), "sha256"), (ec.SECP384R1(), "sha384")])
def test_local_ca_signs_ec_leaves_with_a_hash_as_strong_as_the_key(
    ca: LocalCA, curve: ec.EllipticCurve, digest: str
) -> None:
    csr = csr_for(ec.generate_private_key(curve), "cucm-pub.example.com", ["cucm-pub.example.com"])
    leaf = x509.load_pem_x509_certificate(issue(ca, csr, "CallManager-ECDSA").leaf_pem.encode())
    assert leaf.signature_hash_algorithm is not None and leaf.signature_hash_algorithm.name == digest
    assert check(ca, csr, "CallManager-ECDSA", leaf).cert_type == "CallManager-ECDSA"


def test_local_ca_refuses_a_curve_cucm_does_not_make(ca: LocalCA) -> None:
    csr = csr_for(ec.generate_private_key(ec.SECP521R1()), "cucm-pub.example.com", ["cucm-pub.example.com"])
    with pytest.raises(CaRejected, match="P-256 and P-384 keys only"):
        ca.submit(csr, cert_type="tomcat-ECDSA", node="cucm-pub")


def test_preflight_refuses_a_p384_leaf_signed_with_sha256(ca: LocalCA) -> None:
    csr = csr_for(ec.generate_private_key(ec.SECP384R1()), "cucm-pub.example.com", ["cucm-pub.example.com"])
    leaf = hand_signed(ca, csr, ku={"digital_signature"}, eku=[SERVER, CLIENT], digest=hashes.SHA256())
    with pytest.raises(preflight.WeakSignatureHash) as info:
        check(ca, csr, "tomcat-ECDSA", leaf)
    assert "384-bit EC key but is signed with SHA256" in str(info.value)
    assert "SHA-384 or SHA-512" in str(info.value)
    assert check(ca, csr, "tomcat-ECDSA", hand_signed(ca, csr, ku={"digital_signature"}, eku=[SERVER, CLIENT],
                                                         digest=hashes.SHA512()))  # fmt: skip


def test_preflight_refuses_p521(ca: LocalCA) -> None:
    key = ec.generate_private_key(ec.SECP521R1())
    csr = csr_for(key, "cucm-pub.example.com", ["cucm-pub.example.com"])
    leaf = hand_signed(ca, csr, ku={"digital_signature"}, eku=[SERVER, CLIENT], digest=hashes.SHA512())
    with pytest.raises(preflight.KeyNotAllowed, match="secp521r1"):
        check(ca, csr, "tomcat-ECDSA", leaf)


# ---------------------------------------------------------------------------- multi-server


def test_multi_server_leaf_keeps_the_ms_name_and_every_san(ca: LocalCA, rsa_key: rsa.RSAPrivateKey) -> None:
    csr = csr_for(rsa_key, "cucm-pub-ms.example.com", NODES)
    leaf = x509.load_pem_x509_certificate(issue(ca, csr, "tomcat").leaf_pem.encode())
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "cucm-pub-ms.example.com"
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == NODES
    assert check(ca, csr, "tomcat", leaf, multi_server_nodes=NODES).cert_type == "tomcat"


def test_multi_server_leaf_missing_a_node_added_since_is_refused(
    ca: LocalCA, rsa_key: rsa.RSAPrivateKey
) -> None:
    csr = csr_for(rsa_key, "cucm-pub-ms.example.com", NODES)
    leaf = x509.load_pem_x509_certificate(issue(ca, csr, "tomcat").leaf_pem.encode())
    with pytest.raises(preflight.MultiServerNodeMissing) as info:
        check(ca, csr, "tomcat", leaf, multi_server_nodes=[*NODES, "cucm-sub2.example.com"])
    assert "does not name cucm-sub2.example.com" in str(info.value)
    assert "generate a new multi-server CSR on the publisher" in str(info.value)


def test_a_ca_that_drops_a_node_from_the_san_gets_cucms_text(ca: LocalCA, rsa_key: rsa.RSAPrivateKey) -> None:
    csr = csr_for(rsa_key, "cucm-pub-ms.example.com", NODES)
    bad = csr_for(rsa_key, "cucm-pub-ms.example.com", NODES[:2])
    leaf = x509.load_pem_x509_certificate(issue(ca, bad, "tomcat").leaf_pem.encode())
    with pytest.raises(preflight.SanMismatch) as info:
        check(ca, csr, "tomcat", leaf)
    assert preflight.SAN_MISMATCH_ERROR in str(
        info.value
    ) or "lacks names the CSR has: imp1.example.com" in str(info.value)


def test_local_ca_refuses_nothing_but_the_folder_path(tmp_path: Path) -> None:
    # A CA in a fresh folder answers the IM&P types as any other: the profile table names them all.
    assert all(profile_for(t) is not None for t in (*IMP_TYPES, "tomcat-ECDSA", "CallManager-ECDSA"))
