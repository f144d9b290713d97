"""An in-memory CUCM cluster behind :class:`~adapters.cucm.port.CucmPort`, for tests.

As httpx ships ``MockTransport`` beside its real transport, :class:`FakeCucm` sits beside
:mod:`adapters.cucm.cluster`: a step's rules run against it in milliseconds, with no server. The
simulator (real HTTPS and SSH on loopback) stays the place for end-to-end tests.

What it models, as far as the steps rely on it:

* nodes with roles, publisher first; CUCM nodes carry tomcat, CallManager, ipsec, CAPF, TVS,
  tomcat-ECDSA and CallManager-ECDSA, IM&P nodes tomcat, ipsec, cup, cup-xmpp, cup-xmpp-s2s and
  their -ECDSA twins (another type is refused with ``Invalid service: <type>``); a twin shares its
  RSA twin's trust store, cup-xmpp-s2s shares cup-xmpp's;
* multi-server CSRs on the publisher (the IM&P publisher for cup-xmpp types) naming every node of
  the type's scope, and their upload installed on each of those nodes; from 14SU2 the upload is
  refused as CUCM's API does;
* per node and type, the installed identity certificate (self-signed at first, expiring in
  ``identity_days``) and the one *presented* on the type's TLS port, which becomes the installed
  one when a service that presents the type restarts (:data:`PRESENTED_BY`);
* ``<type>-trust`` stores per node, holding every node's self-signed certificate of the type at
  first; an upload lands on every node, except ``CAPF-trust`` (CUCM replicates the others);
* one CSR per node and type, each with a key of its own (RSA-2048, or P-256 for ``*-ECDSA``
  types and with ``csr_keys="ec"``): a new CSR replaces the old one, and an accepted identity
  upload consumes it;
* identity uploads checked in CUCM's order, refused with CUCM's text: format, expiry, chain to a
  root in ``<type>-trust``, CSR present, CSR public key, SANs;
* services per node with a status and a start time that moves on (by at least a second) on each
  restart; a service can be made to report ``Starting`` for a number of reads after a restart;
* phones with a node, a device pool, a registration and a RisPort ``TimeStamp``: a reset phone
  drops its registration (new TimeStamp) and registers again (new TimeStamp) after
  ``reregister_after`` RisPort sweeps, or never if it is ``stuck``; a Cisco CallManager restart
  drops the phones registered to that node the same way (they fail back after as many sweeps);
* "Phone Interaction on Certificate Update" from 14 (``phone_interaction``, default
  ``automatic``): an accepted CallManager, TVS or CAPF identity upload resets phones at once
  (CallManager: the phones of that node; the others: every phone), counted in
  :attr:`FakePhone.automatic_resets`, apart from the tool's :attr:`FakePhone.resets`;
* from 14SU1 a CallManager identity is presented on 5061 at upload, and on 6971 (HAProxy) once
  Cisco HAProxy restarts; before, both follow a CallManager or HAProxy restart;
* Cisco Tomcat restarting on a node (:attr:`FakeCucm.tomcat_down`): every API call to that node (and,
  for AXL and RisPort70, to the publisher) raises :class:`CucmUnreachable`, while
  :meth:`FakeCucm.tomcat_restarting`, read over SSH, says so;
* the cluster security mode, SSO and DRS status, the CTL update (mixed mode only), the release.

It can be unkind: :meth:`FakeCucm.unreachable`, :meth:`FakeCucm.reject` and :meth:`FakeCucm.fail_next`
make the next call of an operation fail before it acts; :meth:`FakeCucm.lose_reply` lets it act
and then raises :class:`CucmOutcomeUnknown`, as when CUCM did the work but the answer never came back.
Every call is recorded in :attr:`FakeCucm.calls`, failed ones included, so a test can assert what
was sent.

Not modelled: transports, retries, credentials and rate limits (nothing is throttled unless a
:class:`CucmThrottled` is injected); TLS verification (inject :class:`TlsVerificationError`); time
passing by itself (start times and TimeStamps come from the injected clock); key sizes, wildcards
and same-name entries in trust stores; phones dropping off when CallManager restarts; EC key sizes
and hashes (an -ECDSA CSR is always P-256); the IM&P types (cup, cup-xmpp ...). Thread-safe: steps act
on several nodes at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from adapters.cucm.port import (
    ClusterMember,
    CtlStatus,
    CucmError,
    CucmOutcomeUnknown,
    CucmPort,
    CucmRejected,
    CucmUnreachable,
    LicenseStatus,
    NodeRef,
    PhoneState,
    ReplicationRow,
    ReplicationState,
    Role,
    ServiceStatus,
    UnknownNode,
)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

CUCM_TYPES = ("tomcat", "CallManager", "ipsec", "CAPF", "TVS", "tomcat-ECDSA", "CallManager-ECDSA")
IMP_TYPES = (
    "tomcat",
    "ipsec",
    "cup",
    "cup-xmpp",
    "cup-xmpp-s2s",
    "tomcat-ECDSA",
    "cup-ECDSA",
    "cup-xmpp-ECDSA",
    "cup-xmpp-s2s-ECDSA",
)
MULTI_SERVER_SCOPE: dict[str, str] = {
    "tomcat": "all",
    "tomcat-ECDSA": "all",
    "CallManager": "cucm",
    "CallManager-ECDSA": "cucm",
    "TVS": "cucm",
    "cup-xmpp": "imp",
    "cup-xmpp-ECDSA": "imp",
    "cup-xmpp-s2s": "imp",
    "cup-xmpp-s2s-ECDSA": "imp",
}
"""The types CUCM makes multi-server (SAN) certificates for, and which nodes they name."""

PRESENTED_BY: dict[str, tuple[str, ...]] = {
    "tomcat": ("Cisco Tomcat",),
    "CallManager": ("Cisco CallManager", "Cisco HAProxy"),
    "ipsec": ("Cisco DRF Local", "Cisco DRF Master"),
    "CAPF": ("Cisco Certificate Authority Proxy Function",),
    "TVS": ("Cisco Trust Verification Service",),
    "tomcat-ECDSA": ("Cisco Tomcat",),
    "CallManager-ECDSA": ("Cisco CallManager", "Cisco HAProxy"),
    "cup": ("Cisco SIP Proxy",),
    "cup-ECDSA": ("Cisco SIP Proxy",),
    "cup-xmpp": ("Cisco XCP Router",),
    "cup-xmpp-ECDSA": ("Cisco XCP Router",),
    "cup-xmpp-s2s": ("Cisco XCP XMPP Federation Connection Manager",),
    "cup-xmpp-s2s-ECDSA": ("Cisco XCP XMPP Federation Connection Manager",),
}
"""Which service restarts make a newly installed identity the one the node presents."""

TLS_PORTS: dict[int, str] = {
    443: "tomcat",
    8443: "tomcat",
    5061: "CallManager",
    6971: "CallManager",
    2445: "TVS",
    3804: "CAPF",
    4040: "ipsec",
    5062: "cup",
    5222: "cup-xmpp",
    5269: "cup-xmpp-s2s",
}
"""Which identity a node presents on each CUCM port (5061: CallManager, or cup on IM&P)."""

EC_TWINS = {"tomcat": "tomcat-ECDSA", "CallManager": "CallManager-ECDSA", "cup": "cup-ECDSA"}
EC_TWINS.update({"cup-xmpp": "cup-xmpp-ECDSA", "cup-xmpp-s2s": "cup-xmpp-s2s-ECDSA"})

CUCM_SERVICES = (
    "Cisco Tomcat",
    "Cisco CallManager",
    "Cisco CTIManager",
    "Cisco Tftp",
    "Cisco HAProxy",
    "Cisco Trust Verification Service",
    "Cisco DRF Local",
)
PUBLISHER_SERVICES = ("Cisco Certificate Authority Proxy Function", "Cisco DRF Master")
IMP_SERVICES = (
    "Cisco Tomcat",
    "Cisco DRF Local",
    "Cisco XCP Router",
    "Cisco SIP Proxy",
    "Cisco Presence Engine",
    "Cisco XCP XMPP Federation Connection Manager",
    "Cisco Intercluster Sync Agent",
)

# CUCM's texts (certmgr and the CLI); the last three are modelled, as in the simulator.
TRUST_MISSING = "CA Certificate is Not Available in the Trust-Store"
KEY_MISMATCH = "CSR Public Key and Certificate Public Key Do Not Match"
SAN_MISMATCH = "CSR SAN and Certificate SAN Does Not Match"
BAD_FORMAT = "Invalid certificate format. Only PEM or DER encoded X.509 certificates are supported"
EXPIRED = "Certificate has expired"
CTL_NOT_MIXED = "The cluster is in non-secure mode. The CTL file can be updated only in mixed mode"
MULTI_SERVER_UPLOAD_GUI_ONLY = (
    "Multi-server(SAN) certificate upload is supported only through Cisco Unified OS Administration "
    "(Security > Certificate Management > Upload Certificate/Certificate chain)"
)

OPERATIONS = frozenset(
    {
        "nodes",
        "node",
        "version",
        "security_mode",
        "identity_certificate",
        "trust_certificates",
        "generate_csr",
        "current_csr",
        "upload_trust",
        "upload_identity",
        "upload_multi_server_identity",
        "identities",
        "sso_enabled",
        "backup_running",
        "ctl_update",
        "restart_service",
        "service_status",
        "reset_phones",
        "device_pools",
        "reset_device_pools",
        "registered_phones",
        "presented_certificate",
        "tomcat_restarting",
        "close",
    }
)
"""The port's operations, as :meth:`FakeCucm.fail_next` and :attr:`FakeCucm.calls` name them."""

