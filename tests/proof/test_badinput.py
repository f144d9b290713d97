"""Bad input through the command line: each is refused with a specific message, and nothing changes.

* certificates: every refused case of the pre-flight corpus (tests/data/badcerts) handed to
  ``cucm-renew submit-cert`` for a run waiting at awaiting_ca with the manual CA;
* configuration files (tests/data/badinput/config, manifest tests/data/badinput/cases.json);
* operator commands that do not apply.

"Nothing changes" is checked on both sides: the database's runs, events, effects, leases, commands
and progress rows, and the simulator's CSR, upload, restart and phone counters.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from app.cli import main as cli_main
from simulator.pki import Subject
from tests.proof.harness import ProofLab

DATA = Path(__file__).resolve().parents[1] / "data"
CORPUS = DATA / "badcerts"
MANIFEST = json.loads((CORPUS / "cases.json").read_text())
CONFIG_CASES = json.loads((DATA / "badinput" / "cases.json").read_text())
PUB = "cucm-pub.example.com"
# The corpus's CSRs are the publisher's; a run of that type holds one of them as its CSR.
CSR_TYPES = {"csr/pub-tomcat.csr": "tomcat", "csr/pub-ipsec.csr": "ipsec", "csr/pub-CAPF.csr": "CAPF"}
MANUAL_TYPES = ["tomcat", "ipsec", "CAPF"]


def _still_refused_today(case: dict[str, Any]) -> bool:
    """The corpus pins its own 'now'; the command line uses the clock. A 'not yet valid' leaf stops
    being one on its start date, so it is tried only while that date is ahead."""
    if case["expect"] != "CertificateNotYetValid":
        return True
    leaf = x509.load_pem_x509_certificates((CORPUS / case["files"][0]).read_bytes())[0]
    return leaf.not_valid_before_utc > datetime.now(UTC)


CERT_CASES = [
    c
    for c in MANIFEST["cases"]
    if c["expect"] != "ok"
    and not c["trusted"]  # the node's trust store is the simulator's, not a list of files
    and not c.get("keep_names")  # names to keep come from the node's current certificate here
    and CSR_TYPES.get(c["csr"]) == c["cert_type"]
    and _still_refused_today(c)
]  # fmt: skip


@dataclass
class Result:
    code: int
    out: str
    err: str


def cli(lab: ProofLab, *args: str, env: dict[str, str] | None = None) -> Result:
    """The command line's own entry point, in this process (a subprocess per case would dominate the
    suite's time); the exit code is what ``sys.exit`` would get."""
    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in ("CUCM_RENEW_CONFIG", "CUCM_RENEW_STATE", *(env or {}))}
    os.environ["CUCM_RENEW_CONFIG"] = str(lab.config_path)
    os.environ["CUCM_RENEW_STATE"] = str(lab.state_dir)
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli_main(list(args))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return Result(code, out.getvalue(), err.getvalue())


class Awaiting:
    """Runs of tomcat, ipsec and CAPF waiting at awaiting_ca for a manual CA (the publisher's CSR is
    the corpus's), and a CallManager run finished through the local CA. No daemon runs meanwhile."""

    def __init__(self, lab: ProofLab) -> None:
        self.lab = lab
        self.runs = {r.definition: r.id for r in lab.runs()}

    def unchanged(self) -> Iterator[None]:
        before, sim_before = self.lab.snapshot(), self.lab.sim_snapshot()
        yield
        assert self.lab.snapshot() == before, "the store changed"
        assert self.lab.sim_snapshot() == sim_before, "the simulator changed"


