"""Pre-flight: check a signed certificate and its chain before anything is uploaded to CUCM.

Every CUCM upload error is caught here first, with CUCM's own wording and the fix. Pure
``cryptography``: no I/O beyond the bytes given; the clock is a parameter. The certificate
plumbing (reading files, fingerprints, names, issuers) is :mod:`workflows.certkit`'s; the rules
are here.

Entry points::

    parse_bundle(data, source=...)        -> [Certificate]         PEM (several blocks), DER, PKCS#7
    order_chain(certs)                    -> leaf, [intermediates], root | None
    validate(cert_type, csr_pem, leaf, chain, trusted_roots=..., now=...) -> ValidatedCertificate
    preflight(cert_type, csr_pem, [(name, bytes), ...], ...)          parse + order + validate
    validate_issued(cert_type, csr_pem, issued, ...)                  the same for a CA's answer

Errors, as a tree (every message says what CUCM would answer and how to fix it; the unreadable
branch is raised by ``certkit.parse_bundle`` and named here too)::

    PreflightError
    ├── UnreadableCertificate            not PEM, DER or PKCS#7, or damaged
    │   ├── EmptyCertificateFile
    │   ├── TruncatedCertificate         a BEGIN line without its END line
    │   ├── PrivateKeyInsteadOfCertificate
    │   └── CsrInsteadOfCertificate
    ├── InvalidCsr                       the recorded CSR itself is unreadable or badly signed
    ├── UnknownCertType
    ├── KeyNotAllowed                    RSA outside 2048..4096 bits, EC off P-256/P-384, or neither
    ├── WeakSignatureHash                an EC leaf signed with a hash weaker than its key (SG14)
    ├── NodeCertificateMissing           only CA certificates were given
    ├── SelfSignedLeaf
    ├── WildcardCertificate
    ├── CertificateOfAnotherNode
    ├── PublicKeyMismatch                "CSR Public Key and Certificate Public Key Do Not Match"
    ├── SanMismatch                      "CSR SAN and Certificate SAN Does Not Match"
    ├── MultiServerNodeMissing           a multi-server certificate that leaves a node of the cluster out
    ├── NameLost                         a name of the node's current certificate is missing
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

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from adapters.ca.port import Issued
from adapters.ca.profiles import KU_NAMES, PROFILES, describe_eku, describe_key_usage, profile_for
from workflows.certkit import (
    DECODE_ERRORS,
    CertificateError,
    CsrInsteadOfCertificate,
    EmptyCertificateFile,
    PrivateKeyInsteadOfCertificate,
    TruncatedCertificate,
    UnreadableCertificate,
    common_name,
    dedupe,
    describe,
    fingerprint,
    is_ca,
    may_have_issued,
    parse_bundle,
    pem,
    public_key_der,
    self_issued,
    signed_by,
    subject_alt_names,
)
from workflows.timestamps import iso

# The unreadable-file errors and parse_bundle come from certkit: reading is the first check.
__all__ = [
    "EC_CURVES",
    "KEY_MISMATCH_ERROR",
    "MAX_CHAIN_DEPTH",
    "RSA_MAX_BITS",
    "RSA_MIN_BITS",
    "SAN_MISMATCH_ERROR",
    "TRUST_STORE_ERROR",
    "CertificateExpired",
    "CertificateNotYetValid",
    "CertificateOfAnotherNode",
    "ChainCertificateExpired",
    "ChainError",
    "ChainSignatureInvalid",
    "CsrInsteadOfCertificate",
    "EmptyCertificateFile",
    "InvalidCsr",
    "KeyNotAllowed",
    "MissingIntermediate",
    "MultiServerNodeMissing",
    "NameLost",
    "NodeCertificateMissing",
    "NotACertificateAuthority",
    "PreflightError",
    "PrivateKeyInsteadOfCertificate",
    "PublicKeyMismatch",
    "SanMismatch",
    "SelfSignedLeaf",
    "TruncatedCertificate",
    "TrustNameConflict",
    "UnknownCertType",
    "UnreadableCertificate",
    "UnrelatedCertificate",
    "ValidatedCertificate",
    "WeakSignatureHash",
    "WildcardCertificate",
    "WrongBasicConstraints",
    "WrongExtendedKeyUsage",
    "WrongKeyUsage",
    "order_chain",
    "parse_bundle",
    "preflight",
    "validate",
    "validate_issued",
]

TRUST_STORE_ERROR = "CA Certificate is Not Available in the Trust-Store"
KEY_MISMATCH_ERROR = "CSR Public Key and Certificate Public Key Do Not Match"
SAN_MISMATCH_ERROR = "CSR SAN and Certificate SAN Does Not Match"

RSA_MIN_BITS = 2048
RSA_MAX_BITS = 4096
EC_CURVES = frozenset({"secp256r1", "secp384r1"})
"""The curves CUCM offers for its -ECDSA types (SG14: 256 and 384; 521 only on Unity Connection)."""
MAX_CHAIN_DEPTH = 8


# --------------------------------------------------------------------------- errors


# Reading a file is the first check: certkit's errors are the first branch of this tree.
PreflightError = CertificateError


class InvalidCsr(PreflightError):
    prevents = f'CUCM refusing the upload with "{KEY_MISMATCH_ERROR}"'


class UnknownCertType(PreflightError):
    prevents = "an upload to a certificate store CUCM does not have"


class KeyNotAllowed(PreflightError):
    prevents = "CUCM refusing the certificate (RSA keys must be 2048 to 4096 bits)"


class WeakSignatureHash(PreflightError):
    prevents = (
        "a certificate weaker than its own key: SG14 asks a hash at least as strong as the EC key "
        "(SHA-256 for P-256, SHA-384 or SHA-512 for P-384)"
    )


class MultiServerNodeMissing(PreflightError):
    prevents = (
        "a node left on its old certificate: CUCM installs a multi-server certificate only on the "
        "nodes its SAN names (a node added since the CSR is not covered)"
    )


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


class NameLost(PreflightError):
    """The certificate lacks a name the node's current certificate carries (workflows.names)."""


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


