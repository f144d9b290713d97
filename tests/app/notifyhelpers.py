"""Real local receivers for the notification tests: an HTTP server and an SMTP server with
STARTTLS, both on 127.0.0.1 on ports the system picks, and a test CA for the SMTP certificate."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.tlsfiles import server_tls


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """Answers ``failures`` 500s first, then 204; ``hold`` keeps every request waiting until set."""

    failures: int = 0
    hold: threading.Event | None = None
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    @contextlib.contextmanager
    def serve(self) -> Iterator[WebhookReceiver]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.requests.append(Received(dict(self.headers.items()), body))
                    failing = len(receiver.requests) <= receiver.failures
                if receiver.hold is not None:
                    receiver.hold.wait(60)
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            if self.hold is not None:
                self.hold.set()
            self.server.shutdown()
            self.server.server_close()
            thread.join(timeout=10)


def make_ca_and_server_cert(folder: Path) -> tuple[Path, Path, Path]:
    """A test CA (``ca.pem``) and a certificate for 127.0.0.1 and localhost signed by it."""
    return server_tls(folder, "notify test CA", ("ca.pem", "smtp.pem", "smtp.key"))


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool


@dataclass
class SmtpReceiver:
    """aiosmtpd on its own event loop. ``tls`` offers STARTTLS; AUTH is accepted in clear too
    (``auth_require_tls=False``), so only the client can be what keeps credentials inside TLS."""

    tls: Any = None  # an ssl.SSLContext
    user: str = "notifier"
    password: str = "smtp-pass-word"
    mails: list[Mail] = field(default_factory=list)
    auths: list[tuple[str, bool]] = field(default_factory=list)
    """(login, whether the session was inside TLS) per AUTH attempt."""
    port: int = 0

    @contextlib.contextmanager
    def serve(self) -> Iterator[SmtpReceiver]:
        receiver = self

        class Handler:
            async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
                receiver.mails.append(
                    Mail(
                        str(envelope.mail_from),
                        list(envelope.rcpt_tos),
                        bytes(envelope.original_content or b""),
                        session.ssl is not None,
                    )
                )
                return "250 OK"

        def authenticator(
            server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
        ) -> AuthResult:
            assert isinstance(auth_data, LoginPassword)
            login = auth_data.login.decode()
            receiver.auths.append((login, session.ssl is not None))
            ok = login == receiver.user and auth_data.password.decode() == receiver.password
            return AuthResult(success=ok)

        loop = asyncio.new_event_loop()
        ready = threading.Event()
        holder: dict[str, Any] = {}

        def run() -> None:
            asyncio.set_event_loop(loop)

            def factory() -> SMTP:
                return SMTP(
                    Handler(),
                    hostname="smtp.test",
                    tls_context=receiver.tls,
                    require_starttls=receiver.tls is not None,
                    authenticator=authenticator,
                    auth_require_tls=False,
                )

            server = loop.run_until_complete(loop.create_server(factory, host="127.0.0.1", port=0))
            holder["server"] = server
            receiver.port = server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            server.close()
            loop.run_until_complete(server.wait_closed())

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        assert ready.wait(30), "the SMTP server did not start"
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()
