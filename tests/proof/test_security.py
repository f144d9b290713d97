"""Secrets, file modes, TLS and SSH trust, audit tampering, and the loaders' behaviour on any input.

The campaign here is the demo's: every type renewed through the command line on a mixed-mode
cluster, with the credentials given as environment variables holding sentinel passwords. Every
byte the tool wrote or printed is then searched for them.
"""

from __future__ import annotations

import base64
import json
import signal
import sqlite3
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.proof.harness import ProofLab, assert_audit_sound

SENTINEL_OS = "Sentinel-OS-pw-7f3a9c51e2"
SENTINEL_AXL = "Sentinel-AXL-pw-4b8d0e6a17"
WRONG = "Sentinel-WRONG-pw-93c2a4d8f0"
CREDENTIALS = {
    "platform": {"username": "osadmin", "password": SENTINEL_OS},
    "axl": {"username": "axladmin", "password": SENTINEL_AXL},
}
ENV_VARS = {"platform": "CUCM_PROOF_OS_PASSWORD", "axl": "CUCM_PROOF_AXL_PASSWORD"}
ALL_TYPES = ["tomcat", "ipsec", "CAPF", "CallManager", "TVS"]
CORPUS = Path(__file__).resolve().parents[1] / "data" / "badcerts"


def secret_forms(password: str, user: str) -> list[bytes]:
    """The password as text, and as it travels in a Basic Authorization header."""
    basic = base64.b64encode(f"{user}:{password}".encode())
    return [password.encode(), password.encode("utf-16-le"), basic]


FORBIDDEN = secret_forms(SENTINEL_OS, "osadmin") + secret_forms(SENTINEL_AXL, "axladmin")


def leaks(data: bytes) -> list[bytes]:
    return [f for f in FORBIDDEN + secret_forms(WRONG, "osadmin") if f in data]


def scan_tree(folder: Path) -> dict[str, list[bytes]]:
    found = {}
    for path in folder.rglob("*"):
        if path.is_file():
            hits = leaks(path.read_bytes())
            if hits:
                found[str(path)] = hits
    return found


