"""One SSH server per node (paramiko server mode): password auth with the platform account, the
`admin:` CLI in an interactive shell, and single commands over exec channels.

Algorithms are CUCM 14's (CM14): an RSA host key offered as rsa-sha2-512/256 (and ssh-rsa where
this paramiko still has it), AES-CTR/GCM ciphers, ECDH/DH-group14/16 key exchange. The shell echoes
a line when the CLI reads it, as CUCM's line editor does: input typed ahead of a prompt is echoed
after that prompt, not before it."""

from __future__ import annotations

import contextlib
import hmac
import socket
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import paramiko
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)

from simulator.cli import BANNER, PROMPT, CliSession

if TYPE_CHECKING:
    from simulator.cluster import Node
    from simulator.runtime import SimulatedCluster


class _Interface(paramiko.ServerInterface):
    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self.kind: str | None = None
        self.command = b""
        self.rows = 0  # the pty's height; 0 without a pty
        self.ready = threading.Event()

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        if hmac.compare_digest(username, self.username) and hmac.compare_digest(password, self.password):
            return AUTH_SUCCESSFUL
        return AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return OPEN_SUCCEEDED if kind == "session" else OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_pty_request(
        self,
        channel: paramiko.Channel,
        term: bytes,
        width: int,
        height: int,
        pixelwidth: int,
        pixelheight: int,
        modes: bytes,
    ) -> bool:
        self.rows = height
        return True

    def check_channel_window_change_request(self, *args: object) -> bool:
        return True

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        self.kind = "shell"
        self.ready.set()
        return True

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        self.kind = "exec"
        self.command = command
        self.ready.set()
        return True


