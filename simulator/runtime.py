"""A running simulated cluster: the model plus every node's HTTPS and SSH servers.

``SimulatedCluster`` is what tests and the demo use in-process::

    with SimulatedCluster(directory, nodes=3, phones=200, time_scale=100) as sim:
        info = sim.info          # DIR/simulator.json, typed (simulator.info.SimulatorInfo)
        sim.state()              # the same dict as GET /__sim__/state
        sim.cluster              # the model itself (simulator.cluster.Cluster)

Each node listens on its own loopback address on CUCM's port numbers (``ports="real"``, the
default; see simulator.network), or every node on 127.0.0.1 on free ports (``ports="random"``).
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paramiko
from cryptography import x509

from simulator import network, pki, releases
from simulator.cli import PROMPT, CliSession
from simulator.cluster import DEVICE_POOL_FORMAT, Cluster, Node
from simulator.cluster.platform import PlatformState, parse_trigger
from simulator.faults import Faults
from simulator.https import NodeHTTPSServer
from simulator.info import Account, NodeInfo, SimulatorInfo
from simulator.ssh import NodeSSHServer
from simulator.tls import TypeListener, listeners_for

HTTPS_PORTS = (8443, 443)  # Tomcat on every node (part 1 section 1: S3/S4 use 443, 8443 also serves)
SSH_PORT = 22


class SimulatedCluster:
    def __init__(
        self,
        directory: str | os.PathLike[str],
        nodes: int = 2,
        imp: int = 0,
        phones: int = 0,
        mixed_mode: bool = False,
        sso: bool = False,
        time_scale: float = 100.0,
        faults: str | Faults | None = None,
        schema_dir: str | os.PathLike[str] | None = None,
        seed: int = 0,
        https_ports: dict[str, int] | None = None,
        ssh_ports: dict[str, int] | None = None,
        ris_rate_limit: int = 15,
        expiry_days: dict[str, float] | None = None,
        version: str = releases.DEFAULT,
        credentials: dict[str, dict[str, str]] | None = None,
        restart_seconds: tuple[float, float] = (60.0, 180.0),
        reregister_seconds: tuple[float, float] = (30.0, 120.0),
        pager: bool = True,
        device_pool: str | None = DEVICE_POOL_FORMAT,
        deactivated: dict[str, list[str]] | None = None,
        processnode_names: str = "fqdn",
        ports: str = network.REAL,
        ris_lag: float = 0.0,
        phone_interaction: str = "automatic",
        federation: list[str] | tuple[str, ...] = (),
        itl_recovery_days: float | None = None,
        https_ciphers: str = "rsa",
        extra_sans: dict[str, list[str]] | None = None,
        subject: pki.Subject | None = None,
        platform: PlatformState | None = None,
    ) -> None:
        """``version``: a release name of simulator.releases (``14SU2``) or a full version string.
        ``https_ports``/``ssh_ports`` (by node name or short name) force the port of 8443 / 22,
        without fallback."""
        if ports not in network.PORT_MODES:
            raise ValueError(f"ports must be one of {', '.join(network.PORT_MODES)}, not {ports!r}")
        self.release = releases.release(version)
        self.port_mode = ports
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.faults = faults if isinstance(faults, Faults) else Faults.parse(faults)
        self.pager = pager
        self.schema_dir = Path(schema_dir) if schema_dir else None
        self.cluster = Cluster(
            nodes=nodes,
            imp=imp,
            phones=phones,
            mixed_mode=mixed_mode,
            sso=sso,
            time_scale=time_scale,
            seed=seed,
            version=self.release.version,
            expiry_days=expiry_days,
            ris_rate_limit=ris_rate_limit,
            workdir=str(self.directory),
            restart_seconds=restart_seconds,
            reregister_seconds=reregister_seconds,
            device_pool=device_pool,
            deactivated=deactivated,
            processnode_names=processnode_names,
            ris_lag=ris_lag,
            phone_interaction=phone_interaction,
            federation=federation,
            itl_recovery_days=itl_recovery_days,
            https_ciphers=https_ciphers,
            extra_sans=extra_sans,
            subject=subject,
            platform=platform,
        )
        for node_short, service, factor in self.faults.slow:
            self.cluster.service_control.slow_restarts[(node_short, service)] = factor
        self.credentials = credentials or {
            "platform": {"username": "osadmin", "password": secrets.token_urlsafe(12)},
            "axl": {"username": "axladmin", "password": secrets.token_urlsafe(12)},
        }
        self._https_ports = https_ports or {}
        self._ssh_ports = ssh_ports or {}
        self._https: list[NodeHTTPSServer] = []
        self._ssh: list[NodeSSHServer] = []
        self._tls: list[TypeListener] = []
        self.tls_ports: dict[str, dict[int, int]] = {}  # node name -> CUCM port -> local port
        self.ports: dict[str, dict[int, int]] = {}  # node name -> every CUCM port -> local port
        self.fallbacks: dict[str, list[int]] = {}  # node name -> CUCM ports not bound as such
        self._block: network.AddressBlock | None = None
        self._threads: list[threading.Thread] = []
        self._cli_sessions: dict[str, CliSession] = {}
        self._cli_lock = threading.Lock()
        self.ris_limiter: Any = None
        self._info: SimulatorInfo | None = None
        self.ca_bundle = self.directory / "ca-bundle.pem"
        self.known_hosts = self.directory / "known_hosts"
        self.json_path = self.directory / "simulator.json"
        self._bundle_lock = threading.Lock()
        self._bundle_seq = 0
        self._bundle_written = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> SimulatedCluster:
        from simulator.soap import RateLimiter

        self.ris_limiter = RateLimiter(self.cluster)
        self.cluster.store.bundle_listeners.append(self.write_bundle)
        try:
            if self.port_mode == network.REAL:
                self._block = network.claim_block()
            for node in self.cluster.nodes:
                node.address = self._block.address(node.index) if self._block else "127.0.0.1"
                self._start_node(node)
        except BaseException:
            self.stop()
            raise
        self.cluster.start_clock()
        self.faults.started = time.monotonic()  # `down=` windows count from here
        self.write_bundle()
        self._write_known_hosts()
        self._info = self._describe()
        (self.directory / "hosts").write_text(self._info.hosts)
        self._info.write(self.json_path)
        return self

    def _bind(self, node: Node, cucm_port: int, forced: dict[str, int] | None = None) -> socket.socket:
        wanted = (forced or {}).get(node.name, (forced or {}).get(node.short))
        if wanted is not None:
            sock, fell_back = network.bind(node.address, wanted, mode=network.STRICT)
        else:
            sock, fell_back = network.bind(node.address, cucm_port, mode=self.port_mode)
        self.ports.setdefault(node.name, {})[cucm_port] = int(sock.getsockname()[1])
        if fell_back:
            self.fallbacks.setdefault(node.name, []).append(cucm_port)
        return sock

    def _start_node(self, node: Node) -> None:
        for cucm_port in HTTPS_PORTS:
            server = NodeHTTPSServer(
                self, node, self._bind(node, cucm_port, self._https_ports if cucm_port == 8443 else None)
            )
            self._https.append(server)
            t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
            t.start()
            self._threads.append(t)
        node.https_port = self.ports[node.name][8443]
        ssh = NodeSSHServer(self, node, self._bind(node, SSH_PORT, self._ssh_ports), self._host_key(node))
        node.ssh_port = ssh.port
        ssh.start()
        self._ssh.append(ssh)
        for spec in listeners_for(node, self.release.haproxy_ports):
            listener = TypeListener(node, spec, self._bind(node, spec.port), self.faults)
            listener.start()
            self._tls.append(listener)
            self.tls_ports.setdefault(node.name, {})[spec.port] = listener.port

    def stop(self) -> None:
        for server in self._https:
            server.close_all()
        for ssh in self._ssh:
            ssh.stop()
        for listener in self._tls:
            listener.stop()
        self._tls.clear()
        self._https.clear()
        self._ssh.clear()
        if self._block is not None:
            self._block.close()
            self._block = None
        self.cluster.stop_clock()

    def __enter__(self) -> SimulatedCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ files
    def _host_key(self, node: Node) -> paramiko.RSAKey:
        """CUCM's SSH host key is RSA (CM14); kept in DIR so a restarted simulator keeps its keys."""
        path = self.directory / f"ssh_host_rsa_{node.short}"
        if not path.exists():
            key = paramiko.RSAKey(key=_host_rsa(node.index))
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                key.write_private_key(fh)
        return paramiko.RSAKey.from_private_key_file(str(path))

    def _write_known_hosts(self) -> None:
        lines = []
        for ssh in self._ssh:
            key = ssh.host_key
            # OpenSSH's form: a bare host for port 22, [host]:port for any other.
            hosts = [ssh.node.address, ssh.node.name]
            if ssh.port != SSH_PORT:
                hosts = [f"[{h}]:{ssh.port}" for h in hosts]
            lines.append(f"{','.join(hosts)} {key.get_name()} {key.get_base64()}\n")
        self.known_hosts.write_text("".join(lines))

    def write_bundle(self) -> None:
        # The content is taken under the cluster lock and written under the file lock, never the
        # other way round (a restart finishing inside the cluster lock calls this too); the sequence
        # number keeps a slower writer from replacing a newer bundle with an older one.
        with self.cluster.lock:
            text = "".join(pki.pem(c) for c in self.cluster.bundle_certificates())
            self._bundle_seq += 1
            seq = self._bundle_seq
        with self._bundle_lock:
            if seq < self._bundle_written:
                return
            tmp = self.ca_bundle.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.replace(self.ca_bundle)
            self._bundle_written = seq

    def _describe(self) -> SimulatorInfo:
        return SimulatorInfo(
            cluster="sim",
            version=self.cluster.version,
            release=self.release.name,
            ca_bundle=str(self.ca_bundle),
            known_hosts=str(self.known_hosts),
            platform=_account(self.credentials["platform"]),
            axl=_account(self.credentials["axl"]),
            nodes=tuple(
                NodeInfo(
                    name=n.name,
                    role=n.role,
                    address=n.address,
                    https_port=n.https_port,
                    ssh_port=n.ssh_port,
                    tls_ports=dict(self.tls_ports.get(n.name, {})),
                    ports=dict(self.ports.get(n.name, {})),
                    fallbacks=tuple(self.fallbacks.get(n.name, ())),
                )
                for n in self.cluster.nodes
            ),
            hosts=network.hosts_snippet([(n.address, n.name) for n in self.cluster.nodes]),
            time_scale=self.cluster.time_scale,
            pid=os.getpid(),
        )

    @property
    def info(self) -> SimulatorInfo:
        """What ``simulator.json`` says, once started."""
        if self._info is None:
            raise RuntimeError("the simulator is not running: call start() or use it in a with block")
        return self._info

    # ------------------------------------------------------------------ API
    def state(self) -> dict[str, Any]:
        return self.cluster.state()

    def node(self, name: str) -> Node:
        return self.cluster.node(name)

    def trust_ca(self, cert: x509.Certificate | str) -> None:
        """Add a CA to the bundle in simulator.json (e.g. the demo's local CA once created)."""
        if isinstance(cert, str):
            for c in pki.parse_certificates(cert):
                self.cluster.add_bundle_ca(c)
        else:
            self.cluster.add_bundle_ca(cert)

    def set_flags(self, flags: dict[str, Any]) -> None:
        """Change cluster-wide conditions a test needs (not CUCM): drs_running, sso_enabled,
        replication ({node: code}), missing_from_cluster / unauthenticated ([node]), ctl, license,
        trigger ("EVENT:ACTION", see simulator.cluster.platform)."""
        platform = self.cluster.platform
        with self.cluster.lock:
            for key, value in flags.items():
                if key == "replication":
                    for node, code in dict(value).items():
                        platform.set_replication(self.cluster.node(node).short, int(code))
                    continue
                if key in ("missing_from_cluster", "unauthenticated"):
                    setattr(platform, key, {self.cluster.node(n).short for n in value})
                    continue
                if key == "ctl":
                    platform.set_ctl(str(value))
                    continue
                if key == "license":
                    platform.set_license(str(value))
                    continue
                if key == "trigger":
                    platform.add_trigger(*parse_trigger(str(value)))
                    continue
                if key == "drs_running":
                    if value not in (None, "backup", "restore"):
                        raise ValueError("drs_running must be null, 'backup' or 'restore'")
                    self.cluster.drs_running = value
                elif key == "sso_enabled":
                    self.cluster.sso_enabled = bool(value)
                else:
                    raise ValueError(
                        f"unknown flag {key!r}: use drs_running, sso_enabled, replication, "
                        "missing_from_cluster, unauthenticated, ctl, license or trigger"
                    )

    def cli_http(self, node: Node, session_id: str | None, line: str | None) -> dict[str, Any]:
        """One CLI line for a remote shell (`simulator.cli_shell`); sessions keep pending prompts."""
        with self._cli_lock:
            session = self._cli_sessions.get(session_id or "")
            if session is None or session.node is not node:
                session_id = uuid.uuid4().hex
                session = CliSession(self.cluster, node)
                self._cli_sessions[session_id] = session
        output = "" if line is None else "".join(session.feed(line))
        if session.closed:
            with self._cli_lock:
                self._cli_sessions.pop(session_id or "", None)
        return {
            "session": session_id,
            "output": output,
            "prompt": session.prompt,
            "closed": session.closed,
            "failed": output.startswith("Executed command unsuccessfully")
            or "\nExecuted command unsuccessfully" in output,
            "ready": session.prompt == PROMPT,
        }


def _account(creds: dict[str, str]) -> Account:
    return Account(creds["username"], creds["password"])


_host_keys: list[Any] = []
_host_keys_lock = threading.Lock()


def _host_rsa(index: int) -> Any:
    """The index-th node's RSA-2048 host key, reused by every cluster of this process (as the
    initial identities' keys are): generating keys is the slow part of starting a cluster."""
    with _host_keys_lock:
        while len(_host_keys) <= index:
            _host_keys.append(pki.KeyPool.generate())
        return _host_keys[index]
