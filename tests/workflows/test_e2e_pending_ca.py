"""A CA that keeps a request pending for days of (scaled) time, across a daemon restart."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from adapters.ca.local import LocalCA
from tests.workflows.lab import Lab, stop_process

SCRIPT = """
import hashlib, os, pathlib, sys
folder = pathlib.Path({folder!r})
if os.environ["CUCM_RENEW_OPERATION"] == "submit":
    csr = sys.stdin.read()
    token = hashlib.sha256(csr.encode()).hexdigest()[:24]
    (folder / (token + ".csr")).write_text(csr)
    print(token)
    sys.exit(1)
token = os.environ["CUCM_RENEW_TOKEN"]
with open(folder / (token + ".polls"), "a") as fh:
    fh.write(".")
signed = folder / (token + ".pem")
if signed.exists():
    print(signed.read_text())
    sys.exit(0)
print(token)
sys.exit(1)
"""
NODES = ("cucm-pub.example.com", "cucm-sub1.example.com")
SCALE = 20000.0  # one scaled day is 4.3 s


def test_pending_for_days_across_a_daemon_restart(tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    queue.mkdir()
    script = tmp_path / "approval-ca.py"
    script.write_text(SCRIPT.format(folder=str(queue)))
    extra = f'[ca.corp]\nkind = "command"\nargv = [{sys.executable!r}, {str(script)!r}]\n'.replace("'", '"')
    with Lab(tmp_path, ca="corp", nodes=2, time_scale=SCALE, extra_config=extra) as lab:
        corp = LocalCA(tmp_path / "corp-ca", name="corp")
        lab.sim.trust_ca(corp.root_pem)
        first = lab.daemon()
        try:
            assert lab.cli("run", "--type", "ipsec", "--detach").returncode == 0
            lab.wait_for("both CSRs at the CA", lambda: len(list(queue.glob("*.csr"))) == 2)
            (run,) = lab.views()
            lab.until(
                run.id,
                lambda v: v.state == "awaiting_ca" and "waiting for CA 'corp'" in v.waiting_reason,
                "the run to wait for the CA",
            )
            # More than a scaled day of polling, hourly.
            time.sleep(24 * 3600 / SCALE * 1.2)
        finally:
            log = stop_process(first)
        assert first.returncode == 0, log
        polls_before_restart = sum(len(p.read_text()) for p in queue.glob("*.polls"))
        assert polls_before_restart >= 2 * 12, polls_before_restart

        # The CA approves while no daemon runs; a new daemon takes the run up where it was.
        for csr in queue.glob("*.csr"):
            issued = corp.submit(csr.read_text(), cert_type="ipsec", node="")
            csr.with_suffix(".pem").write_text(issued.leaf_pem + "".join(issued.chain_pems))
        second = lab.daemon()
        try:
            done = lab.until(run.id, lambda v: v.state == "done", "the run to finish after the restart")
        finally:
            log = stop_process(second)
        assert second.returncode == 0, log
        assert all(done.context["verified"][n]["ok"] for n in NODES)
        state = lab.sim.state()
        # One CSR per node for the whole wait: never regenerated while the CA had it.
        assert {n: state["csrs_generated"][n]["ipsec"] for n in NODES} == dict.fromkeys(NODES, 1)
        assert len(list(queue.glob("*.csr"))) == 2
        waits = [e for e in lab.engine.events(run=run.id)] if lab.engine else []
        assert any("waiting for CA 'corp'" in e.reason for e in waits)
