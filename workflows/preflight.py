"""Pre-flight: check a signed certificate and its chain before anything is uploaded to CUCM.

Every CUCM upload error is caught here first, with CUCM's own wording and the fix. Pure
``cryptography``: no I/O beyond the bytes given; the clock is a parameter.

Entry points::

    parse_bundle(data, source=...)        -> [Certificate]         PEM (several blocks), DER, PKCS#7
    order_chain(certs)                    -> leaf, [intermediates], root | None
    validate(cert_type, csr_pem, leaf, chain, trusted_roots=..., now=...) -> ValidatedCertificate
    preflight(cert_type, csr_pem, [(name, bytes), ...], ...)          parse + order + validate
    validate_issued(cert_type, csr_pem, issued, ...)                  the same for a CA's answer

Errors, as a tree (every message says what CUCM would answer and how to fix it)::

    PreflightError
    ├── UnreadableCertificate            not PEM, DER or PKCS#7, or damaged
    │   ├── EmptyCertificateFile
    │   ├── TruncatedCertificate         a BEGIN line without its END line
    │   ├── PrivateKeyInsteadOfCertificate
    │   └── CsrInsteadOfCertificate
    ├── InvalidCsr                       the recorded CSR itself is unreadable or badly signed
    ├── UnknownCertType
    ├── KeyNotAllowed                    RSA outside 2048..4096 bits, or not RSA/ECDSA
    ├── NodeCertificateMissing           only CA certificates were given
    ├── SelfSignedLeaf
    ├── WildcardCertificate
    ├── CertificateOfAnotherNode
    ├── PublicKeyMismatch                "CSR Public Key and Certificate Public Key Do Not Match"
    ├── SanMismatch                      "CSR SAN and Certificate SAN Does Not Match"
    ├── CertificateExpired
    ├── CertificateNotYetValid
    ├── WrongKeyUsage
    ├── WrongExtendedKeyUsage
    ├── WrongBasicConstraints
    └── ChainError
        ├── MissingIntermediate          "CA Certificate is Not Available in the Trust-Store"
        ├── ChainSignatureInvalid
        ├── NotACertificateAuthority
        ├── UnrelatedCertificate
        ├── TrustNameConflict            a different CA certificate of the same CN is trusted
        └── ChainCertificateExpired

Checks run in a fixed order, the leaf's own faults first, then its relation to the CSR, then the
chain, so the first error is the most useful one. Path-length constraints and revocation are not
checked (CUCM does not check them at upload either, as far as the reference shows).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, pkcs7
from cryptography.x509.oid import NameOID

from adapters.ca.port import DECODE_ERRORS, Issued
from adapters.ca.profiles import KU_NAMES, PROFILES, describe_eku, describe_key_usage, profile_for

TRUST_STORE_ERROR = "CA Certificate is Not Available in the Trust-Store"
KEY_MISMATCH_ERROR = "CSR Public Key and Certificate Public Key Do Not Match"
SAN_MISMATCH_ERROR = "CSR SAN and Certificate SAN Does Not Match"

RSA_MIN_BITS = 2048
RSA_MAX_BITS = 4096
EC_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
MAX_CHAIN_DEPTH = 8

# What a damaged certificate can raise from cryptography's lazy parsing.
_DECODE_ERRORS = DECODE_ERRORS


# --------------------------------------------------------------------------- errors


class PreflightError(Exception):
    """A certificate CUCM would refuse, or that would break the node after upload.

    ``problem`` says what is wrong, ``prevents`` what CUCM (or its phones and peers) would do with
    it, ``fix`` what the operator should do.
    """

    prevents = "CUCM refusing the upload"

    def __init__(self, problem: str, fix: str, *, prevents: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        if prevents is not None:
            self.prevents = prevents
        super().__init__(f"{problem}. Uploading it would lead to {self.prevents}. Fix: {fix}")


class UnreadableCertificate(PreflightError):
    prevents = "CUCM refusing the file (it accepts PEM or DER certificates only)"


class EmptyCertificateFile(UnreadableCertificate):
    pass


class TruncatedCertificate(UnreadableCertificate):
    pass


class PrivateKeyInsteadOfCertificate(UnreadableCertificate):
    pass


class CsrInsteadOfCertificate(UnreadableCertificate):
    pass


class InvalidCsr(PreflightError):
    prevents = f'CUCM refusing the upload with "{KEY_MISMATCH_ERROR}"'


class UnknownCertType(PreflightError):
    prevents = "an upload to a certificate store CUCM does not have"


class KeyNotAllowed(PreflightError):
    prevents = "CUCM refusing the certificate (RSA keys must be 2048 to 4096 bits)"


class NodeCertificateMissing(PreflightError):
    prevents = f'CUCM refusing the upload with "{KEY_MISMATCH_ERROR}"'


class SelfSignedLeaf(PreflightError):
    prevents = (
        f'CUCM refusing the upload with "{KEY_MISMATCH_ERROR}" or a node left with a self-signed certificate'
    )


class WildcardCertificate(PreflightError):
    prevents = "CUCM refusing the certificate (wildcard certificates are not supported)"


class CertificateOfAnotherNode(PreflightError):
    prevents = f'CUCM refusing the upload with "{KEY_MISMATCH_ERROR}"'


class PublicKeyMismatch(PreflightError):
    prevents = f'CUCM refusing the upload with "{KEY_MISMATCH_ERROR}"'


class SanMismatch(PreflightError):
    prevents = f'CUCM refusing the upload with "{SAN_MISMATCH_ERROR}"'


class CertificateExpired(PreflightError):
    prevents = "CUCM refusing the expired certificate, or phones and peers refusing TLS with the node"


class CertificateNotYetValid(PreflightError):
    prevents = "phones and peers refusing TLS with the node until the certificate's start date"


class WrongKeyUsage(PreflightError):
    prevents = (
        "TLS handshakes failing after the restart (the key usages CUCM needs for this type are missing)"
    )


class WrongExtendedKeyUsage(PreflightError):
    prevents = (
        "TLS or IPsec peers refusing the node after the restart (SIP trunks, ILS, intercluster and "
        "phone connections use mutual TLS: serverAuth and clientAuth)"
    )


class WrongBasicConstraints(PreflightError):
    prevents = "a certificate whose CA flag does not fit its use: phones and peers would refuse it"


class ChainError(PreflightError):
    prevents = f'CUCM refusing the upload with "{TRUST_STORE_ERROR}"'


class MissingIntermediate(ChainError):
    pass


class ChainSignatureInvalid(ChainError):
    pass


class NotACertificateAuthority(ChainError):
    pass


class UnrelatedCertificate(ChainError):
    prevents = "unrelated certificates uploaded into the node's trust store"


class TrustNameConflict(ChainError):
    pass


class ChainCertificateExpired(ChainError):
    prevents = "CUCM refusing the expired CA certificate in the trust store, and the chain not verifying"


# --------------------------------------------------------------------------- result


@dataclass(frozen=True)
class ValidatedCertificate:
    """A leaf that passed every check, with what the upload needs."""

    cert_type: str
    leaf_pem: str
    chain_pems: tuple[str, ...]
    """Intermediates then root (the root may come from ``trusted_roots``)."""
    serial: int
    fingerprint_sha256: str
    """Lowercase hex, no separators."""
    not_after: datetime
    trust_to_upload: tuple[str, ...]
    """Chain certificates not yet in the node's trust store, in upload order: root first, then
    the intermediates from the top down."""

    @property
    def serial_hex(self) -> str:
        return f"{self.serial:x}"

    def as_json(self) -> dict[str, Any]:
        """A JSON-safe form for the run's context (the serial as hex: 159 bits overflow JSON numbers)."""
        return {
            "cert_type": self.cert_type,
            "leaf_pem": self.leaf_pem,
            "chain_pems": list(self.chain_pems),
            "serial": self.serial_hex,
            "fingerprint_sha256": self.fingerprint_sha256,
            "not_after": self.not_after.isoformat(),
            "trust_to_upload": list(self.trust_to_upload),
        }