def _corpus_csrs(lab: ProofLab) -> None:
    """The publisher generates the corpus's CSR for each manual type (its key is not kept: nothing
    in these tests may reach the upload)."""
    cluster = lab.sim.cluster
    generate = cluster.generate_csr
    corpus = {t: x509.load_pem_x509_csr((CORPUS / f).read_bytes()) for f, t in CSR_TYPES.items()}

    def generate_csr(node: Any, cert_type: str, *args: Any, **kwargs: Any) -> Any:
        csr = generate(node, cert_type, *args, **kwargs)
        if node.name == PUB and cert_type in corpus:
            with cluster.lock:
                node.identities[cert_type].csr = corpus[cert_type]
            return corpus[cert_type]
        return csr

    cluster.generate_csr = generate_csr  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def awaiting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Awaiting]:
    folder = tmp_path_factory.mktemp("badinput")
    # The nodes' certificates carry the corpus's organisation, as the corpus's CSRs do: a CSR whose
    # subject differs from the current certificate's is refused before any CA sees it.
    with ProofLab(
        folder, nodes=2, phones=10, ca="desk", subject=Subject(organization="Example Voice")
    ) as lab:
        text = lab.config_path.read_text().replace(
            'ca = "desk"', 'ca = "desk"\nca_per_type = { CallManager = "lab" }'
        )
        lab.config_path.write_text(text)
        _corpus_csrs(lab)
        started = lab.cli("run", "--detach", "--type", "tomcat", "--type", "ipsec", "--type", "CAPF",
                          "--type", "CallManager")  # fmt: skip
        assert started.returncode == 0, started.stderr
        daemon = lab.popen("daemon")
        try:

            def settled() -> bool:
                runs = {r.definition: r for r in lab.runs()}
                return (
                    all(
                        runs[t].state == "awaiting_ca" and "operator" in runs[t].waiting_reason
                        for t in MANUAL_TYPES
                    )
                    and runs["CallManager"].state == "done"
                )

            lab.wait_for("manual runs at awaiting_ca and CallManager done", settled)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.communicate(timeout=60)
        assert daemon.returncode == 0
        yield Awaiting(lab)


pytestmark = pytest.mark.xdist_group("badinput")


# ---------------------------------------------------------------------- certificates


@pytest.mark.parametrize("case", CERT_CASES, ids=lambda c: c["name"])
def test_submit_cert_refuses_each_bad_certificate(awaiting: Awaiting, case: dict[str, Any]) -> None:
    run = awaiting.runs[CSR_TYPES[case["csr"]]]
    files = [str(CORPUS / f) for f in case["files"]]
    chain = [a for f in files[1:] for a in ("--chain", f)]
    with contextlib.contextmanager(awaiting.unchanged)():
        result = cli(awaiting.lab, "submit-cert", run, "--node", PUB, "--cert", files[0], *chain)
    assert result.code == 1, (result.code, result.out, result.err)
    assert case["message"] in result.err, result.err
    assert "Fix: " in result.err
    assert result.out == ""


def test_the_corpus_yields_enough_certificate_cases() -> None:
    assert len(CERT_CASES) >= 30, len(CERT_CASES)


# ---------------------------------------------------------------------- configuration


@pytest.mark.parametrize("case", CONFIG_CASES["cases"], ids=lambda c: c["name"])
def test_bad_configuration_is_refused_before_anything_happens(tmp_path: Path, case: dict[str, Any]) -> None:
    state = tmp_path / "state"
    config = DATA / "badinput" / case["config"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUCM_")}
    env.update(CONFIG_CASES["env"])
    env.update(case["env"])
    env["CUCM_RENEW_STATE"] = str(state)
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "app.cli", *case["args"], "--config", str(config)],
        capture_output=True, text=True, timeout=120, env=env, cwd=str(tmp_path),
    )  # fmt: skip
    assert done.returncode != 0, done.stdout
    assert case["message"] in done.stderr, done.stderr
    assert "Fix:" in done.stderr or "use one of" in done.stderr, done.stderr
    assert not (state / "engine.db").exists(), "a run was recorded from a bad configuration"
    for secret in CONFIG_CASES["env"].values():
        assert secret not in done.stderr + done.stdout


# ---------------------------------------------------------------------- operator commands


