"""Cisco's procedure on simulated 12.5, 14, 14SU2 and 15 clusters (3 CUCM nodes and an IM&P node,
TFTP deactivated on one subscriber), asserted from the simulator's own record: which services
restarted on which node and in what order, one outage at a time, phones counted before the change,
failback between CallManager nodes, and CUCM 14+'s own phone reset never doubled by the tool."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from engine.views import EventView
from tests.workflows.lab import Lab
from workflows.registry import build_registry, load_checked_definitions
from workflows.releases import Release, rules

PUB, SUB1, SUB2, IMP = (f"{n}.example.com" for n in ("cucm-pub", "cucm-sub1", "cucm-sub2", "imp1"))
NODES = (PUB, SUB1, SUB2, IMP)
OFF = {"cucm-sub2": ["Cisco Tftp"]}
PHONES = 120
DEFINITIONS = load_checked_definitions(build_registry())


def at(iso_text: str) -> datetime:
    return datetime.fromisoformat(iso_text.split("@", 1)[-1])


def recorded(state: dict[str, Any]) -> list[tuple[datetime, str, str]]:
    """(time, node, service) of every restart the simulator carried out, in time order."""
    out = [
        (at(t), node, service)
        for node, by_service in state["restarts"].items()
        for service, times in by_service.items()
        for t in times
    ]
    return sorted(out)


def outage_window(lab: Lab, cert_type: str) -> tuple[datetime, datetime]:
    """From entering the type's `outage` section to leaving it (its `until` state, or final)."""
    (section,) = [e for e in DEFINITIONS[cert_type].exclusion if e.group == "outage"]
    events: list[EventView] = lab.events_of(cert_type)
    start = next(e.ts for e in events if e.to_state == section.from_state)
    end = next(e.ts for e in events if e.to_state in (section.until, "done"))
    return datetime.fromisoformat(start), datetime.fromisoformat(end)


def expected_restarts(lab: Lab, release: str, cert_type: str, mixed: bool) -> list[tuple[str, str]]:
    """The release table's list (plus TFTP and CallManager after a CTL update), on every node where
    the simulator has the service activated: publisher first, then one node after another."""
    table = rules(release)
    services = list(table.restart_services(cert_type))
    if mixed and cert_type in table.ctl_update_after:
        services += [s for s in table.ctl_update_restarts if s not in services]
    out = []
    for node in NODES:
        have = lab.sim.cluster.node(node).services
        out += [(node, s) for s in services if s in have and have[s].activated]
    return out


def run_campaign(lab: Lab, types: Sequence[str]) -> dict[str, Any]:
    lab.start(types, force=True)
    views = lab.drive()
    assert {v.definition: v.state for v in views} == dict.fromkeys(types, "done"), [
        (v.definition, v.state, v.waiting_reason) for v in views
    ]
    return lab.sim.state()


def check_restarts_and_outages(
    lab: Lab, state: dict[str, Any], release: str, types: Sequence[str], mixed: bool
) -> None:
    windows = {t: outage_window(lab, t) for t in types}
    # One outage at a time per cluster: the types' outage sections never interleave.
    ordered = sorted(windows.values())
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(ordered)), windows
    restarts = recorded(state)
    # Every restart the simulator saw lies in exactly one type's outage section...
    for when, node, service in restarts:
        owners = [t for t, (a, b) in windows.items() if a <= when <= b]
        assert len(owners) == 1, (when, node, service, windows)
    # ... and within it, the release's list on every node where activated, publisher first, one
    # node after another: exactly what Cisco's order says, each once per run.
    for t in types:
        a, b = windows[t]
        seen = [(node, service) for when, node, service in restarts if a <= when <= b]
        assert seen == expected_restarts(lab, release, t, mixed), (release, t, seen)
    # Each restart began only once the one before it was running again.
    for t in types:
        done = [r for r in lab.view(t).context["restarts"] if not r.get("skipped")]
        for r, nxt in itertools.pairwise(done):
            assert r["running_at"] <= nxt["requested_at"], (t, r, nxt)


CASES = [
    # release, mixed mode, types: each case covers what differs in that release.
    pytest.param("12.5", True, ["CAPF", "CallManager"], id="12.5-mixed-CAPF-CallManager"),
    pytest.param("14", False, ["tomcat", "ipsec", "CallManager"], id="14-nonsecure-tomcat-ipsec-CallManager"),
    pytest.param("14SU2", True, ["CallManager", "TVS"], id="14SU2-mixed-CallManager-TVS"),
    pytest.param("15", False, ["tomcat", "CAPF", "TVS"], id="15-nonsecure-tomcat-CAPF-TVS"),
]


