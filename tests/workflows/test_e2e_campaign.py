"""All five types on a four-node cluster in mixed mode: the real engine, adapters and simulator."""

from __future__ import annotations

import itertools
from pathlib import Path

from app.present import summary_rows
from tests.workflows.lab import Lab, sim_restarts
from workflows.cert_types import CERT_TYPES


def test_full_campaign_on_a_four_node_mixed_mode_cluster(tmp_path: Path) -> None:
    with Lab(tmp_path, nodes=3, imp=1, phones=300, mixed_mode=True) as lab:
        before = lab.sim.state()
        lab.start(CERT_TYPES)
        seen, stop_watching = lab.watch_status()
        try:
            views = lab.drive()
        finally:
            stop_watching()
        state = lab.sim.state()

        by_type = {v.definition: v for v in views}
        assert {t: v.state for t, v in by_type.items()} == dict.fromkeys(CERT_TYPES, "done")
        rows = summary_rows(views)
        assert all(r["verified"] for r in rows), rows
        nodes = {t: sorted(r["node"] for r in rows if r["type"] == t) for t in CERT_TYPES}
        cucm = ["cucm-pub.example.com", "cucm-sub1.example.com", "cucm-sub2.example.com"]
        assert nodes["tomcat"] == nodes["ipsec"] == [*cucm, "imp1.example.com"]
        assert nodes["CallManager"] == nodes["TVS"] == cucm
        assert nodes["CAPF"] == ["cucm-pub.example.com"]  # the publisher only

        # What each node presents is what was uploaded: the simulator's view agrees with verify.
        for v in views:
            for node in v.context["targets"]:
                assert state["presented"][node][v.definition] == v.context["issued"][node]["sha256"]
                assert before["presented"][node][v.definition] != state["presented"][node][v.definition]
        assert state["uploads_rejected"] == []

        # Mixed mode: the CTL was rebuilt for CAPF and for CallManager, not for TVS.
        assert state["ctl_updates"] == before["ctl_updates"] + 2
        # Every phone came back, none stranded by an ITL mismatch or a stale CTL.
        assert state["phones"] == {"total": 300, "registered": 300, "itl_mismatched": 0, "ctl_failed": 0}
        # 14SU3: CUCM resets the phones itself on each CallManager, CAPF and TVS upload (Phone
        # Interaction on Certificate Update); the tool finds none it missed and resets none again.
        assert state["phone_resets"] == 0
        assert {r["type"] for r in state["automatic_phone_resets"]} == {"CAPF", "CallManager", "TVS"}

        # TVS waited for CallManager, said so in status, and only started uploading after it was done.
        cm_done = next(e.ts for e in lab.events_of("CallManager") if e.to_state == "done")
        tvs_upload = next(e.ts for e in lab.events_of("TVS") if e.to_state == "trust_uploaded")
        assert tvs_upload >= cm_done
        tvs_reasons = [v.waiting_reason for v in seen if v.definition == "TVS"]
        assert any("CallManager" in r for r in tvs_reasons), set(tvs_reasons)
        # One outage at a time per cluster: the types' outage sections never overlap.
        sections = []
        for t in CERT_TYPES:
            (outage,) = [e for e in lab.definitions[t].exclusion if e.group == "outage"]
            ev = lab.events_of(t)
            start = next(e.ts for e in ev if e.to_state == outage.from_state)
            end = next(e.ts for e in ev if e.to_state in (outage.until, "done"))
            sections.append((start, end))
        sections.sort()
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(sections)), sections

        # Restart order as the simulator recorded it: publisher first, one node at a time, each
        # running again (its new start time) before the next node's restart. (CallManager restarts
        # twice per node here, after each CTL update: tests/workflows/test_e2e_releases.py splits
        # them by run.)
        for service in ("Cisco Tomcat",):
            restarts = sim_restarts(state, [service])
            order = [node for _, node, _ in restarts]
            assert order[0] == "cucm-pub.example.com", order
            assert sorted(order) == sorted(set(order)), order  # once per node
            running = {n: state["services"][n][service]["start_time"] for n in order}
            for (_, prev, _), (t_next, _, _) in itertools.pairwise(restarts):
                assert running[prev] <= t_next, (service, prev, running[prev], t_next)
