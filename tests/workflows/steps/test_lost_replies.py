"""Each journaled effect after CUCM carried it out and its answer was lost: the step fails
transiently, and when it runs again it reads CUCM and does not send the request a second time.
A request that never landed is sent again; a phone reset is judged only once RisPort can show it."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from engine.api import TransientError
from engine.testing import StepContextDouble, fixed_clock
from tests.workflows.steps.conftest import IMP, PUB, SUB, Lab, fingerprint

PHONES = [f"SEP{i:012X}" for i in range(5)]


def calls_on(lab: Lab, op: str, node: str | None = None) -> int:
    return len([c for c in lab.fake.calls_to(op) if node is None or c.node == node])


def lost_then_resumed(lab: Lab, ctx: StepContextDouble, op: str, node: str | None = None) -> None:
    """The first run loses ``op``'s reply (CUCM did the work); the run after it reconciles."""
    lab.fake.lose_reply(op, node=node)
    with pytest.raises(TransientError, match="connection reset"):
        lab.run(ctx)
    lab.settle(ctx)


def test_csr_generation(lab: Lab) -> None:
    ctx = lab.ctx("tomcat", "csr_generated", lab.context_at("tomcat", "csr_generated"))
    lost_then_resumed(lab, ctx, "generate_csr", SUB)
    assert calls_on(lab, "generate_csr", SUB) == 1
    assert ctx.context["csr"][SUB]["pem"] == lab.fake.current_csr(SUB, "tomcat")


def test_a_csr_request_that_never_landed_is_not_answered_by_the_old_csr(lab: Lab) -> None:
    old = lab.fake.generate_csr(SUB, "tomcat")  # an earlier CSR, still on the node
    lab.fake.forget_calls()
    ctx = lab.ctx("tomcat", "csr_generated", lab.context_at("tomcat", "csr_generated"))
    before = hashlib.sha256(old.encode()).hexdigest()
    ctx.record_intent(SUB, "generate_csr", {"unit": "tomcat", "before_sha256": before})
    lab.run(ctx)
    assert calls_on(lab, "generate_csr", SUB) == 1
    assert ctx.context["csr"][SUB]["pem"] != old


def test_trust_upload(lab: Lab) -> None:
    ctx = lab.ctx("tomcat", "trust_uploaded", lab.context_at("tomcat", "trust_uploaded"))
    lab.fake.forget_calls()
    lost_then_resumed(lab, ctx, "upload_trust")
    sent = [(c.node, fingerprint(p)) for c in lab.fake.calls_to("upload_trust") for p in c.args["pems"]]
    assert sent and len(sent) == len(set(sent))  # no certificate sent twice to a node
    for node in (PUB, SUB, IMP):
        held = {fingerprint(p) for p in lab.fake.trust_certificates(node, "tomcat")}
        assert set(ctx.context["trusted"][node]) <= held


def test_identity_upload(lab: Lab) -> None:
    context = lab.context_at("tomcat", "leaf_uploaded")
    ctx = lab.ctx("tomcat", "leaf_uploaded", context)
    lost_then_resumed(lab, ctx, "upload_identity", SUB)
    assert calls_on(lab, "upload_identity", SUB) == 1
    assert ctx.context["uploaded"][SUB] == context["issued"][SUB]["sha256"]


def test_service_restart(lab: Lab) -> None:
    ctx = lab.ctx("CallManager", "restarted", lab.context_at("CallManager", "sso_disabled", force=True))
    assert lab.run(ctx).kind == "wait"  # the plan
    lost_then_resumed(lab, ctx, "restart_service", PUB)
    restarts = [(c.node, c.args["service"]) for c in lab.fake.calls_to("restart_service")]
    assert len(restarts) == len(set(restarts)) and restarts


def test_ctl_update(lab: Lab) -> None:
    lab.fake.mixed_mode = True
    ctx = lab.ctx("CallManager", "ctl_updated", lab.context_at("CallManager", "ctl_updated", force=True))
    lab.fake.lose_reply("ctl_update")
    with pytest.raises(TransientError):
        lab.run(ctx)
    # Rebuilt from the same certificates, the CTL is the same file: running it again is harmless.
    assert lab.settle(ctx).kind == "advance"


def test_pool_reset(lab: Lab) -> None:
    lab.fake.add_phones(PHONES[:2], pool="DP-A")
    lab.fake.add_phones(PHONES[2:], pool="DP-B")
    ctx = lab.phones(phone_reset="pools")
    lost_then_resumed(lab, ctx, "reset_device_pools")
    pools = [n for c in lab.fake.calls_to("reset_device_pools") for n in c.args["names"]]
    assert sorted(pools) == ["DP-A", "DP-B"]