def _commands(runs: dict[str, str]) -> list[tuple[str, list[str], str]]:
    tomcat, done = runs["tomcat"], runs["CallManager"]
    good = str(CORPUS / "certs/ok-full-chain.pem")
    nobody = "tomcat-sim-00000000"
    return [
        ("advance to an illegal state", ["advance", tomcat, "--to", "done", "--reason", "skip ahead"],
         "from 'awaiting_ca' the definition allows trust_uploaded"),
        ("advance to an unknown state", ["advance", tomcat, "--to", "nowhere", "--reason", "typo"],
         "cannot advance run"),
        ("advance without a reason", ["advance", tomcat, "--to", "trust_uploaded", "--reason", " "],
         "advance needs --reason"),
        ("approve a run not at a gate", ["approve", tomcat], "is not paused"),
        ("retry a run that has not failed", ["retry", tomcat], "has not failed"),
        ("abort without a reason", ["abort", tomcat, "--reason", "  "], "abort needs --reason"),
        ("submit to a run not awaiting a CA",
         ["submit-cert", done, "--node", PUB, "--cert", good],
         "accepts no submission"),
        ("submit for a node the run does not renew",
         ["submit-cert", tomcat, "--node", "cucm-sub9.example.com", "--cert", good],
         "is not renewed by this run"),
        ("submit a file that does not exist",
         ["submit-cert", tomcat, "--node", PUB, "--cert", "/nonexistent/leaf.pem"],
         "cannot read /nonexistent/leaf.pem"),
        ("unknown run id: status", ["status", "tomcat-sim-00000000"], "unknown run 'tomcat-sim-00000000'"),
        ("unknown run id: approve", ["approve", "tomcat-sim-00000000"], "unknown run 'tomcat-sim-00000000'"),
        ("unknown run id: submit-cert",
         ["submit-cert", nobody, "--node", PUB, "--cert", good],
         "unknown run 'tomcat-sim-00000000'"),
        ("abort a finished run", ["abort", done, "--reason", "too late"], "is already finished"),
        ("graph of an unknown type", ["graph", "tomcat-RSA-9000"], "unknown definition 'tomcat-RSA-9000'"),
        ("audit export since a non-date", ["audit", "export", "--since", "yesterday-ish"],
         "is not a date or timestamp"),
    ]  # fmt: skip


COMMAND_NAMES = [name for name, _, _ in _commands({"tomcat": "t", "CallManager": "c"})]


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_commands_that_do_not_apply_are_refused(awaiting: Awaiting, name: str) -> None:
    _, args, message = next(c for c in _commands(awaiting.runs) if c[0] == name)
    with contextlib.contextmanager(awaiting.unchanged)():
        result = cli(awaiting.lab, *args)
    assert result.code != 0, (result.out, result.err)
    assert message in result.err, result.err


def test_a_refused_certificate_exits_non_zero_from_a_real_process(awaiting: Awaiting) -> None:
    """The in-process cases above use the command line's entry point; this one is the installed
    program as an operator runs it."""
    with contextlib.contextmanager(awaiting.unchanged)():
        done = awaiting.lab.cli(
            "submit-cert", awaiting.runs["tomcat"], "--node", PUB, "--cert", str(CORPUS / "certs/garbage.bin")
        )
    assert done.returncode == 1, done.stdout
    assert "neither PEM, DER nor PKCS#7" in done.stderr
    assert "Fix: " in done.stderr


# ---------------------------------------------------------------------- the state folder


def test_run_while_a_daemon_holds_the_folder_creates_nothing(awaiting: Awaiting) -> None:
    lab = awaiting.lab
    before = {r.id for r in lab.runs()}
    csrs = lab.sim_snapshot()["csrs_generated"]
    daemon = lab.popen("daemon")
    try:
        lock = lab.state_dir / "daemon.lock"
        lab.wait_for(
            "the daemon to hold the state folder", lambda: lock.read_text().strip() == str(daemon.pid)
        )
        result = cli(lab, "run", "--type", "TVS")
        assert result.code == 1, (result.out, result.err)
        assert {r.id for r in lab.runs()} == before, "a run was created for the daemon to drive"
        assert lab.sim_snapshot()["csrs_generated"] == csrs
        assert f"another daemon (pid {daemon.pid}) holds {lab.state_dir}" in result.err
        assert "nothing was started" in result.err and "run --detach" in result.err
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=60)
    assert daemon.returncode == 0


