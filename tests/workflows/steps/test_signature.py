"""request_signature: each CSR to the CA once, the answer pre-flighted before it is recorded."""

from __future__ import annotations

from adapters.ca.local import LocalCA
from adapters.ca.manual import ManualCA
from adapters.ca.port import Issued, Pending, csr_sha256
from tests.workflows.steps.conftest import IMP, PUB, SUB, Lab, fingerprint


def test_issued_certificates_are_preflighted_and_recorded(lab: Lab, local_ca: LocalCA) -> None:
    context = lab.context_at("tomcat", "awaiting_ca")
    ctx = lab.ctx("tomcat", "awaiting_ca", context)
    outcome = lab.run(ctx)
    assert outcome.kind == "advance"
    for node in (PUB, SUB, IMP):
        issued = ctx.context["issued"][node]
        assert issued["preflight_ok"] is True
        assert issued["chain_sha256"] == [fingerprint(local_ca.root_pem), fingerprint(local_ca.chain_pems[0])]
        assert ctx.entry(node, "ca_submit") is not None
    assert set(outcome.evidence["certificates"]) == {PUB, SUB, IMP}


def test_a_pending_ca_waits_and_a_submitted_certificate_is_taken(lab: Lab, local_ca: LocalCA) -> None:
    context = lab.context_at("CallManager", "awaiting_ca", force=True)
    ctx = lab.ctx("CallManager", "awaiting_ca", context, ca=ManualCA())
    outcome = lab.run(ctx)
    assert outcome.kind == "wait" and "submit-cert" in outcome.reason
    assert set(ctx.context["ca"]) == {PUB, SUB} and ctx.context["issued"] == {}
    answer = local_ca.submit(context["csr"][PUB]["pem"], cert_type="CallManager", node=PUB)
    ctx.submitted = {PUB: {"leaf_pem": answer.leaf_pem, "chain_pems": list(answer.chain_pems)}}  # type: ignore[union-attr]
    outcome = lab.run(ctx)
    assert outcome.kind == "wait" and list(ctx.context["issued"]) == [PUB]


def test_a_certificate_the_tls_bundle_cannot_verify_stops_the_run(lab: Lab) -> None:
    context = lab.context_at("tomcat", "awaiting_ca")
    ctx = lab.ctx(
        "tomcat", "awaiting_ca", context, tls_anchors=frozenset({"0" * 64}), tls_bundle="/etc/b.pem"
    )
    outcome = lab.run(ctx)
    assert outcome.kind == "fail" and not outcome.retryable
    assert "/etc/b.pem" in outcome.reason and "nothing was uploaded" in outcome.reason


class _KeyedCA:
    """A CA that remembers which idempotency key each node's request carried."""

    name = "keyed"

    def __init__(self, inner: LocalCA) -> None:
        self.inner = inner
        self.keys: dict[str, str] = {}

    def submit(self, csr_pem: str, *, cert_type: str, node: str, idempotency_key: str) -> Issued | Pending:
        self.keys[node] = idempotency_key
        return self.inner.submit(csr_pem, cert_type=cert_type, node=node, idempotency_key=idempotency_key)

    def poll(self, token: str) -> Issued | Pending:
        return self.inner.poll(token)


def test_each_request_carries_the_csr_key_recorded_in_its_intent_first(lab: Lab, local_ca: LocalCA) -> None:
    context = lab.context_at("tomcat", "awaiting_ca")
    ca = _KeyedCA(local_ca)
    ctx = lab.ctx("tomcat", "awaiting_ca", context, ca=ca)
    assert lab.run(ctx).kind == "advance"
    for node in (PUB, SUB, IMP):
        key = csr_sha256(context["csr"][node]["pem"])
        assert ca.keys[node] == key
        entry = ctx.entry(node, "ca_submit")
        assert entry is not None and entry.intent["idempotency_key"] == key
