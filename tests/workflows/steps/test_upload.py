"""upload_trust and upload_leaf: the chain first, then the leaf, each once for one intent."""

from __future__ import annotations

from typing import Any

from adapters.ca.local import LocalCA
from tests.workflows.steps.conftest import IMP, PUB, SUB, Lab, fingerprint


def at(lab: Lab, state: str) -> dict[str, Any]:
    return lab.context_at("tomcat", state)


def test_trust_root_first_then_intermediate_skipping_what_is_trusted(lab: Lab, local_ca: LocalCA) -> None:
    ctx = lab.ctx("tomcat", "trust_uploaded", at(lab, "trust_uploaded"))
    lab.fake.forget_calls()
    outcome = lab.run(ctx)
    assert outcome.kind == "advance"
    root, intermediate = local_ca.root_pem, local_ca.chain_pems[0]
    calls = lab.fake.calls_to("upload_trust")
    assert [p for c in calls for p in c.args["pems"]].count(root) >= 1
    for node in (PUB, SUB, IMP):
        # Nodes go at once, and CUCM replicates tomcat-trust, so a node may find either already
        # there; but no node ever sends the intermediate before the root.
        sent = [p for c in calls if c.node == node for p in c.args["pems"]]
        assert sent in ([], [root], [intermediate], [root, intermediate])
    chain = [fingerprint(local_ca.root_pem), fingerprint(local_ca.chain_pems[0])]
    assert all(ctx.context["trusted"][n] == sorted(chain) for n in (PUB, SUB, IMP))


def test_a_trust_intent_whose_certificate_is_now_trusted_is_not_uploaded_again(
    lab: Lab, local_ca: LocalCA
) -> None:
    ctx = lab.ctx("tomcat", "trust_uploaded", at(lab, "trust_uploaded"))
    lab.fake.upload_trust(PUB, "tomcat", [local_ca.root_pem, local_ca.chain_pems[0]], "before the crash")
    lab.fake.forget_calls()
    fp = fingerprint(local_ca.root_pem)
    ctx.record_intent(PUB, f"trust:{fp[:16]}", {"sha256": fp})
    lab.run(ctx)
    assert lab.fake.calls_to("upload_trust") == []


def test_leaf_uploaded_on_every_node_and_not_redone(lab: Lab) -> None:
    context = at(lab, "leaf_uploaded")
    ctx = lab.ctx("tomcat", "leaf_uploaded", context)
    outcome = lab.run(ctx)
    assert outcome.kind == "advance"
    for node in (PUB, SUB, IMP):
        assert fingerprint(lab.fake.identity_certificate(node, "tomcat")) == context["issued"][node]["sha256"]
        assert ctx.context["uploaded"][node] == context["issued"][node]["sha256"]
    lab.fake.forget_calls()
    lab.run(lab.ctx("tomcat", "leaf_uploaded", ctx.context))  # a later visit: all recorded
    assert lab.fake.calls_to("upload_identity") == []


def test_a_leaf_intent_already_installed_is_reconciled_not_reuploaded(lab: Lab) -> None:
    context = at(lab, "leaf_uploaded")
    info = context["issued"][SUB]
    lab.fake.upload_identity(SUB, "tomcat", info["leaf_pem"], list(reversed(info["chain_pems"])))
    lab.fake.forget_calls()
    ctx = lab.ctx("tomcat", "leaf_uploaded", context)
    ctx.record_intent(SUB, "upload_identity", {"sha256": info["sha256"]})
    assert lab.run(ctx).kind == "advance"
    assert SUB not in [c.node for c in lab.fake.calls_to("upload_identity")]
    entry = ctx.entry(SUB, "upload_identity")
    assert entry is not None and entry.reconciled


def test_a_replaced_csr_fails_for_good_and_uploads_nothing_there(lab: Lab) -> None:
    context = at(lab, "leaf_uploaded")
    lab.fake.generate_csr(IMP, "tomcat")  # someone made another CSR
    outcome = lab.run(lab.ctx("tomcat", "leaf_uploaded", context))
    assert outcome.kind == "fail" and not outcome.retryable
    assert IMP in outcome.reason and "no longer the one sent to the CA" in outcome.reason
    assert IMP not in [c.node for c in lab.fake.calls_to("upload_identity")]


def test_cucm_refusing_the_leaf_fails_with_its_text(lab: Lab) -> None:
    context = at(lab, "leaf_uploaded")
    lab.fake.reject("upload_identity", "CSR SAN and Certificate SAN Does Not Match", node=PUB)
    outcome = lab.run(lab.ctx("tomcat", "leaf_uploaded", context))
    assert outcome.kind == "fail" and not outcome.retryable
    assert "CSR SAN and Certificate SAN Does Not Match" in outcome.reason and PUB in outcome.reason
