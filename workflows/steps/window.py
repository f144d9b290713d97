"""The change window, before each type's outage; the outage's report, at its end.

``await_window`` runs in the state just before the type's outage (``window_before_upload`` for
the types whose outage begins at the identity upload, ``window_before_restart`` for those whose
outage begins at the first restart). It estimates the outage from the plan (the restarts on the
nodes where each service is activated, this cluster's measured restart times, the registered
phones), stops at an approval gate when the cluster asks for one, and lets the run into its
outage only inside a change window with the estimate's time left in it; otherwise it waits,
durably, until the start of the next window that fits. The hold on a cluster is the guard
``no_hold_on_cluster`` on the way out of this state.

``report_outage`` runs as the outage ends: it records how long it took against the estimate,
the restart durations measured, and an overrun of the window (notified as ``window_missed``).

What it records in the run's context, under ``window``: ``state`` (the state that estimated),
``estimate`` (:meth:`workflows.estimate.Estimate.as_dict`), ``approval_requested``/``approved_at``,
``target`` (the window waited for: ``start``, ``end``), ``expiry_warned`` (the window start an
``expires_before_window`` notice was recorded for), ``entered_at`` and ``slot`` (the window the
outage began in), ``reported_at``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from adapters.cucm.port import CucmError, CucmPort
from engine.api import Outcome, Registry, StepContext
from workflows.context import view
from workflows.estimate import Estimate, estimate
from workflows.releases import rules
from workflows.timestamps import instant, iso
from workflows.windows import Slot, Windows, human

from .common import cluster_nodes, deps, order_nodes, release_rules, unit
from .errors import classified
from .restart import CALLMANAGER, RUNNING


def cluster_now(ctx: StepContext) -> datetime:
    """The cluster's clock: the composition root's when it gives one (a time-scaled lab), else the
    engine's."""
    clock = deps(ctx).clock
    return clock() if clock is not None else ctx.now()


def outage_restarts(
    cucm: CucmPort, release: str, cert_type: str, nodes: Sequence[tuple[str, str]], *, ctl_update: bool
) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """The restarts of ``cert_type``'s outage, in order: ``(node, service)`` where the service runs
    now, and ``(node, service, status)`` for those left alone (not activated, not on the node)."""
    table = rules(release)
    services = list(table.restart_services(cert_type))
    if ctl_update and cert_type in table.ctl_update_after:
        services += [s for s in table.ctl_update_restarts if s not in services]
    roles = dict(nodes)
    planned: list[tuple[str, str]] = []
    left: list[tuple[str, str, str]] = []
    for node in order_nodes(roles.items()):
        for service in services:
            try:
                status = cucm.service_status(node, service)
            except CucmError:
                # Unknown here is restarted there: the estimate errs long.
                planned.append((node, service))
                continue
            if status.status == RUNNING:
                planned.append((node, service))
            else:
                left.append((node, service, status.reason or status.status))
    return planned, left


def phones_by_node(cucm: CucmPort) -> dict[str, int]:
    """Registered phones per CallManager node (one RisPort70 sweep)."""
    counts: dict[str, int] = {}
    for state in cucm.registered_phones().values():
        if state.status == "Registered":
            counts[state.node] = counts.get(state.node, 0) + 1
    return counts


def plan_outage(
    cucm: CucmPort,
    release: str,
    cert_type: str,
    nodes: Sequence[tuple[str, str]],
    measured: Mapping[str, float],
    *,
    resets_phones: bool,
) -> tuple[Estimate, list[tuple[str, str, str]], dict[str, int]]:
    """The estimate of ``cert_type``'s outage as the cluster is now, what is not restarted, and
    the phones per CallManager node (read only when the outage touches phones)."""
    table = rules(release)
    mixed = cert_type in table.ctl_update_after and cucm.security_mode() == 1
    restarts, left = outage_restarts(cucm, release, cert_type, nodes, ctl_update=mixed)
    touches_phones = resets_phones or any(s == CALLMANAGER for _, s in restarts)
    phones = phones_by_node(cucm) if touches_phones else {}
    return estimate(restarts, measured, phones_by_node=phones, resets_phones=resets_phones), left, phones


