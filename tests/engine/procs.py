"""Helpers to run the toy command line as real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def toy_env(time_scale: float = 100.0, crash: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["TOY_TIME_SCALE"] = str(time_scale)
    env.pop("CUCM_RENEW_CRASH_AT", None)
    if crash:
        env["CUCM_RENEW_CRASH_AT"] = crash
    return env


def toy_cmd(state: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "tests.engine.toyapp", "--state-dir", str(state), *args]


def start_daemon(
    state: Path, *, time_scale: float = 100.0, crash: str | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        toy_cmd(state, "--log-level", "info", "daemon"),
        cwd=REPO,
        env=toy_env(time_scale, crash),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_cli(state: Path, *args: str, time_scale: float = 100.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        toy_cmd(state, *args), cwd=REPO, env=toy_env(time_scale), capture_output=True, text=True, timeout=60
    )


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.05)


def daemon_locked(state: Path, pid: int) -> bool:
    try:
        return (state / "daemon.lock").read_text().strip() == str(pid)
    except OSError:
        return False