# --------------------------------------------------------------------------- parsing

_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 #]{1,64})-----")
_CERT_LABELS = {b"CERTIFICATE", b"X509 CERTIFICATE"}
_PKCS7_LABELS = {b"PKCS7", b"CMS", b"PKCS #7 SIGNED DATA"}
_CSR_LABELS = {b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST"}


def parse_bundle(data: bytes, *, source: str = "the certificate file") -> list[x509.Certificate]:
    """Every certificate in ``data``: PEM (any number of blocks; text around them is ignored),
    DER, or PKCS#7 (PEM or DER). Raises :class:`UnreadableCertificate` or a subclass."""
    if not data.strip():
        raise EmptyCertificateFile(f"{source} is empty", "give the file the CA returned (PEM, DER or PKCS#7)")
    certs = _parse_pem(data, source) if b"-----BEGIN" in data else _parse_der(data, source)
    for cert in certs:
        _force_decode(cert, source)
    return certs


def _parse_pem(data: bytes, source: str) -> list[x509.Certificate]:
    certs: list[x509.Certificate] = []
    pos = 0
    while (begin := _BEGIN.search(data, pos)) is not None:
        label = begin.group(1)
        end_marker = b"-----END " + label + b"-----"
        end = data.find(end_marker, begin.end())
        if end < 0:
            raise TruncatedCertificate(
                f"{source} is cut short: a '-----BEGIN {label.decode()}-----' block has no END line",
                "copy the whole file again from the CA (the end was lost)",
            )
        body = data[begin.end() : end]
        pos = end + len(end_marker)
        if label.endswith(b"PRIVATE KEY"):
            raise PrivateKeyInsteadOfCertificate(
                f"{source} holds a private key, not a certificate",
                "give the signed certificate the CA returned; a private key must never leave its owner "
                "(CUCM keeps the key of its own CSR)",
            )
        if label in _CSR_LABELS:
            raise CsrInsteadOfCertificate(
                f"{source} holds a certificate signing request, not a certificate",
                "send this CSR to the CA and give the certificate it returns",
            )
        der = _unbase64(body, source, label.decode())
        if label in _CERT_LABELS:
            certs.append(_load_der_cert(der, source))
        elif label in _PKCS7_LABELS:
            certs.extend(_load_pkcs7(der, source))
        else:
            raise UnreadableCertificate(
                f"{source} holds a PEM block labelled {label.decode()!r}, which is not a certificate",
                "give the certificate (BEGIN CERTIFICATE) or a PKCS#7 bundle (BEGIN PKCS7)",
            )
    if not certs:
        raise UnreadableCertificate(
            f"{source} has no complete PEM block", "give the certificate file the CA returned"
        )
    return certs


def _unbase64(body: bytes, source: str, label: str) -> bytes:
    text = b"".join(body.split())
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise UnreadableCertificate(
            f"{source}: the {label} block is not valid base64 (the file is damaged"
            + (", or encrypted" if b":" in body else "")
            + ")",
            "copy the file again from the CA, without editing it",
        ) from None


def _load_der_cert(der: bytes, source: str) -> x509.Certificate:
    try:
        return _load_der_x509(der)
    except _DECODE_ERRORS:
        raise UnreadableCertificate(
            f"{source}: a CERTIFICATE block does not decode as an X.509 certificate (damaged or cut short)",
            "copy the file again from the CA",
        ) from None


def _load_pkcs7(der: bytes, source: str) -> list[x509.Certificate]:
    try:
        certs = _load_der_pkcs7(der)
    except _DECODE_ERRORS:
        raise UnreadableCertificate(
            f"{source}: the PKCS#7 bundle does not decode", "copy the file again from the CA"
        ) from None
    if not certs:
        raise UnreadableCertificate(
            f"{source}: the PKCS#7 bundle holds no certificate", "ask the CA for the certificate itself"
        )
    return list(certs)


# cryptography warns about some malformed input (BER instead of DER, a serial number that is not
# positive) instead of refusing it: the warnings are silenced and the faults reported as ours.


def _load_der_pkcs7(der: bytes) -> list[x509.Certificate]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pkcs7.load_der_pkcs7_certificates(der)


def _load_der_x509(der: bytes) -> x509.Certificate:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return x509.load_der_x509_certificate(der)


def _parse_der(data: bytes, source: str) -> list[x509.Certificate]:
    try:
        return [_load_der_x509(data)]
    except _DECODE_ERRORS:
        pass
    try:
        certs = _load_der_pkcs7(data)
    except _DECODE_ERRORS:
        certs = None
    if certs:
        return list(certs)
    if _is_der_private_key(data):
        raise PrivateKeyInsteadOfCertificate(
            f"{source} holds a private key (DER), not a certificate",
            "give the signed certificate the CA returned; a private key must never leave its owner",
        )
    try:
        x509.load_der_x509_csr(data)
    except _DECODE_ERRORS:
        pass
    else:
        raise CsrInsteadOfCertificate(
            f"{source} holds a certificate signing request (DER), not a certificate",
            "send this CSR to the CA and give the certificate it returns",
        )
    raise UnreadableCertificate(
        f"{source} is not a certificate: it is neither PEM, DER nor PKCS#7 (or it is damaged)",
        "give the certificate file the CA returned, in PEM, DER or PKCS#7 form",
    )


def _is_der_private_key(data: bytes) -> bool:
    try:
        serialization.load_der_private_key(data, password=None)
    except TypeError:
        return True  # encrypted: still a private key
    except (ValueError, UnsupportedAlgorithm):
        return False
    return True


def _force_decode(cert: x509.Certificate, source: str) -> None:
    """cryptography decodes lazily: touch what the checks read, so damage shows up here."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cert.subject.rfc4514_string()
            cert.issuer.rfc4514_string()
            _ = cert.extensions
            cert.public_key()
            _ = cert.not_valid_before_utc, cert.not_valid_after_utc
            serial = cert.serial_number
    except _DECODE_ERRORS as exc:
        raise UnreadableCertificate(
            f"{source} holds a malformed certificate ({type(exc).__name__})",
            "ask the CA to issue it again",
        ) from None
    if serial <= 0:
        raise UnreadableCertificate(
            f"{source} holds a certificate whose serial number is not positive (RFC 5280 forbids it)",
            "ask the CA to issue it again with a positive serial number",
        )


# --------------------------------------------------------------------------- ordering


def order_chain(
    certs: Sequence[x509.Certificate],
) -> tuple[x509.Certificate, list[x509.Certificate], x509.Certificate | None]:
    """Split a bundle in any order into (leaf, intermediates from the leaf up, root or None).

    Duplicates are dropped. The leaf is the certificate that issued none of the others.
    Raises :class:`MissingIntermediate` when the bundle holds CA certificates the leaf's path never
    reaches (an intermediate between them is missing), :class:`UnrelatedCertificate` when it holds
    certificates that belong to no path from the leaf.
    """
    unique = _dedupe(certs)
    if not unique:
        raise EmptyCertificateFile("no certificate was given", "give the certificate the CA returned")
    issuers = {id(p) for c in unique for p in unique if p is not c and _may_have_issued(p, c)}
    candidates = [c for c in unique if id(c) not in issuers] or list(unique)
    # Prefer an end entity over a CA, and a CA over a self-signed root (CAPF leaves are CAs).
    leaf = min(candidates, key=lambda c: (_is_ca(c), _self_issued(c)))
    path = [leaf]
    remaining = [c for c in unique if c is not leaf]
    current = leaf
    while not _self_issued(current):
        parent = next((p for p in remaining if _may_have_issued(p, current)), None)
        if parent is None:
            break
        path.append(parent)
        remaining.remove(parent)
        current = parent
    if remaining:
        others = ", ".join(_describe(c) for c in remaining)
        if not _self_issued(current):
            raise MissingIntermediate(
                f"the chain is incomplete: {_describe(current)} was issued by "
                f"'{current.issuer.rfc4514_string()}', which is not in the files, and {others} "
                "does not connect to it",
                "add the missing intermediate CA certificate (--chain FILE), as the CA publishes it",
            )
        raise UnrelatedCertificate(
            f"the files hold certificates that are not part of this certificate's chain: {others}",
            "give only the node's certificate and its own chain (one node at a time)",
        )
    if len(path) > 1 and _self_issued(path[-1]):
        return leaf, path[1:-1], path[-1]
    return leaf, path[1:], None


# --------------------------------------------------------------------------- validation


def validate(
    cert_type: str,
    csr_pem: str,
    leaf: x509.Certificate,
    chain: Sequence[x509.Certificate],
    *,
    trusted_roots: Sequence[x509.Certificate],
    now: datetime,
) -> ValidatedCertificate:
    """Check ``leaf`` (signed from ``csr_pem`` for ``cert_type``) and its ``chain`` (any order).

    ``trusted_roots``: certificates already in the node's ``<type>-trust`` store; a chain may end
    at any of them. ``now``: the current time (a naive value is taken as UTC).
    Raises a :class:`PreflightError` subclass for the first problem found.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _validate(cert_type, csr_pem, leaf, chain, trusted_roots, _utc(now))
    except _DECODE_ERRORS as exc:
        # Only a certificate that did not come through parse_bundle can get here.
        raise UnreadableCertificate(
            f"a certificate is malformed ({type(exc).__name__})", "ask the CA to issue it again"
        ) from None


def preflight(
    cert_type: str,
    csr_pem: str,
    files: Sequence[tuple[str, bytes]],
    *,
    trusted_roots: Sequence[x509.Certificate],
    now: datetime,
) -> ValidatedCertificate:
    """Parse every ``(name, data)`` file, put the certificates in order, validate them."""
    certs = [cert for name, data in files for cert in parse_bundle(data, source=name)]
    leaf, intermediates, root = order_chain(certs)
    return validate(
        cert_type,
        csr_pem,
        leaf,
        [*intermediates, *([root] if root is not None else [])],
        trusted_roots=trusted_roots,
        now=now,
    )


def validate_issued(
    cert_type: str,
    csr_pem: str,
    issued: Issued,
    *,
    trusted_roots: Sequence[x509.Certificate],
    now: datetime,
) -> ValidatedCertificate:
    """:func:`preflight` for a CA adapter's answer."""
    files = [("the certificate from the CA", issued.leaf_pem.encode("utf-8", "replace"))]
    files += [
        (f"chain certificate {i + 1} from the CA", p.encode("utf-8", "replace"))
        for i, p in enumerate(issued.chain_pems)
    ]
    return preflight(cert_type, csr_pem, files, trusted_roots=trusted_roots, now=now)


def _validate(
    cert_type: str,
    csr_pem: str,
    leaf: x509.Certificate,
    chain: Sequence[x509.Certificate],
    trusted_roots: Sequence[x509.Certificate],
    now: datetime,
) -> ValidatedCertificate:
    profile = profile_for(cert_type)
    if profile is None:
        raise UnknownCertType(
            f"unknown certificate type {cert_type!r}",
            "use one of " + ", ".join(sorted(_known_types())),
        )
    csr = _load_csr(csr_pem)
    what = f"the {profile.cert_type} certificate {_describe(leaf)}"

    leaf_key = leaf.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    csr_key = csr.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if _is_ca(leaf) and leaf_key != csr_key:
        # Only CA certificates were given (a CAPF leaf is a CA too, but carries the CSR's key).
        raise NodeCertificateMissing(
            f"the files hold only CA certificates ({_describe(leaf)} is a CA): the node's own "
            "certificate is not among them",
            "give the certificate the CA issued for the node (--cert), and its CA certificates with --chain",
        )
    _check_key(leaf, what)
    if _self_issued(leaf) and _signed_by(leaf, leaf):
        raise SelfSignedLeaf(
            f"{what} is self-signed, not signed by a CA (it may be the node's current certificate)",
            "send the node's CSR to the CA and give the certificate the CA returns",
        )
    _check_wildcard(leaf, what)
    _check_node(leaf, csr, what)
    if leaf_key != csr_key:
        raise PublicKeyMismatch(
            f"{what} was not signed from the node's current CSR: its public key differs from the CSR's",
            "send the node's current CSR to the CA (a new CSR replaces the old one on CUCM; "
            "a certificate issued from an older CSR can never be uploaded)",
        )
    _check_sans(leaf, csr, what)
    _check_validity(leaf, now, what, CertificateNotYetValid, CertificateExpired)
    _check_usages(leaf, profile.cert_type, what)

    path = _build_path(leaf, chain, trusted_roots, now)
    trusted_fps = {_fingerprint(c) for c in trusted_roots}
    to_upload = [c for c in reversed(path[1:]) if _fingerprint(c) not in trusted_fps]
    _check_same_name_in_trust(to_upload, trusted_roots, profile.cert_type)
    return ValidatedCertificate(
        cert_type=profile.cert_type,
        leaf_pem=_pem(leaf),
        chain_pems=tuple(_pem(c) for c in path[1:]),
        serial=leaf.serial_number,
        fingerprint_sha256=_fingerprint(leaf),
        not_after=leaf.not_valid_after_utc,
        trust_to_upload=tuple(_pem(c) for c in to_upload),
    )


def _known_types() -> list[str]:
    return list(PROFILES)


def _load_csr(csr_pem: str) -> x509.CertificateSigningRequest:
    fix = "generate a new CSR on the node for this type and have it signed"
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode("utf-8", "replace"))
        ok = csr.is_signature_valid
        csr.public_key()
        _ = csr.extensions
        csr.subject.rfc4514_string()
    except _DECODE_ERRORS:
        raise InvalidCsr("the node's recorded CSR is unreadable", fix) from None
    if not ok:
        raise InvalidCsr("the node's recorded CSR has an invalid signature", fix)
    return csr


