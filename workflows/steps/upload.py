"""trust_uploaded and leaf_uploaded: the CA chain into ``<type>-trust``, then the leaf as ``<type>``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from adapters.cucm.port import CucmRejected
from engine.api import Effect, Outcome, Registry, StepContext
from workflows.certkit import fingerprint, fingerprints
from workflows.context import view
from workflows.preflight import PreflightError

from .certificate import check_signed
from .common import (
    automatic_phone_reset,
    deps,
    each_node,
    names,
    node_map,
    release_rules,
    sha256_text,
    targets,
    unit,
)
from .errors import classified
from .multi import multi_server, signer
from .phones import baseline_output


def upload_trust(ctx: StepContext) -> Outcome:
    """Root first, then intermediates, each only if the node does not trust it already."""
    cucm = deps(ctx).cucm
    kind = unit(ctx)
    issued = node_map(ctx, "issued")
    trusted = node_map(ctx, "trusted")

    def one(node: str) -> tuple[list[str], int]:
        # Within a node the order matters (root, then intermediates); across nodes it does not.
        chain: list[str] = list(issued[node]["chain_pems"])
        have = set(fingerprints(cucm.trust_certificates(node, kind)))
        count = 0
        for pem in chain:
            fp = fingerprint(pem)
            if fp in have:
                continue

            def reconcile(_e: Effect, fp: str = fp) -> Any:
                return {"uploaded": fp} if fp in fingerprints(cucm.trust_certificates(node, kind)) else None

            def upload(pem: str = pem, fp: str = fp) -> Any:
                cucm.upload_trust(node, kind, [pem], f"CA for {kind} renewed by cucm-renew")
                return {"uploaded": fp}

            ctx.effect(node, f"trust:{fp[:16]}", upload, intent={"sha256": fp}, reconcile=reconcile)
            have.add(fp)
            count += 1
        ctx.progress(node, f"{kind}-trust: {count} CA certificate(s) added")
        return sorted(have & set(issued[node]["chain_sha256"])), count

    done = each_node(targets(ctx), one)
    trusted.update({node: result[0] for node, result in done.items()})
    added = {node: result[1] for node, result in done.items()}
    return Outcome.advance(
        output={"trusted": trusted},
        evidence={"trust_added": added},
        reason=f"CA chain trusted on {len(targets(ctx))} node(s)",
    )


def _preflight_again(
    ctx: StepContext,
    node: str,
    info: Mapping[str, Any],
    csr_sha256: str,
    *,
    multi_server_nodes: Sequence[str] = (),
) -> None:
    """Right before an identity upload: the node still holds the run's CSR (else
    :class:`CsrReplaced`), and the signed certificate passes pre-flight against what the node
    trusts now."""
    cucm = deps(ctx).cucm
    kind = unit(ctx)
    current_csr = cucm.current_csr(node, kind)
    if current_csr is None or sha256_text(current_csr) != csr_sha256:
        raise CsrReplaced(node, kind, ctx.run_id)
    check_signed(
        leaf_pem=info["leaf_pem"],
        chain_pems=list(reversed(info["chain_pems"])),
        csr_pem=current_csr,
        cert_type=kind,
        trusted_pems=cucm.trust_certificates(node, kind),
        now=ctx.now(),
        client_auth_waived=bool(view(ctx.context).get("client_auth_waived")),
        multi_server_nodes=multi_server_nodes,
    )


def upload_leaf(ctx: StepContext) -> Outcome:
    """Pre-flight again against what the node holds now, then upload; never twice for one intent."""
    cucm = deps(ctx).cucm
    kind = unit(ctx)
    issued = node_map(ctx, "issued")
    csrs = node_map(ctx, "csr")
    uploaded = node_map(ctx, "uploaded")
    # Where CUCM resets phones itself on this upload, the upload is the first action that touches
    # them: count them before it.
    baseline = baseline_output(ctx, "upload") if automatic_phone_reset(ctx) else {}
    if multi_server(ctx):
        return _upload_multi_server(ctx, baseline)

    def one(node: str) -> str:
        info = issued[node]
        expected = str(info["sha256"])

        def reconcile(_e: Effect) -> Any:
            current = fingerprint(cucm.identity_certificate(node, kind))
            return {"uploaded": expected} if current == expected else None

        def act() -> Any:
            _preflight_again(ctx, node, info, str(csrs[node]["sha256"]))
            # CUCM wants the issuers leaf-side first after the leaf.
            cucm.upload_identity(node, kind, info["leaf_pem"], list(reversed(info["chain_pems"])))
            return {"uploaded": info["sha256"]}

        try:
            ctx.effect(node, "upload_identity", act, intent={"sha256": expected}, reconcile=reconcile)
        except (PreflightError, CsrReplaced) as exc:
            raise _NodeRefused(f"{node}: {exc}; nothing was uploaded to {node}") from exc
        except CucmRejected as exc:
            raise _NodeRefused(f"CUCM refused the {kind} certificate on {node}: {exc.cucm_message}") from exc
        ctx.progress(node, f"{kind} certificate uploaded (serial {info['serial']})")
        return expected

    try:
        uploaded.update(each_node([n for n in targets(ctx) if uploaded.get(n) != issued[n]["sha256"]], one))
    except _NodeRefused as exc:
        return Outcome.fail(str(exc), retryable=False)
    return Outcome.advance(
        output={**baseline, "uploaded": uploaded},
        evidence={
            "uploaded": {n: {"serial": issued[n]["serial"], "sha256": uploaded[n]} for n in targets(ctx)}
        },
        reason=f"{kind} certificate installed on {len(targets(ctx))} node(s)",
    )


def _upload_multi_server(ctx: StepContext, baseline: dict[str, Any]) -> Outcome:
    """One upload on the signer, which CUCM installs on every node the CSR named; from 14SU2 CUCM
    takes it in OS Administration only, so the run stops at a gate and then reads every node back."""
    cucm = deps(ctx).cucm
    kind = unit(ctx)
    node = signer(ctx)
    info = node_map(ctx, "issued")[node]
    expected = str(info["sha256"])
    every = targets(ctx)

    def installed() -> list[str]:
        return [n for n in every if fingerprint(cucm.identity_certificate(n, kind)) == expected]

    def done(servers: list[str], via: str) -> Outcome:
        uploaded = dict.fromkeys(every, expected)
        ctx.progress(node, f"multi-server {kind} certificate installed on {len(every)} node(s) ({via})")
        return Outcome.advance(
            output={
                **baseline,
                "uploaded": uploaded,
                "multi_server_upload": {"node": node, "servers": servers, "via": via},
            },
            evidence={"uploaded": {n: {"serial": info["serial"], "sha256": expected} for n in every}},
            reason=f"multi-server {kind} certificate uploaded on {node}, installed on {len(every)} node(s)",
        )

    if release_rules(ctx).multi_server_upload == "gui":
        have = installed()
        if len(have) == len(every):
            return done(have, "gui")
        lacking = [n for n in every if n not in have]
        return Outcome.gate(
            f"CUCM {release_rules(ctx).release} takes multi-server certificates in OS Administration only. "
            f"On {node} open Cisco Unified OS Administration > Security > Certificate Management > Upload "
            f"Certificate/Certificate chain, purpose {kind}, and upload the signed certificate (serial "
            f"{info['serial']}, SHA-256 {expected[:16]}…; `cucm-renew status {ctx.run_id} --json` holds it "
            f"under issued); its CA chain is already trusted. Then `cucm-renew approve {ctx.run_id}`: the "
            f"tool reads every node back. Not installed yet on: {names(lacking)}",
            on_approve=None,
            output=baseline,
            evidence={"multi_server_upload": "gui", "node": node, "lacking": lacking},
        )

    def reconcile(_e: Effect) -> Any:
        have = installed()
        return {"servers": have, "reconciled": True} if len(have) == len(every) else None

    def act() -> Any:
        _preflight_again(ctx, node, info, str(node_map(ctx, "csr")[node]["sha256"]), multi_server_nodes=every)
        servers = cucm.upload_multi_server_identity(
            node, kind, info["leaf_pem"], list(reversed(info["chain_pems"]))
        )
        return {"servers": list(servers)}

    try:
        result = ctx.effect(
            node, "upload_multi_server", act, intent={"sha256": expected}, reconcile=reconcile
        )
    except (PreflightError, CsrReplaced) as exc:
        return Outcome.fail(f"{node}: {exc}; nothing was uploaded", retryable=False)
    except CucmRejected as exc:
        return Outcome.fail(
            f"CUCM refused the multi-server {kind} certificate on {node}: {exc.cucm_message}", retryable=False
        )
    servers = [str(s) for s in result.get("servers") or []]
    short = {s.split(".")[0].casefold() for s in servers} | {s.casefold() for s in servers}
    missing = [n for n in every if n.casefold() not in short and n.split(".")[0].casefold() not in short]
    if missing:
        return Outcome.fail(
            f"CUCM installed the multi-server {kind} certificate on {names(servers)} but not on "
            f"{names(missing)}: a node added after the CSR is not covered. Generate a new multi-server CSR "
            f"(abort run {ctx.run_id} and start again)",
            retryable=False,
        )
    return done(servers, "api")


class _NodeRefused(Exception):
    """One node's upload was refused for good; the message says which and why."""


class CsrReplaced(Exception):
    def __init__(self, node: str, kind: str, run_id: str) -> None:
        super().__init__(
            f"the {kind} CSR on {node} is no longer the one sent to the CA (someone generated another): "
            f"the signed certificate cannot match it; abort run {run_id} and start a new one"
        )


def register(registry: Registry) -> None:
    registry.step("upload_trust")(classified(upload_trust))
    registry.step("upload_leaf")(classified(upload_leaf))