DEFAULT_NODES: tuple[tuple[str, Role], ...] = (
    ("cucm-pub.example.com", "publisher"),
    ("cucm-sub1.example.com", "subscriber"),
    ("imp1.example.com", "imp"),
)


AUTOMATIC_RESET_TYPES = frozenset({"CallManager", "TVS", "CAPF"})
"""Identities whose upload makes CUCM 14+ reset phones itself (RN14, SG14)."""

SSH_OPERATIONS = frozenset(
    {"tomcat_restarting", "sso_enabled", "backup_running", "ctl_update", "presented_certificate", "close"}
)
"""Operations that do not go through the node's Tomcat (SSH CLI, TLS ports, nothing)."""
PUBLISHER_OPERATIONS = frozenset(
    {
        "nodes",
        "version",
        "security_mode",
        "reset_phones",
        "device_pools",
        "reset_device_pools",
        "registered_phones",
    }
)
"""AXL and RisPort70 operations, all sent to the publisher."""


def _release(version: str) -> tuple[int, int, int]:
    """(major, minor, SU) of ``14.0.1.13900-155`` (the fourth field's thousands give the SU)."""
    parts = version.split("-")[0].split(".")
    major, minor = int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    build = int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else 0
    return major, minor, max(0, build // 1000 - 10) if build >= 10000 else 0


def csr_missing_text(cert_type: str) -> str:
    return f"File /usr/local/platform/.security/{cert_type}/keys/{cert_type}.csr Does Not Exist"


# --------------------------------------------------------------------------- state


@dataclass(frozen=True)
class Call:
    """One call of the port: the operation, the node it named (if any) and its other arguments."""

    op: str
    node: str | None
    args: Mapping[str, Any]


@dataclass
class FakeService:
    name: str
    status: str = "Started"
    start_time: datetime | None = None
    activated: bool = True
    starting_reads: int = 0
    """After each restart, how many status reads show ``Starting`` before ``Started``."""
    _starting_left: int = 0


@dataclass
class FakePhone:
    name: str
    node: str
    pool: str | None
    status: str = "Registered"
    timestamp: int = 0
    stuck: bool = False
    """A stuck phone does not register again after a reset."""
    resets: int = 0
    """Resets the port was asked for (doDeviceReset, or its device pool's)."""
    automatic_resets: int = 0
    """Resets CUCM made itself on an identity upload (Phone Interaction on Certificate Update)."""
    _sweeps_left: int | None = None


@dataclass
class _Identity:
    installed: x509.Certificate
    presented: x509.Certificate
    csr: x509.CertificateSigningRequest | None = None
    csr_nodes: tuple[str, ...] = ()
    haproxy: x509.Certificate | None = None
    """CallManager only: what Cisco HAProxy presents on 6971 (``None``: the same as ``presented``)."""


@dataclass
class _Node:
    ref: NodeRef
    identities: dict[str, _Identity] = field(default_factory=dict)
    trust: dict[str, list[x509.Certificate]] = field(default_factory=dict)
    services: dict[str, FakeService] = field(default_factory=dict)


@dataclass
class _Fault:
    op: str
    node: str | None
    error: CucmError
    reply_lost: bool


# --------------------------------------------------------------------------- the fake


class FakeCucm:
    """One CUCM cluster in memory; see the module docstring for what it models and what not.

    ``nodes``: ``(name, role)`` pairs, exactly one publisher. ``clock``: the current time (aware,
    UTC), for certificates, start times and TimeStamps. ``csr_keys="ec"`` gives every CSR a P-256
    key instead of CUCM's RSA-2048: a thousand times faster to make, for tests that make many.

    Its state is public for tests to arrange and inspect: :attr:`phones`, :attr:`sso`,
    :attr:`backup`, :attr:`mixed_mode`, :attr:`release`, :meth:`service`, :meth:`add_phones`,
    :meth:`regenerate`, :meth:`presented`.
    """

    def __init__(
        self,
        cluster: str = "fake",
        nodes: Sequence[tuple[str, Role]] = DEFAULT_NODES,
        *,
        release: str = "14.0.1.13900-155",
        mixed_mode: bool = False,
        identity_days: float = 20.0,
        reregister_after: int = 1,
        csr_keys: Literal["rsa", "ec"] = "rsa",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        publishers = [name for name, role in nodes if role == "publisher"]
        if len(publishers) != 1:
            raise ValueError(f"a fake cluster needs exactly one publisher, got {publishers or 'none'}")
        self._cluster = cluster
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()
        self.release = release
        self.phone_interaction: Literal["automatic", "manual"] = "automatic"
        self.tomcat_down: set[str] = set()
        self.mixed_mode = mixed_mode
        self.sso = False
        self.backup = False
        # Readiness, healthy by default; tests set them (see the Readiness methods).
        self.replication: ReplicationState | None = None
        self.cluster_members: list[ClusterMember] | None = None
        self.ctl = CtlStatus(present=mixed_mode, signer="cn=ITLRECOVERY_pub" if mixed_mode else "")
        self.license = LicenseStatus(registered=True, export_allowed=True, status="REGISTERED")
        self.itl_recovery: str | None = None
        self.reregister_after = reregister_after
        self._csr_keys = csr_keys
        self.phones: dict[str, FakePhone] = {}
        self.ctl_updates = 0
        self.closed = 0
        self.calls: list[Call] = []
        self._faults: list[_Fault] = []
        self._stamp = 0
        ordered = sorted(nodes, key=lambda nr: nr[1] != "publisher")
        self._nodes: dict[str, _Node] = {}
        for name, role in ordered:
            node = _Node(NodeRef(name, name, 8443, 22, role))
            services: tuple[str, ...] = IMP_SERVICES if role == "imp" else CUCM_SERVICES
            services += PUBLISHER_SERVICES if role == "publisher" else ()
            started = self._now() - timedelta(days=3)
            node.services = {s: FakeService(s, start_time=started) for s in services}
            for kind in IMP_TYPES if role == "imp" else CUCM_TYPES:
                cert = _self_signed(name, kind, self._now(), identity_days)
                node.identities[kind] = _Identity(cert, cert)
            self._nodes[name] = node
        for node in self._nodes.values():
            for kind in node.identities:
                node.trust.setdefault(_store(kind), []).extend(
                    other.identities[kind].installed
                    for other in self._nodes.values()
                    if kind in other.identities
                )

    def __repr__(self) -> str:
        return f"FakeCucm({self._cluster!r}, {len(self._nodes)} nodes, {len(self.phones)} phones)"

    # ------------------------------------------------------------------ arranging

    def service(self, node: str, name: str) -> FakeService:
        """The service on the node, created (Started) if the node does not have it yet."""
        with self._lock:
            services = self._node(node).services
            return services.setdefault(name, FakeService(name, start_time=self._now() - timedelta(days=3)))

    def remove_service(self, node: str, name: str) -> None:
        """The node no longer knows the service (ControlCenterServices reports ``NotFound``)."""
        with self._lock:
            self._node(node).services.pop(name, None)

    def add_phones(
        self,
        names: Iterable[str],
        *,
        node: str | None = None,
        pool: str | None = None,
        registered: bool = True,
    ) -> list[FakePhone]:
        """Phones registered to ``node`` (default: the publisher), in ``pool`` (``None``: none)."""
        with self._lock:
            where = node or self.publisher
            self._node(where)
            added = []
            for name in names:
                phone = FakePhone(name, where, pool, "Registered" if registered else "UnRegistered")
                phone.timestamp = self._next_stamp()
                self.phones[name] = phone
                added.append(phone)
            return added

    def regenerate(self, node: str, cert_type: str, *, days: float) -> str:
        """``set cert regen``: a new self-signed identity valid ``days`` days, installed now and
        presented after the type's restart; it replaces the old one in every ``<type>-trust``."""
        with self._lock:
            ident = self._identity(node, cert_type)
            old = ident.installed
            cert = _self_signed(node, cert_type, self._now(), days)
            ident.installed = cert
            for other in self._nodes.values():
                store = other.trust.get(_store(cert_type))
                if store is not None:
                    store[:] = [c for c in store if c != old] + [cert]
            return _pem(cert)

    def presented(self, node: str, cert_type: str) -> str:
        """The PEM the node presents for the type now (without recording a call)."""
        with self._lock:
            return _pem(self._identity(node, cert_type).presented)

    def _multi_server_home(self, scope: str) -> str:
        imp = [n for n, v in self._nodes.items() if v.ref.role == "imp"]
        return imp[0] if scope == "imp" and imp else self.publisher

    @property
    def publisher(self) -> str:
        return next(iter(self._nodes))

    # ------------------------------------------------------------------ unkindness

    def fail_next(
        self, op: str, error: CucmError, *, node: str | None = None, reply_lost: bool = False
    ) -> None:
        """The next call of ``op`` (on ``node``, if given) raises ``error``; before acting, or after
        it when ``reply_lost``. Faults queue up in the order given."""
        if op not in OPERATIONS:
            raise ValueError(
                f"{op!r} is not an operation of the port; one of: {', '.join(sorted(OPERATIONS))}"
            )
        with self._lock:
            self._faults.append(_Fault(op, node, error, reply_lost))

    def unreachable(self, op: str, *, node: str | None = None) -> None:
        """The next call of ``op`` does not reach CUCM: nothing happens, :class:`CucmUnreachable`."""
        where = node or self.publisher
        self.fail_next(op, CucmUnreachable(f"{op} on {where}: connection refused", node=where), node=node)

    def reject(self, op: str, cucm_message: str, *, node: str | None = None, status: int = 400) -> None:
        """CUCM refuses the next call of ``op`` with ``cucm_message``: :class:`CucmRejected`."""
        where = node or self.publisher
        error = CucmRejected(
            f"{op} refused by {where} (HTTP {status}): {cucm_message}",
            cucm_message=cucm_message,
            node=where,
            status=status,
        )
        self.fail_next(op, error, node=node)

    def lose_reply(self, op: str, *, node: str | None = None) -> None:
        """The next call of ``op`` is carried out, then its reply is lost: :class:`CucmOutcomeUnknown`
        (what the adapters raise once a request with effects was sent and no answer came)."""
        where = node or self.publisher
        error = CucmOutcomeUnknown(f"{op} on {where}: connection reset while reading the reply", node=where)
        self.fail_next(op, error, node=node, reply_lost=True)

    def calls_to(self, op: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.op == op]

    def forget_calls(self) -> None:
        """Clear :attr:`calls`, e.g. once a test has arranged its state through the port."""
        with self._lock:
            self.calls.clear()

    # ------------------------------------------------------------------ ClusterInfo

    @property
    def cluster(self) -> str:
        return self._cluster

    def nodes(self) -> list[NodeRef]:
        with self._call("nodes"):
            refs = [n.ref for n in self._nodes.values()]
        return refs

    def node(self, name: str) -> NodeRef:
        with self._call("node", name):
            ref = self._node(name).ref
        return ref

    def version(self) -> str:
        with self._call("version"):
            release = self.release
        return release

    def security_mode(self) -> int:
        with self._call("security_mode"):
            mode = 1 if self.mixed_mode else 0
        return mode

    # ------------------------------------------------------------------ Certificates

    def identity_certificate(self, node: str, cert_type: str) -> str:
        with self._call("identity_certificate", node, cert_type=cert_type):
            pem = _pem(self._identity(node, cert_type).installed)
        return pem

    def trust_certificates(self, node: str, cert_type: str) -> list[str]:
        with self._call("trust_certificates", node, cert_type=cert_type):
            self._identity(node, cert_type)
            pems = [_pem(c) for c in self._node(node).trust[_store(cert_type)]]
        return pems

    def generate_csr(
        self,
        node: str,
        cert_type: str,
        *,
        multi_server: bool = False,
        common_name: str | None = None,
        alt_names: Sequence[str] = (),
        include_ou: bool | None = None,
    ) -> str:
        args: dict[str, Any] = {"cert_type": cert_type, "multi_server": multi_server}
        if common_name is not None or alt_names:
            args.update(common_name=common_name, alt_names=list(alt_names))
        with self._call("generate_csr", node, **args):
            ident = self._identity(node, cert_type)
            key: PrivateKey = (
                ec.generate_private_key(ec.SECP256R1())
                if cert_type.endswith("-ECDSA") or self._csr_keys == "ec"
                else rsa.generate_private_key(public_exponent=65537, key_size=2048)
            )
            names: tuple[str, ...] = ()
            if multi_server:
                scope = MULTI_SERVER_SCOPE.get(cert_type)
                if scope is None:
                    raise self._refused(
                        "generate_csr",
                        node,
                        f"Multi-server(SAN) distribution is not supported for {cert_type}",
                    )
                home = self._multi_server_home(scope)
                if node != home:
                    raise self._refused(
                        "generate_csr",
                        node,
                        "Multi-server(SAN) certificate signing requests are generated on the "
                        f"publisher ({home})",
                    )
                names = tuple(
                    n
                    for n, v in self._nodes.items()
                    if cert_type in v.identities and _in_scope(v.ref.role, scope)
                )
                host, _, domain = node.partition(".")
                suffix = "-EC-ms" if cert_type.endswith("-ECDSA") else "-ms"
                ident.csr = _csr(key, f"{host}{suffix}.{domain}", cert_type, alt_names=names, cn_in_san=False)
            else:
                ident.csr = _csr(key, node, cert_type, common_name, alt_names)
            ident.csr_nodes = names
            pem = ident.csr.public_bytes(Encoding.PEM).decode()
        return pem

    def identities(self, node: str) -> dict[str, str]:
        with self._call("identities", node):
            found = {t: _pem(i.installed) for t, i in self._node(node).identities.items()}
        return found

    def current_csr(self, node: str, cert_type: str) -> str | None:
        with self._call("current_csr", node, cert_type=cert_type):
            csr = self._identity(node, cert_type).csr
            pem = csr.public_bytes(Encoding.PEM).decode() if csr is not None else None
        return pem

    def upload_trust(self, node: str, cert_type: str, pems: list[str], description: str) -> None:
        with self._call("upload_trust", node, cert_type=cert_type, pems=list(pems), description=description):
            self._identity(node, cert_type)
            certs = [self._parse(node, cert_type, pem) for pem in pems]
            for cert in certs:
                if cert.not_valid_after_utc < self._now():
                    raise self._refused("upload_trust", node, EXPIRED)
            targets = [self._node(node)] if cert_type == "CAPF" else list(self._nodes.values())
            for target in targets:
                store = target.trust.get(_store(cert_type))
                if store is None:
                    continue
                for cert in certs:
                    if cert not in store:
                        store.append(cert)

    def upload_identity(self, node: str, cert_type: str, leaf_pem: str, chain: list[str]) -> None:
        with self._call("upload_identity", node, cert_type=cert_type, leaf_pem=leaf_pem, chain=list(chain)):
            ident = self._identity(node, cert_type)
            leaf = self._parse(node, cert_type, leaf_pem)
            if leaf.not_valid_after_utc < self._now():
                raise self._refused("upload_identity", node, EXPIRED)
            if not _chains_to(self._node(node).trust[_store(cert_type)], leaf):
                raise self._refused("upload_identity", node, TRUST_MISSING)
            if ident.csr is None:
                raise self._refused("upload_identity", node, csr_missing_text(cert_type))
            if _public_der(ident.csr) != _public_der(leaf):
                raise self._refused("upload_identity", node, KEY_MISMATCH)
            if _sans(ident.csr) != _sans(leaf):
                raise self._refused("upload_identity", node, SAN_MISMATCH)
            ident.installed = leaf
            # CUCM consumes the CSR on import: a later upload needs a new CSR.
            ident.csr = None
            ident.csr_nodes = ()
            if cert_type == "CallManager" and _release(self.release) >= (14, 0, 1):
                # RN14 "Certificate Regeneration without Service Restarts": CallManager takes the new
                # identity at once; HAProxy (6971) keeps the old one until it restarts.
                ident.haproxy = ident.haproxy or ident.presented
                ident.presented = leaf
            if (
                cert_type in AUTOMATIC_RESET_TYPES
                and _release(self.release) >= (14, 0, 0)
                and self.phone_interaction == "automatic"
            ):
                for phone in self.phones.values():
                    if cert_type != "CallManager" or phone.node == node:
                        self._drop(phone)
                        phone.automatic_resets += 1

    def upload_multi_server_identity(
        self, node: str, cert_type: str, leaf_pem: str, chain: list[str]
    ) -> list[str]:
        with self._call(
            "upload_multi_server_identity", node, cert_type=cert_type, leaf_pem=leaf_pem, chain=list(chain)
        ):
            ident = self._identity(node, cert_type)
            if ident.csr_nodes and _build(self.release) >= _build("14.0.1.12900-161"):
                raise self._refused("upload_multi_server_identity", node, MULTI_SERVER_UPLOAD_GUI_ONLY)
            leaf = self._parse(node, cert_type, leaf_pem)
            if leaf.not_valid_after_utc < self._now():
                raise self._refused("upload_multi_server_identity", node, EXPIRED)
            if not _chains_to(self._node(node).trust[_store(cert_type)], leaf):
                raise self._refused("upload_multi_server_identity", node, TRUST_MISSING)
            if ident.csr is None:
                raise self._refused("upload_multi_server_identity", node, csr_missing_text(cert_type))
            if _public_der(ident.csr) != _public_der(leaf):
                raise self._refused("upload_multi_server_identity", node, KEY_MISMATCH)
            if _sans(ident.csr) != _sans(leaf):
                raise self._refused("upload_multi_server_identity", node, SAN_MISMATCH)
            names = list(ident.csr_nodes) or [node]
            for name in names:
                if name in self._nodes and cert_type in self._nodes[name].identities:
                    self._nodes[name].identities[cert_type].installed = leaf
            ident.csr, ident.csr_nodes = None, ()
        return names

    # ------------------------------------------------------------------ Services

    def restart_service(self, node: str, service: str) -> None:
        with self._call("restart_service", node, service=service):
            target = self._node(node)
            svc = target.services.get(service)
            if svc is None:
                raise self._refused("restart_service", node, f"Service Not Found: {service}")
            if not svc.activated:
                raise self._refused("restart_service", node, f"{service} Service Not Activated")
            now = self._now().replace(microsecond=0)
            previous = svc.start_time
            svc.start_time = max(now, previous + timedelta(seconds=1)) if previous is not None else now
            svc.status = "Started"
            svc._starting_left = svc.starting_reads
            split = _release(self.release) >= (14, 0, 1)
            for kind, presenters in PRESENTED_BY.items():
                if service in presenters and kind in target.identities:
                    ident = target.identities[kind]
                    if kind == "CallManager" and split:
                        if service == "Cisco HAProxy":
                            ident.haproxy = ident.installed
                        else:
                            ident.haproxy = ident.haproxy or ident.presented
                            ident.presented = ident.installed
                    else:
                        ident.presented = ident.installed
                        ident.haproxy = None
            if service == "Cisco CallManager":
                for phone in self.phones.values():
                    if phone.node == node:
                        self._drop(phone)

    def tomcat_restarting(self, node: str) -> bool:
        with self._call("tomcat_restarting", node):
            restarting = node in self.tomcat_down
        return restarting

    def service_status(self, node: str, service: str) -> ServiceStatus:
        with self._call("service_status", node, service=service):
            svc = self._node(node).services.get(service)
            if svc is None:
                status = ServiceStatus(service, "NotFound", None)
            elif not svc.activated:
                status = ServiceStatus(service, "Stopped", None, "Service Not Activated")
            elif svc._starting_left > 0:
                svc._starting_left -= 1
                status = ServiceStatus(service, "Starting", None)
            else:
                running = svc.status == "Started"
                status = ServiceStatus(service, svc.status, svc.start_time if running else None)
        return status

    # ------------------------------------------------------------------ Phones

    def reset_phones(self, names: Iterable[str], *, hard: bool = True) -> int:
        wanted = list(dict.fromkeys(names))
        with self._call("reset_phones", names=wanted, hard=hard):
            accepted = sum(self._reset(self.phones[n]) for n in wanted if n in self.phones)
        return accepted

    def device_pools(self) -> dict[str, list[str]]:
        with self._call("device_pools"):
            pools: dict[str, list[str]] = {}
            for phone in self.phones.values():
                if phone.pool is not None:
                    pools.setdefault(phone.pool, []).append(phone.name)
        return {pool: sorted(members) for pool, members in sorted(pools.items())}

    def reset_device_pools(self, names: Iterable[str]) -> int:
        wanted = list(dict.fromkeys(names))
        with self._call("reset_device_pools", names=wanted):
            accepted = 0
            for pool in wanted:
                # CUCM matches pool names without regard to case.
                members = [
                    p for p in self.phones.values() if p.pool is not None and p.pool.upper() == pool.upper()
                ]
                for phone in members:
                    self._reset(phone)
                accepted += 1 if members else 0
        return accepted

    def registered_phones(
        self, names: Iterable[str] | None = None, *, device_class: str = "Phone"
    ) -> dict[str, PhoneState]:
        wanted = None if names is None else list(names)
        with self._call("registered_phones", names=wanted, device_class=device_class):
            # Each sweep is a moment later: reset phones come back after ``reregister_after`` of them.
            for phone in self.phones.values():
                if phone._sweeps_left is None or phone.stuck:
                    continue
                if phone._sweeps_left > 0:
                    phone._sweeps_left -= 1
                else:
                    phone._sweeps_left = None
                    phone.status = "Registered"
                    phone.timestamp = self._next_stamp()
            seen: dict[str, FakePhone] = self.phones if device_class == "Phone" else {}
            chosen = seen.values() if wanted is None else [seen[n] for n in wanted if n in seen]
            found = {p.name: PhoneState(p.name, p.status, p.node, p.timestamp) for p in chosen}
        return found

    # ------------------------------------------------------------------ Platform

    def sso_enabled(self, node: str) -> bool:
        with self._call("sso_enabled", node):
            enabled = self.sso
        return enabled

    def backup_running(self) -> bool:
        with self._call("backup_running"):
            running = self.backup
        return running

    def ctl_update(self) -> str:
        with self._call("ctl_update"):
            if not self.mixed_mode:
                raise self._refused("ctl_update", self.publisher, CTL_NOT_MIXED)
            self.ctl_updates += 1
        return "Updating CTL file\nThe CTL file was successfully updated\n"

    # ------------------------------------------------------------------ Readiness

    def replication_state(self) -> ReplicationState:
        with self._call("replication_state"):
            state = self.replication or ReplicationState(
                tuple(ReplicationRow(n.split(".")[0], "", 2, "(2) Setup Completed") for n in self._nodes)
            )
        return state

    def network_cluster(self) -> list[ClusterMember]:
        with self._call("network_cluster"):
            members = self.cluster_members
            if members is None:
                members = [
                    ClusterMember(
                        ip=f"192.0.2.{10 + i}",
                        fqdn=name,
                        host=name.split(".")[0],
                        role="Publisher" if node.ref.role == "publisher" else "Subscriber",
                        product="cups" if node.ref.role == "imp" else "callmanager",
                        db_role="DBPub" if node.ref.role == "publisher" else "DBSub",
                        authenticated=True,
                    )
                    for i, (name, node) in enumerate(self._nodes.items())
                ]
        return list(members)

    def ctl_status(self) -> CtlStatus:
        with self._call("ctl_status"):
            status = self.ctl
        return status

    def license_status(self) -> LicenseStatus:
        with self._call("license_status"):
            status = self.license
        return status

    def itl_recovery_certificate(self) -> str | None:
        with self._call("itl_recovery_certificate"):
            pem = self.itl_recovery
        return pem

    # ------------------------------------------------------------------ Tls

    def presented_certificate(self, node: str, port: int, *, key_type: str = "any") -> bytes:
        with self._call("presented_certificate", node, port=port):
            target = self._node(node)
            kind = "cup" if port == 5061 and target.ref.role == "imp" else TLS_PORTS.get(port)
            if key_type == "ec" and kind is not None:
                kind = EC_TWINS.get(kind)
            if kind is None or kind not in target.identities:
                raise CucmUnreachable(f"TLS on {node} port {port}: connection refused", node=node)
            ident = target.identities[kind]
            cert = (ident.haproxy or ident.presented) if port == 6971 else ident.presented
            der = cert.public_bytes(Encoding.DER)
        return der

    def close(self) -> None:
        with self._call("close"):
            self.closed += 1

    # ------------------------------------------------------------------ internals

    @contextmanager
    def _call(self, op: str, node: str | None = None, **args: Any) -> Iterator[None]:
        with self._lock:
            self.calls.append(Call(op, node, args))
            fault = next(
                (f for f in self._faults if f.op == op and (f.node is None or f.node == node)),
                None,
            )
            if fault is not None:
                self._faults.remove(fault)
                if not fault.reply_lost:
                    raise fault.error
            if node is not None:
                self._node(node)
            down = self._tomcat_down_for(op, node)
            if down is not None:
                raise CucmUnreachable(
                    f"{op} on {down}: connection refused (Cisco Tomcat is not running)", node=down
                )
            yield
            if fault is not None:
                raise fault.error

    def _node(self, name: str) -> _Node:
        node = self._nodes.get(name)
        if node is None:
            raise UnknownNode(
                f"cluster {self._cluster!r} has no node {name!r} (known: {', '.join(self._nodes)})",
                cucm_message="",
            )
        return node

    def _identity(self, node: str, cert_type: str) -> _Identity:
        ident = self._node(node).identities.get(cert_type)
        if ident is None:
            raise self._refused("certificates", node, f"Invalid service: {cert_type}")
        return ident

    def _parse(self, node: str, cert_type: str, pem: str) -> x509.Certificate:
        try:
            return x509.load_pem_x509_certificate(pem.encode())
        except ValueError:
            raise self._refused("upload", node, BAD_FORMAT) from None

    @staticmethod
    def _refused(op: str, node: str, text: str) -> CucmRejected:
        return CucmRejected(
            f"{op} refused by {node} (HTTP 400): {text}", cucm_message=text, node=node, status=400
        )

    def _reset(self, phone: FakePhone) -> bool:
        self._drop(phone)
        phone.resets += 1
        return True

    def _drop(self, phone: FakePhone) -> None:
        phone.status = "UnRegistered"
        phone.timestamp = self._next_stamp()
        phone._sweeps_left = None if phone.stuck else self.reregister_after

    def _tomcat_down_for(self, op: str, node: str | None) -> str | None:
        """The node whose stopped Tomcat ``op`` needs, if any: the node's own APIs, and the
        publisher's AXL and RisPort70 for the cluster-wide operations."""
        if not self.tomcat_down or op in SSH_OPERATIONS:
            return None
        where = node if node is not None and op not in PUBLISHER_OPERATIONS else self.publisher
        return where if where in self.tomcat_down else None

    def _now(self) -> datetime:
        return self._clock()

    def _next_stamp(self) -> int:
        # RisPort's TimeStamp is in seconds: two changes in one second must still differ.
        self._stamp = max(int(self._now().timestamp()), self._stamp + 1)
        return self._stamp


# --------------------------------------------------------------------------- certificates


def _store(cert_type: str) -> str:
    """The trust store a type's chain goes to, named by its RSA type (cup-xmpp-s2s: cup-xmpp)."""
    base = cert_type.removesuffix("-ECDSA")
    return "cup-xmpp" if base == "cup-xmpp-s2s" else base


def _in_scope(role: str, scope: str) -> bool:
    return scope == "all" or (role == "imp") == (scope == "imp")


def _build(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.replace("-", ".").split(".") if p.isdigit())


def _name(node: str, cert_type: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, node),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, cert_type),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Voice"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        ]
    )


