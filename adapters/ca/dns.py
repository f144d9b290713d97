"""Publishing ACME DNS-01 challenge records: RFC 2136 dynamic updates with TSIG, or a hook program.

A publisher adds and removes one TXT string at ``_acme-challenge.<name>`` and says whether that
string can be seen yet. The ACME adapter answers a challenge only once the record is visible: an
answered challenge that the CA's resolver cannot confirm is invalid for good, and the order with it.

Several TXT strings may share one name (two orders, or a name and its wildcard), so records are
added and removed by value, never by replacing the whole set.

Errors are the CA port's: a refused TSIG key or zone is :class:`CaMisconfigured` naming the key to
fix; a server that cannot be reached is :class:`CaUnreachable`. No message holds the TSIG secret.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.tsig
import dns.tsigkeyring
import dns.update

from adapters.ca.port import CaError, CaMisconfigured, CaUnreachable

TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1")
"""What ``tsig_algorithm`` accepts (RFC 8945; hmac-md5 is left out on purpose)."""

_PASSED_FROM_OUR_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
_STDERR_SHOWN = 1000


class Dns01Publisher(Protocol):
    def add(self, name: str, value: str) -> None: ...

    def remove(self, name: str, value: str) -> None: ...

    def visible(self, name: str, value: str) -> bool:
        """Whether ``value`` is served at ``name`` by the servers the CA is expected to ask."""
        ...


def _fqdn(name: str) -> dns.name.Name:
    return dns.name.from_text(name.rstrip(".") + ".")


def _parse_server(text: str, default_port: int = 53) -> tuple[str, int]:
    """``"192.0.2.1"``, ``"192.0.2.1:5353"`` or ``"[2001:db8::1]:53"`` → (address, port)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, default_port


def _served(servers: Sequence[tuple[str, int]], name: str, value: str, timeout: float) -> bool:
    """True when every server answers ``value`` among the TXT strings at ``name``.

    Asked directly (no resolver cache: a cached negative answer would hide the record for its TTL).
    """
    query = dns.message.make_query(_fqdn(name), dns.rdatatype.TXT)
    for host, port in servers:
        try:
            answer, _tcp = dns.query.udp_with_fallback(query, host, port=port, timeout=timeout)
        except (OSError, dns.exception.DNSException):
            return False
        strings = {
            b"".join(rdata.strings).decode("ascii", "replace")
            for rrset in answer.answer
            if rrset.rdtype == dns.rdatatype.TXT
            for rdata in rrset
        }
        if value not in strings:
            return False
    return True


@dataclass
class Rfc2136Publisher:
    """Dynamic updates (RFC 2136) signed with TSIG (RFC 8945), sent over TCP to the zone's primary.

    ``key`` is the configuration prefix (``ca.NAME.dns``) that error messages name.
    """

    server: str
    zone: str
    tsig_name: str
    tsig_secret: str = field(repr=False)
    tsig_algorithm: str = "hmac-sha256"
    port: int = 53
    ttl: int = 60
    timeout: float = 10.0
    key: str = "ca.acme.dns"
    check_servers: tuple[tuple[str, int], ...] = ()
    """Where ``visible`` looks; by default the server the updates go to."""

    def __post_init__(self) -> None:
        if self.tsig_algorithm not in TSIG_ALGORITHMS:
            raise CaMisconfigured(
                f"{self.key}.tsig_algorithm",
                f"unknown TSIG algorithm {self.tsig_algorithm!r}; use one of: {', '.join(TSIG_ALGORITHMS)}",
            )
        try:
            self._keyring = dns.tsigkeyring.from_text(
                {_fqdn(self.tsig_name).to_text(): (self.tsig_algorithm, self.tsig_secret)}
            )
        except (ValueError, TypeError, dns.exception.DNSException):
            # binascii.Error is a ValueError; its text could quote the secret, so it is not shown.
            raise CaMisconfigured(
                f"{self.key}.tsig_secret", "the TSIG secret is not base64 (as tsig-keygen prints it)"
            ) from None
        self._zone = _fqdn(self.zone)

    def _where(self) -> str:
        return f"DNS server {self.server}:{self.port}"

    def _update(self, name: str, value: str, *, add: bool) -> None:
        owner = _fqdn(name)
        if not owner.is_subdomain(self._zone):
            raise CaMisconfigured(
                f"{self.key}.zone",
                f"the challenge record {owner.to_text()} is not inside zone {self._zone.to_text()}: set "
                "zone to the zone that holds the certificate's names",
            )
        update = dns.update.UpdateMessage(
            self._zone,
            keyring=self._keyring,
            keyname=_fqdn(self.tsig_name),
            keyalgorithm=self.tsig_algorithm,
        )
        if add:
            update.add(owner, self.ttl, "TXT", f'"{value}"')
        else:
            update.delete(owner, "TXT", f'"{value}"')
        key_name = _fqdn(self.tsig_name).to_text()
        try:
            response = dns.query.tcp(update, self.server, port=self.port, timeout=self.timeout)
        except dns.tsig.PeerBadKey:
            raise CaMisconfigured(
                f"{self.key}.tsig_name",
                f"{self._where()} refused TSIG key {key_name} (BADKEY): the key name is unknown to the "
                f"server, or the key may not update TXT records at {owner.to_text()}",
            ) from None
        except (dns.tsig.PeerBadSignature, dns.tsig.BadSignature, dns.tsig.PeerBadTruncation):
            raise CaMisconfigured(
                f"{self.key}.tsig_secret",
                f"{self._where()} refused the signature of TSIG key {key_name} (BADSIG): the secret "
                "differs from the server's, or the algorithm does",
            ) from None
        except dns.tsig.PeerBadTime:
            raise CaMisconfigured(
                f"{self.key}.server",
                f"{self._where()} refused the update's time (BADTIME): set this host's clock",
            ) from None
        except dns.exception.FormError as exc:
            # Knot answers an update for a zone it does not serve without signing it.
            raise CaMisconfigured(
                f"{self.key}.zone",
                f"{self._where()} gave a malformed answer ({exc}); it may not serve zone "
                f"{self._zone.to_text()}",
            ) from None
        except dns.exception.Timeout:
            raise CaUnreachable(f"{self._where()} did not answer within {self.timeout:g} s") from None
        except OSError as exc:
            raise CaUnreachable(f"{self._where()}: {exc.strerror or exc}") from None
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR:
            return
        text = dns.rcode.to_text(rcode)
        if rcode in (dns.rcode.NOTAUTH, dns.rcode.NOTZONE):
            raise CaMisconfigured(
                f"{self.key}.zone",
                f"{self._where()} is not the primary of zone {self._zone.to_text()} ({text})",
            )
        if rcode == dns.rcode.REFUSED:
            raise CaMisconfigured(
                f"{self.key}.tsig_name",
                f"{self._where()} refused the update ({text}): allow key {key_name} to update TXT "
                f"records at {owner.to_text()}",
            )
        if rcode == dns.rcode.SERVFAIL:
            raise CaUnreachable(f"{self._where()} failed the update (SERVFAIL)")
        raise CaError(f"{self._where()} answered the update with {text}")

    def add(self, name: str, value: str) -> None:
        self._update(name, value, add=True)

    def remove(self, name: str, value: str) -> None:
        self._update(name, value, add=False)

    def visible(self, name: str, value: str) -> bool:
        servers = self.check_servers or ((self.server, self.port),)
        return _served(servers, name, value, self.timeout)


