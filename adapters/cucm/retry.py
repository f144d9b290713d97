"""Bounded retries of transient CUCM failures, and the rate limiter RisPort70 needs.

Only :class:`~adapters.cucm.port.CucmUnreachable` (and its :class:`CucmThrottled` child) is retried:
a rejection, an authentication failure or a TLS/host-key problem will not heal by repeating, and
repeating a refused upload could only make CUCM's state harder to reason about. Never
:class:`~adapters.cucm.port.CucmOutcomeUnknown`: a request with effects that may have been carried
out is not sent again blindly (the callers raise it only for such requests; reads that lost their
answer stay plain :class:`CucmUnreachable` and are repeated).
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from adapters.cucm.port import CucmOutcomeUnknown, CucmThrottled, CucmUnreachable

T = TypeVar("T")

log = structlog.get_logger("adapters.cucm")

DEFAULT_THROTTLE_BACKOFF = 30.0


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried: ``attempts`` in all, exponential waits with jitter.

    ``throttle_backoff`` is the wait after RisPort70's rate-limit fault; ``None`` means half the
    rate-limit window (Cisco's guidance: ~30 s for CUCM's one-minute window).
    """

    attempts: int = 4
    initial: float = 0.5
    cap: float = 8.0
    jitter: float = 0.5
    throttle_backoff: float | None = None

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"retry attempts must be at least 1, got {self.attempts}")
        backoff = self.throttle_backoff
        if (
            self.initial < 0
            or self.cap < self.initial
            or self.jitter < 0
            or (backoff is not None and backoff < 0)
        ):
            raise ValueError(
                "retry waits must be non-negative with cap >= initial; "
                f"got initial={self.initial} cap={self.cap} jitter={self.jitter} "
                f"throttle_backoff={self.throttle_backoff}"
            )


def call_with_retry(policy: RetryPolicy, operation: str, node: str | None, fn: Callable[[], T]) -> T:
    """Run ``fn``, retrying :class:`CucmUnreachable` per ``policy`` (never
    :class:`CucmOutcomeUnknown`); re-raise the last error."""

    def wait(state: RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and isinstance(outcome.exception(), CucmThrottled):
            return (
                policy.throttle_backoff if policy.throttle_backoff is not None else DEFAULT_THROTTLE_BACKOFF
            )
        # Exponential with full-range jitter, computed here so tenacity 8 and 9 behave alike.
        base = policy.initial * 2.0 ** (state.attempt_number - 1)
        return float(min(policy.cap, base + random.uniform(0, policy.jitter)))

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        sleep = state.next_action.sleep if state.next_action is not None else 0.0
        # The message of our own errors never carries credentials, so it is safe to log.
        log.warning(
            "cucm.retry",
            operation=operation,
            node=node,
            attempt=state.attempt_number,
            of=policy.attempts,
            sleep=round(sleep, 3),
            error=type(error).__name__,
            reason=str(error),
        )

    retrying = Retrying(
        retry=retry_if_exception(retryable),
        stop=stop_after_attempt(policy.attempts),
        wait=wait,
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(fn)


def retryable(error: BaseException) -> bool:
    """Transient and safe to repeat: unreachable, unless a request with effects may have landed."""
    return isinstance(error, CucmUnreachable) and not isinstance(error, CucmOutcomeUnknown)


class SlidingWindowLimiter:
    """At most ``limit`` acquisitions in any ``window`` seconds, across threads.

    A sliding log is stricter than a token bucket with a burst (which allows up to 2*limit-1 in
    some 60 s window), so it cannot trip a server that counts either way.
    """

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError(f"rate limit must be at least 1 per positive window, got {limit}/{window}s")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._stamps: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Block until a request may go; return how long it waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._stamps and now - self._stamps[0] >= self.window:
                    self._stamps.popleft()
                if len(self._stamps) < self.limit:
                    self._stamps.append(now)
                    return waited
                delay = self.window - (now - self._stamps[0])
            self._sleep(delay)
            waited += delay
