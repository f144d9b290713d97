"""Certificate plumbing: reading certificate files, PEM and DER, fingerprints, names and keys.

Pure ``cryptography``, no I/O beyond the bytes given. Pre-flight (:mod:`workflows.preflight`)
builds CUCM's rules on these; the steps and the composition root use them to read what CUCM, the
CA and the TLS bundle hold. Nothing here decides whether a certificate is acceptable.

Reading a file is pre-flight's first check, so the errors of :func:`parse_bundle` are the first
branch of pre-flight's error tree, whose root is :class:`CertificateError` (pre-flight calls it
``PreflightError``)::

    CertificateError
    └── UnreadableCertificate            not PEM, DER or PKCS#7, or damaged
        ├── EmptyCertificateFile
        ├── TruncatedCertificate         a BEGIN line without its END line
        ├── PrivateKeyInsteadOfCertificate
        └── CsrInsteadOfCertificate
"""

from __future__ import annotations

import base64
import binascii
import re
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, pkcs7
from cryptography.x509.oid import NameOID

from adapters.ca.port import DECODE_ERRORS
from workflows.timestamps import iso

__all__ = [
    "DECODE_ERRORS",
    "CertificateError",
    "CsrInsteadOfCertificate",
    "EmptyCertificateFile",
    "PrivateKeyInsteadOfCertificate",
    "TruncatedCertificate",
    "UnreadableCertificate",
    "cert_summary",
    "common_name",
    "dedupe",
    "describe",
    "fingerprint",
    "fingerprints",
    "is_ca",
    "load_cert",
    "may_have_issued",
    "parse_bundle",
    "pem",
    "pem_blocks",
    "pem_list",
    "public_key_der",
    "self_issued",
    "signed_by",
    "subject_alt_names",
]


# --------------------------------------------------------------------------- errors


class CertificateError(Exception):
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


class UnreadableCertificate(CertificateError):
    prevents = "CUCM refusing the file (it accepts PEM or DER certificates only)"


class EmptyCertificateFile(UnreadableCertificate):
    pass


class TruncatedCertificate(UnreadableCertificate):
    pass


class PrivateKeyInsteadOfCertificate(UnreadableCertificate):
    pass


class CsrInsteadOfCertificate(UnreadableCertificate):
    pass


# --------------------------------------------------------------------------- one certificate


def load_cert(data: str | bytes) -> x509.Certificate:
    """One certificate, PEM (text or bytes) or DER. Raises ``ValueError`` when it is neither."""
    if isinstance(data, str):
        return x509.load_pem_x509_certificate(data.encode())
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(Encoding.PEM).decode("ascii")


def pem_list(value: Any) -> list[str]:
    """PEM texts from JSON: none, one string, or a list of them."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def fingerprint(data: str | bytes | x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, lowercase hex, no separators."""
    cert = data if isinstance(data, x509.Certificate) else load_cert(data)
    return cert.fingerprint(hashes.SHA256()).hex()


def fingerprints(pems: Iterable[str]) -> frozenset[str]:
    """:func:`fingerprint` of each readable certificate; the rest are skipped (a trust store or a
    bundle may hold entries this parser cannot read, and they cannot anchor a chain anyway)."""
    out: set[str] = set()
    for text in pems:
        try:
            out.add(fingerprint(text))
        except ValueError:
            continue
    return frozenset(out)


def pem_blocks(text: str) -> list[str]:
    """Each ``CERTIFICATE`` block of a PEM bundle, text around them dropped."""
    blocks = []
    for chunk in text.split("-----END CERTIFICATE-----"):
        start = chunk.find("-----BEGIN CERTIFICATE-----")
        if start >= 0:
            blocks.append(chunk[start:] + "-----END CERTIFICATE-----\n")
    return blocks


def cert_summary(data: str | bytes) -> dict[str, Any]:
    """What the audit and the demo's table show about a certificate."""
    cert = load_cert(data)
    return {
        "serial": format(cert.serial_number, "x"),
        "sha256": fingerprint(cert),
        "not_after": iso(cert.not_valid_after_utc),
        "subject": cert.subject.rfc4514_string(),
    }


def is_ca(cert: str | bytes | x509.Certificate) -> bool:
    """Marked as a CA (basicConstraints CA:TRUE)."""
    cert = cert if isinstance(cert, x509.Certificate) else load_cert(cert)
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def self_issued(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer


def public_key_der(obj: x509.Certificate | x509.CertificateSigningRequest) -> bytes:
    """The SubjectPublicKeyInfo, DER: equal for a certificate and the CSR it was signed from."""
    return obj.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def common_name(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else None


def subject_alt_names(obj: x509.Certificate | x509.CertificateSigningRequest) -> list[tuple[str, str]]:
    """``(kind, name)`` pairs: ``dns`` names lowercased without a trailing dot, ``ip`` addresses."""
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


def describe(cert: x509.Certificate) -> str:
    """The certificate's name for messages: its CN, or its whole subject."""
    cn = common_name(cert.subject)
    return f"'{cn}'" if cn else f"'{cert.subject.rfc4514_string() or '(empty subject)'}'"


# --------------------------------------------------------------------------- issuers


def may_have_issued(parent: x509.Certificate, child: x509.Certificate) -> bool:
    """By names and key identifiers only: the signature is :func:`signed_by`'s, so that a bad
    signature can be reported as such rather than as a missing certificate."""
    if parent.subject != child.issuer:
        return False
    try:
        aki = child.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        ski = parent.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return True
    return aki is None or aki == ski


def signed_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except InvalidSignature:
        return False
    except DECODE_ERRORS:
        return False
    return True


def dedupe(certs: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """``certs`` in order, each certificate once."""
    seen: set[str] = set()
    out = []
    for cert in certs:
        fp = fingerprint(cert)
        if fp not in seen:
            seen.add(fp)
            out.append(cert)
    return out


# --------------------------------------------------------------------------- bundles

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
    except DECODE_ERRORS:
        raise UnreadableCertificate(
            f"{source}: a CERTIFICATE block does not decode as an X.509 certificate (damaged or cut short)",
            "copy the file again from the CA",
        ) from None


def _load_pkcs7(der: bytes, source: str) -> list[x509.Certificate]:
    try:
        certs = _load_der_pkcs7(der)
    except DECODE_ERRORS:
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
    except DECODE_ERRORS:
        pass
    try:
        certs = _load_der_pkcs7(data)
    except DECODE_ERRORS:
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
    except DECODE_ERRORS:
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
    """cryptography decodes lazily: touch what pre-flight reads, so damage shows up here."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cert.subject.rfc4514_string()
            cert.issuer.rfc4514_string()
            _ = cert.extensions
            cert.public_key()
            _ = cert.not_valid_before_utc, cert.not_valid_after_utc
            serial = cert.serial_number
    except DECODE_ERRORS as exc:
        raise UnreadableCertificate(
            f"{source} holds a malformed certificate ({type(exc).__name__})",
            "ask the CA to issue it again",
        ) from None
    if serial <= 0:
        raise UnreadableCertificate(
            f"{source} holds a certificate whose serial number is not positive (RFC 5280 forbids it)",
            "ask the CA to issue it again with a positive serial number",
        )
