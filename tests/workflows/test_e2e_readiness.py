"""The pre-checks inside runs, against the simulator: each condition holds the run where its check
says, nothing changes on CUCM meanwhile, and the run goes on once the condition is repaired."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.views import RunView
from tests.workflows.lab import Lab

PUB, SUB = "cucm-pub.example.com", "cucm-sub1.example.com"


def csrs(lab: Lab) -> int:
    return sum(n for by_type in lab.sim.state()["csrs_generated"].values() for n in by_type.values())


def restarts(lab: Lab) -> dict[str, Any]:
    return {n: s for n, s in lab.sim.state()["restarts"].items() if s}


def test_broken_replication_holds_the_run_before_any_csr_until_repaired(tmp_path: Path) -> None:
    with Lab(tmp_path, nodes=2) as lab:
        lab.sim.set_flags({"replication": {SUB: 3}})
        (run_id,) = lab.start(["ipsec"])
        halt = lab.serve()
        try:
            held = lab.until(
                run_id,
                lambda v: v.state == "cluster_ready" and "replication" in v.waiting_reason,
                "the run held by the replication check",
            )
            assert "cucm-sub1" in held.waiting_reason and "utils dbreplication" in held.waiting_reason
            assert "held before the first change" in held.waiting_reason
            assert csrs(lab) == 0
            lab.sim.set_flags({"replication": {SUB: 2}})
            # Nobody approves or advances: the next poll reads it repaired.
            done = lab.until(run_id, lambda v: v.state == "done", "the run to finish once repaired")
            assert all(done.context["verified"][n]["ok"] for n in (PUB, SUB))
            assert csrs(lab) == 2
        finally:
            halt()


@pytest.mark.parametrize(
    ("flag", "words"),
    [
        ({"ctl": "token"}, ("hardware token", "SAST-ADN", "utils ctl set-cluster mixed-mode")),
        ({"license": "no-export"}, ("without export-controlled functionality", "license smart register")),
    ],
)
def test_ctl_infeasible_holds_callmanager_before_anything_is_uploaded(
    tmp_path: Path, flag: dict[str, str], words: tuple[str, ...]
) -> None:
    with Lab(tmp_path, nodes=2, phones=20, mixed_mode=True) as lab:
        lab.sim.set_flags(flag)
        before = lab.sim.state()
        (run_id,) = lab.start(["CallManager"])
        assert lab.engine is not None
        halt = lab.serve()
        try:
            first = lab.until(
                run_id,
                lambda v: v.state == "cluster_ready" and "ctl-feasible" in v.waiting_reason,
                "the pre-checks to hold the run",
            )
            assert all(w in first.waiting_reason for w in words)
            assert csrs(lab) == 0
            # The operator goes on past the pre-checks by hand: the CTL is checked again after the
            # CA's answer, and still nothing reaches CUCM.
            lab.engine.advance(run_id, "csr_generated", reason="CSRs may be made; the CTL is being fixed")
            held = lab.until(
                run_id,
                lambda v: v.state == "ctl_feasible" and "ctl-feasible" in v.waiting_reason,
                "the run held before its first upload",
            )
            assert "held before anything is uploaded" in held.waiting_reason
            assert all(w in held.waiting_reason for w in words)
            state = lab.sim.state()
            assert state["uploads_accepted"] == before["uploads_accepted"] == []
            assert state["installed"] == before["installed"] and state["ctl_updates"] == 0
            assert csrs(lab) == 2
            lab.sim.set_flags({"ctl": "tokenless", "license": "export"})
            done = lab.until(run_id, lambda v: v.state == "done", "the run to finish once repaired")
            assert all(done.context["verified"][n]["ok"] for n in (PUB, SUB))
            assert lab.sim.state()["ctl_updates"] == 1
        finally:
            halt()


def test_sso_re_enabled_during_the_run_gates_tomcat_before_its_restarts(tmp_path: Path) -> None:
    with Lab(tmp_path, nodes=2) as lab:
        lab.sim.set_flags({"trigger": "identity:sso"})
        (run_id,) = lab.start(["tomcat"])
        assert lab.engine is not None
        halt = lab.serve()
        try:
            held = lab.until(run_id, lambda v: v.status == "paused", "the SSO gate before the restarts")
            assert held.held_from == "window_before_restart", held
            assert (
                "enabled again" in held.waiting_reason and "nothing has been restarted" in held.waiting_reason
            )
            assert lab.sim.state()["sso_enabled"] is True
            assert restarts(lab) == {}
            lab.sim.set_flags({"sso_enabled": False})
            lab.engine.approve(run_id, reason="SSO disabled again")
            reminder = lab.until(
                run_id,
                lambda v: v.status == "paused" and v.held_from == "sso_reenabled",
                "the reminder to re-enable SSO",
            )
            assert all(reminder.context["verified"][n]["ok"] for n in (PUB, SUB))
            assert "Cisco Tomcat" in restarts(lab)[PUB]
            lab.engine.approve(run_id, reason="SSO re-enabled")
            lab.until(run_id, lambda v: v.state == "done", "the run to finish")
        finally:
            halt()


def _held_by_drs(v: RunView) -> bool:
    return v.state == "window_before_restart" and "DRS backup or restore is running" in v.waiting_reason


@pytest.mark.parametrize(
    ("cert_type", "version"), [("ipsec", "14SU3"), ("tomcat", "14SU3"), ("ipsec", "12.5")]
)
def test_a_drs_job_started_mid_run_holds_the_restarts_until_it_ends(
    tmp_path: Path, cert_type: str, version: str
) -> None:
    with Lab(tmp_path, nodes=2, version=version) as lab:
        lab.sim.set_flags({"trigger": "identity:drs"})
        (run_id,) = lab.start([cert_type])
        halt = lab.serve()
        try:
            held = lab.until(run_id, _held_by_drs, "the run held by the DRS job")
            assert "nothing has been restarted yet" in held.waiting_reason
            assert lab.sim.state()["drs_running"] == "backup"
            assert restarts(lab) == {}
            lab.sim.set_flags({"drs_running": None})
            done = lab.until(run_id, lambda v: v.state == "done", "the run to go on by itself")
            assert all(done.context["verified"][n]["ok"] for n in (PUB, SUB))
            assert restarts(lab)
        finally:
            halt()


def test_tomcat_on_12_5_does_not_wait_for_drs(tmp_path: Path) -> None:
    # Before 14 DRS authenticates with ipsec: a backup does not concern tomcat.
    with Lab(tmp_path, nodes=2, version="12.5") as lab:
        lab.sim.set_flags({"trigger": "identity:drs"})
        (run_id,) = lab.start(["tomcat"])
        halt = lab.serve()
        try:
            # Served with a deadline: a run held by the job would wait, not end.
            done = lab.until(run_id, lambda v: v.state == "done", "tomcat to finish beside the backup")
            assert all(done.context["verified"][n]["ok"] for n in (PUB, SUB))
        finally:
            halt()
        assert lab.sim.state()["drs_running"] == "backup"
        assert not any("DRS" in e.reason for e in lab.events_of("tomcat") if e.trigger == "wait")
