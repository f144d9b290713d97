"""One tick: work one run once.

Load its row, call its state's step with a :class:`~engine.step_context.StepCtx`, turn the outcome
into a move (a transition, a durable wait, a gate, a retry or a failure) and hand that to the
group commit, which writes it with its event unless an operator command changed the run meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.api import Outcome, Registry, StepError
from engine.definition import Definition
from engine.group_commit import Change, GroupCommit
from engine.logging import log as logger
from engine.logging import redact_text
from engine.moves import Moves
from engine.runtime import Fired, NoTransition, Refused
from engine.step_context import StepCtx
from engine.store import RunRow, Store, StoreFatal, Tx
from engine.views import EventFeed, RunView, missing_state

CLOCK_SLACK = 1.0
"""Seconds the wall clock may step back before stored wake times are re-based (NTP slews and
small corrections stay below it)."""


class Ticker:
    """Works runs one tick at a time; safe to call from several threads for different runs."""

    def __init__(
        self,
        store: Store,
        definitions: Mapping[str, Definition],
        registry: Registry,
        moves: Moves,
        writer: GroupCommit,
        feed: EventFeed,
        deps_factory: Callable[[RunView], Any],
        *,
        clock: Callable[[], float],
        time_scale: float,
        actor: str,
    ) -> None:
        self.store = store
        self.definitions = definitions
        self.registry = registry
        self.moves = moves
        self.writer = writer
        self.feed = feed
        self.deps_factory = deps_factory
        self.clock = clock
        self.time_scale = time_scale
        self.actor = actor
        # The row each run's last tick committed, for the same worker's next tick of that run.
        self._last: dict[str, RunRow] = {}

    def work(self, run_id: str, known: RunRow | None = None) -> float | None:
        """Work one run once; return when it should be worked again (``None``: not by a timer).
        ``known`` is the row this engine itself just committed; its revision is re-checked at
        commit time like any other."""
        run = known if known is not None else self.store.get_run(run_id)
        if run is None or run.status != "active":
            return None
        now = self.clock()
        if run.updated_at > now + CLOCK_SLACK:
            # Written "in the future": the clock went back since. Its wake time and wait start
            # move back by as much, so a poll interval or a timeout is measured from now instead
            # of from a moment the clock will only reach later.
            by = run.updated_at - now
            return self._commit(run, lambda tx, r: self.moves.rebase(r, by))
        if run.next_wake_at is not None and run.next_wake_at > now:
            return run.next_wake_at
        defn = self.definitions.get(run.definition)
        log = logger()
        if defn is None:
            problem = f"definition {run.definition!r} is not loaded: restore its file, then retry"
            return self._commit(run, lambda tx, r: self._hold_failed(tx, r, problem))
        sdef = defn.states.get(run.state)
        if sdef is None:
            problem = missing_state(run.state, run.definition)
            return self._commit(run, lambda tx, r: self._hold_failed(tx, r, problem))
        timeout = sdef.wait.timeout if sdef.wait else None
        # A wait runs out only after a last look: the step runs once more at (or, after a stop,
        # long past) its deadline, and times out only if it still cannot go on. A daemon stopped
        # past a timeout must not fail a run whose condition came true meanwhile.
        expired = (
            timeout is not None
            and run.wait_started_at is not None
            and now >= run.wait_started_at + timeout / self.time_scale
        )
        if expired and sdef.step is None:
            log.info("wait timed out", run=run.id, state=run.state)
            return self._commit(run, lambda tx, r: self.moves.timeout(tx, r, actor=self.actor))
        if sdef.step is None:
            gate = sdef.gate or "waiting for an operator"
            return self._commit(
                run,
                lambda tx, r: self.moves.hold(
                    tx, r, "paused", gate, trigger="gate", actor=self.actor, on_approve="next"
                ),
            )
        step = self.registry.steps[sdef.step]
        ctx = StepCtx(self.store, run, defn, clock=self.clock, deps_factory=self.deps_factory)
        log.debug("step start", run=run.id, state=run.state, step=sdef.step, attempt=run.attempt)
        try:
            outcome = step(ctx)
            if not isinstance(outcome, Outcome):
                outcome = Outcome.fail(
                    f"step {sdef.step} returned {outcome!r}, not an Outcome", retryable=False
                )
        except StoreFatal:
            raise
        except StepError as exc:
            outcome = Outcome.fail(redact_text(str(exc)) or type(exc).__name__, retryable=exc.retryable)
        except Exception as exc:
            outcome = Outcome.fail(redact_text(f"{type(exc).__name__}: {exc}"), retryable=True)
        log.debug("step done", run=run.id, step=sdef.step, outcome=outcome.kind, trigger=outcome.trigger)
        return self._commit(run, lambda tx, r: self._apply(tx, r, defn, outcome, expired=expired))

    def committed(self, run_id: str) -> RunRow | None:
        """The row the last tick of ``run_id`` committed (once: it is forgotten on reading)."""
        return self._last.pop(run_id, None)

    def _commit(self, run: RunRow, change: Change) -> float | None:
        done = self.writer.commit(run, change)
        if done.run is None:
            # An operator command changed the run while its step ran: its decision stands.
            latest = self.store.get_run(run.id)
            if latest is None or latest.status != "active":
                return None
            return latest.next_wake_at or self.clock()
        self.feed.emit(done.events)
        if done.run.status != "active":
            return None
        self._last[done.run.id] = done.run
        return done.run.next_wake_at

    def _hold_failed(self, tx: Tx, run: RunRow, problem: str) -> None:
        self.moves.hold(tx, run, "failed", problem, trigger="fail", actor=self.actor)

    def _apply(self, tx: Tx, run: RunRow, defn: Definition, outcome: Outcome, *, expired: bool) -> None:
        """Turn a step's outcome into the move it asks for. Past the state's timeout (``expired``),
        whatever would wait again — a wait, a refused guard, a retryable failure — times out, with
        what this last look saw as the reason."""
        sdef = defn.states[run.state]

        def wait_or_time_out(seconds: float, reason: str, kind: str) -> None:
            if expired:
                logger().info("wait timed out", run=run.id, state=run.state)
                run.waiting_reason = reason
                self.moves.timeout(tx, run, actor=self.actor)
            else:
                self.moves.wait(tx, run, seconds, reason, kind, actor=self.actor)

        if outcome.kind == "advance":
            trigger = outcome.trigger or "next"
            context = {**run.context, **outcome.output}
            result = self.moves.runtime.fire(tx, run, trigger, context, self.clock())
            if isinstance(result, Fired):
                run.context = context
                self.moves.enter(
                    tx,
                    run,
                    result.dest,
                    trigger=trigger,
                    actor=self.actor,
                    reason=outcome.reason,
                    evidence=outcome.evidence,
                )
            elif isinstance(result, Refused):
                wait_or_time_out(sdef.poll, result.reason, result.kind)
            else:
                assert isinstance(result, NoTransition)
                self.moves.fail(
                    tx,
                    run,
                    f"step {sdef.step} asked for trigger {result.trigger!r}, but state "
                    f"{result.source!r} has no such transition: fix the definition or the step",
                    retryable=False,
                    actor=self.actor,
                )
        elif outcome.kind == "wait":
            if outcome.output and run.attempt > 1:
                # A checkpoint is progress: the retry budget is for consecutive failures, so a step
                # that moves through many effects (a restart per node) is not failed by a few
                # transient errors spread across them.
                run.attempt = 1
                run.last_error = ""
            run.context = {**run.context, **outcome.output}
            seconds = outcome.wake_in if outcome.wake_in is not None else sdef.poll
            wait_or_time_out(seconds, outcome.reason or "waiting", "wait")
        elif outcome.kind == "gate":
            run.context = {**run.context, **outcome.output}
            self.moves.hold(
                tx,
                run,
                "paused",
                outcome.reason or "waiting for approval",
                trigger="gate",
                actor=self.actor,
                on_approve=outcome.on_approve,
                evidence=outcome.evidence,
            )
        elif expired and outcome.retryable:
            wait_or_time_out(sdef.poll, outcome.reason or "step failed", "retry")
        else:
            self.moves.fail(
                tx, run, outcome.reason or "step failed", retryable=outcome.retryable, actor=self.actor
            )
