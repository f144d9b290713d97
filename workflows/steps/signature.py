"""awaiting_ca: send each node's CSR to the CA and collect the signed certificates.

The CA may answer at once (Issued), later (Pending: a durable wait that polls), or never by itself
(the manual CA: an operator brings the certificate with ``cucm-renew submit-cert``, which runs the
``signed_certificate`` validator, so a bad file is refused before anything is recorded).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.ca.port import (
    CaError,
    CaMisconfigured,
    CaRejected,
    CaUnreachable,
    Issued,
    Pending,
    csr_sha256,
)
from engine.api import JSON, Outcome, Registry, StepContext, SubmitRejected, TransientError
from workflows.certkit import is_ca, pem_list
from workflows.context import targets as context_targets
from workflows.context import view
from workflows.preflight import PreflightError

from .certificate import check_signed, kept_names, summary_for_audit
from .common import deps, names, node_map, sha256_text, targets, unit
from .errors import classified
from .multi import MULTI_SERVER, multi_server, own_nodes


def _answer(result: Issued | Pending) -> dict[str, Any]:
    if isinstance(result, Issued):
        return {"issued": True, "leaf_pem": result.leaf_pem, "chain_pems": list(result.chain_pems)}
    return {
        "issued": False,
        "token": result.token,
        "retry_after": result.retry_after,
        "reason": result.reason,
    }


def _idempotency_key(csr_pem: str) -> str:
    """The CSR's DER SHA-256 (PEM wrapping does not change it); the text's for a CSR that does not
    parse, which the CA then refuses as it would have."""
    try:
        return csr_sha256(csr_pem)
    except ValueError:
        return sha256_text(csr_pem)


def request_signature(ctx: StepContext) -> Outcome:
    d = deps(ctx)
    kind = unit(ctx)
    csrs = node_map(ctx, "csr")
    sent = node_map(ctx, "ca")
    issued = node_map(ctx, "issued")
    snapshot = node_map(ctx, "trust_snapshot")
    multi = multi_server(ctx)
    names_all = targets(ctx) if multi else []
    waiting: list[str] = []
    reasons: list[str] = []
    wake: float | None = None
    if multi:
        # Every node's trust store is read: the chain goes into each before the leaf.
        for node in targets(ctx)[1:]:
            snapshot[node] = [p for p in d.cucm.trust_certificates(node, kind) if is_ca(p)]
    for node in own_nodes(ctx):
        if node in issued:
            continue
        csr_pem = str(csrs[node]["pem"])
        trusted = d.cucm.trust_certificates(node, kind)
        # The validator runs without CUCM at hand: it checks against this copy of the CA certificates.
        snapshot[node] = [p for p in trusted if is_ca(p)]
        submitted = ctx.submitted.get(node)
        try:
            if isinstance(submitted, Mapping):
                answer: Mapping[str, Any] = {"issued": True, **submitted}
            elif sent.get(node, {}).get("token"):
                answer = _answer(d.ca.poll(str(sent[node]["token"])))
            else:
                # The key is journaled with the intent, before the CA hears of the request: a
                # process killed after the CA answered submits again under the same key, and a CA
                # that honours it returns the certificate it already issued instead of a second one.
                key = _idempotency_key(csr_pem)

                def submit(node: str = node, csr_pem: str = csr_pem, key: str = key) -> Any:
                    return _answer(d.ca.submit(csr_pem, cert_type=kind, node=node, idempotency_key=key))

                answer = ctx.effect(
                    node,
                    "ca_submit",
                    submit,
                    intent={"ca": d.ca.name, "csr_sha256": csrs[node]["sha256"], "idempotency_key": key},
                )
        except (CaRejected, CaMisconfigured) as exc:
            return Outcome.fail(str(exc), retryable=False)
        except (CaUnreachable, CaError) as exc:
            raise TransientError(f"CA {d.ca.name!r} for {node}: {exc}") from exc
        if answer.get("issued"):
            try:
                issued[node] = check_signed(
                    leaf_pem=str(answer["leaf_pem"]),
                    chain_pems=pem_list(answer.get("chain_pems")),
                    csr_pem=csr_pem,
                    cert_type=kind,
                    trusted_pems=trusted,
                    now=ctx.now(),
                    client_auth_waived=bool(view(ctx.context).get("client_auth_waived")),
                    keep_names=kept_names(csrs[node]),
                    multi_server_nodes=names_all,
                )
            except PreflightError as exc:
                return Outcome.fail(
                    f"the certificate the CA returned for {node} fails pre-flight, "
                    f"nothing was uploaded: {exc}",
                    retryable=False,
                )
            if d.tls_anchors and not set(issued[node]["chain_sha256"]) & d.tls_anchors:
                return Outcome.fail(
                    f"the CA that signed {node}'s {kind} certificate is not in the TLS bundle "
                    f"{d.tls_bundle}: once {node} presents the new certificate it could no longer be "
                    f"verified. Add the CA's root to clusters.{ctx.scope}.ca_bundle, then "
                    f"`cucm-renew retry {ctx.run_id}`; nothing was uploaded",
                    retryable=False,
                )
            sent[node] = {"ca": d.ca.name, "issued": True}
            ctx.progress(node, f"signed: serial {issued[node]['serial']}")
        else:
            sent[node] = {"ca": d.ca.name, "token": answer.get("token"), "reason": answer.get("reason") or ""}
            waiting.append(node)
            if answer.get("reason"):
                reasons.append(str(answer["reason"]))
            hint = answer.get("retry_after")
            if hint is not None:
                wake = float(hint) if wake is None else min(wake, float(hint))
            ctx.progress(node, "waiting for the CA")
    if multi and not waiting:
        # One signed certificate for the whole scope: each node's entry is the signer's.
        first = own_nodes(ctx)[0]
        issued.update({n: issued[first] for n in targets(ctx)})
        sent.update({n: sent[first] for n in targets(ctx)})
    output: dict[str, JSON] = {"ca": sent, "issued": issued, "trust_snapshot": snapshot}
    if waiting:
        why = reasons[0] if reasons else f"CA {d.ca.name!r} has not signed yet"
        return Outcome.wait(
            wake,
            f"waiting for CA {d.ca.name!r} to sign the CSR of {names(waiting)}: {why}",
            output=output,
        )
    return Outcome.advance(
        output=output,
        evidence={"certificates": {n: summary_for_audit(issued[n]) for n in targets(ctx)}},
        reason=f"{len(targets(ctx))} certificate(s) signed and pre-flighted",
    )


def signed_certificate(run_context: Mapping[str, Any], key: str, data: Any) -> Any:
    """Validator for ``submit`` at awaiting_ca: ``key`` is the node, ``data`` the files' PEM text.

    ``data``: ``{"leaf_pem": PEM or a whole bundle, "chain_pems": [PEM, ...]}``. Refuses (nothing is
    recorded) when the node is not one the run renews or the certificate fails pre-flight.
    """
    stored = view(run_context)
    targets_ = context_targets(run_context)
    if key not in targets_:
        raise SubmitRejected(
            f"node {key!r} is not renewed by this run (its nodes: {', '.join(targets_) or 'none'}): "
            "pass --node with one of them"
        )
    if not isinstance(data, Mapping) or not data.get("leaf_pem"):
        raise SubmitRejected("no certificate given: pass --cert with the signed certificate file")
    csr = (stored.get("csr") or {}).get(key)
    if csr is None or not csr.get("pem"):
        raise SubmitRejected(f"no CSR is recorded for {key} yet: wait until the run is at awaiting_ca")
    kind = str(stored.get("cert_type") or "")
    multi = stored.get("distribution") == MULTI_SERVER
    try:
        info = check_signed(
            leaf_pem=str(data["leaf_pem"]),
            chain_pems=pem_list(data.get("chain_pems")),
            csr_pem=str(csr["pem"]),
            cert_type=kind,
            trusted_pems=list((stored.get("trust_snapshot") or {}).get(key) or []),
            now=None,
            client_auth_waived=bool(stored.get("client_auth_waived")),
            keep_names=kept_names(csr),
            multi_server_nodes=targets_ if multi else (),
        )
    except PreflightError as exc:
        raise SubmitRejected(f"{key}: {exc}") from exc
    return {"leaf_pem": info["leaf_pem"], "chain_pems": list(reversed(info["chain_pems"]))}


def register(registry: Registry) -> None:
    registry.step("request_signature")(classified(request_signature))
    registry.validator("signed_certificate")(signed_certificate)
