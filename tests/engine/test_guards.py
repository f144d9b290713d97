"""Guards see the other runs of their scope (with a held run's state), the pending output and the
injected clock, and their reason is what status shows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from engine.api import GuardInput, GuardResult, Outcome, Registry, StepContext
from engine.definition import load_definitions
from engine.facade import Engine
from engine.runtime import Fired, Refused, Runtime
from engine.store import RunRow, Store

DEF = """\
name: g
initial: start
final: [done]
states:
  start: {step: start}
  work: {step: work, wait: {poll: 10s}}
  hold: {gate: "hold here"}
  done: {}
transitions:
  - {trigger: next, source: start, dest: work}
  - {trigger: park, source: start, dest: hold}
  - {trigger: next, source: work, dest: done, guards: [alone]}
  - {trigger: next, source: hold, dest: done}
"""
SEEN: list[GuardInput] = []


def _registry() -> Registry:
    registry = Registry()

    @registry.step("start")
    def start(ctx: StepContext) -> Outcome:
        return Outcome.advance("park" if ctx.context.get("park") else "next")

    @registry.step("work")
    def work(ctx: StepContext) -> Outcome:
        return Outcome.advance(output={"worked_at": ctx.now().isoformat()})

    @registry.guard("alone")
    def alone(data: GuardInput) -> GuardResult:
        SEEN.append(data)
        held = [p for p in data.peers if p.state == "hold"]
        if held:
            return False, f"waiting for {held[0].run_id} ({held[0].definition} in {held[0].state})"
        return True, ""

    return registry


def test_guard_inputs_and_refusal_reason(tmp_path: Path) -> None:
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "g.yaml").write_text(DEF)
    registry = _registry()
    now = [datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()]
    engine = Engine(
        tmp_path / "state", load_definitions(tmp_path / "defs", registry), registry, clock=lambda: now[0]
    )
    with engine:
        parked = engine.start_run("g", "s1", {"park": True}, run_id="parked")
        worker = engine.start_run("g", "s1", {}, run_id="worker")
        engine.start_run("g", "s2", {"park": True}, run_id="elsewhere")
        for _ in range(6):
            for run in (parked, worker, "elsewhere"):
                engine.ticker.work(run)
        view = engine.status(worker)[0]
        assert view.state == "work"
        assert view.waiting_reason == "waiting for parked (g in hold)"
        data = SEEN[-1]
        assert (data.run_id, data.scope, data.source, data.dest, data.trigger) == (
            "worker",
            "s1",
            "work",
            "done",
            "next",
        )
        assert [(p.run_id, p.state) for p in data.peers] == [("parked", "hold")]  # held run: its held state
        assert data.context["worked_at"] == "2030-01-02T03:04:05+00:00"  # pending output merged in
        assert data.now == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
        assert view.next_wake_at == datetime(2030, 1, 2, 3, 4, 15, tzinfo=UTC)  # the state's 10 s poll
        engine.abort(parked, "not needed")
        now[0] += 10
        engine.ticker.work(worker)
        assert engine.status(worker)[0].state == "done"


BRANCHES = """\
name: b
initial: start
final: [fast, slow]
states:
  start: {step: start}
  fast: {}
  slow: {}
transitions:
  - {trigger: next, source: start, dest: fast, guards: [first, second]}
  - {trigger: next, source: start, dest: slow, guards: [third]}
"""


def test_each_guard_is_a_condition_and_the_first_refusal_is_the_reason(tmp_path: Path) -> None:
    calls: list[tuple[str, str]] = []
    registry = Registry()

    @registry.step("start")
    def start(ctx: StepContext) -> Outcome:
        return Outcome.advance()

    def guard(name: str) -> None:
        @registry.guard(name)
        def check(data: GuardInput) -> GuardResult:
            calls.append((name, data.dest))
            allowed = data.context.get(name, True)
            return bool(allowed), "" if allowed else f"{name} says no"

    for name in ("first", "second", "third"):
        guard(name)
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "b.yaml").write_text(BRANCHES)
    definitions = load_definitions(tmp_path / "defs", registry)
    runtime = Runtime(definitions, registry)
    store = Store(tmp_path / "state")
    run = RunRow("r", "b", "s", "start", "active", {}, {"start": 1}, 0.0, 0.0)
    try:
        with store.tx() as tx:
            tx.insert_run(run)
            # The second guard refuses: the next transition of the trigger is tried, and fires.
            assert runtime.fire(tx, run, "next", {"second": False}, 0.0) == Fired("slow")
            assert calls == [("first", "fast"), ("second", "fast"), ("third", "slow")]
            calls.clear()
            # The first guard refuses: the second is never asked; both branches refuse, and the
            # reason is the first refusal's.
            refused = runtime.fire(tx, run, "next", {"first": False, "third": False}, 0.0)
            assert refused == Refused("first says no", "guard")
            assert calls == [("first", "fast"), ("third", "slow")]
    finally:
        store.close()
