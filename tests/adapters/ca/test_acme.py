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

from adapters.ca.acme import AcmeCA, ExternalAccountBinding
from adapters.ca.dns import HookPublisher, Rfc2136Publisher
from adapters.ca.port import CaMisconfigured, Issued, Pending
from tests.adapters.ca.acme_servers import (
    TSIG_NAME,
    ZONE,
    Knot,
    Pebble,
    random_hmac,
    random_secret,
    wait_for,
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


def test_wrong_tsig_secret_is_misconfigured_and_never_quoted(
    pebble: Pebble, knot: Knot, make_csr: MakeCsr, tmp_path: Path
) -> None:
    wrong = random_secret()
    ca = acme_ca(pebble, tmp_path / "acct", rfc2136(knot, secret=wrong))
    with pytest.raises(CaMisconfigured) as info:
        ca.submit(make_csr(2, host=HOST, sans=[HOST]), cert_type="tomcat", node=HOST)
    assert info.value.key == "ca.pebble.dns.tsig_secret"
    assert "BADSIG" in str(info.value)
    assert wrong not in str(info.value) and knot.secret not in str(info.value)
    assert not knot.txt(f"_acme-challenge.{HOST}.")


def test_unknown_tsig_key_name_is_misconfigured(
    pebble: Pebble, knot: Knot, make_csr: MakeCsr, tmp_path: Path
) -> None:
    dns = rfc2136(knot)
    dns.tsig_name = "someone-else."
    dns.__post_init__()
    with pytest.raises(CaMisconfigured) as info:
        acme_ca(pebble, tmp_path / "acct", dns).submit(
            make_csr(2, host=HOST, sans=[HOST]), cert_type="tomcat", node=HOST
        )
    assert info.value.key == "ca.pebble.dns.tsig_name"


def _hook(tmp_path: Path) -> tuple[list[str], Path]:
    """A DNS hook that accepts the change and publishes nothing (a provider still propagating)."""
    log = tmp_path / "hook.log"
    script = tmp_path / "hook.sh"
    script.write_text(f'#!/bin/sh\nprintf "%s %s %s\\n" "$1" "$2" "$3" >> "{log}"\n')
    script.chmod(0o755)
    return [str(script)], log


def test_pending_until_the_record_is_visible_then_poll_completes_the_same_order(
    pebble: Pebble, knot: Knot, make_csr: MakeCsr, tmp_path: Path
) -> None:
    argv, log = _hook(tmp_path)
    dns = HookPublisher(tuple(argv), key="ca.pebble.dns", check_servers=(("127.0.0.1", knot.port),))
    folder = tmp_path / "acct"
    ca = acme_ca(pebble, folder, dns, wait=1.0)
    csr = make_csr(3, host=HOST, sans=[HOST])
    first = ca.submit(csr, cert_type="CallManager", node=HOST)
    assert isinstance(first, Pending), first
    name = f"_acme-challenge.{HOST}."
    assert f"record {name[:-1]} to be visible" in first.reason
    action, logged_name, value = log.read_text().split()
    assert (action, logged_name) == ("add", name)
    # The challenge was not answered while the record was invisible: answering it would have
    # made the order invalid, and polling now would fail instead of pending again.
    again = ca.poll(first.token)
    assert isinstance(again, Pending) and again.token == first.token
    assert log.read_text().count("add ") == 1, "a record already added is not added again"

    knot.update(name, value)  # the provider's change reaches the authoritative server
    answers: list[Issued | Pending] = []

    def issued() -> bool:
        answers.append(ca.poll(first.token))
        return isinstance(answers[-1], Issued)

    wait_for(issued, 60, "the order issued after the record became visible")
    leaf = answers[-1]
    assert isinstance(leaf, Issued)
    assert spki(leaf.leaf_pem) == spki(csr, csr=True)
    assert f"remove {name} {value}" in log.read_text(), "the record is removed after issuance"
    assert len(pebble.orders_of(folder, account_url(folder, pebble))) == 1
    knot.update(name, value, add=False)


def test_crash_between_order_and_download_resumes_that_order(
    pebble: Pebble, knot: Knot, make_csr: MakeCsr, tmp_path: Path
) -> None:
    folder = tmp_path / "acct"
    csr = make_csr(4, host=HOST, sans=[HOST, ALT])
    first = acme_ca(pebble, folder, rfc2136(knot), wait=0).submit(csr, cert_type="tomcat", node=HOST)
    assert isinstance(first, Pending), first
    # The process dies here. A new one, built from the same configuration, re-submits the CSR
    # (the workflow recorded the intent, not the answer) and then polls the token it kept.
    restarted = acme_ca(pebble, folder, rfc2136(knot), wait=30)
    resubmitted = restarted.submit(csr, cert_type="tomcat", node=HOST)
    polled = restarted.poll(first.token)
    assert isinstance(resubmitted, Issued) and isinstance(polled, Issued)
    assert resubmitted.leaf_pem == polled.leaf_pem
    assert spki(polled.leaf_pem) == spki(csr, csr=True)
    assert len(pebble.orders_of(folder, account_url(folder, pebble))) == 1


@pytest.fixture(scope="module")
def eab_pebble(tmp_path_factory: pytest.TempPathFactory, knot: Knot) -> Iterator[tuple[Pebble, str]]:
    hmac = random_hmac()
    server = Pebble(tmp_path_factory.mktemp("pebble-eab"), knot.port, eab_keys={"kid-1": hmac}).start()
    yield server, hmac
    server.stop()


def test_external_account_binding(
    eab_pebble: tuple[Pebble, str], knot: Knot, make_csr: MakeCsr, tmp_path: Path
) -> None:
    pebble, hmac = eab_pebble
    csr = make_csr(5, host=HOST, sans=[HOST])
    with pytest.raises(CaMisconfigured) as missing:
        acme_ca(pebble, tmp_path / "a", rfc2136(knot)).submit(csr, cert_type="tomcat", node=HOST)
    assert missing.value.key == "ca.pebble.eab_kid"
    wrong = random_hmac()
    with pytest.raises(CaMisconfigured) as refused:
        acme_ca(pebble, tmp_path / "b", rfc2136(knot), eab=ExternalAccountBinding("kid-1", wrong)).submit(
            csr, cert_type="tomcat", node=HOST
        )
    assert refused.value.key == "ca.pebble.eab_kid"
    assert wrong not in str(refused.value) and hmac not in str(refused.value)
    ca = acme_ca(pebble, tmp_path / "c", rfc2136(knot), eab=ExternalAccountBinding("kid-1", hmac))
    assert isinstance(ca.submit(csr, cert_type="tomcat", node=HOST), Issued)


@pytest.fixture(scope="module")
def nonce_storm(tmp_path_factory: pytest.TempPathFactory, knot: Knot) -> Iterator[Pebble]:
    server = Pebble(
        tmp_path_factory.mktemp("pebble-nonce"), knot.port, env={"PEBBLE_WFE_NONCEREJECT": "50"}
    ).start()
    yield server
    server.stop()


def test_bad_nonce_storm_is_ridden_out(
    nonce_storm: Pebble, knot: Knot, make_csr: MakeCsr, tmp_path: Path
) -> None:
    # Half the nonces rejected: the library alone (one retry) fails a POST in four.
    csr = make_csr(0, host=ALT, sans=[ALT])
    answer = acme_ca(nonce_storm, tmp_path / "acct", rfc2136(knot)).submit(csr, cert_type="tomcat", node=ALT)
    assert isinstance(answer, Issued)


def test_renewal_window_is_none_without_renewal_info(
    pebble: Pebble, knot: Knot, make_csr: MakeCsr, tmp_path: Path
) -> None:
    ca = acme_ca(pebble, tmp_path / "acct", rfc2136(knot))
    answer = ca.submit(make_csr(1, host=ALT, sans=[ALT]), cert_type="tomcat", node=ALT)
    assert isinstance(answer, Issued)
    assert ca.renewal_window(answer.leaf_pem) is None  # Pebble 2.4 has no renewalInfo
