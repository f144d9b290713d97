"""Edges: a definition edited between restarts, a submission landing while the step runs, the
wall clock stepped back."""

from __future__ import annotations

import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.api import Outcome, PermanentError, Registry, StepContext, SubmitRejected
from engine.definition import Definition, load_definitions
from engine.errors import CommandError
from engine.facade import Engine
from engine.views import EventView

registry = Registry()
entered = threading.Event()
release = threading.Event()


@registry.step("stay")
def stay(ctx: StepContext) -> Outcome:
    if ctx.context.get("go"):
        return Outcome.advance()
    return Outcome.wait(600, "staying")


@registry.step("until_file")
def until_file(ctx: StepContext) -> Outcome:
    if Path(str(ctx.context["flag"])).exists():
        return Outcome.advance(reason="the flag is there")
    return Outcome.wait(600, "no flag yet")


@registry.step("blocking")
def blocking(ctx: StepContext) -> Outcome:
    if "ticket" in ctx.submitted:
        return Outcome.advance(output={"ticket": ctx.submitted["ticket"]})
    entered.set()
    assert release.wait(30)
    return Outcome.wait(3600, "waiting for a ticket")


@registry.step("flaky")
def flaky(ctx: StepContext) -> Outcome:
    if Path(str(ctx.context["fail_file"])).exists():
        raise PermanentError("the fail file exists: remove it, then retry")
    return Outcome.advance()


@registry.step("go")
def go(ctx: StepContext) -> Outcome:
    return Outcome.advance()


@registry.validator("ticket")
def ticket(context: object, key: str, data: object) -> object:
    if key != "ticket":
        raise SubmitRejected("only 'ticket'")
    return data


V1 = """\
name: edge
initial: a
final: [done]
states:
  a: {step: stay, wait: {poll: 10m, timeout: 1h, on_timeout: paused}}
  b: {gate: approve b}
  done: {}
transitions:
  - {trigger: next, source: a, dest: b}
  - {trigger: next, source: b, dest: done}
"""

UNTIL = V1.replace("step: stay,", "step: until_file,")

SUBMIT = """\
name: edge
initial: w
final: [done]
states:
  w: {step: blocking, submit: {validator: ticket}}
  done: {}
transitions:
  - {trigger: next, source: w, dest: done}
"""


FLAKY = """\
name: edge
initial: a
final: [done]
states:
  a: {step: flaky}
  done: {}
transitions:
  - {trigger: next, source: a, dest: done}
"""


def defs(folder: Path, text: str) -> dict[str, Definition]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "edge.yaml").write_text(textwrap.dedent(text))
    return load_definitions(folder, registry)


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


class Serving:
    def __init__(self, engine: Engine, on_event: Callable[[EventView], None] | None = None) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.on_event = on_event
        self.thread = threading.Thread(target=self._serve, args=(engine,), daemon=True)
        self.thread.start()

    def _serve(self, engine: Engine) -> None:
        try:
            engine.serve(self.stop, on_event=self.on_event)
        except BaseException as exc:
            self.error = exc

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()
        assert self.error is None, self.error


