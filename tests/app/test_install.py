"""``pip install .`` gives a working ``cucm-renew``, and the systemd unit in the repository is valid.

The wheel is built from a copy of the tracked sources (so the checkout gets no build/ folder) with
pip's isolated build, as a user's ``pip install .`` does, and installed without dependencies into a
fresh venv that sees the development venv's site-packages for them: every module and YAML file the
command loads must then come from the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from tests.engine.procs import REPO

UNIT = REPO / "app" / "systemd" / "cucm-renew.service"


def tracked(*patterns: str) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", *patterns],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in out.stdout.splitlines() if (REPO / line).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in tracked():
        if name.startswith(("tests/", "benchmarks/", "state/")):
            continue
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("cucm_renew-*.whl")
    return built


def test_the_wheel_holds_every_package_and_data_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = [
        f
        for f in tracked("app", "engine", "workflows", "adapters", "simulator")
        if f.endswith((".py", ".yaml", ".service"))
    ]
    assert any(f.endswith(".yaml") for f in wanted) and any(f.endswith(".service") for f in wanted)
    missing = [f for f in wanted if f not in names]
    assert missing == []
    assert not [n for n in names if n.startswith("tests/")]


def test_an_installed_wheel_runs_from_anywhere(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(target)
    python = target / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # The dependencies come from the development venv, after the wheel's own site-packages; a plain
    # path line, so that venv's editable-install hook is not run.
    Path(site, "dev-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CUCM_RENEW_CONFIG")}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        env=env,
        timeout=300,
    )
    where = subprocess.run(
        [str(python), "-c", "import app, workflows, engine; print(app.__file__); print(workflows.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(path.startswith(site) for path in where), where
    graph = subprocess.run(
        [str(target / "bin" / "cucm-renew"), "graph", "tomcat"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert graph.returncode == 0, graph.stderr
    assert graph.stdout.startswith("stateDiagram-v2")
    assert "awaiting_ca" in graph.stdout
    assert Path(site, "app", "systemd", "cucm-renew.service").is_file()


def test_the_unit_file_verifies_and_sandboxes_the_daemon(tmp_path: Path) -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "User=cucm-renew",
        "StateDirectory=cucm-renew",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
    ):
        assert line in text.splitlines(), line
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    assert "daemon" in exec_start and "--check-every 12h" in exec_start
    assert "--state-dir ${STATE_DIRECTORY}" in exec_start
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is needed to verify the unit: apt-get install systemd"
    # Verified as shipped except for where the program lives on this machine.
    program = Path(sys.executable).parent / "cucm-renew"
    assert program.is_file()
    unit = tmp_path / "cucm-renew.service"
    unit.write_text(text.replace("/opt/cucm-renew/bin/cucm-renew", str(program)))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
