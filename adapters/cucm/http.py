"""HTTPS to one CUCM node: connect to its address, verify TLS against its name.

CUCM nodes are often reached by an address (or a load-balancer name) that is not the name in their
certificate, so the connection goes to ``address:port`` while SNI and hostname verification use
the node's ``name``, with the cluster's CA bundle and never the system store or the environment.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter

from adapters.cucm.port import CucmUnreachable, NodeRef, TlsVerificationError
from adapters.cucm.retry import RetryPolicy, call_with_retry

T = TypeVar("T")

DEFAULT_TIMEOUT = (10.0, 60.0)  # (connect, read) seconds


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
        **kwargs: Any,
    ) -> T:
        """Send one request and pass the response to ``handle``, which returns or raises a CucmError.

        Transport failures become :class:`CucmUnreachable` and, like anything ``handle`` raises as
        transient, are retried per the policy. ``before_attempt`` runs before every attempt (a rate
        limiter, so that retries also wait their turn).
        """
        url = base_url(self.node) + path.lstrip("/")

        def attempt() -> T:
            if before_attempt is not None:
                before_attempt()
            response = self._send(operation, method, url, **kwargs)
            try:
                return handle(response)
            finally:
                response.close()

        return call_with_retry(self.policy, operation, self.node.name, attempt)

    def _send(self, operation: str, method: str, url: str, **kwargs: Any) -> requests.Response:
        where = f"{self.node.name} ({self.node.address}:{self.node.https_port})"
        try:
            # verify is passed on every request too: requests lets the environment win otherwise.
            return self.session().request(
                method, url, verify=self._ca_bundle, timeout=self.timeout, allow_redirects=False, **kwargs
            )
        except requests.exceptions.SSLError as error:
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
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:
            raise CucmUnreachable(
                f"{operation}: {where} is unreachable ({type(error).__name__}: {_short(error)}). "
                f"Fix: check the address and port in the configuration and that the node is up.",
                node=self.node.name,
            ) from error
        except requests.exceptions.RequestException as error:
            raise CucmUnreachable(
                f"{operation}: request to {where} failed ({type(error).__name__}: {_short(error)})",
                node=self.node.name,
            ) from error


def _short(error: BaseException, limit: int = 300) -> str:
    # Exceptions from requests/urllib3 carry URLs, never the Basic credentials (sent as a header).
    text = str(error)
    return text if len(text) <= limit else text[:limit] + "..."
