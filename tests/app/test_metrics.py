"""The daemon's Prometheus endpoint, scraped over HTTP and read with prometheus_client's parser."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters.cucm.risport import COUNTERS
from app import metrics
from engine.definition import load_definitions
from engine.facade import Engine
from tests.app.test_notify import hook_table, write_config
from tests.engine.procs import REPO
from tests.engine.toy import DEFS, registry

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (a loopback URL the test built)
        assert response.status == 200
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_runs_gates_expiry_successes_and_risport_are_scraped(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "state", load_definitions(DEFS, registry), registry, time_scale=100.0)
    journal = str(tmp_path / "j")
    expiry = {
        "expiry": {
            "pub.lab": {"not_after": "2027-01-01T00:00:00Z"},
            "sub.lab": {"not_after": "2027-02-01T00:00:00Z"},
        },
        # The renewed node's new certificate replaces what the check read before the renewal.
        "verified": {"pub.lab": {"ok": True, "not_after": "2029-01-01T00:00:00Z"}},
    }
    done = engine.start_run("flow", "lab", {"journal": journal, **expiry})
    # One after the other: a run held at the toy's gate keeps the exclusion lease the other needs.
    engine.run_until_quiet()
    gated = engine.start_run("toy", "lab", {"journal": journal})
    failed = engine.start_run("flow", "other", {"journal": journal, "permanent": True})
    engine.run_until_quiet()
    assert [engine.status(r)[0].status for r in (done, gated, failed)] == ["final", "paused", "failed"]
    held_at = engine.store.get_run(gated).updated_at  # type: ignore[union-attr]
    requests_before, throttles_before = COUNTERS.snapshot()
    COUNTERS.request("pub.lab")
    COUNTERS.request("pub.lab")
    COUNTERS.throttle("pub.lab")

    with metrics.serving(engine, "127.0.0.1:0", clock=lambda: held_at + 3600.0) as (host, port):
        samples = scrape(f"http://{host}:{port}/metrics")

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    expiry_name = "cucm_renew_certificate_expiry_timestamp_seconds"
    assert value(expiry_name, cluster="lab", node="pub.lab", type="flow") == 1861920000.0  # 2029-01-01
    assert value(expiry_name, cluster="lab", node="sub.lab", type="flow") == 1801440000.0  # 2027-02-01
    assert value("cucm_renew_runs", type="flow", state="done", status="final") == 1
    assert value("cucm_renew_runs", type="toy", state="approval", status="paused") == 1
    assert value("cucm_renew_runs", type="flow", state="act", status="failed") == 1
    assert value("cucm_renew_gates_waiting") == 1
    assert (
        value("cucm_renew_gate_waiting_seconds", cluster="lab", type="toy", run=gated, state="approval")
        == 3600
    )
    finished_at = engine.store.get_run(done).updated_at  # type: ignore[union-attr]
    assert value("cucm_renew_last_success_timestamp_seconds", cluster="lab", type="flow") == finished_at
    assert (
        "cucm_renew_last_success_timestamp_seconds",
        (("cluster", "other"), ("type", "flow")),
    ) not in samples
    assert value("cucm_renew_risport_requests_total", node="pub.lab") == requests_before.get("pub.lab", 0) + 2
    assert (
        value("cucm_renew_risport_throttles_total", node="pub.lab") == throttles_before.get("pub.lab", 0) + 1
    )


def test_the_daemon_serves_metrics_and_refuses_a_bad_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_NOTIFY_PW", "pw")
    monkeypatch.setenv("TEST_HOOK_SECRET", "s")
    config = write_config(tmp_path, hook_table("http://127.0.0.1:9/unused"))
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUCM_RENEW_CONFIG": str(config)}
    command = [sys.executable, "-m", "app.cli", "--state-dir", str(tmp_path / "state"), "daemon"]
    bad = subprocess.run(
        [*command, "--metrics", "nowhere"], env=env, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2
    assert "HOST:PORT" in bad.stderr
    daemon = subprocess.Popen(
        [*command, "--metrics", "127.0.0.1:0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert daemon.stdout is not None
        line = daemon.stdout.readline()  # blocks until the endpoint is up (or the daemon died: "")
        if not line:
            raise AssertionError(f"the daemon stopped: {daemon.stderr.read()}")
        assert line.startswith("metrics on http://127.0.0.1:"), line
        samples = scrape(line.split()[-1])
        assert samples[("cucm_renew_gates_waiting", ())] == 0
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()


@pytest.mark.parametrize(
    ("listen", "expected"), [("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:0", ("::1", 0))]
)
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert metrics.parse_listen(listen) == expected