@dataclass
class HookPublisher:
    """Runs ``argv + ["add"|"remove", name, value]`` for any other DNS provider.

    ``name`` is the record's full name with a trailing dot, ``value`` the TXT string. The program
    returns once the provider accepted the change. Exit 0: done; 3: the provider is unreachable, try
    later; 4: misconfigured (stderr says what); anything else: an error, shown with stderr.

    ``visible`` asks ``check_servers`` directly when given (the zone's authoritative servers), else
    this host's resolver.
    """

    argv: tuple[str, ...]
    timeout: float = 60.0
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    key: str = "ca.acme.dns"
    check_servers: tuple[tuple[str, int], ...] = ()
    check_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not self.argv or not all(isinstance(a, str) and a for a in self.argv):
            raise CaMisconfigured(f"{self.key}.argv", "must be a non-empty list of non-empty strings")

    def _run(self, action: str, name: str, value: str) -> None:
        env = {k: v for k, v in os.environ.items() if k in _PASSED_FROM_OUR_ENV}
        env.update(self.env)
        argv = [*self.argv, action, _fqdn(name).to_text(), value]
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,  # a timeout stops the hook's children too
                text=True,
                errors="replace",
            )
        except OSError as exc:
            raise CaMisconfigured(
                f"{self.key}.argv", f"cannot run {self.argv[0]!r}: {exc.strerror or exc}"
            ) from None
        try:
            _out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise CaUnreachable(
                f"DNS hook {self.argv[0]} {action} did not finish within {self.timeout:g} s; it was stopped"
            ) from None
        why = err.strip()[-_STDERR_SHOWN:] or "(no message on stderr)"
        if proc.returncode == 0:
            return
        if proc.returncode == 3:
            raise CaUnreachable(f"DNS hook {self.argv[0]} {action}: {why}")
        if proc.returncode == 4:
            raise CaMisconfigured(f"{self.key}.argv", f"DNS hook {self.argv[0]} {action}: {why}")
        raise CaError(f"DNS hook {self.argv[0]} {action} exited with {proc.returncode}: {why}")

    def add(self, name: str, value: str) -> None:
        self._run("add", name, value)

    def remove(self, name: str, value: str) -> None:
        self._run("remove", name, value)

    def visible(self, name: str, value: str) -> bool:
        if self.check_servers:
            return _served(self.check_servers, name, value, self.check_timeout)
        resolver = dns.resolver.Resolver()
        resolver.cache = None
        try:
            answer = resolver.resolve(_fqdn(name), "TXT", lifetime=self.check_timeout)
        except dns.exception.DNSException:
            return False
        return any(b"".join(r.strings).decode("ascii", "replace") == value for r in answer)


def parse_servers(values: Sequence[str], *, key: str) -> tuple[tuple[str, int], ...]:
    out = []
    for text in values:
        try:
            out.append(_parse_server(text))
        except ValueError:
            raise CaMisconfigured(key, f"not a server address: {text!r} (use HOST or HOST:PORT)") from None
    return tuple(out)


__all__ = ["TSIG_ALGORITHMS", "Dns01Publisher", "HookPublisher", "Rfc2136Publisher", "parse_servers"]
