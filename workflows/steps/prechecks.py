"""cluster_ready and ctl_feasible: the pre-checks of :mod:`workflows.readiness`, again inside the run.

``cluster_ready`` comes before the run's first change to CUCM (its CSR): the checks that concern the
run's type (:func:`workflows.readiness.checks_for`) are read afresh and recorded as ``prechecks``.
``ctl_feasible`` comes after the CA's answer and before the first upload, for a type whose change
updates the CTL in mixed mode: licensing and the CTL can change during a week-long CA wait. The
guard ``prechecks_passed`` judges the record of the state the run is leaving; while it refuses, the
engine runs the step again after the state's poll, so a condition repaired meanwhile lets the run go
on by itself. A ``warn`` never holds a run: it is in the transition's reason and evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from engine.api import Outcome, Registry, StepContext
from workflows import readiness
from workflows.timestamps import iso

from .common import deps, release_rules, unit
from .errors import classified


def _ca_chain(ca: Any) -> tuple[list[str] | None, float | None]:
    """A CA that says its chain and its leaves' lifetime up front (the local CA); the others' chain
    is known once they sign, and pre-flight checks it then."""
    chain = getattr(ca, "chain_pems", None)
    validity = getattr(ca, "validity", None)
    if chain and isinstance(validity, timedelta):
        return list(chain), validity.total_seconds() / 86400
    return None, None


def _record(ctx: StepContext, checks: Sequence[readiness.Check], *, needed: str) -> Outcome:
    record = {"state": ctx.state, "at": iso(ctx.now()), "checks": [c.as_dict() for c in checks]}
    failed = [c for c in checks if c.failed]
    warned = [c for c in checks if c.level == "warn"]
    if failed:
        reason = f"{len(failed)} pre-check(s) failed: {', '.join(c.name for c in failed)}"
    elif checks:
        reason = f"pre-checks passed {needed}: " + ", ".join(f"{c.name} {c.level}" for c in checks)
    else:
        reason = f"no pre-check concerns {ctx.definition} {needed}"
    if warned:
        reason += "; " + "; ".join(f"WARN {c.name}: {c.message}" for c in warned)
    return Outcome.advance(
        output={"prechecks": record},
        evidence={"prechecks": record["checks"]},
        reason=reason,
    )


def check_readiness(ctx: StepContext) -> Outcome:
    """Every check that concerns this type, read afresh on each visit and each poll."""
    release = release_rules(ctx).release
    names = readiness.checks_for(
        unit(ctx),
        release,
        changes_phone_trust=bool(ctx.params.get("phone_reset")),
        requires_sso_off=bool(ctx.params.get("requires_sso_off")),
    )
    chain, days = _ca_chain(deps(ctx).ca)
    facts = readiness.gather(
        deps(ctx).cucm, types=[unit(ctx)], ca_chain_pems=chain, leaf_days=days, checks=names
    )
    return _record(ctx, readiness.run_checks(facts, ctx.now(), names), needed="before the first change")


def check_ctl_feasible(ctx: StepContext) -> Outcome:
    """Tokenless CTL and export-controlled licensing, for a type the release table says updates the
    CTL; nothing is read for the others."""
    if unit(ctx) not in release_rules(ctx).ctl_update_after:
        return _record(ctx, [], needed="before the upload")
    facts = readiness.gather(deps(ctx).cucm, types=[unit(ctx)], checks=("ctl-feasible",))
    return _record(ctx, readiness.run_checks(facts, ctx.now(), ("ctl-feasible",)), needed="before the upload")


def register(registry: Registry) -> None:
    registry.step("check_readiness")(classified(check_readiness))
    registry.step("check_ctl_feasible")(classified(check_ctl_feasible))
