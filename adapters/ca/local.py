"""A certificate authority kept in a folder: for labs, the demo and tests.

Layout of ``folder`` (0700, created on first use; every file 0600, written to a temporary file
with its final mode and renamed, so a crash never leaves a half-written or world-readable key)::

    root.key  root.pem                  self-signed root, CA:TRUE
    intermediate.key  intermediate.pem  signed by the root; signs the leaves
    issued/<idempotency key>.pem        every leaf issued, by the request's idempotency key
    .lock                               serialises processes sharing the folder

The index makes :meth:`LocalCA.submit` idempotent, across processes and instances: a key seen before
returns the certificate issued for it, so a crash between signing and recording the answer costs
nothing. The workflows' key is the CSR's SHA-256 (:func:`csr_sha256`, also the default), so the same
CSR always gets the same certificate; a key reused for another public key is refused. Leaves carry the
CSR's subject and SANs unchanged (CUCM refuses a certificate whose SANs differ from its CSR's) and
the key usages of :mod:`adapters.ca.profiles`.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from adapters.ca.port import (
    DECODE_ERRORS,
    CaMisconfigured,
    CaRejected,
    Issued,
    Pending,
    check_idempotency_key,
    csr_sha256,
)
from adapters.ca.profiles import CertProfile, profile_for

_CONFIG_KEY = "ca.local.folder"
EC_SIGNING_HASH: dict[str, type[hashes.SHA256 | hashes.SHA384]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
}
"""The hash a leaf on each curve CUCM offers is signed with: at least as strong as the key (SG14)."""


def signing_hash(key: object) -> hashes.SHA256 | hashes.SHA384:
    """SHA-256 for RSA and P-256 leaves, SHA-384 for P-384 ones."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        return EC_SIGNING_HASH[key.curve.name]()
    return hashes.SHA256()


_CLOCK_SKEW = timedelta(minutes=5)
"""Leaves start this far in the past so a node whose clock lags a little accepts them at once."""


