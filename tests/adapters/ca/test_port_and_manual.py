from __future__ import annotations

import hashlib
import inspect
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from adapters.ca.command import CommandCA
from adapters.ca.local import LocalCA
from adapters.ca.manual import ManualCA
from adapters.ca.port import (
    CaError,
    CaMisconfigured,
    CaPort,
    CaRejected,
    CaUnreachable,
    Pending,
    check_idempotency_key,
    csr_sha256,
)
from tests.adapters.ca.conftest import MakeCsr


def test_csr_sha256_is_the_der_digest_whatever_the_pem_wrapping(make_csr: MakeCsr) -> None:
    pem = make_csr(0)
    der = x509.load_pem_x509_csr(pem.encode()).public_bytes(Encoding.DER)
    assert csr_sha256(pem) == hashlib.sha256(der).hexdigest()
    assert csr_sha256(pem.replace("\n", "\r\n")) == csr_sha256(pem)
    assert csr_sha256(make_csr(1)) != csr_sha256(pem)
    with pytest.raises(ValueError):
        csr_sha256("not a csr")


def test_error_tree_and_messages() -> None:
    for cls in (CaRejected, CaUnreachable, CaMisconfigured):
        assert issubclass(cls, CaError)
    rejected = CaRejected("policy forbids this subject", ca="corp")
    assert rejected.text == "policy forbids this subject"
    assert "CA 'corp' rejected" in str(rejected) and "policy forbids this subject" in str(rejected)
    bad = CaMisconfigured("ca.command.argv", "must not be empty")
    assert (
        bad.key == "ca.command.argv" and str(bad) == "CA configuration 'ca.command.argv': must not be empty"
    )


def test_every_adapter_satisfies_the_port(tmp_path: Path) -> None:
    adapters = [ManualCA(), LocalCA(tmp_path / "ca"), CommandCA(["/bin/true"])]
    for adapter in adapters:
        assert isinstance(adapter, CaPort)
    assert [a.name for a in adapters] == ["manual", "local", "command"]


def test_every_adapter_takes_the_idempotency_key_by_keyword(tmp_path: Path) -> None:
    port = inspect.signature(CaPort.submit).parameters["idempotency_key"]
    assert port.kind is inspect.Parameter.KEYWORD_ONLY and port.default is inspect.Parameter.empty
    for adapter in (ManualCA(), LocalCA(tmp_path / "ca"), CommandCA(["/bin/true"])):
        param = inspect.signature(adapter.submit).parameters["idempotency_key"]
        assert param.kind is inspect.Parameter.KEYWORD_ONLY, adapter


def test_idempotency_keys_are_names_safe_anywhere() -> None:
    assert check_idempotency_key("0f" * 32) == "0f" * 32
    assert check_idempotency_key("req-1_A") == "req-1_A"
    for bad in ("", "a.b", "a/b", "a b", "é", "x" * 129):
        with pytest.raises(ValueError, match="idempotency key"):
            check_idempotency_key(bad)


def test_manual_ca_waits_for_the_operator(make_csr: MakeCsr) -> None:
    ca = ManualCA()
    pem = make_csr(0)
    pending = ca.submit(pem, cert_type="tomcat", node="cucm-sub1")
    assert isinstance(pending, Pending)
    assert pending.token == csr_sha256(pem)
    assert "cucm-renew submit-cert" in pending.reason and "--node cucm-sub1" in pending.reason
    assert pending.retry_after is None
    again = ca.poll(pending.token)
    assert isinstance(again, Pending) and again.token == pending.token
    assert "waiting for an operator" in again.reason
    # The same CSR always gives the same token, so a re-submit after a crash changes nothing.
    assert ca.submit(pem, cert_type="tomcat", node="cucm-sub1") == pending


def test_manual_ca_refuses_what_is_not_a_csr() -> None:
    with pytest.raises(CaRejected, match="not a PEM certificate signing request"):
        ManualCA().submit("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n", cert_type="tomcat", node="n")
