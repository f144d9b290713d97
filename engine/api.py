"""The contract between the engine and the workflows that run on it.

The engine knows nothing about certificates or CUCM. A workflow package gives it:

* YAML definitions (see ``workflows/README.md`` for the schema), and
* a :class:`Registry` of named *steps*, *guards* and *validators* that those definitions reference.

A **step** is run when a run is in the state that names it. It is re-entrant: after a crash, a
retry or a durable wait the engine calls :meth:`Step.execute` again from the top. Every side effect
goes through :meth:`StepContext.effect`, which journals an *intent* before the action and the
*output* after it, keyed by ``(run, state, visit, node, name)``; on re-entry a finished effect
returns its stored output without acting again, and an effect whose intent was recorded but whose
output was not is first *reconciled* (the step reads the outside world to learn whether the action
happened) before anything is redone.

A **guard** is a pure function of a :class:`GuardInput` that returns ``(allowed, reason)``. The
reason is shown to operators, so it must say what is being waited for.

A **validator** checks data an operator submits to a waiting run (``submit``) before anything is
recorded; it raises :class:`SubmitRejected` with a message that names the problem and the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, TypeAlias, TypeVar

JSON: TypeAlias = Any
"""A value that round-trips through ``json.dumps``/``json.loads``."""


# --------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class Outcome:
    """What a step asks the engine to do next.

    * ``advance``: fire ``trigger`` (guards are evaluated first); ``output`` is merged into the
      run's context and ``evidence`` goes into the audit event, all in the same transaction as
      the state change.
    * ``wait``: stay in this state and call the step again after ``wake_in`` seconds (before the
      engine's time scale is applied); ``reason`` is what ``status`` shows. The state's declared
      ``wait.timeout`` bounds the total time spent waiting: at the deadline (or, after the daemon
      was stopped, as soon as it is back) the step runs once more, and only a step that would
      still wait (or fail and be retried) times out.
    * ``gate``: hold the run for an operator (``status`` shows ``paused`` with ``reason``).
      ``approve`` then fires ``on_approve``, or re-runs the step when ``on_approve`` is ``None``.
    * ``fail``: the step failed. A retryable failure is retried per the step's retry policy; the
      last attempt, or a non-retryable failure, moves the run to ``failed`` carrying ``reason``.
    """

    kind: Literal["advance", "wait", "gate", "fail"]
    trigger: str | None = None
    output: Mapping[str, JSON] = field(default_factory=dict)
    evidence: Mapping[str, JSON] = field(default_factory=dict)
    reason: str = ""
    wake_in: float | None = None
    on_approve: str | None = None
    retryable: bool = True

    @classmethod
    def advance(
        cls,
        trigger: str = "next",
        *,
        output: Mapping[str, JSON] | None = None,
        evidence: Mapping[str, JSON] | None = None,
        reason: str = "",
    ) -> Outcome:
        return cls("advance", trigger, dict(output or {}), dict(evidence or {}), reason)

    @classmethod
    def wait(cls, seconds: float | None, reason: str, *, output: Mapping[str, JSON] | None = None) -> Outcome:
        """``seconds=None`` uses the state's declared poll interval."""
        return cls("wait", None, dict(output or {}), {}, reason, wake_in=seconds)

    @classmethod
    def gate(
        cls,
        reason: str,
        *,
        on_approve: str | None = "next",
        output: Mapping[str, JSON] | None = None,
        evidence: Mapping[str, JSON] | None = None,
    ) -> Outcome:
        return cls("gate", None, dict(output or {}), dict(evidence or {}), reason, on_approve=on_approve)

    @classmethod
    def fail(cls, reason: str, *, retryable: bool = True) -> Outcome:
        return cls("fail", None, {}, {}, reason, retryable=retryable)


# --------------------------------------------------------------------------- errors


class StepError(Exception):
    """Raised by a step (or an adapter under it). ``retryable`` decides whether the step's retry
    policy applies; any other exception escaping a step counts as retryable."""

    retryable: bool = True

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class TransientError(StepError):
    retryable = True


class PermanentError(StepError):
    retryable = False


class SubmitRejected(Exception):
    """Raised by a validator: the submitted data is refused and nothing is recorded."""


# --------------------------------------------------------------------------- step side


class Effect(Protocol):
    """A side effect's journal entry, as handed to a reconcile hook."""

    node: str
    name: str
    intent: Mapping[str, JSON]
    recorded_at: datetime


T = TypeVar("T")


class StepContext(Protocol):
    """Everything a step may see and do. Thread-safe: a step may call :meth:`effect` from worker
    threads to act on several nodes at once."""

    run_id: str
    definition: str
    """The definition's name (for the certificate workflows: the certificate type)."""
    scope: str
    """What exclusion groups are scoped to (for the certificate workflows: the cluster name)."""
    state: str
    visit: int
    """How many times the run has entered this state (1 on the first entry)."""
    attempt: int
    """The retry attempt within this visit, from 1."""
    params: Mapping[str, JSON]
    """The definition's ``params`` block (after ``extends`` merging)."""
    context: Mapping[str, JSON]
    """The run's accumulated context: its start parameters plus every step output so far."""
    submitted: Mapping[str, JSON]
    """Data attached with ``submit`` while the run waited in this state, by key."""
    deps: Any
    """Whatever the application's ``deps_factory`` returned for this run (adapter ports)."""

    def now(self) -> datetime:
        """The injected clock (UTC, timezone-aware)."""
        ...

    def effect(
        self,
        node: str,
        name: str,
        action: Callable[[], JSON],
        *,
        intent: Mapping[str, JSON] | None = None,
        reconcile: Callable[[Effect], JSON | None] | None = None,
    ) -> JSON:
        """Run ``action`` at most once per ``(run, state, visit, node, name)``.

        Journals ``intent`` (committed) before calling ``action`` and its JSON result (committed)
        after. If a result is already journaled, returns it without calling anything. If only the
        intent is journaled (the process died in between), calls ``reconcile(effect)`` first: a
        non-``None`` return is journaled as the output and returned; ``None`` means "it did not
        happen", and ``action`` runs. Without a ``reconcile`` hook the action is redone, so an
        effect without one must be idempotent by itself.
        """
        ...

    def progress(self, node: str, text: str) -> None:
        """Record per-node progress shown by ``status`` (not audited, not journaled)."""
        ...


class Step(Protocol):
    def __call__(self, ctx: StepContext) -> Outcome: ...


# --------------------------------------------------------------------------- guards


@dataclass(frozen=True)
class PeerRun:
    """Another non-final run in the same scope."""

    run_id: str
    definition: str
    state: str


@dataclass(frozen=True)
class ScopeHold:
    """An operator's hold on a scope (``hold SCOPE --reason``), standing until ``release``. The
    engine only records it; the application's guards decide what it stops."""

    scope: str
    reason: str
    actor: str
    since: datetime


@dataclass(frozen=True)
class GuardInput:
    run_id: str
    definition: str
    scope: str
    source: str
    dest: str
    trigger: str
    params: Mapping[str, JSON]
    context: Mapping[str, JSON]
    """The run's context with the pending outcome's ``output`` already merged in."""
    peers: Sequence[PeerRun]
    now: datetime
    hold: ScopeHold | None = None
    """The hold on the run's scope, if an operator put one."""


GuardResult: TypeAlias = tuple[bool, str]
Guard: TypeAlias = Callable[[GuardInput], GuardResult]
Validator: TypeAlias = Callable[[Mapping[str, JSON], str, JSON], JSON]
"""``validator(run_context, key, data) -> data to record`` (possibly normalised); raises
:class:`SubmitRejected`."""


# --------------------------------------------------------------------------- registry


F = TypeVar("F", bound=Callable[..., Any])


class Registry:
    """Named steps, guards and validators, referenced by name from the YAML definitions."""

    def __init__(self) -> None:
        self.steps: dict[str, Step] = {}
        self.guards: dict[str, Guard] = {}
        self.validators: dict[str, Validator] = {}

    def step(self, name: str) -> Callable[[F], F]:
        return self._add(self.steps, "step", name)

    def guard(self, name: str) -> Callable[[F], F]:
        return self._add(self.guards, "guard", name)

    def validator(self, name: str) -> Callable[[F], F]:
        return self._add(self.validators, "validator", name)

    @staticmethod
    def _add(table: dict[str, Any], kind: str, name: str) -> Callable[[F], F]:
        def register(fn: F) -> F:
            if name in table:
                raise ValueError(f"{kind} {name!r} is registered twice")
            table[name] = fn
            return fn

        return register
