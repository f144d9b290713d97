"""The :class:`~adapters.cucm.port.CucmPort` of one cluster, composed from the per-API clients.

Build it from a :class:`ClusterConfig` with :func:`build_cluster`. Which API does what:

* certificates: certmgr REST on CUCM 14+ (``use_rest``), the SSH CLI below;
* Tomcat restarts, SSO and DRS status, the CTL update: SSH CLI (no API offers them);
* other restarts and service status: ControlCenterServices;
* nodes, version, security mode, phone resets: AXL on the publisher;
* registration: RisPort70 on the publisher, within the configured rate.

Credentials: the platform (OS administrator) user for REST and SSH, the AXL application user for
AXL, ControlCenterServices and RisPort70. They are kept out of ``repr``, logs and error messages.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
import ssl
import stat
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import structlog
from cryptography import x509

from adapters.cucm import cli
from adapters.cucm.axl import Axl
from adapters.cucm.ccs import ControlCenter
from adapters.cucm.certmgr import CertMgr
from adapters.cucm.http import NodeHttp
from adapters.cucm.port import (
    ClusterMember,
    CtlStatus,
    CucmError,
    CucmPort,
    CucmRejected,
    CucmUnreachable,
    LicenseStatus,
    NodeRef,
    PhoneState,
    ReplicationState,
    Role,
    ServiceStatus,
    TlsVerificationError,
    UnknownNode,
)
from adapters.cucm.retry import RetryPolicy, SlidingWindowLimiter, call_with_retry
from adapters.cucm.risport import RisPort
from adapters.cucm.ssh import YES_NO, Answer, CliSession

log = structlog.get_logger("adapters.cucm")

CLI_RESTARTED = frozenset({"Cisco Tomcat"})  # not stoppable through ControlCenterServices
WEB_PORTS = frozenset({443, 8443})  # CUCM's ports that the node's https_port stands for


class ConfigError(ValueError):
    """The cluster configuration is unusable; the message names the setting and the fix."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.username or not self.password:
            raise ConfigError("credentials need a non-empty username and password")


@dataclass(frozen=True)
class ClusterConfig:
    """Everything needed to reach one cluster.

    ``nodes`` lists at least the publisher; nodes AXL reports that are not listed are reached at
    their name on ``default_https_port``/``default_ssh_port``. ``port_map`` translates, per node
    name, a CUCM port (e.g. 5061) to the port actually reached (tests, NAT); 443/8443 default to
    the node's ``https_port``. ``ris_window_seconds`` is the span CUCM counts
    ``ris_requests_per_minute`` over (60 s; shorter only for a time-scaled simulator).
    ``processnode_names`` maps the name CUCM's processnode table (AXL) gives a node, when it is
    not the node's FQDN (servers defined by IP address), to the node's ``name``.
    """

    name: str
    nodes: tuple[NodeRef, ...]
    platform: Credentials
    axl: Credentials
    ca_bundle: str
    known_hosts: str
    use_rest: bool = True
    axl_version: str | None = "14.0"
    """The AXL schema to speak; ``None`` while the release is not known yet: then
    :meth:`Cluster.version` asks the platform CLI (``show version active``), never AXL."""
    ris_requests_per_minute: int = 15
    ris_window_seconds: float = 60.0
    ris_page_size: int = 1000
    reset_concurrency: int = 4
    resets_per_second: int = 10
    csr_key_length: int = 2048
    csr_ec_key_length: int = 384
    csr_include_ou: bool = True
    default_https_port: int = 8443
    default_ssh_port: int = 22
    port_map: Mapping[str, Mapping[int, int]] = field(default_factory=dict)
    processnode_names: Mapping[str, str] = field(default_factory=dict)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    http_timeout: tuple[float, float] = (10.0, 60.0)
    ssh_command_timeout: float = 120.0
    restart_timeout: float = 900.0
    tls_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not self.nodes:
            raise ConfigError(f"cluster {self.name!r}: no nodes. Fix: list at least the publisher.")
        publishers = [n.name for n in self.nodes if n.role == "publisher"]
        if len(publishers) != 1:
            raise ConfigError(
                f"cluster {self.name!r}: {len(publishers)} nodes have role 'publisher' "
                f"({', '.join(publishers) or 'none'}). Fix: mark exactly one node as publisher."
            )
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ConfigError(f"cluster {self.name!r}: a node name appears twice in {names}.")
        if (
            self.ris_requests_per_minute < 1
            or self.ris_window_seconds <= 0
            or not 1 <= self.ris_page_size <= 1000
        ):
            raise ConfigError(
                f"cluster {self.name!r}: ris_requests_per_minute must be >= 1 and ris_page_size "
                f"1..1000 (got {self.ris_requests_per_minute}, {self.ris_page_size})."
            )
        if self.csr_ec_key_length not in (256, 384):
            raise ConfigError(
                f"cluster {self.name!r}: csr_ec_key_length must be 256 or 384 (the EC sizes CUCM offers), "
                f"not {self.csr_ec_key_length}."
            )
        if self.reset_concurrency < 1 or self.resets_per_second < 1:
            raise ConfigError(f"cluster {self.name!r}: reset_concurrency and resets_per_second must be >= 1.")

    @property
    def publisher(self) -> NodeRef:
        return next(n for n in self.nodes if n.role == "publisher")


