"""The generic command line: exit codes 0/1/2 and messages that name the problem."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.cli import main
from engine.facade import Engine
from tests.engine.procs import REPO, toy_cmd, toy_env
from tests.engine.toyapp import APP


def cli(state: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(APP, ["--state-dir", str(state), *args], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # 1 h of declared waiting becomes 0.18 s: the toy's ticket wait times out quickly.
    monkeypatch.setenv("TOY_TIME_SCALE", "20000")
    return tmp_path / "state"


def _start(state: Path, journal: Path, definition: str = "toy", **context: object) -> str:
    code, out, err = cli(
        state, "start", definition, "c1", "--context", json.dumps({"journal": str(journal), **context})
    )
    assert code == 0, err
    return out.strip()


def test_usage_errors_exit_2(state: Path) -> None:
    assert cli(state, "frobnicate")[0] == 2
    assert cli(state, "advance", "r1")[0] == 2  # --to and --reason are required
    assert cli(state, "audit", "export", "--format", "xml")[0] == 2
    code, _out, err = cli(state, "graph", "nope")
    assert code == 2 and "unknown definition 'nope': use one of flow, toy" in err


def test_graph_prints_mermaid(state: Path) -> None:
    code, out, _ = cli(state, "graph", "flow")
    assert code == 0 and out.startswith("stateDiagram-v2") and "locked --> finish : next" in out


def test_commands_refuse_with_exit_1_and_change_nothing(state: Path, journal: Path) -> None:
    run = _start(state, journal)
    code, _, err = cli(state, "approve", "ghost")
    assert code == 1 and "unknown run 'ghost'" in err
    code, _, err = cli(state, "approve", run)
    assert code == 1 and f"run {run} is not paused (it is check)" in err
    code, _, err = cli(state, "advance", run, "--to", "done", "--reason", "why not")
    assert code == 1 and "from 'check' the definition allows act, skipped" in err
    code, _, err = cli(state, "retry", run)
    assert code == 1 and "has not failed" in err
    code, out, _ = cli(state, "status", run, "--json")
    assert code == 0 and json.loads(out)[0]["state"] == "check"
    code, out, _ = cli(state, "audit", "export")
    assert code == 0 and len(out.splitlines()) == 1  # only the start event


def test_run_gate_submit_approve_and_audit(state: Path, journal: Path, tmp_path: Path) -> None:
    run = _start(state, journal, need_ticket=True)
    code, _, err = cli(state, "run")
    assert code == 0, err
    code, out, _ = cli(state, "status", run, "--json")
    assert json.loads(out)[0]["held_from"] == "waiting"  # the ticket wait timed out: paused
    bad = tmp_path / "bad.json"
    bad.write_text('{"number": 1}')
    code, _, err = cli(state, "submit", run, "--key", "ticket", "--file", str(bad))
    assert code == 1 and "submission refused: a ticket needs an 'id' string" in err
    good = tmp_path / "good.json"
    good.write_text('{"id": "CHG1"}')
    code, _, err = cli(state, "submit", run, "--key", "ticket", "--file", str(good))
    assert code == 0, err
    code, out, _ = cli(state, "status", run)
    assert code == 0 and f"{run}  toy/c1  paused (from waiting) - timed out after 1h" in out
    assert cli(state, "approve", run)[0] == 0
    assert cli(state, "run")[0] == 0
    code, out, _ = cli(state, "status", run, "--json")
    assert json.loads(out)[0]["held_from"] == "approval"
    assert cli(state, "approve", run, "--reason", "ok")[0] == 0
    assert cli(state, "run")[0] == 0
    code, out, _ = cli(state, "status")
    assert code == 0 and "done" in out
    target = tmp_path / "audit.csv"
    code, _, err = cli(
        state, "audit", "export", "--format", "csv", "--cluster", "c1", "--output", str(target)
    )
    assert code == 0 and "events written to" in err
    assert target.read_text().startswith("seq,ts,run,scope,definition,node,from,to,trigger,actor")
    code, out, _ = cli(state, "audit", "verify")
    assert code == 0 and out.startswith("audit chain intact")
    code, _, err = cli(state, "audit", "export", "--since", "last tuesday")
    assert code == 1 and "is not a date" in err
    code, _, err = cli(state, "abort", run, "--reason", "x")
    assert code == 1 and "already finished" in err


def test_export_into_a_closed_pipe_ends_quietly(make_engine: Callable[..., Engine], journal: Path) -> None:
    # `audit export | head`: the reader leaves early; the exporter must not print a traceback.
    engine = make_engine()
    for i in range(150):
        engine.start_run("flow", f"c{i}", {"journal": str(journal)})
    engine.run_until_quiet()
    state = engine.store.path.parent
    engine.close()
    proc = subprocess.Popen(
        toy_cmd(state, "audit", "export", "--format", "jsonl"),
        cwd=REPO,
        env=toy_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    assert json.loads(first)["seq"] == 1
    proc.stdout.close()  # more than a pipe's buffer is still to come: the next write fails
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_the_audit_key_and_log_can_live_outside_the_state_folder(
    state: Path, journal: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, log = tmp_path / "vault" / "audit.key", tmp_path / "logs" / "checkpoints.log"
    code, _, err = cli(state, "--audit-key", str(key), "--audit-log", str(log), "start", "toy", "c1",
                       "--context", json.dumps({"journal": str(journal)}))  # fmt: skip
    assert code == 0, err
    assert key.is_file() and oct(key.stat().st_mode & 0o777) == "0o600"
    assert log.read_text().count("\n") >= 1
    assert not (state / "audit.key").exists() and not (state / "audit-checkpoints.log").exists()
    # The environment names them as well; without them, verify says what it cannot check.
    code, out, err = cli(state, "audit", "verify")
    assert code == 1 and "is not available" in out and "--audit-key" in out, out + err
    monkeypatch.setenv("CUCM_RENEW_AUDIT_KEY", str(key))
    monkeypatch.setenv("CUCM_RENEW_AUDIT_LOG", str(log))
    code, out, err = cli(state, "audit", "verify", "--json")
    assert code == 0, out + err
    assert json.loads(out)["checkpoints"] >= 1
