"""await_window and report_outage against the fake CUCM, on a clock the test moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from engine.api import Outcome
from engine.testing import StepContextDouble
from workflows.windows import parse_windows

from .conftest import Lab

PARIS = ZoneInfo("Europe/Paris")
WEEKEND = parse_windows(["Sat 01:00-05:00"], timezone="Europe/Paris")


def at(y: int, m: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=PARIS).astimezone(UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def window_ctx(
    lab: Lab, clock: Clock, context: dict[str, Any] | None = None, **deps: Any
) -> StepContextDouble:
    if context is None:
        # Certificates a month from expiring: later than any window these tests wait for.
        context = lab.context_at("CallManager", "leaf_uploaded")
        context["expiry"] = {
            n: {**c, "not_after": "2027-01-31T00:00:00Z"} for n, c in context["expiry"].items()
        }
    base = context
    deps.setdefault("windows", WEEKEND)
    return lab.ctx("CallManager", "window_before_upload", base, clock=clock, **deps)


def step(lab: Lab, ctx: StepContextDouble, name: str = "await_window") -> Outcome:
    return ctx.apply(lab.registry.steps[name](ctx))


def test_outside_the_window_it_estimates_waits_until_the_start_then_enters(lab: Lab) -> None:
    clock = Clock(at(2026, 12, 4, 10))
    ctx = window_ctx(lab, clock, restart_history=lambda: {"cucm-pub.example.com|Cisco Tftp": 240.0})
    first = step(lab, ctx)
    assert first.kind == "wait" and first.wake_in == 0 and "estimated outage" in first.reason
    estimate = ctx.context["window"]["estimate"]
    tftp = [r for r in estimate["restarts"] if r["service"] == "Cisco Tftp"]
    assert {(r["node"], r["seconds"], r["source"]) for r in tftp} >= {
        ("cucm-pub.example.com", 240, "measured")
    }
    assert any(r["source"] == "measured elsewhere" for r in tftp)
    waiting = step(lab, ctx)
    assert waiting.kind == "wait" and "Sat 2026-12-05 01:00 CET" in waiting.reason
    assert waiting.wake_in == (at(2026, 12, 5, 1) - clock.now).total_seconds()
    clock.now = at(2026, 12, 5, 1)
    entered = step(lab, ctx)
    assert entered.kind == "advance" and entered.trigger == "next"
    assert entered.evidence["window"]["end"] == "2026-12-05T04:00:00.000000Z"
    assert ctx.context["window"]["entered_at"] == "2026-12-05T00:00:00.000000Z"


def test_a_certificate_expiring_before_the_next_window_is_notified_once(lab: Lab) -> None:
    clock = Clock(at(2026, 12, 4, 10))
    context = lab.context_at("CallManager", "leaf_uploaded")
    first = next(iter(context["expiry"]))
    context["expiry"] = {
        **context["expiry"],
        first: {**context["expiry"][first], "not_after": "2026-12-04T20:00:00Z"},
    }
    ctx = window_ctx(lab, clock, context)
    step(lab, ctx)
    warned = step(lab, ctx)
    assert warned.kind == "advance" and warned.trigger == "expires_before_window"
    assert warned.evidence["notify"] == "expires_before_window"
    assert "before the next change window" in warned.reason
    again = step(lab, ctx)
    assert again.kind == "wait"


def test_a_window_that_passes_without_the_outage_is_reported_missed(lab: Lab) -> None:
    clock = Clock(at(2026, 12, 4, 10))
    ctx = window_ctx(lab, clock)
    step(lab, ctx)
    assert step(lab, ctx).kind == "wait"
    # Held (or waiting on another type's outage) through the whole window.
    clock.now = at(2026, 12, 5, 6)
    missed = step(lab, ctx)
    assert missed.kind == "advance" and missed.trigger == "window_missed"
    assert missed.evidence["notify"] == "window_missed"
    assert missed.evidence["next"]["start"] == "2026-12-12T00:00:00.000000Z"
    assert step(lab, ctx).kind == "wait"


def test_no_window_long_enough_stops_at_a_gate_and_approval_comes_first(lab: Lab) -> None:
    clock = Clock(at(2026, 12, 4, 10))
    tiny = parse_windows(["Sat 01:00-01:01"], timezone="Europe/Paris")
    ctx = window_ctx(lab, clock, windows=tiny, approval=True)
    step(lab, ctx)
    approval = step(lab, ctx)
    assert approval.kind == "gate" and "approval needed before the outage" in approval.reason
    assert "none within a year" in approval.reason
    gate = step(lab, ctx)  # approved: the step runs again
    assert ctx.context["window"]["approved_at"]
    assert gate.kind == "gate" and "long enough" in gate.reason


def test_the_outage_report_names_an_overrun(lab: Lab) -> None:
    clock = Clock(at(2026, 12, 5, 6))
    window = {
        "entered_at": "2026-12-05T00:10:00Z",
        "slot": {"start": "2026-12-05T00:00:00Z", "end": "2026-12-05T04:00:00Z"},
    }
    ctx = lab.ctx("CallManager", "outage_reported", {"window": window}, clock=clock, windows=WEEKEND)
    report = step(lab, ctx, "report_outage")
    assert report.kind == "advance" and report.evidence["notify"] == "window_missed"
    assert (
        report.evidence["outage"]["overrun_s"] == 3600
        and report.evidence["outage"]["took_s"] == 4 * 3600 + 50 * 60
    )
    clock.now = at(2026, 12, 5, 4, 30)
    ctx = lab.ctx("CallManager", "outage_reported", {"window": window}, clock=clock, windows=WEEKEND)
    assert "notify" not in step(lab, ctx, "report_outage").evidence


def test_without_windows_the_outage_may_start_at_once(lab: Lab) -> None:
    ctx = window_ctx(lab, Clock(at(2026, 12, 2, 14)), windows=None)
    step(lab, ctx)
    go = step(lab, ctx)
    assert go.kind == "advance" and "no change window configured" in go.reason
    assert timedelta(seconds=ctx.context["window"]["estimate"]["seconds"]) > timedelta(0)
