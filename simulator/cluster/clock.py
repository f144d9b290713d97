"""Scaled time and the timed effects due on it.

Delays are CUCM delays divided by ``time_scale``. A timed effect (a service reaching Started, say) is
an event in a heap; a background thread applies what is due, and every reader applies it first
too, so no reader sees a stale state.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable


class Clock:
    """The cluster's time. ``lock`` is the cluster's lock: events run under it."""

    def __init__(self, time_scale: float, lock: threading.RLock) -> None:
        self.time_scale = float(time_scale)
        self.lock = lock
        # CUCM's own clock runs time_scale times faster than ours: RisPort's TimeStamp reads it,
        # so two registrations a scaled minute apart never share a timestamp.
        self._origin = (time.time(), time.monotonic())
        self._events: list[tuple[float, int, Callable[[], object]]] = []
        self._event_time: float | None = None
        self._seq = itertools.count()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sim-clock", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            with self.lock:
                self.advance()
                wait = (self._events[0][0] - time.monotonic()) if self._events else 0.2
            self._stop.wait(min(max(wait, 0.005), 0.2))

    def advance(self) -> None:
        """Apply every timed effect that is due."""
        with self.lock:
            now = time.monotonic()
            while self._events and self._events[0][0] <= now:
                due, _, action = heapq.heappop(self._events)
                # Effects are stamped with the time they were due, not the time this thread got to
                # them, so a busy machine does not change what phones see.
                self._event_time = due
                try:
                    action()
                finally:
                    self._event_time = None

    def at(self, delay: float, action: Callable[[], object]) -> None:
        """Run ``action`` ``delay`` seconds (already scaled) from now."""
        heapq.heappush(self._events, (self.now() + delay, next(self._seq), action))

    def now(self) -> float:
        """``time.monotonic()``, or inside an event the moment it was due."""
        return self._event_time if self._event_time is not None else time.monotonic()

    def wall(self) -> float:
        """``time.time()`` at :meth:`now`."""
        return time.time() - (time.monotonic() - self.now())

    def cucm_time(self, monotonic: float) -> int:
        """CUCM's wall clock (epoch seconds, scaled) at a moment of ``time.monotonic()``."""
        wall, mono = self._origin
        return int(wall + (monotonic - mono) * self.time_scale)

    def cucm_wall(self, wall: float) -> int:
        """CUCM's wall clock (epoch seconds, scaled) at a moment of ``time.time()``. Start times are
        read on it: a restart a scaled minute after the last one never shows the same second."""
        origin, _ = self._origin
        return int(origin + (wall - origin) * self.time_scale)

    def scaled(self, seconds: float) -> float:
        return seconds / self.time_scale
