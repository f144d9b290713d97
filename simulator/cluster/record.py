"""What the cluster has been asked to do, counted for ``GET /__sim__/state`` (not CUCM)."""

from __future__ import annotations

import datetime as dt
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

    def csr_generated(self, node: str, cert_type: str) -> None:
        self.csrs.setdefault(node, {}).setdefault(cert_type, 0)
        self.csrs[node][cert_type] += 1

    def upload_accepted(self, node: str, kind: str, cert_type: str, fingerprint: str) -> None:
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

    def device_pool_reset(self, pool: str, phones: int) -> None:
        self.phone_resets += phones
        self.device_pool_resets.setdefault(pool, []).append(iso(time.time()))

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
        }
