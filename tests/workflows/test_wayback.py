"""`rollback-plan RUN` prints what a run has changed and the way back (on the simulator)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.workflows.lab import Lab


def test_rollback_plan_command(tmp_path: Path) -> None:
    with Lab(tmp_path, nodes=2, ca="desk") as lab:
        (run_id,) = lab.start(["ipsec"])
        halt = lab.serve()
        try:
            lab.until(run_id, lambda v: v.state == "awaiting_ca", "the run to wait for the CA")
        finally:
            halt()
        lab.close_engine()
        out = lab.cli("rollback-plan", run_id)
        assert out.returncode == 0, out.stderr
        assert "ipsec CSR regenerated on cucm-pub.example.com, cucm-sub1.example.com" in out.stdout
        assert "nothing in service changed" in out.stdout
        data = json.loads(lab.cli("rollback-plan", run_id, "--json").stdout)
        assert data["type"] == "ipsec" and data["commands"] == []
        assert lab.cli("rollback-plan", "no-such-run").returncode != 0
