"""check_expiry: which nodes renew, in which order."""

from __future__ import annotations

from tests.workflows.steps.conftest import IMP, PUB, SUB, Lab


def test_nodes_due_are_targets_publisher_first(lab: Lab) -> None:
    lab.fake.regenerate(PUB, "tomcat", days=400)
    ctx = lab.ctx("tomcat", "expiry_check")
    outcome = lab.run(ctx)
    assert outcome.kind == "advance" and outcome.trigger == "next"
    assert ctx.context["targets"] == [SUB, IMP]
    assert ctx.context["node_roles"] == {PUB: "publisher", SUB: "subscriber", IMP: "imp"}
    assert ctx.context["expiry"][PUB]["days_left"] > 300
    assert outcome.evidence["targets"] == [SUB, IMP]


def test_nothing_due_ends_not_due(lab: Lab) -> None:
    for node in (PUB, SUB):
        lab.fake.regenerate(node, "CallManager", days=400)
    outcome = lab.run(lab.ctx("CallManager", "expiry_check"))
    assert outcome.trigger == "not_due"
    assert "30 days" in outcome.reason


def test_roles_force_and_only_nodes(lab: Lab) -> None:
    for node in (PUB, SUB):
        lab.fake.regenerate(node, "CallManager", days=400)
    ctx = lab.ctx("CallManager", "expiry_check", {"force": True})
    lab.run(ctx)
    assert ctx.context["targets"] == [PUB, SUB]  # IM&P nodes carry no CallManager certificate
    ctx = lab.ctx("tomcat", "expiry_check", {"only_nodes": [SUB]})
    lab.run(ctx)
    assert ctx.context["targets"] == [SUB]
    assert lab.fake.calls_to("identity_certificate")[-1].node == SUB


def test_the_release_is_read_from_the_cluster_and_a_configured_one_must_match(lab: Lab) -> None:
    ctx = lab.ctx("tomcat", "expiry_check")
    lab.run(ctx)
    assert ctx.context["release"] == "14SU3" and ctx.context["release_version"] == lab.fake.release
    assert list(ctx.context["cluster_nodes"]) == [PUB, SUB, IMP]
    assert lab.run(lab.ctx("tomcat", "expiry_check", configured_version="14")).kind == "advance"
    outcome = lab.run(lab.ctx("tomcat", "expiry_check", configured_version="12.5"))
    assert outcome.kind == "fail" and not outcome.retryable
    assert "12.5" in outcome.reason and lab.fake.release in outcome.reason and "14SU3" in outcome.reason
