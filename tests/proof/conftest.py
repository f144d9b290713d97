"""The proof suites: `make test` runs the quick matrices; `make soak` (CUCM_RENEW_SOAK=1) the large ones.

Soak items are deselected, not skipped, when CUCM_RENEW_SOAK is unset, so a normal run reports
nothing about them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SOAK = os.environ.get("CUCM_RENEW_SOAK") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _group_for_xdist(config, items)
    if SOAK:
        return
    keep, drop = [], []
    for item in items:
        (drop if item.get_closest_marker("soak") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_configure(config: pytest.Config) -> None:
    # Registered by pytest-xdist when it is loaded; named here too so `-p no:xdist` runs still collect.
    config.addinivalue_line("markers", "xdist_group(name): keep these tests on one xdist worker")


def _group_for_xdist(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`--dist loadgroup` keys on a ``@group`` suffix that pytest-xdist 3.8 writes to ``_nodeid``, an
    attribute pytest 9.2 no longer reads (it keeps node ids in ``_id``), so groups are ignored and a
    module fixture is built on both workers. Append the suffix where pytest reads it, for these tests."""
    if not getattr(config, "workerinput", None) or not config.getvalue("loadgroup"):
        return
    try:
        from _pytest.nodeid import coerce_node_id  # type: ignore[import-not-found]
    except ImportError:  # an older pytest, where pytest-xdist's own suffix works
        return
    here = str(Path(__file__).parent)
    for item in items:
        mark = item.get_closest_marker("xdist_group")
        if mark is None or not str(item.path).startswith(here) or "@" in item.nodeid:
            continue
        name = mark.args[0] if mark.args else mark.kwargs.get("name", "default")
        item._id = coerce_node_id(f"{item.nodeid}@{name}")  # type: ignore[attr-defined]
