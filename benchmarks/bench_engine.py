"""Engine figures: durable transitions/s against raw SQLite commits, resume time, memory per idle
run and idle daemon CPU with 10,000 runs waiting on timers.

All databases are created in one scratch folder (``BENCH_DIR`` or the system temporary folder),
so the raw and the engine figures come from the same disk with the same settings (WAL,
``synchronous=FULL``, one ``BEGIN IMMEDIATE`` transaction per commit).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

from engine.api import Outcome, Registry, StepContext
from engine.definition import Definition, load_definitions
from engine.facade import Engine
from engine.logging import configure_logging
from engine.store import RunRow

CHAIN = 12
RUNS = 40
IDLE_RUNS = 10_000
ROUNDS = 7


def _raw_commit_rate(folder: Path, count: int = 600) -> float:
    conn = sqlite3.connect(folder / "raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    # Warm up past the first WAL checkpoint: afterwards the WAL file is reused instead of grown,
    # which is the steady state the engine's figure is measured in too.
    for i in range(count * 2):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (v) VALUES (?)", (f"warm {i}",))
        conn.execute("COMMIT")
    started = time.perf_counter()
    for i in range(count):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (v) VALUES (?)", (f"row {i}",))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return count / elapsed


def _bench_definitions(folder: Path) -> tuple[Registry, Path]:
    registry = Registry()

    @registry.step("go")
    def go(ctx: StepContext) -> Outcome:
        return Outcome.advance(output={"at": ctx.state})

    states = {f"s{i}": {"step": "go"} for i in range(CHAIN)}
    states["done"] = {}
    transitions = [{"trigger": "next", "source": f"s{i}", "dest": f"s{i + 1}"} for i in range(CHAIN - 1)]
    transitions.append({"trigger": "next", "source": f"s{CHAIN - 1}", "dest": "done"})
    defs = folder / "defs"
    defs.mkdir()
    definition = {
        "name": "chain",
        "initial": "s0",
        "final": ["done"],
        "states": states,
        "transitions": transitions,
    }
    (defs / "chain.yaml").write_text(json.dumps(definition))  # JSON is YAML
    return registry, defs


def _transition_rate(folder: Path, *, workers: int = 8) -> tuple[float, float]:
    """Transitions per second and transitions per commit. With one worker every transition is
    its own transaction; with several, ticks that finish while a commit is being written share
    the next one (each still atomic with its event, and durable before its run goes on)."""
    registry, defs = _bench_definitions(folder)
    definitions = load_definitions(defs, registry)
    with Engine(folder / "state-rate", definitions, registry, actor="bench@host", workers=workers) as engine:
        for i in range(RUNS):
            engine.start_run("chain", f"c{i}", {})
        started = time.perf_counter()
        engine.run_until_quiet()
        elapsed = time.perf_counter() - started
        moved = sum(1 for e in engine.events() if e.trigger == "next")
        assert moved == RUNS * CHAIN, moved
        commits = engine.writer.commits
    return moved / elapsed, moved / max(1, commits)


def _seed_idle_runs(state: Path, definitions: dict[str, Definition], registry: Registry) -> None:
    with Engine(state, definitions, registry, actor="bench@host") as engine:
        now = time.time()
        with engine.store.tx() as tx:
            for i in range(IDLE_RUNS):
                tx.insert_run(
                    RunRow(
                        id=f"idle-{i:05d}",
                        definition="chain",
                        scope=f"cluster-{i % 500}",
                        state="s3",
                        status="active",
                        context={"cluster": f"cluster-{i % 500}", "type": "tomcat"},
                        visits={"s0": 1, "s1": 1, "s2": 1, "s3": 1},
                        created_at=now,
                        updated_at=now,
                        next_wake_at=now + 3600 + i * 0.01,
                        waiting_reason="waiting for the CA to sign",
                        waiting_kind="wait",
                        wait_started_at=now,
                    )
                )


def _idle_figures(folder: Path) -> tuple[float, float, float]:
    registry, defs = _bench_definitions(_mk(folder / "idle"))
    definitions = load_definitions(defs, registry)
    state = folder / "state-idle"
    _seed_idle_runs(state, definitions, registry)

    started = time.perf_counter()
    engine = Engine(state, definitions, registry, actor="bench@host")
    engine.scheduler.load()
    resume = time.perf_counter() - started
    engine.close()

    engine = Engine(state, definitions, registry, actor="bench@host")
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    engine.scheduler.load()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    per_run = (after - before) / IDLE_RUNS
    engine.close()

    engine = Engine(state, definitions, registry, actor="bench@host")
    stop = threading.Event()
    thread = threading.Thread(target=engine.serve, args=(stop,), daemon=True)
    thread.start()
    time.sleep(1.0)  # let it resume before measuring
    cpu0, wall0 = time.process_time(), time.perf_counter()
    time.sleep(5.0)
    cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    stop.set()
    thread.join(10)
    engine.close()
    return resume, per_run, cpu


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def main() -> None:
    configure_logging("warning")  # as the daemon runs by default
    base = os.environ.get("BENCH_DIR") or tempfile.gettempdir()
    folder = Path(tempfile.mkdtemp(prefix="bench-engine-", dir=base))
    try:
        # The disk is shared and its fsync latency drifts: alternate the two measurements and
        # compare medians.
        raws, rates, serial, batches = [], [], [], []
        for round_ in range(ROUNDS):
            raws.append(_raw_commit_rate(_mk(folder / f"raw-{round_}")))
            rate, batch = _transition_rate(_mk(folder / f"rate-{round_}"))
            rates.append(rate)
            batches.append(batch)
            serial.append(_transition_rate(_mk(folder / f"serial-{round_}"), workers=1)[0])
        raw, rate = statistics.median(raws), statistics.median(rates)
        resume, per_run, cpu = _idle_figures(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    paired = statistics.median(t / r for t, r in zip(rates, raws, strict=True))
    paired_serial = statistics.median(t / r for t, r in zip(serial, raws, strict=True))
    print(f"   scratch folder: {base}")
    print("   raw = single-row SQLite commits (one INSERT + COMMIT per transaction, WAL, synchronous=FULL);")
    print(
        f"   transitions = durable transitions (step + state + event committed together), {RUNS} runs; "
        "rounds alternate, the disk is shared"
    )
    print(f"   {'':9} {'raw /s':>8} {'8 workers /s':>13} {'ratio':>7} {'1 worker /s':>12} {'ratio':>7}")
    for number, (r, t, one) in enumerate(zip(raws, rates, serial, strict=True), start=1):
        print(f"   round {number:<3} {r:8.0f} {t:13.0f} {t / r:7.1%} {one:12.0f} {one / r:7.1%}")
    print(
        f"   {'median':9} {raw:8.0f} {rate:13.0f} {paired:7.1%} {statistics.median(serial):12.0f} "
        f"{paired_serial:7.1%}   (ratios: median of per-round ratios; goal >= 40%)"
    )
    print(f"   transitions per commit with 8 workers: {statistics.median(batches):.2f}")
    print(f"   resume {IDLE_RUNS} in-flight runs: {resume * 1000:6.0f} ms   (goal < 1000 ms)")
    print(f"   memory per idle in-flight run: {per_run:6.0f} B   (goal <= 4096 B)")
    print(f"   daemon CPU with {IDLE_RUNS} runs waiting on timers: {cpu:6.2%} of a core   (goal < 1%)")


if __name__ == "__main__":
    main()
