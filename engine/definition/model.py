"""The typed model of a workflow definition: frozen dataclasses, and the error a bad file raises."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from engine.api import JSON
from engine.schema import SchemaError

HELD_STATES = ("paused", "failed")
"""Holding states every definition has implicitly."""
ABORTED = "aborted"
"""The final state ``abort`` moves a run to; implicit when a definition does not declare it."""
DEFAULT_POLL = 60.0


class DefinitionError(SchemaError):
    """A definition file is invalid. ``file`` and ``line`` locate the problem."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    initial: float = 1.0
    backoff: float = 2.0
    cap: float = 120.0
    jitter: float = 0.2

    def delay(self, attempt: int, rand: float) -> float:
        """Seconds to wait after failed ``attempt`` (1-based); ``rand`` is uniform in [0, 1)."""
        base = min(self.cap, self.initial * self.backoff ** (attempt - 1))
        return max(0.0, base * (1.0 + self.jitter * (2.0 * rand - 1.0)))


@dataclass(frozen=True)
class WaitSpec:
    poll: float = DEFAULT_POLL
    timeout: float | None = None
    on_timeout: str = "paused"


@dataclass(frozen=True)
class StateDef:
    name: str
    line: int
    step: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    wait: WaitSpec | None = None
    gate: str | None = None
    submit_validator: str | None = None
    final: bool = False

    @property
    def waits(self) -> bool:
        return self.wait is not None or self.gate is not None

    @property
    def poll(self) -> float:
        return self.wait.poll if self.wait else DEFAULT_POLL


@dataclass(frozen=True)
class TransitionDef:
    trigger: str
    source: str
    dest: str
    guards: tuple[str, ...] = ()
    line: int = 0


@dataclass(frozen=True)
class ExclusionDef:
    group: str
    from_state: str
    until: str
    section: frozenset[str] = frozenset()
    """States in which a run holds the lease: reachable from ``from_state`` without passing
    ``until`` or a final state."""


@dataclass(frozen=True)
class Definition:
    name: str
    file: str
    initial: str
    final: tuple[str, ...]
    states: Mapping[str, StateDef]
    transitions: tuple[TransitionDef, ...]
    params: Mapping[str, JSON] = field(default_factory=lambda: MappingProxyType({}))
    exclusion: tuple[ExclusionDef, ...] = ()
    skip: tuple[str, ...] = ()
    abstract: bool = False

    def outgoing(self, source: str) -> tuple[TransitionDef, ...]:
        return tuple(t for t in self.transitions if t.source == source)

    def find(self, source: str, trigger: str) -> tuple[TransitionDef, ...]:
        index: dict[tuple[str, str], tuple[TransitionDef, ...]] | None = self.__dict__.get("_index")
        if index is None:
            built: dict[tuple[str, str], list[TransitionDef]] = {}
            for t in self.transitions:
                built.setdefault((t.source, t.trigger), []).append(t)
            index = {k: tuple(v) for k, v in built.items()}
            object.__setattr__(self, "_index", index)  # a cache on a frozen dataclass
        return index.get((source, trigger), ())

    def is_final(self, state: str) -> bool:
        return state in self.final
