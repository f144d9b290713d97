"""The ACME CA against a real ACME server (Pebble) validating DNS-01 through a real DNS server (Knot)
that takes the adapter's RFC 2136 updates."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from adapters.ca.acme import AcmeCA
from adapters.ca.dns import Rfc2136Publisher
from adapters.ca.port import Issued
from tests.adapters.ca.acme_servers import (
    TSIG_NAME,
    ZONE,
    Knot,
    Pebble,
    random_secret,
)
from tests.adapters.ca.conftest import MakeCsr

pytestmark = pytest.mark.xdist_group("acme")

HOST = f"cucm-pub.{ZONE}"
ALT = f"cucm-pub-alt.{ZONE}"


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Knot]:
    server = Knot(tmp_path_factory.mktemp("knot"), random_secret()).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory, knot: Knot) -> Iterator[Pebble]:
    server = Pebble(tmp_path_factory.mktemp("pebble"), knot.port).start()
    yield server
    server.stop()


def rfc2136(knot: Knot, secret: str | None = None) -> Rfc2136Publisher:
    return Rfc2136Publisher(
        server="127.0.0.1",
        port=knot.port,
        zone=ZONE,
        tsig_name=TSIG_NAME,
        tsig_secret=secret or knot.secret,
        key="ca.pebble.dns",
    )


def acme_ca(pebble: Pebble, folder: Path, dns: object, **kw: object) -> AcmeCA:
    return AcmeCA(
        pebble.directory,
        folder=folder,
        dns=dns,  # type: ignore[arg-type]
        ca_bundle=pebble.ca_bundle,
        contact=["pki@example.com"],
        name="pebble",
        **kw,  # type: ignore[arg-type]
    )


def spki(pem: str, *, csr: bool = False) -> bytes:
    obj = x509.load_pem_x509_csr(pem.encode()) if csr else x509.load_pem_x509_certificate(pem.encode())
    return obj.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def sans(pem: str) -> set[str]:
    cert = x509.load_pem_x509_certificate(pem.encode())
    return set(
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName
        )
    )


def account_url(folder: Path, pebble: Pebble) -> str:
    return str(json.loads((folder / "accounts.json").read_text())[pebble.directory])


def test_issues_for_the_cucm_csr_same_key_and_sans(
    pebble: Pebble, knot: Knot, make_csr: MakeCsr, tmp_path: Path
) -> None:
    csr = make_csr(0, host=HOST, sans=[HOST, ALT])
    ca = acme_ca(pebble, tmp_path / "acct", rfc2136(knot))
    answer = ca.submit(csr, cert_type="tomcat", node=HOST)
    assert isinstance(answer, Issued), answer
    assert spki(answer.leaf_pem) == spki(csr, csr=True), "the certificate must be for CUCM's own key"
    assert sans(answer.leaf_pem) == {HOST, ALT}
    assert answer.chain_pems, "the intermediate comes with the leaf"
    issuer = x509.load_pem_x509_certificate(answer.chain_pems[0].encode())
    leaf = x509.load_pem_x509_certificate(answer.leaf_pem.encode())
    leaf.verify_directly_issued_by(issuer)
    # The challenge records are gone once the certificate is in hand.
    assert not knot.txt(f"_acme-challenge.{HOST}.") and not knot.txt(f"_acme-challenge.{ALT}.")
    # The account key and records are private, and one account is reused by a second instance.
    folder = tmp_path / "acct"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "account-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((folder / "accounts.json").stat().st_mode) == 0o600
    key_before = (folder / "account-key.pem").read_bytes()
    first = account_url(folder, pebble)
    again = acme_ca(pebble, folder, rfc2136(knot)).submit(
        make_csr(1, host=HOST, sans=[HOST]), cert_type="tomcat", node=HOST
    )
    assert isinstance(again, Issued)
    assert (folder / "account-key.pem").read_bytes() == key_before
    assert account_url(folder, pebble) == first