# CM14's lists; each is cut to what this paramiko implements (the order is paramiko's preference).
CIPHERS = ("aes128-ctr", "aes192-ctr", "aes256-ctr", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
KEX = (
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group14-sha1",
    "diffie-hellman-group14-sha256",
    "diffie-hellman-group16-sha512",
)
HOST_KEY_TYPES = ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")


def _restrict(transport: paramiko.Transport) -> None:
    opts = transport.get_security_options()
    opts.ciphers = tuple(c for c in opts.ciphers if c in CIPHERS)
    opts.kex = tuple(k for k in opts.kex if k in KEX)
    opts.key_types = tuple(k for k in opts.key_types if k in HOST_KEY_TYPES)


class NodeSSHServer:
    def __init__(
        self, sim: SimulatedCluster, node: Node, sock: socket.socket, host_key: paramiko.RSAKey
    ) -> None:
        self.sim = sim
        self.node = node
        self.host_key = host_key
        self.sock = sock
        self.address, self.port = sock.getsockname()[:2]
        self._stop = threading.Event()
        self._transports: set[paramiko.Transport] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name=f"sim-ssh-{node.short}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        # shutdown() wakes a thread blocked in accept(); close() alone does not on Linux.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()
        with self._lock:
            transports = list(self._transports)
        for t in transports:
            t.close()
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if self.sim.faults.node_down(self.node.short):
                client.close()
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        transport = paramiko.Transport(client)
        with self._lock:
            self._transports.add(transport)
        try:
            _restrict(transport)
            transport.add_server_key(self.host_key)
            creds = self.sim.credentials["platform"]
            iface = _Interface(creds["username"], creds["password"])
            try:
                transport.start_server(server=iface)
            except (paramiko.SSHException, EOFError, OSError):
                return
            while transport.is_active() and not self._stop.is_set():
                channel = transport.accept(timeout=1)
                if channel is None:
                    continue
                if not iface.ready.wait(timeout=30):
                    channel.close()
                    continue
                iface.ready.clear()
                threading.Thread(
                    target=self._run_channel,
                    args=(channel, iface.kind, iface.command, iface.rows),
                    daemon=True,
                ).start()
        finally:
            with self._lock:
                self._transports.discard(transport)

    def _run_channel(self, channel: paramiko.Channel, kind: str | None, command: bytes, rows: int) -> None:
        session = CliSession(self.sim.cluster, self.node)
        try:
            if kind == "exec":
                self._exec(channel, session, command.decode(errors="replace"))
            else:
                page = rows - 1 if self.sim.pager and 2 <= rows <= 200 else 0
                self._shell(channel, session, page)
        except (OSError, EOFError, paramiko.SSHException):
            pass
        finally:
            with contextlib.suppress(OSError, EOFError):
                channel.close()

    def _feed(self, session: CliSession, line: str, command: str) -> Iterator[str] | None:
        """The output of one line; None when the `lost` fault takes it: the command ran, with its
        effects, and the channel must close before any output."""
        if not self.sim.faults.lose_reply(self.node.short, "ssh"):
            return session.feed(line)
        record = self.sim.cluster.record
        before = record.thread_effects()
        chunks = list(session.feed(line))  # to its end (a restart included), output held back
        if record.thread_effects() == before:
            return iter(chunks)
        with self.sim.cluster.lock:
            record.reply_lost(self.node.name, "ssh", command)
        return None

    def _exec(self, channel: paramiko.Channel, session: CliSession, command: str) -> None:
        failed = False
        chunks = self._feed(session, command, command)
        if chunks is None:
            return
        for chunk in chunks:
            failed = failed or chunk.startswith("Executed command unsuccessfully")
            channel.sendall(chunk.encode())
        if session.prompt != PROMPT:
            channel.sendall(session.prompt.encode() + (b"\n" if session.prompt else b""))
            reader = _Reader(channel, echo=False)
            while (line := reader.line()) is not None:
                chunks = self._feed(session, line, command)
                if chunks is None:
                    return
                for chunk in chunks:
                    failed = failed or chunk.startswith("Executed command unsuccessfully")
                    channel.sendall(chunk.encode())
                if session.prompt == PROMPT:
                    break
        channel.send_exit_status(1 if failed else 0)

    def _shell(self, channel: paramiko.Channel, session: CliSession, rows_per_page: int) -> None:
        channel.sendall(BANNER.replace("\n", "\r\n").encode() + PROMPT.encode())
        reader = _Reader(channel, echo=True)
        command = ""
        while (line := reader.line()) is not None:
            if session.prompt == PROMPT:
                command = line.strip()
            chunks = self._feed(session, line, command)
            if chunks is None:
                return
            shown, page = 0, rows_per_page
            for chunk in chunks:
                lines = chunk.split("\n")
                total = len(lines) - 1
                for n, text in enumerate(lines):
                    last = n == len(lines) - 1
                    channel.sendall((text if last else text + "\r\n").encode())
                    if last:
                        continue
                    shown += 1
                    if page and shown % page == 0 and n + 1 < total:
                        # CUCM's pager; "n" (or space) shows the next page, "e" the rest, "q" quits.
                        channel.sendall(
                            f"options: q=quit, n=next, p=prev, b=begin, e=end (lines {shown - page + 1} - "
                            f"{shown} of {total}) : ".encode()
                        )
                        key = reader.key()
                        channel.sendall(b"\r\n")
                        if key in (None, "q"):
                            break
                        if key == "e":
                            page = 0
                else:
                    continue
                break
            if session.closed:
                channel.send_exit_status(0)
                return
            channel.sendall(session.prompt.encode())


class _Reader:
    """Lines (and, for the pager, single keys) from a channel, with an optional echo.

    Bytes that arrive while the CLI is busy wait, unechoed, until the CLI reads them: the echo of
    a typed-ahead line follows the prompt that reads it, as on CUCM, so an expect-style client
    sees each prompt at the end of its own line (not ``admin:admin:`` after a burst of echoes).
    """

    def __init__(self, channel: paramiko.Channel, echo: bool) -> None:
        self.channel = channel
        self.echo = echo
        self.buffer = b""
        self.echoed = 0  # bytes at the head of the buffer already echoed
        self._cr = False  # the last byte received was CR: a LF right after it ends nothing

    def _fill(self) -> bool:
        data = self.channel.recv(4096)
        if not data:
            return False
        if self._cr and data.startswith(b"\n"):
            data = data[1:]
        self._cr = data.endswith(b"\r")
        self.buffer += data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        return True

    def _echo_line(self) -> None:
        """Echo what the CLI has read so far: the buffer up to the end of its first line."""
        end = self.buffer.find(b"\n")
        limit = len(self.buffer) if end < 0 else end + 1
        if limit > self.echoed:
            if self.echo:
                self.channel.sendall(self.buffer[self.echoed : limit].replace(b"\n", b"\r\n"))
            self.echoed = limit

    def line(self) -> str | None:
        while True:
            self._echo_line()
            if b"\n" in self.buffer:
                break
            if not self._fill():
                if self.buffer:
                    rest, self.buffer, self.echoed = self.buffer, b"", 0
                    return rest.decode(errors="replace")
                return None
        line, self.buffer = self.buffer.split(b"\n", 1)
        self.echoed = max(0, self.echoed - len(line) - 1)
        return line.decode(errors="replace")

    def key(self) -> str | None:
        """One keystroke, not echoed; a key typed with Enter ("n\\n") counts as that key alone."""
        if not self.buffer and not self._fill():
            return None
        key, self.buffer = self.buffer[:1].decode(errors="replace"), self.buffer[1:]
        if key != "\n":
            if not self.buffer:
                self.channel.settimeout(0.2)
                try:
                    self._fill()
                except TimeoutError:
                    pass
                finally:
                    self.channel.settimeout(None)
            if self.buffer.startswith(b"\n"):
                self.buffer = self.buffer[1:]
        self.echoed = 0
        return key.lower()
