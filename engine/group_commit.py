"""Group commit: the one writer of ticks' decisions.

Ticks that finish while another tick's transaction is being written queue up, and the next writer
commits all of them in one transaction. Each decision is still applied atomically with its event
and is durable before the worker that made it goes on; under load that turns one fsync per
transition into one per batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.crashpoints import crashpoint
from engine.store import EventRow, RunRow, Store, Tx

Change = Callable[[Tx, RunRow], None]
"""A tick's decision: changes the run row in hand (and appends its events) inside the transaction."""


@dataclass
class Committed:
    """What became of one decision: ``run`` is the row as written, or ``None`` when an operator
    command changed the run after it was read (the command's decision stands)."""

    run: RunRow | None
    events: list[EventRow]


@dataclass
class _Pending:
    run: RunRow
    change: Change
    result: RunRow | None = None
    events: list[EventRow] = field(default_factory=list)
    error: BaseException | None = None
    done: bool = False


def _copy(run: RunRow) -> RunRow:
    # A shallow copy without copy.copy's protocol lookups: this runs once per transition.
    fresh = object.__new__(RunRow)
    fresh.__dict__.update(run.__dict__)
    return fresh


class GroupCommit:
    """Commits decisions about runs, each only if the run is unchanged since it was read."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock
        self._pending: list[_Pending] = []
        self._pending_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self.commits = 0
        """Transactions committed (a batch of decisions counts once)."""

    def commit(self, run: RunRow, change: Change) -> Committed:
        """Apply ``change`` to ``run`` and write it with its events, unless the stored run's
        revision moved since ``run`` was read. Returns once the transaction is durable."""
        item = _Pending(run, change)
        with self._pending_lock:
            self._pending.append(item)
        with self._commit_lock:
            if not item.done:
                with self._pending_lock:
                    batch, self._pending = self._pending, []
                self._write(batch)
        if item.error is not None:
            raise item.error
        return Committed(item.result, item.events)

    def _write(self, batch: list[_Pending]) -> None:
        try:
            with self.store.tx() as tx:
                for item in batch:
                    if tx.run_rev(item.run.id) != item.run.rev:
                        continue
                    # Unchanged since it was read, so the row in hand is the current one.
                    fresh = _copy(item.run)
                    first = len(tx.events)
                    item.change(tx, fresh)
                    fresh.updated_at = self.clock()
                    tx.update_run(fresh, stored_status=item.run.status)
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
