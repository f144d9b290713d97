"""Test helpers shipped with the engine (as ``structlog.testing`` ships with structlog).

:class:`StepContextDouble` is an :class:`engine.api.StepContext` held in memory, so a step runs in
a unit test without a store, a runner or a definition file. Its journal keeps the engine's rules:
an effect with an output returns it without acting; an effect with an intent and no output is
reconciled first; an action that raises leaves its intent without an output, as a crash would.
A test can seed the journal (:meth:`~StepContextDouble.record_intent`,
:meth:`~StepContextDouble.record_output`) to put the step where a crash would have left it, and
read it back afterwards (:meth:`~StepContextDouble.entry`, :attr:`~StepContextDouble.acted`).

    ctx = StepContextDouble(state="csr_generated", params={"unit": "tomcat"}, deps=deps)
    ctx.record_intent("cucm-pub", "generate_csr", {"unit": "tomcat"})
    outcome = ctx.apply(step(ctx))
    assert ctx.acted == []  # reconciled, not redone
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.api import JSON, Effect, Outcome, StepContext


@dataclass
class JournalEntry:
    """One effect in the double's journal; ``output`` is ``None`` while only the intent is recorded."""

    node: str
    name: str
    intent: Mapping[str, JSON]
    recorded_at: datetime
    output: JSON = None
    completed: bool = False
    reconciled: bool = False
    """Whether the output came from the step's reconcile hook rather than from its action."""


@dataclass
class StepContextDouble:
    """An in-memory :class:`engine.api.StepContext`; see the module docstring.

    ``clock`` gives :meth:`now` (a fixed instant by default, so outputs are reproducible).
    ``progress_log`` keeps every :meth:`progress` line in order, ``acted`` every ``(node, name)``
    whose action ran, ``reconciled`` every one whose reconcile hook ran (whatever it returned).
    """

    run_id: str = "run-1"
    definition: str = "test"
    scope: str = "test"
    state: str = "state"
    visit: int = 1
    attempt: int = 1
    params: Mapping[str, JSON] = field(default_factory=dict)
    context: Mapping[str, JSON] = field(default_factory=dict)
    submitted: Mapping[str, JSON] = field(default_factory=dict)
    deps: Any = None
    clock: Callable[[], datetime] = field(default_factory=lambda: fixed_clock)
    journal: dict[tuple[str, int, str, str], JournalEntry] = field(default_factory=dict)
    progress_log: list[tuple[str, str]] = field(default_factory=list)
    acted: list[tuple[str, str]] = field(default_factory=list)
    reconciled: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def now(self) -> datetime:
        return self.clock()

    def effect(
        self,
        node: str,
        name: str,
        action: Callable[[], JSON],
        *,
        intent: Mapping[str, JSON] | None = None,
        reconcile: Callable[[Effect], JSON | None] | None = None,
    ) -> JSON:
        key = (self.state, self.visit, node, name)
        with self._lock:
            entry = self.journal.get(key)
        if entry is not None and entry.completed:
            return entry.output
        if entry is not None:
            if reconcile is not None:
                with self._lock:
                    self.reconciled.append((node, name))
                found = reconcile(entry)
                if found is not None:
                    self._complete(entry, found, reconciled=True)
                    return found
        else:
            entry = JournalEntry(node, name, _round_trip(dict(intent or {})), self.now())
            with self._lock:
                self.journal[key] = entry
        with self._lock:
            self.acted.append((node, name))
        output = action()
        self._complete(entry, output, reconciled=False)
        return output

    def progress(self, node: str, text: str) -> None:
        with self._lock:
            self.progress_log.append((node, text))

    # ------------------------------------------------------------------ for tests

    def record_intent(self, node: str, name: str, intent: Mapping[str, JSON] | None = None) -> JournalEntry:
        """Journal an intent without an output in the current state and visit, as a process that
        died between recording the intent and recording the result would have left it."""
        entry = JournalEntry(node, name, _round_trip(dict(intent or {})), self.now())
        with self._lock:
            self.journal[(self.state, self.visit, node, name)] = entry
        return entry

    def record_output(
        self, node: str, name: str, output: JSON, intent: Mapping[str, JSON] | None = None
    ) -> JournalEntry:
        """Journal a finished effect: the step will get ``output`` back without acting."""
        entry = self.record_intent(node, name, intent)
        self._complete(entry, output, reconciled=False)
        return entry

    def entry(self, node: str, name: str) -> JournalEntry | None:
        """The journal entry of ``(node, name)`` in the current state and visit, if any."""
        with self._lock:
            return self.journal.get((self.state, self.visit, node, name))

    def apply(self, outcome: Outcome) -> Outcome:
        """Merge the outcome's output into :attr:`context`, as the engine does when it commits a
        tick; return the outcome, so a test can write ``outcome = ctx.apply(step(ctx))``."""
        self.context = {**self.context, **_round_trip(dict(outcome.output))}
        return outcome

    def _complete(self, entry: JournalEntry, output: JSON, *, reconciled: bool) -> None:
        stored = _round_trip(output)
        with self._lock:
            entry.output, entry.completed, entry.reconciled = stored, True, reconciled


def fixed_clock() -> datetime:
    """The double's default clock: one instant, so a step's outputs are the same on every run."""
    return datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _round_trip(value: JSON) -> JSON:
    # The engine keeps intents, outputs and the context as JSON: a value that does not survive
    # json.dumps would fail there, so it fails here too, and a stored value reads back as JSON.
    return json.loads(json.dumps(value))


def _conforms(ctx: StepContextDouble) -> StepContext:
    # mypy checks here that the double structurally implements the step context.
    return ctx
