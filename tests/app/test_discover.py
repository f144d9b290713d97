"""`init --discover` against `cucm-renew simulate` in its own process, as an operator meets it: the
file it writes must satisfy `check` and `run`, trust is only ever given after it was shown, and no
password reaches the command line, a file or the output."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app.terminal import Terminal
from tests.workflows.lab import REPO, stop_process


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    return {**base, "PYTHONPATH": str(REPO), **(extra or {})}


def cucm_renew(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=str(cwd),
        env=env,
        stdin=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def simulate(folder: Path, *extra: str) -> Iterator[dict[str, object]]:
    argv = [sys.executable, "-m", "app.cli", "simulate", "--dir", str(folder), "--nodes", "2", "--imp", "1"]
    proc = subprocess.Popen(
        [*argv, "--phones", "20", "--time-scale", "2000", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(REPO),
        env=_env(),
    )
    try:
        deadline = time.monotonic() + 60
        while not (folder / "simulator.json").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the simulator did not start"
            time.sleep(0.1)
        yield json.loads((folder / "simulator.json").read_text())
    finally:
        stop_process(proc)


def keygen_fingerprints(known_hosts: Path) -> dict[str, str]:
    """Host -> fingerprint, as OpenSSH's own ssh-keygen prints them."""
    out = subprocess.run(["ssh-keygen", "-lf", str(known_hosts)], capture_output=True, text=True, check=True)
    found = {}
    for line in out.stdout.splitlines():
        _bits, fingerprint, hosts, _kind = line.split()
        for host in hosts.split(","):
            found[host] = fingerprint
    return found


def presented_sha256(address: str, port: int = 8443) -> str:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((address, port)) as raw, context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der
    return hashlib.sha256(der).hexdigest().upper()


def discover_args(info: dict[str, object], sim: Path, work: Path, *extra: str) -> list[str]:
    creds: dict[str, dict[str, str]] = info["credentials"]  # type: ignore[assignment]
    nodes: list[dict[str, str]] = info["nodes"]  # type: ignore[assignment]
    return [
        "init",
        "--discover",
        nodes[0]["address"],
        "--output",
        str(work / "cucm-renew.toml"),
        "--axl-user",
        creds["axl"]["username"],
        "--axl-password-file",
        str(sim.parent / "axl.password"),
        "--platform-user",
        creds["platform"]["username"],
        "--platform-password-env",
        "DISCOVER_PLATFORM_PW",
        "--hosts",
        str(sim / "hosts"),
        "--local-ca",
        str(work / "lab-ca"),
        "--time-scale",
        "2000",
        *extra,
    ]


