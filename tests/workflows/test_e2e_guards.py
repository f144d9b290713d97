"""Guards proven on the simulator: the SSO gates, a DRS backup holding ipsec, non-secure mode, and the
final check catching a node that still presents its old certificate."""

from __future__ import annotations

from pathlib import Path

from tests.workflows.lab import Lab

PUB, SUB = "cucm-pub.example.com", "cucm-sub1.example.com"


def test_tomcat_waits_for_sso_off_then_reminds_to_re_enable_it(tmp_path: Path) -> None:
    with Lab(tmp_path, nodes=2, sso=True) as lab:
        (run_id,) = lab.start(["tomcat"])
        assert lab.engine is not None
        halt = lab.serve()
        try:
            held = lab.until(run_id, lambda v: v.status == "paused", "the SSO gate")
            assert held.held_from == "sso_disabled"
            assert (
                "single sign-on is enabled" in held.waiting_reason
                and "utils sso disable" in held.waiting_reason
            )
            assert lab.sim.state()["csrs_generated"].get(PUB, {}).get("tomcat", 0) == 0
            # Approving while SSO is still on changes nothing: the step looks again and holds again.
            lab.engine.approve(run_id, reason="tried too early")
            lab.wait_for(
                "the gate again",
                lambda: len([e for e in lab.events_of("tomcat") if e.to_state == "paused"]) >= 2,
            )
            assert lab.engine.status(run_id)[0].held_from == "sso_disabled"
            lab.sim.set_flags({"sso_enabled": False})
            lab.engine.approve(run_id, reason="SSO disabled in the GUI")
            reminder = lab.until(
                run_id,
                lambda v: v.status == "paused" and v.held_from == "sso_reenabled",
                "the re-enable reminder",
            )
            assert "re-enable single sign-on" in reminder.waiting_reason
            assert all(reminder.context["verified"][n]["ok"] for n in (PUB, SUB))
            lab.engine.approve(run_id, reason="SSO re-enabled")
            lab.until(run_id, lambda v: v.state == "done", "the run to finish")
        finally:
            halt()


def test_a_backup_holds_ipsec_and_status_says_why(tmp_path: Path) -> None:
    with Lab(tmp_path, nodes=2) as lab:
        # Started once the CSRs are made: the pre-checks before them found DRS idle.
        lab.sim.set_flags({"trigger": "csr:drs"})
        before = lab.sim.state()
        (run_id,) = lab.start(["ipsec"])
        halt = lab.serve()
        try:
            held = lab.until(
                run_id,
                lambda v: v.state == "backup_idle" and "DRS" in v.waiting_reason,
                "ipsec to wait for the backup",
            )
            assert "backup or restore is running" in held.waiting_reason
            # Nothing installed meanwhile: CUCM still holds the old ipsec certificates.
            assert "uploaded" not in held.context
            assert lab.sim.state()["installed"] == before["installed"]
            lab.sim.set_flags({"drs_running": None})
            done = lab.until(run_id, lambda v: v.state == "done", "ipsec to finish once the backup ended")
            assert all(done.context["verified"][n]["ok"] for n in (PUB, SUB))
        finally:
            halt()


def test_non_secure_cluster_has_no_ctl_update(tmp_path: Path) -> None:
    with Lab(tmp_path, nodes=2, phones=60, mixed_mode=False) as lab:
        before = lab.sim.state()["ctl_updates"]
        lab.start(["CallManager"])
        (view,) = lab.drive()
        assert view.state == "done", (view.waiting_reason, view.last_error)
        state = lab.sim.state()
        assert state["ctl_updates"] == before == 0
        assert view.context["security_mode"] == "non-secure"
        assert any(
            e.to_state == "restarted" and "non-secure" in e.reason for e in lab.events_of("CallManager")
        )
        assert state["phones"]["registered"] == 60 and state["phones"]["itl_mismatched"] == 0


def test_verify_catches_a_node_still_presenting_its_old_certificate(tmp_path: Path) -> None:
    # A Cisco Tomcat stopped on a node now takes that node's APIs down (the run could not reach it
    # at all), so the skipped restart is HAProxy's: from 14SU1 CallManager presents the new identity
    # at once on 5061, HAProxy on 6971 only after its restart, which Cisco says to do only where it
    # runs.
    with Lab(tmp_path, nodes=2, version="14SU2", phone_interaction="manual") as lab:
        sim = lab.sim.cluster
        sub = sim.node(SUB)
        sim.control(sub, "Cisco HAProxy", "Stop")
        lab.wait_for(
            "HAProxy to stop",
            lambda: lab.sim.state()["services"][SUB]["Cisco HAProxy"]["status"] == "Stopped",
        )
        old = lab.sim.state()["presented"][SUB]["CallManager"]
        lab.start(["CallManager"])
        (view,) = lab.drive()
        assert view.status == "failed" and view.held_from == "verified", view
        # The old certificate is the self-signed one, which the cluster's CA bundle does not verify.
        assert f"{SUB}:6971 presents a certificate that does not verify" in view.last_error
        assert PUB not in view.last_error and "Cisco HAProxy" in view.last_error
        assert f"{SUB}:5061" not in view.last_error and "cucm-renew retry" in view.last_error
        state = lab.sim.state()
        assert state["presented_haproxy"][SUB]["CallManager"] == old
        assert state["presented"][SUB]["CallManager"] == view.context["issued"][SUB]["sha256"]
        skipped = [(r["node"], r["service"]) for r in view.context["restarts"] if r.get("skipped")]
        assert skipped == [(SUB, "Cisco HAProxy")]


def test_phones_that_never_return_end_in_a_gate_that_names_them(tmp_path: Path) -> None:
    with Lab(tmp_path, nodes=2, phones=40) as lab:
        cluster = lab.sim.cluster
        unplugged = set(cluster.phones.names[5:8])
        schedule = cluster.phone_control.schedule_registration

        def stays_down(i: int, now: float) -> None:
            if cluster.phones.names[i] not in unplugged:  # switched off: reset, never back
                schedule(i, now)

        cluster.phone_control.schedule_registration = stays_down
        (run_id,) = lab.start(["CAPF"])
        assert lab.engine is not None
        halt = lab.serve()
        try:
            held = lab.until(run_id, lambda v: v.status == "paused", "the missing-phones gate")
            assert held.held_from == "phones_missing"
            assert "3 phone(s) did not register again" in held.waiting_reason
            assert all(name in held.waiting_reason for name in unplugged)
            assert held.context["phones"]["registered"] == 37
            lab.engine.approve(run_id, reason="the three phones are in a storeroom")
            done = lab.until(run_id, lambda v: v.state == "done", "the run to finish")
            assert done.context["verified"]["cucm-pub.example.com"]["ok"]
        finally:
            halt()