BUNDLE_LIMIT = 16 * 1024 * 1024
"""Larger than any CA bundle (the system's holds ~150 roots in ~200 KB)."""


def _check_file(cluster: str, key: str, value: str, fix: str) -> None:
    try:
        info = os.stat(value)
    except OSError:
        info = None
    if info is None or not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"cluster {cluster!r}: {key} {value!r} is not a file. Fix: point it at {fix}.")
    if info.st_size > BUNDLE_LIMIT:
        raise ConfigError(
            f"cluster {cluster!r}: {key} {value!r} is {info.st_size} bytes, more than a {key} can be. "
            f"Fix: point it at {fix}."
        )


def build_cluster(config: ClusterConfig) -> Cluster:
    """The port for ``config``'s cluster. Checks the CA bundle and known_hosts are regular files and
    that the bundle holds a CA certificate: a bundle ``ssl`` cannot load fails every connection,
    which must not pass for an unreachable cluster and be retried."""
    bundle_fix = "the PEM file of the CA(s) that issued the nodes' certificates"
    for key, value, fix in (
        ("ca_bundle", config.ca_bundle, bundle_fix),
        ("known_hosts", config.known_hosts, "a known_hosts file holding each node's SSH host key"),
    ):
        _check_file(config.name, key, value, fix)
    try:
        loaded = ssl.create_default_context(cafile=config.ca_bundle).cert_store_stats()["x509"]
    except (ssl.SSLError, OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        if reason == "NO_CERTIFICATE_OR_CRL_FOUND":
            reason = "empty, or no PEM certificate in it"
        raise ConfigError(
            f"cluster {config.name!r}: ca_bundle {config.ca_bundle!r} holds no certificate TLS can use "
            f"({reason}); this is a configuration error, not a network one. Fix: point it at {bundle_fix}."
        ) from None
    if not loaded:
        raise ConfigError(
            f"cluster {config.name!r}: ca_bundle {config.ca_bundle!r} holds no certificate. "
            f"Fix: point it at {bundle_fix}."
        )
    return Cluster(config)


def _axl_role(role: str, name: str, publisher: str) -> Role:
    if name == publisher:
        return "publisher"
    return "imp" if role.upper().startswith("CUP") or "IM" in role.upper() else "subscriber"


class Cluster:
    """:class:`~adapters.cucm.port.CucmPort` over REST, SOAP and SSH. Thread-safe."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._http: dict[tuple[str, str], NodeHttp] = {}
        self._cli: dict[str, CliSession] = {}
        self._nodes: list[NodeRef] | None = None
        # A margin over CUCM's window: the server counts arrivals, and requests do not all travel
        # equally fast.
        window = config.ris_window_seconds
        self.ris_limiter = SlidingWindowLimiter(
            config.ris_requests_per_minute, window + max(0.05 * window, 0.1)
        )
        self._ris: RisPort | None = None

    def __repr__(self) -> str:
        return f"Cluster({self.config.name!r}, publisher={self.config.publisher.name!r})"

    @property
    def cluster(self) -> str:
        return self.config.name

    # ----------------------------------------------------------------- clients

    def _node_http(self, node: NodeRef, api: str) -> NodeHttp:
        """``api``: ``platform`` (REST), ``app`` (AXL, ControlCenterServices) or ``ris`` (RisPort70)."""
        creds = self.config.platform if api == "platform" else self.config.axl
        policy = self.config.retry
        if api == "ris" and policy.throttle_backoff is None:
            # Back off half the window CUCM counts requests over (30 s for its minute).
            policy = dataclasses.replace(policy, throttle_backoff=self.config.ris_window_seconds / 2)
        with self._lock:
            client = self._http.get((node.name, api))
            if client is None:
                client = NodeHttp(
                    node,
                    ca_bundle=self.config.ca_bundle,
                    username=creds.username,
                    password=creds.password,
                    policy=policy,
                    timeout=self.config.http_timeout,
                )
                self._http[(node.name, api)] = client
            return client

    def _certmgr(self, node: str) -> CertMgr:
        return CertMgr(
            self._node_http(self.node(node), "platform"),
            key_length=self.config.csr_key_length,
            ec_key_length=self.config.csr_ec_key_length,
        )

    def _ccs(self, node: str) -> ControlCenter:
        return ControlCenter(self._node_http(self.node(node), "app"))

    def _axl(self) -> Axl:
        return Axl(self._node_http(self.config.publisher, "app"), version=self.config.axl_version or "14.0")

    def _risport(self) -> RisPort:
        http = self._node_http(self.config.publisher, "ris")
        with self._lock:
            if self._ris is None:
                self._ris = RisPort(http, self.ris_limiter, page=self.config.ris_page_size)
            return self._ris

    def _cli_for(self, node: str) -> CliSession:
        ref = self.node(node)
        with self._lock:
            session = self._cli.get(ref.name)
            if session is None:
                session = CliSession(
                    ref,
                    username=self.config.platform.username,
                    password=self.config.platform.password,
                    known_hosts=self.config.known_hosts,
                    policy=self.config.retry,
                    command_timeout=self.config.ssh_command_timeout,
                )
                self._cli[ref.name] = session
            return session

    def close(self) -> None:
        with self._lock:
            https, self._http = list(self._http.values()), {}
            clis, self._cli = list(self._cli.values()), {}
            self._ris = None
        for client in https:
            client.close()
        for session in clis:
            session.close()

    # ----------------------------------------------------------------- topology

    def nodes(self) -> list[NodeRef]:
        if self._nodes is not None:
            return list(self._nodes)
        configured = {n.name: n for n in self.config.nodes}
        publisher = self.config.publisher
        found: dict[str, NodeRef] = {publisher.name: publisher}
        process_nodes = self._axl().process_nodes()
        by_ip = self._names_by_address(process_nodes)
        for reported, role in process_nodes:
            # A server defined by its address in System > Server: the node is still its FQDN, the
            # name its certificates carry and TLS is verified against (the configuration's
            # `processnode` first, else what `show network cluster` says).
            name = self.config.processnode_names.get(reported) or by_ip.get(reported, reported)
            if name in found:
                continue
            found[name] = configured.get(name) or NodeRef(
                name=name,
                address=name,
                https_port=self.config.default_https_port,
                ssh_port=self.config.default_ssh_port,
                role=_axl_role(role, name, publisher.name),
            )
        for ref in self.config.nodes:  # configured but not (yet) reported by AXL: still ours
            found.setdefault(ref.name, ref)
        self._nodes = list(found.values())
        return list(self._nodes)

    def _names_by_address(self, process_nodes: Sequence[tuple[str, str]]) -> dict[str, str]:
        """Processnode names that are IP addresses -> the node's FQDN: a configured node reached
        at that address, else what `show network cluster` on the publisher says."""
        addresses = [name for name, _ in process_nodes if _is_address(name)]
        if not addresses:
            return {}
        known = {ref.address: ref.name for ref in self.config.nodes if _is_address(ref.address)}
        if any(a not in known for a in addresses):
            configured = {ref.name for ref in self.config.nodes}
            for member in self.network_cluster():
                if member.ip not in known:
                    fqdn = member.fqdn
                    short = next((c for c in configured if c.split(".")[0] == member.host), None)
                    known[member.ip] = fqdn if fqdn in configured or short is None else short
        return {a: known[a] for a in addresses if a in known}

    def node(self, name: str) -> NodeRef:
        for ref in self._nodes or self.config.nodes:
            if ref.name == name:
                return ref
        if self._nodes is None:
            for ref in self.nodes():
                if ref.name == name:
                    return ref
        known = ", ".join(n.name for n in (self._nodes or self.config.nodes))
        raise UnknownNode(
            f"cluster {self.cluster!r} has no node {name!r} (known: {known}). Fix: use a node name "
            f"as CUCM reports it, or add the node to the cluster's configuration.",
            cucm_message="",
        )

    def version(self) -> str:
        if self.config.axl_version is None:
            return self.cli_version()
        return self._axl().version()

    def process_node_table(self) -> list[dict[str, str]]:
        """AXL's processnode rows as they are (names unmapped): what discovery starts from."""
        return self._axl().process_node_table()

    def cli_version(self) -> str:
        """``show version active`` on the publisher: the release without AXL (whose schema version
        depends on the release)."""
        publisher = self.config.publisher.name
        output = self._cli_for(publisher).run("show version active")
        found = cli.ACTIVE_VERSION.search(output)
        if found is None:
            message = cli.error_text(output)
            raise CucmRejected(
                f"`show version active` on {publisher} printed no version: {message}",
                cucm_message=message,
                node=publisher,
            )
        return found.group(1)

    def security_mode(self) -> int:
        rows = self._axl().sql("select paramvalue from processconfig where paramname='ClusterSecurityMode'")
        value = rows[0].get("paramvalue", "") if rows else ""
        if not value.strip().isdigit():
            raise CucmRejected(
                f"cluster {self.cluster!r}: processconfig holds no ClusterSecurityMode value ({rows!r})",
                cucm_message=str(rows)[:200],
                node=self.config.publisher.name,
            )
        return int(value)

    # ----------------------------------------------------------------- certificates

    def identity_certificate(self, node: str, cert_type: str) -> str:
        if self.config.use_rest:
            return self._certmgr(node).identity(cert_type)[0]
        output = self._cli_for(node).run(f"show cert own {cert_type}")
        pems = cli.pem_blocks(output)
        if not pems:
            raise CucmRejected(
                f"`show cert own {cert_type}` on {node} printed no certificate: {cli.error_text(output)}",
                cucm_message=cli.error_text(output),
                node=node,
            )
        return pems[0]

    def trust_certificates(self, node: str, cert_type: str) -> list[str]:
        if self.config.use_rest:
            return self._certmgr(node).trust(cert_type)
        session = self._cli_for(node)
        pems: list[str] = []
        for entry in cli.trust_files(session.run("show cert list trust"), f"{cert_type}-trust"):
            pems.extend(cli.pem_blocks(session.run(f"show cert trust {entry}"))[:1])
        return pems

    def identities(self, node: str) -> dict[str, str]:
        if self.config.use_rest:
            return self._certmgr(node).identities()
        session = self._cli_for(node)
        found: dict[str, str] = {}
        for unit in cli.own_units(session.run("show cert list own")):
            pems = cli.pem_blocks(session.run(f"show cert own {unit}"))
            if pems:
                found[unit] = pems[0]
        return found

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
        if self.config.use_rest:
            return self._certmgr(node).generate_csr(
                cert_type, common_name, alt_names, multi_server=multi_server
            )
        if multi_server:
            raise CucmRejected(
                f"a multi-server CSR for {cert_type} on {node}: `set csr gen` takes only the unit "
                "(CLI reference), so the CLI cannot make one. Fix: use certmgr REST (CUCM 14 and later) "
                "or OS Administration > Generate CSR > Distribution Multi-server(SAN).",
                cucm_message="",
                node=node,
            )
        # `set csr gen` takes only the unit (CLI-set): names cannot be passed below 14.
        session = self._cli_for(node)
        ou = self.config.csr_include_ou if include_ou is None else include_ou
        answers = [
            Answer(cli.INCLUDE_OU, "yes" if ou else "no"),
            Answer(YES_NO, "yes"),  # "a CSR exists, overwrite?": the caller decided to regenerate
        ]
        output = session.run(f"set csr gen {cert_type}", answers=answers)
        if not cli.CSR_GENERATED.search(output):
            message = cli.error_text(output)
            raise CucmRejected(
                f"`set csr gen {cert_type}` on {node} failed: {message}", cucm_message=message, node=node
            )
        csr = self.current_csr(node, cert_type)
        if csr is None:
            raise CucmRejected(
                f"`set csr gen {cert_type}` on {node} reported success but `show csr own` shows no CSR",
                cucm_message="",
                node=node,
            )
        return csr

    def current_csr(self, node: str, cert_type: str) -> str | None:
        if self.config.use_rest:
            return self._certmgr(node).identity(cert_type)[1]
        session = self._cli_for(node)
        for command in (f"show csr own {cert_type}", f"show csr own {cert_type}/{cert_type}.csr"):
            found = cli.pem_blocks(session.run(command), "CERTIFICATE REQUEST")
            if found:
                return found[0]
        return None

    def upload_trust(self, node: str, cert_type: str, pems: list[str], description: str) -> None:
        if not pems:
            return
        if self.config.use_rest:
            self._certmgr(node).upload_trust(cert_type, pems, description)
            return
        for pem in pems:  # one import per certificate, root first, as given
            self._cli_import(node, f"set cert import trust {cert_type}", pem)

    def upload_identity(self, node: str, cert_type: str, leaf_pem: str, chain: list[str]) -> None:
        if self.config.use_rest:
            self._certmgr(node).upload_identity(cert_type, [leaf_pem, *chain])
            return
        self._cli_import(node, f"set cert import own {cert_type}", leaf_pem)

    def upload_multi_server_identity(
        self, node: str, cert_type: str, leaf_pem: str, chain: list[str]
    ) -> list[str]:
        if self.config.use_rest:
            servers = self._certmgr(node).upload_identity(cert_type, [leaf_pem, *chain])
        else:
            servers = cli.upload_servers(self._cli_import(node, f"set cert import own {cert_type}", leaf_pem))
        # Without CUCM's list, the SAN names are the nodes CUCM distributes to (T118731).
        return servers or _san_names(leaf_pem)

    def _cli_import(self, node: str, command: str, pem: str) -> str:
        output = self._cli_for(node).run(command, paste=pem, answers=[Answer(YES_NO, "yes")])
        if not cli.IMPORTED.search(output):
            message = cli.error_text(output)
            raise CucmRejected(f"`{command}` on {node} failed: {message}", cucm_message=message, node=node)
        return output

    # ----------------------------------------------------------------- platform state

    def sso_enabled(self, node: str) -> bool:
        output = self._cli_for(node).run("utils sso status")
        state = cli.sso_enabled(output)
        if state is None:
            raise CucmRejected(
                f"`utils sso status` on {node}: unrecognised output: {cli.error_text(output)}",
                cucm_message=cli.error_text(output),
                node=node,
            )
        return state

    def backup_running(self) -> bool:
        publisher = self.config.publisher.name
        session = self._cli_for(publisher)
        for kind in ("backup", "restore"):
            output = session.run(f"utils disaster_recovery status {kind}")
            state = cli.drs_running(output)
            if state is None:
                raise CucmRejected(
                    f"`utils disaster_recovery status {kind}` on {publisher}: unrecognised output: "
                    f"{cli.error_text(output)}",
                    cucm_message=cli.error_text(output),
                    node=publisher,
                )
            if state:
                return True
        return False

    # ----------------------------------------------------------------- readiness

    def _publisher_cli(self, command: str) -> str:
        return self._cli_for(self.config.publisher.name).run(command)

    def _unreadable(self, command: str, output: str) -> CucmRejected:
        publisher = self.config.publisher.name
        return CucmRejected(
            f"`{command}` on {publisher}: unrecognised output: {cli.error_text(output)}",
            cucm_message=cli.error_text(output),
            node=publisher,
        )

    def replication_state(self) -> ReplicationState:
        command = "utils dbreplication runtimestate"
        output = self._publisher_cli(command)
        state = cli.replication_state(output)
        if state is None:
            raise self._unreadable(command, output)
        return state

    def network_cluster(self) -> list[ClusterMember]:
        command = "show network cluster"
        output = self._publisher_cli(command)
        members = cli.network_cluster(output)
        if not members:
            raise self._unreadable(command, output)
        return members

    def ctl_status(self) -> CtlStatus:
        output = self._publisher_cli("show ctl")
        status = cli.ctl_status(output)
        if status is None:
            raise self._unreadable("show ctl", output)
        return status

    def license_status(self) -> LicenseStatus:
        return cli.license_status(self._publisher_cli("show license all"))

    def itl_recovery_certificate(self) -> str | None:
        # Whether certmgr REST lists ITLRecovery is unknown (part 2 §3): the CLI is used always.
        output = self._publisher_cli("show cert own ITLRecovery")
        pems = cli.pem_blocks(output)
        return pems[0] if pems else None

    def ctl_update(self) -> str:
        publisher = self.config.publisher.name
        output = self._cli_for(publisher).run(
            "utils ctl update CTLFile", answers=[Answer(YES_NO, "yes")], timeout=self.config.restart_timeout
        )
        lowered = output.lower()
        if "error" in lowered or "fail" in lowered or "unsuccessful" in lowered or "invalid" in lowered:
            message = cli.error_text(output)
            raise CucmRejected(
                f"`utils ctl update CTLFile` on {publisher} failed: {message}",
                cucm_message=message,
                node=publisher,
            )
        return output

    def restart_service(self, node: str, service: str) -> None:
        if service in CLI_RESTARTED:
            command = f"utils service restart {service}"
            output = self._cli_for(node).run(command, timeout=self.config.restart_timeout)
            states = cli.service_states(output)
            if "FAILED" in states or not ({"RUNNING", "STARTED"} & set(states)):
                message = cli.error_text(output)
                raise CucmRejected(
                    f"`{command}` on {node} failed: {message}", cucm_message=message, node=node
                )
            if service == "Cisco Tomcat":
                # Pooled connections still hold the old certificate's handshake: start afresh so the
                # next request verifies the certificate Tomcat presents now.
                self._drop_http(node)
            return
        self._ccs(node).control(service, "Restart")

    def _drop_http(self, node: str) -> None:
        with self._lock:
            clients = [c for (name, _), c in self._http.items() if name == node]
        for client in clients:
            client.close()

    def service_status(self, node: str, service: str) -> ServiceStatus:
        return self._ccs(node).status(service)

    def tomcat_restarting(self, node: str) -> bool:
        state = cli.listed_state(self._cli_for(node).run("utils service list"), "Cisco Tomcat")
        if state is None:
            raise CucmRejected(
                f"`utils service list` on {node} does not list Cisco Tomcat",
                cucm_message="",
                node=node,
            )
        return state in ("STOPPING", "STARTING")

    # ----------------------------------------------------------------- phones

    def reset_phones(self, names: Iterable[str], *, hard: bool = True) -> int:
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return 0
        axl = self._axl()
        limiter = SlidingWindowLimiter(self.config.resets_per_second, 1.0)
        # After a failure no new reset is sent (a refusal or a lost reply would likely meet the
        # next phones too); the ones in flight finish, then the first failure is raised. The
        # caller's reconcile tells the phones that were reset from the rest by their RisPort trace.
        failed = threading.Event()

        def reset(name: str) -> bool | None:
            if failed.is_set():
                return None
            limiter.acquire()
            if failed.is_set():  # one failed while this one waited its turn
                return None
            try:
                return axl.reset_device(name, hard=hard)
            except Exception:
                failed.set()
                raise

        with ThreadPoolExecutor(max_workers=self.config.reset_concurrency) as pool:
            futures = [pool.submit(reset, name) for name in wanted]
        results = [future.result() for future in futures if future.exception() is None]
        accepted = sum(1 for result in results if result)
        errors = [error for future in futures if (error := future.exception()) is not None]
        if errors:
            log.warning(
                "cucm.phones_reset_stopped",
                cluster=self.cluster,
                requested=len(wanted),
                accepted=accepted,
                failed=len(errors),
                not_sent=sum(1 for result in results if result is None),
            )
            raise errors[0]
        log.info("cucm.phones_reset", cluster=self.cluster, requested=len(wanted), accepted=accepted)
        return accepted

    def device_pools(self) -> dict[str, list[str]]:
        return self._axl().device_pools()

    def reset_device_pools(self, names: Iterable[str]) -> int:
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return 0
        axl = self._axl()
        # A handful of requests, each resetting a whole pool: sequential, so a refusal stops the rest.
        accepted = sum(axl.reset_device_pool(name) for name in wanted)
        log.info("cucm.device_pools_reset", cluster=self.cluster, requested=len(wanted), accepted=accepted)
        return accepted

    def registered_phones(
        self, names: Iterable[str] | None = None, *, device_class: str = "Phone"
    ) -> dict[str, PhoneState]:
        return self._risport().sweep(names, device_class=device_class)

    # ----------------------------------------------------------------- TLS

    def reached_port(self, node: str, port: int) -> int:
        """The port actually connected to for CUCM port ``port`` on ``node``."""
        ref = self.node(node)
        mapped = self.config.port_map.get(ref.name, {}).get(port)
        if mapped is not None:
            return mapped
        return ref.https_port if port in WEB_PORTS else port

    def presented_certificate(self, node: str, port: int, *, key_type: str = "any") -> bytes:
        if key_type not in ("any", "ec"):
            raise ValueError(f"key_type must be 'any' or 'ec', not {key_type!r}")
        ref = self.node(node)
        actual = self.reached_port(node, port)
        where = f"{ref.name} ({ref.address}:{actual}, CUCM port {port})"

        def handshake() -> bytes:
            context = ssl.create_default_context(cafile=self.config.ca_bundle)
            if key_type == "ec":
                # In TLS 1.2 the suite picks the certificate: ECDSA suites only get the EC twin.
                context.maximum_version = ssl.TLSVersion.TLSv1_2
                context.set_ciphers("ECDHE+aECDSA")
            try:
                with (
                    socket.create_connection((ref.address, actual), timeout=self.config.tls_timeout) as raw,
                    context.wrap_socket(raw, server_hostname=ref.name) as tls,
                ):
                    der = tls.getpeercert(binary_form=True)
            except ssl.SSLCertVerificationError as error:
                raise TlsVerificationError(
                    f"TLS on {where}: the certificate does not verify for {ref.name!r} against the CA "
                    f"bundle {self.config.ca_bundle} ({error.verify_message}). Fix: add the issuing CA "
                    f"to that bundle, or check that the right node answers on that port.",
                    node=ref.name,
                ) from error
            except (OSError, ssl.SSLError) as error:
                raise CucmUnreachable(
                    f"TLS on {where}: no handshake ({type(error).__name__}: {error})", node=ref.name
                ) from error
            if not der:
                raise CucmError(f"TLS on {where}: the server presented no certificate", node=ref.name)
            return der

        return call_with_retry(self.config.retry, f"TLS handshake on port {port}", ref.name, handshake)


def _san_names(leaf_pem: str) -> list[str]:
    try:
        cert = x509.load_pem_x509_certificate(leaf_pem.encode())
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return []
    return [str(n) for n in ext.get_values_for_type(x509.DNSName)]


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _conforms(cluster: Cluster) -> CucmPort:
    # mypy checks here that Cluster structurally implements the port.
    return cluster