def _check_key(cert: x509.Certificate, what: str) -> None:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if not RSA_MIN_BITS <= key.key_size <= RSA_MAX_BITS:
            raise KeyNotAllowed(
                f"{what} has an RSA key of {key.key_size} bits; "
                f"CUCM accepts {RSA_MIN_BITS} to {RSA_MAX_BITS} bits",
                f"generate the CSR with a {RSA_MIN_BITS}-bit key (phones may refuse larger ones), "
                "and have the CA sign that CSR",
            )
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in EC_CURVES:
            raise KeyNotAllowed(
                f"{what} uses the elliptic curve {key.curve.name}, which CUCM does not support",
                "use an ECDSA CSR on P-256 or P-384 generated by CUCM",
            )
    else:
        raise KeyNotAllowed(
            f"{what} has a {type(key).__name__.removesuffix('PublicKey').lstrip('_')} key; "
            "CUCM supports RSA and ECDSA only",
            "generate the CSR on CUCM and have the CA sign it without changing the key",
        )


def _check_wildcard(leaf: x509.Certificate, what: str) -> None:
    cn = _cn(leaf.subject)
    names = list(dict.fromkeys([*([cn] if cn else []), *(n for _, n in _sans(leaf))]))
    names = [n for n in names if "*" in n]
    if names:
        raise WildcardCertificate(
            f"{what} is a wildcard certificate ({', '.join(names)})",
            "have the CA sign the node's own CSR, which names the node itself",
        )


