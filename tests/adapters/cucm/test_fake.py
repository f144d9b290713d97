"""The in-memory fake CUCM: it keeps the rules the steps rely on, and fails when told to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from adapters.ca.local import LocalCA
from adapters.ca.port import Issued
from adapters.cucm.fake import (
    KEY_MISMATCH,
    TRUST_MISSING,
    FakeCucm,
    csr_missing_text,
)
from adapters.cucm.port import CucmPort, CucmRejected, CucmUnreachable, UnknownNode

PUB, SUB, IMP = "cucm-pub.example.com", "cucm-sub1.example.com", "imp1.example.com"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA(tmp_path_factory.mktemp("ca"))


def sign(ca: LocalCA, csr: str, node: str, cert_type: str = "tomcat") -> Issued:
    issued = ca.submit(csr, cert_type=cert_type, node=node)
    assert isinstance(issued, Issued)
    return issued


def key_of(pem: str) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return (
        x509.load_pem_x509_csr(pem.encode())
        .public_key()
        .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )


def test_nodes_roles_and_types() -> None:
    fake = FakeCucm(nodes=[(SUB, "subscriber"), (PUB, "publisher"), (IMP, "imp")])
    assert isinstance(fake, CucmPort)
    assert [(n.name, n.role) for n in fake.nodes()] == [(PUB, "publisher"), (SUB, "subscriber"), (IMP, "imp")]
    with pytest.raises(UnknownNode, match="nowhere"):
        fake.node("nowhere")
    with pytest.raises(CucmRejected) as refused:
        fake.identity_certificate(IMP, "CallManager")
    assert refused.value.cucm_message == "Invalid service: CallManager"
    with pytest.raises(ValueError, match="exactly one publisher"):
        FakeCucm(nodes=[(SUB, "subscriber")])


def test_a_new_csr_replaces_the_old_one_with_a_new_key() -> None:
    fake = FakeCucm()
    assert fake.current_csr(PUB, "tomcat") is None
    first = fake.generate_csr(PUB, "tomcat")
    second = fake.generate_csr(PUB, "tomcat")
    assert fake.current_csr(PUB, "tomcat") == second != first
    assert key_of(first) != key_of(second)
    assert fake.current_csr(SUB, "tomcat") is None


def test_identity_upload_checks_trust_csr_and_key(ca: LocalCA) -> None:
    fake = FakeCucm()
    old = sign(ca, fake.generate_csr(PUB, "tomcat"), PUB)
    with pytest.raises(CucmRejected) as refused:
        fake.upload_identity(PUB, "tomcat", old.leaf_pem, list(old.chain_pems))
    assert refused.value.cucm_message == TRUST_MISSING
    fake.upload_trust(PUB, "tomcat", [ca.root_pem, ca.chain_pems[0]], "CA")
    fresh = sign(ca, fake.generate_csr(PUB, "tomcat"), PUB)
    with pytest.raises(CucmRejected) as refused:
        fake.upload_identity(PUB, "tomcat", old.leaf_pem, list(old.chain_pems))
    assert refused.value.cucm_message == KEY_MISMATCH
    before = fake.presented(PUB, "tomcat")
    fake.upload_identity(PUB, "tomcat", fresh.leaf_pem, list(fresh.chain_pems))
    assert fake.identity_certificate(PUB, "tomcat") == fresh.leaf_pem
    assert fake.current_csr(PUB, "tomcat") is None  # consumed by the import
    with pytest.raises(CucmRejected) as refused:
        fake.upload_identity(PUB, "tomcat", fresh.leaf_pem, list(fresh.chain_pems))
    assert refused.value.cucm_message == csr_missing_text("tomcat")
    # Presented only once the service that presents it restarts.
    assert fake.presented(PUB, "tomcat") == before
    fake.restart_service(PUB, "Cisco CTIManager")
    assert fake.presented(PUB, "tomcat") == before
    fake.restart_service(PUB, "Cisco Tomcat")
    presented = x509.load_der_x509_certificate(fake.presented_certificate(PUB, 8443))
    assert presented == x509.load_pem_x509_certificate(fresh.leaf_pem.encode())


def test_trust_uploads_replicate_except_capf(ca: LocalCA) -> None:
    fake = FakeCucm()
    fake.upload_trust(SUB, "tomcat", [ca.root_pem], "CA")
    assert all(ca.root_pem in fake.trust_certificates(n, "tomcat") for n in (PUB, SUB, IMP))
    fake.upload_trust(SUB, "CAPF", [ca.root_pem], "CA")
    assert ca.root_pem in fake.trust_certificates(SUB, "CAPF")
    assert ca.root_pem not in fake.trust_certificates(PUB, "CAPF")
    fake.upload_trust(PUB, "tomcat", [ca.root_pem], "CA again")
    assert fake.trust_certificates(PUB, "tomcat").count(ca.root_pem) == 1


def test_restarts_move_the_start_time_even_within_one_second() -> None:
    frozen = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    fake = FakeCucm(clock=lambda: frozen)
    before = fake.service_status(SUB, "Cisco Tftp").start_time
    fake.restart_service(SUB, "Cisco Tftp")
    first = fake.service_status(SUB, "Cisco Tftp").start_time
    fake.restart_service(SUB, "Cisco Tftp")
    second = fake.service_status(SUB, "Cisco Tftp").start_time
    assert before is not None and first is not None and second is not None
    assert before < first < second and second - first == timedelta(seconds=1)
    fake.service(SUB, "Cisco Tftp").starting_reads = 1
    fake.restart_service(SUB, "Cisco Tftp")
    assert fake.service_status(SUB, "Cisco Tftp").status == "Starting"
    assert fake.service_status(SUB, "Cisco Tftp").status == "Started"
    assert fake.service_status(SUB, "Cisco Nothing").status == "NotFound"
    fake.service(SUB, "Cisco CAR Scheduler").activated = False
    with pytest.raises(CucmRejected, match="Service Not Activated"):
        fake.restart_service(SUB, "Cisco CAR Scheduler")


def test_phone_resets_move_timestamps_and_phones_come_back_after_a_sweep() -> None:
    fake = FakeCucm()
    fake.add_phones(["SEP1", "SEP2"], pool="DP-A")
    fake.add_phones(["SEP3"], node=SUB)
    baseline = fake.registered_phones()
    assert {n: s.status for n, s in baseline.items()} == dict.fromkeys(["SEP1", "SEP2", "SEP3"], "Registered")
    assert fake.device_pools() == {"DP-A": ["SEP1", "SEP2"]}
    assert fake.reset_phones(["SEP3", "SEP3", "SEPUNKNOWN"]) == 1
    assert fake.reset_device_pools(["dp-a", "DP-NONE"]) == 1
    first = fake.registered_phones()
    assert {s.status for s in first.values()} == {"UnRegistered"}
    assert all(first[n].timestamp != baseline[n].timestamp for n in first)
    fake.phones["SEP2"].stuck = True
    again = fake.registered_phones(["SEP1", "SEP2", "SEPX"])
    assert {n: s.status for n, s in again.items()} == {"SEP1": "Registered", "SEP2": "UnRegistered"}
    assert again["SEP1"].timestamp != first["SEP1"].timestamp


def test_injected_failures_before_and_after_acting() -> None:
    fake = FakeCucm(csr_keys="ec")
    fake.unreachable("generate_csr", node=SUB)
    assert fake.generate_csr(PUB, "tomcat")  # another node: not affected
    with pytest.raises(CucmUnreachable):
        fake.generate_csr(SUB, "tomcat")
    assert fake.current_csr(SUB, "tomcat") is None  # nothing happened
    fake.reject("restart_service", "Service Not Found: Cisco Tomcat")
    with pytest.raises(CucmRejected) as refused:
        fake.restart_service(PUB, "Cisco Tomcat")
    assert refused.value.cucm_message == "Service Not Found: Cisco Tomcat"
    fake.lose_reply("generate_csr")
    with pytest.raises(CucmUnreachable):
        fake.generate_csr(SUB, "tomcat")
    assert fake.current_csr(SUB, "tomcat") is not None  # it happened all the same
    assert fake.generate_csr(SUB, "tomcat")  # each fault fires once
    with pytest.raises(ValueError, match="not an operation"):
        fake.unreachable("generate_csrs")


def test_calls_are_recorded_with_their_arguments() -> None:
    fake = FakeCucm(mixed_mode=False)
    fake.restart_service(SUB, "Cisco Tftp")
    fake.reset_phones(["SEP1"], hard=False)
    with pytest.raises(CucmRejected, match="non-secure"):
        fake.ctl_update()
    assert [(c.op, c.node) for c in fake.calls] == [
        ("restart_service", SUB),
        ("reset_phones", None),
        ("ctl_update", None),
    ]
    assert fake.calls_to("restart_service")[0].args == {"service": "Cisco Tftp"}
    assert fake.calls_to("reset_phones")[0].args == {"names": ["SEP1"], "hard": False}
    fake.forget_calls()
    assert fake.calls == []


def test_cluster_state_reads() -> None:
    fake = FakeCucm("lab", release="12.5.1.10000-22", mixed_mode=True)
    fake.sso, fake.backup = True, True
    assert (fake.cluster, fake.version(), fake.security_mode()) == ("lab", "12.5.1.10000-22", 1)
    assert fake.sso_enabled(PUB) and fake.backup_running()
    assert "successfully" in fake.ctl_update() and fake.ctl_updates == 1
    with pytest.raises(CucmUnreachable, match="port 9999"):
        fake.presented_certificate(PUB, 9999)


def test_regenerate_sets_expiry_and_replaces_the_trust_entry(tmp_path: Path) -> None:
    fake = FakeCucm()
    old = fake.identity_certificate(SUB, "tomcat")
    new = fake.regenerate(SUB, "tomcat", days=3)
    cert = x509.load_pem_x509_certificate(new.encode())
    assert 2 < (cert.not_valid_after_utc - datetime.now(UTC)).days + 1 <= 3
    assert fake.identity_certificate(SUB, "tomcat") == new
    assert new in fake.trust_certificates(PUB, "tomcat") and old not in fake.trust_certificates(PUB, "tomcat")
