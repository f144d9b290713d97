"""Keys, CSRs and certificates of a simulated CUCM node (all real, made with `cryptography`).

Key generation dominates the simulator's start-up cost, so keys come from :class:`KeyPool`:
identity keys for the initial self-signed certificates are reused within one process (clusters
are independent of each other), while every CSR gets a key nobody has used before, as CUCM does.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

# The EC key sizes CUCM offers for the -ECDSA types (SG14: 256 and 384; 521 is offered by Unity
# Connection 15 only, part 2 section 5), each with the weakest hash SG14 allows for it.
EC_CURVES: dict[int, ec.EllipticCurve] = {256: ec.SECP256R1(), 384: ec.SECP384R1()}
HASHES: dict[str, hashes.SHA256 | hashes.SHA384 | hashes.SHA512] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}
_HASH_BITS = {"sha256": 256, "sha384": 384, "sha512": 512}


def is_ecdsa(cert_type: str) -> bool:
    """Names ending in ``-ECDSA`` have EC keys, the others RSA (SG125SU1-DS, IMP125)."""
    return cert_type.endswith("-ECDSA")


def rsa_twin(cert_type: str) -> str:
    return cert_type.removesuffix("-ECDSA")


def hash_strong_enough(key_bits: int, hash_name: str) -> bool:
    """SG14: the hash must be at least as strong as an EC key (256: SHA256+, 384: SHA384+)."""
    return _HASH_BITS.get(hash_name, 0) >= key_bits


def default_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    return hashes.SHA256()


def ec_key(bits: int = 256) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(EC_CURVES[bits])


# IPsec End System (RFC 4945 refers to id-kp-ipsecEndSystem).
IPSEC_END_SYSTEM = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.5")

# Key usage requested per type in CUCM's CSRs. Source: CUCM 14SU2 Security Guide, "Certificate
# Names and Descriptions" (the reference's KU/EKU table). Fields: digital_signature,
# key_encipherment, data_encipherment, key_cert_sign.
KEY_USAGE: dict[str, tuple[bool, bool, bool, bool]] = {
    "tomcat": (True, False, True, False),
    "CallManager": (True, False, True, False),
    "ipsec": (True, True, True, False),
    "CAPF": (True, False, False, True),
    "TVS": (True, True, True, False),
    "ITLRecovery": (True, False, False, True),  # signs the ITL and CTL files [I]
    # IM&P (IMP125, part 1 section 4): cup, cup-xmpp and cup-xmpp-s2s DS, KE, DE.
    "cup": (True, True, True, False),
    "cup-xmpp": (True, True, True, False),
    "cup-xmpp-s2s": (True, True, True, False),
}
EXTENDED_KEY_USAGE: dict[str, tuple[x509.ObjectIdentifier, ...]] = {
    "tomcat": (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
    "CallManager": (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
    "ipsec": (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH, IPSEC_END_SYSTEM),
    "CAPF": (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
    "TVS": (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
    "ITLRecovery": (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
    # IMP125: ServerAuth, ClientAuth and IPsec End System for all three.
    "cup": (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH, IPSEC_END_SYSTEM),
    "cup-xmpp": (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH, IPSEC_END_SYSTEM),
    "cup-xmpp-s2s": (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH, IPSEC_END_SYSTEM),
}


class KeyPool:
    """Hands out RSA-2048 keys; pre-generates fresh ones on a background thread."""

    def __init__(self, ready: int = 4) -> None:
        self._lock = threading.Lock()
        self._fresh: list[PrivateKey] = []
        self._shared: list[PrivateKey] = []
        self._ready = ready
        self._filling = False

    @staticmethod
    def generate() -> PrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def shared(self, index: int) -> PrivateKey:
        """The index-th reusable key (the same object for every caller in this process)."""
        with self._lock:
            while len(self._shared) <= index:
                self._shared.append(self.generate())
            return self._shared[index]

    def fresh(self) -> PrivateKey:
        """A key never handed out before."""
        with self._lock:
            key = self._fresh.pop() if self._fresh else None
            start = not self._filling
            self._filling = True
        if start:
            threading.Thread(target=self._fill, name="sim-keypool", daemon=True).start()
        return key if key is not None else self.generate()

    def fresh_sized(self, bits: int) -> PrivateKey:
        """A new RSA key of ``bits`` (the pool only holds 2048-bit ones)."""
        if bits == 2048:
            return self.fresh()
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)

    def _fill(self) -> None:
        try:
            while True:
                with self._lock:
                    if len(self._fresh) >= self._ready:
                        return
                key = self.generate()
                with self._lock:
                    self._fresh.append(key)
        finally:
            with self._lock:
                self._filling = False


POOL = KeyPool()


@dataclass(frozen=True)
class Subject:
    """The distinguished name fields CUCM puts in its certificates (`set web-security`)."""

    organization: str = "Example Org"
    unit: str = "Voice"
    locality: str = "Paris"
    state: str = "IDF"
    country: str = "FR"

    def name(self, common_name: str, include_ou: bool = True) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if include_ou:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, self.unit))
        attrs += [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.organization),
            x509.NameAttribute(NameOID.LOCALITY_NAME, self.locality),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, self.state),
            x509.NameAttribute(NameOID.COUNTRY_NAME, self.country),
        ]
        return x509.Name(attrs)


def _key_usage(cert_type: str, ca: bool = False) -> x509.KeyUsage:
    # An -ECDSA type shares its RSA twin's row of SG14's table [C]; the bits are copied as they are,
    # although KeyEncipherment and DataEncipherment mean nothing for an EC key [I].
    ds, ke, de, kcs = KEY_USAGE.get(rsa_twin(cert_type), (True, True, True, False))
    return x509.KeyUsage(
        digital_signature=ds,
        content_commitment=False,
        key_encipherment=ke,
        data_encipherment=de,
        key_agreement=False,
        key_cert_sign=kcs or ca,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def self_signed(
    key: PrivateKey,
    common_name: str,
    cert_type: str,
    subject: Subject,
    not_before: dt.datetime,
    not_after: dt.datetime,
    san: str | None = None,
    alt_names: Sequence[str] = (),
) -> x509.Certificate:
    """A CUCM-style self-signed identity: CA:TRUE (as CUCM 14 does), SAN = the node's FQDN (``san``;
    by default the common name), then ``alt_names`` (what an earlier renewal or `set web-security`'s
    alternatehostname added)."""
    sans = list(dict.fromkeys([san or common_name, *alt_names]))
    name = subject.name(common_name)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(cert_type, ca=True), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(list(EXTENDED_KEY_USAGE.get(rsa_twin(cert_type), ()))), critical=False
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    )
    return builder.sign(key, default_hash(key))


def make_csr(
    key: PrivateKey,
    common_name: str,
    cert_type: str,
    subject: Subject,
    alt_names: Sequence[str] = (),
    include_ou: bool = True,
    hash_name: str | None = None,
    sans_only: bool = False,
) -> x509.CertificateSigningRequest:
    """A CSR as CUCM makes it: CN and SAN = the node FQDN (plus requested names), KU/EKU per type.
    ``sans_only``: the SAN list is ``alt_names`` alone (a multi-server CSR, whose ``-ms`` CN names
    no host)."""
    sans: list[str] = (
        list(alt_names) if sans_only else [common_name] + [n for n in alt_names if n != common_name]
    )
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject.name(common_name, include_ou))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dict.fromkeys(sans)]), critical=False
        )
        .add_extension(_key_usage(cert_type), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(list(EXTENDED_KEY_USAGE.get(rsa_twin(cert_type), ()))), critical=False
        )
    )
    return builder.sign(key, HASHES[hash_name] if hash_name else default_hash(key))


class CertificateFormatError(ValueError):
    """Neither PEM nor DER."""


def parse_certificates(text: str | bytes) -> list[x509.Certificate]:
    """PEM (one or more blocks), raw DER, or base64 DER; anything else raises CertificateFormatError."""
    data = text.encode() if isinstance(text, str) else text
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            certs = x509.load_pem_x509_certificates(data)
            if certs:
                return certs
            raise CertificateFormatError("no certificate")
        try:
            return [x509.load_der_x509_certificate(data)]
        except ValueError:
            compact = b"".join(data.split())
            return [x509.load_der_x509_certificate(base64.b64decode(compact, validate=True))]
    except (ValueError, binascii.Error) as exc:
        raise CertificateFormatError(str(exc)) from exc


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def csr_pem(csr: x509.CertificateSigningRequest) -> str:
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def public_der(cert_or_csr: x509.Certificate | x509.CertificateSigningRequest) -> bytes:
    return cert_or_csr.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def common_name(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def dns_sans(obj: x509.Certificate | x509.CertificateSigningRequest) -> list[str]:
    try:
        ext = obj.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [str(v) for v in ext.value.get_values_for_type(x509.DNSName)]


def all_sans(obj: x509.Certificate | x509.CertificateSigningRequest) -> set[str]:
    """Every SAN entry, typed, so that an IP SAN added by a CA counts as an extra SAN."""
    try:
        ext = obj.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return set()
    return {f"{type(v).__name__}:{v.value}" for v in ext.value}


def signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, Exception):  # InvalidSignature is not a ValueError
        return False
    return True


def key_bits(cert: x509.Certificate) -> int:
    """RSA modulus bits; 0 for other keys (CUCM's 4096-bit limit is on RSA keys)."""
    key = cert.public_key()
    return key.key_size if isinstance(key, rsa.RSAPublicKey) else 0


def key_description(cert: x509.Certificate) -> str:
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC ({key.curve.key_size} bits)"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA ({key.key_size} bits)"
    return type(key).__name__


def signature_description(cert: x509.Certificate) -> str:
    """As Java prints it in ``show cert own`` (e.g. ``SHA384withECDSA (1.2.840.10045.4.3.3)``)."""
    algo = cert.signature_hash_algorithm
    digest = algo.name.upper() if algo is not None else "NONE"
    kind = "ECDSA" if "ecdsa" in cert.signature_algorithm_oid._name.lower() else "RSA"
    return f"{digest}with{kind} ({cert.signature_algorithm_oid.dotted_string})"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
