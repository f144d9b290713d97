"""The model of a simulated CUCM cluster: the parts below, composed, behind one lock.

* ``clock``: scaled time and timed effects (``clock.py``); ``record``: the counters of
  ``/__sim__/state`` (``record.py``);
* ``store``: identities, trust stores, CSRs and CUCM's upload rules (``certificates.py``);
* ``service_control``: services' state, start times and restarts (``services.py``);
* ``phone_control``: phones, resets, device pools, ITL and CTL (``phones.py``).

Everything is guarded by one re-entrant lock (``Cluster.lock``). The cluster ties the parts
together where CUCM does: a service restart presents the installed certificates, which changes what
phones see and what the CA bundle holds; a CallManager stop and start unregisters and re-registers
its phones.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cryptography import x509

from simulator import pki
from simulator.cluster.certificates import CertificateStore, default_expiry_days
from simulator.cluster.clock import Clock
from simulator.cluster.node import Node
from simulator.cluster.phones import DEVICE_POOL_FORMAT, PhoneControl, PhoneTable
from simulator.cluster.platform import PlatformState
from simulator.cluster.record import Record, iso
from simulator.cluster.services import PRESENTED_BY, Service, ServiceControl
from simulator.releases import multi_server_upload_by_api

PHONE_INTERACTIONS = ("automatic", "manual")
# Identities whose change resets phones under "Phone Interaction on Certificate Update" (RN14, SG14:
# TVS, CAPF, TFTP = CallManager; T222534 adds ITLRecovery).
PHONE_INTERACTION_TYPES = frozenset({"CallManager", "TVS", "CAPF", "ITLRecovery"})


def service_update(version: str) -> int:
    """The SU of a full version string: the fourth field's thousands (11900 SU1, 12900 SU2 ...)."""
    parts = version.split("-")[0].split(".")
    build = int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else 0
    return max(0, build // 1000 - 10) if build >= 10000 else 0


def release(version: str) -> tuple[int, int]:
    """(major, minor) of a CUCM version string such as ``14.0.1.13900-155``."""
    major, _, rest = version.partition(".")
    minor = rest.partition(".")[0]
    return int(major), int(minor) if minor.isdigit() else 0


class Cluster:
    """A publisher, subscribers and IM&P nodes, with cluster-wide security mode, SSO, DRS and phones."""

    def __init__(
        self,
        nodes: int = 2,
        imp: int = 0,
        phones: int = 0,
        mixed_mode: bool = False,
        sso: bool = False,
        time_scale: float = 1.0,
        seed: int = 0,
        domain: str = "example.com",
        version: str = "14.0.1.13900-155",
        expiry_days: dict[str, float] | None = None,
        ris_rate_limit: int = 15,
        workdir: str | None = None,
        subject: pki.Subject | None = None,
        restart_seconds: tuple[float, float] = (60.0, 180.0),
        reregister_seconds: tuple[float, float] = (30.0, 120.0),
        device_pool: str | None = DEVICE_POOL_FORMAT,
        deactivated: Mapping[str, Sequence[str]] | None = None,
        processnode_names: str = "fqdn",
        ris_lag: float = 0.0,
        phone_interaction: str = "automatic",
        federation: Sequence[str] = (),
        itl_recovery_days: float | None = None,
        https_ciphers: str = "rsa",
        extra_sans: Mapping[str, Sequence[str]] | None = None,
        platform: PlatformState | None = None,
    ) -> None:
        """``device_pool`` names each CallManager node's device pool (``{short}``: the node's short
        name, ``{name}``: its FQDN); a phone belongs to its home node's pool. ``None``: phones belong
        to no pool. ``deactivated``: per node (short name or FQDN), feature services left deactivated
        beyond the catalogue's defaults. ``processnode_names``: ``fqdn`` or ``ip``, how the servers
        are named in CUCM's own configuration (processnode, RisPort70). ``ris_lag``: CUCM seconds
        RisPort70 trails the phones' real state. ``phone_interaction``: the 14+ enterprise parameter
        "Phone Interaction on Certificate Update", ``automatic`` (CUCM's default: CUCM resets phones
        when a CallManager, TVS, CAPF or ITLRecovery identity changes) or ``manual``; ignored below
        14. ``federation``: IM&P nodes (short name or FQDN) where XMPP federation runs (their Cisco
        XCP XMPP Federation Connection Manager is activated and 5269 listens). ``itl_recovery_days``:
        the publisher's ITLRecovery validity, left and on regeneration (default 20 years; SG14-DS
        says 5, configurable to 20). ``https_ciphers``: the ``HTTPS Ciphers`` enterprise parameter,
        ``rsa`` (CUCM's default: RSA ciphers only) or ``all`` (EC and RSA: 8443 also presents
        tomcat-ECDSA).
        ``extra_sans``: per node (short name or FQDN), DNS names its current certificates carry
        besides its FQDN. ``platform``: replication, network cluster, CTL, licensing and the
        mid-run triggers (``platform.PlatformState``; default: healthy)."""
        if nodes < 1:
            raise ValueError("a cluster needs at least one CUCM node (the publisher): use nodes >= 1")
        if not 0 <= phones <= 40000:
            raise ValueError("phones must be between 0 and 40000")
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        if phone_interaction not in PHONE_INTERACTIONS:
            raise ValueError(f"phone_interaction must be one of {PHONE_INTERACTIONS}")
        if ris_lag < 0:
            raise ValueError("ris_lag must be >= 0 (CUCM seconds)")
        if https_ciphers not in ("rsa", "all"):
            raise ValueError("https_ciphers must be 'rsa' or 'all'")
        if itl_recovery_days is not None and itl_recovery_days <= 0:
            raise ValueError("itl_recovery_days must be > 0")
        self.https_ciphers = https_ciphers
        self.lock = threading.RLock()
        self.clock = Clock(time_scale, self.lock)
        self.time_scale = self.clock.time_scale
        self.seed = seed
        self.rng = random.Random(seed)
        self.version = version
        self.release = release(version)
        # RN14 "Certificate Regeneration without Service Restarts" [I for the reading]: from 14SU1
        # CallManager takes a new identity at once; HAProxy (6971) only once it restarts.
        self.callmanager_applies_at_once = (*self.release, service_update(version)) >= (14, 0, 1)
        self.phone_interaction = phone_interaction
        self.ris_lag = float(ris_lag)
        self.mixed_mode = mixed_mode
        self.sso_enabled = sso
        self.drs_running: str | None = None  # "backup" | "restore" | None
        self.ris_rate_limit = ris_rate_limit
        self.restart_seconds = restart_seconds
        self.reregister_seconds = reregister_seconds
        self.subject = subject or pki.Subject()
        self._own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="cucm-sim-")
        self.record = Record()
        if processnode_names not in ("fqdn", "ip"):
            raise ValueError("processnode_names must be 'fqdn' or 'ip'")
        self.processnode_names = processnode_names

        planned = [(f"cucm-pub.{domain}", "publisher")]
        planned += [(f"cucm-sub{i}.{domain}", "subscriber") for i in range(1, nodes)]
        planned += [(f"imp{i}.{domain}", "imp") for i in range(1, imp + 1)]
        off = dict(deactivated or {})
        federating = set(federation)
        imp_names = {n for name, role in planned if role == "imp" for n in (name, name.split(".")[0])}
        if federating - imp_names:
            raise ValueError(f"federation: no IM&P node named {', '.join(sorted(federating - imp_names))}")
        self.nodes: list[Node] = []
        for name, role in planned:
            wanted = list(off.pop(name, [])) + list(off.pop(name.split(".")[0], []))
            fed = federating & {name, name.split(".")[0]}
            on = ["Cisco XCP XMPP Federation Connection Manager"] if fed else []
            self.nodes.append(Node(self, name, role, len(self.nodes), wanted, on))
        if off:
            raise ValueError(f"deactivated: no node named {', '.join(sorted(off))}")
        extra = dict(extra_sans or {})
        for n in self.nodes:
            n.extra_sans = list(extra.pop(n.name, [])) + list(extra.pop(n.short, []))
        if extra:
            raise ValueError(f"extra_sans: no node named {', '.join(sorted(extra))}")
        self.platform = platform or PlatformState()
        self.platform.check_nodes(self.nodes)
        self.store = CertificateStore(self.nodes, self.subject, self.record, self.lock)
        if itl_recovery_days is not None:
            self.store.itl_recovery_days = float(itl_recovery_days)
        self.store.multi_server_upload_api = multi_server_upload_by_api(version)
        days = dict(expiry_days or default_expiry_days())
        if itl_recovery_days is not None:
            days.setdefault("ITLRecovery", float(itl_recovery_days))
        self.store.create_identities(days, itl_recovery=self.release >= (12, 0))
        self.store.identity_listeners.append(self._identity_changed)
        self.store.csr_listeners.append(lambda node, t: self.platform.fire("csr", self._administrator))
        # Called, under the lock, when a service starts to stop and once it is Started again.
        self.service_listeners: list[Callable[[Node, Service], None]] = []
        self.service_control = ServiceControl(
            self.clock, self.record, self.rng, restart_seconds, self._service_stopping, self._service_started
        )
        self.phones = PhoneTable(phones, self.nodes, mixed_mode, random.Random(seed + 1))
        self.phone_control = PhoneControl(
            self.nodes,
            self.phones,
            self.clock,
            self.record,
            reregister_seconds,
            device_pool,
            itl_signer=self.itl_signer,
            ris_lag=self.clock.scaled(self.ris_lag),
        )

    # ------------------------------------------------------------------ how the parts meet
    @property
    def itl_signer(self) -> str:
        """The identity that signs the ITL: CallManager up to 11.5, ITLRecovery from 12.0 (T214231)."""
        return "ITLRecovery" if self.release >= (12, 0) else "CallManager"

    @property
    def phone_interaction_applies(self) -> bool:
        """The enterprise parameter exists (14 and later) and says to reset phones automatically."""
        return self.release >= (14, 0) and self.phone_interaction == "automatic"

    def _administrator(self, action: str) -> None:
        """What an administrator does on the side during a run (the platform's triggers)."""
        if action == "sso":
            self.sso_enabled = True
        elif action == "drs":
            self.drs_running = "backup"

    def _identity_changed(self, node: Node, cert_type: str) -> None:
        if cert_type == "CallManager" and self.callmanager_applies_at_once:
            ident = node.identities[cert_type]
            if ident.haproxy is None:
                ident.haproxy = (ident.presented, ident.presented_key)
            if self.store.present_installed(node, [cert_type]):
                self.phone_control.presented_changed([cert_type])
        self.platform.fire("identity", self._administrator)
        if cert_type in PHONE_INTERACTION_TYPES and self.phone_interaction_applies:
            self.phone_control.reset_automatically(node, cert_type)

    def _service_stopping(self, node: Node, svc: Service) -> None:
        if svc.name == "Cisco CallManager":
            self.phone_control.callmanager_stopped(node)
        for listener in list(self.service_listeners):
            listener(node, svc)

    def _service_started(self, node: Node, svc: Service) -> None:
        types = [t for t, by in PRESENTED_BY.items() if svc.name in by]
        callmanager = node.identities.get("CallManager")
        if self.callmanager_applies_at_once and "CallManager" in types and callmanager is not None:
            # From 14SU1 HAProxy and CallManager present independently: HAProxy takes the installed
            # identity on its own restart; CallManager has it since the upload.
            types.remove("CallManager")
            if svc.name == "Cisco HAProxy":
                callmanager.haproxy = None
        elif "CallManager" in types and callmanager is not None:
            callmanager.haproxy = None
        changed = self.store.present_installed(node, types)
        if changed:
            self.phone_control.presented_changed(changed)
            if "tomcat" in changed:
                self.store.bundle_changed()
        if svc.name == "Cisco CallManager":
            self.phone_control.callmanager_started(node)
        for listener in list(self.service_listeners):
            listener(node, svc)

    # ------------------------------------------------------------------ lifecycle and time
    def start_clock(self) -> None:
        self.clock.start()

    def stop_clock(self) -> None:
        self.clock.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def advance(self) -> None:
        """Apply every timed effect that is due."""
        self.clock.advance()

    def cucm_wall(self, wall: float) -> int:
        return self.clock.cucm_wall(wall)

    def scaled(self, seconds: float) -> float:
        return self.clock.scaled(seconds)

    # ------------------------------------------------------------------ lookup
    @property
    def publisher(self) -> Node:
        return self.nodes[0]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if name in (n.name, n.short):
                return n
        raise KeyError(f"no node named {name!r}; nodes: {', '.join(n.name for n in self.nodes)}")

    # ------------------------------------------------------------------ certificates
    def bundle_certificates(self) -> list[x509.Certificate]:
        return self.store.bundle_certificates()

    def add_bundle_ca(self, cert: x509.Certificate) -> None:
        self.store.add_bundle_ca(cert)

    def chain_for(self, node: Node, cert_type: str, leaf: x509.Certificate) -> list[x509.Certificate]:
        return self.store.chain_for(node, cert_type, leaf)

    def generate_csr(
        self,
        node: Node,
        cert_type: str,
        alt_names: Sequence[str] = (),
        include_ou: bool = True,
        key_length: int | None = None,
        key_type: str | None = None,
        hash_name: str | None = None,
        multi_server: bool = False,
    ) -> x509.CertificateSigningRequest:
        return self.store.generate_csr(
            node, cert_type, alt_names, include_ou, key_length, key_type, hash_name, multi_server
        )

    def add_node(self, name: str, role: str = "subscriber") -> Node:
        """A server added to the cluster after the fact (model only: it gets no listeners): its own
        self-signed identities; a multi-server certificate uploaded before does not cover it."""
        with self.lock:
            node = Node(self, name, role, len(self.nodes))
            self.store.add_node(node)
            return node

    def regenerate(self, node: Node, cert_type: str, days: float | None = None) -> x509.Certificate:
        return self.store.regenerate(node, cert_type, days)

    def delete_csr(self, node: Node, cert_type: str) -> None:
        self.store.delete_csr(node, cert_type)

    def upload_identity(self, node: Node, cert_type: str, texts: Sequence[str | bytes]) -> x509.Certificate:
        return self.store.upload_identity(node, cert_type, texts)

    def upload_identity_to(
        self, node: Node, cert_type: str, texts: Sequence[str | bytes], via: str = "api"
    ) -> tuple[x509.Certificate, list[str]]:
        """:meth:`upload_identity`, also naming every node the certificate was installed on."""
        return self.store.upload_identity_to(node, cert_type, texts, via)

    def upload_trust(self, node: Node, cert_types: Sequence[str], texts: Sequence[str | bytes]) -> list[str]:
        return self.store.upload_trust(node, cert_types, texts)

    # ------------------------------------------------------------------ services
    def control(self, node: Node, service_name: str, action: str) -> Service:
        return self.service_control.control(node, service_name, action)

    def deploy(self, node: Node, service_name: str, deploy: bool) -> Service:
        return self.service_control.deploy(node, service_name, deploy)

    def wait_started(self, node: Node, service_name: str, timeout: float) -> bool:
        return self.service_control.wait_started(node, service_name, timeout)

    # ------------------------------------------------------------------ phones
    @property
    def device_pools(self) -> list[str]:
        return self.phone_control.device_pools

    def phone_status(self, i: int, now: float | None = None) -> str:
        return self.phone_control.phone_status(i, now)

    def phone_counts(self) -> dict[str, int]:
        return self.phone_control.phone_counts()

    def ris_phone(self, i: int, now: float) -> tuple[str, int]:
        """Phone ``i``'s Status and TimeStamp as RisPort70 reports them (``ris_lag`` behind)."""
        return self.phone_control.ris_view(i, now)

    def reset_phone(self, name: str) -> None:
        self.phone_control.reset_phone(name)

    def device_pool_uuid(self, pool: str) -> str:
        return self.phone_control.device_pool_uuid(pool)

    def find_device_pool(self, name: str | None = None, pool_uuid: str | None = None) -> str | None:
        return self.phone_control.find_device_pool(name, pool_uuid)

    def reset_device_pool(self, pool: str) -> int:
        return self.phone_control.reset_device_pool(pool)

    def update_ctl(self, node: Node) -> None:
        self.phone_control.update_ctl(node)

    def itl_reset(self, node: Node) -> None:
        self.phone_control.itl_reset(node)

    def state_id(self) -> int:
        return self.phone_control.state_id()

    # ------------------------------------------------------------------ inspection
    def state(self) -> dict[str, Any]:
        with self.lock:
            self.advance()
            counts = self.phone_counts()
            return {
                "cluster": "sim",
                "version": self.version,
                "time_scale": self.time_scale,
                "security_mode": 1 if self.mixed_mode else 0,
                "sso_enabled": self.sso_enabled,
                "drs_running": self.drs_running,
                "phone_interaction": self.phone_interaction if self.release >= (14, 0) else None,
                "ris_lag": self.ris_lag,
                **self.record.as_state(),
                "phones": counts,
                "phones_registered": counts["registered"],
                "itl_mismatched_phones": counts["itl_mismatched"],
                "services": {
                    n.name: {
                        s.name: {"status": s.status(), "start_time": iso(s.started_at)}
                        for s in n.services.values()
                    }
                    for n in self.nodes
                },
                "presented": {
                    n.name: {t: pki.fingerprint(i.presented) for t, i in n.identities.items()}
                    for n in self.nodes
                },
                # 6971 (HAProxy) where it differs from what CallManager presents (14SU1+).
                "presented_haproxy": {
                    n.name: {t: pki.fingerprint(i.haproxy[0]) for t, i in n.identities.items() if i.haproxy}
                    for n in self.nodes
                },
                "installed": {
                    n.name: {t: pki.fingerprint(i.installed) for t, i in n.identities.items()}
                    for n in self.nodes
                },
            }

    def new_tracking_id(self) -> str:
        return uuid.UUID(int=self.rng.getrandbits(128)).hex[:12].upper()
