"""phones_reregistered: reset every phone, then watch them register again (RisPort70).

The baseline is the set of phones registered before the reset: a phone that was not registered
then is not waited for. Sweeps are spaced so RisPort70's rate limit is never reached.
"""

from __future__ import annotations

import math
from typing import Any

from engine.api import Effect, Outcome, Registry, StepContext

from .common import deps, iso, names
from .errors import classified

REGISTERED = "Registered"


def _publisher(ctx: StepContext) -> str:
    roles = ctx.context.get("node_roles") or {}
    return next((n for n, r in roles.items() if r == "publisher"), next(iter(roles), "publisher"))


def sweep_interval(ctx: StepContext, phones: int) -> float:
    """Seconds between sweeps: never below the floor, and slow enough for the rate limit."""
    per_minute = max(float(deps(ctx).risport_per_minute), 0.1)
    requests = max(1, math.ceil(phones / 1000))
    return max(float(ctx.params.get("sweep_interval", 15)), 60.0 * requests / per_minute)


def _untouched(cucm: Any, names: list[str], stamps: dict[str, int]) -> list[str]:
    """The phones among ``names`` that still show the registration the baseline saw: same
    RisPort TimeStamp, still registered. A reset phone has dropped that registration since."""
    seen = cucm.registered_phones(names)
    return [
        n
        for n in names
        if (s := seen.get(n)) is not None
        and s.status == REGISTERED
        and s.timestamp is not None
        and s.timestamp == stamps.get(n)
    ]


def _reset_in_batches(
    ctx: StepContext, publisher: str, expected: list[str], stamps: dict[str, int]
) -> dict[str, Any]:
    """Reset the phones batch by batch, each batch an effect of its own.

    CUCM keeps no record of a reset, but RisPort shows its trace: a phone that was reset has
    dropped the registration the baseline saw (its TimeStamp moved, or it is not registered). So a
    batch whose intent was journaled but not its outcome is reconciled by resetting only the phones
    that still show their baseline registration: each phone is reset once for one intent. Without
    baseline timestamps (a run started by an older version) the batch counts as done and its phones
    are reported as "reset not confirmed", for the operator to check.
    """
    cucm = deps(ctx).cucm
    size = max(1, int(ctx.params.get("reset_batch", 200)))
    accepted = 0
    unconfirmed = 0
    for start in range(0, len(expected), size):
        batch = expected[start : start + size]

        def reconcile(_effect: Effect, batch: list[str] = batch) -> Any:
            if not stamps:
                return {"accepted": len(batch), "unconfirmed": True}
            untouched = _untouched(cucm, batch, stamps)
            redone = cucm.reset_phones(untouched) if untouched else 0
            return {"accepted": len(batch) - len(untouched) + redone, "reset_on_resume": len(untouched)}

        def reset(batch: list[str] = batch) -> Any:
            return {"accepted": cucm.reset_phones(batch)}

        result = ctx.effect(
            f"{publisher}#phones-{start + 1}-{start + len(batch)}",
            "phone_reset",
            reset,
            intent={"first": batch[0], "last": batch[-1], "count": len(batch)},
            reconcile=reconcile,
        )
        accepted += int(result["accepted"])
        unconfirmed += len(batch) if result.get("unconfirmed") else 0
    return {"accepted": accepted, "unconfirmed": unconfirmed, "at": iso(ctx.now())}


def watch_phones(ctx: StepContext) -> Outcome:
    if not ctx.params.get("phone_reset"):
        return Outcome.advance(reason=f"{ctx.definition} does not reset phones")
    cucm = deps(ctx).cucm
    publisher = _publisher(ctx)
    state: dict[str, Any] = dict(ctx.context.get("phones") or {})

    def take_baseline() -> dict[str, Any]:
        registered = {n: s for n, s in cucm.registered_phones().items() if s.status == REGISTERED}
        return {
            "names": sorted(registered),
            "stamps": {n: s.timestamp for n, s in registered.items() if s.timestamp is not None},
            "at": iso(ctx.now()),
        }

    baseline = ctx.effect(publisher, "phone_baseline", take_baseline)
    expected: list[str] = list(baseline["names"])
    if not expected:
        return Outcome.advance(
            evidence={"phones_baseline": 0}, reason="no phone was registered: nothing to reset"
        )
    reset = _reset_in_batches(ctx, publisher, expected, dict(baseline.get("stamps") or {}))
    if not state.get("reset_at"):
        state.update(
            baseline=len(expected),
            reset=reset["accepted"],
            reset_unconfirmed=reset["unconfirmed"],
            reset_at=reset["at"],
            sweeps=0,
        )
        ctx.progress(publisher, f"{reset['accepted']} phone(s) reset")
        # Phones take a moment to drop their registration; a sweep at once would see them all still up.
        return Outcome.wait(
            float(ctx.params.get("reset_settle", 20)),
            f"{reset['accepted']} phone(s) reset, waiting for them to re-register",
            output={"phones": state},
        )

    seen = cucm.registered_phones()
    missing = [n for n in expected if (s := seen.get(n)) is None or s.status != REGISTERED]
    state["sweeps"] = int(state.get("sweeps", 0)) + 1
    state["registered"] = len(expected) - len(missing)
    state["missing_count"] = len(missing)
    state["missing"] = missing[:200]
    state["last_sweep_at"] = iso(ctx.now())
    ctx.progress(publisher, f"{state['registered']}/{len(expected)} phones registered again")
    if missing:
        return Outcome.wait(
            sweep_interval(ctx, len(seen) or len(expected)),
            f"{state['registered']}/{len(expected)} phones registered again; waiting for {len(missing)} "
            f"({names(missing)})",
            output={"phones": state},
        )
    return Outcome.advance(
        output={"phones": state},
        evidence={
            "phones_baseline": len(expected),
            "phones_reset": state.get("reset", reset["accepted"]),
            "phones_reset_unconfirmed": state.get("reset_unconfirmed", 0),
            "phones_registered": state["registered"],
            "risport_sweeps": state["sweeps"],
        },
        reason=f"all {len(expected)} phones registered again",
    )


def report_missing_phones(ctx: StepContext) -> Outcome:
    state = ctx.context.get("phones") or {}
    missing = list(state.get("missing") or [])
    count = int(state.get("missing_count", len(missing)))
    return Outcome.gate(
        f"{count} phone(s) did not register again in time: {names(missing) or 'unknown'}; check them "
        f"(RTMT, or reset them by hand), then `cucm-renew approve {ctx.run_id}` to continue",
        on_approve="next",
        evidence={"phones_missing": missing, "phones_missing_count": count},
    )


def register(registry: Registry) -> None:
    registry.step("watch_phones")(classified(watch_phones))
    registry.step("report_missing_phones")(classified(report_missing_phones))
