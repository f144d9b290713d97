"""Workflows see adapters through their ports only; the composition root alone builds adapters."""

from __future__ import annotations

import ast
from pathlib import Path

import workflows

ROOT = Path(workflows.__file__).resolve().parent
COMPOSITION_ROOTS = {"cli.py", "wiring.py", "demo.py"}
# Ports, plus the CA's certificate profiles: a table of key usages per type, no I/O.
ALLOWED = {"adapters.cucm.port", "adapters.ca.port", "adapters.ca.profiles"}
# `init --from-simulator` (initconfig.py) reads simulator.json with the simulator's own reader, a
# standard-library module; nothing else of the simulator.
SIMULATOR_READER = {"initconfig.py": {"simulator.info", "simulator.info.SimulatorInfo"}}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def modules() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if p.name not in COMPOSITION_ROOTS or p.parent != ROOT)


def test_the_boundary_is_checked_on_real_files() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in modules()}
    assert {"guards.py", "registry.py", "steps/restart.py", "steps/signature.py", "config.py"} <= names
    assert "cli.py" not in names


def test_workflow_modules_import_only_ports() -> None:
    offenders = []
    for path in modules():
        for name in imported_modules(path):
            top = name.split(".")[0]
            if top == "simulator" and name not in SIMULATOR_READER.get(path.name, set()):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
            if (
                top == "adapters"
                and name.count(".") >= 2
                and not any(name == a or name.startswith(a + ".") for a in ALLOWED)
            ):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def test_the_checker_would_catch_an_implementation_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from adapters.cucm.cluster import build_cluster\nimport simulator.runtime\n")
    assert {"adapters.cucm.cluster", "simulator.runtime"} <= imported_modules(bad)
