"""expiry_check: which nodes need a new certificate of this type."""

from __future__ import annotations

from engine.api import Outcome, Registry, StepContext
from workflows.certkit import cert_summary, load_cert
from workflows.context import view
from workflows.releases import Release, ReleaseError, differs
from workflows.renewal import RenewalPolicy, renewal_due

from .common import deps, order_nodes, unit
from .errors import classified


def check_expiry(ctx: StepContext) -> Outcome:
    """Renew a node when fewer than ``renew_before_days`` remain, or when the run is forced.

    Only reads CUCM, so re-running it after a crash is harmless.
    """
    cucm = deps(ctx).cucm
    reported = cucm.version()
    release = Release.parse(reported)
    configured = deps(ctx).configured_version
    if configured:
        try:
            wanted_release = Release.parse(configured)
        except ReleaseError as exc:
            return Outcome.fail(f"the configuration's version: {exc}", retryable=False)
        if differs(wanted_release, release):
            return Outcome.fail(
                f"cluster {ctx.scope} runs CUCM {reported} ({release}), but the configuration says "
                f"version = {configured!r} ({wanted_release}): correct or remove `version` in "
                f"[clusters.{ctx.scope}], then `cucm-renew retry {ctx.run_id}`",
                retryable=False,
            )
    roles = set(ctx.params.get("roles") or [])
    given = view(ctx.context)
    policy = RenewalPolicy(float(given.get("renew_before_days", 30)), force=bool(given.get("force")))
    wanted = set(given.get("only_nodes") or [])
    now = ctx.now()
    every = [(n.name, n.role) for n in cucm.nodes()]
    nodes = [(n, r) for n, r in every if r in roles and (not wanted or n in wanted)]
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
        "release": str(release),
        "release_version": reported,
        "cluster_nodes": {n: dict(every)[n] for n in order_nodes(every)},
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
        evidence={
            "release": str(release),
            "targets": due,
            "expiry": {n: expiry[n]["not_after"] for n in due},
            "forced": policy.force,
        },
        reason=f"renewing {unit(ctx)} on {len(due)} node(s)",
    )


def register(registry: Registry) -> None:
    registry.step("check_expiry")(classified(check_expiry))
