"""Fixtures for the CUCM adapter tests: a real PKI, real HTTPS and SSH servers on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.cucm.http import NodeHttp
from adapters.cucm.port import NodeRef
from adapters.cucm.retry import RetryPolicy
from tests.adapters.cucm.servers import HttpsServer, Issued, issue, make_ca

NAME = "cucm-pub.example.com"
FAST = RetryPolicy(attempts=3, initial=0.01, cap=0.05, jitter=0.01, throttle_backoff=0.05)


@dataclass
class Pki:
    folder: Path
    ca: Issued
    other_ca: Issued
    server: Issued  # NAME, issued by ca
    untrusted: Issued  # NAME, issued by other_ca
    bundle: Path  # ca only
    other_bundle: Path  # other_ca only


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca, other = make_ca("Test Root CA"), make_ca("Other Root CA")
    bundle, other_bundle = folder / "bundle.pem", folder / "other-bundle.pem"
    bundle.write_text(ca.pem)
    other_bundle.write_text(other.pem)
    return Pki(folder, ca, other, issue(ca, NAME), issue(other, NAME), bundle, other_bundle)


def start_https(pki: Pki, issued: Issued, stem: str) -> HttpsServer:
    cert, key = issued.write(pki.folder, stem)
    return HttpsServer(cert, key).start()


@pytest.fixture
def https(pki: Pki) -> Iterator[HttpsServer]:
    server = start_https(pki, pki.server, "server")
    yield server
    server.stop()


def node_at(port: int, name: str = NAME, ssh_port: int = 22) -> NodeRef:
    return NodeRef(name=name, address="127.0.0.1", https_port=port, ssh_port=ssh_port, role="publisher")


def node_http(
    server: HttpsServer,
    pki: Pki,
    *,
    name: str = NAME,
    password: str = "app-pass",  # noqa: S107 - test fixture
    bundle: Path | None = None,
    policy: RetryPolicy = FAST,
) -> NodeHttp:
    return NodeHttp(
        node_at(server.port, name),
        ca_bundle=str(bundle or pki.bundle),
        username="axladmin",
        password=password,
        policy=policy,
        timeout=(5.0, 10.0),
    )


def pytest_configure(config: pytest.Config) -> None:
    # Registered here too so the simulator tests' grouping also works with `-p no:xdist`.
    config.addinivalue_line("markers", "xdist_group(name): keep these tests on one xdist worker")
