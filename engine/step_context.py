"""The :class:`engine.api.StepContext` a step is called with, and its effect journal.

Each side effect a step declares through :meth:`StepCtx.effect` is journaled as an intent before it
runs and as an output after: once per visit of the state, and reconciled (not blindly repeated)
when the process died between the two.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine.api import JSON, Effect
from engine.crashpoints import crashpoint
from engine.definition import Definition
from engine.store import RunRow, Store
from engine.views import RunView, view

_UNSET: Any = object()


@dataclass
class _EffectView:
    node: str
    name: str
    intent: Mapping[str, JSON]
    recorded_at: datetime


class StepCtx:
    """The :class:`engine.api.StepContext` handed to a step."""

    def __init__(
        self,
        store: Store,
        run: RunRow,
        defn: Definition,
        *,
        clock: Callable[[], float],
        deps_factory: Callable[[RunView], Any],
    ) -> None:
        self._store = store
        self._clock = clock
        self._deps_factory = deps_factory
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
            self._deps = self._deps_factory(view(self._run, {}))
        return self._deps

    @deps.setter
    def deps(self, value: Any) -> None:
        self._deps = value

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

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
                    self._store.record_output(*key, found, self._clock())
                    return found
        else:
            crashpoint("effect.before_intent", (self.definition, self.state, node, name))
            self._store.record_intent(*key, dict(intent or {}), self._clock())
        crashpoint("effect.after_intent", (self.definition, self.state, node, name))
        output = action()
        crashpoint("effect.after_action", (self.definition, self.state, node, name))
        self._store.record_output(*key, output, self._clock())
        crashpoint("effect.after_output", (self.definition, self.state, node, name))
        return output

    def progress(self, node: str, text: str) -> None:
        self._store.set_progress(self.run_id, node, text, self._clock())
