"""A CA reached through an external program, in the manner of certmonger's helpers.

The contract the program implements:

**Submit**: run as ``argv`` (exactly as configured, nothing appended), the CSR PEM on stdin.
**Poll**: run as ``argv + ["poll"]``, stdin empty, the token in ``CUCM_RENEW_TOKEN``.

Environment: only ``PATH``, ``HOME``, ``LANG``, ``LC_ALL``, ``TZ`` and ``TMPDIR`` are passed from
ours (so CUCM credentials in our environment never reach the program), then the configured ``env``
(the place for the CA's own credentials: never on argv, where ``ps`` shows them to every user), then:

================================  ==================================================
``CUCM_RENEW_OPERATION``          ``submit`` or ``poll``
``CUCM_RENEW_CERT_TYPE``          the CUCM type (``tomcat``, ``CallManager``, ...); empty on poll
``CUCM_RENEW_NODE``               the node the certificate is for; empty on poll
``CUCM_RENEW_TOKEN``              poll only: the token the program printed earlier
``CUCM_RENEW_IDEMPOTENCY_KEY``    submit only: names the request (the CSR's SHA-256)
================================  ==================================================

**Already issued**: a submit whose ``CUCM_RENEW_IDEMPOTENCY_KEY`` the program has seen before
answers what that request produced: exit 0 with the chain it issued then, or exit 1 with the same
token while it is pending. cucm-renew submits again with the same key only when it was killed after
the program answered and before it recorded the answer; a program that ignores the key issues a
second certificate for the same CSR then.

Exit codes:

==  ===================================================================================
0   issued: stdout holds the PEM certificates, the leaf first, then its chain
1   pending: stdout holds a token (one line) to poll with later
2   rejected: the CA refused; stderr says why (→ :class:`CaRejected`)
3   unreachable: try again later; stderr says why (→ :class:`CaUnreachable`)
4   misconfigured: stderr says what (→ :class:`CaMisconfigured`, key ``ca.command``)
5   wait: stdout's first line is N seconds to wait; an optional second line is a token.
    Without a token, a submit is simply made again after N seconds.
==  ===================================================================================

A program that runs longer than ``timeout`` seconds is killed (its whole process group) and
counts as unreachable. Any other exit code, or a death by signal, raises :class:`CaError`.
"""

from __future__ import annotations

import base64
import contextlib
import math
import os
import re
import signal
import subprocess
from collections.abc import Mapping, Sequence

from adapters.ca.port import (
    CaError,
    CaMisconfigured,
    CaRejected,
    CaUnreachable,
    Issued,
    Pending,
    check_idempotency_key,
    csr_sha256,
)

_CONFIG_KEY = "ca.command"
_PASSED_FROM_OUR_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
_RESUBMIT = "resubmit:"
"""Token prefix for an exit-5 wait on submit without a token: the CSR travels in the token, then
``.`` and the idempotency key (tokens written before keys existed have none: the CSR's SHA-256)."""
_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")
_STDERR_SHOWN = 2000


