"""verified: every renewed node now presents the new certificate on the type's TLS port."""

from __future__ import annotations

from typing import Any

from adapters.cucm.port import TlsVerificationError
from engine.api import Outcome, Registry, StepContext
from workflows.certkit import cert_summary

from .common import deps, node_map, targets
from .errors import classified


def verify_presented(ctx: StepContext) -> Outcome:
    cucm = deps(ctx).cucm
    port = int(ctx.params.get("tls_port", 8443))
    issued = node_map(ctx, "issued")
    results: dict[str, Any] = {}
    wrong: list[str] = []
    for node in targets(ctx):
        want = issued[node]
        try:
            presented = cert_summary(cucm.presented_certificate(node, port))
        except TlsVerificationError as exc:
            wrong.append(f"{node}:{port} presents a certificate that does not verify ({exc})")
            continue
        ok = presented["sha256"] == want["sha256"]
        results[node] = {
            "ok": ok,
            "serial": presented["serial"],
            "not_after": presented["not_after"],
            "sha256": presented["sha256"],
        }
        if ok:
            ctx.progress(node, f"presents serial {presented['serial']} on {port}")
        else:
            wrong.append(
                f"{node}:{port} still presents serial {presented['serial']} "
                f"(valid to {presented['not_after']}), "
                f"not the uploaded serial {want['serial']}"
            )
    if wrong:
        services = ", ".join(ctx.params.get("services") or [])
        return Outcome.fail(
            "; ".join(wrong) + f": restart {services} on that node, then `cucm-renew retry {ctx.run_id}`",
            retryable=True,
        )
    return Outcome.advance(
        output={"verified": results},
        evidence={"verified": results},
        reason=f"{len(results)} node(s) present the new certificate on port {port}",
    )


def register(registry: Registry) -> None:
    registry.step("verify_presented")(classified(verify_presented))
