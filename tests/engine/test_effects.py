"""The effect journal: at most once per (run, state, visit, node, name), reconcile before redo,
safe from several threads at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.api import Effect, Outcome, Registry, StepContext
from engine.definition import load_definitions
from engine.facade import Engine

DEF = """\
name: fx
initial: work
final: [done]
states:
  work: {step: work}
  done: {}
transitions:
  - {trigger: next, source: work, dest: done}
"""


@pytest.fixture
def fx(tmp_path: Path) -> tuple[Registry, dict[str, Any], list[str]]:
    registry = Registry()
    calls: list[str] = []
    plan: dict[str, Any] = {"reconcile": None, "fail_once": False}
    lock = threading.Lock()

    @registry.step("work")
    def work(ctx: StepContext) -> Outcome:
        def act(node: str) -> Callable[[], Any]:
            def action() -> Any:
                with lock:
                    calls.append(node)
                return {"node": node, "fresh": True}

            return action

        def reconcile(effect: Effect) -> Any:
            assert effect.intent == {"node": effect.node}
            return plan["reconcile"]

        results: dict[str, Any] = {}

        def one(node: str) -> None:
            results[node] = ctx.effect(node, "touch", act(node), intent={"node": node}, reconcile=reconcile)

        threads = [threading.Thread(target=one, args=(n,)) for n in ("n1", "n2", "n3", "n4")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if plan["fail_once"]:
            plan["fail_once"] = False
            raise RuntimeError("flaky after the effects")
        return Outcome.advance(output={"results": results})

    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "fx.yaml").write_text(DEF)
    return registry, plan, calls


def _engine(tmp_path: Path, registry: Registry) -> Engine:
    return Engine(
        tmp_path / "state", load_definitions(tmp_path / "defs", registry), registry, time_scale=1000.0
    )


def test_effects_from_threads_run_once_across_a_retry(tmp_path: Path, fx: Any) -> None:
    registry, plan, calls = fx
    plan["fail_once"] = True
    with _engine(tmp_path, registry) as engine:
        run = engine.start_run("fx", "s", {})
        engine.run_until_quiet()
        view = engine.status(run)[0]
        assert view.state == "done"
        assert sorted(calls) == ["n1", "n2", "n3", "n4"]  # the retry found every output journaled
        assert view.context["results"]["n3"] == {"node": "n3", "fresh": True}
        assert [e.trigger for e in engine.events(run=run)].count("retry") == 1


@pytest.mark.parametrize(("found", "redone"), [({"node": "n2", "reconciled": True}, False), (None, True)])
def test_an_intent_without_output_is_reconciled_first(
    tmp_path: Path, fx: Any, found: Any, redone: bool
) -> None:
    registry, plan, calls = fx
    plan["reconcile"] = found
    with _engine(tmp_path, registry) as engine:
        run = engine.start_run("fx", "s", {})
        # What a crash between the intent's commit and the output's commit leaves behind.
        engine.store.record_intent(run, "work", 1, "n2", "touch", {"node": "n2"}, 0.0)
        engine.run_until_quiet()
        view = engine.status(run)[0]
    assert view.state == "done"
    assert ("n2" in calls) is redone
    expected = found if found is not None else {"node": "n2", "fresh": True}
    assert view.context["results"]["n2"] == expected
