"""A running simulated cluster: the model plus every node's HTTPS and SSH servers.

``SimulatedCluster`` is what tests and the demo use in-process::

    with SimulatedCluster(directory, nodes=3, phones=200, time_scale=100) as sim:
        info = sim.info          # DIR/simulator.json, typed (simulator.info.SimulatorInfo)
        sim.state()              # the same dict as GET /__sim__/state
        sim.cluster              # the model itself (simulator.cluster.Cluster)
"""

from __future__ import annotations

import os
import secrets
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paramiko
from cryptography import x509

from simulator import pki
from simulator.cli import PROMPT, CliSession
from simulator.cluster import DEVICE_POOL_FORMAT, Cluster, Node
from simulator.faults import Faults
from simulator.https import NodeHTTPSServer
from simulator.info import Account, NodeInfo, SimulatorInfo
from simulator.ssh import NodeSSHServer
from simulator.tls import CUCM_PORTS, TypeListener, listened_types


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
        version: str = "14.0.1.13900-155",
        credentials: dict[str, dict[str, str]] | None = None,
        restart_seconds: tuple[float, float] = (60.0, 180.0),
        reregister_seconds: tuple[float, float] = (30.0, 120.0),
        pager: bool = True,
        device_pool: str | None = DEVICE_POOL_FORMAT,
        ris_lag: float = 0.0,
        phone_interaction: str = "automatic",
    ) -> None:
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
            version=version,
            expiry_days=expiry_days,
            ris_rate_limit=ris_rate_limit,
            workdir=str(self.directory),
            restart_seconds=restart_seconds,
            reregister_seconds=reregister_seconds,
            device_pool=device_pool,
            ris_lag=ris_lag,
            phone_interaction=phone_interaction,
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
            for node in self.cluster.nodes:
                port = self._https_ports.get(node.name, self._https_ports.get(node.short, 0))
                server = NodeHTTPSServer(self, node, port)
                node.https_port = server.server_address[1]
                self._https.append(server)
                t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
                t.start()
                self._threads.append(t)
                key = paramiko.Ed25519Key.from_private_key_file(str(self._host_key_file(node)))
                ssh_port = self._ssh_ports.get(node.name, self._ssh_ports.get(node.short, 0))
                ssh = NodeSSHServer(self, node, ssh_port, key)
                node.ssh_port = ssh.port
                ssh.start()
                self._ssh.append(ssh)
                for cert_type in listened_types(node):
                    listener = TypeListener(node, cert_type, self.faults)
                    listener.start()
                    self._tls.append(listener)
                    self.tls_ports.setdefault(node.name, {})[CUCM_PORTS[cert_type]] = listener.port
        except BaseException:
            self.stop()
            raise
        self.cluster.start_clock()
        self.faults.started = time.monotonic()  # `down=` windows count from here
        self.write_bundle()
        self._write_known_hosts()
        self._info = self._describe()
        self._info.write(self.json_path)
        return self

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
        self.cluster.stop_clock()

    def __enter__(self) -> SimulatedCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ files
    def _host_key_file(self, node: Node) -> Path:
        path = self.directory / f"ssh_host_ed25519_{node.short}"
        if not path.exists():
            _write_ed25519(path)
        return path

    def _write_known_hosts(self) -> None:
        lines = []
        for ssh in self._ssh:
            key = ssh.host_key
            lines.append(f"[127.0.0.1]:{ssh.port} {key.get_name()} {key.get_base64()}\n")
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
                )
                for n in self.cluster.nodes
            ),
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
        """Change cluster-wide conditions a test needs (not CUCM): drs_running, sso_enabled."""
        with self.cluster.lock:
            for key, value in flags.items():
                if key == "drs_running":
                    if value not in (None, "backup", "restore"):
                        raise ValueError("drs_running must be null, 'backup' or 'restore'")
                    self.cluster.drs_running = value
                elif key == "sso_enabled":
                    self.cluster.sso_enabled = bool(value)
                else:
                    raise ValueError(f"unknown flag {key!r}: use drs_running or sso_enabled")

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


def _write_ed25519(path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
