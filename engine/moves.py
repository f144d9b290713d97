"""Every change of a run's place: the one owner of its state, status and waiting fields.

A *move* changes a :class:`~engine.store.RunRow` in hand and appends the event that records it,
inside the caller's transaction; the caller writes the row back in that same transaction. The
tick (a step's outcome, a timeout, a missing definition) and the operator commands (approve,
advance, retry, abort, submit) both move runs only through here, so a rule such as "entering a
state starts a fresh set of attempts" is written once.

The moves, by what they leave the run as:

* :meth:`Moves.enter` — in ``dest``: active and due now, paused at the state's gate, or final.
* :meth:`Moves.hold` — ``paused`` or ``failed``, remembering the state it was held from.
* :meth:`Moves.reopen` — back in the state it was held from, active, with fresh attempts.
* :meth:`Moves.wait` — in the same state, due again after a poll interval (capped by its timeout).
* :meth:`Moves.fail` — retried after the state's back-off, or held ``failed`` once attempts run out.
* :meth:`Moves.timeout` — a wait that ran out: held, or moved to the state's ``on_timeout``.
* :meth:`Moves.abort` — final in ``aborted``, its leases released.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Mapping

from engine.api import JSON
from engine.definition import ABORTED, Definition, human_duration
from engine.logging import log as logger
from engine.runtime import Fired, NoTransition, Refused, Runtime
from engine.store import RunRow, Tx
from engine.views import iso


class Moves:
    """The moves of the runs of ``definitions``, timed by ``clock`` and ``time_scale``."""

    def __init__(
        self,
        definitions: Mapping[str, Definition],
        runtime: Runtime,
        *,
        clock: Callable[[], float],
        time_scale: float,
        rng: random.Random | None = None,
    ) -> None:
        self.definitions = definitions
        self.runtime = runtime
        self.clock = clock
        self.time_scale = time_scale
        self._rng = rng or random.Random()

    def start(self, tx: Tx, run: RunRow, *, actor: str) -> None:
        """Record a new run's start in its initial state (already on ``run``), holding it at once
        if that state is a gate."""
        tx.append_event(
            ts=iso(self.clock()),
            run=run,
            from_state=None,
            to_state=run.state,
            trigger="start",
            actor=actor,
            evidence={"context_keys": sorted(run.context)},
        )
        sdef = self.definitions[run.definition].states[run.state]
        if sdef.gate is not None:
            self._gate(tx, run, sdef.gate, actor=actor, on_approve="next" if sdef.step is None else None)

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
        run.submitted = {}
        run.on_approve = None
        self._fresh_attempts(run)
        run.last_error = ""
        sdef = defn.states[dest]
        if sdef.final:
            self.runtime.release_all(tx, run, now)
            run.status = "final"
            run.next_wake_at = None
        elif sdef.gate is not None:
            self._gate(tx, run, sdef.gate, actor=actor, on_approve="next" if sdef.step is None else None)
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
        """Hold ``run`` ``paused`` or ``failed`` until an operator releases it; ``on_approve`` is
        the trigger approving fires (``None``: approving re-runs the state's step)."""
        tx.append_event(
            ts=iso(self.clock()),
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
        run.waiting_kind = hold

    def reopen(self, tx: Tx, run: RunRow, *, trigger: str, actor: str, reason: str = "") -> None:
        """Release a held run back into the state it was held from, due now with fresh attempts
        (its step runs again from the top)."""
        assert run.held_from is not None
        tx.append_event(
            ts=iso(self.clock()),
            run=run,
            from_state=run.state,
            to_state=run.held_from,
            trigger=trigger,
            actor=actor,
            reason=reason,
        )
        self._unhold(run)
        run.status = "active"
        self._fresh_attempts(run)
        run.next_wake_at = self.clock()

    def approve(self, tx: Tx, run: RunRow, *, actor: str, reason: str = "") -> Refused | NoTransition | None:
        """Release a paused run: fire the trigger its hold names, or re-run its step. Returns why
        the trigger cannot fire (nothing is then changed that the caller should keep)."""
        trigger = run.on_approve
        if trigger is None:
            self.reopen(tx, run, trigger="approve", actor=actor, reason=reason)
            return None
        self._unhold(run)
        run.status = "active"
        result = self.runtime.fire(tx, run, trigger, run.context, self.clock())
        if not isinstance(result, Fired):
            return result
        self.enter(tx, run, result.dest, trigger="approve", actor=actor, reason=reason)
        return None

    def advance(self, tx: Tx, run: RunRow, dest: str, *, actor: str, reason: str) -> None:
        """Move a run by hand (held or not) into ``dest``; the caller checked it may."""
        self._unhold(run)
        self.enter(tx, run, dest, trigger="advance", actor=actor, reason=reason)

    def wait(self, tx: Tx, run: RunRow, seconds: float, reason: str, kind: str, *, actor: str) -> None:
        """Stay in the state and be due again in ``seconds`` (declared time, divided by the time
        scale), never later than the state's timeout. ``kind`` says on what: ``wait``, ``guard``
        or ``lease``. A reason that did not change is not recorded again."""
        now = self.clock()
        sdef = self.definitions[run.definition].states[run.state]
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
                actor=actor,
                reason=reason,
            )
        run.waiting_reason, run.waiting_kind, run.next_wake_at = reason, kind, wake

    def fail(self, tx: Tx, run: RunRow, error: str, *, retryable: bool, actor: str) -> None:
        """A step failed: try again after the state's back-off while attempts remain, else hold
        the run ``failed``."""
        policy = self.definitions[run.definition].states[run.state].retry
        if retryable and run.attempt < policy.attempts:
            now = self.clock()
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
                actor=actor,
                reason=error,
                evidence={"attempt": run.attempt},
            )
            return
        self.hold(tx, run, "failed", error, trigger="fail", actor=actor)

    def timeout(self, tx: Tx, run: RunRow, *, actor: str) -> None:
        """The state's wait ran out: hold the run, or move it to the state's ``on_timeout`` (or
        wait on, if a lease keeps it out)."""
        sdef = self.definitions[run.definition].states[run.state]
        assert sdef.wait is not None and sdef.wait.timeout is not None
        reason = f"timed out after {human_duration(sdef.wait.timeout)} in {run.state}"
        if run.waiting_reason:
            reason += f" ({run.waiting_reason})"
        target = sdef.wait.on_timeout
        if target in ("paused", "failed"):
            self.hold(tx, run, target, reason, trigger="timeout", actor=actor, on_approve=None)
            return
        blocked = self.runtime.lease_block(tx, run, target)
        if blocked:
            self.wait(tx, run, sdef.poll, blocked, "lease", actor=actor)
            return
        self.enter(tx, run, target, trigger="timeout", actor=actor, reason=reason)

    def abort(self, tx: Tx, run: RunRow, reason: str, *, actor: str) -> None:
        self.runtime.release_all(tx, run, self.clock())
        tx.append_event(
            ts=iso(self.clock()),
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

    def submit(self, tx: Tx, run: RunRow, key: str, data: JSON, *, actor: str) -> None:
        """Attach validated ``data`` under ``key``; the audit keeps its digest, not the data. An
        active run is due at once, so the step waiting for it sees it."""
        digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
        tx.append_event(
            ts=iso(self.clock()),
            run=run,
            from_state=run.state,
            to_state=run.state,
            trigger="submit",
            actor=actor,
            reason=f"data submitted under {key!r}",
            evidence={"key": key, "sha256": digest},
        )
        run.submitted = {**run.submitted, key: data}
        if run.status == "active":
            run.next_wake_at = self.clock()

    def rebase(self, run: RunRow, by: float) -> None:
        """The wall clock went back ``by`` seconds since the run was written: its wake time and
        wait start move back as much, so a poll or timeout is measured from the new clock."""
        logger().warning("clock went back: wake time re-based", run=run.id, seconds=round(by, 3))
        if run.next_wake_at is not None:
            run.next_wake_at -= by
        if run.wait_started_at is not None:
            run.wait_started_at -= by

    # ------------------------------------------------------------------ shared pieces

    def _gate(self, tx: Tx, run: RunRow, gate: str, *, actor: str, on_approve: str | None) -> None:
        self.hold(tx, run, "paused", gate, trigger="gate", actor=actor, on_approve=on_approve)

    @staticmethod
    def _unhold(run: RunRow) -> None:
        if run.held_from is not None:
            run.state, run.held_from = run.held_from, None

    @staticmethod
    def _fresh_attempts(run: RunRow) -> None:
        run.attempt = 1
        run.waiting_reason = ""
        run.waiting_kind = ""
        run.wait_started_at = None
