"""How long a type's outage lasts on a cluster, from its plan. Pure.

An outage is the restarts, one at a time (each service running again before the next), plus the
phones registering again: once after the change for a type that resets them, and the phones of a
node failing back after each Cisco CallManager restart there. A restart takes what this cluster
measured for that service on that node in an earlier run, else on another node, else the default
below. All seconds are CUCM seconds (the cluster's clock).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workflows.timestamps import instant

DEFAULT_RESTART_SECONDS: Mapping[str, float] = {
    "Cisco Tomcat": 300.0,
    "Cisco CallManager": 180.0,
    "Cisco CTIManager": 90.0,
    "Cisco Tftp": 60.0,
    "Cisco HAProxy": 30.0,
    "Cisco Trust Verification Service": 60.0,
    "Cisco Certificate Authority Proxy Function": 60.0,
    "Cisco DRF Master": 60.0,
    "Cisco DRF Local": 60.0,
}
"""A service's restart, stop to running, where the cluster has measured none [I: Cisco gives no
figures; "takes minutes" for Tomcat (reference part 1, `utils service restart`); the others are
a UC engineer's habit, meant to err long]."""
OTHER_RESTART_SECONDS = 120.0
REREGISTRATION_SECONDS_PER_PHONE = 0.1
"""Phones registering again after a reset or a failback, one after another at this pace [I: CUCM
throttles registrations and TFTP serves each phone its files; ten a second is an assumption]."""
REREGISTRATION_FLOOR = 120.0
"""However few the phones, a reset phone takes about this long to boot and register [I]."""
CALLMANAGER = "Cisco CallManager"


@dataclass(frozen=True)
class RestartCost:
    node: str
    service: str
    seconds: float
    source: str
    """``measured`` (this node), ``measured elsewhere`` (another node of the cluster) or ``default``."""


@dataclass(frozen=True)
class Estimate:
    restarts: tuple[RestartCost, ...]
    phones: int
    phone_seconds: float
    failback_seconds: float
    seconds: float = field(init=False)

    def __post_init__(self) -> None:
        total = sum(r.seconds for r in self.restarts) + self.phone_seconds + self.failback_seconds
        object.__setattr__(self, "seconds", total)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds),
            "restarts": [
                {"node": r.node, "service": r.service, "seconds": round(r.seconds), "source": r.source}
                for r in self.restarts
            ],
            "phones": self.phones,
            "phone_seconds": round(self.phone_seconds),
            "failback_seconds": round(self.failback_seconds),
        }


def _key(node: str, service: str) -> str:
    return f"{node}|{service}"


def restart_cost(node: str, service: str, measured: Mapping[str, float]) -> RestartCost:
    if (own := measured.get(_key(node, service))) is not None:
        return RestartCost(node, service, own, "measured")
    others = [s for k, s in measured.items() if k.split("|", 1)[1] == service]
    if others:
        return RestartCost(node, service, max(others), "measured elsewhere")
    return RestartCost(node, service, DEFAULT_RESTART_SECONDS.get(service, OTHER_RESTART_SECONDS), "default")


def reregistration(phones: int) -> float:
    return 0.0 if phones <= 0 else max(REREGISTRATION_FLOOR, phones * REREGISTRATION_SECONDS_PER_PHONE)


def estimate(
    restarts: Sequence[tuple[str, str]],
    measured: Mapping[str, float],
    *,
    phones_by_node: Mapping[str, int],
    resets_phones: bool,
) -> Estimate:
    """The outage of ``restarts`` (``(node, service)`` in order) on a cluster whose registered
    phones are ``phones_by_node`` (CallManager node -> count; a node may be named by its short
    host name): every restart, the phones failing back after each CallManager restart, and every
    phone registering once more when the type resets them."""
    costs = tuple(restart_cost(node, service, measured) for node, service in restarts)
    total = sum(phones_by_node.values())
    failback = 0.0
    for node, service in restarts:
        if service == CALLMANAGER:
            failback += reregistration(phones_by_node.get(node, phones_by_node.get(node.split(".")[0], 0)))
    return Estimate(costs, total, reregistration(total) if resets_phones else 0.0, failback)


def measured_restarts(contexts: Iterable[Mapping[str, Any]], scale: float = 1.0) -> dict[str, float]:
    """``node|service`` -> seconds its last measured restart took (request to running again), read
    from earlier runs' recorded restarts. ``scale``: CUCM seconds per recorded second (a
    time-scaled lab's runs are recorded in its faster time)."""
    latest: dict[str, tuple[float, float]] = {}
    for context in contexts:
        for r in context.get("restarts") or []:
            if r.get("skipped") or not (r.get("requested_at") and r.get("running_at")):
                continue
            began, ran = instant(str(r["requested_at"])), instant(str(r["running_at"]))
            key = _key(str(r.get("node")), str(r.get("service")))
            seconds = max(0.0, (ran - began).total_seconds()) * scale
            if key not in latest or ran.timestamp() > latest[key][0]:
                latest[key] = (ran.timestamp(), seconds)
    return {k: v[1] for k, v in latest.items()}
