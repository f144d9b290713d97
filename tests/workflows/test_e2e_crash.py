"""Power cuts in the middle of side effects: the daemon is SIGKILLed right after an action reached
CUCM and before its outcome was journaled, every second one; every resumed run reconciles with CUCM
instead of acting twice."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.workflows.lab import Lab, stop_process

NODES = ("cucm-pub.example.com", "cucm-sub1.example.com")


def test_every_second_effect_interrupted_nothing_done_twice(tmp_path: Path) -> None:
    with Lab(tmp_path, nodes=2) as lab:
        (run_id,) = lab.start(["tomcat"])
        assert lab.engine is not None
        interrupted: list[str] = []
        seen: set[tuple[str, str, str]] = set()
        engine = lab.engine
        for _ in range(30):
            daemon = lab.daemon(CUCM_RENEW_CRASH_AT="effect.after_action:2")
            try:
                lab.wait_for(
                    "a crash or the end of the run",
                    lambda d=daemon: d.poll() is not None or engine.status(run_id)[0].final,
                )
            finally:
                if daemon.poll() is None:
                    stop_process(daemon)
            if daemon.returncode != -signal.SIGKILL:
                break  # the run finished without a third effect in this process
            # An interrupted effect whose step later found the work done (a CA certificate already
            # trusted) keeps its bare intent: count each one once.
            pending = [
                (e["state"], e["node"], e["name"])
                for e in engine.store.effects(run_id)
                if e["output"] is None and (e["state"], e["node"], e["name"]) not in seen
            ]
            assert len(pending) == 1, pending
            seen.add(pending[0])
            interrupted.append(pending[0][2])
        lab.drive()
        view = lab.engine.status(run_id)[0]
        assert view.state == "done", (view.waiting_reason, view.last_error)
        assert all(view.context["verified"][n]["ok"] for n in NODES)
        # The crashes hit the acts that matter.
        assert {"generate_csr", "upload_identity", "restart:Cisco Tomcat"} <= set(interrupted), interrupted
        assert len(interrupted) >= 3, interrupted

        state = lab.sim.state()
        assert {n: state["csrs_generated"][n]["tomcat"] for n in NODES} == dict.fromkeys(NODES, 1)
        assert {n: len(state["restarts"][n]["Cisco Tomcat"]) for n in NODES} == dict.fromkeys(NODES, 1)
        identity = [
            u
            for u in state["uploads_accepted"]
            if json.dumps(u).count("tomcat") and "trust" not in json.dumps(u)
        ]
        assert len(identity) == len(NODES), state["uploads_accepted"]
        assert state["uploads_rejected"] == []