def test_phone_reset_by_name(lab: Lab) -> None:
    lab.fake.add_phones(PHONES)
    ctx = lab.phones()
    lost_then_resumed(lab, ctx, "reset_phones")
    reset = [n for c in lab.fake.calls_to("reset_phones") for n in c.args["names"]]
    assert sorted(reset) == sorted(PHONES)  # each phone once


@pytest.mark.parametrize("by", ["pools", "phones"])
def test_a_reset_risport_does_not_show_yet_is_waited_for_then_sent(lab: Lab, by: str) -> None:
    """RisPort trails by up to ``risport_lag``: phones still showing their old registration
    right after the intent prove nothing; only once the lag has passed is the reset sent again."""
    lab.fake.add_phones(PHONES, pool="DP-A")
    now = [fixed_clock()]
    ctx = lab.phones(phone_reset=by, risport_lag=30.0)
    ctx.clock = lambda: now[0]
    stamps = {n: s.timestamp for n, s in lab.fake.registered_phones().items()}
    ctx.record_output(PUB, "phone_baseline", {"names": PHONES, "stamps": stamps, "at": "then"})
    ctx.record_output(PUB, "phone_stamps_before_reset", stamps)
    ctx.context = {**ctx.context, "phones": {"grace_waited": True}}
    key = f"{PUB}#pool-DP-A" if by == "pools" else f"{PUB}#phones-1-2"
    ctx.record_intent(key, "phone_reset", {"device_pool": "DP-A", "count": 5})
    op = "reset_device_pools" if by == "pools" else "reset_phones"
    now[0] += timedelta(seconds=10)
    outcome = lab.run(ctx)
    assert outcome.kind == "wait" and outcome.wake_in == pytest.approx(20.0)
    assert "RisPort" in outcome.reason and lab.fake.calls_to(op) == []
    now[0] += timedelta(seconds=21)
    lab.run(ctx)
    assert calls_on(lab, op) >= 1
    first = lab.fake.calls_to(op)[0].args["names"]
    assert first == (["DP-A"] if by == "pools" else PHONES[:2])


def test_without_lag_the_lag_waits_cost_nothing(lab: Lab) -> None:
    lab.fake.add_phones(PHONES)
    outcome = lab.run(lab.phones(risport_lag=0.0))
    assert outcome.kind == "wait" and "re-register" in outcome.reason
    assert calls_on(lab, "reset_phones") == 3


def test_with_lag_the_stamps_before_the_reset_wait_for_risport(lab: Lab) -> None:
    lab.fake.add_phones(PHONES)
    ctx = lab.phones(risport_lag=45.0)
    outcome = lab.run(ctx)
    assert outcome.kind == "wait" and outcome.wake_in == 45.0 and "RisPort" in outcome.reason
    assert lab.fake.calls_to("reset_phones") == []
    assert lab.run(ctx).kind == "wait" and calls_on(lab, "reset_phones") == 3


def test_automatic_reset_grace_is_at_least_the_lag(lab: Lab) -> None:
    lab.fake.add_phones(PHONES)
    context = lab.context_at("CallManager", "sso_disabled", force=True)
    ctx = lab.ctx("CallManager", "phones_reset", context, phone_interaction="automatic", risport_lag=90.0)
    outcome = lab.run(ctx)
    assert ctx.context["phones"]["automatic"]
    assert outcome.kind == "wait" and outcome.wake_in == 90.0


def test_the_lag_is_measured_in_cucm_seconds_on_a_scaled_clock(lab: Lab) -> None:
    """Against the simulator the journal's wall-clock times run ``time_scale`` times slower than
    CUCM's: one wall second at x60 is a minute, past a 30 s lag."""
    lab.fake.add_phones(PHONES, pool="DP-A")
    now = [fixed_clock()]
    ctx = lab.phones(phone_reset="pools", risport_lag=30.0, time_scale=60.0)
    ctx.clock = lambda: now[0]
    stamps = {n: s.timestamp for n, s in lab.fake.registered_phones().items()}
    ctx.record_output(PUB, "phone_baseline", {"names": PHONES, "stamps": stamps, "at": "then"})
    ctx.record_output(PUB, "phone_stamps_before_reset", stamps)
    ctx.context = {**ctx.context, "phones": {"grace_waited": True}}
    ctx.record_intent(f"{PUB}#pool-DP-A", "phone_reset", {"device_pool": "DP-A", "count": 5})
    now[0] += timedelta(seconds=0.25)  # 15 CUCM seconds
    outcome = lab.run(ctx)
    assert outcome.kind == "wait" and outcome.wake_in == pytest.approx(15.0)
    now[0] += timedelta(seconds=0.5)  # 45 CUCM seconds in all
    lab.run(ctx)
    assert calls_on(lab, "reset_device_pools") == 1
