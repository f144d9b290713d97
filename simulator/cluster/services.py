"""Services per node: their state and start times, and restarts that take scaled minutes."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from simulator.cluster.clock import Clock
from simulator.cluster.errors import CucmError
from simulator.cluster.record import Record

if TYPE_CHECKING:
    from simulator.cluster.node import Node

# Which service restarts make a newly installed identity the one the node presents.
# Sources (see the CUCM reference, section 4): tomcat -> Cisco Tomcat (SG14 restart table);
# CallManager -> Cisco CallManager (R14) and Cisco HAProxy (SG14, 14SU1+); ipsec -> DRF Master/Local
# (SG14); CAPF -> CAPF service (SG14); TVS -> Cisco Trust Verification Service (SG14, T214231);
# ITLRecovery -> Cisco Tftp, which signs the ITL (part 2 section 3).
PRESENTED_BY: dict[str, tuple[str, ...]] = {
    "tomcat": ("Cisco Tomcat",),
    "CallManager": ("Cisco CallManager", "Cisco HAProxy"),
    "ipsec": ("Cisco DRF Local", "Cisco DRF Master"),
    "CAPF": ("Cisco Certificate Authority Proxy Function",),
    "TVS": ("Cisco Trust Verification Service",),
    # The ITL is re-signed with a new ITLRecovery key once TFTP restarts (SG14 regeneration steps).
    "ITLRecovery": ("Cisco Tftp",),
}

# Services ControlCenterServices refuses to control (reference section 3: non-stoppable services).
NOT_CONTROLLABLE = frozenset({"Cisco Tomcat", "Cisco DB"})

_CUCM_COMMON = (
    "Cisco DB",
    "Cisco Tomcat",
    "Cisco CallManager",
    "Cisco CTIManager",
    "Cisco Tftp",
    "Cisco HAProxy",
    "Cisco Trust Verification Service",
    "Cisco DRF Local",
    "Cisco RIS Data Collector",
    "Cisco Certificate Expiry Monitor",
)
_PUBLISHER_ONLY = ("Cisco Certificate Authority Proxy Function", "Cisco DRF Master", "Cisco AXL Web Service")
_IMP_SERVICES = (
    "Cisco DB",
    "Cisco Tomcat",
    "Cisco DRF Local",
    "Cisco XCP Router",
    "Cisco SIP Proxy",
    "Cisco Presence Engine",
    "Cisco Intercluster Sync Agent",
)
_NOT_ACTIVATED = ("Cisco CAR Scheduler",)


@dataclass
class Service:
    name: str
    activated: bool = True
    state: str = "Started"  # Started | Stopped | Starting | Stopping
    started_at: float = field(default_factory=time.time)  # wall clock
    generation: int = 0  # bumps on every control action so stale events are ignored

    def status(self) -> str:
        return self.state if self.activated else "Stopped"


def services_for(role: str) -> dict[str, Service]:
    """The services of a node of ``role`` (publisher | subscriber | imp), all Started."""
    names = (
        _IMP_SERVICES if role == "imp" else _CUCM_COMMON + (_PUBLISHER_ONLY if role == "publisher" else ())
    )
    services = {n: Service(n) for n in names}
    for n in _NOT_ACTIVATED:
        services[n] = Service(n, activated=False, state="Stopped")
    return services


ServiceHook = Callable[["Node", Service], None]


class ServiceControl:
    """Start, Stop and Restart with CUCM's delays, scaled.

    ``on_stopping`` runs when a service begins to stop, ``on_started`` once it is Started again
    (with its start time moved): the cluster hangs phones and presented certificates on them.
    """

    def __init__(
        self,
        clock: Clock,
        record: Record,
        rng: random.Random,
        restart_seconds: tuple[float, float],
        on_stopping: ServiceHook,
        on_started: ServiceHook,
    ) -> None:
        self.clock = clock
        self.lock: threading.RLock = clock.lock
        self.record = record
        # Shared with the cluster's tracking ids: one seeded sequence, as before the split.
        self.rng = rng
        self.restart_seconds = restart_seconds
        self.slow_restarts: dict[tuple[str, str], float] = {}  # (node short or '*', service) -> factor
        self._on_stopping = on_stopping
        self._on_started = on_started

    def restart_duration(self, node: Node, service: str) -> float:
        low, high = self.restart_seconds
        factor = self.slow_restarts.get((node.short, service), self.slow_restarts.get(("*", service), 1.0))
        factor = max(factor, self.slow_restarts.get((node.short, "*"), 1.0))
        return self.clock.scaled(self.rng.uniform(low, high)) * factor

    def control(self, node: Node, service_name: str, action: str) -> Service:
        """Start, Stop or Restart a service; returns it in its new (transitional) state."""
        with self.lock:
            self.clock.advance()
            svc = node.services.get(service_name)
            if svc is None:
                raise CucmError(f"Service Not Found: {service_name}")
            if not svc.activated:
                raise CucmError(f"{service_name} Service Not Activated")
            svc.generation += 1
            gen = svc.generation
            total = self.restart_duration(node, service_name)
            stop_d, start_d = total * 0.3, total * 0.7
            if action == "Stop":
                if svc.state == "Stopped":
                    return svc
                svc.state = "Stopping"
                self._on_stopping(node, svc)
                self.clock.at(stop_d, lambda: self._set_state(svc, gen, "Stopped"))
            elif action == "Start":
                if svc.state == "Started":
                    return svc
                svc.state = "Starting"
                self.clock.at(start_d, lambda: self._finish_start(node, svc, gen))
            elif action == "Restart":
                svc.state = "Stopping"
                self._on_stopping(node, svc)

                def stopped() -> None:
                    if self._set_state(svc, gen, "Starting"):
                        self.clock.at(start_d, lambda: self._finish_start(node, svc, gen))

                self.clock.at(stop_d, stopped)
            else:
                raise CucmError(f"Invalid ControlType: {action}")
            self.record.service_controlled(node.name, service_name, action)
            return svc

    @staticmethod
    def _set_state(svc: Service, gen: int, state: str) -> bool:
        if svc.generation != gen:
            return False
        svc.state = state
        return True

    def _finish_start(self, node: Node, svc: Service, gen: int) -> None:
        if not self._set_state(svc, gen, "Started"):
            return
        svc.started_at = self.clock.wall()
        self._on_started(node, svc)

    def wait_started(self, node: Node, service_name: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                self.clock.advance()
                if node.services[service_name].state == "Started":
                    return True
            time.sleep(0.01)
        return False
