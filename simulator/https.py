"""One HTTPS server per node: certmgr REST, the SOAP services, and the `/__sim__` inspection API.

Each accepted connection is wrapped with the node's *current* tomcat context, so a new tomcat
certificate is seen by new connections only once Cisco Tomcat has restarted on that node. While
Cisco Tomcat is stopping, stopped or starting, the node's HTTPS port refuses connections (the
listener is shut, the port kept), and connections opened before the stop get no answer from the
CUCM services (certmgr, AXL, RisPort70, ControlCenterServices).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import html
import json
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from simulator import pki
from simulator.cluster import CucmError, Node
from simulator.cluster.certificates import MULTI_SERVER, multi_server_name, trust_store

if TYPE_CHECKING:
    from simulator.runtime import SimulatedCluster

CERTMGR = "/platformcom/api/v1/certmgr/config/"
IDLE_TIMEOUT = 30.0
HANDSHAKE_TIMEOUT = 10.0

# Tomcat's error report valve, as CUCM's Tomcat sends it: no server version [I].
_TOMCAT_TEXTS = {
    401: (
        "Unauthorized",
        "The request has not been applied to the target resource because it lacks valid "
        "authentication credentials for that resource.",
    ),
    404: (
        "Not Found",
        "The origin server did not find a current representation for the target resource or is not "
        "willing to disclose that one exists.",
    ),
    405: (
        "Method Not Allowed",
        "The method received in the request-line is known by the origin server but not supported by "
        "the target resource.",
    ),
    503: (
        "Service Unavailable",
        "The server is currently unable to handle the request due to a temporary overload or "
        "scheduled maintenance, which will likely be alleviated after some delay.",
    ),
}


def tomcat_page(status: int, message: str | None = None) -> str:
    title, description = _TOMCAT_TEXTS[status]
    shown = f"<p><b>Message</b> {html.escape(message)}</p>" if message else ""
    return (
        f'<!doctype html><html lang="en"><head><title>HTTP Status {status} \u2013 {title}</title></head>'
        f'<body><h1>HTTP Status {status} \u2013 {title}</h1><hr class="line" /><p><b>Type</b> Status '
        f'Report</p>{shown}<p><b>Description</b> {description}</p><hr class="line" /></body></html>'
    )


_401_BODY = tomcat_page(401)
TOMCAT_HTML = "text/html;charset=utf-8"

# Tomcat's page for a path no web application serves (certmgr REST below CUCM 14, among others).
_404_BODY = (
    '<!doctype html><html lang="en"><head><title>HTTP Status 404 \u2013 Not Found</title></head>'
    '<body><h1>HTTP Status 404 \u2013 Not Found</h1><hr class="line" /><p><b>Type</b> Status Report</p>'
    "<p><b>Description</b> The origin server did not find a current representation for the target "
    'resource or is not willing to disclose that one exists.</p><hr class="line" /></body></html>'
)


class NodeHTTPSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, sim: SimulatedCluster, node: Node, sock: socket.socket) -> None:
        """Serve on ``sock``, already bound and listening (simulator.network chose its port)."""
        self.sim = sim
        self.node = node
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        # Tomcat's runs: a connection accepted in an earlier run died with that Tomcat.
        self._tomcat_run = 0
        self._conn_run: dict[socket.socket, int] = {}
        self._listening = threading.Event()
        self._listening.set()
        super().__init__(sock.getsockname()[:2], NodeRequestHandler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.server_address = sock.getsockname()[:2]
        sim.cluster.service_listeners.append(self._service_changed)

    def _service_changed(self, node: Node, service: Any) -> None:
        """Cisco Tomcat stopping shuts the listener (connections are refused); Started reopens it."""
        if node is not self.node or service.name != "Cisco Tomcat":
            return
        with contextlib.suppress(OSError):
            if service.state == "Started":
                if not self._listening.is_set():
                    self.socket.listen(self.request_queue_size)
                    self._listening.set()
            elif self._listening.is_set():
                self._listening.clear()
                self._tomcat_run += 1
                self.socket.shutdown(socket.SHUT_RDWR)

    def tomcat_answers(self, conn: Any) -> bool:
        """Tomcat runs, and is the same Tomcat that accepted ``conn``."""
        with self.sim.cluster.lock:
            self.sim.cluster.advance()
            return self.node.tomcat_running and self._conn_run.get(conn) == self._tomcat_run

    def get_request(self) -> tuple[Any, Any]:
        if not self._listening.is_set():
            # The shut listener polls readable; wait for Tomcat rather than spin.
            self._listening.wait(0.2)
            raise OSError("Cisco Tomcat is not running")
        sock, addr = self.socket.accept()
        if self.sim.faults.node_down(self.node.short):
            # A node that is down: the TCP connection opens (the VM answers) but nothing follows.
            sock.close()
            raise OSError("node down")
        ctx = self.node.tomcat_context()
        wrapped = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self._conns_lock:
            self._conn_run[wrapped] = self._tomcat_run
        return wrapped, addr

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        try:
            request.settimeout(HANDSHAKE_TIMEOUT)
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError):
                self.shutdown_request(request)
                return
            request.settimeout(IDLE_TIMEOUT)
            super().process_request_thread(request, client_address)
        finally:
            with self._conns_lock:
                self._conns.discard(request)
                self._conn_run.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients dropping connections is normal here (fault injection, timeouts); stay quiet.
        pass

    def close_all(self) -> None:
        with contextlib.suppress(ValueError):
            self.sim.cluster.service_listeners.remove(self._service_changed)
        self._listening.set()
        self.shutdown()
        self.server_close()
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                c.close()


class NodeRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: NodeHTTPSServer
    server_version = ""
    sys_version = ""
    # The `lost` fault drawn for the current request: (endpoint, effects before it, what it was).
    _lose: tuple[str, int, str] | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def version_string(self) -> str:
        return ""

    # ------------------------------------------------------------------ plumbing
    @property
    def sim(self) -> SimulatedCluster:
        return self.server.sim

    @property
    def node(self) -> Node:
        return self.server.node

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send(
        self, status: int, body: bytes | str, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        data = body.encode() if isinstance(body, str) else body
        if self._lose is not None and status < 400 and self._reply_lost():
            return
        # CUCM's Tomcat sends no reason phrase: "HTTP/1.1 404 " [I].
        self.send_response(status, "")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def tomcat_error(self, status: int, message: str | None = None) -> None:
        self.send(status, tomcat_page(status, message), TOMCAT_HTML)

    def not_found(self, path: str) -> None:
        self.tomcat_error(404, path)

    def send_json(self, status: int, obj: Any) -> None:
        self.send(status, json.dumps(obj), "application/json")

    def rest_error(self, status: int, message: str) -> None:
        self.send_json(
            status, {"status": status, "message": message, "trackingId": self.sim.cluster.new_tracking_id()}
        )

    def authorized(self, account: str) -> bool:
        expected = self.sim.credentials[account]
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user, password = "", ""
            if hmac.compare_digest(user, expected["username"]) and hmac.compare_digest(
                password, expected["password"]
            ):
                return True
        self.body()  # drain, so the connection stays usable
        realm = "CMPlatform" if account == "platform" else "Cisco Unified Communications Manager"
        self.send(401, _401_BODY, TOMCAT_HTML, {"WWW-Authenticate": f'Basic realm="{realm}"'})
        return False

    def _reply_lost(self) -> bool:
        """Carried out (this thread's effects grew): drop the connection instead of answering."""
        assert self._lose is not None
        endpoint, before, what = self._lose
        self._lose = None
        record = self.sim.cluster.record
        if record.thread_effects() == before:
            return False
        with self.sim.cluster.lock:
            record.reply_lost(self.node.name, endpoint, what)
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        return True

    def draw_lost(self, method: str, endpoint: str, path: str) -> None:
        self._lose = None
        if method == "POST" and self.sim.faults.lose_reply(self.node.short, endpoint):
            action = (self.headers.get("SOAPAction") or "").strip().strip('"')
            what = f"{method} {path}" + (f" {action}" if action else "")
            self._lose = (endpoint, self.sim.cluster.record.thread_effects(), what)

    def inject_fault(self, endpoint: str) -> bool:
        """Apply a configured fault; True when the request must not be answered normally."""
        fault = self.sim.faults.decide(self.node.short, endpoint)
        if fault is None:
            return False
        self.body()
        if fault == "5xx":
            self.tomcat_error(503)
        elif fault == "timeout":
            time.sleep(self.sim.faults.hold_seconds)
            self.close_connection = True
        else:  # drop
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True
        return True

    # ------------------------------------------------------------------ dispatch
    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def do_PUT(self) -> None:
        self.dispatch("PUT")

    def do_DELETE(self) -> None:
        self.dispatch("DELETE")

    def dispatch(self, method: str) -> None:
        self._lose = None
        url = urlsplit(self.path)
        path = url.path
        query = parse_qs(url.query, keep_blank_values=True)
        try:
            if path.startswith("/__sim__/"):
                self.handle_sim(method, path, query)
            elif path.startswith((CERTMGR, "/axl", "/realtimeservice2/", "/controlcenterservice2/")) and (
                not self.server.tomcat_answers(self.connection)
            ):
                # Served by Cisco Tomcat, which is down or is not the Tomcat this connection knew.
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
            elif path.startswith(CERTMGR) and self.sim.release.certmgr_rest:
                if self.inject_fault("rest") or not self.authorized("platform"):
                    return
                self.draw_lost(method, "rest", path)
                self.handle_certmgr(method, path[len(CERTMGR) :], query)
            elif path.startswith(("/axl", "/realtimeservice2/", "/controlcenterservice2/")):
                endpoint = "axl" if path.startswith("/axl") else "ris" if "realtime" in path else "ccs"
                if self.inject_fault(endpoint) or not self.authorized("axl"):
                    return
                if endpoint != "ris":
                    self.draw_lost(method, endpoint, path)
                from simulator import soap

                soap.handle(self, method, path, url.query)
            else:
                self.body()
                self.not_found(path)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError):
            self.close_connection = True

    # ------------------------------------------------------------------ certmgr REST
    def read_json(self) -> Any:
        raw = self.body()
        try:
            return json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError):
            return None

    def handle_certmgr(self, method: str, sub: str, query: dict[str, list[str]]) -> None:
        cluster = self.sim.cluster
        node = self.node
        if method == "POST" and sub == "csr":
            body = self.read_json()
            if not isinstance(body, dict) or not isinstance(body.get("service"), str):
                return self.rest_error(400, "Invalid request: service is required")
            service = body["service"]
            distribution = body.get("distribution", "this-server")
            # The non-SAN choice is "this-server" (public code) or the node's FQDN (the GUI's list);
            # the multi-server value is the GUI's label: the REST spelling is not documented [U].
            multi = distribution == MULTI_SERVER
            if not multi and distribution not in ("this-server", node.name):
                return self.rest_error(400, f"Invalid distribution: {distribution}")
            expected_cn = multi_server_name(node, service) if multi else node.name
            cn = body.get("commonName", expected_cn)
            if cn != expected_cn:
                return self.rest_error(400, f"Invalid commonName: {cn}")
            key_type = body.get("keyType", "ec" if service.endswith("-ECDSA") else "rsa")
            hash_name = body.get("hashAlgorithm")
            if not isinstance(key_type, str) or not isinstance(hash_name, str | None):
                return self.rest_error(400, "Invalid keyType or hashAlgorithm")
            alt = body.get("altNames") or []
            if not isinstance(alt, list) or not all(isinstance(a, str) for a in alt):
                return self.rest_error(400, "Invalid altNames")
            try:
                length = body.get("keyLength")
                csr = cluster.generate_csr(
                    node,
                    service,
                    alt,
                    True,
                    None if length is None else int(length),
                    key_type,
                    hash_name,
                    multi,
                )
            except CucmError as exc:
                return self.rest_error(exc.status, exc.message)
            except (TypeError, ValueError):
                return self.rest_error(400, "Invalid keyLength")
            return self.send_json(200, {"csr": pki.csr_pem(csr)})
        if method == "POST" and sub in ("trust/certificates", "identity/certificates"):
            body = self.read_json()
            if not isinstance(body, dict):
                return self.rest_error(400, "Invalid request body")
            services = body.get("service")
            certs = body.get("certificates")
            if isinstance(certs, str):
                certs = [certs]
            if not isinstance(certs, list) or not certs or not all(isinstance(c, str) for c in certs):
                return self.rest_error(400, "Invalid request: certificates is required")
            try:
                if sub.startswith("trust"):
                    if isinstance(services, str):
                        services = [services]
                    if not isinstance(services, list) or not all(isinstance(s, str) for s in services):
                        return self.rest_error(400, "Invalid request: service is required")
                    cluster.upload_trust(node, services, certs)
                else:
                    if not isinstance(services, str):
                        return self.rest_error(400, "Invalid request: service is required")
                    _, installed_on = cluster.upload_identity_to(node, services, certs)
                    if installed_on != [node.name]:
                        # The GUI lists each node under "Certificate upload operation successful"
                        # (T118731); the REST answer's shape for it is modelled [I].
                        return self.send_json(
                            201,
                            {
                                "trackingId": cluster.new_tracking_id(),
                                "message": "Certificate upload operation successful",
                                "servers": installed_on,
                            },
                        )
            except CucmError as exc:
                return self.rest_error(exc.status, exc.message)
            return self.send_json(
                201, {"trackingId": cluster.new_tracking_id(), "message": "Successfully uploaded"}
            )
        if method == "GET" and sub == "snapshot/server":
            self.body()
            with cluster.lock:
                identities = []
                for t, ident in node.identities.items():
                    entry = {"service": t, "certificate": pki.pem(ident.installed)}
                    if ident.csr is not None:
                        entry["csr"] = pki.csr_pem(ident.csr)
                    identities.append(entry)
                trusts = [
                    {
                        "service": store,
                        "certificate_data": [
                            {"filename": f, "certificate": pki.pem(c)} for f, c in certs.items()
                        ],
                    }
                    for store, certs in node.trust.items()
                ]
            return self.send_json(
                200,
                {
                    "trackingId": cluster.new_tracking_id(),
                    "server": node.name,
                    "identities": identities,
                    "trusts": trusts,
                    "revokedCertificates": [],
                },
            )
        if method == "GET" and sub in ("trust/certificate", "identity/certificate"):
            self.body()
            service = (query.get("service") or [""])[0]
            with cluster.lock:
                if sub.startswith("trust"):
                    store = service if service.endswith("-trust") else trust_store(service)
                    if store not in node.trust:
                        return self.rest_error(400, f"Invalid service: {service}")
                    return self.send_json(
                        200,
                        {
                            "certificates": [
                                {"filename": f, "certificate": pki.pem(c)}
                                for f, c in node.trust[store].items()
                            ]
                        },
                    )
                if service not in node.identities:
                    return self.rest_error(400, f"Invalid service: {service}")
                ident = node.identities[service]
                out = {"service": service, "certificate": pki.pem(ident.installed)}
                if ident.csr is not None:
                    out["csr"] = pki.csr_pem(ident.csr)
                return self.send_json(200, out)
        self.body()
        return self.rest_error(404, "Not Found")

    # ------------------------------------------------------------------ /__sim__
    def handle_sim(self, method: str, path: str, query: dict[str, list[str]]) -> None:
        if method == "GET" and path == "/__sim__/state":
            self.body()
            return self.send_json(200, self.sim.state())
        if method == "POST" and path == "/__sim__/trust":
            if not self.authorized("platform"):
                return
            raw = self.body()
            try:
                text = json.loads(raw).get("pem", "") if raw.lstrip().startswith(b"{") else raw.decode()
                certs = pki.parse_certificates(text)
            except (ValueError, AttributeError, pki.CertificateFormatError):
                return self.rest_error(400, 'Body must be a PEM certificate or {"pem": "..."}')
            for c in certs:
                self.sim.trust_ca(c)
            return self.send_json(200, {"added": [pki.fingerprint(c) for c in certs]})
        if method == "POST" and path == "/__sim__/cli":
            if not self.authorized("platform"):
                return
            body = self.read_json()
            if not isinstance(body, dict) or not isinstance(body.get("line", ""), str):
                return self.rest_error(400, 'Body must be {"session": id or null, "line": "..."}')
            return self.send_json(200, self.sim.cli_http(self.node, body.get("session"), body.get("line")))
        if method == "POST" and path == "/__sim__/set":
            if not self.authorized("platform"):
                return
            body = self.read_json()
            if not isinstance(body, dict):
                return self.rest_error(400, "Body must be a JSON object")
            try:
                self.sim.set_flags(body)
            except ValueError as exc:
                return self.rest_error(400, str(exc))
            return self.send_json(200, {"ok": True})
        self.body()
        return self.rest_error(404, "Not Found")
