"""`cucm-renew daemon --check-every`: the daemon itself starts the renewals that came due."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.workflows.lab import REPO, Lab, stop_process

TYPES = ("tomcat", "ipsec", "CAPF", "CallManager", "TVS")
NODES = ("cucm-pub.example.com", "cucm-sub1.example.com")


def test_daemon_renews_what_came_due_then_finds_nothing_due(tmp_path: Path) -> None:
    # x500, not the labs' usual x2000: five types restarting shared services (Cisco Tftp) within one
    # second of each other would blur ControlCenterServices' one-second start times.
    with Lab(tmp_path, nodes=2, phones=20, time_scale=500.0) as lab:
        assert lab.engine is not None
        engine = lab.engine
        # 30 min of declared period at the lab's time scale: a check every 3.6 s.
        daemon = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "daemon", "--check-every", "30m"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=lab.cli_env(),
            cwd=str(REPO),
        )
        try:

            def by_type(state: str) -> set[str]:
                return {r.definition for r in engine.find_runs(include_final=True) if r.state == state}

            lab.wait_for("every type renewed by the daemon alone", lambda: by_type("done") >= set(TYPES))
            # The next check finds every certificate renewed: new runs end not_due.
            lab.wait_for("a later check finding nothing due", lambda: by_type("not_due") >= set(TYPES))
        finally:
            log = stop_process(daemon)
        assert daemon.returncode == 0, log
        assert "checking 1 cluster(s) for certificates that came due every 30m" in log
        state = lab.sim.state()
        # Renewed exactly once per node: checks made while a run was in flight started nothing.
        for node in NODES:
            expected = {t: 1 for t in TYPES if t != "CAPF" or node == NODES[0]}
            assert {t: state["csrs_generated"][node].get(t, 0) for t in expected} == expected, state
        assert engine.verify_audit().ok