def _check_node(leaf: x509.Certificate, csr: x509.CertificateSigningRequest, what: str) -> None:
    leaf_cn, csr_cn = _cn(leaf.subject), _cn(csr.subject)
    if leaf_cn is None or csr_cn is None:
        return  # nothing to compare; the SAN check decides
    if _host(leaf_cn) != _host(csr_cn):
        raise CertificateOfAnotherNode(
            f"{what} belongs to another node: it is issued to '{leaf_cn}', but the CSR is for '{csr_cn}'",
            f"give the certificate issued for {csr_cn} (check the file name and the --node option)",
        )


def _check_sans(leaf: x509.Certificate, csr: x509.CertificateSigningRequest, what: str) -> None:
    leaf_sans, csr_sans = set(_sans(leaf)), set(_sans(csr))
    extra, missing = leaf_sans - csr_sans, csr_sans - leaf_sans
    if not extra and not missing:
        return
    parts = []
    if extra:
        parts.append("has names the CSR does not have: " + ", ".join(sorted(n for _, n in extra)))
    if missing:
        parts.append("lacks names the CSR has: " + ", ".join(sorted(n for _, n in missing)))
    raise SanMismatch(
        f"{what} has subject alternative names different from the CSR's; it " + "; it ".join(parts),
        "have the CA copy the CSR's SANs exactly, adding none (e.g. openssl `copy_extensions = copy`, "
        "or a CA template that does not add the CN or IP addresses); to add names, put them in the CSR",
    )