@pytest.mark.parametrize(("release", "mixed", "types"), CASES)
def test_cisco_order_per_release(tmp_path: Path, release: str, mixed: bool, types: list[str]) -> None:
    with Lab(
        tmp_path, nodes=3, imp=1, phones=PHONES, mixed_mode=mixed, version=release, deactivated=OFF
    ) as lab:
        state = run_campaign(lab, types)
        check_restarts_and_outages(lab, state, release, types, mixed)
        views = {v.definition: v for v in lab.views()}
        # The release read from the cluster (the simulator's 12.5 build is a 12.5SU1 one).
        wanted = Release.parse(release)
        for v in views.values():
            got = Release.parse(v.context["release"])
            assert (got.major, got.minor) == (wanted.major, wanted.minor) and got.su >= wanted.su
        # Every phone counted before the change came back, none stranded.
        assert state["phones"] == {
            "total": PHONES,
            "registered": PHONES,
            "itl_mismatched": 0,
            "ctl_failed": 0,
        }
        automatic = rules(release).phone_interaction_on_certificate_update
        for t in types:
            context = views[t].context
            if t in ("CAPF", "CallManager", "TVS"):
                baseline = context["baseline"]
                assert len(baseline["names"]) == PHONES
                assert baseline["before"] == ("upload" if automatic else "ctl_update" if mixed else "restart")
                assert context["phones"]["registered"] == PHONES
            # Verified where the release says: per node, on the ports whose service runs there.
            for node, result in context["verified"].items():
                assert result["ok"], (t, node, result)
                ports = [
                    str(p.port)
                    for p in rules(release).ports_for(t)
                    if lab.sim.cluster.node(node).services.get(p.service)
                    and lab.sim.cluster.node(node).services[p.service].activated
                ]
                assert result["ports"] == ports, (t, node, result)
                assert result["how"] == ("tls" if ports else "read back")
        if "CallManager" in types:
            # Failback waited for between CallManager nodes: each restart with phones registered to
            # it waited until they were back before the next restart began.
            records = views["CallManager"].context["restarts"]
            done = [r for r in records if not r.get("skipped")]
            cm = [r for r in done if r["service"] == "Cisco CallManager"]
            if cm:
                assert any(r.get("failback") for r in cm)
                for r, nxt in itertools.pairwise(done):
                    if r["service"] == "Cisco CallManager" and r.get("failback"):
                        assert r["failback_at"] <= nxt["requested_at"], (r, nxt)
        if automatic and "CallManager" in types:
            # 14+: CUCM reset every phone on the CallManager upload; the tool reset none again.
            by_cucm = sum(r["phones"] for r in state["automatic_phone_resets"] if r["type"] == "CallManager")
            assert by_cucm == PHONES and state["phone_resets"] == 0
            assert views["CallManager"].context["phones"]["reset"] == 0


def test_a_phone_a_stale_ctl_keeps_off_is_reported_never_counted_back(tmp_path: Path) -> None:
    with Lab(tmp_path, nodes=3, phones=40, mixed_mode=True, version="12.5", deactivated=OFF) as lab:
        control = lab.sim.cluster.phone_control
        recorded_only = control.record.ctl_updated

        def update_that_did_not_take(node: Any) -> None:
            # The CTL update is acknowledged but leaves the old entries (e.g. an update run before
            # the new certificates were in place): secure phones then fail to register.
            with control.lock:
                recorded_only()

        control.update_ctl = update_that_did_not_take  # type: ignore[method-assign]
        (run_id,) = lab.start(["CallManager"], force=True)
        lab.drive()
        assert lab.engine is not None
        view = lab.engine.status(run_id)[0]
        state = lab.sim.state()
        stranded = state["phones"]["ctl_failed"]
        assert stranded > 0
        # The stranded phones of a subscriber never fail back after its CallManager restart: the
        # run stops there, naming them, before the next node's CallManager is restarted.
        assert view.state == "paused" and "did not register again after its Cisco CallManager restart" in (
            view.waiting_reason
        )
        gated = [r for r in view.context["restarts"] if r.get("failback_gated")]
        assert len(gated) == 1 and gated[0]["failback_missing"][0] in view.waiting_reason
        # An operator goes on; at the end the same phones are reported, never counted as back.
        while view.state == "paused" and "CallManager restart" in view.waiting_reason:
            lab.engine.approve(run_id)
            lab.drive()
            view = lab.engine.status(run_id)[0]
        assert view.state == "paused" and "did not register again" in view.waiting_reason
        missing = view.context["phones"]["missing"]
        assert len(missing) == stranded and view.context["phones"]["registered"] == 40 - stranded
        assert missing[0] in view.waiting_reason and "utils itl reset localkey" in view.waiting_reason
        assert len(view.context["baseline"]["names"]) == 40  # counted before the change
