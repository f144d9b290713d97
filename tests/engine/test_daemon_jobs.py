"""Periodic daemon jobs: run at start and on their schedule; a failing job never stops the daemon."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from engine.daemon import PeriodicJob
from engine.facade import Engine
from tests.engine.procs import wait_for


def test_jobs_start_runs_on_schedule_and_survive_their_own_errors(
    make_engine: Callable[..., Engine], journal: Path
) -> None:
    engine = make_engine(time_scale=100.0)  # every=20 s declared: every 0.2 s here
    calls: list[str] = []

    def start_one() -> None:
        calls.append("start")
        engine.start_unless_running("flow", "c1", {"journal": str(journal)})

    def broken() -> None:
        calls.append("broken")
        raise RuntimeError("cluster unreachable tonight")

    stop = threading.Event()
    daemon = threading.Thread(
        target=engine.serve,
        args=(stop,),
        kwargs={"jobs": [PeriodicJob("due", 20.0, start_one), PeriodicJob("broken", 20.0, broken)]},
    )
    daemon.start()
    try:
        # The job's runs are driven by the same daemon: a run finishes, the next tick starts another.
        wait_for(
            lambda: sum(1 for r in engine.find_runs(definition="flow", include_final=True) if r.final) >= 2,
            timeout=30,
            what="two runs started by the job and finished",
        )
        assert calls.count("broken") >= 2  # raised every time, still scheduled again
        assert daemon.is_alive()
    finally:
        stop.set()
        daemon.join(timeout=30)
    assert not daemon.is_alive()
    finished = engine.find_runs(definition="flow", include_final=True)
    assert all(r.state == "done" for r in finished if r.final)
    # Never two runs in flight for one definition and scope.
    assert len([r for r in finished if not r.final]) <= 1
