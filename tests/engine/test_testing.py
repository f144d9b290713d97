"""The step-context double keeps the engine's journal rules, so step tests built on it mean something."""

from __future__ import annotations

from typing import Any

import pytest

from engine.api import Effect, Outcome
from engine.testing import StepContextDouble


def test_an_effect_acts_once_and_returns_its_journaled_output() -> None:
    ctx = StepContextDouble()
    calls: list[int] = []

    def act() -> Any:
        calls.append(1)
        return {"n": len(calls)}

    assert ctx.effect("a", "x", act, intent={"i": 1}) == {"n": 1}
    assert ctx.effect("a", "x", act) == {"n": 1}
    assert calls == [1] and ctx.acted == [("a", "x")]
    ctx.visit = 2  # a new visit journals afresh, as the engine keys effects by visit
    assert ctx.effect("a", "x", act) == {"n": 2}


def test_an_intent_without_output_is_reconciled_before_acting() -> None:
    ctx = StepContextDouble()
    ctx.record_intent("a", "x", {"want": 1})
    seen: list[Effect] = []

    def found(effect: Effect) -> Any:
        seen.append(effect)
        return {"adopted": effect.intent["want"]}

    assert ctx.effect("a", "x", lambda: {"acted": True}, reconcile=found) == {"adopted": 1}
    assert ctx.acted == [] and ctx.reconciled == [("a", "x")]
    entry = ctx.entry("a", "x")
    assert entry is not None and entry.reconciled and entry.output == {"adopted": 1}
    ctx.record_intent("a", "y")
    assert ctx.effect("a", "y", lambda: {"acted": True}, reconcile=lambda e: None) == {"acted": True}
    assert ctx.acted == [("a", "y")]


def test_an_action_that_raises_leaves_its_intent_without_output() -> None:
    ctx = StepContextDouble()

    def boom() -> Any:
        raise RuntimeError("lost")

    with pytest.raises(RuntimeError):
        ctx.effect("a", "x", boom, intent={"k": "v"})
    entry = ctx.entry("a", "x")
    assert entry is not None and not entry.completed and entry.intent == {"k": "v"}


def test_outputs_must_be_json_and_apply_merges_them() -> None:
    ctx = StepContextDouble(context={"keep": 1})
    with pytest.raises(TypeError):
        ctx.effect("a", "x", lambda: {"when": object()})
    outcome = ctx.apply(Outcome.wait(0, "later", output={"pair": (1, 2)}))
    assert outcome.kind == "wait" and ctx.context == {"keep": 1, "pair": [1, 2]}
    ctx.progress("a", "half way")
    assert ctx.progress_log == [("a", "half way")]
