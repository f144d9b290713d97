"""restart_services: publisher first, one service at a time, each restart once for one intent."""

from __future__ import annotations

from typing import Any

from engine.testing import StepContextDouble
from tests.workflows.steps.conftest import PUB, SUB, Lab

TVS = "Cisco Trust Verification Service"


def planned(lab: Lab) -> tuple[StepContextDouble, list[dict[str, Any]]]:
    context = lab.context_at("CallManager", "sso_disabled", force=True)
    ctx = lab.ctx("CallManager", "restarted", context)
    outcome = lab.run(ctx)
    assert outcome.kind == "wait" and outcome.wake_in == 0 and "plan" in outcome.reason
    assert lab.fake.calls_to("restart_service") == []  # the plan is recorded before any restart
    return ctx, list(ctx.context["restarts"])


def restarted(lab: Lab) -> list[tuple[str | None, str]]:
    return [(c.node, c.args["service"]) for c in lab.fake.calls_to("restart_service")]


def test_publisher_first_one_service_at_a_time(lab: Lab) -> None:
    ctx, plan = planned(lab)
    services = list(lab.definitions["CallManager"].params["services"])
    assert [(r["node"], r["service"]) for r in plan] == [(n, s) for n in (PUB, SUB) for s in services]
    outcome = lab.settle(ctx)
    assert outcome.kind == "advance"
    assert restarted(lab) == [(n, s) for n in (PUB, SUB) for s in services]
    assert len(outcome.evidence["restarts"]) == 8
    for record in ctx.context["restarts"]:
        assert record["start_time"] > record["previous_start"]


def test_a_service_not_running_is_skipped(lab: Lab) -> None:
    lab.fake.service(SUB, "Cisco Tftp").status = "Stopped"
    lab.fake.remove_service(SUB, "Cisco CTIManager")
    ctx, plan = planned(lab)
    skipped = {(r["node"], r["service"]): r["status"] for r in plan if r.get("skipped")}
    assert skipped == {(SUB, "Cisco Tftp"): "Stopped", (SUB, "Cisco CTIManager"): "NotFound"}
    lab.settle(ctx)
    assert (SUB, "Cisco Tftp") not in restarted(lab) and len(restarted(lab)) == 6


def test_a_restart_intent_whose_start_time_moved_is_not_restarted_again(lab: Lab) -> None:
    ctx, plan = planned(lab)
    ctx.record_intent(PUB, f"restart:{TVS}", {"service": TVS, "previous_start": plan[0]["previous_start"]})
    lab.fake.restart_service(PUB, TVS)  # it happened; the process died before recording it
    lab.fake.forget_calls()
    assert lab.settle(ctx).kind == "advance"
    assert (PUB, TVS) not in restarted(lab)
    assert (PUB, f"restart:{TVS}") in ctx.reconciled


def test_a_restart_intent_whose_start_time_did_not_move_is_restarted(lab: Lab) -> None:
    ctx, plan = planned(lab)
    ctx.record_intent(PUB, f"restart:{TVS}", {"service": TVS, "previous_start": plan[0]["previous_start"]})
    lab.run(ctx)
    assert restarted(lab) == [(PUB, TVS)]


def test_waits_until_the_service_runs_again_before_the_next(lab: Lab) -> None:
    ctx, _ = planned(lab)
    lab.fake.service(PUB, TVS).starting_reads = 1
    outcome = lab.run(ctx)
    assert outcome.kind == "wait" and outcome.wake_in == 5 and "Starting" in outcome.reason
    assert restarted(lab) == [(PUB, TVS)]
    outcome = lab.run(ctx)
    assert outcome.kind == "wait" and "running again" in outcome.reason
    assert restarted(lab) == [(PUB, TVS)]  # the same intent: not restarted a second time
