"""The AD CS adapter against the AD CS web-enrollment simulator: real HTTPS, real NTLM, a real CA."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from adapters.ca.adcs import AdcsCA
from adapters.ca.port import (
    CaError,
    CaMisconfigured,
    CaRejected,
    CaUnreachable,
    Issued,
    Pending,
    csr_sha256,
)
from simulator.adcs import AdcsServer, running
from tests.adapters.ca.conftest import MakeCsr
from workflows import preflight

PASSWORD = "Corr3ct-Horse-Battery"
USERS = {"svc-cucm": PASSWORD, "pkiadmin": "Adm1n-Passw0rd"}
TEMPLATES = {
    "tomcat": "CUCM-Services",
    "CallManager": "CUCM-Services-Approval",
    "ipsec": "CUCM-IPsec",
    "CAPF": "CUCM-CAPF",
}


@pytest.fixture(scope="module")
def sim() -> Iterator[AdcsServer]:
    with running(USERS) as server:
        yield server


@pytest.fixture
def bundle(sim: AdcsServer, tmp_path: Path) -> Path:
    path = tmp_path / "adcs-root.pem"
    path.write_text(sim.root_pem)
    return path


def adapter(sim: AdcsServer, bundle: Path, **kw: Any) -> AdcsCA:
    args: dict[str, Any] = {
        "username": "EXAMPLE\\svc-cucm",
        "password": PASSWORD,
        "ca_bundle": bundle,
        "template": "CUCM-Services",
        "templates": TEMPLATES,
        "auth": "ntlm",
        "timeout": 20.0,
        "name": "corp",
        "password_key": "ca.corp.password_env",
    }
    args.update(kw)
    return AdcsCA(sim.url, **args)


def requests_for(sim: AdcsServer, csr_pem: str) -> list[dict[str, Any]]:
    digest = csr_sha256(csr_pem)
    return [r for r in sim.snapshot() if r["csr_sha256"] == digest]


def check(cert_type: str, csr: str, issued: Issued) -> preflight.ValidatedCertificate:
    return preflight.validate_issued(cert_type, csr, issued, trusted_roots=[], now=datetime.now(UTC))


@pytest.mark.parametrize("auth", ["basic", "ntlm"])
def test_issued_at_once_with_a_chain_that_passes_preflight(
    sim: AdcsServer, bundle: Path, make_csr: MakeCsr, auth: str
) -> None:
    csr = make_csr(0)
    result = adapter(sim, bundle, auth=auth).submit(csr, cert_type="tomcat", node="cucm-pub")
    assert isinstance(result, Issued)
    leaf = x509.load_pem_x509_certificate(result.leaf_pem.encode())
    assert leaf.public_key() == x509.load_pem_x509_csr(csr.encode()).public_key()
    # PKCS#7 holds a SET OF certificates: the order is the encoder's; pre-flight orders them.
    assert sorted(p.strip() for p in result.chain_pems) == sorted(
        [sim.issuing_pem.strip(), sim.root_pem.strip()]
    )
    checked = check("tomcat", csr, result)
    assert checked.chain_pems[-1].strip() == sim.root_pem.strip()
    (req,) = requests_for(sim, csr)[-1:]
    assert req["requester"] == "EXAMPLE\\svc-cucm" and req["template"] == "CUCM-Services"


def test_each_type_gets_its_template_and_the_result_suits_the_type(
    sim: AdcsServer, bundle: Path, make_csr: MakeCsr
) -> None:
    ca = adapter(sim, bundle)
    for i, cert_type in ((1, "ipsec"), (2, "CAPF")):
        csr = make_csr(i)
        result = ca.submit(csr, cert_type=cert_type, node="cucm-pub")
        assert isinstance(result, Issued)
        check(cert_type, csr, result)
        assert requests_for(sim, csr)[-1]["template"] == TEMPLATES[cert_type]


def test_the_stock_web_server_template_fails_preflight_for_cucm(
    sim: AdcsServer, bundle: Path, make_csr: MakeCsr
) -> None:
    # Web Server issues serverAuth only; CUCM's types need clientAuth too: pre-flight must catch it.
    csr = make_csr(3)
    result = adapter(sim, bundle, templates={"tomcat": "WebServer"}).submit(
        csr, cert_type="tomcat", node="cucm-pub"
    )
    assert isinstance(result, Issued)
    leaf = x509.load_pem_x509_certificate(result.leaf_pem.encode())
    assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    with pytest.raises(preflight.PreflightError, match=r"dataEncipherment|clientAuth"):
        check("tomcat", csr, result)


def test_pending_then_approved_after_a_restart_without_resubmitting(
    sim: AdcsServer, bundle: Path, make_csr: MakeCsr
) -> None:
    csr = make_csr(4)
    first = adapter(sim, bundle)
    pending = first.submit(csr, cert_type="CallManager", node="cucm-pub")
    assert isinstance(pending, Pending)
    assert pending.token.isdigit() and "approval" in pending.reason
    still = first.poll(pending.token)
    assert isinstance(still, Pending) and still.token == pending.token
    first.close()

    sim.approve(int(pending.token))
    after_restart = adapter(sim, bundle)  # a new instance from the same configuration
    issued = after_restart.poll(pending.token)
    assert isinstance(issued, Issued)
    check("CallManager", csr, issued)
    (req,) = requests_for(sim, csr)
    assert req["req_id"] == int(pending.token) and req["disposition"] == 3


def test_pending_then_denied_is_rejected_with_the_cas_text(
    sim: AdcsServer, bundle: Path, make_csr: MakeCsr
) -> None:
    csr = make_csr(5)
    ca = adapter(sim, bundle, auth="basic")
    pending = ca.submit(csr, cert_type="CallManager", node="cucm-pub")
    assert isinstance(pending, Pending)
    sim.deny(int(pending.token))
    with pytest.raises(CaRejected) as info:
        ca.poll(pending.token)
    assert "Denied by EXAMPLE\\certmgr" in info.value.text
    assert "0x80094014" in info.value.text


@pytest.mark.parametrize("auth", ["basic", "ntlm"])
def test_a_wrong_password_names_the_key_and_never_the_password(
    sim: AdcsServer, bundle: Path, make_csr: MakeCsr, auth: str
) -> None:
    wrong = "Wr0ng-But-Secret"
    with pytest.raises(CaMisconfigured) as info:
        adapter(sim, bundle, auth=auth, password=wrong).submit(make_csr(0), cert_type="tomcat", node="n")
    assert info.value.key == "ca.corp.password_env"
    assert "401" in str(info.value) and wrong not in str(info.value) and PASSWORD not in str(info.value)


def test_an_unknown_template_names_the_template_key(sim: AdcsServer, bundle: Path, make_csr: MakeCsr) -> None:
    ca = adapter(sim, bundle, templates={"tomcat": "Web Server"})  # the display name, a common slip
    with pytest.raises(CaMisconfigured) as info:
        ca.submit(make_csr(0), cert_type="tomcat", node="cucm-pub")
    assert info.value.key == "ca.corp.templates.tomcat"
    assert "0x80094800" in str(info.value) and "Web Server" in str(info.value)
    with pytest.raises(CaMisconfigured) as default:
        adapter(sim, bundle, template="Nope", templates={}).submit(make_csr(0), cert_type="TVS", node="n")
    assert default.value.key == "ca.corp.template"


def test_no_enroll_permission_names_the_account(sim: AdcsServer, bundle: Path, make_csr: MakeCsr) -> None:
    ca = adapter(sim, bundle, templates={"tomcat": "CUCM-Restricted"})
    with pytest.raises(CaMisconfigured) as info:
        ca.submit(make_csr(0), cert_type="tomcat", node="cucm-pub")
    assert info.value.key == "ca.corp.username" and "0x80094012" in str(info.value)
    admin = adapter(sim, bundle, username="EXAMPLE\\pkiadmin", password=USERS["pkiadmin"])
    assert isinstance(admin.submit(make_csr(0), cert_type="tomcat", node="n"), Issued)


def test_an_untrusted_tls_certificate_is_refused_whatever_the_environment_says(
    sim: AdcsServer, bundle: Path, tmp_path: Path, make_csr: MakeCsr, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other.pem"
    with running({"x": "y"}) as elsewhere:
        other.write_text(elsewhere.root_pem)
    # requests lets this variable override a session-wide bundle; the adapter's must still win.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    with pytest.raises(CaMisconfigured) as info:
        adapter(sim, other).submit(make_csr(0), cert_type="tomcat", node="cucm-pub")
    assert info.value.key == "ca.corp.ca_bundle"


def test_plain_http_is_refused_before_any_request(bundle: Path) -> None:
    with pytest.raises(CaMisconfigured) as info:
        AdcsCA("http://ca.example.com/certsrv", username="u", password="p", ca_bundle=bundle, template="T")
    assert info.value.key == "ca.adcs.url"


def test_unreachable_and_server_errors_are_transient(
    sim: AdcsServer, bundle: Path, make_csr: MakeCsr
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    closed = AdcsCA(
        f"https://127.0.0.1:{port}/certsrv", username="u", password="p", ca_bundle=bundle, template="T"
    )
    with pytest.raises(CaUnreachable):
        closed.submit(make_csr(0), cert_type="tomcat", node="n")
    sim.faults.status_500 = 1
    with pytest.raises(CaUnreachable, match="500"):
        adapter(sim, bundle, auth="basic").submit(make_csr(0), cert_type="tomcat", node="n")


def test_a_lost_answer_is_transient_and_says_the_ca_may_hold_the_request(
    sim: AdcsServer, bundle: Path, make_csr: MakeCsr
) -> None:
    csr = make_csr(1, host="cucm-sub1.example.com")
    sim.faults.drop_next_submit_reply = True
    with pytest.raises(CaUnreachable, match="may hold the request"):
        adapter(sim, bundle).submit(csr, cert_type="tomcat", node="cucm-sub1")
    assert len(requests_for(sim, csr)) == 1


def test_a_poll_for_an_unknown_request_is_an_error_not_a_wait(sim: AdcsServer, bundle: Path) -> None:
    with pytest.raises(CaError, match="0x80092004") as info:
        adapter(sim, bundle).poll("999999")
    assert not isinstance(info.value, CaRejected | CaMisconfigured | CaUnreachable)
    with pytest.raises(CaError):
        adapter(sim, bundle).poll("not-a-number")


def test_ntlm_carries_the_channel_binding_extended_protection_checks(
    bundle: Path, tmp_path: Path, make_csr: MakeCsr
) -> None:
    with running(USERS, epa="required") as strict:
        path = tmp_path / "strict.pem"
        path.write_text(strict.root_pem)
        assert isinstance(adapter(strict, path).submit(make_csr(0), cert_type="tomcat", node="n"), Issued)
        # A server that computes the binding for another certificate (a relay) must refuse it.
        strict._tls_end_point = b"\x00" * 32
        with pytest.raises(CaMisconfigured):
            adapter(strict, path).submit(make_csr(0), cert_type="tomcat", node="n")
