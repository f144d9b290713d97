"""Small real servers on 127.0.0.1 for the transport tests: HTTPS with a real CA, SSH with a canned CLI."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paramiko
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

# ------------------------------------------------------------------------------ PKI


@dataclass
class Issued:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    def write(self, folder: Path, stem: str) -> tuple[Path, Path]:
        cert_path, key_path = folder / f"{stem}.pem", folder / f"{stem}.key"
        cert_path.write_text(self.pem)
        key_path.write_bytes(
            self.key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return cert_path, key_path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


def issue(ca: Issued, dns_name: str) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(dns_name))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=10))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(key, cert)


def make_csr_pem(dns_name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(dns_name))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


# ------------------------------------------------------------------------------ HTTPS


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Reply = tuple[int, str, bytes]  # status, content type, body
Route = Callable[[Request], Reply]


@dataclass
class HttpsServer:
    """A keep-alive HTTPS server with programmable routes; records every request and SNI name."""

    cert_file: Path
    key_file: Path
    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)
    connections: int = 0

    def start(self) -> HttpsServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                request = Request(self.command, self.path, {k: v for k, v in self.headers.items()}, body)
                owner.requests.append(request)
                route = owner.routes.get((self.command, path))
                status, ctype, payload = route(request) if route else (404, "text/plain", b"no route")
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _handle

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)

        def on_sni(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
            owner.sni.append(name)

        context.sni_callback = on_sni  # type: ignore[assignment]

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[socket.socket, Any]:
                sock, addr = self.socket.accept()
                owner.connections += 1
                return context.wrap_socket(sock, server_side=True), addr

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def route(self, method: str, path: str, fn: Route) -> None:
        self.routes[(method, path)] = fn


def json_reply(status: int, obj: Any) -> Reply:
    return status, "application/json", json.dumps(obj).encode()


def soap_reply(body_xml: str, status: int = 200) -> Reply:
    envelope = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
        f"<soapenv:Body>{body_xml}</soapenv:Body></soapenv:Envelope>"
    )
    return status, "text/xml; charset=utf-8", envelope.encode()


def soap_fault(faultstring: str, detail: str = "", code: str = "soapenv:Server") -> Reply:
    detail_xml = f"<detail>{detail}</detail>" if detail else ""
    return soap_reply(
        f"<soapenv:Fault><faultcode>{code}</faultcode><faultstring>{faultstring}</faultstring>"
        f"{detail_xml}</soapenv:Fault>",
        status=500,
    )


# ------------------------------------------------------------------------------ SSH

CliHandler = Callable[["ShellIO", str], None]


class ShellIO:
    """What a canned CLI command sees: write text, read a line (echoed as a pty would)."""

    def __init__(self, channel: paramiko.Channel, echo: bool) -> None:
        self.channel = channel
        self.echo = echo
        self._buffer = b""

    def write(self, text: str) -> None:
        self.channel.sendall(text.replace("\n", "\r\n").encode())

    def readline(self) -> str | None:
        while b"\n" not in self._buffer and b"\r" not in self._buffer:
            data = self.channel.recv(4096)
            if not data:
                return None
            if self.echo:
                self.channel.sendall(data)
            self._buffer += data
        self._buffer = self._buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()


def ed25519_host_key() -> paramiko.Ed25519Key:
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    return paramiko.Ed25519Key.from_private_key(io.StringIO(pem))


class SshServer:
    """paramiko server mode: password auth, an ``admin:`` shell dispatching to canned commands."""

    def __init__(
        self,
        host_key: paramiko.PKey,
        commands: dict[str, CliHandler],
        *,
        username: str = "osadmin",
        password: str = "platform-pass",  # noqa: S107 - test fixture
        allow_shell: bool = True,
    ) -> None:
        self.host_key = host_key
        self.commands = commands
        self.username = username
        self.password = password
        self.allow_shell = allow_shell
        self.received: list[str] = []
        self.exec_commands: list[str] = []
        self.logins = 0
        self._transports: list[paramiko.Transport] = []

    def start(self) -> SshServer:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()
        for transport in self._transports:
            transport.close()

    def known_hosts_line(self, key: paramiko.PKey | None = None) -> str:
        key = key or self.host_key
        return f"[127.0.0.1]:{self.port} {key.get_name()} {key.get_base64()}\n"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        transport = paramiko.Transport(client)
        self._transports.append(transport)
        transport.add_server_key(self.host_key)
        owner = self

        class Interface(paramiko.ServerInterface):
            def get_allowed_auths(self, username: str) -> str:
                return "password"

            def check_auth_password(self, username: str, password: str) -> int:
                if username == owner.username and password == owner.password:
                    owner.logins += 1
                    return paramiko.AUTH_SUCCESSFUL
                return paramiko.AUTH_FAILED

            def check_channel_request(self, kind: str, chanid: int) -> int:
                return paramiko.OPEN_SUCCEEDED

            def check_channel_pty_request(self, *args: Any) -> bool:
                return True

            def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
                if not owner.allow_shell:
                    return False
                threading.Thread(target=owner._shell, args=(channel,), daemon=True).start()
                return True

            def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
                threading.Thread(target=owner._exec, args=(channel, command.decode()), daemon=True).start()
                return True

        try:
            transport.start_server(server=Interface())
        except (paramiko.SSHException, EOFError, OSError):
            return
        channels = []  # held: a channel object that is garbage-collected closes itself
        while transport.is_active() and not self._stop.is_set():
            channel = transport.accept(timeout=0.5)
            if channel is not None:
                channels.append(channel)

    def _dispatch(self, io_: ShellIO, line: str) -> None:
        self.received.append(line)
        handler = self.commands.get(line)
        if handler is None:
            io_.write("Executed command unsuccessfully\nInvalid command\n")
        else:
            handler(io_, line)

    def _shell(self, channel: paramiko.Channel) -> None:
        io_ = ShellIO(channel, echo=True)
        try:
            time.sleep(0.05)  # a banner that arrives late, as CUCM's does
            io_.write("\nWelcome to the Platform Command Line Interface\n\nadmin:")
            while True:
                line = io_.readline()
                if line is None or line.strip() == "exit":
                    return
                if line.strip():
                    self._dispatch(io_, line.strip())
                io_.write("\nadmin:")
        except (OSError, EOFError):
            return
        finally:
            with contextlib.suppress(OSError, EOFError):  # the client already hung up
                channel.close()

    def _exec(self, channel: paramiko.Channel, command: str) -> None:
        self.exec_commands.append(command)
        io_ = ShellIO(channel, echo=False)
        try:
            self._dispatch(io_, command)
            channel.send_exit_status(0)
        except (OSError, EOFError):
            return
        # EOF, not close: closing before the exec request's reply reaches the client would fail it.
        channel.shutdown_write()
