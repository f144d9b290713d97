"""Injected faults, deterministic by seed.

SPEC is a comma-separated list of ``key=value`` items:

* ``5xx=P``, ``timeout=P``, ``drop=P``: probability per request of an HTTP 503, of a held connection
  that is then closed unanswered (``hold=S`` seconds, default 5), of a connection closed without an
  answer. ``5xx@ENDPOINT=P`` (also ``timeout@``, ``drop@``) limits it to one endpoint: ``rest``
  (certmgr), ``axl``, ``ris``, ``ccs`` (ControlCenterServices). Without ``@`` it applies to all four.
* ``lost=P``: probability that a request with effects is *carried out* and its reply lost: the
  connection is closed without an answer after the action. Applies to certmgr REST POSTs (``rest``),
  AXL operations that change something (``axl``: doDeviceReset, resetDevicePool),
  soapDoControlServices (``ccs``) and CLI commands with effects over SSH (``ssh``: set csr gen, set
  cert import, set cert regen, utils service restart/start/stop, utils ctl update CTLFile, utils itl
  reset localkey: the command runs to its end, then the channel closes before any output).
  ``lost@ENDPOINT=P`` limits it to one of ``rest``, ``axl``, ``ccs``, ``ssh``. A request that was
  refused or changed nothing is answered normally. Each lost reply is listed in ``lost_replies`` of
  ``/__sim__/state``.
* ``seed=N``: the random sequence (per node and endpoint, so one client's traffic does not change
  another's draws).
* ``down=NODE:DURATION`` or ``down=NODE@START:DURATION``: the node refuses HTTPS and SSH (the TCP
  connection is accepted then closed) from START to START+DURATION seconds after the simulator
  started (wall-clock seconds, not scaled; ``s`` suffix optional). Repeatable.
* ``slow=NODE:SERVICE:FACTOR``: restarts of SERVICE on NODE take FACTOR times longer; ``*`` matches
  any node or service. Repeatable.

Example: ``5xx=0.2,timeout=0.05,drop=0.05,lost=0.1,seed=7,down=cucm-sub1:30s,slow=cucm-sub1:Cisco Tomcat:5``.
"""

from __future__ import annotations

import random
import threading
import time
import zlib
from dataclasses import dataclass, field

ENDPOINTS = ("rest", "axl", "ris", "ccs")
KINDS = ("5xx", "timeout", "drop")
# Where a request can have effects whose reply is then lost (RisPort70 only reads).
LOST_ENDPOINTS = ("rest", "axl", "ccs", "ssh")


class FaultSpecError(ValueError):
    """A --faults SPEC that cannot be parsed; the message names the bad item and the format."""


@dataclass
class Faults:
    probabilities: dict[str, dict[str, float]] = field(default_factory=dict)  # endpoint -> kind -> p
    lost: dict[str, float] = field(default_factory=dict)  # endpoint -> p
    seed: int = 0
    hold_seconds: float = 5.0
    down: list[tuple[str, float, float]] = field(default_factory=list)  # node short, start, end
    slow: list[tuple[str, str, float]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rngs: dict[tuple[str, str], random.Random] = {}

    @classmethod
    def parse(cls, spec: str | None) -> Faults:
        faults = cls()
        if not spec:
            return faults
        for raw in spec.split(","):
            item = raw.strip()
            if not item:
                continue
            key, sep, value = item.partition("=")
            if not sep:
                raise FaultSpecError(f"fault item {item!r} has no '=': use key=value, e.g. 5xx=0.1")
            key = key.strip()
            try:
                kind, _, endpoint = key.partition("@")
                if kind in KINDS:
                    p = float(value)
                    if not 0 <= p <= 1:
                        raise ValueError
                    for ep in [endpoint] if endpoint else ENDPOINTS:
                        if ep not in ENDPOINTS:
                            raise FaultSpecError(
                                f"unknown endpoint {ep!r} in {item!r}: use one of {ENDPOINTS}"
                            )
                        faults.probabilities.setdefault(ep, {})[kind] = p
                elif kind == "lost":
                    p = float(value)
                    if not 0 <= p <= 1:
                        raise ValueError
                    for ep in [endpoint] if endpoint else LOST_ENDPOINTS:
                        if ep not in LOST_ENDPOINTS:
                            raise FaultSpecError(
                                f"unknown endpoint {ep!r} in {item!r}: lost applies to {LOST_ENDPOINTS}"
                            )
                        faults.lost[ep] = p
                elif key == "seed":
                    faults.seed = int(value)
                elif key == "hold":
                    faults.hold_seconds = _seconds(value)
                elif key == "down":
                    target, _, duration = value.rpartition(":")
                    node, _, start = target.partition("@")
                    if not node:
                        raise ValueError
                    begin = _seconds(start) if start else 0.0
                    faults.down.append((node.split(".")[0], begin, begin + _seconds(duration)))
                elif key == "slow":
                    node, service, factor = value.split(":")
                    faults.slow.append((node.split(".")[0], service, float(factor)))
                else:
                    raise FaultSpecError(
                        f"unknown fault {key!r} in {item!r}: "
                        "use 5xx, timeout, drop, lost, seed, hold, down or slow"
                    )
            except FaultSpecError:
                raise
            except ValueError:
                raise FaultSpecError(
                    f"bad fault item {item!r}: expected e.g. 5xx=0.2, down=cucm-sub1@10s:30s, "
                    "slow=cucm-sub1:Cisco Tomcat:5"
                ) from None
        return faults

    def decide(self, node: str, endpoint: str) -> str | None:
        """The fault to apply to this request, or None."""
        probs = self.probabilities.get(endpoint)
        if not probs:
            return None
        with self._lock:
            rng = self._rngs.get((node, endpoint))
            if rng is None:
                rng = random.Random(self.seed * 1_000_003 + zlib.crc32(f"{node}/{endpoint}".encode()))
                self._rngs[(node, endpoint)] = rng
            draw = rng.random()
        edge = 0.0
        for kind in KINDS:
            edge += probs.get(kind, 0.0)
            if draw < edge:
                return kind
        return None

    def lose_reply(self, node: str, endpoint: str) -> bool:
        """Whether this request's reply is lost once it is carried out (its own random sequence)."""
        p = self.lost.get(endpoint, 0.0)
        if p <= 0:
            return False
        with self._lock:
            key = (node, f"{endpoint}/lost")
            rng = self._rngs.get(key)
            if rng is None:
                rng = random.Random(self.seed * 1_000_003 + zlib.crc32(f"{node}/{endpoint}/lost".encode()))
                self._rngs[key] = rng
            return rng.random() < p

    def node_down(self, node: str) -> bool:
        if not self.down:
            return False
        elapsed = time.monotonic() - self.started
        return any(n == node and start <= elapsed < end for n, start, end in self.down)


def _seconds(text: str) -> float:
    text = text.strip().lower()
    if text.endswith("ms"):
        return float(text[:-2]) / 1000
    if text.endswith("s"):
        text = text[:-1]
    elif text.endswith("m"):
        return float(text[:-1]) * 60
    return float(text)