class IssuerDoesNotVerify(ChainSignatureInvalid):
    """A CA certificate of the issuer's name is there, but not the one that issued the certificate
    (another key: an impostor, or the CA's old or new certificate)."""


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
            "not_after": iso(self.not_after),
            "trust_to_upload": list(self.trust_to_upload),
        }


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
    unique = dedupe(certs)
    if not unique:
        raise EmptyCertificateFile("no certificate was given", "give the certificate the CA returned")
    issuers = {id(p) for c in unique for p in unique if p is not c and may_have_issued(p, c)}
    candidates = [c for c in unique if id(c) not in issuers] or list(unique)
    # Prefer an end entity over a CA, and a CA over a self-signed root (CAPF leaves are CAs).
    leaf = min(candidates, key=lambda c: (is_ca(c), self_issued(c)))
    path = [leaf]
    remaining = [c for c in unique if c is not leaf]
    current = leaf
    while not self_issued(current):
        parent = next((p for p in remaining if may_have_issued(p, current)), None)
        if parent is None:
            _refuse_namesake(current, remaining)
            break
        path.append(parent)
        remaining.remove(parent)
        current = parent
    if remaining:
        others = ", ".join(describe(c) for c in remaining)
        if not self_issued(current):
            raise MissingIntermediate(
                f"the chain is incomplete: {describe(current)} was issued by "
                f"'{current.issuer.rfc4514_string()}', which is not in the files, and {others} "
                "does not connect to it",
                "add the missing intermediate CA certificate (--chain FILE), as the CA publishes it",
            )
        raise UnrelatedCertificate(
            f"the files hold certificates that are not part of this certificate's chain: {others}",
            "give only the node's certificate and its own chain (one node at a time)",
        )
    if len(path) > 1 and self_issued(path[-1]):
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
    client_auth_waived: bool = False,
    multi_server_nodes: Sequence[str] = (),
    keep_names: Sequence[str] = (),
) -> ValidatedCertificate:
    """Check ``leaf`` (signed from ``csr_pem`` for ``cert_type``) and its ``chain`` (any order).

    ``keep_names``: the names of the node's current certificate the configuration does not let go
    (the CSR step's ``names.keep``); the leaf must carry each.

    ``trusted_roots``: certificates already in the node's ``<type>-trust`` store; a chain may end
    at any of them. ``now``: the current time (a naive value is taken as UTC).
    ``client_auth_waived``: the configuration waived clientAuth for this type (tomcat only: see
    :mod:`adapters.ca.profiles`); ignored for a type whose profile does not allow it.
    ``multi_server_nodes``: for a multi-server certificate, the FQDNs of the nodes the cluster has
    now that it must cover; each must be among the leaf's SANs.
    Raises a :class:`PreflightError` subclass for the first problem found.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _validate(
                cert_type,
                csr_pem,
                leaf,
                chain,
                trusted_roots,
                _utc(now),
                client_auth_waived,
                multi_server_nodes,
                keep_names,
            )
    except DECODE_ERRORS as exc:
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
    client_auth_waived: bool = False,
    multi_server_nodes: Sequence[str] = (),
    keep_names: Sequence[str] = (),
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
        client_auth_waived=client_auth_waived,
        multi_server_nodes=multi_server_nodes,
        keep_names=keep_names,
    )


def validate_issued(
    cert_type: str,
    csr_pem: str,
    issued: Issued,
    *,
    trusted_roots: Sequence[x509.Certificate],
    now: datetime,
    client_auth_waived: bool = False,
    multi_server_nodes: Sequence[str] = (),
) -> ValidatedCertificate:
    """:func:`preflight` for a CA adapter's answer."""
    files = [("the certificate from the CA", issued.leaf_pem.encode("utf-8", "replace"))]
    files += [
        (f"chain certificate {i + 1} from the CA", p.encode("utf-8", "replace"))
        for i, p in enumerate(issued.chain_pems)
    ]
    return preflight(
        cert_type,
        csr_pem,
        files,
        trusted_roots=trusted_roots,
        now=now,
        client_auth_waived=client_auth_waived,
        multi_server_nodes=multi_server_nodes,
    )


