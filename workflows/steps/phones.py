"""phones_reset, then phones_reregistered: reset every phone, then watch them register again
(RisPort70).

The baseline is the set of phones registered before the first action that can knock them off
(the identity upload where CUCM resets phones itself, else the CTL update or the first restart):
a phone that was not registered then is not waited for, and one is back only once it is
Registered with a TimeStamp newer than the baseline's. Where CUCM resets the phones itself
("Phone Interaction on Certificate Update", 14+), the tool resets only the phones whose TimeStamp
did not move after a grace period; elsewhere it resets them all. Phones are reset by device pool
(AXL ``resetDevicePool``, one request per pool) unless the cluster is configured with
``phone_reset = "phones"``; a phone in no pool is reset by name (``doDeviceReset``, throttled, in
batches). Sweeps are spaced so RisPort70's rate limit is never reached.

RisPort70 trails reality (the RIS Data Collector gathers asynchronously) by up to the cluster's
``risport_lag``: a phone reset a moment ago may still show its old registration. So nothing is
concluded from a phone *not* having moved until that long after the action that should have moved
it: the look for phones CUCM's automatic reset missed, the stamps taken before the tool's own reset,
and the reconcile of a reset whose answer was lost or whose process died, all wait out the lag
first. A phone that *did* move is conclusive at once (RisPort never shows a change that did not
happen).
"""

from __future__ import annotations

import math
from typing import Any

from adapters.cucm.port import CucmRejected
from engine.api import Effect, Outcome, Registry, StepContext
from workflows import context
from workflows.context import PhonesState, view
from workflows.timestamps import iso

from .common import automatic_phone_reset, deps, names
from .errors import classified

REGISTERED = "Registered"


class RisLagging(Exception):
    """A reset may have happened that RisPort cannot show yet: look again in ``seconds``."""

    def __init__(self, seconds: float, what: str) -> None:
        super().__init__(what)
        self.seconds = seconds


def risport_lag(ctx: StepContext) -> float:
    """How far (CUCM seconds) RisPort70 may trail reality on this cluster."""
    return max(0.0, float(getattr(deps(ctx), "risport_lag", 0.0)))


def _settled(ctx: StepContext, effect: Effect, what: str) -> None:
    """Raise :class:`RisLagging` until RisPort must show a reset sent no later than ``effect``'s
    intent (``risport_lag`` bounds how long after a reset RisPort shows the phone leave)."""
    # The journal's times are the wall clock's; the lag is in CUCM seconds.
    elapsed = (ctx.now() - effect.recorded_at).total_seconds() * float(getattr(deps(ctx), "time_scale", 1.0))
    remaining = risport_lag(ctx) - elapsed
    if remaining > 0:
        raise RisLagging(
            remaining,
            f"{what}: its answer never came and RisPort does not show it yet; RisPort may trail by "
            f"{risport_lag(ctx):.0f} s, so looking again before resetting anything",
        )


def _publisher(ctx: StepContext) -> str:
    return context.publisher(ctx.context) or next(iter(context.node_roles(ctx.context)), "publisher")


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


def _pools_for(ctx: StepContext, expected: list[str]) -> tuple[dict[str, tuple[int, list[str]]], list[str]]:
    """The device pools holding the expected phones (pool -> how many phones CUCM lists in it, and
    the expected ones), and the expected phones in no pool. Everything by name when configured so
    or pools cannot be read."""
    if deps(ctx).phone_reset != "pools":
        return {}, expected
    try:
        pools = deps(ctx).cucm.device_pools()
    except CucmRejected as error:
        ctx.progress(_publisher(ctx), f"device pools not readable ({error.cucm_message}): resetting by name")
        return {}, expected
    pool_of = {name.upper(): pool for pool, phones in pools.items() for name in phones}
    wanted: dict[str, tuple[int, list[str]]] = {}
    outside: list[str] = []
    for name in expected:
        pool = pool_of.get(name.upper())
        if pool is None:
            outside.append(name)
        else:
            wanted.setdefault(pool, (len(pools[pool]), []))[1].append(name)
    return dict(sorted(wanted.items())), outside