@pytest.mark.parametrize(
    "command", [["status"], ["audit", "verify"], ["audit", "export"], ["export-csrs", "--to", "x"]]
)
def test_a_mistyped_state_folder_is_refused_and_not_created(tmp_path: Path, command: list[str]) -> None:
    typo = tmp_path / "stat"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(["--state-dir", str(typo), *command])
    assert code == 1, (out.getvalue(), err.getvalue())
    assert f"{typo} is not a state folder" in err.getvalue() and "--state-dir" in err.getvalue()
    assert not typo.exists()
    typo.mkdir()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(["--state-dir", str(typo), *command])
    assert code == 1 and "holds no state database" in err.getvalue()
    assert list(typo.iterdir()) == [], "a database was created by a command that only reads"


def _read_only_command(folder: Path, argv: list[str]) -> list[str]:
    """``argv`` run where ``folder`` cannot be written: on a read-only bind mount of it (as root,
    who writes through any mode bits, the way a snapshot or backup mount is seen), else with the
    folder made read-only to its owner."""
    if os.geteuid() != 0:
        folder.chmod(0o500)
        return argv
    script = 'mount --bind -o ro "$0" "$0" && exec "$@"'
    return ["unshare", "--mount", "sh", "-c", script, str(folder), *argv]


def test_status_and_audit_work_on_a_folder_they_cannot_write(awaiting: Awaiting) -> None:
    import shutil
    import subprocess
    import sys

    lab = awaiting.lab
    copy = lab.folder / "read-only-state"
    shutil.copytree(lab.state_dir, copy)
    try:
        for wal in (True, False):
            if not wal:  # as a cleanly stopped daemon leaves it
                # The last connection to close checkpoints the WAL and removes it, once it has
                # read the database (a connection that ran nothing never opened the WAL).
                con = sqlite3.connect(copy / "engine.db")
                con.execute("SELECT count(*) FROM sqlite_master").fetchone()
                con.close()
                assert not (copy / "engine.db-wal").exists()
            outputs = {}
            for args in (["status", "--json"], ["audit", "verify"]):
                argv = [sys.executable, "-m", "app.cli", "--state-dir", str(copy), *args]
                done = subprocess.run(
                    _read_only_command(copy, argv), capture_output=True, text=True, timeout=120,
                    env=lab.env(), cwd=str(lab.folder),
                )  # fmt: skip
                assert done.returncode == 0, (wal, args, done.stdout, done.stderr)
                outputs[args[0]] = done.stdout
            assert {r["id"] for r in json.loads(outputs["status"])} == {r.id for r in lab.runs()}
            assert "audit chain intact" in outputs["audit"]
            copy.chmod(0o700)
    finally:
        copy.chmod(0o700)
        shutil.rmtree(copy, ignore_errors=True)


# ---------------------------------------------------------------------- files that are not files


