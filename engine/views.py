"""Read-only views of runs and events, and the feed that hands committed events to an observer.

What the command line, the tests and an application's ``deps_factory`` see of a run: a frozen
:class:`RunView` with datetimes, never the stored row the engine goes on changing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from engine.api import JSON
from engine.logging import log as logger
from engine.store import EventRow, RunRow

EventView = EventRow


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
    """UTC timestamp with microseconds, e.g. ``2026-11-26T10:00:00.000000Z`` (fixed width, so it
    sorts as text). A number is seconds since the epoch; a naive datetime is taken as UTC."""
    if isinstance(value, int | float):
        moment = datetime.fromtimestamp(value, UTC)
    else:
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
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


class EventFeed:
    """Logs each committed event and hands it to the observer the engine is driven with, then to
    every subscriber (:meth:`subscribe`).

    Subscribers are called on the thread that committed the event, after the commit: they must
    return at once (hand the event to a queue) and an exception they raise is logged, never
    propagated, so an observer can neither undo nor stall a run. They see only this process's
    commits; one that must not miss an event (another process's command, a crash before it ran)
    reads the store from its own durable cursor (``Store.events(after_seq=...)``) and treats the
    feed as a prompt to look.
    """

    def __init__(self) -> None:
        self.on_event: Callable[[EventView], None] | None = None
        self._subscribers: list[Callable[[EventView], None]] = []

    def subscribe(self, observer: Callable[[EventView], None]) -> Callable[[], None]:
        """Add ``observer``; returns the function that removes it."""
        self._subscribers = [*self._subscribers, observer]

        def unsubscribe() -> None:
            self._subscribers = [s for s in self._subscribers if s is not observer]

        return unsubscribe

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
            for observer in self._subscribers:
                try:
                    observer(event)
                except Exception as exc:  # an observer's bug must not fail the run that was committed
                    logger().error(
                        "event observer failed", run=event.run, seq=event.seq, error=type(exc).__name__
                    )
