"""The server side of NTLMv2 over HTTP, as IIS runs it for Windows authentication ([MS-NLMP]).

Enough of [MS-NLMP] to check a real client: the CHALLENGE_MESSAGE (2.2.1.2) with the target-info
AV pairs, and the AUTHENTICATE_MESSAGE (2.2.1.3) verified by recomputing NTProofStr (3.3.2). The
channel binding (MsvAvChannelBindings, the ``tls-server-end-point`` hash of RFC 5929) is checked
as Extended Protection for Authentication does. NTLMv1 and LM answers are refused, as a domain at
LmCompatibilityLevel 5 refuses them. Not modelled: the MIC (it needs the session key exchange),
signing and sealing, SPNEGO-wrapped tokens (Kerberos).

Standalone: ``hashlib`` has no MD4 on OpenSSL 3, so MD4 (RFC 1320) is here too.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import time

SIGNATURE = b"NTLMSSP\x00"
NEGOTIATE, CHALLENGE, AUTHENTICATE = 1, 2, 3

# NegotiateFlags [MS-NLMP 2.2.2.5]
UNICODE = 0x00000001
REQUEST_TARGET = 0x00000004
SIGN = 0x00000010
SEAL = 0x00000020
NTLM = 0x00000200
ALWAYS_SIGN = 0x00008000
TARGET_TYPE_DOMAIN = 0x00010000
EXTENDED_SESSIONSECURITY = 0x00080000
TARGET_INFO = 0x00800000
VERSION = 0x02000000
KEY_128 = 0x20000000
KEY_EXCH = 0x40000000
KEY_56 = 0x80000000
_ECHOED = UNICODE | SIGN | SEAL | ALWAYS_SIGN | EXTENDED_SESSIONSECURITY | KEY_128 | KEY_EXCH | KEY_56
_ALWAYS = UNICODE | REQUEST_TARGET | NTLM | TARGET_TYPE_DOMAIN | TARGET_INFO | VERSION

# AV pair ids [MS-NLMP 2.2.2.1]
AV_EOL, AV_NB_COMPUTER, AV_NB_DOMAIN, AV_DNS_COMPUTER, AV_DNS_DOMAIN = 0, 1, 2, 3, 4
AV_TIMESTAMP, AV_CHANNEL_BINDINGS = 7, 10

_WINDOWS_VERSION = struct.pack("<BBHxxxB", 10, 0, 20348, 15)  # Windows Server 2022, NTLM rev 15


class NtlmError(ValueError):
    """A malformed or failed NTLM exchange: the server answers 401 again."""


def md4(data: bytes) -> bytes:
    """RFC 1320."""

    def rotl(x: int, n: int) -> int:
        x &= 0xFFFFFFFF
        return ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF

    msg = data + b"\x80" + b"\x00" * ((55 - len(data)) % 64) + struct.pack("<Q", len(data) * 8)
    a, b, c, d = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476
    for off in range(0, len(msg), 64):
        x = struct.unpack("<16I", msg[off : off + 64])
        aa, bb, cc, dd = a, b, c, d
        for i in range(16):
            k, s = i, (3, 7, 11, 19)[i % 4]
            f = (b & c) | (~b & d)
            a, b, c, d = d, rotl(a + f + x[k], s), b, c
        for i in range(16):
            k, s = (i % 4) * 4 + i // 4, (3, 5, 9, 13)[i % 4]
            g = (b & c) | (b & d) | (c & d)
            a, b, c, d = d, rotl(a + g + x[k] + 0x5A827999, s), b, c
        for i in range(16):
            k = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)[i]
            s = (3, 9, 11, 15)[i % 4]
            h = b ^ c ^ d
            a, b, c, d = d, rotl(a + h + x[k] + 0x6ED9EBA1, s), b, c
        a, b, c, d = (
            (a + aa) & 0xFFFFFFFF,
            (b + bb) & 0xFFFFFFFF,
            (c + cc) & 0xFFFFFFFF,
            (d + dd) & 0xFFFFFFFF,
        )
    return struct.pack("<4I", a, b, c, d)


def nt_hash(password: str) -> bytes:
    return md4(password.encode("utf-16-le"))


def _av_pairs(pairs: list[tuple[int, bytes]]) -> bytes:
    out = b"".join(struct.pack("<HH", av, len(v)) + v for av, v in pairs)
    return out + struct.pack("<HH", AV_EOL, 0)


def _read_av_pairs(data: bytes) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    pos = 0
    while pos + 4 <= len(data):
        av, length = struct.unpack_from("<HH", data, pos)
        if av == AV_EOL:
            break
        found[av] = data[pos + 4 : pos + 4 + length]
        pos += 4 + length
    return found


def _field(msg: bytes, at: int) -> bytes:
    length, _max, offset = struct.unpack_from("<HHI", msg, at)
    if offset + length > len(msg):
        raise NtlmError("field points past the message")
    return msg[offset : offset + length]


def _filetime() -> bytes:
    return struct.pack("<Q", int((time.time() + 11644473600) * 10_000_000))


def channel_binding_hash(application_data: bytes) -> bytes:
    """MD5 of a gss_channel_bindings_struct with no addresses ([MS-NLMP 3.1.5.1.2], RFC 2744)."""
    packed = struct.pack("<IIIII", 0, 0, 0, 0, len(application_data)) + application_data
    return hashlib.md5(packed, usedforsecurity=False).digest()


class NtlmAcceptor:
    """One connection's NTLM handshake. ``users`` maps a lower-case user name to its password."""

    def __init__(
        self,
        *,
        users: dict[str, str],
        domain: str,
        computer: str,
        dns_domain: str,
        tls_end_point: bytes | None,
        epa: str,
    ) -> None:
        self.users = users
        self.domain = domain
        self.computer = computer
        self.dns_domain = dns_domain
        self.tls_end_point = tls_end_point
        self.epa = epa
        self._challenge: bytes | None = None
        self._target_info = b""
        self.user: str | None = None

    def step(self, token: bytes) -> bytes | None:
        """Answer a client token: the CHALLENGE to send back, or ``None`` once authenticated
        (``self.user`` is then set). Raises :class:`NtlmError` when authentication fails."""
        if len(token) < 12 or token[:8] != SIGNATURE:
            raise NtlmError("not an NTLMSSP token")
        (kind,) = struct.unpack_from("<I", token, 8)
        if kind == NEGOTIATE:
            return self._challenge_for(token)
        if kind == AUTHENTICATE and self._challenge is not None:
            self._authenticate(token)
            return None
        raise NtlmError("unexpected NTLM message")

    def _challenge_for(self, negotiate: bytes) -> bytes:
        (client_flags,) = struct.unpack_from("<I", negotiate, 12) if len(negotiate) >= 16 else (0,)
        flags = (client_flags & _ECHOED) | _ALWAYS
        self._challenge = os.urandom(8)
        target = self.domain.encode("utf-16-le")
        self._target_info = _av_pairs(
            [
                (AV_NB_DOMAIN, self.domain.encode("utf-16-le")),
                (AV_NB_COMPUTER, self.computer.encode("utf-16-le")),
                (AV_DNS_DOMAIN, self.dns_domain.encode("utf-16-le")),
                (AV_DNS_COMPUTER, f"{self.computer.lower()}.{self.dns_domain}".encode("utf-16-le")),
                (AV_TIMESTAMP, _filetime()),
            ]
        )
        header = 56
        return (
            SIGNATURE
            + struct.pack("<I", CHALLENGE)
            + struct.pack("<HHI", len(target), len(target), header)
            + struct.pack("<I", flags)
            + self._challenge
            + b"\x00" * 8
            + struct.pack("<HHI", len(self._target_info), len(self._target_info), header + len(target))
            + _WINDOWS_VERSION
            + target
            + self._target_info
        )

    def _authenticate(self, msg: bytes) -> None:
        assert self._challenge is not None
        if len(msg) < 64:
            raise NtlmError("AUTHENTICATE message too short")
        nt_response = _field(msg, 20)
        domain = _field(msg, 28).decode("utf-16-le", "replace")
        user = _field(msg, 36).decode("utf-16-le", "replace")
        if len(nt_response) <= 24:
            # Anonymous (empty) or NTLMv1 (24 bytes): refused, as at LmCompatibilityLevel 5.
            raise NtlmError("NTLMv1 and anonymous logons are refused")
        if domain and domain.upper() not in (self.domain.upper(), self.dns_domain.upper()):
            raise NtlmError("unknown domain")
        password = self.users.get(user.lower())
        if password is None:
            raise NtlmError("unknown user")
        owf = hmac.new(nt_hash(password), (user.upper() + domain).encode("utf-16-le"), "md5").digest()
        proof, blob = nt_response[:16], nt_response[16:]
        if not hmac.compare_digest(proof, hmac.new(owf, self._challenge + blob, "md5").digest()):
            raise NtlmError("wrong password")
        bindings = _read_av_pairs(blob[28:]).get(AV_CHANNEL_BINDINGS, b"\x00" * 16)
        given = bindings.strip(b"\x00") != b""
        if self.epa != "off" and self.tls_end_point is not None and (given or self.epa == "required"):
            expected = channel_binding_hash(b"tls-server-end-point:" + self.tls_end_point)
            if not hmac.compare_digest(bindings, expected):
                raise NtlmError("channel binding does not match this TLS connection")
        self._challenge = None
        self.user = user
