"""Named crash points for the durability tests.

When the environment variable ``CUCM_RENEW_CRASH_AT`` is ``name:N`` (or a comma-separated list of
them), the N-th time :func:`crashpoint` is reached with that name in this process, the process
kills itself with SIGKILL: no cleanup, no flush, exactly like a power cut as far as SQLite knows.
Unset, a crash point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
import threading

ENV = "CUCM_RENEW_CRASH_AT"


def _parse(spec: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in spec.split(","):
        name, _, count = item.strip().rpartition(":")
        if name and count.isdigit() and int(count) > 0:
            out[name] = int(count)
    return out


_targets = _parse(os.environ.get(ENV, ""))
_seen: dict[str, int] = {}
_lock = threading.Lock()


def crashpoint(name: str) -> None:
    """SIGKILL this process if ``name`` is armed and this is its N-th arrival."""
    if name not in _targets:
        return
    with _lock:
        _seen[name] = _seen.get(name, 0) + 1
        hit = _seen[name] == _targets[name]
    if hit:
        os.kill(os.getpid(), signal.SIGKILL)


def arm(spec: str) -> None:
    """Re-read a crash specification (tests that arm points in a child after fork)."""
    global _targets
    with _lock:
        _targets = _parse(spec)
        _seen.clear()
