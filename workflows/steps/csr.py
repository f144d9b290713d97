"""csr_generated: one CSR per node, made by CUCM, recorded with its SHA-256."""

from __future__ import annotations

from typing import Any

from engine.api import Effect, Outcome, Registry, StepContext

from .common import deps, each_node, node_map, sha256_text, targets, unit
from .errors import classified


def generate_csrs(ctx: StepContext) -> Outcome:
    """Generate each node's CSR once.

    A CSR that went to a CA is never regenerated: CUCM keeps one CSR per node and type, and a new
    one would make the certificate the CA is signing unusable. If the process died between asking
    CUCM and recording the answer, the CSR CUCM now holds is adopted: it is the one an upload will
    be checked against. Only a CSR other than the one CUCM held before the request counts: the
    intent journals that one's SHA-256, so a request that never landed (its answer lost, or the
    process killed before it left) is sent again rather than an old CSR adopted.
    """
    cucm = deps(ctx).cucm
    kind = unit(ctx)
    csrs = node_map(ctx, "csr")
    sent = node_map(ctx, "ca")

    def one(node: str) -> dict[str, str]:
        def reconcile(effect: Effect) -> Any:
            pem = cucm.current_csr(node, kind)
            if not pem:
                return None
            # An intent journaled before the previous CSR was recorded in it adopts any CSR.
            if "before_sha256" in effect.intent and sha256_text(pem) == effect.intent["before_sha256"]:
                return None
            return {"pem": pem, "adopted": True}

        def held() -> str | None:
            pem = cucm.current_csr(node, kind)
            return sha256_text(pem) if pem else None

        def generate() -> Any:
            return {"pem": cucm.generate_csr(node, kind)}

        result = ctx.effect(
            node,
            "generate_csr",
            generate,
            intent={"unit": kind, "before_sha256": held()},
            reconcile=reconcile,
        )
        pem = str(result["pem"])
        made = {"pem": pem, "sha256": sha256_text(pem)}
        ctx.progress(node, f"CSR generated ({made['sha256'][:12]})")
        return made

    csrs.update(each_node([n for n in targets(ctx) if not (n in csrs and n in sent)], one))
    return Outcome.advance(
        output={"csr": csrs},
        evidence={"csr_sha256": {n: csrs[n]["sha256"] for n in targets(ctx)}},
        reason=f"{len(targets(ctx))} CSR(s) generated",
    )


def register(registry: Registry) -> None:
    registry.step("generate_csrs")(classified(generate_csrs))
