"""Every certificate a UC cluster carries, renewed end to end: the IM&P types and the EC twins, a
multi-server certificate (through the API, and through the GUI gate from 14SU2), and the
ITLRecovery gate. Real engine, adapters and simulator; a few runs cover several types each."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.present import summary_rows
from tests.workflows.lab import Lab, sim_restarts
from workflows.cert_types import IMP_TYPES

IMP = ["imp1.example.com", "imp2.example.com"]
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
        views = lab.drive()
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

        assert restarted("cup") == [
            (IMP[0], "Cisco SIP Proxy"),
            (IMP[0], "Cisco Presence Engine"),
            # The CA was new to cup-trust on the IM&P nodes: the sync agent carries it to peers.
            (IMP[0], "Cisco Intercluster Sync Agent"),
            (IMP[1], "Cisco SIP Proxy"),
            (IMP[1], "Cisco Presence Engine"),
        ]
        assert restarted("cup-xmpp") == [
            (IMP[0], "Cisco XCP Router"),
            (IMP[0], "Cisco Intercluster Sync Agent"),
            (IMP[1], "Cisco XCP Router"),
        ]
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
