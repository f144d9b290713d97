"""What status and the live view say of a run's outage: its estimate, its window, time left in it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from app.cli import window_left, window_note
from engine.store import RunRow
from engine.views import iso, view

ESTIMATE = {"seconds": 2520, "restarts": [{"node": "pub"}, {"node": "sub"}], "phones": 120}


def run_with(window: dict[str, Any]) -> Any:
    now = datetime.now(UTC).timestamp()
    row = RunRow("r1", "CallManager", "east", "restarted", "active", {"window": window}, {}, now, now)
    return view(row, {})


def test_time_left_only_for_a_run_in_its_outage() -> None:
    end = datetime.now(UTC) + timedelta(minutes=30)
    slot = {"start": iso(datetime.now(UTC)), "end": iso(end)}
    left = window_left(None)  # type: ignore[arg-type]
    inside = left(run_with({"estimate": ESTIMATE, "entered_at": iso(datetime.now(UTC)), "slot": slot}))
    assert inside is not None and 1700 < inside <= 1800
    assert left(run_with({"estimate": ESTIMATE, "target": slot})) is None
    assert left(run_with({"estimate": ESTIMATE, "entered_at": "x", "slot": slot, "reported_at": "y"})) is None
    assert left(run_with({})) is None


def test_status_names_the_estimate_the_window_and_approval() -> None:
    waiting = window_note(
        run_with(
            {
                "estimate": ESTIMATE,
                "target": {"start": "2026-12-05T00:00:00Z", "end": "2026-12-05T04:00:00Z"},
                "approval_requested": "2026-12-04T10:00:00Z",
            }
        )
    )
    assert "estimated outage 42m (2 restart(s), 120 phone(s))" in waiting
    assert "next window 2026-12-05T00:00:00Z to 2026-12-05T04:00:00Z" in waiting
    assert "waiting for approval" in waiting
    assert window_note(run_with({})) == ""
