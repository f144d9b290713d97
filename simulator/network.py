"""Where a simulated cluster listens: one loopback address per node, CUCM's real port numbers.

Linux routes all of 127.0.0.0/8 to ``lo``, so every node gets its own address without setup and
every node can serve 8443, 22, 5061... as a real cluster does. Each cluster claims a block
``127.A.B.0/24`` (node *k* at ``127.A.B.(k+2)``) with an abstract Unix socket named after the block,
so clusters in parallel processes (pytest-xdist workers, several engineers' tests) never share
addresses; the claim vanishes with the process. A real port that cannot be bound (taken, or below
1024 without root) falls back to a free port for that listener alone, and the fallback is recorded.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import socket
import threading
from dataclasses import dataclass

REAL = "real"
RANDOM = "random"
PORT_MODES = (REAL, RANDOM)
STRICT = "strict"  # that port or an error (a port the caller forced)

_BLOCKS = 254 * 256  # 127.0.0.0/24 .. 127.253.255.0/24
_counter = itertools.count()
_lock = threading.Lock()


@dataclass
class AddressBlock:
    """A claimed ``127.A.B.0/24``; ``close()`` releases it."""

    prefix: str
    _claim: socket.socket | None

    def address(self, index: int) -> str:
        if not 0 <= index < 250:
            raise ValueError("a simulated cluster has at most 250 nodes")
        return f"{self.prefix}.{index + 2}"

    def close(self) -> None:
        if self._claim is not None:
            self._claim.close()
            self._claim = None


def claim_block() -> AddressBlock:
    """A block no other running simulator holds: the first free one from a per-process start."""
    with _lock:
        n = next(_counter)
    # The first cluster of a process tries 127.0.0.x first (what a person running `simulate` sees);
    # the others spread by pid and counter, so parallel workers rarely probe the same blocks.
    start = 0 if n == 0 else (os.getpid() * 7919 + n * 104729) % _BLOCKS
    for i in range(_BLOCKS):
        block = (start + i) % _BLOCKS
        prefix = f"127.{block // 256}.{block % 256}"
        claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            claim.bind(f"\0cucm-renew-simulator-{prefix}")
        except OSError:
            claim.close()
            continue
        return AddressBlock(prefix, claim)
    raise OSError(errno.EADDRINUSE, "every 127.A.B.0/24 block is claimed by a running simulator")


def bind(address: str, port: int, *, mode: str = REAL) -> tuple[socket.socket, bool]:
    """A listening TCP socket on ``address:port``; in ``random`` mode or when that port cannot be
    bound (in use, or privileged), a free port on the same address. Returns (socket, fell_back)."""
    if mode == RANDOM or port == 0:
        return _listen(address, 0), False
    try:
        return _listen(address, port), False
    except OSError as exc:
        if mode == STRICT or exc.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EPERM):
            raise
        return _listen(address, 0), True


def _listen(address: str, port: int) -> socket.socket:
    if port == 0:
        return _listen_on_a_free_port(address)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # SO_REUSEADDR only lets a port in TIME_WAIT be rebound (a simulator restarted at once);
        # Linux still refuses a port another socket listens on.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(128)
    except BaseException:
        with contextlib.suppress(OSError):
            sock.close()
        raise
    return sock


def _listen_on_a_free_port(address: str) -> socket.socket:
    # A port the kernel picks at bind time is released when the listener is shut (Linux frees an
    # auto-bound port on close to listen): a node whose Tomcat restarts must get its own port back,
    # so the port is chosen first and then bound by number.
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((address, 0))
            port = int(probe.getsockname()[1])
        try:
            return _listen(address, port)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, f"no free port on {address}")


def hosts_snippet(entries: list[tuple[str, str]]) -> str:
    """``/etc/hosts`` lines (address, FQDN, short name) for clients that resolve names themselves."""
    return "".join(f"{address}\t{name}\t{name.split('.')[0]}\n" for address, name in entries)
