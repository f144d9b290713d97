"""Subscribers to the event feed: every committed event, in order, and never able to fail a run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine.facade import Engine
from engine.views import EventView


def test_subscribers_see_every_event_and_their_errors_never_reach_the_run(
    make_engine: Callable[..., Engine], journal: Path
) -> None:
    engine = make_engine()
    seen: list[EventView] = []

    def broken(event: EventView) -> None:
        raise RuntimeError("observer bug")

    engine.subscribe(broken)
    unsubscribe = engine.subscribe(seen.append)
    run_id = engine.start_run("flow", "c1", {"journal": str(journal)})
    engine.run_until_quiet()
    (run,) = engine.status(run_id)
    assert run.state == "done"
    assert [e.seq for e in seen] == [e.seq for e in engine.events(run=run_id)]
    unsubscribe()
    engine.start_run("flow", "c2", {"journal": str(journal)})
    engine.run_until_quiet()
    assert all(e.run == run_id for e in seen)
