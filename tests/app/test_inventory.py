"""`check`'s watch over what the tool does not renew, against the simulator through the real port:
every other type a node carries with its expiry, and ITLRecovery with Cisco's guidance."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.cucm.cluster import build_cluster
from app import inventory
from simulator.runtime import SimulatedCluster
from tests.simconfig import cluster_config

PUB, IMP = "cucm-pub.example.com", "imp1.example.com"
COVERED = {"tomcat": {"publisher", "subscriber", "imp"}, "CallManager": {"publisher", "subscriber"}}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedCluster]:
    """ITLRecovery with 100 days left; the IM&P node's cup with 10."""
    with SimulatedCluster(
        tmp_path_factory.mktemp("sim"),
        nodes=1,
        imp=1,
        time_scale=1000,
        itl_recovery_days=100,
        expiry_days={"imp1:cup": 10},
        ports="random",
    ) as running:
        yield running


def test_every_other_type_is_reported_with_its_expiry(sim: SimulatedCluster) -> None:
    port = build_cluster(cluster_config(sim.json_path))
    try:
        entries, lines, failed = inventory.watch(port, "sim", COVERED, datetime.now(UTC), 30.0)
    finally:
        port.close()
    assert not failed
    by = {(e["type"], e["node"]): e for e in entries}
    # What check already reports (tomcat everywhere, CallManager on CUCM nodes) is not repeated.
    assert ("tomcat", PUB) not in by and ("CallManager", PUB) not in by and ("tomcat", IMP) not in by
    assert {t for t, n in by if n == IMP} == {
        "ipsec", "cup", "cup-xmpp", "cup-xmpp-s2s",
        "tomcat-ECDSA", "cup-ECDSA", "cup-xmpp-ECDSA", "cup-xmpp-s2s-ECDSA",
    }  # fmt: skip
    assert by[("cup", IMP)]["due"] and 9 < by[("cup", IMP)]["days_left"] <= 10
    assert not by[("cup-xmpp", IMP)]["due"]
    assert all(e["watch"] and not e["renewed_by_tool"] for e in entries)
    # cup has a workflow: the cluster renews it once its `types` names it.
    assert any("cup " in line and "DUE (not in this cluster's `types`" in line for line in lines)


def test_itl_recovery_is_reported_a_year_ahead_with_guidance(sim: SimulatedCluster) -> None:
    port = build_cluster(cluster_config(sim.json_path))
    try:
        entries, lines, _ = inventory.watch(port, "sim", COVERED, datetime.now(UTC), 30.0)
    finally:
        port.close()
    itl = [e for e in entries if e["type"] == "ITLRecovery"]
    assert [e["node"] for e in itl] == [PUB]
    # 100 days left is beyond the cluster's 30-day margin, within ITLRecovery's own year.
    assert itl[0]["due"] and 99 < itl[0]["days_left"] <= 100
    assert "utils itl reset localkey" in itl[0]["guidance"] and "never regenerates" in itl[0]["guidance"]
    assert any("ITLRecovery" in line and "PLAN A WINDOW" in line for line in lines)
    assert any("file get tftp ITLRecovery.p12" in line for line in lines)
    assert not any("stop at a gate" in line for line in lines)


def test_check_says_when_itl_signers_will_stop_at_the_itl_recovery_gate(sim: SimulatedCluster) -> None:
    port = build_cluster(cluster_config(sim.json_path))
    try:
        below = inventory.watch(port, "sim", COVERED, datetime.now(UTC), 30.0, itl_gate_days=120)
        above = inventory.watch(port, "sim", COVERED, datetime.now(UTC), 30.0, itl_gate_days=90)
    finally:
        port.close()
    assert any("stop at a gate" in line and "itl_recovery_min_days = 120" in line for line in below[1])
    assert not any("stop at a gate" in line for line in above[1])


def test_multi_server_caveats_name_the_nodes_a_certificate_leaves_out_and_the_gui_gate(
    sim: SimulatedCluster,
) -> None:
    port = build_cluster(cluster_config(sim.json_path))
    try:
        scope = [n for n in port.nodes() if n.role in ("publisher", "subscriber", "imp")]
        _, lines, failed = inventory.multi_server_caveats(port, "sim", "tomcat", scope, "api", "14SU1")
        # The simulator's self-signed tomcat names its own node only: single-server today.
        assert not failed and "single-server certificate now" in lines[0]
        assert not any("OS Administration" in line for line in lines)
        _, gui_lines, _ = inventory.multi_server_caveats(port, "sim", "tomcat", scope, "gui", "14SU3")
        assert any("OS Administration only" in line and "gate" in line for line in gui_lines)
    finally:
        port.close()


def test_a_long_itl_recovery_is_not_flagged(tmp_path: Path) -> None:
    with SimulatedCluster(tmp_path, nodes=1, time_scale=1000, ports="random") as fresh:
        port = build_cluster(cluster_config(fresh.json_path))
        try:
            entries, lines, _ = inventory.watch(port, "sim", COVERED, datetime.now(UTC), 30.0)
        finally:
            port.close()
    itl = next(e for e in entries if e["type"] == "ITLRecovery")
    assert not itl["due"] and itl["days_left"] > 7000
    assert not any("PLAN A WINDOW" in line for line in lines)
