"""What the workflows may ask of one CUCM cluster, and what can go wrong.

Workflows import this module only, never an implementation: :class:`CucmPort` is the single seam
between the certificate workflows and CUCM (REST certmgr, SSH CLI, ControlCenterServices, RisPort70,
AXL). One port object serves one cluster; it is built from configuration by
``adapters.cucm.cluster.build_cluster``, or held in memory by ``adapters.cucm.fake.FakeCucm`` for
tests.

The port is made of one small protocol per role, each documented by what it promises and raises::

    ClusterInfo    nodes, release, security mode
    Certificates   identity certificates, trust stores, CSRs
    Services       restart, status and start time
    Phones         resets by name or device pool, registration
    Platform       SSO and DRS status, the CTL update (platform CLI)
    Readiness      replication, `show network cluster`, CTL signer, licensing, ITLRecovery (CLI)
    Tls            the certificate a node presents on a port

Nodes are named by their ``name`` (the FQDN that is the CN/SAN of their certificates), never by
address. A certificate type (``cert_type``) is CUCM's unit name: ``tomcat``, ``CallManager``,
``ipsec``, ``CAPF``, ``TVS``, and from 14 the EC twins ``tomcat-ECDSA`` and ``CallManager-ECDSA``;
IM&P nodes carry ``tomcat``, ``ipsec``, ``cup``, ``cup-xmpp``, ``cup-xmpp-s2s`` and their ``-ECDSA``
twins; the publisher also ``ITLRecovery`` (read only: the tool never regenerates it). Certificates
travel as PEM text; CSRs as PEM text.

Errors, all raised from the methods below (never a bare ``requests``/``paramiko`` exception)::

    CucmError                      base: anything the adapter could not do
    ├── CucmUnreachable            transient: the request never reached CUCM (connection refused,
    │                              connect timeout, TLS handshake failure, name resolution), or a read
    │                              failed (5xx, lost answer). Already retried (bounded); the caller may
    │                              retry later.
    │   ├── CucmThrottled          RisPort70's (or AXL's) rate-limit fault, still present after backing off
    │   └── CucmOutcomeUnknown     a request with effects was sent and no answer came back (read
    │                              timeout, connection closed or reset, HTTP 5xx, SSH channel lost):
    │                              CUCM may have carried it out. Never resent by the adapter; the
    │                              caller reads CUCM (the matching read of each write) before sending
    │                              it again.
    ├── CucmRejected               permanent: CUCM refused the request (HTTP 4xx other than 401,
    │                              SOAP fault, CLI error line). ``.cucm_message`` holds CUCM's text
    │                              verbatim (e.g. "CA Certificate is Not Available in the Trust-Store").
    │   └── UnknownNode            the node name is not one of this cluster's nodes
    ├── CucmAuthError              permanent: credentials refused (HTTP 401, SSH auth failure)
    ├── TlsVerificationError       permanent: the node's TLS certificate does not verify against the
    │                              cluster's CA bundle for the node's name
    └── HostKeyMismatch            permanent: the node's SSH host key is unknown or differs from the
                                   cluster's known_hosts file

Messages never contain credentials; they name the node, the operation and the fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

Role = Literal["publisher", "subscriber", "imp"]


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class NodeRef:
    """One server of the cluster.

    ``name`` is the FQDN its certificates are issued for and TLS is verified against; ``address``
    is where it is reached (often the same). ``https_port`` serves certmgr REST, AXL and the
    serviceability SOAP services (CUCM: 8443); ``ssh_port`` the platform CLI (CUCM: 22).
    """

    name: str
    address: str
    https_port: int
    ssh_port: int
    role: Role


@dataclass(frozen=True)
class ServiceStatus:
    """A service on one node, as ControlCenterServices reports it.

    ``status`` is CUCM's word: ``Started``, ``Stopped``, ``Starting``, ``Stopping`` or ``Unknown``
    (``NotFound`` when the node does not know the service). ``start_time`` is when it last started
    (timezone-aware UTC), ``None`` when not running or not reported. ``reason`` is CUCM's
    ReasonCodeString when it reports one (e.g. ``Service Not Activated``), else empty.
    """

    name: str
    status: str
    start_time: datetime | None
    reason: str = ""


@dataclass(frozen=True)
class PhoneState:
    """One device's registration as RisPort70 reports it.

    ``status`` is ``Registered``, ``UnRegistered``, ``Rejected``, ``PartiallyRegistered`` or
    ``Unknown``; ``node`` is the CallManager node that reported it; ``timestamp`` is RisPort's
    ``TimeStamp``, the time (epoch seconds, CUCM's clock) of the device's last status change, when
    it was given. Two sweeps showing the same timestamp saw the same registration.
    """

    name: str
    status: str
    node: str
    timestamp: int | None = None


@dataclass(frozen=True)
class ReplicationRow:
    """One server of ``utils dbreplication runtimestate``: ``state`` is CUCM's Replicate_State
    (2 = Setup Completed, the only healthy value; 0, 1, 3, 4 otherwise, PCD14); ``text`` the
    column verbatim, e.g. ``(2) Setup Completed``."""

    server: str
    ip: str
    state: int
    text: str


@dataclass(frozen=True)
class ReplicationState:
    """``utils dbreplication runtimestate`` on the publisher: one row per CUCM server, or ``note``
    when CUCM printed no table (a single-node cluster, Cisco DB down)."""

    rows: tuple[ReplicationRow, ...]
    note: str = ""


@dataclass(frozen=True)
class ClusterMember:
    """One line of ``show network cluster``: ``authenticated`` is whether CUCM says so."""

    ip: str
    fqdn: str
    host: str
    role: str
    product: str
    db_role: str
    authenticated: bool


@dataclass(frozen=True)
class CtlStatus:
    """``show ctl``: ``present`` (a CTL file exists), ``signer`` (the SUBJECTNAME of the record that
    signed it) and ``token`` (that signer is a hardware ``SAST-ADN`` eToken, not the cluster's key)."""

    present: bool
    signer: str = ""
    token: bool = False


@dataclass(frozen=True)
class LicenseStatus:
    """``show license all`` on the publisher: ``registered`` and ``export_allowed`` are ``None``
    when the output does not say (no Smart Licensing: releases before 12.0)."""

    registered: bool | None
    export_allowed: bool | None
    status: str = ""


# --------------------------------------------------------------------------- errors


class CucmError(Exception):
    """Base of every error the CUCM adapters raise. ``node`` is the node name when known."""

    def __init__(self, message: str, *, node: str | None = None) -> None:
        super().__init__(message)
        self.node = node


class CucmUnreachable(CucmError):
    """Transient: the node could not be reached or answered 5xx; retries were exhausted."""


class CucmThrottled(CucmUnreachable):
    """RisPort70 kept answering its rate-limit fault after the adapter backed off."""


class CucmOutcomeUnknown(CucmUnreachable):
    """A request with effects reached the wire and its answer did not come back: CUCM may or may
    not have carried it out. The adapter never resends it (a resend is a second CSR, a second
    restart, a second reset); the journaled effect reconciles by reading CUCM first. Transient for
    the step: once CUCM has been read, deciding to send again is safe."""


class CucmRejected(CucmError):
    """Permanent: CUCM refused the request. ``cucm_message`` is CUCM's own text, verbatim."""

    def __init__(
        self, message: str, *, cucm_message: str, node: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(message, node=node)
        self.cucm_message = cucm_message
        self.status = status


class UnknownNode(CucmRejected):
    """The node name is not in this cluster's configuration."""


class CucmAuthError(CucmError):
    """Credentials were refused (HTTP 401 or SSH authentication failure)."""


class TlsVerificationError(CucmError):
    """The node's TLS certificate does not verify against the cluster's CA bundle."""


class HostKeyMismatch(CucmError):
    """The node's SSH host key is missing from, or differs from, the cluster's known_hosts file."""


# --------------------------------------------------------------------------- the ports, per role
#
# One small protocol per concern, as certbot has one interface per role: a step or a test names the
# role it needs, and a fake implements only what it models. ``CucmPort`` combines them all.


@runtime_checkable
class ClusterInfo(Protocol):
    """Who the cluster is: its nodes, its release and its security mode (AXL on the publisher).

    ``node`` raises :class:`UnknownNode`; the others :class:`CucmUnreachable`, :class:`CucmAuthError`
    or :class:`CucmRejected` (e.g. an AXL fault). All are reads, safe to repeat.
    """

    @property
    def cluster(self) -> str:
        """The cluster's configured name."""
        ...

    def nodes(self) -> list[NodeRef]:
        """The cluster's nodes, publisher first, as configured (ports come from configuration)."""
        ...

    def node(self, name: str) -> NodeRef:
        """The node called ``name``. Raises :class:`UnknownNode`."""
        ...

    def version(self) -> str:
        """CUCM's active version, e.g. ``14.0.1.13900-155`` (AXL ``getCCMVersion``)."""
        ...

    def security_mode(self) -> int:
        """Cluster Security Mode: 0 non-secure, 1 mixed (AXL SQL on ``processconfig``)."""
        ...


@runtime_checkable
class Certificates(Protocol):
    """Each node's identity certificates, trust stores and CSRs (certmgr REST on 14+, CLI below).

    Reads (``identity_certificate``, ``trust_certificates``, ``current_csr``) are safe to repeat.
    Writes (``generate_csr``, ``upload_trust``, ``upload_identity``) are not: journal an intent first
    and reconcile with the matching read before repeating one. Every method raises
    :class:`UnknownNode` for a node not in the cluster, :class:`CucmRejected` (CUCM's text in
    ``cucm_message``) when CUCM refuses, :class:`CucmUnreachable` when it cannot be reached.
    """

    def identity_certificate(self, node: str, cert_type: str) -> str:
        """The node's current identity certificate for the type, PEM.

        REST ``GET identity/certificate`` on 14+, CLI ``show cert own`` below.
        """
        ...

    def trust_certificates(self, node: str, cert_type: str) -> list[str]:
        """The PEMs in the node's ``<cert_type>-trust`` store."""
        ...

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
        """Make CUCM generate a new key pair and CSR for the type on the node; returns the CSR PEM.

        Replaces any previous CSR for that node and type (one CSR per node and type). An ``-ECDSA``
        type gets an EC key (the configured curve, P-256 or P-384, hashed at least as strongly).
        ``multi_server``: a Multi-server(SAN) CSR naming every node of the type's scope, made on the
        publisher (cup-xmpp types: the IM&P publisher); REST only, the CLI has no such option
        (:class:`CucmRejected`). REST ``POST csr`` on 14+ sends ``common_name`` (default: the node's
        name) and ``alt_names`` (``commonName``, ``altNames``). CLI ``set csr gen`` below takes
        neither: CUCM makes the CN and SAN from the node's hostname and the subject from ``set
        web-security``, so callers check the CSR for the names they need. ``include_ou`` answers
        14SU1+'s ``Include OU in CSR`` question (default: the configuration's ``csr_include_ou``).
        """
        ...

    def identities(self, node: str) -> dict[str, str]:
        """Every identity certificate the node carries, by type, PEM (REST ``GET snapshot/server``
        on 14+, CLI ``show cert list own`` and ``show cert own`` below). ITLRecovery is among the
        publisher's where CUCM lists it."""
        ...

    def current_csr(self, node: str, cert_type: str) -> str | None:
        """The CSR CUCM holds for the node and type, PEM, or ``None`` when there is none."""
        ...

    def upload_trust(self, node: str, cert_type: str, pems: list[str], description: str) -> None:
        """Add CA certificates to ``<cert_type>-trust``, in the order given (root first).

        Raises :class:`CucmRejected` with CUCM's text when refused.
        """
        ...

    def upload_identity(self, node: str, cert_type: str, leaf_pem: str, chain: list[str]) -> None:
        """Install the signed leaf as the node's ``cert_type`` identity (``chain``: issuers, leaf excluded).

        CUCM refuses (:class:`CucmRejected`, its text verbatim) when the chain is not trusted, no CSR
        exists, the public keys or the SANs differ. Does not restart any service: the node presents
        the new certificate once the type's services restart.
        """
        ...

    def upload_multi_server_identity(
        self, node: str, cert_type: str, leaf_pem: str, chain: list[str]
    ) -> list[str]:
        """Upload a multi-server certificate on the node whose multi-server CSR it answers; CUCM
        installs it on every node the CSR named. Returns those nodes' names (CUCM's list when it
        gives one). A node added since the CSR is not among them: it needs a new multi-server CSR.

        From 14SU2 CUCM takes multi-server uploads in OS Administration only: the API refuses them
        (:class:`CucmRejected`, CUCM's text). Otherwise as :meth:`upload_identity`.
        """
        ...


@runtime_checkable
class Services(Protocol):
    """Services on each node: restart one, read its status and start time (ControlCenterServices;
    Cisco Tomcat over the SSH CLI).

    ``restart_service`` is not idempotent: callers journal the start time read before it and, on
    resume, take a later start time as the restart having happened. Both methods raise
    :class:`UnknownNode`, :class:`CucmRejected` (e.g. ``Service Not Activated``) and
    :class:`CucmUnreachable`.
    """

    def restart_service(self, node: str, service: str) -> None:
        """Restart a service on the node and return once CUCM reports it restarted or restarting.

        ``Cisco Tomcat`` goes over the SSH CLI (waits for ``[RUNNING]``); other services over
        ControlCenterServices ``Restart``. Poll :meth:`service_status` to wait for ``Started``.
        """
        ...

    def service_status(self, node: str, service: str) -> ServiceStatus:
        """The service's status and start time on the node (ControlCenterServices)."""
        ...

    def tomcat_restarting(self, node: str) -> bool:
        """Whether Cisco Tomcat is stopping or starting on the node, read over the SSH CLI (``utils
        service list``), which stays up meanwhile: then the node's certmgr, AXL, RisPort70 and
        ControlCenterServices are down because Tomcat is restarting, not failing. (A Tomcat that
        stays stopped is not a restart.)"""
        ...


@runtime_checkable
class Phones(Protocol):
    """Phones: reset them (AXL on the publisher) and read their registration (RisPort70).

    Resets are not idempotent (a phone reset twice reboots twice) and CUCM keeps no record of them;
    RisPort's ``TimeStamp`` moving is their only trace. Every method raises :class:`CucmUnreachable`
    (transport), :class:`CucmAuthError` and :class:`CucmRejected` (an AXL fault other than an
    unknown device or pool, which is skipped and not counted).
    """

    def reset_phones(self, names: Iterable[str], *, hard: bool = True) -> int:
        """AXL ``doDeviceReset`` each device (throttled); returns how many CUCM accepted.

        A device CUCM does not know is skipped and not counted; transport failures raise. After a
        failure no further device is sent (those already in flight finish) and the first failure
        is raised: which of the devices were reset is then read from RisPort, never assumed.
        """
        ...

    def device_pools(self) -> dict[str, list[str]]:
        """Device pool name -> the names of the phones in it, sorted (AXL SQL on ``device`` and
        ``devicepool``, one request). Pools without phones are absent; a phone CUCM lists in no pool
        is in none of the lists.
        """
        ...

    def reset_device_pools(self, names: Iterable[str]) -> int:
        """AXL ``resetDevicePool`` each named pool, one request per pool; returns how many CUCM
        accepted. CUCM resets (hard) every device of an accepted pool, as ``reset_phones`` would each.

        A pool CUCM does not know is skipped and not counted; other refusals raise
        :class:`CucmRejected`, transport failures :class:`CucmUnreachable`. Not idempotent: a pool
        reset twice reboots its phones twice.
        """
        ...

    def registered_phones(
        self, names: Iterable[str] | None = None, *, device_class: str = "Phone"
    ) -> dict[str, PhoneState]:
        """One RisPort70 sweep: every device (or the named ones) by name, deduplicated across nodes.

        A device seen under several nodes keeps its ``Registered`` entry. Pages of at most 1000;
        never exceeds the configured requests per minute (waits instead); backs off on the
        throttle fault and raises :class:`CucmThrottled` only if it persists.
        """
        ...


@runtime_checkable
class Platform(Protocol):
    """What only the platform CLI (SSH) tells or does: SSO and DRS status, the CTL update.

    Raises :class:`CucmUnreachable` (SSH transport), :class:`CucmAuthError`,
    :class:`HostKeyMismatch`, and :class:`CucmRejected` when the CLI's output is an error or cannot
    be read.
    """

    def sso_enabled(self, node: str) -> bool:
        """Whether SAML single sign-on is enabled (CLI ``utils sso status``)."""
        ...

    def backup_running(self) -> bool:
        """Whether a DRS backup or restore is running (CLI on the publisher)."""
        ...

    def ctl_update(self) -> str:
        """Run ``utils ctl update CTLFile`` on the publisher; returns the CLI output.

        Rebuilding the CTL twice gives the same file, so repeating it is harmless.
        """
        ...


@runtime_checkable
class Readiness(Protocol):
    """What a UC engineer reads before touching a cluster (reference part 2 §7), over the platform
    CLI on the publisher. All reads, safe to repeat. Raise :class:`CucmUnreachable`,
    :class:`CucmAuthError`, :class:`HostKeyMismatch`, and :class:`CucmRejected` when the output is an
    error or cannot be read.
    """

    def replication_state(self) -> ReplicationState:
        """``utils dbreplication runtimestate`` (it reports the last ``utils dbreplication status``)."""
        ...

    def network_cluster(self) -> list[ClusterMember]:
        """``show network cluster``: the nodes the publisher knows, and whether each authenticated."""
        ...

    def ctl_status(self) -> CtlStatus:
        """``show ctl``: whether a CTL exists and whether a hardware token signed it."""
        ...

    def license_status(self) -> LicenseStatus:
        """``show license all``: Smart Licensing registration and export-controlled functionality."""
        ...

    def itl_recovery_certificate(self) -> str | None:
        """The publisher's ITLRecovery certificate, PEM (``show cert own ITLRecovery``), or ``None``
        when the cluster has none (before 12.0)."""
        ...


@runtime_checkable
class Tls(Protocol):
    """What a node presents to a TLS client: the proof that a new certificate is in service."""

    def presented_certificate(self, node: str, port: int, *, key_type: str = "any") -> bytes:
        """The DER certificate the node presents on CUCM port ``port`` (e.g. 8443, 5061).

        ``key_type="ec"`` offers ECDSA suites only (TLS 1.2), which is how a port that serves an RSA
        identity and its EC twin shows the ``-ECDSA`` one; ``"any"`` gets what CUCM prefers (RSA).
        The configured port map translates CUCM's port to the one actually reached. The handshake
        is verified against the cluster CA bundle for the node's name (:class:`TlsVerificationError`);
        no handshake raises :class:`CucmUnreachable`.
        """
        ...


@runtime_checkable
class CucmPort(ClusterInfo, Certificates, Services, Phones, Platform, Readiness, Tls, Protocol):
    """One CUCM cluster: every role above. Every method raises only :class:`CucmError` subclasses.

    Reads are safe to repeat. Writes (``generate_csr``, ``upload_*``, ``ctl_update``,
    ``restart_service``, ``reset_phones``, ``reset_device_pools``) are not idempotent on CUCM's side:
    callers journal an intent first and reconcile with the matching read (``current_csr``,
    ``identity_certificate``, ``trust_certificates``, ``service_status``, ``registered_phones``) before
    repeating one.
    """

    def close(self) -> None:
        """Close pooled HTTPS sessions and SSH connections. The port may be used again afterwards."""
        ...
