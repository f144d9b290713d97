"""Change windows, approval and holds on the simulator, driven as the daemon drives them, with the
cluster's clock (a scaled clock pinned to a chosen Friday evening), never the wall clock."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from app.wiring import ScaledClock
from tests.workflows.lab import Lab
from workflows.timestamps import instant

PARIS = ZoneInfo("Europe/Paris")
FRIDAY_EVENING = datetime(2026, 12, 4, 22, 0, tzinfo=PARIS)
WINDOW_OPENS = datetime(2026, 12, 5, 1, 0, tzinfo=PARIS)
WINDOW_CLOSES = datetime(2026, 12, 5, 5, 0, tzinfo=PARIS)


def cluster_settings(lines: str) -> Callable[[str], str]:
    """The operator's edit: settings added to the cluster's table."""
    return lambda text: text.replace('phone_reset = "pools"\n', f'phone_reset = "pools"\n{lines}\n', 1)


def test_a_run_started_outside_the_window_prepares_then_waits_for_it_and_reports_its_overrun(
    tmp_path: Path,
) -> None:
    settings = 'timezone = "Europe/Paris"\nwindows = ["Sat 01:00-05:00"]\nblackout = ["2026-12-25"]'
    with Lab(tmp_path, nodes=2, phones=40, edit_config=cluster_settings(settings)) as lab:
        assert lab.adapters is not None and lab.engine is not None
        clock = ScaledClock(lab.time_scale, start=FRIDAY_EVENING)
        lab.adapters.clock = clock
        (run_id,) = lab.start(["CallManager"], force=True)
        halt = lab.serve()
        try:
            waiting = lab.until(
                run_id,
                lambda v: (
                    v.state == "window_before_upload" and "outside the change window" in v.waiting_reason
                ),
                "the run to wait for the window",
            )
            # Preparation ran outside the window: CSRs signed, the chain trusted; nothing that
            # interrupts service (the identity upload, restarts) has started.
            assert set(waiting.context["trusted"]) == set(waiting.context["targets"])
            assert "uploaded" not in waiting.context and "restarts" not in waiting.context
            assert "Sat 2026-12-05 01:00 CET" in waiting.waiting_reason
            estimate = waiting.context["window"]["estimate"]
            assert estimate["seconds"] > 0 and estimate["restarts"] and estimate["phones"] == 40
            assert "estimated outage" in waiting.waiting_reason
            # A wait whose wake time is the window's start, on the cluster's clock.
            assert waiting.next_wake_at is not None
            woken = clock.at(waiting.next_wake_at.timestamp())
            assert abs((woken - WINDOW_OPENS).total_seconds()) < 120
            # Once in its outage, the window closes under it (the clock jumps past 05:00): the
            # run finishes, and the overrun is reported.
            lab.until(
                run_id, lambda v: v.state in ("leaf_uploaded", "ctl_updated", "restarted"), "the outage"
            )
            clock.shift((WINDOW_CLOSES - WINDOW_OPENS).total_seconds() + 1800)
            done = lab.until(run_id, lambda v: v.state == "done", "the run to finish")
        finally:
            halt()
        entered = next(e for e in lab.events_of("CallManager") if e.to_state == "leaf_uploaded")
        assert clock.at(instant(entered.ts).timestamp()) >= WINDOW_OPENS
        assert entered.evidence["window"]["start"] == WINDOW_OPENS.astimezone(UTC).strftime(
            "%Y-%m-%dT%H:%M:%S.000000Z"
        )
        assert all(done.context["verified"][n]["ok"] for n in done.context["targets"])
        report = next(e for e in lab.events_of("CallManager") if e.from_state == "outage_reported")
        assert report.evidence["notify"] == "window_missed"
        assert report.evidence["outage"]["overrun_s"] >= 1800
        assert "overran its change window" in report.reason
        assert report.evidence["outage"]["restarts"]


def test_approval_and_a_hold_stop_the_outage_until_the_operator_lets_it_go(tmp_path: Path) -> None:
    with Lab(tmp_path, nodes=2, phones=20, edit_config=cluster_settings("approval = true")) as lab:
        assert lab.engine is not None
        held = lab.cli("hold", lab.cluster, "--reason", "carrier maintenance tonight")
        assert held.returncode == 0, held.stderr
        (run_id,) = lab.start(["CAPF"], force=True)
        halt = lab.serve()
        try:
            gate = lab.until(run_id, lambda v: v.status == "paused", "the approval gate")
            assert gate.held_from == "window_before_upload"
            assert "approval needed before the outage of CAPF" in gate.waiting_reason
            assert "estimated outage" in gate.waiting_reason
            assert "uploaded" not in gate.context
            status = lab.cli("status")
            assert (
                f"cluster {lab.cluster} ON HOLD" in status.stdout and "carrier maintenance" in status.stdout
            )
            approved = lab.cli("approve", run_id, "--reason", "CAB-1234")
            assert approved.returncode == 0, approved.stderr
            on_hold = lab.until(run_id, lambda v: "on hold" in v.waiting_reason, "the hold to keep it out")
            assert on_hold.state == "window_before_upload" and on_hold.status == "active"
            assert "carrier maintenance tonight" in on_hold.waiting_reason
            assert "uploaded" not in on_hold.context
            released = lab.cli("release", lab.cluster)
            assert released.returncode == 0, released.stderr
            done = lab.until(run_id, lambda v: v.state == "done", "the run to finish once released")
            assert done.context["window"]["approved_at"]
        finally:
            halt()
        audit = lab.cli("audit", "export", "--cluster", lab.cluster)
        scoped = [json.loads(line) for line in audit.stdout.splitlines()]
        triggers = [(e["trigger"], e["run"]) for e in scoped if e["trigger"] in ("hold", "release")]
        assert triggers == [("hold", ""), ("release", "")]
        assert lab.cli("audit", "verify").returncode == 0


def test_plan_reads_the_cluster_nodes_restarts_phones_estimate_and_next_window(tmp_path: Path) -> None:
    settings = 'timezone = "Europe/Paris"\nwindows = ["Sun 02:00-06:00"]\napproval = true'
    extra = {"cucm-pub": ["example.com"]}
    with Lab(tmp_path, nodes=3, phones=30, extra_sans=extra, edit_config=cluster_settings(settings)) as lab:
        shown = lab.cli("plan", "--type", "CallManager", "--json")
        assert shown.returncode == 0, shown.stderr
        (entry,) = json.loads(shown.stdout)
        live = entry["clusters"][lab.cluster]
        nodes = [n["node"] for n in live["nodes"]]
        assert nodes[0] == "cucm-pub.example.com" and len(nodes) == 3
        # The names each CSR carries over from the node's certificate, its FQDN first.
        names = entry["names"][lab.cluster]
        for n in live["nodes"]:
            carried = names[n["node"]]
            assert n["csr_names"] == [n["node"], *(a for a in carried["alt_names"] if a != n["node"])]
            assert carried["common_name"] == n["node"]
        assert live["nodes"][0]["csr_names"] == ["cucm-pub.example.com", "example.com"]
        # Publisher first, one node at a time: every restart names its node and service.
        order = [node for node, _ in live["restarts"]]
        assert order == sorted(order, key=lambda n: n != "cucm-pub.example.com")
        assert sum(live["phones"].values()) == 30
        assert live["estimate"]["seconds"] > 0 and live["estimate"]["phones"] == 30
        assert live["next_window"]["local"].startswith("Sun ") and live["approval"] is True
        text = lab.cli("plan", "--type", "CallManager")
        assert "estimated outage:" in text.stdout and "next window that fits: Sun " in text.stdout
