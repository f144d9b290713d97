"""The way back: a run stopped after the identity upload says what it changed and the documented
commands that undo it, per type and release (the real steps over the in-memory CUCM)."""

from __future__ import annotations

from tests.workflows.steps.conftest import IMP, PUB, SUB, Lab
from workflows import wayback


def test_a_run_stopped_after_the_identity_upload(lab: Lab) -> None:
    context = lab.context_at("CallManager", "leaf_uploaded")
    ctx = lab.ctx("CallManager", "leaf_uploaded", context)
    assert lab.run(ctx).kind == "advance"
    stopped = dict(ctx.context)
    assert set(stopped["uploaded"]) == {PUB, SUB}

    plan = wayback.way_back({**stopped, "security_mode": "1"}, "CallManager", "14SU2")
    assert plan.changes[0].startswith("CallManager CSR regenerated on cucm-pub.example.com")
    assert f"signed CallManager identity installed on {PUB}, {SUB}" in plan.changes
    commands = [(c.node, c.command) for c in plan.commands]
    assert commands[:2] == [(PUB, "set cert regen CallManager"), (SUB, "set cert regen CallManager")]
    # 14SU1 onwards: HAProxy only after a CallManager change (part 2 §1a).
    assert (PUB, "utils service restart Cisco HAProxy") in commands
    assert (PUB, "utils service restart Cisco CallManager") not in commands[:4]
    ctl = commands.index((PUB, "utils ctl update CTLFile"))
    assert ctl > commands.index((SUB, "utils service restart Cisco HAProxy"))
    assert any("utils ctl reset localkey" in n for n in plan.notes)
    assert all(node != IMP for node, _ in commands)

    on_14_0 = [c.command for c in wayback.way_back(stopped, "CallManager", "14").commands]
    assert "utils service restart Cisco CTIManager" in on_14_0
    non_secure = wayback.way_back({**stopped, "security_mode": "0"}, "CallManager", "14SU2")
    assert "utils ctl update CTLFile" not in [c.command for c in non_secure.commands]
    assert any("utils itl reset localkey" in n for n in non_secure.notes)
    text = plan.text("r-1")
    assert "set cert regen CallManager" in text and "cucm-renew retry r-1" in text


def test_before_any_upload_nothing_in_service_changed(lab: Lab) -> None:
    context = lab.context_at("tomcat", "trust_uploaded")
    plan = wayback.way_back(context, "tomcat", "15")
    assert plan.commands == ()
    assert any("nothing in service changed" in n for n in plan.notes)