def secure_lab(tmp_path: Path, **kw: Any) -> ProofLab:
    # x300, not faster: ControlCenterServices reports start times to the second, and two types that
    # restart the same service (CAPF and CallManager both restart Cisco Tftp) must not do so within
    # one second of each other for the later run to see its restart (see the report).
    kw.setdefault("time_scale", 300.0)
    lab = ProofLab(tmp_path, nodes=2, imp=1, phones=40, credentials=CREDENTIALS, password_env=ENV_VARS, **kw)
    lab.env_extra = {ENV_VARS["platform"]: SENTINEL_OS, ENV_VARS["axl"]: SENTINEL_AXL}
    return lab


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A full five-type campaign, interrupted once by SIGKILL so the WAL holds live pages."""
    folder = tmp_path_factory.mktemp("secure")
    with secure_lab(folder) as lab:
        outputs: list[str] = []
        killed = lab.cli("--log-level", "debug", "run", crash="transition.after_commit:6")
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        outputs += [killed.stdout, killed.stderr]
        wal = lab.state_dir / "engine.db-wal"
        wal_after_kill = wal.read_bytes() if wal.exists() else b""
        done = lab.cli("--log-level", "debug", "run")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        outputs += [done.stdout, done.stderr]
        assert {r.state for r in lab.runs()} == {"done"}
        export = lab.cli("audit", "export", "--format", "csv")
        outputs += [export.stdout, export.stderr]
        status = lab.cli("status", "--json")
        outputs += [status.stdout]
        yield lab, outputs, wal_after_kill


pytestmark = pytest.mark.xdist_group("security")


def test_the_sentinel_passwords_appear_nowhere(campaign: Any) -> None:
    lab, outputs, wal_after_kill = campaign
    assert len(wal_after_kill) > 0, "the interrupted run left no WAL to search"
    assert leaks(wal_after_kill) == []
    printed = "\n".join(outputs).encode()
    assert '"level": "debug"' in "\n".join(outputs), "debug logging was on: there was plenty to leak into"
    assert leaks(printed) == []
    names = {p.name for p in lab.state_dir.iterdir()}
    assert "engine.db" in names
    assert scan_tree(lab.state_dir) == {}
    assert scan_tree(lab.folder / "lab-ca") == {}
    # The configuration names the variables, never their values.
    config = lab.config_path.read_text()
    assert 'password_env = "CUCM_PROOF_OS_PASSWORD"' in config and SENTINEL_OS not in config
    # The database, read row by row as text as well (SQLite may store pages compressed elsewhere).
    conn = sqlite3.connect(lab.state_dir / "engine.db")
    try:
        for table in ("runs", "events", "effects", "commands", "progress", "meta"):
            for row in conn.execute(f"SELECT * FROM {table}"):  # noqa: S608
                assert leaks(repr(row).encode()) == [], (table, row[:3])
    finally:
        conn.close()


def test_error_messages_never_carry_the_password(campaign: Any, tmp_path: Path) -> None:
    """Refused credentials, over REST/AXL and SSH: the messages name the account, not the password."""
    lab, _, _ = campaign
    check = lab.cli(
        "--log-level", "debug", "check", CUCM_PROOF_OS_PASSWORD=WRONG, CUCM_PROOF_AXL_PASSWORD=WRONG
    )
    assert check.returncode == 1, check.stdout
    text = check.stdout + check.stderr
    assert "401" in text or "credentials" in text.lower() or "authenticat" in text.lower(), text[-2000:]
    assert leaks(text.encode()) == []
    # A run that fails on a refused SSH password (tomcat asks the CLI for SSO status first).
    state = tmp_path / "state"
    run = lab.cli(
        "run", "--type", "tomcat", "--force", CUCM_RENEW_STATE=str(state), CUCM_PROOF_OS_PASSWORD=WRONG
    )
    assert run.returncode == 1, run.stdout[-2000:]
    assert leaks((run.stdout + run.stderr).encode()) == []
    assert scan_tree(state) == {}


def test_state_folder_is_private(campaign: Any) -> None:
    lab, _, _ = campaign
    assert stat.S_IMODE(lab.state_dir.stat().st_mode) == 0o700
    files = [p for p in lab.state_dir.rglob("*") if p.is_file()]
    assert any(p.name == "engine.db" for p in files)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path} is {oct(path.stat().st_mode)}"
    for path in (lab.state_dir / "engine.db", lab.state_dir / "daemon.lock"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    keys = [p for p in (lab.folder / "lab-ca").rglob("*") if p.is_file() and "key" in p.name]
    assert keys, "the local CA keeps its keys in its folder"
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


def test_state_folder_is_private_whatever_the_umask(tmp_path: Path) -> None:
    with secure_lab(tmp_path) as lab:
        done = subprocess.run(
            lab.command("run", "--detach", "--type", "ipsec"),
            capture_output=True, text=True, env=lab.env(), cwd=str(lab.folder), umask=0o000, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert stat.S_IMODE(lab.state_dir.stat().st_mode) == 0o700
        for path in lab.state_dir.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path} is {oct(path.stat().st_mode)}"


def test_an_untrusted_https_certificate_is_refused_even_if_the_environment_trusts_it(tmp_path: Path) -> None:
    with secure_lab(tmp_path) as lab:
        text = lab.config_path.read_text()
        bundle = str(lab.sim.ca_bundle)
        assert bundle in text
        # A CA bundle that does not hold the nodes' issuers...
        lab.config_path.write_text(text.replace(bundle, str(CORPUS / "ca" / "root.pem")))
        # ...while the environment points requests at one that does: it must not be used.
        check = lab.cli("check", REQUESTS_CA_BUNDLE=bundle, CURL_CA_BUNDLE=bundle, SSL_CERT_FILE=bundle)
        assert check.returncode == 1, check.stdout
        out = check.stdout + check.stderr
        assert "does not verify" in out, out[-2000:]
        assert "cucm-pub.example.com" in out
        run = lab.cli("run", "--type", "tomcat", REQUESTS_CA_BUNDLE=bundle, CURL_CA_BUNDLE=bundle)
        assert run.returncode == 1
        assert lab.run_of("tomcat").status == "failed"
        assert "does not verify" in lab.run_of("tomcat").last_error
        state = lab.sim.state()
        assert state["csrs_generated"] == {} and state["uploads_accepted"] == []


PROBE = "adapters/cucm/probe.py"
"""Discovery's probe reads a node's TLS chain and SSH host key *to show their fingerprints* before
the operator confirms them: it connects without verifying, sends no credential, and nothing it
returns is trusted until confirmed. The one module allowed an unverified connection."""


def test_no_adapter_turns_tls_verification_off() -> None:
    root = Path(__file__).resolve().parents[2]
    for path in [*(root / "adapters").rglob("*.py"), *(root / "workflows").rglob("*.py")]:
        text = path.read_text()
        assert "AutoAddPolicy" not in text and "WarningPolicy" not in text, path
        if path.relative_to(root).as_posix() == PROBE:
            # It may read without verifying, but never logs in or sends anything over it.
            assert "auth_password" not in text and "Authorization" not in text and ".auth" not in text
            continue
        assert "verify=False" not in text and "CERT_NONE" not in text, path


def test_a_changed_ssh_host_key_is_refused(tmp_path: Path) -> None:
    with secure_lab(tmp_path) as lab:
        known = lab.sim.known_hosts
        lines = known.read_text().splitlines()
        other = (
            ed25519.Ed25519PrivateKey.generate()
            .public_key()
            .public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
        )
        known.write_text("".join(f"{line.split()[0]} {other.decode()}\n" for line in lines))
        run = lab.cli("run", "--type", "tomcat")
        assert run.returncode == 1, run.stdout[-2000:]
        view = lab.run_of("tomcat")
        assert view.status == "failed", (view.state, view.last_error)
        assert "host key" in view.last_error.lower(), view.last_error
        assert "known_hosts" in view.last_error or "Fix" in view.last_error, view.last_error
        state = lab.sim.state()
        assert state["csrs_generated"] == {} and state["restarts"] == {}


@pytest.mark.parametrize("tamper", ["edit", "delete"])
def test_a_tampered_audit_is_caught_by_audit_verify(campaign: Any, tmp_path: Path, tamper: str) -> None:
    lab, _, _ = campaign
    assert_audit_sound(lab)
    copy = tmp_path / "state"
    copy.mkdir(mode=0o700)
    src = sqlite3.connect(lab.state_dir / "engine.db")
    dst = sqlite3.connect(copy / "engine.db")
    src.backup(dst)
    src.close()
    with dst:
        if tamper == "edit":
            dst.execute("UPDATE events SET reason = 'nothing to see here' WHERE seq = 5")
        else:
            dst.execute("DELETE FROM events WHERE seq = 5")
    dst.close()
    verify = lab.cli("audit", "verify", "--json", CUCM_RENEW_STATE=str(copy))
    assert verify.returncode == 1, verify.stdout
    report = json.loads(verify.stdout)
    assert report["ok"] is False and report["first_broken_seq"] in (5, 6), report
    plain = lab.cli("audit", "verify", CUCM_RENEW_STATE=str(copy))
    assert plain.returncode == 1 and "broken at seq" in plain.stdout, plain.stdout
