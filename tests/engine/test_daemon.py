"""The daemon as a real subprocess: lock, restart, timers, commands from another process, SIGTERM."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

from engine.facade import Engine
from engine.store import Store
from tests.engine.procs import daemon_locked, run_cli, start_daemon, wait_for


def _state(store: Store, run: str) -> str:
    row = store.get_run(run)
    assert row is not None
    return row.state


def _reason(store: Store, run: str) -> str:
    row = store.get_run(run)
    assert row is not None
    return row.waiting_reason


def test_second_daemon_refuses_and_sigterm_stops_cleanly(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = start_daemon(state)
    try:
        wait_for(lambda: daemon_locked(state, first.pid), what="first daemon lock")
        second = run_cli(state, "daemon")
        assert second.returncode == 1
        assert f"another daemon (pid {first.pid}) holds {state}" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        _out, err = first.communicate(timeout=30)
    assert first.returncode == 0, err
    third = start_daemon(state)  # the lock was released
    try:
        wait_for(lambda: daemon_locked(state, third.pid), what="third daemon lock")
    finally:
        third.send_signal(signal.SIGTERM)
        third.communicate(timeout=30)
    assert third.returncode == 0


def test_command_from_another_process_is_applied_by_the_running_daemon(
    make_engine: Callable[..., Engine], journal: Path
) -> None:
    engine = make_engine()
    run = engine.start_run("toy", "c1", {"journal": str(journal)})
    state = engine.state_dir
    daemon = start_daemon(state)
    try:
        wait_for(lambda: _state(engine.store, run) == "paused", what="run paused at the gate")
        status = run_cli(state, "status", run, "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)[0]["held_from"] == "approval"
        approved = run_cli(state, "approve", run, "--reason", "checked by hand")
        assert approved.returncode == 0, approved.stderr
        started = time.monotonic()
        # The CLI moved the run to `finish`; only the daemon runs finish's step and reaches `done`.
        wait_for(lambda: _state(engine.store, run) == "done", timeout=20, what="daemon applying the approval")
        latency = time.monotonic() - started
    finally:
        daemon.send_signal(signal.SIGTERM)
        _out, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    approve = [e for e in engine.events(run=run) if e.trigger == "approve"]
    assert len(approve) == 1 and approve[0].reason == "checked by hand" and "@" in approve[0].actor
    finish = [e for e in engine.events(run=run) if e.from_state == "finish"]
    assert finish and finish[0].actor == "daemon"
    print(f"daemon applied an external command within {latency:.2f} s")


def test_durable_timer_fires_after_a_daemon_restart(
    make_engine: Callable[..., Engine], journal: Path
) -> None:
    engine = make_engine(time_scale=1.0)
    run = engine.start_run("flow", "c1", {"journal": str(journal), "want_polls": 2})
    state = engine.state_dir
    daemon = start_daemon(state, time_scale=2.0)  # the 2 s poll becomes 1 s
    try:
        wait_for(lambda: _reason(engine.store, run) == "poll 1", what="first poll")
    finally:
        daemon.kill()
        daemon.communicate(timeout=30)
    row = engine.store.get_run(run)
    assert row is not None and row.state == "waiting" and row.next_wake_at is not None
    wake_at = row.next_wake_at
    time.sleep(0.3)
    row = engine.store.get_run(run)
    assert row is not None and row.state == "waiting"  # nothing runs it while no daemon is up
    daemon = start_daemon(state, time_scale=2.0)
    try:
        wait_for(lambda: _state(engine.store, run) == "done", what="run finished after restart")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=30)
    leave = [e for e in engine.events(run=run) if e.from_state == "waiting" and e.to_state == "locked"]
    assert len(leave) == 1
    assert leave[0].ts >= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wake_at))
    assert engine.verify_audit().ok
