"""What the cluster has been asked to do, counted for ``GET /__sim__/state`` (not CUCM)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass, field
from typing import Any


def iso(wall: float) -> str:
    return dt.datetime.fromtimestamp(wall, dt.UTC).isoformat(timespec="milliseconds")


@dataclass
class Record:
    """Counters and logs; the parts that own the state append to them under the cluster's lock."""

    csrs: dict[str, dict[str, int]] = field(default_factory=dict)
    uploads_accepted: list[dict[str, Any]] = field(default_factory=list)
    uploads_rejected: list[dict[str, Any]] = field(default_factory=list)
    restarts: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    phone_resets: int = 0
    device_pool_resets: dict[str, list[str]] = field(default_factory=dict)
    ctl_updates: int = 0
    itl_resets: int = 0
    regenerations: dict[str, dict[str, int]] = field(default_factory=dict)
    # Phones CUCM reset itself ("Phone Interaction on Certificate Update"), apart from phone_resets.
    automatic_phone_resets: list[dict[str, Any]] = field(default_factory=list)
    # Requests carried out whose answer never reached the client (the `lost` fault).
    lost_replies: list[dict[str, Any]] = field(default_factory=list)
    # Effects carried out, per thread: a server thread compares the count before and after one
    # request to know whether that request changed anything (other threads' requests do not count).
    _effects: threading.local = field(default_factory=threading.local, repr=False, compare=False)

    def _effect(self) -> None:
        self._effects.count = self.thread_effects() + 1

    def thread_effects(self) -> int:
        """How many effects the calling thread has carried out so far."""
        count: int = getattr(self._effects, "count", 0)
        return count

    def csr_generated(self, node: str, cert_type: str) -> None:
        self.csrs.setdefault(node, {}).setdefault(cert_type, 0)
        self.csrs[node][cert_type] += 1
        self._effect()

    def regenerated(self, node: str, cert_type: str) -> None:
        self.regenerations.setdefault(node, {}).setdefault(cert_type, 0)
        self.regenerations[node][cert_type] += 1
        self._effect()

    def upload_accepted(self, node: str, kind: str, cert_type: str, fingerprint: str) -> None:
        self._effect()
        self.uploads_accepted.append(
            {
                "node": node,
                "kind": kind,
                "type": cert_type,
                "fingerprint": fingerprint,
                "time": iso(time.time()),
            }
        )

    def upload_rejected(self, node: str, kind: str, cert_type: str, reason: str) -> None:
        self.uploads_rejected.append(
            {"node": node, "kind": kind, "type": cert_type, "reason": reason, "time": iso(time.time())}
        )

    def service_controlled(self, node: str, service: str, action: str) -> None:
        self.restarts.setdefault(node, {}).setdefault(service, []).append(f"{action}@{iso(time.time())}")
        self._effect()

    def phone_reset(self) -> None:
        self.phone_resets += 1
        self._effect()

    def device_pool_reset(self, pool: str, phones: int) -> None:
        self.phone_resets += phones
        self.device_pool_resets.setdefault(pool, []).append(iso(time.time()))
        self._effect()

    def ctl_updated(self) -> None:
        self.ctl_updates += 1
        self._effect()

    def itl_reset(self) -> None:
        self.itl_resets += 1
        self._effect()

    def phones_reset_automatically(self, node: str, cert_type: str, phones: int) -> None:
        self.automatic_phone_resets.append(
            {"node": node, "type": cert_type, "phones": phones, "time": iso(time.time())}
        )

    def reply_lost(self, node: str, endpoint: str, request: str) -> None:
        self.lost_replies.append(
            {"node": node, "endpoint": endpoint, "request": request, "time": iso(time.time())}
        )

    def as_state(self) -> dict[str, Any]:
        """This record's keys of ``/__sim__/state``, as copies."""
        return {
            "csrs_generated": {n: dict(v) for n, v in self.csrs.items()},
            "uploads_accepted": list(self.uploads_accepted),
            "uploads_rejected": list(self.uploads_rejected),
            "restarts": {n: {s: list(t) for s, t in v.items()} for n, v in self.restarts.items()},
            "phone_resets": self.phone_resets,
            "device_pool_resets": {k: list(v) for k, v in self.device_pool_resets.items()},
            "ctl_updates": self.ctl_updates,
            "itl_resets": self.itl_resets,
            "regenerations": {n: dict(v) for n, v in self.regenerations.items()},
            "automatic_phone_resets": list(self.automatic_phone_resets),
            "lost_replies": list(self.lost_replies),
        }
