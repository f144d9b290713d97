"""verify_presented: every renewed node presents the uploaded certificate on the type's port."""

from __future__ import annotations

from adapters.cucm.port import TlsVerificationError
from tests.workflows.steps.conftest import IMP, PUB, SUB, Lab


def test_presented_after_the_restart(lab: Lab) -> None:
    context = lab.context_at("tomcat", "verified")
    ctx = lab.ctx("tomcat", "verified", context)
    outcome = lab.run(ctx)
    assert outcome.kind == "advance"
    assert {n: r["ok"] for n, r in ctx.context["verified"].items()} == {PUB: True, SUB: True, IMP: True}
    assert [c.args["port"] for c in lab.fake.calls_to("presented_certificate")] == [8443] * 3


def test_the_old_certificate_still_presented_is_a_retryable_failure(lab: Lab) -> None:
    context = lab.context_at("tomcat", "restarted")  # uploaded, not restarted
    outcome = lab.run(lab.ctx("tomcat", "verified", context))
    assert outcome.kind == "fail" and outcome.retryable
    assert f"{PUB}:8443 still presents serial" in outcome.reason and "Cisco Tomcat" in outcome.reason


def test_a_certificate_that_does_not_verify_is_reported(lab: Lab) -> None:
    context = lab.context_at("tomcat", "verified")
    lab.fake.fail_next("presented_certificate", TlsVerificationError("not trusted", node=SUB), node=SUB)
    outcome = lab.run(lab.ctx("tomcat", "verified", context))
    assert (
        outcome.kind == "fail" and f"{SUB}:8443 presents a certificate that does not verify" in outcome.reason
    )


def test_ipsec_from_14_is_read_back_not_on_4040(lab: Lab) -> None:
    context = lab.context_at("ipsec", "verified", force=True)
    lab.fake.forget_calls()
    outcome = lab.run(lab.ctx("ipsec", "verified", context))
    assert outcome.kind == "advance"
    assert lab.fake.calls_to("presented_certificate") == []
    assert {c.node for c in lab.fake.calls_to("identity_certificate")} == {PUB, SUB, IMP}


def test_callmanager_from_14su1_on_5061_and_6971(lab: Lab) -> None:
    context = lab.context_at("CallManager", "restarted", force=True)
    # Uploaded, not restarted: CallManager presents it on 5061 already (14SU1+), HAProxy not yet.
    outcome = lab.run(lab.ctx("CallManager", "verified", context))
    assert outcome.kind == "fail" and f"{PUB}:6971 still presents" in outcome.reason
    assert f"{PUB}:5061" not in outcome.reason and "Cisco HAProxy" in outcome.reason
    context = lab.context_at("CallManager", "verified", force=True)
    lab.fake.forget_calls()
    ctx = lab.ctx("CallManager", "verified", context)
    assert lab.run(ctx).kind == "advance"
    assert sorted({c.args["port"] for c in lab.fake.calls_to("presented_certificate")}) == [5061, 6971]
    assert ctx.context["verified"][SUB]["ports"] == ["5061", "6971"]
