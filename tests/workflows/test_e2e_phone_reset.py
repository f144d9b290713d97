"""How the phone step resets phones: by device pool (one AXL request per pool), by name for phones
in no pool, or every phone by name when the cluster is configured so."""

from __future__ import annotations

import json
from pathlib import Path

from app.config import load_config
from tests.workflows.lab import Lab

PHONES = 60


def manual(lab: Lab, reset: str = "pools") -> None:
    """The cluster resets no phone itself (Phone Interaction on Certificate Update off), so the
    tool resets them all: what these tests are about."""
    text = lab.config_path.read_text()
    assert 'phone_reset = "pools"\n' in text  # what init writes for the simulator
    assert 'phone_interaction = "manual"' in text  # the Lab mirrors the simulator's setting
    text = text.replace('phone_reset = "pools"\n', f'phone_reset = "{reset}"\n', 1)
    lab.config_path.write_text(text)
    lab.close_engine()
    lab.config = load_config(lab.config_path)
    lab.open_engine()


def test_pools_reset_once_each_and_phones_in_no_pool_by_name(tmp_path: Path) -> None:
    with Lab(tmp_path, nodes=3, phones=PHONES, phone_interaction="manual") as lab:
        manual(lab)
        outside = lab.sim.cluster.phones.names[:5]
        with lab.sim.cluster.lock:
            for name in outside:
                lab.sim.cluster.phones.pool[lab.sim.cluster.phones.index[name]] = -1
        (run_id,) = lab.start(["CallManager"])
        lab.drive()
        assert lab.engine is not None
        view = lab.engine.status(run_id)[0]
        assert view.state == "done", (view.waiting_reason, view.last_error)
        state = lab.sim.state()
        # One resetDevicePool per pool holding phones (the publisher's holds none), never repeated.
        assert {p: len(t) for p, t in state["device_pool_resets"].items()} == {
            "DP-cucm-sub1": 1,
            "DP-cucm-sub2": 1,
        }
        # Pool members and the five phones outside any pool: each phone reset exactly once.
        assert state["phone_resets"] == PHONES
        phones = view.context["phones"]
        assert phones["reset_pools"] == 2 and phones["reset"] == PHONES and phones["reset_unconfirmed"] == 0
        assert state["phones"]["registered"] == PHONES
        intents = [
            json.loads(e["intent"]) if isinstance(e["intent"], str) else e["intent"]
            for e in lab.engine.store.effects(run_id)
            if e["name"] == "phone_reset"
        ]
        assert sorted(i.get("device_pool") or i["first"] for i in intents) == [
            "DP-cucm-sub1",
            "DP-cucm-sub2",
            outside[0],
        ]


def test_configured_per_phone_reset_never_resets_a_pool(tmp_path: Path) -> None:
    with Lab(tmp_path, nodes=3, phones=PHONES, phone_interaction="manual") as lab:
        manual(lab, "phones")
        (run_id,) = lab.start(["CallManager"])
        lab.drive()
        assert lab.engine is not None
        view = lab.engine.status(run_id)[0]
        assert view.state == "done", (view.waiting_reason, view.last_error)
        state = lab.sim.state()
        assert state["device_pool_resets"] == {}
        assert state["phone_resets"] == PHONES
        assert view.context["phones"]["reset_pools"] == 0 and view.context["phones"]["reset"] == PHONES
