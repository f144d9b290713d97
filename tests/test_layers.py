"""The layers import one way: app → engine, workflows → ports ← adapters; the simulator is reached
only by the commands that run it.

Checked on the real files with ``ast`` (imports inside functions count too), so a new module is
covered the day it is written.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PORTS = frozenset({"adapters.cucm.port", "adapters.ca.port", "adapters.ca.profiles"})
"""What the workflows may import of the adapters: the ports, and the CA's table of key usages per
certificate type (data, no I/O)."""
SIMULATOR_USERS = {
    "app/demo.py": None,
    "app/cli.py": {"_configure_simulate", "_cmd_simulate"},
    "app/initconfig.py": {"simulator_config"},
}
"""Production modules that may import the simulator, and (where not the whole module) the
functions that may: ``demo`` and ``simulate`` run it, and ``init --from-simulator`` reads the
description a running simulator writes of itself; nothing else may depend on it."""


def imports(path: Path) -> list[tuple[str, str | None]]:
    """(module imported, the top-level function or class it is imported in, or None) for every
    import."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[str, str | None]] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            where = function
            if function is None and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                where = child.name
            if isinstance(child, ast.Import):
                found.extend((alias.name, where) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.append((child.module, where))
                found.extend((f"{child.module}.{alias.name}", where) for alias in child.names)
            visit(child, where)

    visit(tree, None)
    return found


def layer_files(layer: str) -> list[Path]:
    return sorted((REPO / layer).rglob("*.py"))


def is_package(name: str) -> bool:
    # ``from adapters.cucm import port`` also yields "adapters.cucm": the package itself holds
    # nothing, the module named after it is what is judged.
    return (REPO / name.replace(".", "/")).is_dir()


def offenders(layer: str, forbidden: set[str], allowed: frozenset[str] = frozenset()) -> list[str]:
    out = []
    for path in layer_files(layer):
        for name, _ in imports(path):
            if name.split(".")[0] not in forbidden or is_package(name):
                continue
            if not any(name == a or name.startswith(a + ".") for a in allowed):
                out.append(f"{path.relative_to(REPO)} imports {name}")
    return out


@pytest.mark.parametrize("layer", ["app", "engine", "workflows", "adapters", "simulator"])
def test_each_layer_is_checked_on_real_files(layer: str) -> None:
    assert len(layer_files(layer)) >= 3


def test_the_engine_imports_no_other_layer() -> None:
    assert offenders("engine", {"app", "workflows", "adapters", "simulator"}) == []


def test_workflows_import_ports_never_implementations() -> None:
    assert offenders("workflows", {"app", "adapters", "simulator"}, PORTS) == []


def test_adapters_import_no_engine_workflows_or_application() -> None:
    assert offenders("adapters", {"app", "engine", "workflows", "simulator"}) == []


def test_the_simulator_stands_alone() -> None:
    assert offenders("simulator", {"app", "engine", "workflows", "adapters"}) == []


def test_production_code_reaches_the_simulator_only_from_demo_and_simulate() -> None:
    found = []
    for layer in ("app", "engine", "workflows", "adapters"):
        for path in layer_files(layer):
            rel = path.relative_to(REPO).as_posix()
            for name, function in imports(path):
                if name.split(".")[0] != "simulator":
                    continue
                if rel in SIMULATOR_USERS:
                    functions = SIMULATOR_USERS[rel]
                    if functions is None or function in functions:
                        continue
                found.append(f"{rel} imports {name} (in {function or 'the module'})")
    assert found == []


def test_the_checker_sees_imports_anywhere_in_a_module(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from adapters.cucm.cluster import build_cluster\n"
        "def f():\n    import simulator.runtime\n"
        "class K:\n    def m(self):\n        from engine import store\n"
    )
    found = imports(bad)
    assert ("adapters.cucm.cluster", None) in found
    assert ("simulator.runtime", "f") in found
    assert ("engine.store", "K") in found
    assert offenders_in(bad) == ["adapters.cucm.cluster", "adapters.cucm.cluster.build_cluster"]


def offenders_in(path: Path) -> list[str]:
    return [
        name
        for name, _ in imports(path)
        if name.startswith("adapters.") and not is_package(name) and not name.startswith(tuple(PORTS))
    ]
