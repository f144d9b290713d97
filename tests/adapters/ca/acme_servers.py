"""A real ACME server (Pebble) and a real authoritative DNS server taking RFC 2136 updates (Knot),
on 127.0.0.1, on ports chosen here, stopped by handle.

Pebble resolves DNS-01 through Knot (``-dnsserver``), so a record the adapter publishes with a TSIG
update is what Pebble's validation sees. Both come from Debian (``make test-prereqs``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update
import josepy as jose
import requests
from acme import client, messages
from cryptography.hazmat.primitives import serialization

from tests.tlsfiles import server_tls

ZONE = "lab.test"
TSIG_NAME = "acme-update."


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.05)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_both() -> int:
    """A port free for TCP and UDP alike (DNS listens on both)."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port for TCP and UDP")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _binary(name: str, *extra: str) -> str:
    found = shutil.which(name) or next((p for p in extra if os.access(p, os.X_OK)), None)
    if found is None:
        raise RuntimeError(f"{name} is not installed: run `make test-prereqs` (apt-get install pebble knot)")
    return found


@dataclass
class Knot:
    folder: Path
    secret: str
    zone: str = ZONE
    """The zone it is authoritative for, and takes TSIG-signed TXT updates for."""
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Knot:
        knotd = _binary("knotd", "/usr/sbin/knotd")
        for sub in ("run", "db", "zones"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        (self.folder / "zones" / f"{self.zone}.zone").write_text(
            f"$ORIGIN {self.zone}.\n$TTL 60\n"
            "@ SOA ns1 hostmaster 1 3600 600 86400 60\n@ NS ns1\nns1 A 127.0.0.1\n"
        )
        last = ""
        for _attempt in range(5):
            self.port = free_port_both()
            conf = self.folder / "knot.conf"
            conf.write_text(
                "server:\n"
                f'    rundir: "{self.folder}/run"\n'
                f"    listen: 127.0.0.1@{self.port}\n"
                "log:\n  - target: stderr\n    any: info\n"
                f'database:\n    storage: "{self.folder}/db"\n'
                f"key:\n  - id: {TSIG_NAME}\n    algorithm: hmac-sha256\n    secret: {self.secret}\n"
                f"acl:\n  - id: acme-txt\n    key: {TSIG_NAME}\n    action: update\n    update-type: [TXT]\n"
                f'zone:\n  - domain: {self.zone}\n    storage: "{self.folder}/zones"\n    acl: acme-txt\n'
            )
            log = open(self.folder / "knot.log", "ab")  # noqa: SIM115 - the child holds it
            self.proc = subprocess.Popen([knotd, "-c", str(conf)], stdout=log, stderr=log)
            log.close()
            try:
                wait_for(
                    lambda: self.proc is not None and (self.proc.poll() is not None or self.answers()),
                    20,
                    "knotd",
                )
            except AssertionError:
                _stop(self.proc)
                raise
            if self.proc.poll() is None:
                return self
            last = (self.folder / "knot.log").read_text(errors="replace")[-500:]
        raise RuntimeError(f"knotd did not start: {last}")

    def answers(self) -> bool:
        query = dns.message.make_query(f"{self.zone}.", "SOA")
        try:
            r = dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.5)
        except (OSError, dns.exception.DNSException):
            return False
        return r.rcode() == dns.rcode.NOERROR and bool(r.answer)

    def update(self, name: str, value: str, *, add: bool = True) -> None:
        """What a DNS provider does when it publishes a record (the test plays the provider)."""
        ring = dns.tsigkeyring.from_text({TSIG_NAME: ("hmac-sha256", self.secret)})
        u = dns.update.UpdateMessage(
            f"{self.zone}.", keyring=ring, keyname=TSIG_NAME, keyalgorithm="hmac-sha256"
        )
        if add:
            u.add(name, 60, "TXT", f'"{value}"')
        else:
            u.delete(name, "TXT", f'"{value}"')
        assert dns.query.tcp(u, "127.0.0.1", port=self.port, timeout=5).rcode() == dns.rcode.NOERROR

    def txt(self, name: str) -> set[str]:
        r = dns.query.udp(dns.message.make_query(name, "TXT"), "127.0.0.1", port=self.port, timeout=2)
        return {b"".join(rd.strings).decode() for rrset in r.answer for rd in rrset}

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)


