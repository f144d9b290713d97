"""verified: every renewed node shows the new certificate where the release says it can be seen.

Per node, each TLS port the release table gives for the type is checked where that port's service
is activated on the node (ipsec before 14: DRF Master's 4040 on the publisher; CallManager from
14SU1: 5061 and HAProxy's 6971). A node with none of them (a subscriber's ipsec before 14, any
ipsec from 14) is verified by reading its identity back (certmgr or the CLI) and comparing
fingerprints.
"""

from __future__ import annotations

from typing import Any

from adapters.cucm.port import TlsVerificationError
from engine.api import Outcome, Registry, StepContext
from workflows.certkit import cert_summary

from .common import deps, node_map, release_rules, targets, unit
from .errors import classified
from .restart import NOT_ACTIVATED, services_for


def _activated(ctx: StepContext, node: str, service: str) -> bool:
    status = deps(ctx).cucm.service_status(node, service)
    if status.status in ("NotFound", "Unknown"):
        return False
    return not (status.status == "Stopped" and NOT_ACTIVATED.lower() in (status.reason or "").lower())


def verify_presented(ctx: StepContext) -> Outcome:
    cucm = deps(ctx).cucm
    rules = release_rules(ctx)
    ports = rules.ports_for(unit(ctx))
    # A port serving an RSA identity and its EC twin shows the twin to a client offering ECDSA
    # suites only (CM15, PA12).
    key_type = "ec" if unit(ctx).endswith("-ECDSA") else "any"
    issued = node_map(ctx, "issued")
    results: dict[str, Any] = {}
    wrong: list[str] = []
    for node in targets(ctx):
        want = issued[node]
        checks: dict[str, Any] = {}
        for vp in ports:
            if not _activated(ctx, node, vp.service):
                continue
            try:
                presented = cert_summary(cucm.presented_certificate(node, vp.port, key_type=key_type))
            except TlsVerificationError as exc:
                wrong.append(f"{node}:{vp.port} presents a certificate that does not verify ({exc})")
                continue
            ok = presented["sha256"] == want["sha256"]
            checks[str(vp.port)] = {"ok": ok, "serial": presented["serial"], "sha256": presented["sha256"]}
            if not ok:
                wrong.append(
                    f"{node}:{vp.port} still presents serial {presented['serial']} "
                    f"(valid to {presented['not_after']}), not the uploaded serial {want['serial']} "
                    f"({vp.service})"
                )
        how = "tls"
        if not checks:
            # No service presenting this type runs on the node: read the identity back instead.
            how = "read back"
            current = cert_summary(cucm.identity_certificate(node, unit(ctx)))
            ok = current["sha256"] == want["sha256"]
            checks["identity"] = {"ok": ok, "serial": current["serial"], "sha256": current["sha256"]}
            if not ok:
                wrong.append(
                    f"{node}: {unit(ctx)} identity is serial {current['serial']}, not {want['serial']}"
                )
        all_ok = all(c["ok"] for c in checks.values())
        results[node] = {
            "ok": all_ok,
            "how": how,
            "ports": sorted(p for p in checks if p != "identity"),
            "serial": want["serial"],
            "not_after": want["not_after"],
            "sha256": want["sha256"],
            "checks": checks,
        }
        if all_ok:
            where = (
                f"on {', '.join(results[node]['ports'])}" if how == "tls" else "read back (no TLS port here)"
            )
            ctx.progress(node, f"serial {want['serial']} {where}")
    if wrong:
        return Outcome.fail(
            "; ".join(wrong)
            + f": restart {', '.join(services_for(ctx))} on that node, then `cucm-renew retry {ctx.run_id}`",
            retryable=True,
        )
    return Outcome.advance(
        output={"verified": results},
        evidence={"verified": results},
        reason=f"{len(results)} node(s) show the new certificate "
        f"({', '.join(f'{p.port} where {p.service} runs' for p in ports) or 'read back'})",
    )


def register(registry: Registry) -> None:
    registry.step("verify_presented")(classified(verify_presented))
