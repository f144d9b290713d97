"""A run waiting on an exclusion lease is worked as soon as the holder releases it, not at its
next poll: the release makes the waiters due in its own transaction.

The engines here run on a clock that does not move, so a poll never comes due: only the release
can get the waiter going.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.facade import Engine

NOW = 1_800_000_000.0


def wait_for(predicate: Callable[[], bool], limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "the waiter was not worked after the lease was released"
        time.sleep(0.02)


@pytest.mark.parametrize("release", ["approve", "abort"])
def test_a_released_lease_wakes_its_waiter_at_once(
    make_engine: Callable[..., Engine], journal: Path, release: str
) -> None:
    engine = make_engine(clock=lambda: NOW, time_scale=1.0)
    context = {"journal": str(journal), "want_polls": 1}
    first = engine.start_run("toy", "c1", context, run_id="first")
    engine.run_until_quiet()
    assert engine.status(first)[0].state == "paused"
    assert engine.store.lease_holders() == {("slot", "c1"): first}
    second = engine.start_run("toy", "c1", context, run_id="second")
    engine.run_until_quiet()
    waiting = engine.store.get_run(second)
    assert waiting is not None and waiting.state == "waiting" and waiting.waiting_kind == "lease"
    # Its next poll is two seconds off on a clock that never gets there.
    assert waiting.next_wake_at == NOW + 2.0
    # The engine runs meanwhile, with the waiter on its heap at that poll: the release must reach
    # the running scheduler, not only the stored row.
    stop = threading.Event()
    daemon = threading.Thread(target=engine.serve, args=(stop,))
    started = time.monotonic()
    daemon.start()
    try:
        wait_for(lambda: engine.scheduler.heartbeat > started)
        if release == "approve":
            engine.approve(first, reason="checked")
        else:
            engine.abort(first, reason="not today")
        wait_for(lambda: engine.status(second)[0].state == "paused")
    finally:
        stop.set()
        daemon.join(10)
    assert not daemon.is_alive()
    view = engine.status(second)[0]
    assert view.held_from == "approval"
    assert engine.store.lease_holders() == {("slot", "c1"): second}


def test_a_release_wakes_only_the_waiters_of_its_scope(
    make_engine: Callable[..., Engine], journal: Path
) -> None:
    engine = make_engine(clock=lambda: NOW, time_scale=1.0)
    context = {"journal": str(journal), "want_polls": 1}
    for run_id, scope in (("a1", "c1"), ("b1", "c2")):
        engine.start_run("toy", scope, context, run_id=run_id)
    engine.run_until_quiet()
    for run_id, scope in (("a2", "c1"), ("b2", "c2")):
        engine.start_run("toy", scope, context, run_id=run_id)
    engine.run_until_quiet()
    engine.abort("a1", reason="not today")
    other = engine.store.get_run("b2")
    assert other is not None and other.waiting_kind == "lease" and other.next_wake_at == NOW + 2.0
    woken = engine.store.get_run("a2")
    assert woken is not None and woken.next_wake_at == NOW


def test_the_release_is_durable_with_the_move_that_makes_it(
    make_engine: Callable[..., Engine], journal: Path
) -> None:
    engine = make_engine(clock=lambda: NOW, time_scale=1.0)
    context = {"journal": str(journal), "want_polls": 1}
    engine.start_run("toy", "c1", context, run_id="first")
    engine.run_until_quiet()
    engine.start_run("toy", "c1", context, run_id="second")
    engine.run_until_quiet()
    before = engine.store.get_run("second")
    assert before is not None and before.next_wake_at == NOW + 2.0
    engine.abort("first", reason="not today")
    # Written with the abort: another process's scheduler sees the waiter's new revision, and a
    # tick of the waiter that read the row before cannot commit over it.
    after = engine.store.get_run("second")
    assert after is not None and after.next_wake_at == NOW and after.rev > before.rev
