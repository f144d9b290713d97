"""Every certificate a UC cluster carries, renewed end to end: the IM&P types and the EC twins, a
multi-server certificate (through the API, and through the GUI gate from 14SU2), and the
ITLRecovery gate. Real engine, adapters and simulator; a few runs cover several types each."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from adapters.cucm.port import NodeRef
from app import inventory
from app.present import summary_rows
from engine.views import RunView
from tests.workflows.lab import Lab, sim_restarts
from workflows.cert_types import IMP_TYPES

IMP = ["imp1.example.com", "imp2.example.com"]
DEADLINE = 90.0


def _drive(lab: Lab) -> list[RunView]:
    """``_drive(lab)`` with a deadline: a run that waits forever fails the test instead of hanging it."""
    assert lab.engine is not None
    stop = threading.Event()
    timer = threading.Timer(DEADLINE, stop.set)
    timer.start()
    try:
        lab.engine.run_until_quiet(stop=stop, on_event=lab.record)
    finally:
        timer.cancel()
    going = [(v.definition, v.state, v.waiting_reason) for v in lab.views() if v.status == "active"]
    assert not stop.is_set(), f"runs still going after {DEADLINE:g} s: {going}"
    return lab.views()


CUCM = ["cucm-pub.example.com", "cucm-sub1.example.com"]


def _types_config(types: list[str], extra: str = "") -> Callable[[str], str]:
    listed = ", ".join(f'"{t}"' for t in types)

    def edit(text: str) -> str:
        anchor = 'phone_reset = "pools"\n'
        return text.replace(anchor, f"{anchor}types = [{listed}]\n{extra}\n", 1)

    return edit


def test_imp_types_and_ec_twins_renew_on_their_nodes_with_their_restarts(tmp_path: Path) -> None:
    types = ["tomcat-ECDSA", "CallManager-ECDSA", *IMP_TYPES]
    with Lab(
        tmp_path,
        nodes=2,
        imp=2,
        phones=20,
        federation=["imp1"],
        expiry_days=dict.fromkeys(types, 20.0),
        edit_config=_types_config(types),
    ) as lab:
        before = lab.sim.state()
        lab.start(types)
        views = _drive(lab)
        state = lab.sim.state()
        by_type = {v.definition: v for v in views}
        assert {t: v.state for t, v in by_type.items()} == dict.fromkeys(types, "done"), {
            t: (v.state, v.waiting_reason or v.last_error) for t, v in by_type.items()
        }
        rows = summary_rows(views)
        assert all(r["verified"] for r in rows), rows
        nodes = {t: sorted(r["node"] for r in rows if r["type"] == t) for t in types}
        assert nodes["tomcat-ECDSA"] == sorted([*CUCM, *IMP])
        assert nodes["CallManager-ECDSA"] == CUCM
        for t in ("cup", "cup-ECDSA", "cup-xmpp", "cup-xmpp-ECDSA"):
            assert nodes[t] == IMP, t
        # Federation runs on imp1 only: imp2's s2s certificate is not in use and is left alone.
        assert nodes["cup-xmpp-s2s"] == nodes["cup-xmpp-s2s-ECDSA"] == ["imp1.example.com"]
        assert by_type["cup-xmpp-s2s"].context["not_in_use"] == ["imp2.example.com"]
        for v in views:
            for node in v.context["targets"]:
                assert state["presented"][node][v.definition] == v.context["issued"][node]["sha256"]
                assert before["presented"][node][v.definition] != state["presented"][node][v.definition]
            # The EC twins were verified with ECDSA suites on their ports, not read back.
            if v.definition.endswith("-ECDSA"):
                for node in v.context["targets"]:
                    assert v.context["verified"][node]["ok"]
        assert (
            state["presented"]["imp2.example.com"]["cup-xmpp-s2s"]
            == (before["presented"]["imp2.example.com"]["cup-xmpp-s2s"])
        )
        # Verified on the IM&P ports, by TLS.
        assert by_type["cup"].context["verified"]["imp1.example.com"]["ports"] == ["5061", "5062"]
        assert by_type["cup-xmpp"].context["verified"]["imp2.example.com"]["ports"] == ["5222"]
        assert by_type["cup-xmpp-s2s"].context["verified"]["imp1.example.com"]["ports"] == ["5269"]
        assert by_type["CallManager-ECDSA"].context["verified"][CUCM[0]]["ports"] == ["5061", "6971"]
        assert by_type["tomcat-ECDSA"].context["verified"][CUCM[0]]["ports"] == ["6972"]

        def restarted(t: str) -> list[tuple[str, str]]:
            return [
                (str(r["node"]), str(r["service"]))
                for r in by_type[t].context["restarts"]
                if not r.get("skipped")
            ]

        sync = (IMP[0], "Cisco Intercluster Sync Agent")

        def without_sync(t: str) -> list[tuple[str, str]]:
            return [r for r in restarted(t) if r != sync]

        assert without_sync("cup") == [
            (IMP[0], "Cisco SIP Proxy"),
            (IMP[0], "Cisco Presence Engine"),
            (IMP[1], "Cisco SIP Proxy"),
            (IMP[1], "Cisco Presence Engine"),
        ]
        assert without_sync("cup-xmpp") == [(IMP[0], "Cisco XCP Router"), (IMP[1], "Cisco XCP Router")]
        # The CA was new to the IM&P trust stores: the sync agent carries it to peers, restarted on the
        # IM&P publisher right after the first node's services by the run that added it. The types
        # sharing a trust store prepare at once, so any of them may be the one.
        for sharing in (
            ("cup", "cup-ECDSA"),
            ("cup-xmpp", "cup-xmpp-ECDSA", "cup-xmpp-s2s", "cup-xmpp-s2s-ECDSA"),
        ):
            adding = [t for t in sharing if sync in restarted(t)]
            assert adding, sharing
            for t in adding:
                assert restarted(t).index(sync) == 1 + max(
                    i for i, (n, _) in enumerate(without_sync(t)) if n == IMP[0]
                ), restarted(t)
        assert restarted("cup-xmpp-s2s")[0] == (IMP[0], "Cisco XCP XMPP Federation Connection Manager")
        assert {n for n, _ in restarted("cup-xmpp-s2s")} == {IMP[0]}
        # 14SU3: CallManager-ECDSA restarts CallManager and HAProxy (and TFTP where it runs).
        assert {s for _, s in restarted("CallManager-ECDSA")} == {
            "Cisco CallManager",
            "Cisco HAProxy",
            "Cisco Tftp",
        }
        assert "Cisco DRF Master" in {s for _, s in restarted("tomcat-ECDSA")}
        # cup-xmpp, then its twin (one outage at a time): each restarts XCP Router node by node.
        assert [n for _, n, _ in sim_restarts(state, ["Cisco XCP Router"])] == [*IMP, *IMP]
        assert state["uploads_rejected"] == []
        assert state["phones"]["registered"] == state["phones"]["total"]


def test_multi_server_through_the_api_and_the_itl_recovery_gate(tmp_path: Path) -> None:
    """14SU1 takes multi-server uploads through certmgr: one CSR on the publisher, one upload, every
    node presents the one certificate. CallManager waits at the ITLRecovery gate, changing nothing,
    until the operator approves."""
    types = ["tomcat", "CallManager"]
    distribution = 'distribution = { tomcat = "multi-server", CallManager = "multi-server" }'
    with Lab(
        tmp_path,
        nodes=2,
        imp=1,
        phones=10,
        version="14SU1",
        itl_recovery_days=40,
        edit_config=_types_config(types, distribution),
    ) as lab:
        before = lab.sim.state()
        lab.start(types)
        views = {v.definition: v for v in _drive(lab)}
        assert views["tomcat"].state == "done", views["tomcat"].waiting_reason
        held = views["CallManager"]
        assert held.status == "paused" and held.held_from == "expiry_check", held
        assert "ITLRecovery" in held.waiting_reason and "itl_recovery_min_days = 90" in held.waiting_reason
        assert "set cert regen ITLRecovery" in held.waiting_reason
        # Nothing of CallManager changed on CUCM while it waited.
        assert not any("CallManager" in by_type for by_type in lab.sim.state()["csrs_generated"].values())

        tomcat = views["tomcat"].context
        every = ["cucm-pub.example.com", "cucm-sub1.example.com", "imp1.example.com"]
        assert tomcat["targets"] == every
        assert tomcat["multi_server_upload"]["node"] == "cucm-pub.example.com"
        assert sorted(tomcat["multi_server_upload"]["servers"]) == sorted(every)
        assert {tomcat["issued"][n]["sha256"] for n in every} == {tomcat["uploaded"]["imp1.example.com"]}
        state = lab.sim.state()
        tomcat_csrs = {n: c["tomcat"] for n, c in state["csrs_generated"].items() if "tomcat" in c}
        assert tomcat_csrs == {"cucm-pub.example.com": 1}
        for node in every:
            assert state["presented"][node]["tomcat"] == tomcat["issued"][node]["sha256"]
        # Restarted on every node, publisher first.
        order = [n for _, n, _ in sim_restarts(state, ["Cisco Tomcat"])]
        assert order == every

        # check: the multi-server certificate names every configured node; a node added since
        # (one more in the configuration) is named as needing a new one.
        assert lab.adapters is not None
        port = lab.adapters.cucm(lab.cluster)
        scope = port.nodes()
        _, said, _ = inventory.multi_server_caveats(port, "sim", "tomcat", scope, "api", "14SU1")
        assert "names all 3 node(s)" in said[0], said
        added = NodeRef("cucm-sub9.example.com", "127.0.0.9", 8443, 22, "subscriber")
        entries, said, _ = inventory.multi_server_caveats(
            port, "sim", "tomcat", [*scope, added], "api", "14SU1"
        )
        assert entries[0]["uncovered"] == ["cucm-sub9.example.com"] and "does not name" in said[0]

        assert lab.engine is not None
        lab.engine.approve(held.id, reason="ITLRecovery window booked for next month")
        callmanager = next(v for v in _drive(lab) if v.definition == "CallManager")
        assert callmanager.state == "done", (callmanager.waiting_reason, callmanager.last_error)
        assert callmanager.context["itl_recovery"]["approved"] is True
        cm = ["cucm-pub.example.com", "cucm-sub1.example.com"]
        assert callmanager.context["targets"] == cm
        assert sorted(callmanager.context["multi_server_upload"]["servers"]) == cm
        state = lab.sim.state()
        for node in cm:
            assert state["presented"][node]["CallManager"] == callmanager.context["issued"][node]["sha256"]
            assert state["presented"][node]["CallManager"] != before["presented"][node]["CallManager"]
        assert state["uploads_rejected"] == []


def test_multi_server_from_14su2_stops_for_the_gui_upload_then_reads_every_node_back(
    tmp_path: Path,
) -> None:
    types = ["cup-xmpp"]
    with Lab(
        tmp_path,
        nodes=1,
        imp=2,
        phones=0,
        version="14SU3",
        expiry_days={"cup-xmpp": 20.0},
        edit_config=_types_config(types, 'distribution = { cup-xmpp = "multi-server" }'),
    ) as lab:
        (run_id,) = lab.start(types)
        view = _drive(lab)[0]
        assert view.status == "paused" and view.held_from == "leaf_uploaded", view
        assert "OS Administration" in view.waiting_reason and "imp1.example.com" in view.waiting_reason
        # The CSR was made once, on the IM&P publisher, naming both IM&P nodes.
        csrs = {n: c["cup-xmpp"] for n, c in lab.sim.state()["csrs_generated"].items() if "cup-xmpp" in c}
        assert csrs == {"imp1.example.com": 1}

        # Approving before the GUI upload reads the nodes and stops again.
        assert lab.engine is not None
        lab.engine.approve(run_id, reason="too early")
        view = _drive(lab)[0]
        assert view.status == "paused" and view.held_from == "leaf_uploaded"
        assert "imp2.example.com" in view.waiting_reason

        # The operator uploads in OS Administration (the simulator's stand-in for the GUI).
        issued = view.context["issued"]["imp1.example.com"]
        leaf_chain = [issued["leaf_pem"], *reversed(issued["chain_pems"])]
        sim_node = lab.sim.node("imp1.example.com")
        _, servers = lab.sim.cluster.upload_identity_to(sim_node, "cup-xmpp", leaf_chain, via="gui")
        assert sorted(servers) == IMP
        lab.engine.approve(run_id, reason="uploaded in OS Administration")
        view = _drive(lab)[0]
        assert view.state == "done", (view.waiting_reason, view.last_error)
        assert view.context["multi_server_upload"]["via"] == "gui"
        state = lab.sim.state()
        for node in IMP:
            assert state["presented"][node]["cup-xmpp"] == issued["sha256"]
            assert view.context["verified"][node]["ports"] == ["5222"]
