"""expiry_check: which nodes need a new certificate of this type."""

from __future__ import annotations

from engine.api import Outcome, Registry, StepContext
from workflows.certkit import cert_summary, load_cert
from workflows.context import view
from workflows.renewal import RenewalPolicy, renewal_due

from .common import deps, order_nodes, unit
from .errors import classified


def check_expiry(ctx: StepContext) -> Outcome:
    """Renew a node when fewer than ``renew_before_days`` remain, or when the run is forced.

    Only reads CUCM, so re-running it after a crash is harmless.
    """
    cucm = deps(ctx).cucm
    roles = set(ctx.params.get("roles") or [])
    given = view(ctx.context)
    policy = RenewalPolicy(float(given.get("renew_before_days", 30)), force=bool(given.get("force")))
    wanted = set(given.get("only_nodes") or [])
    now = ctx.now()
    nodes = [(n.name, n.role) for n in cucm.nodes() if n.role in roles and (not wanted or n.name in wanted)]
    expiry: dict[str, dict[str, object]] = {}
    due: list[str] = []
    for name in order_nodes(nodes):
        pem = cucm.identity_certificate(name, unit(ctx))
        decision = renewal_due(load_cert(pem), now, policy)
        summary = cert_summary(pem)
        summary["days_left"] = round(decision.days_left, 1)
        expiry[name] = summary
        if decision.due:
            due.append(name)
        ctx.progress(
            name, f"expires in {decision.days_left:.0f} days" + (" (renewing)" if decision.due else "")
        )
    output = {
        "node_roles": dict(nodes),
        "expiry": expiry,
        "old": expiry,
        "targets": due,
    }
    if not due:
        return Outcome.advance(
            "not_due",
            output=output,
            reason=f"no {unit(ctx)} certificate expires within {policy.renew_before_days:g} days",
        )
    return Outcome.advance(
        output=output,
        evidence={"targets": due, "expiry": {n: expiry[n]["not_after"] for n in due}, "forced": policy.force},
        reason=f"renewing {unit(ctx)} on {len(due)} node(s)",
    )


def register(registry: Registry) -> None:
    registry.step("check_expiry")(classified(check_expiry))
