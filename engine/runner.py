"""The runner: executes steps and records what they decide.

A run is worked on in *ticks*: load its row, call its state's step with a :class:`StepContext`,
and commit the outcome (a transition, a durable wait, a gate, a retry or a failure) in one
transaction, with a check that no operator command changed the run meanwhile. Waits and retries
are rows (``next_wake_at``); in memory the runner keeps only a heap of ``(next_wake_at, run_id)``.
Ticks of different runs execute concurrently in a small thread pool.
"""

from __future__ import annotations

import copy
import heapq
import random
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.api import JSON, Effect, Outcome, Registry, StepError
from engine.crashpoints import crashpoint
from engine.definition import ABORTED, Definition, human_duration
from engine.logging import get_logger, redact_text
from engine.logging import log as logger
from engine.runtime import Fired, NoTransition, Refused, Runtime
from engine.store import EventRow, RunRow, Store, StoreFatal, Tx

Clock = Callable[[], float]
"""Seconds since the epoch (UTC)."""

EventView = EventRow
_UNSET: Any = object()
CHAIN_LIMIT = 100
CLOCK_SLACK = 1.0
"""Seconds the wall clock may step back before stored wake times are re-based (NTP slews and
small corrections stay below it)."""


@dataclass(frozen=True)
class RunView:
    id: str
    definition: str
    scope: str
    state: str
    held_from: str | None
    status: str
    waiting_reason: str
    next_wake_at: datetime | None
    attempt: int
    last_error: str
    context: Mapping[str, JSON]
    progress: Mapping[str, str]
    created_at: datetime
    updated_at: datetime

    @property
    def final(self) -> bool:
        return self.status == "final"

    def as_dict(self) -> dict[str, JSON]:
        return {
            "id": self.id,
            "definition": self.definition,
            "scope": self.scope,
            "state": self.state,
            "held_from": self.held_from,
            "status": self.status,
            "waiting_reason": self.waiting_reason,
            "next_wake_at": iso(self.next_wake_at) if self.next_wake_at else None,
            "attempt": self.attempt,
            "last_error": self.last_error,
            "context": dict(self.context),
            "progress": dict(self.progress),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


def missing_state(state: str, definition: str) -> str:
    """Why a run cannot go on in a state its definition no longer has, and the fix."""
    return (
        f"state {state!r} is no longer in definition {definition!r} (the definition file changed "
        f"since the run entered it): restore the state in the file and retry, or abort the run"
    )


def iso(value: datetime | float) -> str:
    """UTC timestamp with microseconds, e.g. ``2026-11-26T10:00:00.000000Z`` (sorts as text)."""
    moment = datetime.fromtimestamp(value, UTC) if isinstance(value, int | float) else value.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def view(run: RunRow, progress: Mapping[str, str]) -> RunView:
    return RunView(
        id=run.id,
        definition=run.definition,
        scope=run.scope,
        state=run.state,
        held_from=run.held_from,
        status=run.status,
        waiting_reason=run.waiting_reason,
        next_wake_at=datetime.fromtimestamp(run.next_wake_at, UTC) if run.next_wake_at is not None else None,
        attempt=run.attempt,
        last_error=run.last_error,
        context=run.context,
        progress=progress,
        created_at=datetime.fromtimestamp(run.created_at, UTC),
        updated_at=datetime.fromtimestamp(run.updated_at, UTC),
    )


@dataclass
class _Pending:
    run: RunRow
    change: Callable[[Tx, RunRow], None]
    result: RunRow | None = None
    events: list[EventRow] = field(default_factory=list)
    error: BaseException | None = None
    done: bool = False


@dataclass
class _EffectView:
    node: str
    name: str
    intent: Mapping[str, JSON]
    recorded_at: datetime


class _StepCtx:
    """The :class:`engine.api.StepContext` handed to a step."""

    def __init__(self, runner: Runner, run: RunRow, defn: Definition) -> None:
        self._runner = runner
        self._store = runner.store
        self.run_id = run.id
        self.definition = run.definition
        self.scope = run.scope
        self.state = run.state
        self.visit = run.visits.get(run.state, 1)
        self.attempt = run.attempt
        self.params: Mapping[str, JSON] = defn.params
        self.context: Mapping[str, JSON] = dict(run.context)
        self.submitted: Mapping[str, JSON] = dict(run.submitted)
        self._run = run
        self._deps: Any = _UNSET

    @property
    def deps(self) -> Any:
        # Built on first use: most ticks of most steps never need the adapters.
        if self._deps is _UNSET:
            self._deps = self._runner.deps_factory(view(self._run, {}))
        return self._deps

    @deps.setter
    def deps(self, value: Any) -> None:
        self._deps = value

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._runner.clock(), UTC)

    def effect(
        self,
        node: str,
        name: str,
        action: Callable[[], JSON],
        *,
        intent: Mapping[str, JSON] | None = None,
        reconcile: Callable[[Effect], JSON | None] | None = None,
    ) -> JSON:
        key = (self.run_id, self.state, self.visit, node, name)
        row = self._store.get_effect(*key)
        if row is not None and row.completed_at is not None:
            return row.output
        if row is not None:
            if reconcile is not None:
                found = reconcile(
                    _EffectView(node, name, row.intent, datetime.fromtimestamp(row.recorded_at, UTC))
                )
                if found is not None:
                    self._store.record_output(*key, found, self._runner.clock())
                    return found
        else:
            crashpoint("effect.before_intent", (self.definition, self.state, node, name))
            self._store.record_intent(*key, dict(intent or {}), self._runner.clock())
        crashpoint("effect.after_intent", (self.definition, self.state, node, name))
        output = action()
        crashpoint("effect.after_action", (self.definition, self.state, node, name))
        self._store.record_output(*key, output, self._runner.clock())
        crashpoint("effect.after_output", (self.definition, self.state, node, name))
        return output

    def progress(self, node: str, text: str) -> None:
        self._store.set_progress(self.run_id, node, text, self._runner.clock())


