"""The proof suites: `make test` runs the quick matrices; `make soak` (CUCM_RENEW_SOAK=1) the large ones.

Soak items are deselected, not skipped, when CUCM_RENEW_SOAK is unset, so a normal run reports
nothing about them.
"""

from __future__ import annotations

import os

import pytest

SOAK = os.environ.get("CUCM_RENEW_SOAK") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
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
