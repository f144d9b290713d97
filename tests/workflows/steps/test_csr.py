"""generate_csrs: one CSR per node, adopted rather than regenerated after a crash."""

from __future__ import annotations

import hashlib

import pytest

from engine.api import PermanentError, TransientError
from tests.workflows.steps.conftest import IMP, PUB, SUB, Lab


def at_csr(lab: Lab) -> dict[str, object]:
    return lab.context_at("tomcat", "csr_generated")


def test_one_csr_per_target_recorded_with_its_sha256(lab: Lab) -> None:
    ctx = lab.ctx("tomcat", "csr_generated", at_csr(lab))
    outcome = lab.run(ctx)
    assert outcome.kind == "advance"
    for node in (PUB, SUB, IMP):
        pem = lab.fake.current_csr(node, "tomcat")
        assert ctx.context["csr"][node]["pem"] == pem
        assert ctx.context["csr"][node]["sha256"] == hashlib.sha256(str(pem).encode()).hexdigest()
    assert sorted(c.node or "" for c in lab.fake.calls_to("generate_csr")) == sorted([PUB, SUB, IMP])


def test_an_intent_whose_csr_exists_is_adopted_not_regenerated(lab: Lab) -> None:
    context = at_csr(lab)
    existing = lab.fake.generate_csr(SUB, "tomcat")  # made before the process died
    lab.fake.forget_calls()
    ctx = lab.ctx("tomcat", "csr_generated", context)
    ctx.record_intent(SUB, "generate_csr", {"unit": "tomcat"})
    lab.run(ctx)
    assert ctx.context["csr"][SUB]["pem"] == existing == lab.fake.current_csr(SUB, "tomcat")
    assert [c.node for c in lab.fake.calls_to("generate_csr") if c.node == SUB] == []
    assert (SUB, "generate_csr") in ctx.reconciled


def test_an_intent_without_a_csr_on_the_node_generates_one(lab: Lab) -> None:
    ctx = lab.ctx("tomcat", "csr_generated", at_csr(lab))
    ctx.record_intent(SUB, "generate_csr", {"unit": "tomcat"})
    lab.run(ctx)
    assert (SUB, "generate_csr") in ctx.acted
    assert ctx.context["csr"][SUB]["pem"] == lab.fake.current_csr(SUB, "tomcat")


def test_a_csr_sent_to_the_ca_is_never_regenerated(lab: Lab) -> None:
    context = lab.context_at("tomcat", "awaiting_ca")
    lab.fake.forget_calls()
    ctx = lab.ctx("tomcat", "csr_generated", {**context, "ca": {PUB: {"ca": "local", "issued": True}}})
    lab.run(ctx)
    assert sorted(c.node or "" for c in lab.fake.calls_to("generate_csr")) == sorted([SUB, IMP])
    assert ctx.context["csr"][PUB] == context["csr"][PUB]


def test_a_lost_reply_is_transient_and_the_resumed_step_adopts_the_csr(lab: Lab) -> None:
    ctx = lab.ctx("tomcat", "csr_generated", at_csr(lab))
    lab.fake.lose_reply("generate_csr", node=IMP)
    with pytest.raises(TransientError):
        lab.run(ctx)
    made = lab.fake.current_csr(IMP, "tomcat")
    lab.run(ctx)
    assert ctx.context["csr"][IMP]["pem"] == made == lab.fake.current_csr(IMP, "tomcat")
    assert len([c for c in lab.fake.calls_to("generate_csr") if c.node == IMP]) == 1


def test_cucm_refusing_is_permanent_with_its_text(lab: Lab) -> None:
    lab.fake.reject("generate_csr", "Invalid service: tomcat", node=PUB)
    with pytest.raises(PermanentError, match="Invalid service: tomcat"):
        lab.run(lab.ctx("tomcat", "csr_generated", at_csr(lab)))
