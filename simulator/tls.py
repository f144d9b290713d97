"""TLS listeners for the certificate types CUCM presents outside HTTPS.

CUCM presents CallManager on 5061 (SIP-TLS), TVS on 2445, CAPF on 3804 (publisher) and ipsec on
4040 (reference section 4). Each listener completes a TLS handshake with the node's *presented*
certificate of its type, then closes: enough for a client to check which certificate a node
presents. The local port for each CUCM port is in simulator.json (`tls_ports`).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.cluster import Node
    from simulator.faults import Faults

CUCM_PORTS: dict[str, int] = {"CallManager": 5061, "TVS": 2445, "CAPF": 3804, "ipsec": 4040}


def listened_types(node: Node) -> list[str]:
    types = [t for t in CUCM_PORTS if t in node.identities]
    # Only the publisher runs CAPF (the service is absent elsewhere).
    return [t for t in types if t != "CAPF" or node.role == "publisher"]


class TypeListener:
    def __init__(self, node: Node, cert_type: str, faults: Faults) -> None:
        self.node = node
        self.cert_type = cert_type
        self.faults = faults
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"sim-tls-{cert_type}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.faults.node_down(self.node.short):
                conn.close()
                continue
            threading.Thread(target=self._handshake, args=(conn,), daemon=True).start()

    def _handshake(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            with (
                self.node.tls_context(self.cert_type).wrap_socket(conn, server_side=True) as tls,
                contextlib.suppress(OSError),
            ):
                tls.recv(1)  # until the client hangs up (or the timeout): it has what it came for
        except (OSError, ssl.SSLError):
            conn.close()