def test_active_run_in_a_state_the_edited_definition_dropped_fails_with_the_fix(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with Engine(state, defs(tmp_path / "v1", V1), registry, actor="op@h") as engine:
        run_id = engine.start_run("edge", "c1", {})
    renamed = V1.replace("initial: a", "initial: a2").replace("  a: {", "  a2: {")
    renamed = renamed.replace("source: a,", "source: a2,")
    with Engine(state, defs(tmp_path / "v2", renamed), registry, actor="op@h") as engine:
        engine.run_until_quiet()  # must not crash the engine
        run = engine.status(run_id)[0]
        assert run.status == "failed" and run.held_from == "a"
        assert "state 'a' is no longer in definition 'edge'" in run.last_error
        assert "restore the state" in run.last_error and "abort" in run.last_error
        with pytest.raises(CommandError, match="state 'a' is no longer in definition 'edge'"):
            engine.retry(run_id)
        with pytest.raises(CommandError, match="state 'a' is no longer in definition 'edge'"):
            engine.advance(run_id, "b", reason="by hand")
        assert engine.abort(run_id, reason="definition changed").state == "aborted"
        assert engine.verify_audit().ok


def test_held_run_in_a_state_the_edited_definition_dropped_refuses_approve(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with Engine(state, defs(tmp_path / "v1", V1), registry, actor="op@h") as engine:
        run_id = engine.start_run("edge", "c1", {"go": True})
        engine.run_until_quiet()
        assert engine.status(run_id)[0].held_from == "b"
    dropped = V1.replace("  b: {gate: approve b}\n", "").replace("dest: b}", "dest: done}")
    dropped = dropped.replace("  - {trigger: next, source: b, dest: done}\n", "")
    with Engine(state, defs(tmp_path / "v2", dropped), registry, actor="op@h") as engine:
        engine.run_until_quiet()
        with pytest.raises(CommandError, match="state 'b' is no longer in definition 'edge'"):
            engine.approve(run_id)
        assert engine.status(run_id)[0].status == "paused"
        assert engine.abort(run_id, reason="definition changed").state == "aborted"


def test_submit_from_another_process_while_the_step_runs_is_not_lost(tmp_path: Path) -> None:
    entered.clear()
    release.clear()
    state = tmp_path / "state"
    definitions = defs(tmp_path / "d", SUBMIT)
    daemon = Engine(state, definitions, registry, actor="daemon@h")
    cli = Engine(state, definitions, registry, actor="op@h")  # its own connection, as the CLI has
    serving = Serving(daemon)
    try:
        run_id = cli.start_run("edge", "c1", {})
        assert entered.wait(20)
        cli.submit(run_id, "ticket", {"id": "CHG1"})
        release.set()  # the step now returns "wait an hour", decided without the ticket
        wait_for(lambda: cli.status(run_id)[0].final)
        run = cli.status(run_id)[0]
        assert run.state == "done" and run.context["ticket"] == {"id": "CHG1"}
        triggers = [e.trigger for e in cli.events(run=run_id)]
        assert triggers == ["start", "submit", "next"]  # the stale "wait" decision was dropped
    finally:
        release.set()
        serving.close()
        daemon.close()
        cli.close()


def test_clock_stepped_back_between_restarts_rebases_waits(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    state = tmp_path / "state"
    definitions = defs(tmp_path / "v1", V1)
    with Engine(state, definitions, registry, actor="op@h", clock=lambda: now[0]) as engine:
        run_id = engine.start_run("edge", "c1", {})
        assert engine.ticker.work(run_id) == pytest.approx(now[0] + 600)
    now[0] -= 86_400  # a day back
    with Engine(state, definitions, registry, actor="op@h", clock=lambda: now[0]) as engine:
        engine.scheduler.load()
        assert engine.scheduler._heap[0] == (0.0, run_id)  # due at once, to be re-based
        # Re-based: the next poll is ten minutes from the new now, not a day and ten minutes.
        assert engine.ticker.work(run_id) == pytest.approx(now[0] + 600)
        start = now[0]
        now[0] = start + 601
        assert engine.ticker.work(run_id) == pytest.approx(start + 1200)
        assert engine.status(run_id)[0].status == "active"  # the hour's timeout is not used up
        now[0] = start + 3601
        assert engine.ticker.work(run_id) is None
        run = engine.status(run_id)[0]
        assert run.status == "paused" and run.waiting_reason.startswith("timed out after 1h in a")
        assert engine.verify_audit().ok


def test_clock_stepped_back_while_serving_rebases_waits(tmp_path: Path) -> None:
    offset = [0.0]
    state = tmp_path / "state"
    engine = Engine(
        state, defs(tmp_path / "v1", V1), registry, actor="op@h", clock=lambda: time.time() - offset[0]
    )
    serving = Serving(engine)
    try:
        run_id = engine.start_run("edge", "c1", {})
        wait_for(lambda: engine.status(run_id)[0].waiting_reason == "staying")
        wake = engine.status(run_id)[0].next_wake_at
        assert wake is not None and wake.timestamp() > time.time() + 500
        offset[0] = 86_400.0
        # Without re-basing the run would sleep a day longer than its ten minutes.
        wait_for(lambda: (engine.status(run_id)[0].next_wake_at or wake).timestamp() < time.time() - 80_000)
        run = engine.status(run_id)[0]
        assert run.status == "active" and run.next_wake_at is not None
        assert run.next_wake_at.timestamp() == pytest.approx(time.time() - 86_400 + 600, abs=30)
    finally:
        serving.close()
        engine.close()


def test_command_landing_between_a_commit_and_the_worker_letting_go_is_seen(tmp_path: Path) -> None:
    """A run fails; before its worker is done with it, another process retries it and the daemon's
    poll notices: the retried run must still be worked (not left active but off the timer heap)."""
    state = tmp_path / "state"
    fail_file = tmp_path / "fail"
    fail_file.touch()
    definitions = defs(tmp_path / "d", FLAKY)
    daemon = Engine(state, definitions, registry, actor="daemon@h")
    cli = Engine(state, definitions, registry, actor="op@h")
    retried = threading.Event()

    def on_event(event: EventView) -> None:
        if event.trigger == "fail" and not retried.is_set():
            fail_file.unlink()
            cli.retry(event.run)
            retried.set()
            time.sleep(1.0)  # several of the daemon's polls happen while this worker holds the run

    serving = Serving(daemon, on_event)
    try:
        run_id = cli.start_run("edge", "c1", {"fail_file": str(fail_file)})
        assert retried.wait(20)
        wait_for(lambda: cli.status(run_id)[0].final)
        assert cli.status(run_id)[0].state == "done"
    finally:
        serving.close()
        daemon.close()
        cli.close()


ONE = """\
name: one
initial: a1
final: [done]
states:
  a1: {step: go}
  c1: {step: flaky}
  done: {}
transitions:
  - {trigger: next, source: a1, dest: c1}
  - {trigger: next, source: c1, dest: done}
exclusion:
  - {group: g1, from: c1, until: done}
"""
TWO = """\
name: two
initial: a2
final: [done]
states:
  a2: {step: go}
  b2: {step: go}
  c2: {step: go}
  done: {}
transitions:
  - {trigger: next, source: a2, dest: b2}
  - {trigger: next, source: b2, dest: c2}
  - {trigger: next, source: c2, dest: done}
exclusion:
  - {group: g2, from: b2, until: done}
  - {group: g1, from: c2, until: done}
"""


def test_run_until_quiet_returns_behind_a_chain_of_lease_waiters(tmp_path: Path) -> None:
    """X failed holding g1; Y holds g2 and waits for g1; Z waits for g2 (held by Y, which is active
    but cannot move): nothing can move without an operator, so the foreground run returns."""
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "one.yaml").write_text(ONE)
    (folder / "two.yaml").write_text(TWO)
    definitions = load_definitions(folder, registry)
    fail_file = tmp_path / "fail"
    fail_file.touch()
    with Engine(tmp_path / "state", definitions, registry, actor="op@h", time_scale=100.0) as engine:
        x = engine.start_run("one", "c1", {"fail_file": str(fail_file)})
        engine.run_until_quiet()
        y = engine.start_run("two", "c1", {})
        engine.run_until_quiet()
        z = engine.start_run("two", "c1", {})
        stop = threading.Event()
        timer = threading.Timer(20, stop.set)
        timer.start()
        try:
            engine.run_until_quiet(stop=stop)
        finally:
            timer.cancel()
        assert not stop.is_set(), "run_until_quiet waited for a chain of waiters that cannot move"
        assert [engine.status(r)[0].status for r in (x, y, z)] == ["failed", "active", "active"]
        assert engine.store.lease_holders() == {("g1", "c1"): x, ("g2", "c1"): y}
        fail_file.unlink()
        engine.retry(x)
        engine.run_until_quiet()
        assert [engine.status(r)[0].state for r in (x, y, z)] == ["done", "done", "done"]


@pytest.mark.parametrize("flag_set", [True, False])
def test_a_timeout_passed_while_stopped_gets_a_last_look(tmp_path: Path, flag_set: bool) -> None:
    """The daemon was stopped for two hours across a one-hour timeout. If what the step waits for
    came true meanwhile the run goes on; if not, it times out saying what the last look saw."""
    now = [1_800_000_000.0]
    state, flag = tmp_path / "state", tmp_path / "flag"
    definitions = defs(tmp_path / "until", UNTIL)
    with Engine(state, definitions, registry, actor="op@h", clock=lambda: now[0]) as engine:
        run_id = engine.start_run("edge", "c1", {"flag": str(flag)})
        engine.ticker.work(run_id)
        assert engine.status(run_id)[0].waiting_reason == "no flag yet"
    if flag_set:
        flag.touch()
    now[0] += 2 * 3600
    with Engine(state, definitions, registry, actor="op@h", clock=lambda: now[0]) as engine:
        engine.scheduler.load()
        engine.ticker.work(run_id)
        run = engine.status(run_id)[0]
        if flag_set:
            assert run.held_from == "b" and run.waiting_reason == "approve b", run  # its gate, not a timeout
        else:
            assert run.status == "paused" and run.waiting_reason == "timed out after 1h in a (no flag yet)"
        assert engine.verify_audit().ok
