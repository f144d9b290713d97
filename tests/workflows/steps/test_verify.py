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
