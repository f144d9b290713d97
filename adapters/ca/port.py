"""The certificate-authority port: the only CA module the workflows import.

A CA adapter turns a CSR into a signed certificate, now or later::

    ca.submit(csr_pem, cert_type="tomcat", node="cucm-pub", idempotency_key=key) -> Issued | Pending
    ca.poll(pending.token)                                                      -> Issued | Pending

``Pending.token`` is opaque and durable: the workflow records it and may call :meth:`CaPort.poll`
after a daemon restart, days later, on a new adapter instance built from the same configuration.

``idempotency_key`` names the request: the workflow passes :func:`csr_sha256` of the CSR and records
it in the effect's intent before submitting, so a process killed after the CA answered but before
the answer was recorded submits again with the same key. A submit with a key the CA has seen before
returns what that request produced (the same certificate, or the same pending request), never a
second certificate; a CA that cannot honour a key at worst issues a second certificate for the same
public key, never an error. Keys are 1 to 128 characters of ``A-Z a-z 0-9 _ -``
(:func:`check_idempotency_key`), so an adapter may use one as a file name or an HTTP header.

Errors, as a tree::

    CaError                     any failure the adapter could not classify (carries the detail)
    ├── CaRejected              permanent: the CA refused this request; ``text`` is the CA's reason.
    │                           Fix the CSR or the CA's policy; re-submitting the same CSR will not help.
    ├── CaUnreachable           transient: the CA could not be reached or timed out. Retry later.
    └── CaMisconfigured         permanent: the adapter's configuration is wrong; ``key`` names the
                                configuration key to fix (e.g. ``ca.command.argv``).

Messages never contain secrets (passwords, private keys, tokens of an authenticated session).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding


@dataclass(frozen=True)
class Issued:
    """A signed certificate. ``chain_pems`` lists intermediates then the root, as the CA returned
    them (the root may be absent when the CA does not return it); the workflow's pre-flight puts
    them in order and checks them."""

    leaf_pem: str
    chain_pems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pending:
    """The CA has the request but has not signed it yet.

    ``token`` identifies the request for :meth:`CaPort.poll`; ``retry_after`` (seconds) is the CA's
    hint for the next poll (``None``: the workflow's own poll interval); ``reason`` is shown to
    operators in ``status``, so it says what is being waited for.
    """

    token: str
    retry_after: float | None = None
    reason: str = ""


class CaError(Exception):
    """A CA request failed in a way the adapter could not classify further."""


class CaRejected(CaError):
    """The CA refused the request. Permanent: submitting the same CSR again will fail again."""

    def __init__(self, text: str, *, ca: str = "") -> None:
        self.text = text
        self.ca = ca
        where = f"CA {ca!r}" if ca else "the CA"
        super().__init__(
            f"{where} rejected the certificate request: {text or '(no reason given)'}. "
            "Fix the request or the CA's policy, then generate a new CSR."
        )


class CaUnreachable(CaError):
    """The CA could not be reached, or did not answer in time. Transient: retry later."""


class CaMisconfigured(CaError):
    """The adapter's configuration is wrong. Permanent until ``key`` is fixed in the config file."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"CA configuration {key!r}: {problem}")


@runtime_checkable
class CaPort(Protocol):
    """One certificate authority. ``name`` identifies it in status, audit and error messages."""

    name: str

    def submit(self, csr_pem: str, *, cert_type: str, node: str, idempotency_key: str) -> Issued | Pending:
        """Ask the CA to sign ``csr_pem`` for ``cert_type`` on ``node``; a request with an
        ``idempotency_key`` seen before returns that request's answer (see the module's text).

        Raises :class:`CaRejected`, :class:`CaUnreachable`, :class:`CaMisconfigured` or
        :class:`CaError`.
        """
        ...

    def poll(self, token: str) -> Issued | Pending:
        """Ask again about a request that was pending. Raises as :meth:`submit` does."""
        ...


DECODE_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    KeyError,  # cryptography 48, for a name attribute with an unknown string tag
    UnsupportedAlgorithm,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
    x509.InvalidVersion,
)
"""What ``cryptography`` raises for damaged certificates and CSRs (several are not ValueErrors)."""


def csr_sha256(csr_pem: str) -> str:
    """The CSR's identity: SHA-256 (lowercase hex) of its DER encoding, so line endings and PEM
    wrapping do not change it. The workflows pass it as the idempotency key; the manual CA uses it as
    its token.

    Raises ``ValueError`` when ``csr_pem`` is not a PEM certificate request.
    """
    try:
        der = x509.load_pem_x509_csr(csr_pem.encode("ascii", "replace")).public_bytes(Encoding.DER)
    except DECODE_ERRORS as exc:
        raise ValueError(f"not a PEM certificate request ({type(exc).__name__})") from None
    return hashlib.sha256(der).hexdigest()


_KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")


def check_idempotency_key(key: str) -> str:
    """``key`` unchanged when it is 1 to 128 characters of ``A-Z a-z 0-9 _ -``; else ``ValueError``."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError(f"idempotency key {key!r} is not 1 to 128 characters of A-Z a-z 0-9 _ -")
    return key


__all__ = [
    "CaError",
    "CaMisconfigured",
    "CaPort",
    "CaRejected",
    "CaUnreachable",
    "Issued",
    "Pending",
    "check_idempotency_key",
    "csr_sha256",
]
