"""A manual CA for a whole cluster: `export-csrs` writes every waiting CSR into one folder, the CA
signs them, and one `submit-cert FOLDER` brings every certificate back, matched by public key.
Bad folders are refused file by file, with nothing recorded in the database or done on the cluster."""

from __future__ import annotations

import shutil
import sqlite3
import stat
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from adapters.ca.local import LocalCA
from adapters.ca.port import Issued
from tests.workflows.lab import Lab, stop_process
from workflows.cert_types import CERT_TYPES

NODES = 4


def _db(lab: Lab) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(f"file:{lab.state_dir / 'engine.db'}?mode=ro", uri=True)
    try:
        return {
            t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()  # noqa: S608
            for t in ("runs", "events", "effects", "leases", "commands")
        }
    finally:
        conn.close()


def _sim(lab: Lab) -> dict[str, Any]:
    state = lab.sim.state()
    return {k: state[k] for k in ("csrs_generated", "uploads_accepted", "uploads_rejected", "restarts")}


def _sign(ca: LocalCA, csr_pem: str, cert_type: str) -> Issued:
    issued = ca.submit(csr_pem, cert_type=cert_type, node="")
    assert isinstance(issued, Issued)
    return issued


def _foreign_bundle(ca: LocalCA) -> str:
    """A certificate, with its chain, for a node of another cluster (its own key and name)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = "cucm-pub.other-cluster.example.com"
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    issued = _sign(ca, csr, "tomcat")
    return issued.leaf_pem + "".join(issued.chain_pems)


def _folder(base: Path, name: str, good: Path, **extra: str) -> Path:
    folder = base / name
    shutil.copytree(good, folder)
    for file_name, text in extra.items():
        (folder / file_name.replace("_", ".")).write_text(text)
    return folder


def test_one_submit_cert_for_a_whole_cluster(tmp_path: Path) -> None:
    with Lab(tmp_path, ca="desk", nodes=NODES, phones=20) as lab:
        daemon = lab.daemon()
        try:
            started = lab.cli("run", "--detach", "--json")
            assert started.returncode == 0, started.stderr
            lab.wait_for(
                "every run to wait for an operator at awaiting_ca",
                lambda: (
                    len(lab.views()) == len(CERT_TYPES)
                    and all(
                        v.state == "awaiting_ca" and "submit-cert" in v.waiting_reason for v in lab.views()
                    )
                ),
            )
        finally:
            log = stop_process(daemon)
        assert daemon.returncode == 0, log
        runs = {v.definition: v for v in lab.views()}
        pending = {(node, t) for t, v in runs.items() for node in v.context["csr"]}
        assert len(pending) >= 4 * 3, pending  # at least tomcat, CallManager and ipsec on every node

        before = lab.cli("status")
        assert before.returncode == 0 and before.stdout.count("not exported: cucm-renew export-csrs") == len(
            pending
        ), before.stdout

        # One command writes every pending CSR of the cluster for the CA.
        out = tmp_path / "for-the-ca"
        exported = lab.cli("export-csrs", "--cluster", lab.cluster, "--to", str(out))
        assert exported.returncode == 0, exported.stderr
        files = sorted(out.iterdir())
        assert {f.name for f in files} == {f"{n}-{t}.csr" for n, t in pending}
        assert all(stat.S_IMODE(f.stat().st_mode) == 0o644 for f in files)
        for node, t in pending:
            assert (out / f"{node}-{t}.csr").read_text() == runs[t].context["csr"][node]["pem"]
        listed = lab.cli("status")
        assert all(str(out / f"{n}-{t}.csr") in listed.stdout for n, t in pending), listed.stdout
        again = lab.cli("export-csrs", "--cluster", lab.cluster, "--to", str(out))
        assert again.returncode == 0 and again.stdout.count("already there") == len(pending), again.stdout
        victim = files[0]
        victim.write_text("someone else's file\n")
        clash = lab.cli("export-csrs", "--cluster", lab.cluster, "--to", str(out))
        assert clash.returncode == 1 and str(victim) in clash.stderr and "move it away" in clash.stderr
        assert victim.read_text() == "someone else's file\n"

        # The enterprise CA signs what it was given; file names are the CA's, not ours.
        corp = LocalCA(tmp_path / "corp-ca", name="corp")
        lab.sim.trust_ca(corp.root_pem)
        signed = tmp_path / "signed"
        signed.mkdir()
        for i, (node, t) in enumerate(sorted(pending)):
            issued = _sign(corp, runs[t].context["csr"][node]["pem"], t)
            (signed / f"cert-{i:02d}.cer").write_text(issued.leaf_pem)
        (signed / "ca-chain.pem").write_text("".join(corp.chain_pems))
        a_leaf = (signed / "cert-00.cer").read_text()

        db, sim = _db(lab), _sim(lab)
        bad = {
            "not a certificate": (_folder(tmp_path, "b1", signed, notes_txt="hello\n"), ["notes.txt"]),
            "a chain for another cluster": (
                _folder(tmp_path, "b2", signed, other_pem=_foreign_bundle(corp)),
                ["other.pem", "answers none of the CSRs"],
            ),
            "two files for one node": (
                _folder(tmp_path, "b3", signed, copy_pem=a_leaf),
                ["cert-00.cer and ", "copy.pem both answer", "keep the right one only"],
            ),
        }
        for case, (folder, words) in bad.items():
            result = lab.cli("submit-cert", str(folder))
            assert result.returncode == 1, (case, result.stdout, result.stderr)
            assert "nothing recorded" in result.stderr, (case, result.stderr)
            for word in words:
                assert word in result.stderr, (case, word, result.stderr)
            assert _db(lab) == db, case
            assert _sim(lab) == sim, case

        # One command for the whole cluster.
        done = lab.cli("submit-cert", str(signed), "--cluster", lab.cluster)
        assert done.returncode == 0, done.stderr
        assert f"{len(pending)} certificate(s) recorded" in done.stdout
        submits = [row for row in _db(lab)["commands"] if row[3] == "submit"]
        assert len(submits) == len(pending)

        # The same folder again: every certificate answers a run that already has it.
        db = _db(lab)
        twice = lab.cli("submit-cert", str(signed))
        assert twice.returncode == 1 and "already holds a submitted certificate" in twice.stderr
        assert _db(lab) == db

        daemon = lab.daemon()
        try:
            lab.wait_for("every run to finish", lambda: all(v.state == "done" for v in lab.views()))
        finally:
            log = stop_process(daemon)
        assert daemon.returncode == 0, log
        state = lab.sim.state()
        assert state["uploads_rejected"] == []
        for t, v in runs.items():
            done_view = lab.engine.status(v.id)[0] if lab.engine else v
            assert all(done_view.context["verified"][n]["ok"] for n in v.context["csr"]), t
            assert {n: state["csrs_generated"][n][t] for n in v.context["csr"]} == dict.fromkeys(
                v.context["csr"], 1
            )


def test_partial_records_the_good_files_and_names_the_others(tmp_path: Path) -> None:
    pub, sub = "cucm-pub.example.com", "cucm-sub1.example.com"
    with Lab(tmp_path, ca="desk", nodes=2, phones=10) as lab:
        daemon = lab.daemon()
        try:
            assert lab.cli("run", "--type", "tomcat", "--detach").returncode == 0
            lab.wait_for(
                "the run to wait for an operator",
                lambda: (
                    [v.state for v in lab.views()] == ["awaiting_ca"]
                    and "submit-cert" in lab.views()[0].waiting_reason
                ),
            )
        finally:
            log = stop_process(daemon)
        assert daemon.returncode == 0, log
        (run,) = lab.views()
        corp = LocalCA(tmp_path / "corp-ca", name="corp")
        lab.sim.trust_ca(corp.root_pem)
        folder = tmp_path / "signed"
        folder.mkdir()
        (folder / "pub.pem").write_text(_sign(corp, run.context["csr"][pub]["pem"], "tomcat").leaf_pem)
        (folder / "chain.pem").write_text("".join(corp.chain_pems))
        (folder / "junk.der").write_bytes(b"\x30\x03\x02\x01\x00")

        partial = lab.cli("submit-cert", "--partial", str(folder))
        assert partial.returncode == 1, partial.stdout + partial.stderr
        assert "1 certificate(s) recorded" in partial.stdout and f"of {pub}" in partial.stdout
        assert "junk.der" in partial.stderr and "nothing recorded" not in partial.stderr
        assert [row[2] for row in _db(lab)["commands"] if row[3] == "submit"] == [run.id]

        # One certificate at a time still works, and half a command is a usage error.
        usage = lab.cli("submit-cert", run.id, "--node", sub)
        assert usage.returncode == 2 and "--cert" in usage.stderr
        leaf = tmp_path / "sub.pem"
        leaf.write_text(_sign(corp, run.context["csr"][sub]["pem"], "tomcat").leaf_pem)
        one = lab.cli(
            "submit-cert", run.id, "--node", sub, "--cert", str(leaf), "--chain", str(folder / "chain.pem")
        )
        assert one.returncode == 0, one.stderr

        daemon = lab.daemon()
        try:
            done = lab.until(run.id, lambda v: v.state == "done", "the run to finish")
        finally:
            log = stop_process(daemon)
        assert daemon.returncode == 0, log
        assert all(done.context["verified"][n]["ok"] for n in (pub, sub))
