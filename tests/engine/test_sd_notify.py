"""Readiness and watchdog notifications to a service manager, over a real unix datagram socket."""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.daemon import run_watchdog, sd_notify, watchdog_interval
from engine.facade import Engine
from tests.engine.procs import start_daemon, wait_for


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    # A short folder: a unix socket path is limited to 108 bytes.
    folder = tempfile.mkdtemp(prefix="sdn", dir="/tmp")
    path = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    try:
        yield sock, path
    finally:
        sock.close()
        os.unlink(path)
        os.rmdir(folder)


def receive(sock: socket.socket, wanted: str, timeout: float = 30.0) -> list[str]:
    """Datagrams until one holds the line ``wanted``; all of them, in order."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {wanted!r} within {timeout} s; received {seen}")
        sock.settimeout(left)
        try:
            message = sock.recv(4096).decode()
        except TimeoutError:
            continue
        seen.append(message)
        if wanted in message.splitlines():
            return seen


def test_daemon_reports_ready_pings_the_watchdog_and_says_when_it_stops(
    tmp_path: Path, notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = notify_socket
    state = tmp_path / "state"
    monkeypatch.setenv("NOTIFY_SOCKET", path)  # the daemon's environment is a copy of ours
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # a ping every 0.2 s
    daemon = start_daemon(state)
    try:
        ready = receive(sock, "READY=1")
        lines = ready[-1].splitlines()
        assert f"MAINPID={daemon.pid}" in lines
        assert (state / "daemon.lock").read_text().strip() == str(daemon.pid)  # ready means locked
        receive(sock, "WATCHDOG=1")
        receive(sock, "WATCHDOG=1")
        daemon.send_signal(signal.SIGTERM)
        receive(sock, "STOPPING=1")
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()


def test_abstract_namespace_socket() -> None:
    name = f"cucm-renew-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert sd_notify("READY=1", environ={"NOTIFY_SOCKET": "@" + name})
        sock.settimeout(10)
        assert sock.recv(100) == b"READY=1"


def test_no_service_manager_means_no_notification() -> None:
    assert sd_notify("READY=1", environ={}) is False
    assert sd_notify("READY=1", environ={"NOTIFY_SOCKET": "relative/path"}) is False
    assert sd_notify("READY=1", environ={"NOTIFY_SOCKET": "/nonexistent/notify"}) is False


def test_watchdog_interval_is_half_the_timeout_and_only_for_our_pid() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({}) is None


def test_a_stalled_loop_stops_the_pings(
    notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    healthy = threading.Event()
    healthy.set()
    checks: list[bool] = []

    def alive() -> bool:
        result = healthy.is_set()
        checks.append(result)
        return result

    stop = threading.Event()
    thread = threading.Thread(target=run_watchdog, args=(stop, 0.02, alive))
    thread.start()
    try:
        receive(sock, "WATCHDOG=1")
        healthy.clear()
        # A datagram sent before the stall may still be queued: drain it after the first failed check.
        wait_for(lambda: checks and not checks[-1], what="a failed liveness check")
        sock.setblocking(False)
        while True:
            try:
                sock.recv(100)
            except BlockingIOError:
                break
        seen = len(checks)
        wait_for(lambda: len(checks) >= seen + 3, what="three more liveness checks")
        with pytest.raises(BlockingIOError):
            sock.recv(100)  # none of them pinged
    finally:
        stop.set()
        thread.join(timeout=10)


def test_engine_heartbeat_moves_while_serving(make_engine: object) -> None:
    engine: Engine = make_engine()  # type: ignore[operator]
    stop = threading.Event()
    thread = threading.Thread(target=engine.serve, args=(stop,))
    before = engine.scheduler.heartbeat
    thread.start()
    try:
        wait_for(lambda: engine.scheduler.heartbeat > before + 0.5, what="the loop's heartbeat to move")
    finally:
        stop.set()
        thread.join(timeout=30)
