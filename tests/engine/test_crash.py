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
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from engine.daemon import Engine
from tests.engine.procs import daemon_locked, start_daemon, wait_for

POINTS = [
    "effect.before_intent",
    "effect.after_intent",
    "effect.after_action",
    "effect.after_output",
    "transition.before_commit",
    "transition.after_commit",
]
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
