"""The state machine: one shared ``transitions`` machine per definition, runs attached only while
they are being worked on.

Each machine drives one stand-in model. A transition attempt sets the model's state to the run's
stored state and fires the trigger, under the machine's lock; afterwards the model keeps nothing of
the run, so ten thousand idle runs cost nothing here (and no model is bound and unbound per
transition, which cost more than the transition itself).
Named guards (pure functions from the registry) and exclusion leases are evaluated as the
transition's condition, inside the store transaction that will record the result, so the lease is
taken atomically with the transition that enters its section.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from transitions import Machine

from engine.api import JSON, GuardInput, PeerRun, Registry
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


class _LeanMachine(Machine):
    """A machine that skips binding ``is_<state>`` helpers and model-named state callbacks on each
    ``add_model``: runs never use them, and binding them costs more than the transition itself."""

    def _add_model_to_state(self, state: Any, model: Any) -> None:
        return None


class _Model:
    """The stand-in a machine drives; ``transitions`` attaches trigger methods to it. One per
    definition, added once: for each attempt (under the machine's lock) it takes the run's state
    and the attempt's data, so no run stays attached to a machine and no model is bound per
    transition."""

    trigger: Callable[[str], bool]

    def __init__(self) -> None:
        self.attempt: _Attempt | None = None
        self.state = ""


@dataclass
class _Attempt:
    tx: Tx
    run: RunRow
    context: Mapping[str, JSON]
    now: float
    refusals: list[Refused]
    fired: str | None = None


class Runtime:
    """Shared machines and the guard/lease logic around them."""

    def __init__(self, definitions: Mapping[str, Definition], registry: Registry) -> None:
        self.definitions = definitions
        self.registry = registry
        self._machines: dict[
            str, tuple[Any, threading.Lock, dict[tuple[str, str, str], tuple[str, ...]], _Model]
        ] = {}
        for name, defn in definitions.items():
            guards: dict[tuple[str, str, str], tuple[str, ...]] = {}
            specs = []
            for t in defn.transitions:
                guards[(t.source, t.trigger, t.dest)] = t.guards
                specs.append(
                    {"trigger": t.trigger, "source": t.source, "dest": t.dest, "conditions": [self._check]}
                )
            model = _Model()
            machine = _LeanMachine(
                model=model,
                states=list(defn.states),
                transitions=specs,
                initial=defn.initial,
                auto_transitions=False,
                queued=True,
                send_event=True,
                after_state_change=self._after,
                ignore_invalid_triggers=True,
            )
            self._machines[name] = (machine, threading.Lock(), guards, model)

    def fire(
        self, tx: Tx, run: RunRow, trigger: str, context: Mapping[str, JSON], now: float
    ) -> Fired | Refused | NoTransition:
        """Try ``trigger`` from the run's state. Nothing is written: the caller records the result."""
        defn = self.definitions[run.definition]
        if not defn.find(run.state, trigger):
            return NoTransition(trigger, run.state)
        _, lock, _, model = self._machines[run.definition]
        attempt = _Attempt(tx, run, context, now, [])
        with lock:
            model.attempt = attempt
            model.state = run.state
            try:
                model.trigger(trigger)
            finally:
                model.attempt = None
        if attempt.fired is not None:
            return Fired(attempt.fired)
        if attempt.refusals:
            return attempt.refusals[0]
        return Refused("no transition allowed", "guard")

    def _after(self, event: Any) -> None:
        event.model.attempt.fired = event.transition.dest

    def _check(self, event: Any) -> bool:
        attempt: _Attempt = event.model.attempt
        run = attempt.run
        source, dest, trigger = event.transition.source, event.transition.dest, event.event.name
        guard_table = self._machines[run.definition][2]
        blocked = (
            self.lease_block(attempt.tx, run, dest) if self.definitions[run.definition].exclusion else None
        )
        if blocked:
            attempt.refusals.append(Refused(blocked, "lease"))
            return False
        names = guard_table.get((source, trigger, dest), ())
        if not names:
            return True
        peers = [PeerRun(p[0], p[1], p[2]) for p in attempt.tx.peers(run.scope, run.id)]
        defn = self.definitions[run.definition]
        data = GuardInput(
            run_id=run.id,
            definition=run.definition,
            scope=run.scope,
            source=source,
            dest=dest,
            trigger=trigger,
            params=defn.params,
            context=attempt.context,
            peers=peers,
            now=datetime.fromtimestamp(attempt.now, UTC),
        )
        for name in names:
            allowed, reason = self.registry.guards[name](data)
            if not allowed:
                attempt.refusals.append(Refused(reason or f"guard {name} refused", "guard"))
                return False
        return True

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
                tx.release_lease(excl.group, run.scope, run.id)

    def release_all(self, tx: Tx, run: RunRow) -> None:
        for excl in self.definitions[run.definition].exclusion:
            tx.release_lease(excl.group, run.scope, run.id)