def _estimate(ctx: StepContext) -> dict[str, Any]:
    d = deps(ctx)
    measured = dict(d.restart_history()) if d.restart_history is not None else {}
    found, left, _phones = plan_outage(
        d.cucm,
        str(release_rules(ctx).release),
        unit(ctx),
        list(cluster_nodes(ctx).items()),
        measured,
        resets_phones=bool(ctx.params.get("phone_reset")),
    )
    return {**found.as_dict(), "not_restarted": [list(x) for x in left]}


def _slot(slot: Slot) -> dict[str, str]:
    return {"start": iso(slot.start), "end": iso(slot.end)}


def _summary(w: Mapping[str, Any]) -> str:
    e = w.get("estimate") or {}
    restarts = len(e.get("restarts") or [])
    phones = e.get("phones") or 0
    return f"estimated outage {human(float(e.get('seconds', 0)))} ({restarts} restart(s), {phones} phone(s))"


def _earliest_expiry(ctx: StepContext) -> datetime | None:
    found = view(ctx.context).get("expiry") or {}
    dates = [instant(str(c["not_after"])) for c in found.values() if c.get("not_after")]
    return min(dates) if dates else None


def await_window(ctx: StepContext) -> Outcome:
    d = deps(ctx)
    now = cluster_now(ctx)
    w: dict[str, Any] = dict(view(ctx.context).get("window") or {})
    if w.get("state") != ctx.state or "estimate" not in w:
        w = {"state": ctx.state, "estimate": _estimate(ctx), "estimated_at": iso(now)}
        # Checkpoint the estimate: a hold or a lease may refuse the advance, and a refused advance
        # keeps no output.
        return Outcome.wait(0, _summary(w), output={"window": w})
    seconds = float(w["estimate"]["seconds"])
    windows: Windows | None = d.windows
    if d.approval and not w.get("approval_requested"):
        w["approval_requested"] = iso(now)
        where = ""
        if windows is not None and windows.configured:
            fit = windows.next_fitting(now, seconds)
            where = f"; next window that fits: {windows.local(fit.start) if fit else 'none within a year'}"
        return Outcome.gate(
            f"approval needed before the outage of {ctx.definition} on {ctx.scope}: {_summary(w)}{where}; "
            f"`cucm-renew approve {ctx.run_id}` lets it start (in a change window)",
            on_approve=None,
            output={"window": w},
            evidence={"approval_requested": True, "estimate": w["estimate"]},
        )
    if w.get("approval_requested") and not w.get("approved_at"):
        # Only `approve` re-runs the step of a run held at its gate.
        w["approved_at"] = iso(now)
    if windows is None or not windows.configured:
        w.update(entered_at=iso(now), slot=None)
        return Outcome.advance(
            output={"window": w},
            evidence={"estimate_s": round(seconds), "window": None},
            reason=f"no change window configured for {ctx.scope}: the outage may start now ({_summary(w)})",
        )
    fit = windows.next_fitting(now, seconds)
    if fit is None:
        longest = human(windows.longest(now))
        return Outcome.gate(
            f"no change window of {ctx.scope} within a year is long enough for the {_summary(w)} (the "
            f"longest is {longest}): add or lengthen a window in [clusters.{ctx.scope}] windows, "
            f"then `cucm-renew approve {ctx.run_id}`",
            on_approve=None,
            output={"window": w},
        )
    target = w.get("target")
    in_target = target is not None and fit.start <= now and fit.end == instant(target["end"])
    if target and now >= instant(target["start"]) and not in_target:
        # The window waited for opened and the outage did not start in it (held, waiting for
        # approval or for another type's outage, or too little of it left).
        missed = f"{windows.local(instant(target['start']))} to {windows.local(instant(target['end']))}"
        w["missed"] = [*w.get("missed", []), target]
        w["target"] = _slot(fit)
        return Outcome.advance(
            "window_missed",
            output={"window": w},
            evidence={"notify": "window_missed", "window": target, "next": _slot(fit)},
            reason=f"{ctx.definition} on {ctx.scope} missed the change window {missed}; next that fits: "
            f"{windows.local(fit.start)}",
        )
    if fit.start <= now:
        current = windows.current(now)
        slot = Slot(current.start, fit.end) if current else fit
        w.update(entered_at=iso(now), slot=_slot(slot), target=_slot(slot))
        left = (fit.end - now).total_seconds()
        return Outcome.advance(
            output={"window": w},
            evidence={"estimate_s": round(seconds), "window": _slot(slot), "window_left_s": round(left)},
            reason=f"inside the change window until {windows.local(fit.end)}: {human(left)} left for the "
            f"{_summary(w)}",
        )
    expires = _earliest_expiry(ctx)
    if expires is not None and expires < fit.start and w.get("expiry_warned") != iso(fit.start):
        w["expiry_warned"] = iso(fit.start)
        w["target"] = _slot(fit)
        return Outcome.advance(
            "expires_before_window",
            output={"window": w},
            evidence={"notify": "expires_before_window", "expires": iso(expires), "window": _slot(fit)},
            reason=f"a {ctx.definition} certificate on {ctx.scope} expires {windows.local(expires)}, before "
            f"the next change window that fits ({windows.local(fit.start)}): add a window or renew by hand",
        )
    w["target"] = _slot(fit)
    wait = (fit.start - now).total_seconds()
    return Outcome.wait(
        wait,
        f"outside the change window: waiting for {windows.local(fit.start)} (in {human(wait)}), the next "
        f"window with room for the {_summary(w)}",
        output={"window": w},
    )