def _reset(ctx: StepContext, publisher: str, expected: list[str], stamps: dict[str, int]) -> dict[str, Any]:
    """Reset the expected phones: their device pools first, then the phones in no pool by name.

    Each pool reset is an effect of its own. CUCM keeps no record of a reset, but RisPort shows its
    trace (see :func:`_reset_in_batches`). CUCM resets a pool as a whole, so a pool whose intent was
    journaled but not its outcome is reset again only when every one of its expected phones still
    shows its baseline registration (the request never reached CUCM); otherwise it counts as done.
    Without baseline timestamps it counts as done and its phones are reported "reset not confirmed".
    """
    cucm = deps(ctx).cucm
    pools, outside = _pools_for(ctx, expected)
    accepted = 0
    unconfirmed = 0
    for pool, (count, members) in pools.items():

        def reconcile(
            effect: Effect, pool: str = pool, count: int = count, members: list[str] = members
        ) -> Any:
            if not stamps:
                return {"accepted": count, "unconfirmed": True}
            if len(_untouched(cucm, members, stamps)) < len(members):
                return {"accepted": count}
            _settled(ctx, effect, f"the reset of device pool {pool}")
            if len(_untouched(cucm, members, stamps)) < len(members):
                return {"accepted": count}
            return {"accepted": count if cucm.reset_device_pools([pool]) else 0, "reset_on_resume": count}

        def reset_pool(pool: str = pool, count: int = count) -> Any:
            return {"accepted": count if cucm.reset_device_pools([pool]) else 0}

        result = ctx.effect(
            f"{publisher}#pool-{pool}",
            "phone_reset",
            reset_pool,
            intent={"device_pool": pool, "count": count},
            reconcile=reconcile,
        )
        accepted += int(result["accepted"])
        unconfirmed += count if result.get("unconfirmed") else 0
    by_name = _reset_in_batches(ctx, publisher, outside, stamps)
    return {
        "accepted": accepted + by_name["accepted"],
        "unconfirmed": unconfirmed + by_name["unconfirmed"],
        "pools": len(pools),
        "at": iso(ctx.now()),
    }


