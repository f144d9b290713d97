"""trust_uploaded and leaf_uploaded: the CA chain into ``<type>-trust``, then the leaf as ``<type>``."""

from __future__ import annotations

from typing import Any

from adapters.cucm.port import CucmRejected
from engine.api import Effect, Outcome, Registry, StepContext
from workflows.preflight import PreflightError

from .certificate import check_signed
from .common import deps, fingerprint, node_map, sha256_text, targets, unit
from .errors import classified


def _trusted_fingerprints(pems: list[str]) -> set[str]:
    out = set()
    for pem in pems:
        try:
            out.add(fingerprint(pem))
        except ValueError:
            continue  # CUCM's store may hold entries this parser cannot read; they are not ours
    return out


def upload_trust(ctx: StepContext) -> Outcome:
    """Root first, then intermediates, each only if the node does not trust it already."""
    cucm = deps(ctx).cucm
    kind = unit(ctx)
    issued = node_map(ctx, "issued")
    trusted = node_map(ctx, "trusted")
    added: dict[str, int] = {}
    for node in targets(ctx):
        chain: list[str] = list(issued[node]["chain_pems"])
        have = _trusted_fingerprints(cucm.trust_certificates(node, kind))
        count = 0
        for pem in chain:
            fp = fingerprint(pem)
            if fp in have:
                continue

            def reconcile(_e: Effect, node: str = node, fp: str = fp) -> Any:
                return (
                    {"uploaded": fp}
                    if fp in _trusted_fingerprints(cucm.trust_certificates(node, kind))
                    else None
                )

            def upload(node: str = node, pem: str = pem, fp: str = fp) -> Any:
                cucm.upload_trust(node, kind, [pem], f"CA for {kind} renewed by cucm-renew")
                return {"uploaded": fp}

            ctx.effect(
                node,
                f"trust:{fp[:16]}",
                upload,
                intent={"sha256": fp},
                reconcile=reconcile,
            )
            have.add(fp)
            count += 1
        trusted[node] = sorted(have & set(issued[node]["chain_sha256"]))
        added[node] = count
        ctx.progress(node, f"{kind}-trust: {count} CA certificate(s) added")
    return Outcome.advance(
        output={"trusted": trusted},
        evidence={"trust_added": added},
        reason=f"CA chain trusted on {len(targets(ctx))} node(s)",
    )


def upload_leaf(ctx: StepContext) -> Outcome:
    """Pre-flight again against what the node holds now, then upload; never twice for one intent."""
    cucm = deps(ctx).cucm
    kind = unit(ctx)
    issued = node_map(ctx, "issued")
    csrs = node_map(ctx, "csr")
    uploaded = node_map(ctx, "uploaded")
    for node in targets(ctx):
        info = issued[node]
        expected = str(info["sha256"])
        if uploaded.get(node) == expected:
            continue

        def reconcile(_e: Effect, node: str = node, expected: str = expected) -> Any:
            current = fingerprint(cucm.identity_certificate(node, kind))
            return {"uploaded": expected} if current == expected else None

        def act(node: str = node, info: dict[str, Any] = info) -> Any:
            current_csr = cucm.current_csr(node, kind)
            if current_csr is None or sha256_text(current_csr) != csrs[node]["sha256"]:
                raise CsrReplaced(node, kind, ctx.run_id)
            check_signed(
                leaf_pem=info["leaf_pem"],
                chain_pems=list(reversed(info["chain_pems"])),
                csr_pem=current_csr,
                cert_type=kind,
                trusted_pems=cucm.trust_certificates(node, kind),
                now=ctx.now(),
            )
            # CUCM wants the issuers leaf-side first after the leaf.
            cucm.upload_identity(node, kind, info["leaf_pem"], list(reversed(info["chain_pems"])))
            return {"uploaded": info["sha256"]}

        try:
            ctx.effect(node, "upload_identity", act, intent={"sha256": expected}, reconcile=reconcile)
        except (PreflightError, CsrReplaced) as exc:
            return Outcome.fail(f"{node}: {exc}; nothing was uploaded to {node}", retryable=False)
        except CucmRejected as exc:
            return Outcome.fail(
                f"CUCM refused the {kind} certificate on {node}: {exc.cucm_message}", retryable=False
            )
        uploaded[node] = expected
        ctx.progress(node, f"{kind} certificate uploaded (serial {info['serial']})")
    return Outcome.advance(
        output={"uploaded": uploaded},
        evidence={
            "uploaded": {n: {"serial": issued[n]["serial"], "sha256": uploaded[n]} for n in targets(ctx)}
        },
        reason=f"{kind} certificate installed on {len(targets(ctx))} node(s)",
    )


class CsrReplaced(Exception):
    def __init__(self, node: str, kind: str, run_id: str) -> None:
        super().__init__(
            f"the {kind} CSR on {node} is no longer the one sent to the CA (someone generated another): "
            f"the signed certificate cannot match it; abort run {run_id} and start a new one"
        )


def register(registry: Registry) -> None:
    registry.step("upload_trust")(classified(upload_trust))
    registry.step("upload_leaf")(classified(upload_leaf))
