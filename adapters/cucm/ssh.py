"""The CUCM platform CLI over SSH: an interactive ``admin:`` shell driven like an operator would.

The CLI is interactive (prompts for yes/no, for pasted certificates), so commands go through
``invoke_shell`` and the output is read until the ``admin:`` prompt returns. Where a server refuses
an interactive shell the command runs on an exec channel instead (no prompt; read to EOF).

Host keys are checked against the cluster's known_hosts file only (never the user's), with
paramiko's ``RejectPolicy``: an unknown or changed key is refused as :class:`HostKeyMismatch`.

A command that changes something (``set csr gen``, ``set cert import``, ``utils service restart``,
``utils ctl update``...) is retried only when the failure came before it was sent (no connection,
no shell); once it is sent, a lost channel is :class:`CucmOutcomeUnknown` and it is not run again.
Reads (``show``, status and list commands) are retried as before.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import paramiko
import structlog

from adapters.cucm.port import (
    CucmAuthError,
    CucmError,
    CucmOutcomeUnknown,
    CucmUnreachable,
    HostKeyMismatch,
    NodeRef,
)
from adapters.cucm.retry import RetryPolicy, call_with_retry

log = structlog.get_logger("adapters.cucm")

PROMPT = "admin:"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]")
PASTE_PROMPT = re.compile(r"Paste the Certificate and Hit Enter", re.IGNORECASE)


@dataclass(frozen=True)
class Answer:
    """Reply ``reply`` when the output (since the last reply) matches ``pattern``."""

    pattern: re.Pattern[str]
    reply: str


# The CLI pages long listings (e.g. `show cert list trust` on a big trust store) behind this prompt;
# "n" shows the next page. Its wording comes from public tooling, not Cisco's documentation.
PAGER = Answer(re.compile(r"options:\s*q=quit,\s*n=next.*:\s*$", re.IGNORECASE), "n")

YES_NO = re.compile(r"\(\s*yes\s*\|\s*no\s*\)\s*\??\s*:?\s*$", re.IGNORECASE)


READ_ONLY_COMMANDS = (
    "show ",
    "utils service list",
    "utils sso status",
    "utils disaster_recovery status",
    "utils dbreplication status",
    "utils ntp status",
    "file list",
    "run sql select",
)
"""The CLI commands the adapters run that only read: repeated after a lost answer. Anything else
may change the node and is never sent twice by the adapter."""


def read_only(command: str) -> bool:
    text = " ".join(command.split()).lower()
    return any(text == p.strip() or text.startswith(p) for p in READ_ONLY_COMMANDS)


def clean(raw: str) -> str:
    """Terminal output as plain text: no ANSI sequences, ``\\n`` line ends."""
    return _ANSI.sub("", raw).replace("\r\n", "\n").replace("\r", "\n")


def strip_echo_and_prompt(output: str, command: str) -> str:
    lines = output.split("\n")
    if lines and lines[0].strip().endswith(command.strip()):
        lines = lines[1:]
    text = "\n".join(lines).rstrip()
    if text.endswith(PROMPT):
        text = text[: -len(PROMPT)].rstrip()
    return text


def _prompt_after(buffer: str, command: str, handled: int) -> bool:
    """The buffer ends with the prompt, printed after the command's echo and after the last reply.

    Requiring the echo first keeps a stray prompt (from an earlier Enter) from ending a command
    before its output arrived.
    """
    stripped = buffer.rstrip()
    if not stripped.endswith(PROMPT):
        return False
    end = len(stripped) - len(PROMPT)
    if command and buffer.find(command.strip()) < 0:
        return False
    return end >= handled and (not command or end > buffer.find(command.strip()))


def _drain(channel: paramiko.Channel) -> None:
    """Discard output left over from an earlier command (a late prompt, an echo of Enter)."""
    while channel.recv_ready():
        if not channel.recv(65536):
            return


class CliSession:
    """One SSH connection to a node's platform CLI, reused across commands, one command at a time."""

    def __init__(
        self,
        node: NodeRef,
        *,
        username: str,
        password: str,
        known_hosts: str,
        policy: RetryPolicy,
        connect_timeout: float = 15.0,
        command_timeout: float = 120.0,
    ) -> None:
        self.node = node
        self.policy = policy
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._username = username
        self._password = password
        self._known_hosts = known_hosts
        self._client: paramiko.SSHClient | None = None
        self._shell: paramiko.Channel | None = None
        self._shell_refused = False
        self._sent = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CliSession({self.node.name} via {self.node.address}:{self.node.ssh_port})"

    @property
    def where(self) -> str:
        return f"{self.node.name} ({self.node.address}:{self.node.ssh_port})"

    # ----------------------------------------------------------------- connection

    def _connect(self) -> paramiko.SSHClient:
        if self._client is not None:
            transport = self._client.get_transport()
            if transport is not None and transport.is_active():
                return self._client
            self._drop()
        if not Path(self._known_hosts).is_file():
            raise HostKeyMismatch(
                f"SSH to {self.where}: the known_hosts file {self._known_hosts} does not exist. Fix: "
                f"create it with the node's host key (e.g. from `ssh-keyscan -p {self.node.ssh_port} "
                f"{self.node.address}`, checked against the node's console) and point the cluster's "
                f"known_hosts setting at it.",
                node=self.node.name,
            )
        client = paramiko.SSHClient()
        client.load_host_keys(self._known_hosts)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                self.node.address,
                port=self.node.ssh_port,
                username=self._username,
                password=self._password,
                timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout,
                look_for_keys=False,
                allow_agent=False,
            )
        except paramiko.BadHostKeyException as error:
            client.close()
            raise HostKeyMismatch(
                f"SSH to {self.where}: the host key changed (presented {error.key.get_name()} "
                f"{error.key.fingerprint}, expected {error.expected_key.fingerprint} per "
                f"{self._known_hosts}). Refused. Fix: if the node was reinstalled or its key "
                f"regenerated, verify the new key out of band and replace the entry for "
                f"[{self.node.address}]:{self.node.ssh_port} in {self._known_hosts}.",
                node=self.node.name,
            ) from error
        except paramiko.AuthenticationException as error:
            client.close()
            raise CucmAuthError(
                f"SSH to {self.where}: the platform credentials were refused. Fix: configure the "
                f"OS administrator (platform) user for this cluster.",
                node=self.node.name,
            ) from error
        except paramiko.SSHException as error:
            client.close()
            if "known_hosts" in str(error):
                raise HostKeyMismatch(
                    f"SSH to {self.where}: its host key is not in {self._known_hosts}. Refused. Fix: "
                    f"add the node's key for [{self.node.address}]:{self.node.ssh_port} to that file "
                    f"after checking it out of band.",
                    node=self.node.name,
                ) from error
            raise CucmUnreachable(f"SSH to {self.where} failed: {error}", node=self.node.name) from error
        except (OSError, EOFError) as error:
            client.close()
            raise CucmUnreachable(
                f"SSH to {self.where} is unreachable ({type(error).__name__}: {error}). Fix: check the "
                f"address and SSH port in the configuration and that the node is up.",
                node=self.node.name,
            ) from error
        self._client = client
        return client

    def _drop(self) -> None:
        if self._shell is not None:
            self._shell.close()
        if self._client is not None:
            self._client.close()
        self._shell = None
        self._client = None

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _open_shell(self, client: paramiko.SSHClient) -> paramiko.Channel | None:
        if self._shell is not None and not self._shell.closed:
            return self._shell
        if self._shell_refused:
            return None
        try:
            shell = client.invoke_shell(term="vt100", width=250, height=50)
        except paramiko.SSHException as error:
            log.info("cucm.ssh.shell_refused", node=self.node.name, reason=str(error))
            self._shell_refused = True
            return None
        shell.settimeout(0.2)
        self._read_until(shell, "", [], None, self.connect_timeout + 30, prompt=True)
        self._shell = shell
        return shell

    # ----------------------------------------------------------------- commands

    def run(
        self,
        command: str,
        *,
        answers: Sequence[Answer] = (),
        paste: str | None = None,
        timeout: float | None = None,
    ) -> str:
        """Run one CLI command and return its output (without the echo and the final prompt).

        ``answers`` reply to interactive questions; ``paste`` is sent at the paste prompt, followed by
        an empty line. Transport failures before the command is sent reconnect and retry per the
        policy; after it is sent, only a read (:func:`read_only`) is retried, and a command with
        effects raises :class:`CucmOutcomeUnknown`.
        """
        reads = read_only(command)

        def attempt() -> str:
            with self._lock:
                self._sent = False
                try:
                    return self._run_once(command, [*answers, PAGER], paste, timeout or self.command_timeout)
                except CucmError as error:
                    # The shell may be mid-command: never reuse it.
                    self._drop()
                    # Sent and then no prompt, or the channel lost: the command may have run.
                    if self._sent and not reads:
                        raise CucmOutcomeUnknown(
                            f"{error}. `{command}` was sent, so {self.node.name} may have carried it "
                            f"out: not run again; the node is read before it is.",
                            node=self.node.name,
                        ) from error
                    raise

        return call_with_retry(self.policy, f"CLI {command}", self.node.name, attempt)

    def _run_once(self, command: str, answers: Sequence[Answer], paste: str | None, timeout: float) -> str:
        client = self._connect()
        log.info("cucm.cli", node=self.node.name, command=command)
        try:
            shell = self._open_shell(client)
            if shell is not None:
                _drain(shell)
                self._sent = True
                shell.sendall((command + "\n").encode())
                raw = self._read_until(shell, command, answers, paste, timeout, prompt=True)
                return strip_echo_and_prompt(raw, command)
            channel = client.get_transport().open_session()  # type: ignore[union-attr]
            channel.settimeout(0.2)
            self._sent = True
            channel.exec_command(command)
            return self._read_until(channel, command, answers, paste, timeout, prompt=False).strip()
        except (OSError, EOFError, paramiko.SSHException) as error:
            raise CucmUnreachable(
                f"CLI `{command}` on {self.where}: connection lost ({type(error).__name__}: {error})",
                node=self.node.name,
            ) from error

    def _read_until(
        self,
        channel: paramiko.Channel,
        command: str,
        answers: Sequence[Answer],
        paste: str | None,
        timeout: float,
        *,
        prompt: bool,
    ) -> str:
        buffer = ""
        handled = 0  # replies are matched against output after the last reply only
        pasted = paste is None
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise CucmError(
                    f"CLI `{command}` on {self.where}: no prompt after {timeout:.0f} s. Fix: check the "
                    f"node's CLI by hand; the command may still be running.",
                    node=self.node.name,
                )
            try:
                chunk = channel.recv(65536)
            except TimeoutError:
                chunk = None
            if chunk == b"":
                if prompt:
                    raise CucmUnreachable(
                        f"CLI `{command}` on {self.where}: the shell closed before the prompt",
                        node=self.node.name,
                    )
                return buffer
            if chunk:
                buffer += clean(chunk.decode("utf-8", errors="replace"))
            pending = buffer[handled:]
            if not pasted and PASTE_PROMPT.search(pending):
                assert paste is not None
                # The certificate, then Enter on an empty line: that is what ends the paste.
                channel.sendall((paste.strip() + "\n\n").encode())
                pasted = True
                handled = len(buffer)
                continue
            replied = False
            for answer in answers:
                if answer.pattern.search(pending):
                    channel.sendall((answer.reply + "\n").encode())
                    handled = len(buffer)
                    replied = True
                    break
            if replied:
                continue
            if prompt and _prompt_after(buffer, command, handled):
                return buffer
            if not prompt and channel.exit_status_ready() and not channel.recv_ready():
                return buffer
