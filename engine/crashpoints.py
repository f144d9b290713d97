"""Named crash points for the durability tests.

``CUCM_RENEW_CRASH_AT`` holds one specification, or several separated by commas::

    point:N                the N-th arrival at ``point`` in this process
    point@qualifier:N      the N-th arrival at ``point`` whose identity the qualifier matches

At that arrival the process writes one line to stderr (``crash point <spec> hit at <point>
<identity>``, so a test can tell its kill from any other death) and kills itself with SIGKILL: no
cleanup, no flush, exactly like a power cut as far as SQLite knows. Unset, a crash point costs one
dictionary lookup.

The points, and the identity each arrival carries, from the general to the particular:

=========================================================  ======================================
``effect.before_intent``, ``effect.after_intent``,          definition / state / node / effect name
``effect.after_action``, ``effect.after_output``
``transition.before_commit``, ``transition.after_commit``   definition / state, of each run the
                                                            commit carries (one arrival per commit)
=========================================================  ======================================

A qualifier is that identity's fields separated by ``/``, each a shell-style pattern (``*`` for
any); a qualifier with fewer fields matches on the leading ones. Patterns cannot hold ``/`` or
``,`` (use ``?``). With several concurrent effects the order of arrivals varies between runs, so
``effect.after_intent:7`` is a different effect each time; a qualifier names one::

    effect.after_intent@CallManager/phones_reset/*/phone_reset:1
    effect.after_action@TVS/restarted/cucm-pub.example.com/restart:Cisco Tftp:1
    transition.before_commit@CAPF/restarted:2

A specification with an unknown point or no positive N is an error, not a point that never fires.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from dataclasses import dataclass
from fnmatch import fnmatchcase

ENV = "CUCM_RENEW_CRASH_AT"
POINTS = (
    "effect.before_intent",
    "effect.after_intent",
    "effect.after_action",
    "effect.after_output",
    "transition.before_commit",
    "transition.after_commit",
)
"""Every crash point, in the order a side effect and then its step's commit reach them."""


@dataclass(frozen=True)
class Target:
    spec: str
    """The specification as written, e.g. ``effect.after_action@TVS/restarted:1``."""
    point: str
    patterns: tuple[str, ...]
    """Empty for an unqualified specification: every arrival counts."""
    count: int

    def matches(self, identities: tuple[tuple[str, ...], ...]) -> bool:
        if not self.patterns:
            return True
        n = len(self.patterns)
        return any(
            len(identity) >= n
            and all(fnmatchcase(f, p) for f, p in zip(identity[:n], self.patterns, strict=True))
            for identity in identities
        )


def _parse(spec: str) -> dict[str, list[Target]]:
    out: dict[str, list[Target]] = {}
    for item in (i.strip() for i in spec.split(",")):
        if not item:
            continue
        head, _, count = item.rpartition(":")
        point, at, qualifier = head.partition("@")
        if point not in POINTS or not count.isdigit() or int(count) < 1 or (at and not qualifier):
            raise ValueError(
                f"{ENV}: {item!r} is not point[@qualifier]:N with N >= 1 and point one of {', '.join(POINTS)}"
            )
        patterns = tuple(qualifier.split("/")) if qualifier else ()
        out.setdefault(point, []).append(Target(item, point, patterns, int(count)))
    return out


_targets = _parse(os.environ.get(ENV, ""))
_seen: dict[Target, int] = {}
_lock = threading.Lock()


def crashpoint(point: str, *identities: tuple[str, ...]) -> None:
    """SIGKILL this process if an armed specification of ``point`` matches one of ``identities``
    and this is its N-th matching arrival."""
    targets = _targets.get(point)
    if not targets:
        return
    hit: Target | None = None
    with _lock:
        for target in targets:
            if target.matches(identities):
                _seen[target] = _seen.get(target, 0) + 1
                if _seen[target] == target.count:
                    hit = target
    if hit is not None:
        where = " ".join("/".join(identity) for identity in identities)
        with contextlib.suppress(OSError):  # no stderr to tell: the kill still happens
            os.write(2, f"crash point {hit.spec} hit at {point} {where}\n".encode())
        os.kill(os.getpid(), signal.SIGKILL)
