"""check_sso and remind_sso: tomcat waits for SSO to be off, and reminds to turn it back on."""

from __future__ import annotations

from tests.workflows.steps.conftest import PUB, Lab


def test_sso_on_holds_tomcat_for_an_operator(lab: Lab) -> None:
    lab.fake.sso = True
    context = lab.context_at("tomcat", "sso_disabled")
    ctx = lab.ctx("tomcat", "sso_disabled", context)
    outcome = lab.run(ctx)
    assert outcome.kind == "gate" and outcome.on_approve is None  # approve re-checks
    assert "utils sso disable" in outcome.reason
    assert ctx.context["sso_was_enabled"] is True
    assert lab.fake.calls_to("sso_enabled")[-1].node == PUB
    lab.fake.sso = False
    assert lab.run(ctx).kind == "advance"
    reminder = lab.run(lab.ctx("tomcat", "sso_reenabled", ctx.context))
    assert reminder.kind == "gate" and "re-enable" in reminder.reason


def test_sso_off_or_not_required_advances(lab: Lab) -> None:
    context = lab.context_at("tomcat", "sso_disabled")
    outcome = lab.run(lab.ctx("tomcat", "sso_disabled", context))
    assert outcome.kind == "advance" and outcome.output["sso_enabled"] is False
    lab.fake.sso = True
    context = lab.context_at("CallManager", "sso_disabled", force=True)
    ctx = lab.ctx("CallManager", "sso_disabled", context)
    assert lab.run(ctx).kind == "advance"
    assert ctx.context["sso_enabled"] is True
    assert lab.run(lab.ctx("CallManager", "sso_reenabled", ctx.context)).kind == "advance"
