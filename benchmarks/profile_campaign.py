"""Where the campaign benchmark's wall time goes: the tool's CPU, the simulator's CPU, SQLite, and
idle waits (no step running: polls the tool sleeps through).

``python -m benchmarks.profile_campaign`` runs :mod:`benchmarks.bench_campaign` once with every
engine tick under ``cProfile`` (one profile per worker thread) and the CPU time of every thread
read from ``/proc`` while it runs. The simulator shares the process, so its CPU is the process's
less the tool's threads (the engine's workers and the main thread). Tick times are wall-clock and
include waiting for the simulator's answers and for the GIL; the CPU figures do not.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import sys
import threading
import time
from typing import Any

import engine.tick as tick
from benchmarks import bench_campaign

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _thread_cpu(native_id: int) -> float | None:
    try:
        with open(f"/proc/self/task/{native_id}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _union(spans: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def main(method: str = "pools") -> None:
    local = threading.local()
    profiles: list[cProfile.Profile] = []
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()
    work = tick.Ticker.work

    def profiled(self: Any, run_id: str, known: Any = None) -> float | None:
        profile = getattr(local, "profile", None)
        if profile is None:
            profile = local.profile = cProfile.Profile()
            with lock:
                profiles.append(profile)
        began = time.monotonic()
        profile.enable()
        try:
            return work(self, run_id, known)
        finally:
            profile.disable()
            with lock:
                spans.append((began, time.monotonic()))

    tool_cpu: dict[int, float] = {}
    stop = threading.Event()

    def watch() -> None:
        # Workers end with their pool: read their CPU while they live.
        while not stop.wait(0.1):
            for t in threading.enumerate():
                tool = t.name.startswith("run") or t is threading.main_thread()
                if tool and t.native_id is not None and (cpu := _thread_cpu(t.native_id)) is not None:
                    tool_cpu[t.native_id] = cpu

    tick.Ticker.work = profiled  # type: ignore[method-assign]
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    main_before = _thread_cpu(threading.main_thread().native_id or 0) or 0.0
    started, before = time.monotonic(), os.times()
    try:
        bench_campaign.main(method)
    finally:
        tick.Ticker.work = work  # type: ignore[method-assign]
        stop.set()
        watcher.join()
    wall, after = time.monotonic() - started, os.times()
    cpu = (after.user - before.user) + (after.system - before.system)
    tool = sum(tool_cpu.values()) - main_before
    stats = pstats.Stats(profiles[0], stream=io.StringIO())
    for p in profiles[1:]:
        stats.add(p)
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]

    def own(match: str) -> float:
        return sum(v[2] for k, v in table.items() if match in f"{k[0]}:{k[2]}")

    sqlite = own("sqlite3.Connection")
    idle = wall - _union(spans)
    print("  profile of the run above (seconds):")
    print(f"    wall {wall:6.1f}   process CPU {cpu:6.1f}")
    print(f"    tool CPU (engine workers and main thread)  {tool:6.1f}")
    print(f"    simulator CPU (the rest of the process)    {cpu - tool:6.1f}")
    print(f"    SQLite (in ticks, wall-clock)              {sqlite:6.1f}")
    print(f"    idle (no step running: waits slept through) {idle:5.1f}")
    print(
        f"    in ticks: JSON encoding {own('json/encoder.py:iterencode'):5.1f}   XML parsing "
        f"{own('XMLParser'):5.1f}   waiting for HTTPS answers {own('_ssl._SSLSocket'):5.1f}"
    )
    print("    ticks' ten costliest functions (own time, wall-clock):")
    for (path, line, name), v in sorted(table.items(), key=lambda kv: -kv[1][2])[:10]:
        print(f"      {v[2]:6.2f}  {path.rsplit('/', 2)[-1] if '/' in path else path}:{line}({name})")


if __name__ == "__main__":
    main(*sys.argv[1:2])