@pytest.mark.parametrize("names", ["fqdn", "ip"])
def test_discovered_configuration_passes_check_and_run(tmp_path: Path, names: str) -> None:
    sim, work = tmp_path / "sim", tmp_path / "work"
    with simulate(sim, "--processnode-names", names) as info:
        creds: dict[str, dict[str, str]] = info["credentials"]  # type: ignore[assignment]
        secrets = [creds["axl"]["password"], creds["platform"]["password"]]
        (tmp_path / "axl.password").write_text(secrets[0] + "\n")
        os.chmod(tmp_path / "axl.password", 0o600)
        env = _env({"DISCOVER_PLATFORM_PW": secrets[1]})
        nodes: list[dict[str, str]] = info["nodes"]  # type: ignore[assignment]
        keys = keygen_fingerprints(sim / "known_hosts")
        real = [keys[n["address"]] for n in nodes]
        outputs: list[str] = []

        # A host key that matches no fingerprint given is refused, and nothing is written.
        wrong = cucm_renew(
            *discover_args(info, sim, work, "--ca-bundle", str(sim / "ca-bundle.pem")),
            "--accept-host-keys",
            *real[1:],
            cwd=tmp_path,
            env=env,
        )
        outputs += [wrong.stdout, wrong.stderr]
        assert wrong.returncode == 1, wrong.stdout + wrong.stderr
        assert "refused" in wrong.stderr and real[0] in wrong.stdout + wrong.stderr
        assert not work.exists() or not any(work.iterdir())

        # HTTPS that verifies against no bundle is shown, fingerprint by fingerprint, and refused.
        pub_tls = presented_sha256(nodes[0]["address"])
        untrusted = cucm_renew(
            *discover_args(info, sim, work, "--accept-host-keys", *real), cwd=tmp_path, env=env
        )
        outputs += [untrusted.stdout, untrusted.stderr]
        assert untrusted.returncode == 1 and "not trusted" in untrusted.stderr, untrusted.stderr
        assert pub_tls in untrusted.stdout
        assert not work.exists() or not any(work.iterdir())

        if names == "fqdn":
            trust = ["--ca-bundle", str(sim / "ca-bundle.pem")]
        else:  # the operator checked the publisher's certificate on its console
            trust = ["--accept-tls-fingerprint", ":".join(pub_tls[i : i + 2] for i in range(0, 64, 2))]
        argv = discover_args(info, sim, work, *trust, "--accept-host-keys", *real)
        assert not any(s in " ".join(argv) for s in secrets)
        found = cucm_renew(*argv, cwd=tmp_path, env=env)
        outputs += [found.stdout, found.stderr]
        assert found.returncode == 0, found.stdout + found.stderr
        config = (work / "cucm-renew.toml").read_text()
        for node in nodes:
            assert f'name = "{node["name"]}"' in config and f'address = "{node["address"]}"' in config
        assert 'role = "imp"' in config and 'version = "14.0.1.13900-155"' in config
        assert ("processnode = " in config) == (names == "ip")
        if names == "ip":
            assert 'processnode = "192.0.2.11"' in config
            assert (work / "cucm-pub-ca-bundle.pem").is_file()
        # The known_hosts written holds exactly the confirmed keys, in a form OpenSSH reads.
        written = keygen_fingerprints(work / "cucm-pub-known_hosts")
        assert {written[n["name"]] for n in nodes} == set(real)

        check = cucm_renew("check", "--json", "--config", str(work / "cucm-renew.toml"), cwd=work, env=env)
        outputs += [check.stdout, check.stderr]
        assert check.returncode == 0, check.stdout + check.stderr
        tomcat = {r["node"] for r in json.loads(check.stdout) if r.get("type") == "tomcat"}
        assert tomcat == {n["name"] for n in nodes}

        run = cucm_renew("run", "--type", "tomcat", cwd=work, env=env)
        outputs += [run.stdout, run.stderr]
        assert run.returncode == 0, run.stdout + run.stderr
        table = run.stdout[run.stdout.index("old expiry") :]
        assert table.count(" done") == 3 and " no " not in table, table

        files = [p for p in work.rglob("*") if p.is_file() and "state" not in p.parts]
        for secret in secrets:
            assert not any(secret in text for text in outputs)
            assert not any(secret.encode() in p.read_bytes() for p in files), files


def test_host_keys_and_tls_are_confirmed_at_the_terminal(tmp_path: Path) -> None:
    sim, work = tmp_path / "sim", tmp_path / "work"
    with simulate(sim, "--processnode-names", "ip") as info:
        creds: dict[str, dict[str, str]] = info["credentials"]  # type: ignore[assignment]
        (tmp_path / "axl.password").write_text(creds["axl"]["password"] + "\n")
        env = _env({"DISCOVER_PLATFORM_PW": creds["platform"]["password"]})
        nodes: list[dict[str, str]] = info["nodes"]  # type: ignore[assignment]
        keys = keygen_fingerprints(sim / "known_hosts")
        argv = [sys.executable, "-m", "app.cli", *discover_args(info, sim, work)]
        term = Terminal(argv, cwd=tmp_path, env=env)
        try:
            # The publisher's certificate first: shown with its fingerprint, then asked about.
            pub_tls = presented_sha256(nodes[0]["address"])
            screen = term.wait_for(lambda s: "[yes/no]" in s, 60, "the TLS question")
            assert pub_tls in screen and "does not verify" in screen
            term.type("yes")
            for node in nodes:
                fingerprint = keys[node["address"]]
                term.wait_for(
                    lambda s, f=fingerprint: f"Is {f} the host key" in s, 60, f"{node['name']}'s key"
                )
                term.type("yes")
            assert term.wait_exit(60) == 0, term.text()
        finally:
            term.close()
        assert "wrote" in term.text()
        written = keygen_fingerprints(work / "cucm-pub-known_hosts")
        assert {written[n["name"]] for n in nodes} == {keys[n["address"]] for n in nodes}

        # Answering no writes nothing.
        refused_dir = tmp_path / "again"
        argv = [sys.executable, "-m", "app.cli", *discover_args(info, sim, refused_dir)]
        term = Terminal(argv, cwd=tmp_path, env=env)
        try:
            term.wait_for(lambda s: "[yes/no]" in s, 60, "the TLS question")
            term.type("no")
            assert term.wait_exit(60) == 1
        finally:
            term.close()
        assert "not trusted" in term.text() and not refused_dir.exists()
