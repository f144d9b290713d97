"""The retry budget counts consecutive failures: a step that checkpoints progress between transient
errors (a restart per node, each answer sometimes lost) is not failed by errors spread across its
work, while one that fails again and again without progress still runs out."""

from __future__ import annotations

from pathlib import Path

from engine.api import Outcome, Registry, StepContext, TransientError
from engine.definition import load_definitions
from engine.facade import Engine

DEFINITION = """
name: chores
initial: work
final: [done]
states:
  work:
    step: work
    retry: {attempts: 2, initial: 1s, backoff: 1.0, cap: 1s, jitter: 0.0}
  done: {}
transitions:
  - {trigger: next, source: work, dest: done}
"""


def engine_for(tmp_path: Path, fail_every_other: bool) -> tuple[Engine, str]:
    registry = Registry()
    calls = {"n": 0}

    @registry.step("work")
    def work(ctx: StepContext) -> Outcome:
        calls["n"] += 1
        done = int(ctx.context.get("done") or 0)
        if fail_every_other and calls["n"] % 2 == 1:
            raise TransientError(f"answer lost on chore {done + 1}")
        if not fail_every_other:
            raise TransientError("down for good")
        if done < 5:
            return Outcome.wait(0, f"chore {done + 1} done", output={"done": done + 1})
        return Outcome.advance()

    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / "chores.yaml").write_text(DEFINITION)
    engine = Engine(tmp_path / "state", load_definitions(folder, registry), registry, time_scale=1000.0)
    return engine, engine.start_run("chores", "c1", {})


def test_errors_spread_across_progress_do_not_exhaust_the_budget(tmp_path: Path) -> None:
    engine, run = engine_for(tmp_path, fail_every_other=True)
    try:
        engine.run_until_quiet()
        view = engine.status(run)[0]
        # Six transient errors against a budget of two attempts: each came after a checkpoint.
        assert view.state == "done", (view.state, view.last_error)
        assert [e.trigger for e in engine.events(run=run)].count("retry") == 6
    finally:
        engine.close()


def test_failures_without_progress_still_run_out(tmp_path: Path) -> None:
    engine, run = engine_for(tmp_path, fail_every_other=False)
    try:
        engine.run_until_quiet()
        view = engine.status(run)[0]
        assert (view.status, view.held_from) == ("failed", "work") and "down for good" in view.last_error
    finally:
        engine.close()
