"""Scheduling: which run is worked when.

Waits and retries are rows (``next_wake_at``); in memory the scheduler keeps only a heap of
``(next_wake_at, run_id)``. It loads that heap at resume, hands due runs to a small thread pool
(one tick at a time per run), notices other processes' commands through ``PRAGMA data_version``,
and knows when nothing can move without an operator.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

from engine.definition import Definition
from engine.logging import get_logger, redact_text
from engine.logging import log as logger
from engine.store import Store, StoreFatal
from engine.tick import CLOCK_SLACK, Ticker

CHAIN_LIMIT = 100
"""Ticks a worker may chain on one run that is due again at once before handing it back."""


class Scheduler:
    """The wake heap and the loop that works due runs."""

    def __init__(
        self,
        store: Store,
        definitions: Mapping[str, Definition],
        ticker: Ticker,
        *,
        clock: Callable[[], float],
        workers: int,
    ) -> None:
        self.store = store
        self.definitions = definitions
        self.ticker = ticker
        self.clock = clock
        self.workers = workers
        self._heap: list[tuple[float, str]] = []
        self._wake: dict[str, float] = {}
        self._inflight: set[str] = set()
        # Runs an operator command touched while a worker had them: the worker's own result may
        # predate the command, so it re-reads the row when it lets go.
        self._touched: set[str] = set()
        self._cond = threading.Condition()
        self._fatal: BaseException | None = None
        self._stopping = threading.Event()
        self.heartbeat = time.monotonic()
        """When the loop last went round (monotonic): a watchdog's proof that it is not stuck."""
        self._seen: tuple[int, int] | None = None
        """(data_version, max rev) read just before the last :meth:`load`."""
        store.on_woken(self._woken)

    def _woken(self, run_ids: list[str]) -> None:
        """A commit made these runs due now (a lease they wait for was released): work them now
        rather than at their next poll. One in a worker's hands is re-read when it lets go."""
        now = self.clock()
        for run_id in run_ids:
            self.schedule(run_id, now)

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
        """Work ``run_id`` at ``at`` (``None``: not by a timer), e.g. after a command moved it."""
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
                self.heartbeat = time.monotonic()
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
        ahead than they were meant to. Every scheduled run is looked at once; the tick
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
            at = self.ticker.work(run_id)
            # A run that is due again at once keeps its worker: handing it back to the scheduler
            # would cost a thread switch per transition.
            for _ in range(CHAIN_LIMIT):
                if at is None or at > self.clock() or self._stopping.is_set():
                    break
                at = self.ticker.work(run_id, self.ticker.committed(run_id))
        except BaseException as exc:
            get_logger(run=run_id).error("engine failure", error=redact_text(repr(exc)))
            with self._cond:
                self._fatal = exc if isinstance(exc, StoreFatal) else StoreFatal(f"engine failure: {exc!r}")
        finally:
            self.ticker.committed(run_id)
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
