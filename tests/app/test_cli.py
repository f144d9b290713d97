"""The command line as a new user meets it: simulate, init --from-simulator, check, plan, run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.workflows.lab import REPO, stop_process
from workflows import readiness


def cucm_renew(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=str(cwd),
        env={**base, "PYTHONPATH": str(REPO), **(env or {})},
    )


@pytest.fixture
def simulator(tmp_path: Path) -> Path:
    folder = tmp_path / "sim"
    base = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli",
            "simulate",
            "--dir",
            str(folder),
            "--nodes",
            "2",
            "--imp",
            "1",
            "--phones",
            "40",
            "--time-scale",
            "2000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(REPO),
        env=base,
    )
    try:
        deadline = time.monotonic() + 60
        while not (folder / "simulator.json").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the simulator did not start"
            time.sleep(0.1)
        yield folder / "simulator.json"
    finally:
        stop_process(proc)


def test_init_check_plan_run_against_a_running_simulator(tmp_path: Path, simulator: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    init = cucm_renew("init", "--from-simulator", str(simulator), cwd=work)
    assert init.returncode == 0, init.stderr
    config = (work / "cucm-renew.toml").read_text()
    secret = json.loads(simulator.read_text())["credentials"]["platform"]["password"]
    assert secret not in config and "password_file" in config
    assert oct((work / "sim-platform.password").stat().st_mode & 0o777) == "0o600"
    again = cucm_renew("init", "--from-simulator", str(simulator), cwd=work)
    assert again.returncode == 2 and "--force" in again.stderr

    check = cucm_renew("check", "--json", cwd=work)
    assert check.returncode == 0, check.stderr
    everything = json.loads(check.stdout)
    prechecks = [r for r in everything if "check" in r]
    assert [r["check"] for r in prechecks] == list(readiness.CHECKS)
    assert not [r for r in prechecks if r["level"] == "fail"], prechecks
    report = [r for r in everything if "type" in r and not r.get("watch")]
    tomcat = [r for r in report if r["type"] == "tomcat"]
    assert {r["node"] for r in tomcat} == {
        "cucm-pub.example.com",
        "cucm-sub1.example.com",
        "imp1.example.com",
    }
    assert all(r["due"] and 0 < r["days_left"] < 30 for r in report)
    assert [r["node"] for r in report if r["type"] == "CAPF"] == ["cucm-pub.example.com"]
    # The certificates the tool does not renew are reported too: the EC twins, the IM&P types, and
    # ITLRecovery on the publisher with Cisco's guidance.
    watched = {(r["type"], r["node"]) for r in everything if r.get("watch")}
    assert ("cup-xmpp", "imp1.example.com") in watched and (
        "tomcat-ECDSA",
        "cucm-sub1.example.com",
    ) in watched
    itl = [r for r in everything if r.get("type") == "ITLRecovery"]
    assert [r["node"] for r in itl] == ["cucm-pub.example.com"] and "never regenerates" in itl[0]["guidance"]
    assert secret not in check.stdout + check.stderr

    plan = cucm_renew("plan", "--type", "capf", cwd=work)
    assert plan.returncode == 0, plan.stderr
    assert "CAPF: on publisher nodes" in plan.stdout and "exclusion outage" in plan.stdout
    assert "cluster sim: cucm-pub.example.com" in plan.stdout
    # The release is read from the simulated cluster (14SU3), and the restarts follow it, node by node.
    assert "restarts on sim (14SU3)" in plan.stdout
    order = [
        line.strip()
        for line in plan.stdout.splitlines()
        if line.startswith("    cucm-") and "CN=" not in line
    ]
    assert order[0].startswith("cucm-pub.example.com: Cisco Certificate Authority Proxy Function")
    assert order[1].startswith(
        "cucm-sub1.example.com: "
    ) and "after the CTL update: also Cisco CallManager" in (plan.stdout)
    # The names each CSR will carry, node by node.
    assert (
        "    cucm-pub.example.com: CN=cucm-pub.example.com; SAN cucm-pub.example.com; "
        "OU=Voice, O=Example Org, L=Paris, ST=IDF, C=FR"
    ) in plan.stdout

    state = work / "state"
    run = cucm_renew("--state-dir", str(state), "run", "--type", "tomcat", "--type", "ipsec", cwd=work)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "tomcat" in run.stdout and "window_before_restart -> restarted" in run.stdout
    table = run.stdout[run.stdout.index("old expiry") :]
    assert table.count(" done") == 6 and " no " not in table
    status = cucm_renew("--state-dir", str(state), "status", "--json", cwd=work)
    assert {r["state"] for r in json.loads(status.stdout)} == {"done"}
    # A second `run` finds nothing due any more.
    rerun = cucm_renew("--state-dir", str(state), "run", "--type", "tomcat", "--json", cwd=work)
    assert rerun.returncode == 0, rerun.stderr
    assert [r["state"] for r in json.loads(rerun.stdout)] == ["not_due"]
    # Its table still says, per node, when the certificate in place expires.
    shown = cucm_renew("--state-dir", str(state), "run", "--type", "tomcat", cwd=work)
    rows = [line.split() for line in shown.stdout.splitlines() if line.startswith("tomcat ")]
    assert sorted(r[1] for r in rows) == sorted(r["node"] for r in tomcat), shown.stdout
    assert all(r[-1] == "not_due" and r[-2] == "-" and r[2] > "2027" for r in rows), shown.stdout


def test_bad_configuration_is_reported_with_key_and_fix(tmp_path: Path) -> None:
    missing = cucm_renew("check", cwd=tmp_path)
    assert (
        missing.returncode == 1 and "cucm-renew init" in missing.stderr and "Traceback" not in missing.stderr
    )
    (tmp_path / "cucm-renew.toml").write_text("[clusters.a]\nca = 'x'\nnodes = [\n")
    broken = cucm_renew("check", cwd=tmp_path)
    assert broken.returncode == 1 and "line" in broken.stderr and "cucm-renew.toml" in broken.stderr
    unknown = cucm_renew(
        "run", "--type", "itlrecovery", "--config", str(tmp_path / "nope.toml"), cwd=tmp_path
    )
    assert unknown.returncode == 1 and "nope.toml" in unknown.stderr


def test_submit_cert_refuses_an_unreadable_file_before_touching_the_state(tmp_path: Path) -> None:
    junk = tmp_path / "leaf.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n")
    result = cucm_renew(
        "--state-dir",
        str(tmp_path / "state"),
        "submit-cert",
        "r1",
        "--node",
        "n",
        "--cert",
        str(junk),
        cwd=tmp_path,
    )
    assert result.returncode == 1 and "nothing recorded" in result.stderr
    assert not (tmp_path / "state").exists()


def test_daemon_schedule_options_are_checked_before_anything_starts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    bad = cucm_renew("--state-dir", str(state), "daemon", "--check-every", "soon", cwd=tmp_path)
    assert bad.returncode == 2 and "'soon' is not a duration" in bad.stderr
    eager = cucm_renew("--state-dir", str(state), "daemon", "--check-every", "10s", cwd=tmp_path)
    assert eager.returncode == 2 and "at most once a minute" in eager.stderr
    missing = cucm_renew(
        "--state-dir", str(state), "daemon", "--check-every", "12h", "--config", "nope.toml", cwd=tmp_path
    )
    assert missing.returncode == 1 and "configuration file not found" in missing.stderr
    assert not (state / "daemon.lock").exists()  # refused before the daemon took the folder


def test_demo_renews_every_type_on_every_node_and_exports_the_audit(tmp_path: Path) -> None:
    demo = cucm_renew("demo", cwd=tmp_path)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    table = demo.stdout[demo.stdout.index("old expiry") :].splitlines()[2:]
    rows = [
        line.split() for line in table if line and not line.startswith(("waiting", "phones", "audit", "done"))
    ]
    # Three CUCM nodes and two IM&P nodes, federation on the first.
    expected = {
        "tomcat": 5, "tomcat-ECDSA": 5, "ipsec": 5, "CAPF": 1, "CallManager": 3, "CallManager-ECDSA": 3,
        "TVS": 3, "cup": 2, "cup-ECDSA": 2, "cup-xmpp": 2, "cup-xmpp-ECDSA": 2, "cup-xmpp-s2s": 1,
        "cup-xmpp-s2s-ECDSA": 1,
    }  # fmt: skip
    assert {t: sum(r[0] == t for r in rows) for t in expected} == expected, demo.stdout
    assert all(r[-2:] == ["yes", "done"] and r[3] > r[2] for r in rows), demo.stdout
    assert "phones: 2000 of 2000 registered, 0 ITL-mismatched" in demo.stdout
    # tomcat is multi-server: one certificate (one serial) on every node, uploaded through the GUI gate.
    assert len({r[4] for r in rows if r[0] == "tomcat"}) == 1
    assert "operator: tomcat multi-server certificate uploaded on cucm-pub.example.com" in demo.stdout
    audit = Path(demo.stdout.split("events in ")[1].split()[0])
    events = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
