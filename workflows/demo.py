"""``cucm-renew demo``: the whole product on an embedded, time-scaled cluster.

A simulated cluster (publisher, two subscribers, one IM&P node, 2,000 phones, mixed mode) and a
local CA in a temporary folder; the configuration is written exactly as ``cucm-renew init
--from-simulator`` writes it, and the five types are renewed by the real engine through the real
adapters (HTTPS, SSH, SOAP), in campaign order, with every guard in force.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, ClassVar, TextIO

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from adapters.ca.local import LocalCA
from engine.daemon import Engine
from engine.definition import load_definitions
from engine.logging import configure_logging
from simulator.runtime import SimulatedCluster
from workflows.cert_types import CERT_TYPES
from workflows.cli import format_table, printer, start_campaign, summary_rows
from workflows.config import load_config
from workflows.initconfig import simulator_config
from workflows.registry import DEFINITIONS_DIR, build_registry
from workflows.wiring import Adapters


def run_demo(*, phones: int = 2000, time_scale: float = 600.0, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    configure_logging("error")
    folder = Path(tempfile.mkdtemp(prefix="cucm-renew-demo-"))
    started = time.monotonic()
    # The folder stays: it holds the audit export the summary points to (it is under /tmp).
    ok = _demo(folder, phones=phones, time_scale=time_scale, out=out, started=started)
    return 0 if ok else 1


def _demo(folder: Path, *, phones: int, time_scale: float, out: TextIO, started: float) -> bool:
    out.write(
        f"starting a simulated cluster: publisher, 2 subscribers, 1 IM&P node, {phones} phones, "
        f"mixed mode, time x{time_scale:g}\n"
    )
    out.flush()
    sim = SimulatedCluster(
        folder / "simulator", nodes=3, imp=1, phones=phones, mixed_mode=True, time_scale=time_scale
    ).start()
    try:
        listeners = TypeListeners(sim)
        config_path = folder / "cucm-renew.toml"
        config_path.write_text(
            simulator_config(sim.json_path, config_path, ports=listeners.start()), encoding="utf-8"
        )
        config = load_config(config_path)
        lab = config.cas["lab"]
        assert lab.folder is not None
        ca = LocalCA(lab.folder, name="lab")
        # The nodes will present certificates from this CA: the cluster's CA bundle must know it.
        sim.trust_ca(ca.root_pem)
        out.write(f"local CA in {lab.folder}; configuration {config_path}\n")
        adapters = Adapters(config)
        registry = build_registry()
        definitions = load_definitions(DEFINITIONS_DIR, registry)
        state = folder / "state"
        engine = Engine(state, definitions, registry, adapters.deps, time_scale=config.time_scale)
        try:
            cluster = next(iter(config.clusters))
            start_campaign(
                engine, config, [(cluster, list(CERT_TYPES))], force=False, definitions=definitions
            )
            engine.run_until_quiet(on_event=printer(out))
            views = [engine.status(r.id)[0] for r in engine.find_runs(include_final=True)]
            views.sort(key=lambda v: CERT_TYPES.index(v.definition))
            audit = folder / "audit.jsonl"
            with audit.open("w", encoding="utf-8") as fh:
                events = engine.export_audit(fh, "jsonl")
            counters: dict[str, Any] = sim.state()
        finally:
            engine.close()
            adapters.close()
            listeners.stop()
    finally:
        stop_simulator(sim)
    elapsed = time.monotonic() - started
    out.write("\n" + format_table(summary_rows(views)) + "\n\n")
    phones_state = counters.get("phones") or {}
    out.write(f"phones: {phones_state}\n")
    out.write(f"audit: {events} events in {audit}\n")
    out.write(f"done in {elapsed:.1f} s\n")
    out.flush()
    ok = all(v.state == "done" for v in views) and all(r["verified"] for r in summary_rows(views))
    if not ok:
        for v in views:
            if v.state != "done":
                out.write(f"{v.id}: {v.state} {v.waiting_reason or v.last_error}\n")
    return ok


def stop_simulator(sim: SimulatedCluster) -> None:
    """Stop the simulator without waiting out its SSH accept loops.

    Closing a listening socket does not wake a thread blocked in ``accept`` on Linux; shutting it
    down does, so each SSH server's thread ends at once instead of after its join timeout.
    """
    for server in getattr(sim, "_ssh", []):
        with contextlib.suppress(OSError):
            server.sock.shutdown(socket.SHUT_RDWR)
    sim.stop()


def main() -> int:
    return run_demo()


class TypeListeners:
    """TLS on the CUCM ports of the types other than tomcat, for a simulated cluster.

    The simulator serves HTTPS (tomcat) only; CUCM also presents CallManager on 5061, TVS on 2445,
    CAPF on 3804 and ipsec on 4040. Each listener presents, at every handshake, the certificate the
    simulated node currently presents for that type (it changes only when the type's services
    restart), so the workflows' final check works on the simulator exactly as on CUCM.
    """

    PORTS: ClassVar[dict[str, int]] = {"CallManager": 5061, "TVS": 2445, "CAPF": 3804, "ipsec": 4040}

    def __init__(self, sim: SimulatedCluster) -> None:
        self.sim = sim
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._cache: dict[tuple[str, str], tuple[str, ssl.SSLContext]] = {}

    def start(self) -> dict[str, dict[int, int]]:
        """Listen on 127.0.0.1; returns, per node name, CUCM port -> the port reached."""
        ports: dict[str, dict[int, int]] = {}
        for node in self.sim.cluster.nodes:
            for cert_type, cucm_port in self.PORTS.items():
                if cert_type not in node.identities:
                    continue
                sock = socket.create_server(("127.0.0.1", 0))
                sock.settimeout(0.2)
                self._sockets.append(sock)
                ports.setdefault(node.name, {})[cucm_port] = sock.getsockname()[1]
                thread = threading.Thread(
                    target=self._serve, args=(sock, node, cert_type), daemon=True, name=f"tls-{cert_type}"
                )
                thread.start()
                self._threads.append(thread)
        return ports

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        for sock in self._sockets:
            sock.close()

    def _serve(self, sock: socket.socket, node: Any, cert_type: str) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            try:
                with self._context(node, cert_type).wrap_socket(conn, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                conn.close()

    def _context(self, node: Any, cert_type: str) -> ssl.SSLContext:
        cluster = self.sim.cluster
        with cluster.lock:
            cluster.advance()
            ident = node.identities[cert_type]
            fp = ident.presented.fingerprint(hashes.SHA256()).hex()
            cached = self._cache.get((node.name, cert_type))
            if cached and cached[0] == fp:
                return cached[1]
            chain = [ident.presented, *cluster.chain_for(node, cert_type, ident.presented)]
            key = ident.presented_key
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory(prefix="tls-") as tmp:
            path = Path(tmp) / "chain.pem"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
                for cert in chain:
                    fh.write(cert.public_bytes(Encoding.PEM))
            ctx.load_cert_chain(path)
        self._cache[(node.name, cert_type)] = (fp, ctx)
        return ctx
