"""restart_services: the release's list on every node where each service is activated, publisher
first, one service at a time, each restart once for one intent; CallManager failback."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.cucm.fake import FakeCucm
from engine.testing import StepContextDouble, fixed_clock
from tests.workflows.steps.conftest import IMP, PUB, SUB, Lab
from workflows.releases import rules

TVS = "Cisco Trust Verification Service"
TFTP = "Cisco Tftp"
CM = "Cisco CallManager"
SUB2 = "cucm-sub2.example.com"


def planned(
    lab: Lab, cert_type: str = "CallManager", at: str = "sso_disabled", **deps: Any
) -> tuple[StepContextDouble, list[dict[str, Any]]]:
    context = lab.context_at(cert_type, at, force=True)
    ctx = lab.ctx(cert_type, "restarted", context, **deps)
    outcome = lab.run(ctx)
    assert outcome.kind == "wait" and outcome.wake_in == 0 and "plan" in outcome.reason
    assert lab.fake.calls_to("restart_service") == []  # the plan is recorded before any restart
    return ctx, list(ctx.context["restarts"])


def restarted(lab: Lab) -> list[tuple[str | None, str]]:
    return [(c.node, c.args["service"]) for c in lab.fake.calls_to("restart_service")]


@pytest.fixture
def lab125(lab: Lab) -> Lab:
    lab.fake = FakeCucm(
        "lab",
        [(PUB, "publisher"), (SUB, "subscriber"), (SUB2, "subscriber"), (IMP, "imp")],
        release="12.5.1.11900-146",
        mixed_mode=True,
        csr_keys="ec",
        clock=fixed_clock,
    )
    return lab


def test_the_release_list_on_every_node_where_activated_publisher_first(lab: Lab) -> None:
    ctx, plan = planned(lab)
    services = list(rules("14SU3").restart_services("CallManager"))
    assert services == ["Cisco HAProxy", TFTP]
    assert [(r["node"], r["service"]) for r in plan] == [(n, s) for n in (PUB, SUB, IMP) for s in services]
    assert {r["node"]: r.get("why") for r in plan if r.get("skipped")} == {IMP: "not on this node"}
    outcome = lab.settle(ctx)
    assert outcome.kind == "advance"
    assert restarted(lab) == [(n, s) for n in (PUB, SUB) for s in services]
    for record in ctx.context["restarts"]:
        if not record.get("skipped"):
            assert record["start_time"] > record["previous_start"]


def test_capf_restarts_tvs_tftp_and_after_the_ctl_callmanager_on_every_node(lab125: Lab) -> None:
    lab = lab125
    lab.fake.service(SUB2, TFTP).activated = False  # Tftp deactivated on one subscriber
    ctx, _ = planned(lab, "CAPF", "restarted")
    assert ctx.context["ctl_updated"] is True and ctx.context["targets"] == [PUB]
    lab.settle(ctx)
    capf = "Cisco Certificate Authority Proxy Function"
    assert restarted(lab) == [
        (PUB, capf), (PUB, TVS), (PUB, TFTP), (PUB, CM),
        (SUB, TVS), (SUB, TFTP), (SUB, CM),
        (SUB2, TVS), (SUB2, CM),
    ]  # fmt: skip
    why = {(r["node"], r["service"]): r["why"] for r in ctx.context["restarts"] if r.get("skipped")}
    assert why[(SUB2, TFTP)] == "not activated" and why[(IMP, TVS)] == "not on this node"


def test_a_service_stopped_by_command_is_not_started(lab: Lab) -> None:
    lab.fake.service(SUB, TFTP).status = "Stopped"
    ctx, plan = planned(lab)
    skipped = {(r["node"], r["service"]): r["why"] for r in plan if r.get("skipped")}
    assert "not started by the tool" in skipped[(SUB, TFTP)]
    lab.settle(ctx)
    assert (SUB, TFTP) not in restarted(lab)


def test_a_restart_intent_whose_start_time_moved_is_not_restarted_again(lab: Lab) -> None:
    ctx, plan = planned(lab)
    first = plan[0]["service"]
    ctx.record_intent(
        PUB, f"restart:{first}", {"service": first, "previous_start": plan[0]["previous_start"]}
    )
    lab.fake.restart_service(PUB, first)  # it happened; the process died before recording it
    lab.fake.forget_calls()
    assert lab.settle(ctx).kind == "advance"
    assert (PUB, first) not in restarted(lab)
    assert (PUB, f"restart:{first}") in ctx.reconciled


def test_a_restart_intent_whose_start_time_did_not_move_is_restarted(lab: Lab) -> None:
    ctx, plan = planned(lab)
    first = plan[0]["service"]
    ctx.record_intent(
        PUB, f"restart:{first}", {"service": first, "previous_start": plan[0]["previous_start"]}
    )
    lab.run(ctx)
    assert restarted(lab) == [(PUB, first)]


def test_waits_until_the_service_runs_again_before_the_next(lab: Lab) -> None:
    ctx, plan = planned(lab)
    first = plan[0]["service"]
    lab.fake.service(PUB, first).starting_reads = 1
    outcome = lab.run(ctx)
    assert outcome.kind == "wait" and outcome.wake_in == 5 and "Starting" in outcome.reason
    assert restarted(lab) == [(PUB, first)]
    outcome = lab.run(ctx)
    assert outcome.kind == "wait" and "running again" in outcome.reason
    assert restarted(lab) == [(PUB, first)]  # the same intent: not restarted a second time


def test_failback_waited_for_before_the_next_node(lab125: Lab) -> None:
    lab = lab125
    lab.fake.mixed_mode = False
    lab.fake.reregister_after = 2
    lab.fake.add_phones(["SEPA", "SEPB"], node=SUB)
    lab.fake.add_phones(["SEPC"], node=SUB2)
    ctx, plan = planned(lab, phone_interaction="manual")
    assert ctx.context["baseline"]["before"] == "restart"
    assert {r["node"]: r.get("failback") for r in plan if r["service"] == CM and not r.get("skipped")} == {
        PUB: [],
        SUB: ["SEPA", "SEPB"],
        SUB2: ["SEPC"],
    }
    reasons = []
    for _ in range(60):
        outcome = lab.run(ctx)
        reasons.append(outcome.reason)
        if outcome.kind != "wait":
            break
        if "fail back to" in outcome.reason and SUB in outcome.reason:
            # The subscriber's phones are not back: no restart on the next node yet.
            assert all(node != SUB2 for node, _ in restarted(lab))
    assert outcome.kind == "advance"
    assert any(f"fail back to {SUB}" in r for r in reasons)
    order = restarted(lab)
    assert order.index((SUB2, "Cisco CallManager")) > order.index((SUB, TFTP))
    assert all(
        r.get("failback_at") for r in ctx.context["restarts"] if r["service"] == CM and r["node"] != IMP
    )


def test_failback_timeout_is_a_gate_naming_the_phones(lab125: Lab) -> None:
    lab = lab125
    lab.fake.mixed_mode = False
    lab.fake.add_phones(["SEPA", "SEPSTUCK"], node=SUB)
    lab.fake.phones["SEPSTUCK"].stuck = True
    ctx, _ = planned(lab, phone_interaction="manual")
    ctx.params = {**ctx.params, "failback_timeout": 30}
    for _ in range(40):
        outcome = lab.run(ctx)
        if outcome.kind != "wait":
            break
    assert outcome.kind == "gate" and "SEPSTUCK" in outcome.reason and "SEPA" not in outcome.reason
    assert outcome.on_approve is None
    assert not any(node == SUB2 for node, _ in restarted(lab))
    # Approving re-runs the step: it goes on to the next node without the stuck phone.
    assert lab.settle(ctx).kind == "advance"
    assert (SUB2, CM) in restarted(lab)


def test_a_node_whose_tomcat_is_restarting_is_waited_for_not_failed(lab: Lab) -> None:
    ctx, _ = planned(lab)
    lab.fake.tomcat_down.add(PUB)
    outcome = lab.run(ctx)
    assert outcome.kind == "wait" and "Cisco Tomcat is restarting on" in outcome.reason
    assert PUB in outcome.reason and ctx.attempt == 1
    lab.fake.tomcat_down.clear()
    assert lab.settle(ctx).kind == "advance"
