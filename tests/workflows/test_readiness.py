"""The pre-checks: each a pure function over what the adapter read, and each against the simulated
cluster's condition that makes it fail (through the real adapters: SSH CLI, AXL, RisPort70)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509

from adapters.cucm.cluster import build_cluster
from adapters.cucm.port import (
    ClusterMember,
    CtlStatus,
    LicenseStatus,
    NodeRef,
    ReplicationRow,
    ReplicationState,
)
from simulator.cluster.platform import PlatformState
from simulator.runtime import SimulatedCluster
from tests.simconfig import cluster_config
from workflows import readiness
from workflows.releases import Release

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NODES = [
    NodeRef("pub.example.com", "a", 1, 2, "publisher"),
    NodeRef("sub.example.com", "b", 1, 2, "subscriber"),
]


def facts(**values: object) -> readiness.Facts:
    f = readiness.Facts("c", Release(14, 0, 2), list(NODES))
    for key, value in values.items():
        setattr(f, key, value)
    return f


def by_name(checks: list[readiness.Check]) -> dict[str, readiness.Check]:
    return {c.name: c for c in checks}


def test_replication_needs_every_server_setup_completed():
    good = ReplicationState(
        (ReplicationRow("pub", "", 2, "(2) Setup Completed"), ReplicationRow("sub", "", 2, "x"))
    )
    assert readiness.replication(facts(replication=good)).level == "ok"
    bad = ReplicationState((ReplicationRow("pub", "", 2, "x"), ReplicationRow("sub", "", 3, "(3) Mismatch")))
    check = readiness.replication(facts(replication=bad))
    assert (
        check.failed
        and "sub is (3) Mismatch" in check.message
        and "utils dbreplication status" in check.message
    )
    missing = readiness.replication(facts(replication=ReplicationState((good.rows[0],))))
    assert missing.failed and "sub.example.com is not listed" in missing.message
    assert readiness.replication(facts()).failed  # not read: never taken as healthy


def test_network_cluster_needs_every_node_listed_and_authenticated():
    def member(host: str, auth: bool) -> ClusterMember:
        return ClusterMember(
            "192.0.2.1", f"{host}.example.com", host, "Subscriber", "callmanager", "DBSub", auth
        )

    assert readiness.network_cluster(facts(members=[member("pub", True), member("sub", True)])).level == "ok"
    check = readiness.network_cluster(facts(members=[member("pub", True), member("sub", False)]))
    assert check.failed and "sub.example.com is not authenticated" in check.message
    check = readiness.network_cluster(facts(members=[member("pub", True)]))
    assert (
        check.failed
        and "sub.example.com is not listed" in check.message
        and "security password" in check.message
    )


def _cert(days: float) -> x509.Certificate:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ITLRECOVERY_pub")])
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(NOW - dt.timedelta(days=10))
        .not_valid_after(NOW + dt.timedelta(days=days)).sign(key, hashes.SHA256())
    )  # fmt: skip


def test_itl_recovery_reads_not_after_and_warns_under_a_year():
    assert readiness.itl_recovery(facts(itl_recovery=_cert(4000)), NOW).level == "ok"
    assert readiness.itl_recovery(facts(itl_recovery=_cert(200)), NOW).level == "warn"
    assert readiness.itl_recovery(facts(itl_recovery=_cert(-1)), NOW).failed
    assert readiness.itl_recovery(facts(release=Release(11, 5)), NOW).level == "skip"


def test_ca_chain_must_outlive_the_leaf():
    assert readiness.ca_chain(facts(ca_chain=[_cert(3000)], leaf_days=365.0), NOW).level == "ok"
    check = readiness.ca_chain(facts(ca_chain=[_cert(100)], leaf_days=365.0), NOW)
    assert check.failed and "ITLRECOVERY_pub" in check.message and "renew the CA certificate" in check.message


def test_phones_drs_sso():
    assert readiness.phones(facts(phones_configured=10, phones_registered=0)).failed
    assert readiness.phones(facts(phones_configured=0, phones_registered=0)).level == "ok"
    assert readiness.drs(facts(backup_running=True)).failed
    assert readiness.drs(facts(backup_running=False)).level == "ok"
    assert readiness.sso(facts(sso={"pub.example.com": None})).failed
    assert readiness.sso(facts(sso={"pub.example.com": True})).level == "warn"
    assert readiness.sso(facts(sso={"pub.example.com": False})).level == "ok"


def test_ctl_feasibility_in_mixed_mode_for_types_that_update_the_ctl():
    tokenless = CtlStatus(True, "cn=ITLRECOVERY_pub", False)
    allowed = LicenseStatus(True, True)
    mixed = {"security_mode": 1, "types": ("CallManager",), "ctl": tokenless, "license": allowed}
    assert readiness.ctl_feasible(facts(**mixed)).level == "ok"
    token = readiness.ctl_feasible(facts(**{**mixed, "ctl": CtlStatus(True, 'cn="SAST-ADN0085"', True)}))
    assert token.failed and "hardware token" in token.message
    export = readiness.ctl_feasible(facts(**{**mixed, "license": LicenseStatus(True, False)}))
    assert export.failed and "export-controlled" in export.message
    assert readiness.ctl_feasible(facts(**{**mixed, "ctl": CtlStatus(False)})).failed
    assert readiness.ctl_feasible(facts(**{**mixed, "types": ("tomcat", "TVS")})).level == "skip"
    assert readiness.ctl_feasible(facts(**{**mixed, "security_mode": 0})).level == "skip"


# ---------------------------------------------------------------------------- against the simulator

ALL = ("tomcat", "CallManager", "ipsec", "CAPF", "TVS")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory):
    folder: Path = tmp_path_factory.mktemp("readiness")
    with SimulatedCluster(folder, nodes=3, phones=20, mixed_mode=True, time_scale=1000, ports="random") as s:
        yield s


def checks_now(sim: SimulatedCluster) -> dict[str, readiness.Check]:
    port = build_cluster(cluster_config(sim.json_path))
    try:
        return by_name(readiness.run_checks(readiness.gather(port, types=ALL), dt.datetime.now(dt.UTC)))
    finally:
        port.close()


def test_a_healthy_simulated_cluster_passes_every_check(sim):
    checks = checks_now(sim)
    assert list(checks) == list(readiness.CHECKS)
    assert {n: c.level for n, c in checks.items()} == {
        "replication": "ok", "network-cluster": "ok", "itl-recovery": "ok", "ca-chain": "skip",
        "phones": "ok", "drs": "ok", "sso": "ok", "ctl-feasible": "ok",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "check", "words"),
    [
        ({"replication": {"cucm-sub2": 4}}, "replication", "cucm-sub2 is (4) Setup Failed"),
        ({"unauthenticated": ["cucm-sub1"]}, "network-cluster", "cucm-sub1.example.com is not authenticated"),
        ({"missing_from_cluster": ["cucm-sub2"]}, "network-cluster", "cucm-sub2.example.com is not listed"),
        ({"ctl": "token"}, "ctl-feasible", "hardware token"),
        ({"license": "no-export"}, "ctl-feasible", "without export-controlled functionality"),
        ({"license": "unregistered"}, "ctl-feasible", "not registered"),
        ({"drs_running": "backup"}, "drs", "DRS backup or restore is running"),
    ],
)
def test_each_simulated_condition_fails_its_check(sim, flags, check, words):
    platform: PlatformState = sim.cluster.platform
    saved = (dict(platform.replication), set(platform.missing_from_cluster), set(platform.unauthenticated),
             platform.ctl, platform.license)  # fmt: skip
    sim.set_flags(flags)
    try:
        result = checks_now(sim)[check]
    finally:
        sim.set_flags({"drs_running": None})
        (platform.replication, platform.missing_from_cluster, platform.unauthenticated,
         platform.ctl, platform.license) = saved  # fmt: skip
    assert result.failed, result
    assert words in result.message


def test_check_prints_the_prechecks_and_fails_when_one_fails(tmp_path: Path) -> None:
    from tests.workflows.lab import Lab

    platform = PlatformState()
    platform.set_replication("cucm-sub1", 4)
    with Lab(tmp_path, nodes=2, phones=4, platform=platform) as lab:
        out = lab.cli("check", "--type", "tomcat")
        assert out.returncode == 1, out.stdout + out.stderr
        assert "  pre-checks:" in out.stdout
        assert (
            "FAIL  replication      database replication is not healthy: cucm-sub1 is (4) Setup Failed"
            in out.stdout
        )
        assert "OK    drs" in out.stdout
        platform.set_replication("cucm-sub1", 2)
        assert lab.cli("check", "--type", "tomcat").returncode == 0
