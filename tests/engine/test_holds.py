"""Holds on a scope: recorded in the store and the audit, handed to guards, lifted by release, which
wakes the scope's runs a guard kept waiting; checked by audit verify."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.api import GuardInput, GuardResult, Outcome, Registry, StepContext
from engine.cli import App, main
from engine.definition import load_definitions
from engine.errors import CommandError
from engine.facade import Engine

DEF = """\
name: h
initial: start
final: [done]
states:
  start: {step: start, wait: {poll: 1h}}
  done: {}
transitions:
  - {trigger: next, source: start, dest: done, guards: [not_held]}
"""
SEEN: list[GuardInput] = []


def _registry() -> Registry:
    registry = Registry()

    @registry.step("start")
    def start(ctx: StepContext) -> Outcome:
        return Outcome.advance()

    @registry.guard("not_held")
    def not_held(g: GuardInput) -> GuardResult:
        SEEN.append(g)
        if g.hold is not None:
            return False, f"{g.scope} is on hold by {g.hold.actor}: {g.hold.reason}"
        return True, "no hold"

    return registry


@pytest.fixture
def defs_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / "h.yaml").write_text(DEF)
    return folder


def test_a_hold_reaches_the_guards_and_release_wakes_the_runs_it_kept(tmp_path: Path, defs_dir: Path) -> None:
    registry = _registry()
    engine = Engine(tmp_path / "state", load_definitions(defs_dir, registry), registry, actor="ops@desk")
    try:
        hold = engine.hold("east", "freeze for the carrier cut-over")
        assert (hold.scope, hold.actor) == ("east", "ops@desk")
        with pytest.raises(CommandError, match=r"already on hold .*release it first"):
            engine.hold("east", "again")
        with pytest.raises(CommandError, match="needs --reason"):
            engine.hold("west", "  ")
        held = engine.start_run("h", "east", {})
        free = engine.start_run("h", "west", {})
        _drive_until(engine, lambda: engine.status(free)[0].state == "done")
        waiting = engine.status(held)[0]
        assert waiting.state == "start" and waiting.status == "active"
        assert waiting.waiting_reason == "east is on hold by ops@desk: freeze for the carrier cut-over"
        # The poll is an hour away: only the release brings the guard back now.
        assert waiting.next_wake_at is not None
        assert (waiting.next_wake_at - waiting.updated_at).total_seconds() > 3000
        seen = [g for g in SEEN if g.run_id == held]
        assert seen and seen[-1].hold is not None and seen[-1].hold.reason.startswith("freeze")
        assert [h.scope for h in engine.holds()] == ["east"]

        released = engine.release("east", reason="cut-over done")
        assert released.reason == "freeze for the carrier cut-over"
        assert engine.holds() == []
        woken = engine.status(held)[0].next_wake_at
        assert woken is not None and woken.timestamp() == pytest.approx(engine.clock(), abs=5)
        _drive_until(engine, lambda: engine.status(held)[0].state == "done")
        assert engine.status(held)[0].state == "done"
        with pytest.raises(CommandError, match="not on hold"):
            engine.release("east")

        scoped = [e for e in engine.events(scope="east") if e.run == ""]
        assert [(e.trigger, e.actor, e.reason) for e in scoped] == [
            ("hold", "ops@desk", "freeze for the carrier cut-over"),
            ("release", "ops@desk", "cut-over done"),
        ]
        assert engine.verify_audit().ok
    finally:
        engine.close()


def test_verify_catches_a_hold_edited_out_of_the_table(tmp_path: Path, defs_dir: Path) -> None:
    registry = _registry()
    engine = Engine(tmp_path / "state", load_definitions(defs_dir, registry), registry)
    try:
        engine.hold("east", "freeze")
        assert engine.verify_audit().ok
    finally:
        engine.close()
    with sqlite3.connect(tmp_path / "state" / "engine.db") as db:
        db.execute("DELETE FROM holds")
    engine = Engine(tmp_path / "state", load_definitions(defs_dir, registry), registry)
    try:
        result = engine.verify_audit()
        assert not result.ok and "scope east is not on hold" in str(result)
    finally:
        engine.close()


def test_hold_release_and_status_on_the_command_line(
    tmp_path: Path, defs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = _registry()
    app: App[None] = App(
        prog="toy",
        definitions_dir=defs_dir,
        registry=registry,
        context=lambda args: None,
        deps_factory=lambda context: lambda run: None,
        scope_word="cluster",
    )
    state = ["--state-dir", str(tmp_path / "state")]
    assert main(app, [*state, "hold", "east", "--reason", "change freeze"]) == 0
    assert "cluster east on hold: change freeze" in capsys.readouterr().out
    assert main(app, [*state, "hold", "east", "--reason", "twice"]) == 1
    assert "already on hold" in capsys.readouterr().err
    assert main(app, [*state, "status"]) == 0
    assert "cluster east ON HOLD since" in capsys.readouterr().out
    assert main(app, [*state, "release", "east"]) == 0
    assert "cluster east released" in capsys.readouterr().out
    assert main(app, [*state, "status"]) == 0
    assert "ON HOLD" not in capsys.readouterr().out


def _drive_until(engine: Engine, done: Callable[[], bool]) -> None:
    """Drive the runs until ``done()`` holds (a run kept waiting never makes the engine quiet)."""
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if done():
                stop.set()
            stop.wait(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        engine.run_until_quiet(stop=stop)
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert done()