def _tls(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate for Pebble's API (Debian's package ships none)."""
    return server_tls(folder, "pebble-api test CA")


@dataclass
class Pebble:
    folder: Path
    dns_port: int
    eab_keys: Mapping[str, str] | None = None
    env: Mapping[str, str] | None = None
    port: int = 0
    mgmt_port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    @property
    def ca_bundle(self) -> Path:
        return self.folder / "tls" / "ca.pem"

    def start(self) -> Pebble:
        pebble = _binary("pebble")
        _ca, cert, key = _tls(self.folder / "tls")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PEBBLE_VA_NOSLEEP": "1",
            # The library retries a rejected nonce once only; the adapter's own retry is tested
            # separately with a high rate.
            "PEBBLE_WFE_NONCEREJECT": "0",
            "PEBBLE_AUTHZREUSE": "0",
            **(self.env or {}),
        }
        last = ""
        for _attempt in range(5):
            self.port, self.mgmt_port = free_port(), free_port()
            config = {
                "pebble": {
                    "listenAddress": f"127.0.0.1:{self.port}",
                    "managementListenAddress": f"127.0.0.1:{self.mgmt_port}",
                    "certificate": str(cert),
                    "privateKey": str(key),
                    "httpPort": 5002,
                    "tlsPort": 5001,
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": self.eab_keys is not None,
                    "externalAccountMACKeys": dict(self.eab_keys or {}),
                }
            }
            conf = self.folder / "pebble.json"
            conf.write_text(json.dumps(config))
            log = open(self.folder / "pebble.log", "ab")  # noqa: SIM115 - the child holds it
            self.proc = subprocess.Popen(
                [pebble, "-config", str(conf), "-dnsserver", f"127.0.0.1:{self.dns_port}"],
                stdout=log,
                stderr=log,
                env=env,
                cwd=self.folder,
            )
            log.close()
            try:
                wait_for(
                    lambda: self.proc is not None and (self.proc.poll() is not None or self.answers()),
                    20,
                    "pebble",
                )
            except AssertionError:
                _stop(self.proc)
                raise
            if self.proc.poll() is None:
                return self
            last = (self.folder / "pebble.log").read_text(errors="replace")[-500:]
        raise RuntimeError(f"pebble did not start: {last}")

    def answers(self) -> bool:
        try:
            return requests.get(self.directory, verify=str(self.ca_bundle), timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def roots(self) -> list[str]:
        r = requests.get(f"https://127.0.0.1:{self.mgmt_port}/roots/0", verify=str(self.ca_bundle), timeout=5)
        r.raise_for_status()
        return [r.text]

    def orders_of(self, account_folder: Path, account_url: str) -> list[str]:
        """The order URLs the server holds for an account (RFC 8555 §7.1.2.1), as its owner sees them."""
        pem = (account_folder / "account-key.pem").read_bytes()
        jwk = jose.JWKEC(key=serialization.load_pem_private_key(pem, password=None))
        net = client.ClientNetwork(jwk, alg=jose.ES256, verify_ssl=str(self.ca_bundle))
        net.account = messages.RegistrationResource(uri=account_url, body=messages.Registration())
        acme = client.ClientV2(client.ClientV2.get_directory(self.directory, net), net)
        nonce = acme.directory["newNonce"]
        account = net.post(account_url, None, new_nonce_url=nonce).json()
        urls: list[str] = []
        page: str | None = account["orders"]
        while page:
            r = net.post(page, None, new_nonce_url=nonce)
            urls += r.json()["orders"]
            page = r.links.get("next", {}).get("url")
        return urls

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)


def random_secret() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def random_hmac() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
