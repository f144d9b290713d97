"""The runner and the operator commands, in process, on a real SQLite state folder."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.errors import CommandError
from engine.facade import Engine

EXPECTED_FLOW = [
    (None, "check"),
    ("check", "act"),
    ("act", "waiting"),
    ("waiting", "locked"),
    ("locked", "finish"),
    ("finish", "done"),
]
MOVES = {"start", "next", "approve", "advance", "abort", "timeout", "skip"}


def moves(engine: Engine, run_id: str) -> list[tuple[str | None, str | None]]:
    return [(e.from_state, e.to_state) for e in engine.events(run=run_id) if e.trigger in MOVES]


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


class Serving:
    """An engine served on a thread, stopped by handle."""

    def __init__(self, engine: Engine) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, args=(engine,), daemon=True)
        self.thread.start()

    def _serve(self, engine: Engine) -> None:
        try:
            engine.serve(self.stop)
        except BaseException as exc:
            self.error = exc

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()
        assert self.error is None, self.error


def test_happy_path(make_engine: Callable[..., Engine], journal: Path) -> None:
    engine = make_engine()
    seen: list[int] = []
    run = engine.start_run("flow", "c1", {"journal": str(journal)})
    engine.run_until_quiet(on_event=lambda e: seen.append(e.seq))
    (view,) = engine.status(run)
    assert (view.state, view.status, view.held_from) == ("done", "final", None)
    assert moves(engine, run) == EXPECTED_FLOW
    assert view.progress == {"a": "acted", "b": "acted", "c": "acted"}
    assert view.context["polls"] == 2
    assert journal.read_text().splitlines() == [
        f"{run}|act|1|a|act",
        f"{run}|act|1|b|act",
        f"{run}|act|1|c|act",
        f"{run}|locked|1|cluster|locked_work",
        f"{run}|finish|1|cluster|finish",
    ]
    events = engine.events()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert seen == [e.seq for e in events if e.seq > 1]
    assert engine.verify_audit().ok
    assert {e.actor for e in events} == {"tester@host", "daemon"}


def test_not_due_ends_in_skipped(make_engine: Callable[..., Engine], journal: Path) -> None:
    engine = make_engine()
    run = engine.start_run("flow", "c1", {"journal": str(journal), "not_due": True})
    engine.run_until_quiet()
    assert engine.status(run)[0].state == "skipped"
    assert not journal.exists()


def test_guard_refusal_waits_with_its_reason(
    make_engine: Callable[..., Engine], tmp_path: Path, journal: Path
) -> None:
    block = tmp_path / "block"
    block.touch()
    engine = make_engine()
    run = engine.start_run("flow", "c1", {"journal": str(journal), "block_file": str(block)})
    serving = Serving(engine)
    try:
        wait_for(lambda: engine.status(run)[0].waiting_reason == "waiting for the block file to be removed")
        view = engine.status(run)[0]
        assert view.state == "act" and view.status == "active" and view.next_wake_at is not None
        block.unlink()
        wait_for(lambda: engine.status(run)[0].state == "done")
    finally:
        serving.close()
    assert moves(engine, run) == EXPECTED_FLOW
    # The action ran once per node although the step ran again after every refusal.
    assert journal.read_text().count("|act|") == 3
    waits = [e for e in engine.events(run=run) if e.trigger == "wait"]
    assert waits[0].reason == "waiting for the block file to be removed"


def test_exclusion_lease_makes_the_second_run_wait(make_engine: Callable[..., Engine], journal: Path) -> None:
    engine = make_engine()
    first = engine.start_run("toy", "c1", {"journal": str(journal)}, run_id="first")
    engine.run_until_quiet()
    assert engine.status(first)[0].state == "paused"
    second = engine.start_run("toy", "c1", {"journal": str(journal)}, run_id="second")
    other = engine.start_run("toy", "c2", {"journal": str(journal)}, run_id="other-scope")
    engine.run_until_quiet()
    s = engine.status(second)[0]
    assert s.state == "waiting" and s.status == "active"
    assert s.waiting_reason == "waiting for lease slot (held by run first, toy in approval, paused)"
    assert engine.status(other)[0].state == "paused"  # another scope is not blocked
    engine.approve(first, reason="checked")
    engine.run_until_quiet()
    assert engine.status(first)[0].state == "done"
    assert engine.status(second)[0].state == "paused"
    assert engine.status(second)[0].held_from == "approval"


def test_retry_exhaustion_then_operator_retry(
    make_engine: Callable[..., Engine], tmp_path: Path, journal: Path
) -> None:
    outage = tmp_path / "outage"
    outage.touch()
    engine = make_engine()
    run = engine.start_run("flow", "c1", {"journal": str(journal), "fail_file": str(outage)})
    engine.run_until_quiet()
    view = engine.status(run)[0]
    assert (view.state, view.held_from, view.status) == ("failed", "act", "failed")
    assert view.last_error == f"outage while {outage} exists"
    triggers = [e.trigger for e in engine.events(run=run)]
    assert triggers.count("retry") == 2 and triggers[-1] == "fail"
    with pytest.raises(CommandError, match="has not failed"):
        engine.retry(engine.start_run("flow", "c9", {"journal": str(journal), "not_due": True}))
    outage.unlink()
    engine.retry(run, actor="alice@ops")
    engine.run_until_quiet()
    assert engine.status(run)[0].state == "done"
    retry_event = [e for e in engine.events(run=run) if e.actor == "alice@ops"]
    assert [(e.from_state, e.to_state, e.trigger) for e in retry_event] == [("failed", "act", "retry")]


def test_permanent_error_fails_at_once(make_engine: Callable[..., Engine], journal: Path) -> None:
    engine = make_engine()
    run = engine.start_run("flow", "c1", {"journal": str(journal), "permanent": True})
    engine.run_until_quiet()
    view = engine.status(run)[0]
    assert view.state == "failed" and "refuses for good" in view.last_error
    assert "retry" not in [e.trigger for e in engine.events(run=run)]


def test_gate_approve_and_refusals(make_engine: Callable[..., Engine], journal: Path) -> None:
    engine = make_engine()
    run = engine.start_run("toy", "c1", {"journal": str(journal)})
    with pytest.raises(CommandError, match="is not paused"):
        engine.approve(run)
    engine.run_until_quiet()
    view = engine.status(run)[0]
    assert (view.state, view.held_from) == ("paused", "approval")
    assert view.waiting_reason == "Confirm the toy by hand, then approve."
    before = len(engine.events())
    with pytest.raises(CommandError, match="unknown run 'nope'"):
        engine.approve("nope")
    with pytest.raises(
        CommandError, match=r"cannot advance run .* to 'done': from 'approval' the definition allows finish"
    ):
        engine.advance(run, "done", "skip it")
    with pytest.raises(CommandError, match="needs --reason"):
        engine.advance(run, "finish", " ")
    with pytest.raises(CommandError, match="accepts no submission"):
        engine.submit(run, "ticket", {"id": "x"})
    assert len(engine.events()) == before
    assert engine.status(run)[0].updated_at == view.updated_at
    engine.approve(run, actor="bob@ops", reason="looked")
    engine.run_until_quiet()
    assert engine.status(run)[0].state == "done"
    with pytest.raises(CommandError, match="already finished"):
        engine.abort(run, "too late")
    approve = [e for e in engine.events(run=run) if e.trigger == "approve"]
    assert [(e.from_state, e.to_state, e.actor, e.reason) for e in approve] == [
        ("approval", "finish", "bob@ops", "looked")
    ]


def test_gate_from_a_step_reruns_the_step_on_approve(
    make_engine: Callable[..., Engine], journal: Path
) -> None:
    engine = make_engine()
    run = engine.start_run("flow", "c1", {"journal": str(journal), "gate_in_step": True})
    engine.run_until_quiet()
    view = engine.status(run)[0]
    assert (view.state, view.held_from, view.waiting_reason) == (
        "paused",
        "locked",
        "look at the toy, then approve",
    )
    engine.approve(run)
    engine.run_until_quiet()
    assert engine.status(run)[0].state == "done"
    assert journal.read_text().count("locked_work") == 1


def test_advance_and_abort(make_engine: Callable[..., Engine], journal: Path) -> None:
    engine = make_engine()
    run = engine.start_run("toy", "c1", {"journal": str(journal), "need_ticket": True})
    serving = Serving(engine)
    try:
        wait_for(lambda: engine.status(run)[0].state == "waiting")
        with pytest.raises(CommandError, match="from 'waiting' the definition allows locked"):
            engine.advance(run, "finish", "jump")
        engine.advance(run, "locked", "ticket checked by phone", actor="carol@ops")
        wait_for(lambda: engine.status(run)[0].state == "paused")
        engine.abort(run, "change window closed", actor="carol@ops")
        assert engine.status(run)[0].state == "aborted"
    finally:
        serving.close()
    assert engine.store.lease_holders() == {}
    last = engine.events(run=run)[-1]
    assert (last.from_state, last.to_state, last.trigger, last.reason) == (
        "paused",
        "aborted",
        "abort",
        "change window closed",
    )


def test_submit_validates_and_wakes_the_run(make_engine: Callable[..., Engine], journal: Path) -> None:
    engine = make_engine()
    run = engine.start_run("flow", "c1", {"journal": str(journal), "need_ticket": True})
    serving = Serving(engine)
    try:
        wait_for(lambda: engine.status(run)[0].waiting_reason == "waiting for a ticket (submit --key ticket)")
        with pytest.raises(CommandError, match="a ticket needs an 'id' string"):
            engine.submit(run, "ticket", {"number": 5})
        with pytest.raises(CommandError, match="unknown key 'cert'"):
            engine.submit(run, "cert", {"id": "x"})
        engine.submit(run, "ticket", {"id": " CHG42 "})
        wait_for(lambda: engine.status(run)[0].state == "done")
    finally:
        serving.close()
    assert engine.status(run)[0].context["ticket"] == {"id": "CHG42"}
    submit = [e for e in engine.events(run=run) if e.trigger == "submit"]
    assert len(submit) == 1 and submit[0].evidence["key"] == "ticket"


def test_wait_timeout_pauses_and_approve_resumes(make_engine: Callable[..., Engine], journal: Path) -> None:
    engine = make_engine(time_scale=20000.0)  # the 1 h timeout becomes 0.18 s
    run = engine.start_run("flow", "c1", {"journal": str(journal), "need_ticket": True})
    engine.run_until_quiet()
    view = engine.status(run)[0]
    assert (view.state, view.held_from) == ("paused", "waiting")
    assert view.waiting_reason.startswith("timed out after 1h in waiting (waiting for a ticket")
    engine.submit(run, "ticket", {"id": "T1"})
    engine.approve(run)
    engine.run_until_quiet()
    assert engine.status(run)[0].state == "done"


def test_status_json_round_trips(make_engine: Callable[..., Engine], journal: Path) -> None:
    engine = make_engine()
    run = engine.start_run("toy", "c1", {"journal": str(journal)})
    data = json.loads(json.dumps([v.as_dict() for v in engine.status()]))
    assert data[0]["id"] == run and data[0]["state"] == "check" and data[0]["status"] == "active"


def test_state_folder_permissions(make_engine: Callable[..., Engine], tmp_path: Path) -> None:
    engine = make_engine()
    assert (engine.state_dir.stat().st_mode & 0o777) == 0o700
    assert (engine.store.path.stat().st_mode & 0o777) == 0o600


def test_advance_into_a_held_section_is_refused(make_engine: Callable[..., Engine], journal: Path) -> None:
    engine = make_engine()
    first = engine.start_run("toy", "c1", {"journal": str(journal)}, run_id="first")
    engine.run_until_quiet()
    second = engine.start_run("toy", "c1", {"journal": str(journal)}, run_id="second")
    engine.run_until_quiet()
    assert engine.status(second)[0].state == "waiting"
    events = len(engine.events())
    with pytest.raises(
        CommandError,
        match=r"cannot advance run second to 'locked': waiting for lease slot \(held by run first",
    ):
        engine.advance(second, "locked", "hurry")
    assert len(engine.events()) == events
    assert engine.store.lease_holders() == {("slot", "c1"): first}


def test_a_run_whose_definition_is_gone_fails_with_the_fix(
    make_engine: Callable[..., Engine], journal: Path, toy_defs: dict[str, object]
) -> None:
    engine = make_engine()
    run = engine.start_run("flow", "c1", {"journal": str(journal)})
    engine.close()
    from engine.facade import Engine as _Engine
    from tests.engine.toy import registry

    only_toy = {"toy": toy_defs["toy"]}
    with _Engine(engine.state_dir, only_toy, registry, time_scale=100.0) as other:  # type: ignore[arg-type]
        other.run_until_quiet()
        view = other.status(run)[0]
    assert view.state == "failed"
    assert view.last_error == "definition 'flow' is not loaded: restore its file, then retry"


def test_a_run_another_process_writes_while_the_daemon_loads_is_not_missed(
    make_engine: Callable[..., Engine], journal: Path
) -> None:
    daemon = make_engine()
    cli = make_engine()  # its own connection, as the CLI in another process has
    daemon.scheduler.load()  # the daemon has read the wake list...
    run_id = cli.start_run("flow", "c1", {"journal": str(journal)})  # ...when this commits
    stop = threading.Event()
    timer = threading.Timer(30, stop.set)
    timer.start()
    try:
        daemon.scheduler.loop(stop, until_quiet=True)
    finally:
        timer.cancel()
    assert daemon.status(run_id)[0].state == "done"