def _reset_in_batches(
    ctx: StepContext, publisher: str, expected: list[str], stamps: dict[str, int]
) -> dict[str, int]:
    """Reset the phones by name batch by batch, each batch an effect of its own.

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

        def reconcile(effect: Effect, batch: list[str] = batch) -> Any:
            if not stamps:
                return {"accepted": len(batch), "unconfirmed": True}
            untouched = _untouched(cucm, batch, stamps)
            if untouched:
                _settled(ctx, effect, f"the reset of {len(batch)} phone(s) ({names(batch)})")
                untouched = _untouched(cucm, untouched, stamps)
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
    return {"accepted": accepted, "unconfirmed": unconfirmed}


def take_baseline(ctx: StepContext, before: str) -> dict[str, Any]:
    """One RisPort70 sweep: the registered phones, their TimeStamps and nodes, journaled."""
    cucm = deps(ctx).cucm

    def sweep() -> dict[str, Any]:
        registered = {n: s for n, s in cucm.registered_phones().items() if s.status == REGISTERED}
        return {
            "names": sorted(registered),
            "stamps": {n: s.timestamp for n, s in registered.items() if s.timestamp is not None},
            "nodes": {n: s.node for n, s in registered.items()},
            "at": iso(ctx.now()),
            "before": before,
        }

    result: dict[str, Any] = ctx.effect(_publisher(ctx), "phone_baseline", sweep)
    return result


def baseline_output(ctx: StepContext, before: str) -> dict[str, Any]:
    """``{"baseline": ...}`` for a step's output, taken now unless the run has one already: the
    phones counted before the first action that can knock them off (``before`` names it)."""
    if not ctx.params.get("phone_reset") or view(ctx.context).get("baseline"):
        return {}
    baseline = take_baseline(ctx, before)
    ctx.progress(_publisher(ctx), f"{len(baseline['names'])} phone(s) registered before the {before}")
    return {"baseline": baseline}


def sweep_for(cucm: Any, wanted: list[str], *, of: int | None = None) -> dict[str, Any]:
    """RisPort states of ``wanted``: asked by name (a thousand names a request) for a few, or when
    that takes fewer requests than paging the whole cluster of ``of`` phones (unknown: it cannot
    take more), else one sweep of every phone."""
    if len(wanted) <= 200 or of is None or math.ceil(len(wanted) / 1000) < math.ceil(of / 1000):
        return dict(cucm.registered_phones(wanted))
    every = cucm.registered_phones()
    return {n: every[n] for n in wanted if n in every}


def back(seen: dict[str, Any], name: str, stamps: dict[str, int], since: int | None = None) -> bool:
    """Registered again after the change: Registered, with a TimeStamp newer than the one the
    baseline saw (and not older than ``since``, CUCM's clock). A phone that never left counts
    only if nothing was expected to move it: never here, since every baseline phone is reset."""
    state = seen.get(name)
    if state is None or state.status != REGISTERED:
        return False
    before = stamps.get(name)
    if state.timestamp is None:
        return before is None
    if before is not None and state.timestamp <= before:
        return False
    return since is None or state.timestamp >= since


def _baseline(ctx: StepContext) -> tuple[dict[str, Any], list[str], dict[str, int]]:
    """The step output holding a baseline taken now if the run has none yet, the baseline phones
    and their TimeStamps."""
    output: dict[str, Any] = {}
    baseline = view(ctx.context).get("baseline")
    if not baseline:
        output = baseline_output(ctx, "phone reset")
        baseline = output["baseline"]
    return output, list(baseline.get("names") or []), dict(baseline.get("stamps") or {})


def _start(
    ctx: StepContext, nothing: str
) -> Outcome | tuple[PhonesState, dict[str, Any], list[str], dict[str, int]]:
    """What both phone steps begin with: the run's phone state, the baseline (taken now if the run
    has none) and its phones; or the outcome when there is nothing to do."""
    if not ctx.params.get("phone_reset"):
        return Outcome.advance(reason=f"{ctx.definition} does not reset phones")
    state = PhonesState(**(view(ctx.context).get("phones") or {}))
    output, expected, stamps = _baseline(ctx)
    if not expected:
        return Outcome.advance(
            output=output, evidence={"phones_baseline": 0}, reason=f"no phone was registered: {nothing}"
        )
    return state, output, expected, stamps


def reset_phones(ctx: StepContext) -> Outcome:
    """phones_reset: reset every phone of the baseline (or only those CUCM's own reset missed).

    A state of its own, so the wait for phones to register again (phones_reregistered, with its
    timeout) starts once they were reset: a daemon stopped while RisPort's lag was waited out
    resumes by resetting the phones, never by timing out on phones nobody reset."""
    started = _start(ctx, "nothing to reset")
    if isinstance(started, Outcome):
        return started
    state, output, expected, stamps = started
    cucm = deps(ctx).cucm
    publisher = _publisher(ctx)
    automatic = automatic_phone_reset(ctx)
    if automatic and not state.get("grace_waited"):
        # CUCM resets the phones itself on the upload; RisPort shows it only once each phone has
        # dropped its registration and RIS has caught up, so give it time before looking for
        # phones it missed.
        state.update(PhonesState(automatic=True, grace_waited=True))
        return Outcome.wait(
            max(float(ctx.params.get("automatic_reset_grace", 60)), risport_lag(ctx)),
            "CUCM resets the phones itself (Phone Interaction on Certificate Update): waiting "
            "before looking for phones it did not reset",
            output={**output, "phones": state},
        )
    if not automatic and risport_lag(ctx) > 0 and not state.get("grace_waited"):
        # The stamps a resumed reset is judged by must show what the restarts before did.
        state.update(PhonesState(grace_waited=True))
        return Outcome.wait(
            risport_lag(ctx),
            f"RisPort may trail by {risport_lag(ctx):.0f} s: waiting for it to show the phones "
            "as they are before resetting them",
            output={**output, "phones": state},
        )

    def stamps_now() -> dict[str, int]:
        swept = sweep_for(cucm, expected, of=len(expected))
        return {
            n: s.timestamp for n, s in swept.items() if s.status == REGISTERED and s.timestamp is not None
        }

    # The phones as they are just before the reset: a resumed reset judges by these stamps.
    now_stamps = ctx.effect(publisher, "phone_stamps_before_reset", stamps_now)
    if automatic:
        # Only phones still showing their baseline registration were missed by CUCM's reset.
        to_reset = [n for n in expected if n in now_stamps and now_stamps[n] == stamps.get(n)]
    else:
        to_reset = expected
    try:
        reset: dict[str, Any] = (
            # A run whose baseline has no TimeStamps (an older version's) cannot judge a resumed
            # batch by them: it counts as done, unconfirmed.
            _reset(ctx, publisher, to_reset, dict(now_stamps) if stamps else {})
            if to_reset
            else {"accepted": 0, "unconfirmed": 0, "pools": 0, "at": iso(ctx.now())}
        )
    except RisLagging as lagging:
        return Outcome.wait(lagging.seconds, str(lagging), output={**output, "phones": state})
    state.update(
        PhonesState(
            baseline=len(expected),
            automatic=automatic,
            reset=reset["accepted"],
            reset_unconfirmed=reset["unconfirmed"],
            reset_pools=reset["pools"],
            reset_at=reset["at"],
            sweeps=0,
        )
    )
    if not to_reset:
        # CUCM's own reset reached every phone: the sweep just taken is as new as another would
        # be, so the watch starts from it rather than asking RisPort again.
        missing = [n for n in expected if not (n in now_stamps and now_stamps[n] > stamps.get(n, -1))]
        _record_sweep(ctx, state, len(expected), missing)
    what = "missed by CUCM's automatic reset " if automatic else ""
    ctx.progress(publisher, f"{reset['accepted']} phone(s) {what}reset")
    return Outcome.advance(
        output={**output, "phones": state},
        evidence={
            "phones_baseline": len(expected),
            "phones_automatic_reset": automatic,
            "phones_reset": reset["accepted"],
            "phones_reset_pools": reset["pools"],
            "phones_reset_unconfirmed": reset["unconfirmed"],
        },
        reason=f"{reset['accepted']} phone(s) of {len(expected)} {what}reset",
    )


def watch_phones(ctx: StepContext) -> Outcome:
    """phones_reregistered: sweep RisPort70 until every phone of the baseline is back."""
    started = _start(ctx, "nothing to wait for")
    if isinstance(started, Outcome):
        return started
    state, output, expected, stamps = started
    cucm = deps(ctx).cucm
    publisher = _publisher(ctx)
    if not state.get("sweeps") and state.get("reset") and not state.get("settled"):
        # Phones take a moment to drop their registration; a sweep at once would see them all up.
        state["settled"] = True
        return Outcome.wait(
            float(ctx.params.get("reset_settle", 20)),
            f"{state.get('reset')} phone(s) reset, waiting for them to re-register",
            output={**output, "phones": state},
        )
    candidates = expected
    still = list(state.get("missing") or [])
    if state.get("sweeps") and not state.get("missing_count"):
        seen, candidates = {}, []
    elif state.get("sweeps") and 0 < int(state.get("missing_count", 0)) <= len(still):
        # Every other phone was seen back since the change: only those still missing are asked
        # for, in as few requests as their names take.
        candidates = still
        seen = sweep_for(cucm, still, of=len(expected))
    else:
        seen = cucm.registered_phones()
    missing = [n for n in candidates if not back(seen, n, stamps)]
    _record_sweep(ctx, state, len(expected), missing)
    ctx.progress(publisher, f"{state['registered']}/{len(expected)} phones registered again")
    if missing:
        return Outcome.wait(
            sweep_interval(ctx, len(seen) or len(expected)),
            f"{state['registered']}/{len(expected)} phones of the baseline registered again since the "
            f"change; waiting for {len(missing)} ({names(missing)})",
            output={**output, "phones": state},
        )
    return Outcome.advance(
        output={**output, "phones": state},
        evidence={
            "phones_baseline": len(expected),
            "phones_automatic_reset": bool(state.get("automatic")),
            "phones_reset": state.get("reset", 0),
            "phones_reset_pools": state.get("reset_pools", 0),
            "phones_reset_unconfirmed": state.get("reset_unconfirmed", 0),
            "phones_registered": state["registered"],
            "risport_sweeps": state["sweeps"],
        },
        reason=f"all {len(expected)} phones of the baseline registered again after the change",
    )


def _record_sweep(ctx: StepContext, state: PhonesState, expected: int, missing: list[str]) -> None:
    state["sweeps"] = int(state.get("sweeps", 0)) + 1
    state["registered"] = expected - len(missing)
    state["missing_count"] = len(missing)
    state["missing"] = missing[:200]
    state["last_sweep_at"] = iso(ctx.now())


def report_missing_phones(ctx: StepContext) -> Outcome:
    """phones_missing: the wait ran out. One last sweep decides, never the last one recorded: the
    daemon may have been stopped past the timeout while the phones came back."""
    state = PhonesState(**(view(ctx.context).get("phones") or {}))
    _, expected, stamps = _baseline(ctx)
    seen = sweep_for(deps(ctx).cucm, expected, of=len(expected)) if expected else {}
    missing = [n for n in expected if not back(seen, n, stamps)]
    _record_sweep(ctx, state, len(expected), missing)
    count = len(missing)
    missing = missing[:200]
    allowed = max(0, int(deps(ctx).max_phones_missing))
    evidence = {"phones_missing": missing, "phones_missing_count": count, "max_phones_missing": allowed}
    if not count:
        return Outcome.advance(
            output={"phones": state},
            evidence={**evidence, "phones_registered": len(expected)},
            reason=f"all {len(expected)} phones of the baseline registered again (seen on a last look "
            "after the wait ran out)",
        )
    if count <= allowed:
        state["tolerated"] = True
        return Outcome.advance(
            output={"phones": state},
            evidence=evidence,
            reason=f"{count} phone(s) of the baseline did not register again ({names(missing) or 'none'}), "
            f"within max_phones_missing = {allowed}: reported, not counted as back",
        )
    return Outcome.gate(
        f"{count} phone(s) did not register again after the change (all were registered before it; "
        f"max_phones_missing = {allowed}): {names(missing) or 'unknown'}. Try: reset them (CM "
        "Administration > Device > Phone > Reset); in mixed mode check the CTL (`utils ctl update "
        "CTLFile` on the publisher, then reset them); for an ITL mismatch (the phone's log says it "
        "cannot verify the ITL), `utils itl reset localkey` on the publisher, then reset them. Then "
        f"`cucm-renew approve {ctx.run_id}` to continue",
        on_approve="next",
        evidence=evidence,
    )


def register(registry: Registry) -> None:
    registry.step("reset_phones")(classified(reset_phones))
    registry.step("watch_phones")(classified(watch_phones))
    registry.step("report_missing_phones")(classified(report_missing_phones))
