"""csr_generated: one CSR per node, made by CUCM, recorded with its SHA-256."""

from __future__ import annotations

from typing import Any

from engine.api import Effect, Outcome, Registry, StepContext

from .common import deps, each_node, node_map, sha256_text, targets, unit
from .errors import classified
from .multi import multi_server, own_nodes


def generate_csrs(ctx: StepContext) -> Outcome:
    """Generate each node's CSR once.

    A CSR that went to a CA is never regenerated: CUCM keeps one CSR per node and type, and a new
    one would make the certificate the CA is signing unusable. If the process died between asking
    CUCM and recording the answer, the CSR CUCM now holds is adopted: it is the one an upload will
    be checked against.
    """
    cucm = deps(ctx).cucm
    kind = unit(ctx)
    multi = multi_server(ctx)
    csrs = node_map(ctx, "csr")
    sent = node_map(ctx, "ca")

    def one(node: str) -> dict[str, str]:
        def reconcile(_effect: Effect) -> Any:
            pem = cucm.current_csr(node, kind)
            return {"pem": pem, "adopted": True} if pem else None

        def generate() -> Any:
            return {"pem": cucm.generate_csr(node, kind, multi_server=multi)}

        intent: dict[str, Any] = {"unit": kind, **({"multi_server": True} if multi else {})}
        result = ctx.effect(node, "generate_csr", generate, intent=intent, reconcile=reconcile)
        pem = str(result["pem"])
        made = {"pem": pem, "sha256": sha256_text(pem)}
        ctx.progress(node, f"CSR generated ({made['sha256'][:12]})")
        return made

    csrs.update(each_node([n for n in own_nodes(ctx) if not (n in csrs and n in sent)], one))
    if multi:
        # One CSR names every node: each node's entry is the signer's.
        csrs.update({n: csrs[own_nodes(ctx)[0]] for n in targets(ctx)})
    return Outcome.advance(
        output={"csr": csrs},
        evidence={"csr_sha256": {n: csrs[n]["sha256"] for n in targets(ctx)}},
        reason=(
            f"one multi-server CSR on {own_nodes(ctx)[0]} naming {len(targets(ctx))} node(s)"
            if multi
            else f"{len(targets(ctx))} CSR(s) generated"
        ),
    )


def register(registry: Registry) -> None:
    registry.step("generate_csrs")(classified(generate_csrs))
