"""Per-node work runs at once across nodes, and a failure waits for the other nodes to finish."""

from __future__ import annotations

import threading
import time

import pytest

from workflows.steps.common import each_node

NODES = ["cucm-pub.example.com", "cucm-sub1.example.com", "cucm-sub2.example.com", "imp1.example.com"]


def test_every_node_works_at_the_same_time() -> None:
    # Each node's work waits for all the others: sequential work would break the barrier.
    barrier = threading.Barrier(len(NODES), timeout=10)
    results = each_node(NODES, lambda node: (barrier.wait(), node.upper())[1])
    assert list(results) == NODES and results[NODES[2]] == NODES[2].upper()


def test_a_failure_is_raised_after_every_node_has_finished() -> None:
    finished: list[str] = []

    def work(node: str) -> str:
        if node == NODES[1]:
            raise ValueError(f"{node} refused")
        time.sleep(0.2)
        finished.append(node)
        return node

    with pytest.raises(ValueError, match=r"cucm-sub1\.example\.com refused"):
        each_node(NODES, work)
    assert sorted(finished) == sorted(n for n in NODES if n != NODES[1])
