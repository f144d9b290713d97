"""Logs are JSON lines with the run bound, and secrets never reach them."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog

from engine.facade import Engine
from engine.logging import configure_logging, get_logger, register_secret

SECRET = "hunter2-secret"


def test_secret_keys_and_registered_values_are_redacted() -> None:
    stream = io.StringIO()
    configure_logging("debug", stream)
    register_secret("s3cr3t-value-xyz")
    get_logger(run="r1").info(
        "login with s3cr3t-value-xyz",
        password="pw-plain",
        api_token="tok",
        headers={"Authorization": "Bearer abc", "Accept": "json"},
        items=["ok", "s3cr3t-value-xyz"],
        private_key="-----BEGIN",
    )
    text = stream.getvalue()
    line = json.loads(text)
    assert line["run"] == "r1" and line["level"] == "info"
    assert line["event"] == "login with [REDACTED]"
    assert line["password"] == line["api_token"] == line["private_key"] == "[REDACTED]"
    assert line["headers"] == {"Authorization": "[REDACTED]", "Accept": "json"}
    assert line["items"] == ["ok", "[REDACTED]"]
    for secret in ("pw-plain", 'tok"', "Bearer abc", "s3cr3t-value-xyz", "BEGIN"):
        assert secret not in text


def test_step_errors_with_secrets_stay_out_of_logs_audit_and_state(
    make_engine: Callable[..., Engine], journal: Path
) -> None:
    stream = io.StringIO()
    configure_logging("debug", stream)
    register_secret(SECRET)
    engine = make_engine()
    run = engine.start_run("flow", "c1", {"journal": str(journal), "fail_times": 1})
    engine.run_until_quiet()
    assert engine.status(run)[0].state == "done"
    retry = [e for e in engine.events(run=run) if e.trigger == "retry"]
    assert retry and retry[0].reason == "simulated outage 1 password=[REDACTED]"
    logs = stream.getvalue()
    assert logs and SECRET not in logs
    assert all(json.loads(line)["run"] for line in logs.splitlines() if '"transition"' in line)
    assert SECRET.encode() not in engine.store.path.read_bytes()
    wal = engine.store.path.with_name(engine.store.path.name + "-wal")
    assert not wal.exists() or SECRET.encode() not in wal.read_bytes()


def test_default_stream_is_stderr_at_write_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Configured while stderr was one stream, logging after it was replaced and closed writes to
    the new one (a watchdog thread died of 'I/O operation on closed file' before)."""
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging("info")
    monkeypatch.setattr(sys, "stderr", second)
    first.close()
    structlog.get_logger().error("after the swap")
    assert "after the swap" in second.getvalue()
