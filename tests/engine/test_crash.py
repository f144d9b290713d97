"""SIGKILL a real daemon at random points, again and again: nothing is lost, nothing is done twice.

Each trial starts the toy daemon on the same state folder, armed with a random crash point (the
N-th arrival at an effect or transition boundary) or killed after a random delay, until at least
50 kills have happened; then a last daemon finishes the work. Every side effect writes a line to a
journal file outside the database, so a repeated side effect would show as a repeated line.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from engine.crashpoints import POINTS
from engine.facade import Engine
from tests.engine.procs import daemon_locked, start_daemon, wait_for

EXPECTED = [
    (None, "check"),
    ("check", "act"),
    ("act", "waiting"),
    ("waiting", "locked"),
    ("locked", "finish"),
    ("finish", "done"),
]
TRIALS = 50
RUNS = 10


def test_sigkill_at_random_points(make_engine: Callable[..., Engine], journal: Path) -> None:
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    engine = make_engine()
    state = engine.state_dir
    runs = [
        engine.start_run("flow", f"c{i % 3}", {"journal": str(journal), "fail_times": i % 2}, run_id=f"r{i}")
        for i in range(RUNS)
    ]
    kills = crash_kills = 0
    trial = 0
    while kills < TRIALS:
        trial += 1
        # The first trial always dies between an action and its output's commit: the case that
        # only reconciliation can make safe.
        crash = "effect.after_action:1" if trial == 1 else None
        if crash is None and rng.random() < 0.75:
            crash = f"{rng.choice(POINTS)}:{rng.randint(1, 4)}"
        proc = start_daemon(state, time_scale=200.0, crash=crash)
        try:
            proc.wait(timeout=rng.uniform(0.3, 1.0))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, f"seed {seed} trial {trial} ({crash}): {err[-2000:]}"
        kills += 1
        crash_kills += crash is not None
    assert crash_kills >= 25

    final = start_daemon(state, time_scale=200.0)
    try:
        wait_for(lambda: daemon_locked(state, final.pid), what="final daemon lock")
        wait_for(
            lambda: all(v.status == "final" for v in engine.status()),
            timeout=60,
            what=f"all runs final (seed {seed})",
        )
    finally:
        final.send_signal(signal.SIGTERM)
        final.communicate(timeout=30)
    assert final.returncode == 0

    views = {v.id: v for v in engine.status()}
    assert {v.state for v in views.values()} == {"done"}, f"seed {seed}"
    lines = journal.read_text().splitlines()
    repeated = [line for line, n in Counter(lines).items() if n > 1]
    assert repeated == [], f"side effects executed twice (seed {seed}): {repeated}"
    expected_lines = {
        f"{r}|{state}|1|{node}|{name}"
        for r in runs
        for state, node, name in [
            ("act", "a", "act"),
            ("act", "b", "act"),
            ("act", "c", "act"),
            ("locked", "cluster", "locked_work"),
            ("finish", "cluster", "finish"),
        ]
    }
    assert set(lines) == expected_lines
    events = engine.events()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    for r in runs:
        moves = [(e.from_state, e.to_state) for e in events if e.run == r and e.trigger in ("start", "next")]
        assert moves == EXPECTED, f"run {r} (seed {seed}): {moves}"
    assert engine.verify_audit().ok
    reconciled = [
        e for r in runs for e in engine.store.effects(r) if '"reconciled":true' in (e["output"] or "")
    ]
    assert reconciled, "the first trial's interrupted effect should have been reconciled"
    assert engine.store.lease_holders() == {}
    unfinished = [e for r in runs for e in engine.store.effects(r) if e["completed_at"] is None]
    assert unfinished == []


def test_sigkill_while_runs_hold_in_every_kind_of_state(
    make_engine: Callable[..., Engine], journal: Path, tmp_path: Path
) -> None:
    """Killed while one run waits on a timer, one has failed, one is paused at a gate holding a
    lease and one waits for that lease: the next daemon leaves each as it was, and operator
    commands then take every run to the end with no side effect twice."""
    engine = make_engine()
    state = engine.state_dir
    outage = tmp_path / "outage"
    outage.touch()
    base = {"journal": str(journal)}
    ticket = engine.start_run("toy", "c2", {**base, "need_ticket": True}, run_id="timer")
    failed = engine.start_run("toy", "c3", {**base, "fail_file": str(outage)}, run_id="failed")
    gate = engine.start_run("toy", "c1", base, run_id="gate")
    proc = start_daemon(state)
    try:
        wait_for(lambda: engine.status(gate)[0].held_from == "approval", what="gate run paused")
        lease = engine.start_run("toy", "c1", base, run_id="lease")
        wait_for(lambda: kind(engine, lease) == "lease", what="lease run waiting")
        wait_for(lambda: engine.status(failed)[0].status == "failed", what="run failed")
        wait_for(
            lambda: engine.status(ticket)[0].waiting_reason.startswith("waiting for a ticket"), what="wait"
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    before = {r.id: (r.state, r.held_from, r.status, r.waiting_kind) for r in engine.store.runs()}

    proc = start_daemon(state)
    try:
        wait_for(lambda: daemon_locked(state, proc.pid), what="second daemon lock")
        time.sleep(0.5)  # a few poll intervals at the toy's time scale
        after = {r.id: (r.state, r.held_from, r.status, r.waiting_kind) for r in engine.store.runs()}
        assert after == before
        assert engine.store.lease_holders() == {("slot", "c1"): gate}
        engine.submit(ticket, "ticket", {"id": "CHG9"})
        outage.unlink()
        engine.retry(failed)
        engine.approve(gate)
        wait_for(lambda: engine.status(lease)[0].held_from == "approval", what="lease run at the gate")
        engine.approve(lease)
        wait_for(lambda: engine.status(ticket)[0].held_from == "approval", what="ticket run at the gate")
        engine.approve(ticket)
        wait_for(lambda: engine.status(failed)[0].held_from == "approval", what="retried run at the gate")
        engine.approve(failed)
        wait_for(lambda: all(v.status == "final" for v in engine.status()), what="all runs final")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert {v.state for v in engine.status()} == {"done"}
    lines = journal.read_text().splitlines()
    assert [line for line, n in Counter(lines).items() if n > 1] == []
    assert engine.verify_audit().ok
    assert engine.store.lease_holders() == {}


def kind(engine: Engine, run_id: str) -> str:
    run = engine.store.get_run(run_id)
    return run.waiting_kind if run else ""
