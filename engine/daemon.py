"""What being the daemon takes beside driving runs: the state-folder lock and periodic jobs.

Only one process drives a state folder: it holds ``flock`` on ``STATE_DIR/daemon.lock``, which
names its pid. A daemon can also do work on a schedule (:class:`PeriodicJob`), e.g. start runs
that came due; :meth:`engine.facade.Engine.serve` runs both. Under a service manager it reports
readiness and liveness through ``$NOTIFY_SOCKET`` (:func:`sd_notify`, :func:`run_watchdog`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import getpass
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.errors import DaemonBusy
from engine.logging import get_logger

LOCK_NAME = "daemon.lock"


@dataclass(frozen=True)
class PeriodicJob:
    """Work the daemon does on a schedule beside driving runs, e.g. starting runs that came due.

    ``run`` is called once when the daemon starts and then every ``every`` seconds (divided by the
    engine's time scale, like every other declared duration). An exception it raises is logged and
    the job runs again at its next time: a cluster that cannot be reached tonight is tried again.
    """

    name: str
    every: float
    run: Callable[[], None]


def default_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


class DaemonLock:
    """``flock`` on ``STATE_DIR/daemon.lock``, which holds the owner's pid."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise DaemonBusy(self.state_dir, self.holder()) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd

    def holder(self) -> int | None:
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """The lock for the body. Re-entrant: a command that took it before creating anything
        (``run``) keeps it while it drives; ``flock`` from a second descriptor in one process
        would refuse the process itself."""
        if self._fd is not None:
            yield
            return
        self.acquire()
        try:
            yield
        finally:
            self.release()


def run_jobs(stop: threading.Event, jobs: Sequence[PeriodicJob], time_scale: float) -> None:
    """Run each job at start and then on its schedule until ``stop`` is set."""
    # Monotonic time: a wall clock stepped back or forth neither skips nor repeats a job.
    due = dict.fromkeys(range(len(jobs)), time.monotonic())
    while not stop.is_set():
        now = time.monotonic()
        for i, job in enumerate(jobs):
            if due[i] > now:
                continue
            try:
                job.run()
            except Exception as exc:  # a job failing must not stop the daemon driving runs
                get_logger().warning(
                    "daemon job failed", job=job.name, error=type(exc).__name__, reason=str(exc)
                )
            due[i] = time.monotonic() + max(job.every / time_scale, 0.05)
        stop.wait(max(0.0, min(due.values()) - time.monotonic()))


def sd_notify(message: str, *, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``message`` (e.g. ``READY=1``) to the service manager over ``$NOTIFY_SOCKET``.

    The protocol of sd_notify(3) without libsystemd: one datagram to a unix socket, ``@`` naming
    one in the abstract namespace. Returns False when not started by a service manager that asked
    for notifications; a send error is logged and also returns False, since a service manager that
    has gone away must not stop the daemon.
    """
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if not address or address[0] not in "/@":
        return False
    target = "\0" + address[1:] if address[0] == "@" else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode("utf-8"), target)
    except OSError as exc:
        get_logger().warning("sd_notify failed", socket=address, error=str(exc))
        return False
    return True


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Half of ``$WATCHDOG_USEC`` in seconds (sd_watchdog_enabled(3)'s advice), or None when the
    service manager did not ask this process (``$WATCHDOG_PID``, when set, must be ours)."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


def run_watchdog(stop: threading.Event, interval: float, alive: Callable[[], bool]) -> None:
    """Send ``WATCHDOG=1`` every ``interval`` seconds while ``alive()`` says the daemon still makes
    progress; a daemon that hangs stops pinging and the service manager restarts it."""
    while not stop.wait(interval):
        if alive():
            sd_notify("WATCHDOG=1")
        else:
            get_logger().error("watchdog: the scheduler loop has stalled; not pinging the service manager")