class LocalCA:
    """Root + intermediate CA in ``folder``; issues leaves valid ``validity_days`` days.

    ``key_size`` is the RSA size of the CA keys (2048 by default: mixed-mode phones may refuse
    larger CA keys). ``clock`` returns the current time (aware, UTC); tests inject it.
    Raises :class:`CaMisconfigured` when the folder or its keys are readable by other users or do
    not belong together.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        validity_days: int = 365,
        key_size: int = 2048,
        name: str = "local",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if validity_days < 1:
            raise CaMisconfigured("ca.local.validity_days", f"must be at least 1 (got {validity_days})")
        self.name = name
        self.folder = Path(folder)
        self.validity = timedelta(days=validity_days)
        self._key_size = key_size
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._prepare_folder()
        with self._locked():
            self._root_key, self._root, self._int_key, self._int = self._load_or_create()
        self._chain_pems = (_pem(self._int), _pem(self._root))

    # ------------------------------------------------------------------ public

    @property
    def root_pem(self) -> str:
        return self._chain_pems[1]

    @property
    def chain_pems(self) -> tuple[str, ...]:
        """Intermediate then root, as :class:`Issued` returns them."""
        return self._chain_pems

    def submit(
        self, csr_pem: str, *, cert_type: str, node: str, idempotency_key: str | None = None
    ) -> Issued | Pending:
        """Sign ``csr_pem`` now, or return what was issued before for ``idempotency_key`` (by
        default the CSR's SHA-256)."""
        if idempotency_key is not None:
            check_idempotency_key(idempotency_key)
        profile = profile_for(cert_type)
        if profile is None:
            raise CaRejected(f"no certificate profile for type {cert_type!r}", ca=self.name)
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode("ascii", "replace"))
            digest = csr_sha256(csr_pem)
            signature_ok = csr.is_signature_valid
            key = csr.public_key()
            # Decoded lazily: read now what signing copies, so damage is reported as a rejection.
            _ = csr.subject.rfc4514_string(), list(csr.extensions)
        except DECODE_ERRORS as exc:
            raise CaRejected(
                f"unreadable certificate request for {node} ({type(exc).__name__})", ca=self.name
            ) from None
        if not signature_ok:
            raise CaRejected(f"the request for {node} has an invalid signature", ca=self.name)
        if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise CaRejected(f"the request for {node} has a key type other than RSA or EC", ca=self.name)
        if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in EC_SIGNING_HASH:
            raise CaRejected(
                f"the request for {node} has an EC key on {key.curve.name}; CUCM makes P-256 and P-384 "
                "keys only: generate the CSR on CUCM",
                ca=self.name,
            )
        target = self.folder / "issued" / f"{idempotency_key or digest}.pem"
        with self._locked():
            if target.exists():
                before = target.read_text("ascii")
                if x509.load_pem_x509_certificate(before.encode("ascii")).public_key() != key:
                    raise CaRejected(
                        f"idempotency key {target.stem} was used before for another public key "
                        f"than {node}'s request: give each request its own key",
                        ca=self.name,
                    )
                return Issued(before, self._chain_pems)
            leaf = self._sign(csr, profile, isinstance(key, rsa.RSAPublicKey))
            _write_atomic(target, _pem(leaf).encode("ascii"))
        return Issued(_pem(leaf), self._chain_pems)

    def poll(self, token: str) -> Issued | Pending:
        # submit never answers Pending, so no token of ours can exist.
        raise CaRejected(f"the local CA signs at once and has no pending request {token!r}", ca=self.name)

    # ------------------------------------------------------------------ signing

    def _sign(
        self, csr: x509.CertificateSigningRequest, profile: CertProfile, is_rsa: bool
    ) -> x509.Certificate:
        now = self._clock()
        not_after = min(now + self.validity, self._int.not_valid_after_utc)
        usages = profile.key_usage_for(is_rsa)
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self._int.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())  # 159 random bits
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(not_after)
            .add_extension(
                x509.BasicConstraints(
                    ca=profile.is_ca, path_length=profile.path_length if profile.is_ca else None
                ),
                critical=True,
            )
            .add_extension(_key_usage(usages), critical=True)
            .add_extension(x509.ExtendedKeyUsage(list(profile.extended_key_usage)), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._int_key.public_key()), critical=False
            )
        )
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            # RFC 5280: SAN is critical when the subject is empty.
            builder = builder.add_extension(san.value, critical=len(csr.subject) == 0)
        except x509.ExtensionNotFound:
            pass
        return builder.sign(self._int_key, signing_hash(csr.public_key()))

    # ------------------------------------------------------------------ folder

    def _prepare_folder(self) -> None:
        try:
            self.folder.parent.mkdir(parents=True, exist_ok=True)
            for folder in (self.folder, self.folder / "issued"):
                try:
                    # mkdir's mode is only narrowed by the umask, so the folder is never wider than 0700.
                    folder.mkdir(mode=0o700)
                except FileExistsError:
                    _refuse_if_shared(folder, "chmod 700")
        except OSError as exc:
            raise CaMisconfigured(_CONFIG_KEY, f"cannot create {self.folder}: {exc.strerror}") from exc

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def _load_or_create(
        self,
    ) -> tuple[rsa.RSAPrivateKey, x509.Certificate, rsa.RSAPrivateKey, x509.Certificate]:
        root = self._load_pair("root")
        fresh_root = root is None
        if root is None:
            root = self._create_root()
        intermediate = None if fresh_root else self._load_pair("intermediate")
        if intermediate is None:
            intermediate = self._create_intermediate(*root)
        try:
            intermediate[1].verify_directly_issued_by(root[1])
        except (InvalidSignature, ValueError, TypeError) as exc:
            raise CaMisconfigured(
                _CONFIG_KEY,
                f"{self.folder}/intermediate.pem was not issued by root.pem: "
                "restore the pair, or empty the folder to start a new CA",
            ) from exc
        return (*root, *intermediate)

    def _load_pair(self, stem: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate] | None:
        key_path, cert_path = self.folder / f"{stem}.key", self.folder / f"{stem}.pem"
        # The certificate is written after its key, so a lone key is an interrupted creation.
        if not cert_path.exists():
            return None
        if not key_path.exists():
            raise CaMisconfigured(
                _CONFIG_KEY, f"{cert_path} has no private key {key_path.name}: restore it or empty the folder"
            )
        _refuse_if_shared(key_path, "chmod 600")
        try:
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except (ValueError, TypeError) as exc:
            raise CaMisconfigured(
                _CONFIG_KEY, f"{stem}.key or {stem}.pem in {self.folder} is unreadable: restore them"
            ) from exc
        if not isinstance(key, rsa.RSAPrivateKey) or key.public_key() != cert.public_key():
            raise CaMisconfigured(_CONFIG_KEY, f"{key_path} does not match {cert_path}: restore the pair")
        return key, cert

    def _create_root(self) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=self._key_size)
        # CUCM keeps one trust certificate per CN, so every CA folder gets names of its own.
        name = _ca_name(f"cucm-renew local root CA {secrets.token_hex(4)}")
        now = self._clock()
        cert = (
            _ca_builder(name, name, key.public_key(), now, timedelta(days=3650), path_length=None)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        self._store_pair("root", key, cert)
        return key, cert

    def _create_intermediate(
        self, root_key: rsa.RSAPrivateKey, root: x509.Certificate
    ) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=self._key_size)
        name = _ca_name(f"cucm-renew local issuing CA {secrets.token_hex(4)}")
        now = self._clock()
        # Path length 1, not 0: the CAPF certificate we issue is itself a CA (it signs phone LSCs).
        cert = (
            _ca_builder(name, root.subject, key.public_key(), now, timedelta(days=1825), path_length=1)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False
            )
            .sign(root_key, hashes.SHA256())
        )
        self._store_pair("intermediate", key, cert)
        return key, cert

    def _store_pair(self, stem: str, key: rsa.RSAPrivateKey, cert: x509.Certificate) -> None:
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_atomic(self.folder / f"{stem}.key", key_pem)
        _write_atomic(self.folder / f"{stem}.pem", _pem(cert).encode("ascii"))


# ---------------------------------------------------------------------- helpers


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _ca_name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cucm-renew"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: rsa.RSAPublicKey,
    now: datetime,
    lifetime: timedelta,
    *,
    path_length: int | None,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_key_usage({"key_cert_sign", "crl_sign"}), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(names: frozenset[str] | set[str]) -> x509.KeyUsage:
    flags = {
        name: name in names
        for name in (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
        )
    }
    return x509.KeyUsage(**flags, encipher_only=False, decipher_only=False)


def _refuse_if_shared(path: Path, fix: str) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise CaMisconfigured(
            _CONFIG_KEY, f"{path} is accessible to other users (mode {mode:04o}): run `{fix} {path}`"
        )


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
