"""ctl_updated: in mixed mode, rebuild the CTL on the publisher before any restart."""

from __future__ import annotations

from engine.api import Outcome, Registry, StepContext

from .common import deps
from .errors import classified


def update_ctl(ctx: StepContext) -> Outcome:
    cucm = deps(ctx).cucm
    mode = "mixed" if cucm.security_mode() == 1 else "non-secure"
    if not ctx.params.get("ctl_update"):
        return Outcome.advance(
            output={"security_mode": mode},
            reason=f"{ctx.definition} is not in the CTL: no CTL update",
        )
    if mode != "mixed":
        return Outcome.advance(
            output={"security_mode": mode, "ctl_updated": False},
            evidence={"security_mode": mode},
            reason="cluster is non-secure: no CTL to update",
        )
    publisher = next(n.name for n in cucm.nodes() if n.role == "publisher")
    # Re-running `utils ctl update CTLFile` rebuilds the same file, so no reconcile hook is needed.
    text = ctx.effect(publisher, "ctl_update", lambda: {"output": cucm.ctl_update()[-400:]})
    ctx.progress(publisher, "CTL file updated")
    return Outcome.advance(
        output={"security_mode": mode, "ctl_updated": True},
        evidence={"security_mode": mode, "ctl_output": text["output"]},
        reason="mixed mode: CTL updated on the publisher",
    )


def register(registry: Registry) -> None:
    registry.step("update_ctl")(classified(update_ctl))
