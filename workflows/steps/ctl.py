"""ctl_updated: in mixed mode, rebuild the CTL on the publisher before any restart.

Which types need it is the release table's ``ctl_update_after`` (see workflows/README.md, "The
CTL decision"). The phones' baseline is taken first: the CTL update is the first action of a
type without automatic phone reset that can knock phones off.
"""

from __future__ import annotations

from engine.api import Outcome, Registry, StepContext

from .common import deps, release_rules, unit
from .errors import classified
from .phones import baseline_output


def update_ctl(ctx: StepContext) -> Outcome:
    cucm = deps(ctx).cucm
    mode = "mixed" if cucm.security_mode() == 1 else "non-secure"
    rules = release_rules(ctx)
    if unit(ctx) not in rules.ctl_update_after:
        return Outcome.advance(
            output={"security_mode": mode, "ctl_updated": False},
            reason=f"no CTL update: the release table does not list {ctx.definition} in ctl_update_after",
        )
    if mode != "mixed":
        return Outcome.advance(
            output={"security_mode": mode, "ctl_updated": False},
            evidence={"security_mode": mode},
            reason="cluster is non-secure: no CTL to update",
        )
    output = baseline_output(ctx, "ctl_update")
    publisher = next(n.name for n in cucm.nodes() if n.role == "publisher")
    # Re-running `utils ctl update CTLFile` rebuilds the same file, so no reconcile hook is needed.
    text = ctx.effect(publisher, "ctl_update", lambda: {"output": cucm.ctl_update()[-400:]})
    ctx.progress(publisher, "CTL file updated")
    return Outcome.advance(
        output={**output, "security_mode": mode, "ctl_updated": True},
        evidence={"security_mode": mode, "ctl_output": text["output"]},
        reason="mixed mode: CTL updated on the publisher",
    )


def register(registry: Registry) -> None:
    registry.step("update_ctl")(classified(update_ctl))