class Runner:
    """Drives runs: schedules ticks on a heap of wake times and commits each tick's outcome."""

    def __init__(
        self,
        store: Store,
        definitions: Mapping[str, Definition],
        registry: Registry,
        deps_factory: Callable[[RunView], Any],
        *,
        clock: Clock,
        time_scale: float,
        actor: str,
        workers: int,
    ) -> None:
        self.store = store
        self.definitions = definitions
        self.registry = registry
        self.runtime = Runtime(definitions, registry)
        self.deps_factory = deps_factory
        self.clock = clock
        self.time_scale = time_scale
        self.actor = actor
        self.workers = workers
        self.on_event: Callable[[EventView], None] | None = None
        self._heap: list[tuple[float, str]] = []
        self._wake: dict[str, float] = {}
        self._inflight: set[str] = set()
        # Runs an operator command touched while a worker had them: the worker's own result may
        # predate the command, so it re-reads the row when it lets go.
        self._touched: set[str] = set()
        self._cond = threading.Condition()
        self._fatal: BaseException | None = None
        self._stopping = threading.Event()
        self._pending: list[_Pending] = []
        self._pending_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        # The row each worker committed last, reused by the same worker's next tick of that run.
        self._last: dict[str, RunRow] = {}
        self._rng = random.Random()
        self._seen: tuple[int, int] | None = None
        """(data_version, max rev) read just before the last :meth:`load`."""
        self.commits = 0
        """Transactions the runner has committed (a batch of ticks counts once)."""

    # ------------------------------------------------------------------ scheduling

    def load(self) -> None:
        """Resume: every active run goes on the heap at its stored wake time."""
        with self._cond:
            # Read the change markers first: a run another process writes while we load is then
            # either in the wake list or seen as a change by the loop, never neither.
            self._seen = (self.store.data_version(), self.store.max_rev())
            written_before = self.clock() + CLOCK_SLACK
            self._wake = {run_id: at for at, run_id in self.store.wake_list(written_before)}
            self._heap = [(at, run_id) for run_id, at in self._wake.items()]
            heapq.heapify(self._heap)

    def scheduled(self) -> int:
        """How many runs wait on the timer heap."""
        with self._cond:
            return len(self._wake)

    def schedule(self, run_id: str, at: float | None) -> None:
        with self._cond:
            if run_id in self._inflight:
                self._touched.add(run_id)
            if at is None:
                self._wake.pop(run_id, None)
            else:
                self._wake[run_id] = at
                heapq.heappush(self._heap, (at, run_id))
            self._cond.notify_all()

    def refresh(self, run_ids: list[tuple[str, int, str, float | None]]) -> None:
        for run_id, _rev, status, at in run_ids:
            if run_id in self._inflight:
                self._touched.add(run_id)
                continue
            self.schedule(run_id, (at or 0.0) if status == "active" else None)

    def loop(self, stop: threading.Event, *, until_quiet: bool, poll: float = 0.3) -> None:
        """Run ticks until ``stop`` is set (or, with ``until_quiet``, nothing is left to do)."""
        if self._seen is not None:
            seen_version, seen_rev = self._seen
        else:
            seen_version, seen_rev = self.store.data_version(), self.store.max_rev()
        last_poll = 0.0  # look for changes made since load() at once
        last_now = self.clock()
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="run") as pool:
            while not stop.is_set():
                if time.monotonic() - last_poll >= poll:
                    last_poll = time.monotonic()
                    version = self.store.data_version()
                    if version != seen_version:
                        seen_version = version
                        changed = self.store.changed_since(seen_rev)
                        seen_rev = max([seen_rev, *(c[1] for c in changed)])
                        with self._cond:
                            self.refresh(changed)
                with self._cond:
                    if self._fatal is not None:
                        break
                    now = self.clock()
                    if now < last_now - CLOCK_SLACK:
                        self._clock_went_back(last_now - now, now)
                    last_now = now
                    while self._heap and self._heap[0][0] <= now:
                        at, run_id = heapq.heappop(self._heap)
                        if self._wake.get(run_id) != at or run_id in self._inflight:
                            continue
                        del self._wake[run_id]
                        self._inflight.add(run_id)
                        pool.submit(self._tick, run_id)
                    if until_quiet and not self._inflight and self._quiet():
                        break
                    delay = poll
                    if self._heap:
                        delay = min(delay, max(0.0, self._heap[0][0] - now))
                    self._cond.wait(delay)
            self._stopping.set()
            with self._cond:
                while self._inflight and self._fatal is None:
                    self._cond.wait(0.2)
            self._stopping.clear()
        if self._fatal is not None:
            raise self._fatal

    def _clock_went_back(self, by: float, now: float) -> None:
        """The wall clock was stepped back: the wake times on the heap lie that much further
        ahead than they were meant to. Every scheduled run is looked at once; :meth:`work`
        re-bases the times of the runs written since (the others keep theirs)."""
        logger().warning("wall clock went back", seconds=round(by, 3), runs=len(self._wake))
        for run_id in self._wake:
            self._wake[run_id] = now
            heapq.heappush(self._heap, (now, run_id))

    def _quiet(self) -> bool:
        """Nothing can move without an operator: every run is final or held, or waits on a lease
        whose holder is held or, in turn, waits on such a lease (a chain of waiters behind one
        failed run)."""
        if not self._wake:
            return True
        active = self.store.active_summary()
        if any(kind != "lease" for _id, _defn, _scope, kind in active):
            return False
        holders = self.store.lease_holders()
        waiting = {run_id for run_id, _defn, _scope, _kind in active}
        blockers: dict[str, set[str]] = {}
        held: set[str] = set()
        for run_id, definition, scope, _kind in active:
            defn = self.definitions.get(definition)
            found: set[str] = set()
            for excl in defn.exclusion if defn else ():
                holder = holders.get((excl.group, scope))
                if holder is None or holder == run_id:
                    continue
                if holder not in waiting:
                    other = self.store.get_run(holder)
                    if other is None or other.status == "active":
                        return False  # a holder that is moving will release its lease
                    held.add(holder)
                found.add(holder)
            if not found:
                return False
            blockers[run_id] = found
        stuck: set[str] = set()
        grew = True
        while grew:
            grew = False
            for run_id, found in blockers.items():
                if run_id not in stuck and all(h in held or h in stuck for h in found):
                    stuck.add(run_id)
                    grew = True
        return len(stuck) == len(blockers)

    def _tick(self, run_id: str) -> None:
        at: float | None = None
        try:
            at = self.work(run_id)
            # A run that is due again at once keeps its worker: handing it back to the scheduler
            # would cost a thread switch per transition.
            for _ in range(CHAIN_LIMIT):
                if at is None or at > self.clock() or self._stopping.is_set():
                    break
                at = self.work(run_id, self._last.pop(run_id, None))
        except BaseException as exc:
            get_logger(run=run_id).error("engine failure", error=redact_text(repr(exc)))
            with self._cond:
                self._fatal = exc if isinstance(exc, StoreFatal) else StoreFatal(f"engine failure: {exc!r}")
        finally:
            self._last.pop(run_id, None)
            with self._cond:
                self._inflight.discard(run_id)
                if run_id in self._touched:
                    self._touched.discard(run_id)
                    at = self._reread(run_id, at)
                if at is not None and self._fatal is None:
                    self._wake[run_id] = at
                    heapq.heappush(self._heap, (at, run_id))
                self._cond.notify_all()

    def _reread(self, run_id: str, at: float | None) -> float | None:
        """When a run touched by a command during its tick is next due, from the stored row."""
        try:
            latest = self.store.get_run(run_id)
        except StoreFatal as exc:
            self._fatal = exc
            return at
        if latest is None or latest.status != "active":
            return None
        return latest.next_wake_at or self.clock()

    # ------------------------------------------------------------------ one tick

    def work(self, run_id: str, known: RunRow | None = None) -> float | None:
        """Work one run once; return when it should be worked again (``None``: not by a timer).
        ``known`` is the row this runner itself just committed; its revision is re-checked at
        commit time like any other."""
        run = known if known is not None else self.store.get_run(run_id)
        if run is None or run.status != "active":
            return None
        now = self.clock()
        if run.updated_at > now + CLOCK_SLACK:
            # Written "in the future": the clock went back since. Its wake time and wait start
            # move back by as much, so a poll interval or a timeout is measured from now instead
            # of from a moment the clock will only reach later.
            return self._commit(run, lambda tx, r: self._rebase(r, r.updated_at - now))
        if run.next_wake_at is not None and run.next_wake_at > now:
            return run.next_wake_at
        defn = self.definitions.get(run.definition)
        log = logger()
        if defn is None:
            return self._commit(
                run,
                lambda tx, r: self.hold(
                    tx,
                    r,
                    "failed",
                    f"definition {run.definition!r} is not loaded: restore its file, then retry",
                    trigger="fail",
                    actor=self.actor,
                ),
            )
        sdef = defn.states.get(run.state)
        if sdef is None:
            return self._commit(
                run,
                lambda tx, r: self.hold(
                    tx,
                    r,
                    "failed",
                    missing_state(run.state, run.definition),
                    trigger="fail",
                    actor=self.actor,
                ),
            )
        timeout = sdef.wait.timeout if sdef.wait else None
        if (
            timeout is not None
            and run.wait_started_at is not None
            and now >= run.wait_started_at + timeout / self.time_scale
        ):
            log.info("wait timed out", run=run.id, state=run.state)
            return self._commit(run, lambda tx, r: self._timeout(tx, r, defn))
        if sdef.step is None:
            return self._commit(
                run,
                lambda tx, r: self.hold(
                    tx,
                    r,
                    "paused",
                    sdef.gate or "waiting for an operator",
                    trigger="gate",
                    actor=self.actor,
                    on_approve="next",
                ),
            )
        step = self.registry.steps[sdef.step]
        ctx = _StepCtx(self, run, defn)
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
        return self._commit(run, lambda tx, r: self._apply(tx, r, defn, outcome))

    def _rebase(self, run: RunRow, by: float) -> None:
        logger().warning("clock went back: wake time re-based", run=run.id, seconds=round(by, 3))
        if run.next_wake_at is not None:
            run.next_wake_at -= by
        if run.wait_started_at is not None:
            run.wait_started_at -= by

    def _commit(self, run: RunRow, change: Callable[[Tx, RunRow], None]) -> float | None:
        """Commit one tick's decision, unless an operator changed the run since it was read.

        Group commit: ticks that finish while another tick's transaction is being written queue
        up, and the next writer commits all of them in one transaction (each still atomic with
        its event, and durable before its worker goes on). Under load that turns one fsync per
        transition into one per batch."""
        item = _Pending(run, change)
        with self._pending_lock:
            self._pending.append(item)
        with self._commit_lock:
            if not item.done:
                with self._pending_lock:
                    batch, self._pending = self._pending, []
                self._write_batch(batch)
        if item.error is not None:
            raise item.error
        if item.result is None:
            # An operator command changed the run while its step ran: its decision stands.
            latest = self.store.get_run(run.id)
            if latest is None or latest.status != "active":
                return None
            return latest.next_wake_at or self.clock()
        self.emit(item.events)
        fresh = item.result
        if fresh.status != "active":
            return None
        self._last[fresh.id] = fresh
        return fresh.next_wake_at

    def _write_batch(self, batch: list[_Pending]) -> None:
        try:
            with self.store.tx() as tx:
                for item in batch:
                    if tx.run_rev(item.run.id) != item.run.rev:
                        continue
                    # Unchanged since it was read, so the row in hand is the current one.
                    fresh = copy.copy(item.run)
                    first = len(tx.events)
                    item.change(tx, fresh)
                    fresh.updated_at = self.clock()
                    tx.update_run(fresh)
                    item.result = fresh
                    item.events = tx.events[first:]
                crashpoint("transition.before_commit", *((i.run.definition, i.run.state) for i in batch))
        except BaseException as exc:
            for item in batch:
                item.error, item.result, item.done = exc, None, True
            return
        crashpoint("transition.after_commit", *((i.run.definition, i.run.state) for i in batch))
        self.commits += 1
        for item in batch:
            item.done = True

    def emit(self, events: list[EventRow]) -> None:
        for event in events:
            logger().info(
                "transition",
                run=event.run,
                seq=event.seq,
                source=event.from_state,
                dest=event.to_state,
                trigger=event.trigger,
            )
            if self.on_event is not None:
                self.on_event(event)

    # ------------------------------------------------------------------ outcomes

    def _apply(self, tx: Tx, run: RunRow, defn: Definition, outcome: Outcome) -> None:
        now = self.clock()
        sdef = defn.states[run.state]
        if outcome.kind == "advance":
            context = {**run.context, **outcome.output}
            result = self.runtime.fire(tx, run, outcome.trigger or "next", context, now)
            if isinstance(result, Fired):
                run.context = context
                self.enter(
                    tx,
                    run,
                    result.dest,
                    trigger=outcome.trigger or "next",
                    actor=self.actor,
                    reason=outcome.reason,
                    evidence=outcome.evidence,
                )
            elif isinstance(result, Refused):
                self._wait(tx, run, sdef.poll, result.reason, result.kind, defn)
            else:
                assert isinstance(result, NoTransition)
                self._fail(
                    tx,
                    run,
                    defn,
                    f"step {sdef.step} asked for trigger {result.trigger!r}, but state "
                    f"{result.source!r} has no such transition: fix the definition or the step",
                    False,
                )
        elif outcome.kind == "wait":
            run.context = {**run.context, **outcome.output}
            seconds = outcome.wake_in if outcome.wake_in is not None else sdef.poll
            self._wait(tx, run, seconds, outcome.reason or "waiting", "wait", defn)
        elif outcome.kind == "gate":
            run.context = {**run.context, **outcome.output}
            self.hold(
                tx,
                run,
                "paused",
                outcome.reason or "waiting for approval",
                trigger="gate",
                actor=self.actor,
                on_approve=outcome.on_approve,
                evidence=outcome.evidence,
            )
        else:
            self._fail(tx, run, defn, outcome.reason or "step failed", outcome.retryable)

    def _wait(self, tx: Tx, run: RunRow, seconds: float, reason: str, kind: str, defn: Definition) -> None:
        now = self.clock()
        sdef = defn.states[run.state]
        if run.wait_started_at is None:
            run.wait_started_at = now
        wake = now + max(0.0, seconds) / self.time_scale
        if sdef.wait and sdef.wait.timeout is not None:
            wake = min(wake, run.wait_started_at + sdef.wait.timeout / self.time_scale)
        if reason != run.waiting_reason:
            tx.append_event(
                ts=iso(now),
                run=run,
                from_state=run.state,
                to_state=run.state,
                trigger="wait",
                actor=self.actor,
                reason=reason,
            )
        run.waiting_reason, run.waiting_kind, run.next_wake_at = reason, kind, wake

    def _fail(self, tx: Tx, run: RunRow, defn: Definition, error: str, retryable: bool) -> None:
        policy = defn.states[run.state].retry
        now = self.clock()
        if retryable and run.attempt < policy.attempts:
            delay = policy.delay(run.attempt, self._rng.random()) / self.time_scale
            run.attempt += 1
            run.last_error = error
            run.next_wake_at = now + delay
            run.waiting_reason = f"retry {run.attempt}/{policy.attempts} after: {error}"
            run.waiting_kind = "retry"
            tx.append_event(
                ts=iso(now),
                run=run,
                from_state=run.state,
                to_state=run.state,
                trigger="retry",
                actor=self.actor,
                reason=error,
                evidence={"attempt": run.attempt},
            )
            return
        self.hold(tx, run, "failed", error, trigger="fail", actor=self.actor)

    def _timeout(self, tx: Tx, run: RunRow, defn: Definition) -> None:
        sdef = defn.states[run.state]
        assert sdef.wait is not None and sdef.wait.timeout is not None
        reason = f"timed out after {human_duration(sdef.wait.timeout)} in {run.state}"
        if run.waiting_reason:
            reason += f" ({run.waiting_reason})"
        target = sdef.wait.on_timeout
        if target in ("paused", "failed"):
            self.hold(tx, run, target, reason, trigger="timeout", actor=self.actor, on_approve=None)
            return
        blocked = self.runtime.lease_block(tx, run, target)
        if blocked:
            self._wait(tx, run, sdef.poll, blocked, "lease", defn)
            return
        self.enter(tx, run, target, trigger="timeout", actor=self.actor, reason=reason)

    # ------------------------------------------------------------------ state changes (shared with commands)

    def enter(
        self,
        tx: Tx,
        run: RunRow,
        dest: str,
        *,
        trigger: str,
        actor: str,
        reason: str = "",
        evidence: Mapping[str, JSON] | None = None,
    ) -> None:
        """Move ``run`` into ``dest`` (leases already checked) and record the event."""
        defn = self.definitions[run.definition]
        now = self.clock()
        self.runtime.move_leases(tx, run, dest, now)
        tx.append_event(
            ts=iso(now),
            run=run,
            from_state=run.state,
            to_state=dest,
            trigger=trigger,
            actor=actor,
            reason=reason,
            evidence=evidence,
        )
        run.state = dest
        run.visits = {**run.visits, dest: run.visits.get(dest, 0) + 1}
        run.held_from = None
        run.attempt = 1
        run.last_error = ""
        run.waiting_reason = ""
        run.waiting_kind = ""
        run.wait_started_at = None
        run.submitted = {}
        run.on_approve = None
        sdef = defn.states[dest]
        if sdef.final:
            self.runtime.release_all(tx, run)
            run.status = "final"
            run.next_wake_at = None
        elif sdef.gate is not None:
            self.hold(
                tx,
                run,
                "paused",
                sdef.gate,
                trigger="gate",
                actor=actor,
                on_approve="next" if sdef.step is None else None,
            )
        else:
            run.status = "active"
            run.next_wake_at = now

    def hold(
        self,
        tx: Tx,
        run: RunRow,
        hold: str,
        reason: str,
        *,
        trigger: str,
        actor: str,
        on_approve: str | None = None,
        evidence: Mapping[str, JSON] | None = None,
    ) -> None:
        now = self.clock()
        tx.append_event(
            ts=iso(now),
            run=run,
            from_state=run.state,
            to_state=hold,
            trigger=trigger,
            actor=actor,
            reason=reason,
            evidence=evidence,
        )
        run.held_from = run.state
        run.state = hold
        run.status = hold
        run.next_wake_at = None
        run.on_approve = on_approve
        if hold == "failed":
            run.last_error = reason
            run.waiting_reason = reason
        else:
            run.waiting_reason = reason
        run.waiting_kind = hold

    def abort(self, tx: Tx, run: RunRow, reason: str, actor: str) -> None:
        now = self.clock()
        self.runtime.release_all(tx, run)
        tx.append_event(
            ts=iso(now),
            run=run,
            from_state=run.state,
            to_state=ABORTED,
            trigger="abort",
            actor=actor,
            reason=reason,
        )
        run.held_from = None
        run.state = ABORTED
        run.status = "final"
        run.next_wake_at = None
        run.waiting_reason = ""
        run.waiting_kind = ""
        run.visits = {**run.visits, ABORTED: run.visits.get(ABORTED, 0) + 1}