def _validate(
    cert_type: str,
    csr_pem: str,
    leaf: x509.Certificate,
    chain: Sequence[x509.Certificate],
    trusted_roots: Sequence[x509.Certificate],
    now: datetime,
    client_auth_waived: bool = False,
    multi_server_nodes: Sequence[str] = (),
    keep_names: Sequence[str] = (),
) -> ValidatedCertificate:
    profile = profile_for(cert_type)
    if profile is None:
        raise UnknownCertType(
            f"unknown certificate type {cert_type!r}",
            "use one of " + ", ".join(sorted(_known_types())),
        )
    csr = _load_csr(csr_pem)
    what = f"the {profile.cert_type} certificate {describe(leaf)}"

    leaf_key, csr_key = public_key_der(leaf), public_key_der(csr)
    if is_ca(leaf) and leaf_key != csr_key:
        # Only CA certificates were given (a CAPF leaf is a CA too, but carries the CSR's key).
        raise NodeCertificateMissing(
            f"the files hold only CA certificates ({describe(leaf)} is a CA): the node's own "
            "certificate is not among them",
            "give the certificate the CA issued for the node (--cert), and its CA certificates with --chain",
        )
    _check_key(leaf, what)
    if self_issued(leaf) and signed_by(leaf, leaf):
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
    _checksubject_alt_names(leaf, csr, what)
    _check_multi_server(leaf, multi_server_nodes, what)
    _check_names_kept(leaf, keep_names, what)
    _check_validity(leaf, now, what, CertificateNotYetValid, CertificateExpired)
    _check_usages(leaf, profile.cert_type, what, client_auth_waived)

    path = _build_path(leaf, chain, trusted_roots, now)
    trusted_fps = {fingerprint(c) for c in trusted_roots}
    to_upload = [c for c in reversed(path[1:]) if fingerprint(c) not in trusted_fps]
    _check_same_name_in_trust(to_upload, trusted_roots, profile.cert_type)
    return ValidatedCertificate(
        cert_type=profile.cert_type,
        leaf_pem=pem(leaf),
        chain_pems=tuple(pem(c) for c in path[1:]),
        serial=leaf.serial_number,
        fingerprint_sha256=fingerprint(leaf),
        not_after=leaf.not_valid_after_utc,
        trust_to_upload=tuple(pem(c) for c in to_upload),
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
    except DECODE_ERRORS:
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
        algo = cert.signature_hash_algorithm
        bits = algo.digest_size * 8 if algo is not None else 0
        if bits < key.curve.key_size:
            strong = "SHA-256, SHA-384 or SHA-512" if key.curve.key_size <= 256 else "SHA-384 or SHA-512"
            raise WeakSignatureHash(
                f"{what} has a {key.curve.key_size}-bit EC key but is signed with "
                f"{algo.name.upper() if algo is not None else 'no hash'}: CUCM asks a hash at least as "
                "strong as the key",
                f"have the CA sign it with {strong} (an enterprise CA template's hash setting)",
            )
    else:
        raise KeyNotAllowed(
            f"{what} has a {type(key).__name__.removesuffix('PublicKey').lstrip('_')} key; "
            "CUCM supports RSA and ECDSA only",
            "generate the CSR on CUCM and have the CA sign it without changing the key",
        )


def _check_wildcard(leaf: x509.Certificate, what: str) -> None:
    cn = common_name(leaf.subject)
    names = list(dict.fromkeys([*([cn] if cn else []), *(n for _, n in subject_alt_names(leaf))]))
    names = [n for n in names if "*" in n]
    if names:
        raise WildcardCertificate(
            f"{what} is a wildcard certificate ({', '.join(names)})",
            "have the CA sign the node's own CSR, which names the node itself",
        )


def _check_node(leaf: x509.Certificate, csr: x509.CertificateSigningRequest, what: str) -> None:
    leaf_cn, csr_cn = common_name(leaf.subject), common_name(csr.subject)
    if leaf_cn is None or csr_cn is None:
        return  # nothing to compare; the SAN check decides
    if _host(leaf_cn) != _host(csr_cn):
        raise CertificateOfAnotherNode(
            f"{what} belongs to another node: it is issued to '{leaf_cn}', but the CSR is for '{csr_cn}'",
            f"give the certificate issued for {csr_cn} (check the file name and the --node option)",
        )


def _checksubject_alt_names(leaf: x509.Certificate, csr: x509.CertificateSigningRequest, what: str) -> None:
    leaf_sans, csr_sans = set(subject_alt_names(leaf)), set(subject_alt_names(csr))
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


def _check_multi_server(leaf: x509.Certificate, nodes: Sequence[str], what: str) -> None:
    if not nodes:
        return
    names = {n.casefold() for _, n in subject_alt_names(leaf)}
    missing = [n for n in nodes if n.casefold() not in names]
    if missing:
        raise MultiServerNodeMissing(
            f"{what} is a multi-server certificate that does not name {', '.join(missing)}, a node of "
            "the cluster now: CUCM would install it on the other nodes only",
            "generate a new multi-server CSR on the publisher (it names every node present) and have it "
            "signed; a certificate covers only the nodes present when its CSR was made",
        )


def _check_names_kept(leaf: x509.Certificate, keep: Sequence[str], what: str) -> None:
    from workflows.names import lost_names

    lost = lost_names(leaf, keep)
    if lost:
        raise NameLost(
            f"{what} lacks {', '.join(lost)}, which the node's current certificate carries. CUCM would "
            "accept it, and clients that reach the node by that name (Jabber, MRA, SIP trunks, SSO) "
            "would then fail their TLS name check",
            "have the CA sign a CSR that carries every name of the current certificate (a new run "
            "makes one), or, if the name may go, add it to drop_names in the cluster's configuration "
            "and start a new run",
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


def _check_usages(leaf: x509.Certificate, cert_type: str, what: str, client_auth_waived: bool) -> None:
    profile = profile_for(cert_type)
    assert profile is not None
    template = f"issue it with the CA profile for CUCM {cert_type} certificates"
    is_rsa = isinstance(leaf.public_key(), rsa.RSAPublicKey)
    required = profile.required_key_usage(is_rsa)
    issued_set = profile.key_usage_for(is_rsa)
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
            f"{template}: key usage {describe_key_usage(issued_set)}",
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
    required_eku = profile.required_eku(client_auth_waived=client_auth_waived)
    missing_eku = set(required_eku) - eku
    if missing_eku:
        fix = (
            f"{template}: extended key usage {describe_eku(profile.extended_key_usage)} "
            "(public ACME CAs no longer issue clientAuth: use an enterprise CA for this type)"
        )
        if profile.waivable and not client_auth_waived and missing_eku == {ExtendedKeyUsageOID.CLIENT_AUTH}:
            fix += (
                f"; or, if this cluster does without {profile.waivable}, waive it with "
                "tomcat_client_auth = false under the cluster in the configuration"
            )
        raise WrongExtendedKeyUsage(
            f"{what} lacks extended key usage {describe_eku(missing_eku)} "
            f"({cert_type} needs {describe_eku(required_eku)})",
            fix,
        )


def _check_same_name_in_trust(
    to_upload: Sequence[x509.Certificate], trusted: Sequence[x509.Certificate], cert_type: str
) -> None:
    """CUCM keeps one trust certificate per CN, and a certificate that does not start later than
    the one in place does not replace it: the upload "succeeds", the old CA stays, and the leaf
    upload then fails."""
    by_cn: dict[str, x509.Certificate] = {}
    for cert in trusted:
        cn = common_name(cert.subject)
        if cn is not None:
            by_cn.setdefault(cn.casefold(), cert)
    for cert in to_upload:
        cn = common_name(cert.subject)
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
    leaf_fp = fingerprint(leaf)
    unused = [c for c in dedupe(chain) if fingerprint(c) != leaf_fp]
    trusted_by_fp = {fingerprint(c): c for c in trusted}
    path = [leaf]
    current = leaf
    for _ in range(MAX_CHAIN_DEPTH):
        if current is not leaf and self_issued(current):
            if not signed_by(current, current):
                raise ChainSignatureInvalid(
                    f"the root {describe(current)} has an invalid self-signature (damaged or forged)",
                    "get the root certificate again from the CA, by a channel you trust",
                )
            break
        parent = next((p for p in unused if may_have_issued(p, current)), None)
        if parent is not None:
            unused.remove(parent)
        else:
            parent = next(
                (p for p in trusted_by_fp.values() if p not in path and may_have_issued(p, current)), None
            )
        if parent is None:
            if current is not leaf and fingerprint(current) in trusted_by_fp:
                break  # an intermediate the node already trusts, whose own issuer we do not have
            _refuse_namesake(current, unused)
            raise MissingIntermediate(
                f"the chain is incomplete: {describe(current)} was issued by "
                f"'{current.issuer.rfc4514_string()}', which is neither in the files nor in the "
                "node's trust store",
                "give the issuing CA's certificate (and the root) with --chain, "
                "or upload them to the node's trust store first",
            )
        if not signed_by(current, parent):
            raise ChainSignatureInvalid(
                f"{describe(current)} names '{current.issuer.rfc4514_string()}' as issuer, but that "
                "CA's key did not sign it (a different CA with the same name, or a damaged file)",
                "give the chain of the CA that actually issued the certificate",
            )
        if not is_ca(parent):
            raise NotACertificateAuthority(
                f"{describe(parent)} is in the chain but is not a CA certificate "
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
            + ", ".join(describe(c) for c in unused),
            "give only the node's certificate and its own chain",
        )
    for cert in path[1:]:
        _check_key(cert, f"the CA certificate {describe(cert)}")
        _check_validity(
            cert,
            now,
            f"the CA certificate {describe(cert)}",
            ChainCertificateExpired,
            ChainCertificateExpired,
        )
    return path


# --------------------------------------------------------------------------- helpers


def _refuse_namesake(child: x509.Certificate, given: Sequence[x509.Certificate]) -> None:
    """When no given certificate may have issued ``child`` but one bears its issuer's name, say so:
    the certificate is present and does not verify, which "missing" would hide."""
    namesake = next((p for p in given if p.subject == child.issuer), None)
    if namesake is None:
        return
    raise IssuerDoesNotVerify(
        f"{describe(child)} was issued by '{child.issuer.rfc4514_string()}', and the files hold a CA "
        f"certificate of that name ({describe(namesake)}, SHA-256 {fingerprint(namesake)[:16]}…), "
        "but it does not verify as the issuer: another key signed the certificate (an impostor, or "
        "that CA's older or newer certificate)",
        "give the certificate of the CA that actually issued it, as the CA publishes it, and check "
        "where the other one came from",
    )


def _utc(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _host(name: str) -> str:
    """The host part of a node name, the multi-SAN '-ms' suffix removed (a CA may drop it)."""
    host = name.strip().rstrip(".").casefold().split(".", 1)[0]
    return host.removesuffix("-ms").removesuffix("-ec")
