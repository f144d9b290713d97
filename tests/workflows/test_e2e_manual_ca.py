"""The manual CA: a daemon waits at awaiting_ca, an operator brings the files with submit-cert from
another process; bad files are refused there, with nothing recorded and nothing uploaded."""

from __future__ import annotations

import json
from pathlib import Path

from adapters.ca.local import LocalCA
from tests.workflows.lab import Lab, stop_process

PUB, SUB = "cucm-pub.example.com", "cucm-sub1.example.com"


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_manual_ca_submit_cert_while_the_daemon_runs(tmp_path: Path) -> None:
    with Lab(tmp_path, ca="desk", nodes=2) as lab:
        daemon = lab.daemon()
        try:
            started = lab.cli("run", "--type", "tomcat", "--detach", "--json")
            assert started.returncode == 0, started.stderr
            (run_id,) = json.loads(started.stdout)
            view = lab.until(
                run_id,
                lambda v: v.state == "awaiting_ca" and "submit-cert" in v.waiting_reason,
                "the run to wait for an operator",
            )
            status = lab.cli("status", run_id)
            assert "awaiting_ca" in status.stdout and "submit-cert" in status.stdout

            # The enterprise CA, reached by hand: it signs the CSRs the run recorded.
            corp = LocalCA(tmp_path / "corp-ca", name="corp")
            lab.sim.trust_ca(corp.root_pem)
            files: dict[str, tuple[str, str, str]] = {}
            for node in (PUB, SUB):
                issued = corp.submit(view.context["csr"][node]["pem"], cert_type="tomcat", node=node)
                files[node] = (
                    write(tmp_path / f"{node}.crt", issued.leaf_pem),
                    write(tmp_path / "intermediate.pem", issued.chain_pems[0]),
                    write(tmp_path / "root.pem", issued.chain_pems[1]),
                )
            before = lab.sim.state()

            refusals = {
                "another node's certificate": (
                    ["--cert", files[SUB][0], "--chain", files[SUB][1], "--chain", files[SUB][2]],
                    "CSR Public Key and Certificate Public Key Do Not Match",
                ),
                "the chain without its intermediate": (
                    ["--cert", files[PUB][0], "--chain", files[PUB][2]],
                    "intermediate",
                ),
                "not a certificate": (["--cert", write(tmp_path / "junk.pem", "hello\n")], "junk.pem"),
                "the CSR instead": (
                    ["--cert", write(tmp_path / "csr.pem", view.context["csr"][PUB]["pem"])],
                    "request",
                ),
            }
            for case, (args, words) in refusals.items():
                result = lab.cli("submit-cert", run_id, "--node", PUB, *args)
                assert result.returncode == 1, (case, result.stdout, result.stderr)
                assert words.lower() in result.stderr.lower(), (case, result.stderr)
                assert "nothing recorded" in result.stderr or "refused" in result.stderr.lower(), (
                    result.stderr
                )
            unknown = lab.cli(
                "submit-cert",
                run_id,
                "--node",
                "cucm-sub9.example.com",
                "--cert",
                files[PUB][0],
                "--chain",
                files[PUB][1],
                "--chain",
                files[PUB][2],
            )
            assert unknown.returncode == 1 and "not renewed by this run" in unknown.stderr

            after = lab.sim.state()
            assert after["uploads_accepted"] == before["uploads_accepted"]
            assert after["uploads_rejected"] == before["uploads_rejected"] == []
            assert lab.engine is not None
            assert lab.engine.status(run_id)[0].state == "awaiting_ca"
            assert not lab.engine.status(run_id)[0].context.get("issued")

            for node in (PUB, SUB):
                leaf, intermediate, root = files[node]
                # The chain in any order: pre-flight puts it right.
                ok = lab.cli(
                    "submit-cert",
                    run_id,
                    "--node",
                    node,
                    "--cert",
                    leaf,
                    "--chain",
                    root,
                    "--chain",
                    intermediate,
                )
                assert ok.returncode == 0, ok.stderr
            done = lab.until(run_id, lambda v: v.state == "done", "the run to finish")
            assert {n: done.context["verified"][n]["ok"] for n in (PUB, SUB)} == {PUB: True, SUB: True}
            state = lab.sim.state()
            assert {n: state["csrs_generated"][n]["tomcat"] for n in (PUB, SUB)} == {PUB: 1, SUB: 1}
            assert state["uploads_rejected"] == []
        finally:
            log = stop_process(daemon)
        assert daemon.returncode == 0, log
