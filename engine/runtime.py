"""The state machine: one shared ``transitions`` machine per definition, runs attached only while
they are being worked on.

Each machine is built from its definition's states and transitions through the library's public
API (``Machine(states=...)``, ``add_transition(..., conditions=...)``) and drives one stand-in
model. A transition attempt sets the model's state to the run's stored state and fires the trigger,
under the machine's lock; afterwards the model keeps nothing of the run, so ten thousand idle runs
cost nothing here (and no model is bound and unbound per transition, which cost more than the
transition itself).

A transition's conditions are, in order, the exclusion-lease check (when the definition declares
sections) and then its named guards (pure functions from the registry), each its own condition, so
the first that refuses stops the attempt and its reason is what the run waits on. They run inside
the store transaction that will record the result, so a lease is taken atomically with the
transition that enters its section.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from transitions import Machine

from engine.api import JSON, GuardInput, PeerRun, Registry, ScopeHold
from engine.definition import Definition, ExclusionDef
from engine.store import RunRow, Tx


@dataclass(frozen=True)
class Fired:
    dest: str


@dataclass(frozen=True)
class Refused:
    reason: str
    kind: str
    """``guard`` or ``lease``."""


@dataclass(frozen=True)
class NoTransition:
    trigger: str
    source: str


@dataclass
class _Attempt:
    tx: Tx
    run: RunRow
    context: Mapping[str, JSON]
    now: float
    refusal: Refused | None = None
    """The first condition that refused, whose reason the run then waits on."""
    peers: list[PeerRun] | None = None
    hold: ScopeHold | None = None
    hold_read: bool = False

    def refuse(self, refusal: Refused) -> None:
        if self.refusal is None:
            self.refusal = refusal


class _Model:
    """The stand-in a machine drives; ``transitions`` attaches trigger methods to it. One per
    definition, added once: for each attempt (under the machine's lock) it takes the run's state
    and the attempt's data, so no run stays attached to a machine and no model is bound per
    transition."""

    trigger: Callable[[str], bool]

    def __init__(self) -> None:
        self.attempt: _Attempt | None = None
        self.state = ""


class _Shared:
    """One definition's machine, its model and the lock an attempt holds them by."""

    def __init__(self, machine: Machine, model: _Model) -> None:
        self.machine = machine
        self.model = model
        self.lock = threading.Lock()


class Runtime:
    """Shared machines and the guard/lease logic around them."""

    def __init__(self, definitions: Mapping[str, Definition], registry: Registry) -> None:
        self.definitions = definitions
        self.registry = registry
        self._shared: dict[str, _Shared] = {}
        for name, defn in definitions.items():
            model = _Model()
            machine = Machine(
                model=model,
                states=list(defn.states),
                initial=defn.initial,
                auto_transitions=False,
                send_event=True,
                ignore_invalid_triggers=True,
            )
            for t in defn.transitions:
                conditions: list[str | Callable[..., bool | None]] = []
                if defn.exclusion:
                    conditions.append(self._lease_free)
                conditions.extend(self._guard(guard) for guard in t.guards)
                machine.add_transition(t.trigger, t.source, t.dest, conditions=conditions or None)
            self._shared[name] = _Shared(machine, model)

    def fire(
        self, tx: Tx, run: RunRow, trigger: str, context: Mapping[str, JSON], now: float
    ) -> Fired | Refused | NoTransition:
        """Try ``trigger`` from the run's state. Nothing is written: the caller records the result."""
        defn = self.definitions[run.definition]
        if not defn.find(run.state, trigger):
            return NoTransition(trigger, run.state)
        shared = self._shared[run.definition]
        model = shared.model
        attempt = _Attempt(tx, run, context, now)
        with shared.lock:
            model.attempt = attempt
            model.state = run.state
            try:
                fired = model.trigger(trigger)
                dest = model.state
            finally:
                model.attempt = None
        if fired:
            return Fired(dest)
        return attempt.refusal or Refused("no transition allowed", "guard")

    def _lease_free(self, event: Any) -> bool:
        attempt: _Attempt = event.model.attempt
        blocked = self.lease_block(attempt.tx, attempt.run, event.transition.dest)
        if blocked:
            attempt.refuse(Refused(blocked, "lease"))
            return False
        return True

    def _guard(self, name: str) -> Callable[[Any], bool]:
        """The condition that runs the guard registered as ``name`` on the attempt in hand."""

        def condition(event: Any) -> bool:
            attempt: _Attempt = event.model.attempt
            run = attempt.run
            if attempt.peers is None:  # a query: once per attempt, however many guards run
                attempt.peers = [PeerRun(p[0], p[1], p[2]) for p in attempt.tx.peers(run.scope, run.id)]
            if not attempt.hold_read:
                attempt.hold_read = True
                row = attempt.tx.get_hold(run.scope)
                if row is not None:
                    since = datetime.fromtimestamp(row.since, UTC)
                    attempt.hold = ScopeHold(row.scope, row.reason, row.actor, since)
            data = GuardInput(
                run_id=run.id,
                definition=run.definition,
                scope=run.scope,
                source=event.transition.source,
                dest=event.transition.dest,
                trigger=event.event.name,
                params=self.definitions[run.definition].params,
                context=attempt.context,
                peers=attempt.peers,
                now=datetime.fromtimestamp(attempt.now, UTC),
                hold=attempt.hold,
            )
            allowed, reason = self.registry.guards[name](data)
            if not allowed:
                attempt.refuse(Refused(reason or f"guard {name} refused", "guard"))
            return allowed

        return condition

    # ------------------------------------------------------------------ exclusion leases

    @staticmethod
    def _enters(excl: ExclusionDef, source: str, dest: str) -> bool:
        """Whether moving ``source -> dest`` enters the section (and so needs its lease). Only
        the ``from`` state is an entry; a state the section loops back to keeps a lease already
        held but does not take one."""
        return dest == excl.from_state and source != dest

    def lease_block(self, tx: Tx, run: RunRow, dest: str) -> str | None:
        """Why ``run`` cannot move into ``dest`` (a lease another run holds), or ``None``."""
        defn = self.definitions[run.definition]
        source = run.held_from or run.state
        for excl in defn.exclusion:
            if not self._enters(excl, source, dest):
                continue
            holder = tx.lease_holder(excl.group, run.scope)
            if holder is None or holder == run.id:
                continue
            other = tx.get_run(holder)
            where = (other.held_from or other.state) if other else "?"
            held = f", {other.state}" if other and other.held_from else ""
            what = other.definition if other else "?"
            return f"waiting for lease {excl.group} (held by run {holder}, {what} in {where}{held})"
        return None

    def move_leases(self, tx: Tx, run: RunRow, dest: str, now: float) -> None:
        """Take the leases whose section the move enters and release those it leaves. The caller
        has checked :meth:`lease_block` in the same transaction."""
        defn = self.definitions[run.definition]
        source = run.held_from or run.state
        for excl in defn.exclusion:
            holder = tx.lease_holder(excl.group, run.scope)
            inside = dest in excl.section and not defn.is_final(dest)
            if inside and holder is None and self._enters(excl, source, dest):
                tx.take_lease(excl.group, run.scope, run.id, now)
            elif not inside and holder == run.id:
                self._release(tx, excl.group, run, now)

    def release_all(self, tx: Tx, run: RunRow, now: float) -> None:
        for excl in self.definitions[run.definition].exclusion:
            self._release(tx, excl.group, run, now)

    def _release(self, tx: Tx, group: str, run: RunRow, now: float) -> None:
        """Release ``run``'s lease on ``group`` and make the runs waiting for it due now, in the
        same transaction: a waiter learns of the release when it happens, not at its next poll."""
        if not tx.release_lease(group, run.scope, run.id):
            return
        waiters = [
            run_id
            for run_id, definition in tx.lease_waiters(run.scope, run.id)
            if (defn := self.definitions.get(definition)) and any(e.group == group for e in defn.exclusion)
        ]
        tx.wake(waiters, now)
