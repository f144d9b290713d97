"""What a person watching `run` and `status --watch` sees: a compact view redrawn in place on a
terminal (read through a VT100 emulator in a pseudo-terminal), plain lines on a pipe, and the event
log with --log-level info."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.present import LiveView, live_rows, render_live
from engine.store import EventRow
from engine.views import RunView
from tests.app.terminal import Terminal
from tests.app.test_discover import _env, cucm_renew, simulate

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def _run(state: str, context: dict[str, object], status: str = "active", reason: str = "") -> RunView:
    return RunView(
        id="r1",
        definition="CallManager",
        scope="prod",
        state=state,
        held_from=None,
        status=status,
        waiting_reason=reason,
        next_wake_at=None,
        attempt=1,
        last_error="",
        context=context,  # type: ignore[arg-type]
        progress={},
        created_at=T0,
        updated_at=T0,
    )


def _event(seq: int, ts: datetime, source: str, dest: str) -> EventRow:
    stamp = ts.isoformat().replace("+00:00", "Z")
    return EventRow(
        seq, stamp, "r1", "prod", "CallManager", None, source, dest, "next", "engine", "", {}, "", ""
    )


def test_rows_show_node_in_progress_phones_wait_since_the_state_began_and_the_window() -> None:
    run = _run(
        "phones_back",
        {
            "targets": ["pub", "sub1"],
            "restarts": [
                {"node": "pub", "service": "Cisco CallManager", "running_at": "x"},
                {"node": "sub1", "service": "Cisco CallManager"},
            ],
            "phones": {"baseline": 2000, "registered": 1800},
        },
        reason="1800/2000 phones registered again",
    )
    # The wait's self-transitions (phones_back -> phones_back) do not restart its clock.
    events = [
        _event(1, T0, "restarted", "phones_back"),
        _event(2, T0 + timedelta(seconds=30), "phones_back", "phones_back"),
        _event(3, T0 + timedelta(seconds=60), "phones_back", "phones_back"),
    ]
    view = LiveView(io.StringIO(), lambda: [run], lambda _r: events, tty=False, every=30)
    now = T0 + timedelta(seconds=95)
    rows = live_rows([run], view.entered([run]), now, lambda _r: 3600.0 + 125)
    [line] = render_live(rows, now, width=200)[1:]
    assert line.split()[:3] == ["CallManager", "prod", "phones_back"]
    assert "sub1 (Cisco CallManager)" in line and "phones 1800/2000" in line
    assert "waiting 1:35" in line and "window 1:02:05 left" in line
    assert line.endswith("1800/2000 phones registered again")
    # Without a window, no window column; a finished run shows no wait.
    done = live_rows([_run("done", {}, status="final")], {"r1": T0}, now)
    assert "window" not in render_live(done, now)[1] and "waiting" not in render_live(done, now)[1]


def test_a_pipe_gets_state_changes_and_periodic_lines_not_every_sweep() -> None:
    out = io.StringIO()
    run = _run("phones_back", {"phones": {"baseline": 20, "registered": 5}})
    clock = [T0]
    view = LiveView(out, lambda: [run], lambda _r: [], tty=False, every=30, now=lambda: clock[0])
    view.on_event(_event(1, T0, "restarted", "phones_back"))
    view.on_event(_event(2, T0, "phones_back", "phones_back"))
    view.draw()
    for seconds in (10, 20, 29):
        clock[0] = T0 + timedelta(seconds=seconds)
        view.draw()
    clock[0] = T0 + timedelta(seconds=31)
    view.draw()
    lines = out.getvalue().splitlines()
    assert "restarted -> phones_back" in lines[0]
    assert not any("phones_back -> phones_back" in line for line in lines)
    assert len(lines) == 3 and all("phones 5/20" in line for line in lines[1:]), lines


def _config(tmp_path: Path, sim: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    init = cucm_renew("init", "--from-simulator", str(sim / "simulator.json"), cwd=work, env=_env())
    assert init.returncode == 0, init.stderr
    return work


def _view_lines(screen: str, cert_type: str) -> list[str]:
    return [line for line in screen.splitlines() if re.match(rf"{cert_type}\s+sim\s+\S", line)]


def test_run_on_a_terminal_redraws_one_line_per_type_in_place(tmp_path: Path) -> None:
    with simulate(tmp_path / "sim", "--time-scale", "50"):
        work = _config(tmp_path, tmp_path / "sim")
        argv = [sys.executable, "-m", "app.cli", "run", "--type", "tomcat", "--type", "ipsec"]
        term = Terminal(argv, cwd=work, env=_env())
        try:
            restarting = term.wait_for(
                lambda s: any("restarted" in x and "(Cisco Tomcat)" in x for x in _view_lines(s, "tomcat")),
                120,
                "tomcat restarting a node",
            )
            # One line per type, redrawn: a scrolling log would show one per transition.
            assert len(_view_lines(restarting, "tomcat")) == 1 and len(_view_lines(restarting, "ipsec")) == 1
            assert re.search(r"waiting \d", _view_lines(restarting, "tomcat")[0]), restarting
            assert term.wait_exit(120) == 0, term.text()
        finally:
            term.close()
        screen = term.text()
        assert any("done [final]" in x for x in _view_lines(screen, "tomcat")), screen
        assert "2 finished, 0 in progress" in screen and screen.count(" done") >= 6
        assert b"restarted -> restarted" not in term.raw


def test_status_watch_on_a_terminal_and_on_a_pipe_and_the_event_log_at_info(tmp_path: Path) -> None:
    with simulate(tmp_path / "sim", "--time-scale", "50"):
        work = _config(tmp_path, tmp_path / "sim")
        run = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "--log-level", "info", "run", "--type", "tomcat"],
            cwd=str(work),
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                status = cucm_renew("status", "--json", cwd=work, env=_env())
                if status.returncode == 0 and any(r["status"] == "active" for r in json.loads(status.stdout)):
                    break
                assert time.monotonic() < deadline and run.poll() is None, status.stderr
                time.sleep(0.1)
            pipe = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "status", "--watch", "--every", "0.5"],
                cwd=str(work),
                env=_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            term = Terminal([sys.executable, "-m", "app.cli", "status", "--watch"], cwd=work, env=_env())
            try:
                seen = term.wait_for(
                    lambda s: any("restarted" in x for x in _view_lines(s, "tomcat")), 120, "the restarts"
                )
                assert len(_view_lines(seen, "tomcat")) == 1, seen
                assert term.wait_exit(120) == 0
            finally:
                term.close()
            assert "no run in progress" in term.text()
            piped, _ = pipe.communicate(timeout=120)
            logged, _ = run.communicate(timeout=120)
        finally:
            for proc in (run,):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        assert run.returncode == 0, logged
        # On a pipe: plain lines, each stamped, none of them cursor movement.
        assert "\x1b[" not in piped and re.search(r"^\d\d:\d\d:\d\d  sim\s+tomcat\s+\S+ for ", piped, re.M), (
            piped
        )
        assert "no run in progress" in piped
        # --log-level info keeps the event log: every transition, a wait's self-transitions too.
        assert "window_before_restart -> restarted" in logged and "restarted -> restarted" in logged