_shared_key: list[rsa.RSAPrivateKey] = []
_shared_key_lock = threading.Lock()


def _identity_key() -> rsa.RSAPrivateKey:
    # The initial self-signed identities share one key per process: generating an RSA key costs
    # tens of milliseconds, and nothing here depends on those keys being distinct. CSRs never share.
    with _shared_key_lock:
        if not _shared_key:
            _shared_key.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        return _shared_key[0]


def _self_signed(node: str, cert_type: str, now: datetime, days: float) -> x509.Certificate:
    key = _identity_key()
    name = _name(node, cert_type)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=365))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(node)]), critical=False)
        .sign(key, hashes.SHA256())
    )


def _csr(
    key: PrivateKey,
    node: str,
    cert_type: str,
    common_name: str | None = None,
    alt_names: Sequence[str] = (),
    *,
    cn_in_san: bool = True,
) -> x509.CertificateSigningRequest:
    # A multi-server CSR's SAN lists the nodes, not its own "-ms" common name.
    cn = common_name or node
    sans = list(dict.fromkeys([cn, *alt_names])) if cn_in_san else list(alt_names)
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(cn, cert_type))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False)
        .sign(key, hashes.SHA256())
    )


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(Encoding.PEM).decode()


def _public_der(obj: x509.Certificate | x509.CertificateSigningRequest) -> bytes:
    return obj.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _sans(obj: x509.Certificate | x509.CertificateSigningRequest) -> set[str]:
    try:
        return set(
            obj.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
                x509.DNSName
            )
        )
    except x509.ExtensionNotFound:
        return set()


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    if child.issuer != parent.subject:
        return False
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _chains_to(store: Sequence[x509.Certificate], leaf: x509.Certificate) -> bool:
    """Whether ``leaf`` chains, through certificates in ``store``, to a self-signed root there."""
    current = leaf
    for _ in range(8):
        issuer = next((c for c in store if _issued_by(current, c)), None)
        if issuer is None:
            return False
        if issuer.issuer == issuer.subject:
            return True
        current = issuer
    return False


def _conforms(fake: FakeCucm) -> CucmPort:
    # mypy checks here that the fake structurally implements the whole port.
    return fake