def _check_validity(
    cert: x509.Certificate,
    now: datetime,
    what: str,
    early: type[PreflightError],
    late: type[PreflightError],
) -> None:
    if now < cert.not_valid_before_utc:
        raise early(
            f"{what} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
            "wait until then, or have the CA issue it with a start date that has passed; "
            "check the clocks of the CA and of this machine",
        )
    if now >= cert.not_valid_after_utc:
        raise late(
            f"{what} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
            "have the CA issue a new certificate from the node's current CSR"
            if late is CertificateExpired
            else "get the CA's current certificate and give that one instead",
        )


def _check_usages(leaf: x509.Certificate, cert_type: str, what: str) -> None:
    profile = profile_for(cert_type)
    assert profile is not None
    template = f"issue it with the CA profile for CUCM {cert_type} certificates"
    required = profile.key_usage_for(isinstance(leaf.public_key(), rsa.RSAPublicKey))
    try:
        ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        present = {name for name in KU_NAMES if getattr(ku, name)}
    except x509.ExtensionNotFound:
        present = set()
    missing = required - present
    if missing:
        raise WrongKeyUsage(
            f"{what} lacks key usage {describe_key_usage(missing)} "
            f"(it has {describe_key_usage(present)}; {cert_type} needs {describe_key_usage(required)})",
            f"{template}: key usage {describe_key_usage(required)}",
        )
    try:
        bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = bc.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if profile.is_ca and not is_ca:
        raise WrongBasicConstraints(
            f"{what} is not marked as a CA (basicConstraints CA:TRUE), yet CAPF signs the phones' "
            "certificates with it",
            f"{template}: basicConstraints CA:TRUE, pathlen:0, and key usage keyCertSign",
        )
    if is_ca and not profile.is_ca:
        raise WrongBasicConstraints(
            f"{what} is marked as a CA certificate (basicConstraints CA:TRUE); {cert_type} needs an "
            "end-entity certificate",
            f"{template}: basicConstraints CA:FALSE",
        )
    try:
        eku = set(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        eku = set()
    missing_eku = set(profile.extended_key_usage) - eku
    if missing_eku:
        raise WrongExtendedKeyUsage(
            f"{what} lacks extended key usage {describe_eku(missing_eku)} "
            f"({cert_type} needs {describe_eku(profile.extended_key_usage)})",
            f"{template}: extended key usage {describe_eku(profile.extended_key_usage)} "
            "(public ACME CAs no longer issue clientAuth: use an enterprise CA for this type)",
        )


def _check_same_name_in_trust(
    to_upload: Sequence[x509.Certificate], trusted: Sequence[x509.Certificate], cert_type: str
) -> None:
    """CUCM keeps one trust certificate per CN, and a certificate that does not start later than
    the one in place does not replace it: the upload "succeeds", the old CA stays, and the leaf
    upload then fails."""
    by_cn: dict[str, x509.Certificate] = {}
    for cert in trusted:
        cn = _cn(cert.subject)
        if cn is not None:
            by_cn.setdefault(cn.casefold(), cert)
    for cert in to_upload:
        cn = _cn(cert.subject)
        existing = by_cn.get(cn.casefold()) if cn is not None else None
        if existing is not None and cert.not_valid_before_utc <= existing.not_valid_before_utc:
            raise TrustNameConflict(
                f"the node's {cert_type}-trust store already holds a different certificate named "
                f"'{cn}' (valid from {existing.not_valid_before_utc:%Y-%m-%d}); CUCM keeps one per "
                f"name and would not replace it with this one (valid from "
                f"{cert.not_valid_before_utc:%Y-%m-%d})",
                f"delete the old '{cn}' from {cert_type}-trust first (after checking nothing else "
                "still needs it), or have the CA give its new certificate a distinct name",
            )


def _build_path(
    leaf: x509.Certificate,
    chain: Sequence[x509.Certificate],
    trusted: Sequence[x509.Certificate],
    now: datetime,
) -> list[x509.Certificate]:
    """The path from ``leaf`` up to a self-signed root in ``chain`` or any certificate of
    ``trusted``, every signature checked."""
    leaf_fp = _fingerprint(leaf)
    unused = [c for c in _dedupe(chain) if _fingerprint(c) != leaf_fp]
    trusted_by_fp = {_fingerprint(c): c for c in trusted}
    path = [leaf]
    current = leaf
    for _ in range(MAX_CHAIN_DEPTH):
        if current is not leaf and _self_issued(current):
            if not _signed_by(current, current):
                raise ChainSignatureInvalid(
                    f"the root {_describe(current)} has an invalid self-signature (damaged or forged)",
                    "get the root certificate again from the CA, by a channel you trust",
                )
            break
        parent = next((p for p in unused if _may_have_issued(p, current)), None)
        if parent is not None:
            unused.remove(parent)
        else:
            parent = next(
                (p for p in trusted_by_fp.values() if p not in path and _may_have_issued(p, current)), None
            )
        if parent is None:
            if current is not leaf and _fingerprint(current) in trusted_by_fp:
                break  # an intermediate the node already trusts, whose own issuer we do not have
            raise MissingIntermediate(
                f"the chain is incomplete: {_describe(current)} was issued by "
                f"'{current.issuer.rfc4514_string()}', which is neither in the files nor in the "
                "node's trust store",
                "give the issuing CA's certificate (and the root) with --chain, "
                "or upload them to the node's trust store first",
            )
        if not _signed_by(current, parent):
            raise ChainSignatureInvalid(
                f"{_describe(current)} names '{current.issuer.rfc4514_string()}' as issuer, but that "
                "CA's key did not sign it (a different CA with the same name, or a damaged file)",
                "give the chain of the CA that actually issued the certificate",
            )
        if not _is_ca(parent):
            raise NotACertificateAuthority(
                f"{_describe(parent)} is in the chain but is not a CA certificate "
                "(no basicConstraints CA:TRUE)",
                "give the CA's own certificate, not another end-entity certificate",
            )
        path.append(parent)
        current = parent
    else:
        raise ChainError(
            f"the chain is longer than {MAX_CHAIN_DEPTH} certificates or loops",
            "give only the certificate, its intermediates and its root",
        )
    if unused:
        raise UnrelatedCertificate(
            "the files hold certificates that are not part of this certificate's chain: "
            + ", ".join(_describe(c) for c in unused),
            "give only the node's certificate and its own chain",
        )
    for cert in path[1:]:
        _check_key(cert, f"the CA certificate {_describe(cert)}")
        _check_validity(
            cert,
            now,
            f"the CA certificate {_describe(cert)}",
            ChainCertificateExpired,
            ChainCertificateExpired,
        )
    return path


# --------------------------------------------------------------------------- helpers


def _utc(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _dedupe(certs: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    seen: set[str] = set()
    out = []
    for cert in certs:
        fp = _fingerprint(cert)
        if fp not in seen:
            seen.add(fp)
            out.append(cert)
    return out


def _fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(Encoding.PEM).decode("ascii")


def _self_issued(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _may_have_issued(parent: x509.Certificate, child: x509.Certificate) -> bool:
    """By names and key identifiers only: signatures are checked by the path builder, so that a
    bad signature is reported as such rather than as a missing certificate."""
    if parent.subject != child.issuer:
        return False
    try:
        aki = child.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        ski = parent.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return True
    return aki is None or aki == ski


def _signed_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except InvalidSignature:
        return False
    except _DECODE_ERRORS:
        return False
    return True


def _cn(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else None


def _host(name: str) -> str:
    """The host part of a node name, the multi-SAN '-ms' suffix removed (a CA may drop it)."""
    host = name.strip().rstrip(".").casefold().split(".", 1)[0]
    return host.removesuffix("-ms")


def _sans(obj: x509.Certificate | x509.CertificateSigningRequest) -> list[tuple[str, str]]:
    try:
        san = obj.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    out: list[tuple[str, str]] = []
    for gn in san:
        if isinstance(gn, x509.DNSName):
            out.append(("dns", gn.value.strip().rstrip(".").casefold()))
        elif isinstance(gn, x509.IPAddress):
            out.append(("ip", str(gn.value)))
        else:
            out.append((type(gn).__name__, str(gn.value)))
    return out


def _describe(cert: x509.Certificate) -> str:
    cn = _cn(cert.subject)
    return f"'{cn}'" if cn else f"'{cert.subject.rfc4514_string() or '(empty subject)'}'"
