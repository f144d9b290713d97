"""HTTPS to one CUCM node: connect to its address, verify TLS against its name.

CUCM nodes are often reached by an address (or a load-balancer name) that is not the name in their
certificate, so the connection goes to ``address:port`` while SNI and hostname verification use
the node's ``name``, with the cluster's CA bundle and never the system store or the environment.

A failure is retried only where it proves the request never left: the connection was refused or
timed out, the name did not resolve, the TLS handshake failed. Once the first byte of a request with
effects is on the wire, any failure (read timeout, connection closed or reset, HTTP 5xx) is
:class:`~adapters.cucm.port.CucmOutcomeUnknown` and is not resent: CUCM may have done the work.
Which side of that line a failure falls on is known exactly: the connection marks when it starts
sending (:class:`_MarkingConnection`), since exceptions alone do not tell (an ``SSLError`` can be a
failed handshake or a reply cut off mid-stream).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from adapters.cucm.port import (
    CucmOutcomeUnknown,
    CucmThrottled,
    CucmUnreachable,
    NodeRef,
    TlsVerificationError,
)
from adapters.cucm.retry import RetryPolicy, call_with_retry

T = TypeVar("T")

DEFAULT_TIMEOUT = (10.0, 60.0)  # (connect, read) seconds


_sending = threading.local()
"""Per thread: whether the current request has started to go out (set by the connection)."""


def _mark_unsent() -> None:
    _sending.started = False


def _was_sent() -> bool:
    return bool(getattr(_sending, "started", True))


class _MarkingConnection(HTTPSConnection):
    """Marks, before writing the first byte of a request, that the request may reach the server.

    urllib3 connects (TCP, then the TLS handshake) before it calls ``request``, so every failure
    before the mark is a request that never left.
    """

    def request(self, *args: Any, **kwargs: Any) -> None:
        _sending.started = True
        super().request(*args, **kwargs)


class _MarkingPool(HTTPSConnectionPool):
    ConnectionCls = _MarkingConnection


class NamedHostAdapter(HTTPAdapter):
    """An adapter whose connections send SNI for, and verify the certificate against, ``server_name``."""

    def __init__(self, server_name: str, *, pool_maxsize: int = 4) -> None:
        self._server_name = server_name
        super().__init__(pool_connections=1, pool_maxsize=pool_maxsize, max_retries=0)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        # urllib3 2.x pool keys: server_hostname drives SNI and, with assert_hostname, the match.
        pool_kwargs["server_hostname"] = self._server_name
        pool_kwargs["assert_hostname"] = self._server_name
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": HTTPConnectionPool, "https": _MarkingPool}


def make_session(node: NodeRef, ca_bundle: str, username: str, password: str) -> requests.Session:
    """A keep-alive session for ``https://address:https_port`` with HTTP Basic and name-based TLS.

    ``trust_env`` is off: an environment CA bundle would otherwise replace ours, and a proxy or
    netrc from the environment has no business on the path to a CUCM node.
    """
    session = requests.Session()
    session.trust_env = False
    session.verify = ca_bundle
    session.auth = (username, password)
    session.mount(base_url(node), NamedHostAdapter(node.name))
    return session


def base_url(node: NodeRef) -> str:
    return f"https://{node.address}:{node.https_port}/"


def _is_verification_failure(error: requests.exceptions.SSLError) -> bool:
    text = str(error)
    return any(
        marker in text
        for marker in (
            "CERTIFICATE_VERIFY_FAILED",
            "certificate verify failed",
            "Hostname mismatch",
            "CertificateError",
            "doesn't match",
        )
    )


class NodeHttp:
    """Requests to one node through per-thread keep-alive sessions, with errors mapped and retried.

    Each thread gets its own session (``requests.Session`` is not documented as thread-safe), so
    concurrent callers each keep their own connection alive.
    """

    def __init__(
        self,
        node: NodeRef,
        *,
        ca_bundle: str,
        username: str,
        password: str,
        policy: RetryPolicy,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        self.node = node
        self.policy = policy
        self.timeout = timeout
        self._ca_bundle = ca_bundle
        self._username = username
        self._password = password
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"NodeHttp({self.node.name} via {base_url(self.node)})"

    def session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = make_session(self.node, self._ca_bundle, self._username, self._password)
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._local = threading.local()

    def call(
        self,
        operation: str,
        method: str,
        path: str,
        handle: Callable[[requests.Response], T],
        *,
        before_attempt: Callable[[], None] | None = None,
        idempotent: bool | None = None,
        **kwargs: Any,
    ) -> T:
        """Send one request and pass the response to ``handle``, which returns or raises a CucmError.

        Transport failures become :class:`CucmUnreachable` and, like anything ``handle`` raises as
        transient, are retried per the policy. ``before_attempt`` runs before every attempt (a rate
        limiter, so that retries also wait their turn).

        ``idempotent`` (default: GET and HEAD only) says the request only reads. A request that is
        not is retried only when it provably never left; once sent, a failure or a transient answer
        (5xx) raises :class:`CucmOutcomeUnknown` and it is not sent again. A throttle fault is
        CUCM's refusal to act, so it stays retryable.
        """
        url = base_url(self.node) + path.lstrip("/")
        reads = method in ("GET", "HEAD") if idempotent is None else idempotent

        def attempt() -> T:
            if before_attempt is not None:
                before_attempt()
            response = self._send(operation, method, url, idempotent=reads, **kwargs)
            try:
                return handle(response)
            except CucmUnreachable as error:
                if reads or isinstance(error, (CucmThrottled, CucmOutcomeUnknown)):
                    raise
                raise CucmOutcomeUnknown(
                    f"{error} The request was received, so {self.node.name} may have carried it out: "
                    f"not resent; CUCM is read before it is sent again.",
                    node=self.node.name,
                ) from error
            finally:
                response.close()

        return call_with_retry(self.policy, operation, self.node.name, attempt)

    def _send(
        self, operation: str, method: str, url: str, *, idempotent: bool, **kwargs: Any
    ) -> requests.Response:
        where = f"{self.node.name} ({self.node.address}:{self.node.https_port})"
        _mark_unsent()
        try:
            # verify is passed on every request too: requests lets the environment win otherwise.
            return self.session().request(
                method, url, verify=self._ca_bundle, timeout=self.timeout, allow_redirects=False, **kwargs
            )
        except requests.exceptions.RequestException as error:
            if idempotent or not _was_sent():
                self._raise_unsent(operation, where, error)
            raise CucmOutcomeUnknown(
                f"{operation}: sent to {where}, no answer ({type(error).__name__}: {_short(error)}). "
                f"{self.node.name} may have carried it out: not resent; CUCM is read before it is "
                f"sent again.",
                node=self.node.name,
            ) from error

    def _raise_unsent(
        self, operation: str, where: str, error: requests.exceptions.RequestException
    ) -> NoReturn:
        """Map a failure of a read, or of a request that never left, to the port's errors."""
        if isinstance(error, requests.exceptions.SSLError):
            if _is_verification_failure(error):
                raise TlsVerificationError(
                    f"{operation}: the TLS certificate of {where} does not verify for the name "
                    f"{self.node.name!r} against the CA bundle {self._ca_bundle}. Fix: add the CA that "
                    f"issued the node's certificate to that bundle (or correct the node's name in the "
                    f"configuration); verification is never turned off.",
                    node=self.node.name,
                ) from error
            raise CucmUnreachable(
                f"{operation}: TLS handshake with {where} failed ({_short(error)}); retry later.",
                node=self.node.name,
            ) from error
        if isinstance(error, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
            raise CucmUnreachable(
                f"{operation}: {where} is unreachable ({type(error).__name__}: {_short(error)}). "
                f"Fix: check the address and port in the configuration and that the node is up.",
                node=self.node.name,
            ) from error
        raise CucmUnreachable(
            f"{operation}: request to {where} failed ({type(error).__name__}: {_short(error)})",
            node=self.node.name,
        ) from error


def _short(error: BaseException, limit: int = 300) -> str:
    # Exceptions from requests/urllib3 carry URLs, never the Basic credentials (sent as a header).
    text = str(error)
    return text if len(text) <= limit else text[:limit] + "..."