def _limited(lab: ProofLab, *args: str, cwd: Path | None = None) -> Any:
    """The program in its own process, with 1 GiB of address space and a deadline: a read without
    end fails fast here instead of taking the machine's memory or hanging the suite."""
    import resource
    import subprocess

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    return subprocess.run(
        lab.command(*args), capture_output=True, text=True, timeout=60, env=lab.env(),
        cwd=str(cwd or lab.folder), preexec_fn=limit,
    )  # fmt: skip


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
@pytest.mark.parametrize("where", ["--cert", "--chain", "DIR --chain"])
def test_submit_cert_reads_only_regular_files(
    awaiting: Awaiting, tmp_path: Path, special: str, where: str
) -> None:
    if special == "fifo":
        special = str(tmp_path / "nobody-writes-this")
        os.mkfifo(special)
    good = str(CORPUS / "certs/ok-full-chain.pem")
    run = awaiting.runs["tomcat"]
    args = {
        "--cert": ["submit-cert", run, "--node", PUB, "--cert", special],
        "--chain": ["submit-cert", run, "--node", PUB, "--cert", good, "--chain", special],
        "DIR --chain": ["submit-cert", good, "--chain", special],
    }[where]
    with contextlib.contextmanager(awaiting.unchanged)():
        done = _limited(awaiting.lab, *args)
    assert done.returncode in (1, 2), (done.stdout, done.stderr[-2000:])
    kind = "a device" if special == "/dev/zero" else "a named pipe"
    assert f"{special} is {kind}, not a regular file" in done.stderr, done.stderr[-2000:]


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
@pytest.mark.parametrize("key", ["config", "password_file", "ca_bundle"])
def test_configuration_files_must_be_regular_files(
    awaiting: Awaiting, tmp_path: Path, special: str, key: str
) -> None:
    if special == "fifo":
        special = str(tmp_path / "nobody-writes-this")
        os.mkfifo(special)
    lab = awaiting.lab
    config = tmp_path / "cucm-renew.toml"
    text = lab.config_path.read_text()
    if key == "password_file":
        text, count = re.subn(r'password_file = "[^"]*"', f'password_file = "{special}"', text)
        assert count, text
    elif key == "ca_bundle":
        text, count = re.subn(r'(?m)^ca_bundle = "[^"]*"', f'ca_bundle = "{special}"', text)
        assert count, text
    config.write_text(text)
    with contextlib.contextmanager(awaiting.unchanged)():
        done = _limited(lab, "check", "--config", special if key == "config" else str(config), cwd=lab.folder)
    assert done.returncode == 1, (done.stdout, done.stderr[-2000:])
    kind = "a device" if special == "/dev/zero" else "a named pipe"
    assert f"{special} is {kind}, not a regular file" in done.stderr, done.stderr[-2000:]


# ---------------------------------------------------------------------- last: the control


def _lab_ca_bundle(lab: ProofLab) -> Path:
    found = re.search(r'(?m)^ca_bundle = "([^"]*)"', lab.config_path.read_text())
    assert found, "no ca_bundle in the lab's configuration"
    path = Path(found.group(1))
    return path if path.is_absolute() else lab.config_path.parent / path


@pytest.mark.parametrize("form", ["RUN --node", "FILES"])
def test_a_chain_outside_the_tls_bundle_is_refused_at_submit_time(awaiting: Awaiting, form: str) -> None:
    """The corpus's CA is not in the cluster's TLS bundle: once the node presented a certificate it
    signed, the tool could not verify the node, and the run would fail one step later. Refused at
    submit time instead, nothing recorded."""
    good = str(CORPUS / "certs/ok-full-chain.pem")
    args = ["submit-cert", good, "--cluster", "sim"]
    if form == "RUN --node":
        args = ["submit-cert", awaiting.runs["tomcat"], "--node", PUB, "--cert", good]
    with contextlib.contextmanager(awaiting.unchanged)():
        result = cli(awaiting.lab, *args)
    assert result.code == 1, (result.out, result.err)
    assert (
        "is not in the TLS bundle" in result.err
        and "Fix: add the CA's root to clusters.sim.ca_bundle" in result.err
    )


def test_a_good_certificate_is_accepted_and_recorded(awaiting: Awaiting) -> None:
    """The control: the same command with the corpus's good bundle is taken once its root is in the
    cluster's TLS bundle, so the refusals above are the certificates' doing. (Last in the module; it
    changes only the run's submission.)"""
    bundle = _lab_ca_bundle(awaiting.lab)
    bundle.write_text(bundle.read_text().rstrip("\n") + "\n" + (CORPUS / "ca/root.pem").read_text())
    before = awaiting.lab.snapshot()
    run = awaiting.runs["tomcat"]
    result = cli(
        awaiting.lab, "submit-cert", run, "--node", PUB, "--cert", str(CORPUS / "certs/ok-full-chain.pem")
    )
    assert result.code == 0, result.err
    after = awaiting.lab.snapshot()
    assert len(after["events"]) == len(before["events"]) + 1
    assert after["events"][-1][8] == "submit"
