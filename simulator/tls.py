"""TLS listeners for the certificates CUCM presents outside HTTPS 8443/443.

``LISTENERS`` is the table: CUCM port, the certificate type presented there, on which nodes, and
since which release. Each listener completes a TLS handshake with the node's *presented*
certificate of its type, then closes: enough for a client to check which certificate a node
presents (no protocol runs behind it). The port each one got is in simulator.json (`tls_ports`).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.cluster import Node
    from simulator.faults import Faults


@dataclass(frozen=True)
class Listener:
    port: int
    cert_type: str
    roles: tuple[str, ...]
    haproxy: bool = False  # only on releases whose row has haproxy_ports
    source: str = ""
    ec_twin: str | None = None  # also presented to clients offering only ECDSA suites (CM15)
    federation: bool = False  # only where XMPP federation runs


_CUCM = ("publisher", "subscriber")
_IMP = ("imp",)
# ECDSA suites are offered on 5061, 6971/6972 (CUCM) and 5061/5062, 5222, 5269 (IM&P), RSA only
# on 2443, 2445, 3804 and 4040 (CM15, part 2 section 5).
LISTENERS: tuple[Listener, ...] = (
    Listener(5061, "CallManager", _CUCM, source="SIP-TLS, part 1 section 4", ec_twin="CallManager-ECDSA"),
    Listener(2443, "CallManager", _CUCM, source="SCCP-TLS, part 1 section 4"),
    Listener(2445, "TVS", _CUCM, source="part 1 section 4"),
    # Only the publisher runs CAPF (14+: part 1 section 4; the simulator keeps it there for all).
    Listener(3804, "CAPF", ("publisher",), source="part 1 section 4"),
    # ipsec on 4040 [C part 1 section 4 for pre-14; from 14 DRF uses tomcat (T215534), which
    # certificate 4040 then presents is not stated: kept ipsec, I].
    Listener(4040, "ipsec", ("publisher", "subscriber", "imp"), source="part 1 section 4"),
    Listener(
        6971,
        "CallManager",
        _CUCM,
        haproxy=True,
        source="TFTP config download, SG125SU1-DS",
        ec_twin="CallManager-ECDSA",
    ),
    Listener(
        6972,
        "tomcat",
        _CUCM,
        haproxy=True,
        source="HTTPS config download, SG125SU1-DS",
        ec_twin="tomcat-ECDSA",
    ),
    # IM&P (IMP125, CM15): SIP Proxy presents cup on 5061 and 5062; XCP presents cup-xmpp on 5222
    # (Cisco XCP Client Connection Manager in CM15) and cup-xmpp-s2s on 5269, where federation runs.
    Listener(5061, "cup", _IMP, source="SIP Proxy TLS, IMP125", ec_twin="cup-ECDSA"),
    Listener(5062, "cup", _IMP, source="SIP Proxy TLS, IMP125", ec_twin="cup-ECDSA"),
    Listener(5222, "cup-xmpp", _IMP, source="XMPP client, IMP125, CM15", ec_twin="cup-xmpp-ECDSA"),
    Listener(
        5269,
        "cup-xmpp-s2s",
        _IMP,
        source="XMPP federation, IMP125, CM15",
        ec_twin="cup-xmpp-s2s-ECDSA",
        federation=True,
    ),
)
CUCM_PORTS: dict[str, int] = {
    "CallManager": 5061,
    "TVS": 2445,
    "CAPF": 3804,
    "ipsec": 4040,
    "CallManager-ECDSA": 5061,
    "cup": 5061,
    "cup-ECDSA": 5061,
    "cup-xmpp": 5222,
    "cup-xmpp-ECDSA": 5222,
    "cup-xmpp-s2s": 5269,
    "cup-xmpp-s2s-ECDSA": 5269,
}
"""The port where each type is checked (the workflows' ``tls_port``)."""


def listeners_for(node: Node, haproxy: bool) -> list[Listener]:
    return [
        spec
        for spec in LISTENERS
        if node.role in spec.roles
        and spec.cert_type in node.identities
        and (haproxy or not spec.haproxy)
        and (node.federates or not spec.federation)
    ]


class TypeListener:
    def __init__(self, node: Node, spec: Listener, sock: socket.socket, faults: Faults) -> None:
        self.node = node
        self.spec = spec
        self.cert_type = spec.cert_type
        self.faults = faults
        self.sock = sock
        self.port = int(self.sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"sim-tls-{spec.port}", daemon=True)

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
                self.node.tls_context(
                    self.cert_type, self.spec.ec_twin, haproxy=self.spec.haproxy
                ).wrap_socket(conn, server_side=True) as tls,
                contextlib.suppress(OSError),
            ):
                tls.recv(1)  # until the client hangs up (or the timeout): it has what it came for
        except (OSError, ssl.SSLError):
            conn.close()
