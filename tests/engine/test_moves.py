"""The run-state moves on their own: what each leaves on the run and what it records, against a
real SQLite store, a fixed clock and the toy definitions."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.definition import Definition
from engine.moves import Moves
from engine.runtime import Fired, Refused, Runtime
from engine.store import EventRow, RunRow, Store, Tx
from tests.engine.toy import registry

NOW = 1_800_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "state")
    yield store
    store.close()


@pytest.fixture
def moves(toy_defs: dict[str, Definition]) -> Moves:
    return Moves(
        toy_defs, Runtime(toy_defs, registry), clock=lambda: NOW, time_scale=10.0, rng=random.Random(1)
    )


def put(store: Store, state: str, run_id: str = "r1", scope: str = "c1", **fields: object) -> RunRow:
    run = RunRow(
        id=run_id,
        definition="toy",
        scope=scope,
        state=state,
        status="active",
        context={},
        visits={state: 1},
        created_at=NOW - 100,
        updated_at=NOW - 100,
        next_wake_at=NOW - 100,
    )
    for name, value in fields.items():
        setattr(run, name, value)
    with store.tx() as tx:
        tx.insert_run(run)
    return run


def move(store: Store, run: RunRow, change: Callable[[Tx, RunRow], object]) -> list[EventRow]:
    with store.tx() as tx:
        change(tx, run)
        tx.update_run(run)
        return list(tx.events)


def summary(events: list[EventRow]) -> list[tuple[str | None, str | None, str]]:
    return [(e.from_state, e.to_state, e.trigger) for e in events]


def test_enter_starts_a_fresh_visit(store: Store, moves: Moves) -> None:
    run = put(
        store,
        "act",
        attempt=3,
        last_error="boom",
        waiting_reason="retry 3/3 after: boom",
        waiting_kind="retry",
        wait_started_at=NOW - 50,
        submitted={"ticket": {"id": "CHG1"}},
        visits={"act": 1, "waiting": 1},
    )
    events = move(store, run, lambda tx, r: moves.enter(tx, r, "waiting", trigger="next", actor="daemon"))
    assert summary(events) == [("act", "waiting", "next")]
    assert (run.state, run.status, run.next_wake_at) == ("waiting", "active", NOW)
    assert (run.attempt, run.last_error, run.waiting_reason, run.waiting_kind) == (1, "", "", "")
    assert (run.wait_started_at, run.submitted, run.held_from) == (None, {}, None)
    assert run.visits == {"act": 1, "waiting": 2}
    assert store.get_run("r1") == run


def test_entering_a_gate_holds_the_run_paused_to_fire_next(store: Store, moves: Moves) -> None:
    run = put(store, "locked")
    events = move(store, run, lambda tx, r: moves.enter(tx, r, "approval", trigger="next", actor="daemon"))
    assert summary(events) == [("locked", "approval", "next"), ("approval", "paused", "gate")]
    assert (run.state, run.held_from, run.status, run.on_approve) == ("paused", "approval", "paused", "next")
    assert run.waiting_reason == "Confirm the toy by hand, then approve." and run.next_wake_at is None


def test_entering_and_leaving_a_section_takes_and_releases_its_lease(store: Store, moves: Moves) -> None:
    run = put(store, "waiting")
    move(store, run, lambda tx, r: moves.enter(tx, r, "locked", trigger="next", actor="daemon"))
    assert store.lease_holders() == {("slot", "c1"): "r1"}
    move(store, run, lambda tx, r: moves.enter(tx, r, "done", trigger="next", actor="daemon"))
    assert (run.status, run.next_wake_at) == ("final", None)
    assert store.lease_holders() == {}


def test_hold_failed_keeps_the_error_and_paused_does_not_touch_it(store: Store, moves: Moves) -> None:
    run = put(store, "act", last_error="earlier")
    move(store, run, lambda tx, r: moves.hold(tx, r, "paused", "look first", trigger="gate", actor="op"))
    assert (run.state, run.held_from, run.status, run.last_error) == ("paused", "act", "paused", "earlier")
    assert (run.waiting_reason, run.waiting_kind, run.on_approve) == ("look first", "paused", None)
    other = put(store, "act", run_id="r2")
    move(store, other, lambda tx, r: moves.hold(tx, r, "failed", "broken", trigger="fail", actor="daemon"))
    assert (other.state, other.held_from, other.last_error, other.waiting_reason) == (
        "failed",
        "act",
        "broken",
        "broken",
    )


def test_reopen_returns_to_the_held_state_with_fresh_attempts(store: Store, moves: Moves) -> None:
    run = put(store, "act", attempt=3)
    move(store, run, lambda tx, r: moves.hold(tx, r, "failed", "broken", trigger="fail", actor="daemon"))
    events = move(store, run, lambda tx, r: moves.reopen(tx, r, trigger="retry", actor="op", reason="again"))
    assert summary(events) == [("failed", "act", "retry")]
    assert (run.state, run.held_from, run.status, run.attempt, run.next_wake_at) == (
        "act",
        None,
        "active",
        1,
        NOW,
    )
    assert (run.waiting_reason, run.waiting_kind, run.wait_started_at) == ("", "", None)
    assert run.last_error == "broken"  # kept for status until the state is left
    assert run.visits == {"act": 1}  # the same visit: its journaled effects still count


def test_approve_fires_the_held_trigger_or_says_why_not(store: Store, moves: Moves) -> None:
    run = put(store, "act", context={"allow": False})
    move(
        store,
        run,
        lambda tx, r: moves.hold(tx, r, "paused", "ok?", trigger="gate", actor="d", on_approve="next"),
    )
    with store.tx() as tx:
        refused = moves.approve(tx, run, actor="op")
    assert refused == Refused("waiting for the block file to be removed", "guard")
    run = store.get_run("r1") or run
    run.context = {"allow": True}
    events = move(store, run, lambda tx, r: moves.approve(tx, r, actor="op"))
    assert summary(events) == [("act", "waiting", "approve")]
    assert (run.state, run.status) == ("waiting", "active")


def test_wait_records_a_reason_once_and_never_sleeps_past_the_timeout(store: Store, moves: Moves) -> None:
    run = put(store, "waiting")
    first = move(store, run, lambda tx, r: moves.wait(tx, r, 7200, "ticket?", "wait", actor="daemon"))
    assert summary(first) == [("waiting", "waiting", "wait")]
    assert run.wait_started_at == NOW
    assert run.next_wake_at == NOW + 3600 / 10  # capped by the 1 h timeout (time scale 10)
    again = move(store, run, lambda tx, r: moves.wait(tx, r, 20, "ticket?", "wait", actor="daemon"))
    assert again == [] and run.next_wake_at == NOW + 2
    assert (run.waiting_reason, run.waiting_kind) == ("ticket?", "wait")


def test_fail_retries_until_the_attempts_run_out(store: Store, moves: Moves) -> None:
    run = put(store, "act")
    for attempt in (2, 3):
        events = move(store, run, lambda tx, r: moves.fail(tx, r, "flaky", retryable=True, actor="daemon"))
        assert summary(events) == [("act", "act", "retry")] and events[0].evidence == {"attempt": attempt}
        assert run.attempt == attempt and run.waiting_kind == "retry" and run.status == "active"
        assert run.next_wake_at is not None and NOW < run.next_wake_at <= NOW + 2 / 10 * 1.2
    events = move(store, run, lambda tx, r: moves.fail(tx, r, "flaky", retryable=True, actor="daemon"))
    assert summary(events) == [("act", "failed", "fail")]
    assert (run.status, run.held_from, run.last_error) == ("failed", "act", "flaky")


def test_a_permanent_failure_is_held_at_once(store: Store, moves: Moves) -> None:
    run = put(store, "act")
    move(store, run, lambda tx, r: moves.fail(tx, r, "no such node", retryable=False, actor="daemon"))
    assert (run.status, run.attempt, run.last_error) == ("failed", 1, "no such node")


def test_timeout_holds_with_the_reason_it_waited_on(store: Store, moves: Moves) -> None:
    run = put(store, "waiting", waiting_reason="ticket?", wait_started_at=NOW - 400)
    events = move(store, run, lambda tx, r: moves.timeout(tx, r, actor="daemon"))
    assert summary(events) == [("waiting", "paused", "timeout")]
    assert run.waiting_reason == "timed out after 1h in waiting (ticket?)" and run.on_approve is None


def test_abort_is_final_and_releases_leases(store: Store, moves: Moves) -> None:
    run = put(store, "waiting")
    move(store, run, lambda tx, r: moves.enter(tx, r, "locked", trigger="next", actor="daemon"))
    move(store, run, lambda tx, r: moves.hold(tx, r, "failed", "broken", trigger="fail", actor="daemon"))
    events = move(store, run, lambda tx, r: moves.abort(tx, r, "not needed", actor="op"))
    assert summary(events) == [("failed", "aborted", "abort")]
    assert (run.state, run.status, run.held_from, run.next_wake_at) == ("aborted", "final", None, None)
    assert run.visits["aborted"] == 1 and store.lease_holders() == {}


def test_submit_keeps_the_data_on_the_run_and_its_digest_in_the_audit(store: Store, moves: Moves) -> None:
    run = put(store, "waiting", next_wake_at=NOW + 60)
    events = move(store, run, lambda tx, r: moves.submit(tx, r, "ticket", {"id": "CHG1"}, actor="op"))
    assert summary(events) == [("waiting", "waiting", "submit")]
    assert events[0].evidence["key"] == "ticket" and len(str(events[0].evidence["sha256"])) == 64
    assert run.submitted == {"ticket": {"id": "CHG1"}} and run.next_wake_at == NOW  # due at once


def test_rebase_moves_wake_and_wait_start_back(moves: Moves) -> None:
    run = RunRow(
        "r", "toy", "c", "waiting", "active", {}, {}, NOW, NOW, next_wake_at=NOW + 5, wait_started_at=NOW
    )
    moves.rebase(run, 100.0)
    assert (run.next_wake_at, run.wait_started_at) == (NOW - 95, NOW - 100)


def test_fire_reports_the_destination(store: Store, moves: Moves) -> None:
    run = put(store, "check")
    with store.tx() as tx:
        assert moves.runtime.fire(tx, run, "skip", {}, NOW) == Fired("skipped")
