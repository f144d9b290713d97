"""Services per node: their state and start times, and restarts that take scaled minutes."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable
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
    # The EC twins: tomcat-ECDSA -> Cisco Tomcat (SG14); CallManager-ECDSA -> Cisco CallManager and
    # HAProxy (SG14 14SU1+ row).
    "tomcat-ECDSA": ("Cisco Tomcat",),
    "CallManager-ECDSA": ("Cisco CallManager", "Cisco HAProxy"),
    # IM&P (IMP125): cup is SIP Proxy's (5061/5062; Cisco also restarts the Presence Engine, which
    # presents nothing the simulator listens on); cup-xmpp is presented by the XCP services once
    # Cisco XCP Router restarts (on every IM&P node); cup-xmpp-s2s by the XMPP Federation
    # Connection Manager, on federation nodes.
    "cup": ("Cisco SIP Proxy",),
    "cup-ECDSA": ("Cisco SIP Proxy",),
    "cup-xmpp": ("Cisco XCP Router",),
    "cup-xmpp-ECDSA": ("Cisco XCP Router",),
    "cup-xmpp-s2s": ("Cisco XCP XMPP Federation Connection Manager",),
    "cup-xmpp-s2s-ECDSA": ("Cisco XCP XMPP Federation Connection Manager",),
}

# Services ControlCenterServices refuses to control (reference section 3: non-stoppable services).
NOT_CONTROLLABLE = frozenset({"Cisco Tomcat", "A Cisco DB"})

# ReasonCode / ReasonCodeString pairs ControlCenterServices reports (reference part 2, section 8).
REASON_OK = (-1, " ")
REASON_NOT_ACTIVATED = (-1068, "Service Not Activated")
REASON_OUT_OF_SERVICE = (-1069, "Commanded Out of Service")
REASON_NO_SUCH_SERVICE = (-1010, "No such service")

# Where a service exists: every CUCM node, the CUCM publisher only, IM&P nodes, or every node.
CUCM, PUBLISHER, IMP, ALL = "cucm", "publisher", "imp", "all"


@dataclass(frozen=True)
class ServiceSpec:
    """One line of the service catalogue.

    ``deployable``: a feature service (Service Activation, ``soapDoServiceDeployment``); otherwise a
    network service, always activated. ``active``: where a feature service is activated after
    installation: ``all``, ``publisher``, ``first`` (the publisher and the first subscriber) or
    ``none``. ``out_of_service``: roles where a network service stands Commanded Out of Service.
    """

    name: str
    group: str
    deployable: bool
    where: str = CUCM
    active: str = "all"
    servlet: bool = False
    depends: tuple[str, ...] = ()
    out_of_service: tuple[str, ...] = ()


_F, _N = True, False
_PM = "Performance and Monitoring Services"
_DBA = "Database and Admin Services"
_IMPS = "IM and Presence Services"
# Names as soapGetServiceStatus reports them; groups as Serviceability's Control Center lists them.
# Which are feature services: the service-activation list of reference part 2 section 8 [I]; which
# are activated after installation is not documented by Cisco [U]: a typical small cluster.
CATALOGUE: tuple[ServiceSpec, ...] = (
    # ---- CUCM feature services
    ServiceSpec("Cisco CallManager", "CM Services", _F, depends=("A Cisco DB",)),
    ServiceSpec("Cisco Unified Mobile Voice Access Service", "CM Services", _F, active="none"),
    ServiceSpec("Cisco IP Voice Media Streaming App", "CM Services", _F, active="first"),
    ServiceSpec("Cisco CTIManager", "CM Services", _F, depends=("Cisco CallManager",)),
    ServiceSpec("Cisco Extension Mobility", "CM Services", _F, active="none", servlet=True),
    ServiceSpec("Cisco Extended Functions", "CM Services", _F, active="none"),
    ServiceSpec("Cisco DHCP Monitor Service", "CM Services", _F, active="none"),
    ServiceSpec("Cisco Intercluster Lookup Service", "CM Services", _F, active="none"),
    ServiceSpec("Cisco Location Bandwidth Manager", "CM Services", _F, active="publisher"),
    ServiceSpec("Cisco Directory Number Alias Sync", "CM Services", _F, active="none"),
    ServiceSpec("Cisco Directory Number Alias Lookup", "CM Services", _F, active="none"),
    ServiceSpec("Cisco Dialed Number Analyzer Server", "CM Services", _F, active="none"),
    ServiceSpec("Cisco Dialed Number Analyzer", "CM Services", _F, active="none", servlet=True),
    ServiceSpec("Cisco Tftp", "CM Services", _F, active="first"),
    ServiceSpec("Self Provisioning IVR", "CM Services", _F, active="none"),
    ServiceSpec("Cisco IP Manager Assistant", "CTI Services", _F, active="none", servlet=True),
    ServiceSpec("Cisco WebDialer Web Service", "CTI Services", _F, active="none", servlet=True),
    ServiceSpec("Cisco SOAP - CDRonDemand Service", "CDR Services", _F, PUBLISHER, "none", True),
    ServiceSpec("Cisco CAR Web Service", "CDR Services", _F, PUBLISHER, "none", True),
    ServiceSpec("Cisco AXL Web Service", _DBA, _F, ALL, "publisher", True),
    ServiceSpec("Cisco UXL Web Service", _DBA, _F, active="none", servlet=True),
    ServiceSpec("Cisco Bulk Provisioning Service", _DBA, _F, PUBLISHER, "publisher"),
    ServiceSpec("Cisco TAPS Service", _DBA, _F, PUBLISHER, "none"),
    ServiceSpec("Cisco Serviceability Reporter", _PM, _F, ALL, "publisher"),
    ServiceSpec("Cisco CallManager SNMP Service", _PM, _F, active="none"),
    ServiceSpec("Cisco CTL Provider", "Security Services", _F, active="none"),
    ServiceSpec(
        "Cisco Certificate Authority Proxy Function", "Security Services", _F, PUBLISHER, "publisher"
    ),
    ServiceSpec("Cisco DirSync", "Directory Services", _F, PUBLISHER, "none"),
    # ---- CUCM network services
    ServiceSpec("Cisco CallManager Serviceability RTMT", _PM, _N),
    ServiceSpec("Cisco RIS Data Collector", _PM, _N, ALL),
    ServiceSpec("Cisco AMC Service", _PM, _N, ALL),
    ServiceSpec("Cisco Audit Event Service", _PM, _N, ALL),
    ServiceSpec("Cisco Log Partition Monitoring Tool", _PM, _N, ALL),
    ServiceSpec("Cisco DRF Master", "Backup and Restore Services", _N, PUBLISHER),
    ServiceSpec("Cisco DRF Local", "Backup and Restore Services", _N, ALL),
    ServiceSpec("Cisco CallManager Serviceability", "System Services", _N, ALL, servlet=True),
    ServiceSpec("Cisco CDP", "System Services", _N, ALL),
    ServiceSpec("Cisco Trace Collection Servlet", "System Services", _N, ALL, servlet=True),
    ServiceSpec("Cisco Trace Collection Service", "System Services", _N, ALL),
    ServiceSpec("Platform Administrative Web Service", "Platform Services", _N, ALL, servlet=True),
    ServiceSpec("A Cisco DB", "Platform Services", _N, ALL),
    ServiceSpec("A Cisco DB Replicator", "Platform Services", _N, ALL, depends=("A Cisco DB",)),
    ServiceSpec("Cisco Tomcat", "Platform Services", _N, ALL),
    ServiceSpec("Cisco HAProxy", "Platform Services", _N),
    ServiceSpec("SNMP Master Agent", "Platform Services", _N, ALL),
    ServiceSpec("MIB2 Agent", "Platform Services", _N, ALL, depends=("SNMP Master Agent",)),
    ServiceSpec("Host Resources Agent", "Platform Services", _N, ALL, depends=("SNMP Master Agent",)),
    ServiceSpec("Native Agent Adaptor", "Platform Services", _N, ALL, depends=("SNMP Master Agent",)),
    ServiceSpec("System Application Agent", "Platform Services", _N, ALL, depends=("SNMP Master Agent",)),
    ServiceSpec("Cisco Certificate Expiry Monitor", "Platform Services", _N, ALL),
    ServiceSpec("Cisco Certificate Change Notification", "Platform Services", _N, ALL),
    ServiceSpec("Platform Communication Web Service", "Platform Services", _N, ALL, servlet=True),
    ServiceSpec("Cisco Smart License Manager", "Platform Services", _N, PUBLISHER),
    ServiceSpec("Cluster Manager", "Platform Services", _N, ALL),
    ServiceSpec("Cisco Database Layer Monitor", "DB Services", _N, ALL),
    ServiceSpec("SOAP -Real-Time Service APIs", "SOAP Services", _N, ALL, servlet=True),
    ServiceSpec("SOAP -Performance Monitoring APIs", "SOAP Services", _N, ALL, servlet=True),
    ServiceSpec("SOAP -Log Collection APIs", "SOAP Services", _N, ALL, servlet=True),
    ServiceSpec("Cisco CallManager Personal Directory", "CM Services", _N),
    ServiceSpec("Cisco Trust Verification Service", "CM Services", _N),
    ServiceSpec("Cisco Change Credential Application", "CM Services", _N, servlet=True),
    ServiceSpec("Cisco User Data Services", "CM Services", _N, servlet=True),
    ServiceSpec("Cisco Push Notification Service", "CM Services", _N),
    ServiceSpec("Cisco Management Agent Service", "CM Services", _N),
    ServiceSpec("Cisco CDR Repository Manager", "CDR Services", _N, out_of_service=("subscriber",)),
    ServiceSpec("Cisco CDR Agent", "CDR Services", _N),
    ServiceSpec("Cisco CAR Scheduler", "CDR Services", _N, out_of_service=("subscriber",)),
    ServiceSpec("Cisco CAR DB", "CDR Services", _N, out_of_service=("subscriber",)),
    ServiceSpec("Cisco CallManager Admin", "Admin Services", _N, servlet=True),
    # ---- IM and Presence
    ServiceSpec("Cisco SIP Proxy", _IMPS, _F, IMP),
    ServiceSpec("Cisco Presence Engine", _IMPS, _F, IMP),
    ServiceSpec("Cisco XCP Text Conference Manager", _IMPS, _F, IMP, "none"),
    ServiceSpec("Cisco XCP Web Connection Manager", _IMPS, _F, IMP, "none"),
    ServiceSpec("Cisco XCP Connection Manager", _IMPS, _F, IMP),
    ServiceSpec("Cisco XCP SIP Federation Connection Manager", _IMPS, _F, IMP, "none"),
    ServiceSpec("Cisco XCP XMPP Federation Connection Manager", _IMPS, _F, IMP, "none"),
    ServiceSpec("Cisco XCP Message Archiver", _IMPS, _F, IMP, "none"),
    ServiceSpec("Cisco XCP Directory Service", _IMPS, _F, IMP, "none"),
    ServiceSpec("Cisco XCP Authentication Service", _IMPS, _F, IMP),
    ServiceSpec("Cisco XCP Router", _IMPS, _N, IMP),
    ServiceSpec("Cisco XCP Config Manager", _IMPS, _N, IMP),
    ServiceSpec("Cisco Intercluster Sync Agent", _IMPS, _N, IMP),
    ServiceSpec("Cisco Sync Agent", _IMPS, _N, IMP),
    ServiceSpec("Cisco Client Profile Agent", _IMPS, _N, IMP),
    ServiceSpec("Cisco Login Datastore", _IMPS, _N, IMP),
    ServiceSpec("Cisco Route Datastore", _IMPS, _N, IMP),
    ServiceSpec("Cisco Presence Datastore", _IMPS, _N, IMP),
    ServiceSpec("Cisco SIP Registration Datastore", _IMPS, _N, IMP),
    ServiceSpec("Cisco Server Recovery Manager", _IMPS, _N, IMP),
    ServiceSpec("Cisco Config Agent", _IMPS, _N, IMP),
)
SPECS: dict[str, ServiceSpec] = {s.name: s for s in CATALOGUE}


def present_on(spec: ServiceSpec, role: str) -> bool:
    if spec.where == ALL:
        return True
    if spec.where == IMP:
        return role == "imp"
    if spec.where == PUBLISHER:
        return role == "publisher"
    return role != "imp"


def _activated(spec: ServiceSpec, role: str, index: int) -> bool:
    if not spec.deployable or spec.active == "all":
        return True
    if spec.active == "publisher":
        # AXL, Serviceability Reporter and the like: the CUCM publisher, and every IM&P node.
        return role in ("publisher", "imp")
    if spec.active == "first":
        return role != "imp" and index <= 1
    return False


@dataclass
class Service:
    name: str
    activated: bool = True
    state: str = "Started"  # Started | Stopped | Starting | Stopping
    started_at: float = field(default_factory=time.time)  # wall clock
    generation: int = 0  # bumps on every control action so stale events are ignored

    def status(self) -> str:
        """ServiceStatus: a deactivated service is Stopped (the WSDL's enum has no "Not Activated"),
        or Stopping while an UnDeploy takes it down."""
        if self.activated or self.state == "Stopping":
            return self.state
        return "Stopped"

    def reason(self) -> tuple[int, str]:
        if not self.activated:
            return REASON_NOT_ACTIVATED
        if self.state == "Stopped":
            return REASON_OUT_OF_SERVICE
        return REASON_OK

    @property
    def spec(self) -> ServiceSpec:
        return SPECS[self.name]


def services_for(
    role: str, index: int = 0, deactivated: Iterable[str] = (), activated: Iterable[str] = ()
) -> dict[str, Service]:
    """The services of the node of ``role`` (publisher | subscriber | imp) at ``index`` in the
    cluster, activated as after a typical installation; ``deactivated`` names feature services left
    deactivated there, ``activated`` feature services activated beyond the defaults (the XMPP
    Federation Connection Manager on federation nodes)."""
    off = set(deactivated)
    on = set(activated)
    unknown = (off | on) - {s.name for s in CATALOGUE if present_on(s, role)}
    if unknown:
        raise ValueError(f"no such service on a {role} node: {', '.join(sorted(unknown))}")
    network = sorted(n for n in off if not SPECS[n].deployable)
    if network:
        raise ValueError(f"network services cannot be deactivated: {', '.join(network)}")
    services: dict[str, Service] = {}
    for spec in CATALOGUE:
        if not present_on(spec, role):
            continue
        if (not _activated(spec, role, index) and spec.name not in on) or spec.name in off:
            services[spec.name] = Service(spec.name, activated=False, state="Stopped")
        elif role in spec.out_of_service:
            services[spec.name] = Service(spec.name, state="Stopped")
        else:
            services[spec.name] = Service(spec.name)
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
                raise CucmError(REASON_NO_SUCH_SERVICE[1])
            if not svc.activated:
                raise CucmError(REASON_NOT_ACTIVATED[1])
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

    def deploy(self, node: Node, service_name: str, deploy: bool) -> Service:
        """soapDoServiceDeployment: Deploy activates a feature service and starts it; UnDeploy stops
        it and deactivates it. Network services cannot be deployed or undeployed."""
        with self.lock:
            self.clock.advance()
            svc = node.services.get(service_name)
            if svc is None:
                raise CucmError(REASON_NO_SUCH_SERVICE[1])
            if not svc.spec.deployable:
                raise CucmError(f"{service_name} is a network service: it cannot be activated or deactivated")
            if svc.activated == deploy:
                return svc
            svc.generation += 1
            gen = svc.generation
            total = self.restart_duration(node, service_name)
            svc.activated = deploy
            if deploy:
                svc.state = "Starting"
                self.clock.at(total * 0.7, lambda: self._finish_start(node, svc, gen))
            elif svc.state != "Stopped":
                svc.state = "Stopping"
                self._on_stopping(node, svc)
                self.clock.at(total * 0.3, lambda: self._set_state(svc, gen, "Stopped"))
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