class CommandCA:
    """Runs ``argv`` per the contract above. ``timeout`` is in seconds."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
        name: str = "command",
    ) -> None:
        if not argv or not all(isinstance(a, str) and a for a in argv):
            raise CaMisconfigured(f"{_CONFIG_KEY}.argv", "must be a non-empty list of non-empty strings")
        if timeout <= 0:
            raise CaMisconfigured(f"{_CONFIG_KEY}.timeout", f"must be positive (got {timeout})")
        self.name = name
        self.argv = tuple(argv)
        self.timeout = timeout
        self.env = dict(env or {})

    def submit(
        self, csr_pem: str, *, cert_type: str, node: str, idempotency_key: str | None = None
    ) -> Issued | Pending:
        """Run the program; ``idempotency_key`` defaults to the CSR's SHA-256."""
        if idempotency_key is None:
            try:
                idempotency_key = csr_sha256(csr_pem)
            except ValueError as exc:
                raise CaRejected(f"the request for {node} is not a PEM CSR", ca=self.name) from exc
        key = check_idempotency_key(idempotency_key)
        outcome = self._run(
            self.argv,
            csr_pem,
            {
                "CUCM_RENEW_OPERATION": "submit",
                "CUCM_RENEW_CERT_TYPE": cert_type,
                "CUCM_RENEW_NODE": node,
                "CUCM_RENEW_IDEMPOTENCY_KEY": key,
            },
        )
        if isinstance(outcome, Pending) and not outcome.token:
            # Exit 5 without a token: the next poll submits the same CSR again, with the same key.
            packed = base64.urlsafe_b64encode(f"{cert_type}\n{node}\n{csr_pem}".encode()).decode("ascii")
            return Pending(f"{_RESUBMIT}{packed}.{key}", outcome.retry_after, outcome.reason)
        return outcome

    def poll(self, token: str) -> Issued | Pending:
        if token.startswith(_RESUBMIT):
            packed, _, key = token[len(_RESUBMIT) :].partition(".")
            try:
                cert_type, node, csr_pem = base64.urlsafe_b64decode(packed).decode().split("\n", 2)
            except ValueError as exc:
                raise CaError(f"{self.name}: damaged resubmission token") from exc
            return self.submit(csr_pem, cert_type=cert_type, node=node, idempotency_key=key or None)
        outcome = self._run(
            (*self.argv, "poll"),
            "",
            {
                "CUCM_RENEW_OPERATION": "poll",
                "CUCM_RENEW_CERT_TYPE": "",
                "CUCM_RENEW_NODE": "",
                "CUCM_RENEW_TOKEN": token,
            },
        )
        if isinstance(outcome, Pending) and not outcome.token:
            return Pending(token, outcome.retry_after, outcome.reason)
        return outcome

    # ------------------------------------------------------------------ running

    def _run(self, argv: Sequence[str], stdin: str, extra: Mapping[str, str]) -> Issued | Pending:
        env = {k: v for k, v in os.environ.items() if k in _PASSED_FROM_OUR_ENV}
        env.update(self.env)
        env.update(extra)
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,  # so a timeout kills the program's children too
                text=True,
                errors="replace",  # a program printing binary junk still gets a readable error
            )
        except OSError as exc:
            raise CaMisconfigured(
                f"{_CONFIG_KEY}.argv", f"cannot run {argv[0]!r}: {exc.strerror or exc}; check the path"
            ) from exc
        try:
            out, err = proc.communicate(stdin, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            try:
                proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                # A grandchild left the group and holds our pipes: stop waiting for it.
                for pipe in (proc.stdout, proc.stderr):
                    if pipe is not None:
                        pipe.close()
            raise CaUnreachable(
                f"{self.name}: {argv[0]} did not answer within {self.timeout:g} s; "
                f"it was stopped. Check the CA, or raise {_CONFIG_KEY}.timeout"
            ) from None
        return self._interpret(proc.returncode, out, err.strip()[-_STDERR_SHOWN:])

    def _interpret(self, code: int, out: str, err: str) -> Issued | Pending:
        why = err or "(no message on stderr)"
        if code == 0:
            pems = _PEM_CERT.findall(out)
            if not pems:
                raise CaError(f"{self.name}: the program exited 0 (issued) but printed no PEM certificate")
            return Issued(pems[0] + "\n", tuple(p + "\n" for p in pems[1:]))
        if code == 1:
            token = out.strip()
            if "\n" in token:
                raise CaError(f"{self.name}: the program exited 1 (pending) but printed several lines")
            return Pending(token, None, f"the CA {self.name!r} has not signed the request yet")
        if code == 2:
            raise CaRejected(why, ca=self.name)
        if code == 3:
            raise CaUnreachable(f"{self.name}: the CA is unreachable: {why}")
        if code == 4:
            raise CaMisconfigured(_CONFIG_KEY, why)
        if code == 5:
            lines = out.strip().splitlines()
            try:
                seconds = float(lines[0])
            except (IndexError, ValueError):
                raise CaError(
                    f"{self.name}: the program exited 5 (wait) but did not print the seconds to wait"
                ) from None
            if not (math.isfinite(seconds) and seconds >= 0):
                raise CaError(
                    f"{self.name}: the program exited 5 with a negative or endless wait ({lines[0]})"
                )
            token = lines[1].strip() if len(lines) > 1 else ""
            return Pending(token, seconds, f"the CA {self.name!r} asked to wait {seconds:g} s")
        if code < 0:
            raise CaError(f"{self.name}: the program was killed by signal {-code}: {why}")
        raise CaError(f"{self.name}: the program exited with unknown code {code}: {why}")


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