def _took(began: str, ended: str) -> float:
    return (instant(ended) - instant(began)).total_seconds()


def report_outage(ctx: StepContext) -> Outcome:
    d = deps(ctx)
    now = cluster_now(ctx)
    w: dict[str, Any] = dict(view(ctx.context).get("window") or {})
    restarts = [
        {
            "node": r.get("node"),
            "service": r.get("service"),
            "seconds": round(
                (instant(str(r["running_at"])) - instant(str(r["requested_at"]))).total_seconds(), 1
            ),
        }
        for r in view(ctx.context).get("restarts") or []
        if r.get("requested_at") and r.get("running_at")
    ]
    entered = w.get("entered_at")
    took = (now - instant(str(entered))).total_seconds() if entered else None
    outage: dict[str, Any] = {
        "entered_at": entered,
        "ended_at": iso(now),
        "took_s": round(took) if took is not None else None,
        "estimate_s": (w.get("estimate") or {}).get("seconds"),
        "window": w.get("slot"),
        "restarts": restarts,
    }
    w["reported_at"] = iso(now)
    slot = w.get("slot")
    evidence: dict[str, Any] = {"outage": outage}
    reason = f"outage over after {human(took)}" if took is not None else "outage over"
    if slot and now > instant(slot["end"]):
        over = (now - instant(slot["end"])).total_seconds()
        outage["overrun_s"] = round(over)
        windows = d.windows
        end = windows.local(instant(slot["end"])) if windows is not None else slot["end"]
        evidence["notify"] = "window_missed"
        evidence["message"] = (
            f"{ctx.definition} on {ctx.scope} overran its change window (ended {end}) by {human(over)}: "
            "the outage was finished, never left half done"
        )
        reason = evidence["message"]
    return Outcome.advance(output={"window": w}, evidence=evidence, reason=reason)


def register(registry: Registry) -> None:
    registry.step("await_window")(classified(await_window))
    registry.step("report_outage")(classified(report_outage))
