"""What a person must see before trusting a node: its TLS chain and its SSH host key.

Discovery uses these before any file records trust. :func:`presented_chain` and
:func:`host_key` connect **without verifying anything**: what they return is for display, for
comparison with a fingerprint the operator gives, and for writing only once the operator has
confirmed it. Nothing authenticates over these connections; no credential is sent.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import ssl
from dataclasses import dataclass

import paramiko

from adapters.cucm.port import CucmUnreachable


@dataclass(frozen=True)
class HostKey:
    """A node's SSH host key as offered, and its fingerprint as ``ssh-keygen -l`` prints it."""

    key_type: str
    """``ssh-rsa``, ``ecdsa-sha2-nistp256``...: the known_hosts key type."""
    base64: str
    bits: int

    @property
    def fingerprint(self) -> str:
        """``SHA256:`` and the unpadded base64 of the key blob's SHA-256, OpenSSH's default form."""
        digest = hashlib.sha256(base64.b64decode(self.base64)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")

    @property
    def label(self) -> str:
        """OpenSSH's short name for the algorithm, as ``ssh-keygen -l`` ends its line: ``(RSA)``."""
        kinds = {"ssh-rsa": "RSA", "ssh-ed25519": "ED25519", "ssh-dss": "DSA"}
        return kinds.get(self.key_type, "ECDSA" if self.key_type.startswith("ecdsa") else self.key_type)

    def describe(self, host: str) -> str:
        """The line ``ssh-keygen -l`` prints for this key: ``2048 SHA256:... host (RSA)``."""
        return f"{self.bits} {self.fingerprint} {host} ({self.label})"

    def known_hosts_line(self, names: list[str], port: int) -> str:
        """An OpenSSH known_hosts line for ``names`` (address and FQDN) on ``port``."""
        hosts = ",".join(n if port == 22 else f"[{n}]:{port}" for n in dict.fromkeys(names))
        return f"{hosts} {self.key_type} {self.base64}"


def normalise_fingerprint(text: str) -> str:
    """``SHA256:abc`` or ``abc`` -> ``SHA256:abc``; hex SHA-256 (with or without colons) stays hex,
    upper case, colon-free, for TLS fingerprints."""
    value = text.strip()
    if value.upper().startswith("SHA256:"):
        return "SHA256:" + value[7:].rstrip("=")
    bare = value.replace(":", "")
    if len(bare) == 64 and all(c in "0123456789abcdefABCDEF" for c in bare):
        return bare.upper()
    return "SHA256:" + value.rstrip("=")


def host_key(address: str, port: int, *, timeout: float = 15.0) -> HostKey:
    """The host key ``address:port`` offers, read from the key exchange alone (no authentication)."""
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
    except OSError as error:
        raise CucmUnreachable(f"SSH to {address}:{port}: no connection ({error})") from error
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = timeout
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
        return HostKey(key.get_name(), key.get_base64(), key.get_bits())
    except (paramiko.SSHException, EOFError, OSError) as error:
        raise CucmUnreachable(f"SSH to {address}:{port}: no key exchange ({error})") from error
    finally:
        transport.close()


def tls_fingerprint(der: bytes) -> str:
    """SHA-256 of a certificate's DER, upper-case hex without colons (``openssl x509 -fingerprint
    -sha256`` prints the same digits with colons)."""
    return hashlib.sha256(der).hexdigest().upper()


def presented_chain(
    address: str, port: int, server_name: str | None = None, *, timeout: float = 10.0
) -> list[bytes]:
    """The certificates ``address:port`` presents, leaf first, as DER: unverified, for display."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((address, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=server_name or None) as tls,
        ):
            leaf = tls.getpeercert(binary_form=True)
            chain = _unverified_chain(tls)
    except (OSError, ssl.SSLError) as error:
        raise CucmUnreachable(f"TLS on {address}:{port}: no handshake ({error})") from error
    if not chain and leaf:
        chain = [leaf]
    return chain


def _unverified_chain(tls: ssl.SSLSocket) -> list[bytes]:
    # Public from Python 3.13; 3.11 and 3.12 have it on the underlying object only.
    getter = getattr(tls, "get_unverified_chain", None)
    if getter is None:
        getter = getattr(getattr(tls, "_sslobj", None), "get_unverified_chain", None)
    if getter is None:
        return []
    out: list[bytes] = []
    for cert in getter() or []:
        out.append(cert if isinstance(cert, bytes) else cert.public_bytes(ssl._ssl.ENCODING_DER))  # type: ignore[attr-defined]
    return out


def verify_tls(
    address: str, port: int, server_name: str, ca_bundle: str, *, timeout: float = 10.0
) -> str | None:
    """None when ``address:port`` presents a chain that verifies for ``server_name`` against
    ``ca_bundle``; else OpenSSL's reason."""
    context = ssl.create_default_context(cafile=ca_bundle)
    try:
        with (
            socket.create_connection((address, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=server_name),
        ):
            return None
    except ssl.SSLCertVerificationError as error:
        return str(error.verify_message or error)
    except (OSError, ssl.SSLError) as error:
        raise CucmUnreachable(f"TLS on {address}:{port}: no handshake ({error})") from error
