"""Helpers the steps share: reading the run's context, ordering nodes, running per node."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

from engine.api import StepContext
from workflows import context
from workflows.context import ROLE_RANK
from workflows.deps import RunDeps
from workflows.releases import Release, ReleaseRules, rules

NODE_WORKERS = 8
T = TypeVar("T")


def deps(ctx: StepContext) -> RunDeps:
    return cast(RunDeps, ctx.deps)


def unit(ctx: StepContext) -> str:
    """CUCM's name for the certificate type (certmgr service, CLI unit)."""
    return str(ctx.params.get("unit") or ctx.definition)


AUTOMATIC_RESET_TYPES = frozenset({"CallManager", "TVS", "CAPF"})
"""Types whose identity upload CUCM 14+ answers by resetting phones itself (RN14, SG14)."""


def release_rules(ctx: StepContext) -> ReleaseRules:
    """The rules of the release the expiry step recorded (read from CUCM for an older run)."""
    recorded = context.view(ctx.context).get("release")
    return rules(recorded or Release.parse(deps(ctx).cucm.version()))


def automatic_phone_reset(ctx: StepContext) -> bool:
    """Whether CUCM resets the phones itself when this type's identity is uploaded: the release
    has "Phone Interaction on Certificate Update" and the cluster is not configured ``manual``."""
    if unit(ctx) not in AUTOMATIC_RESET_TYPES or not ctx.params.get("phone_reset"):
        return False
    return release_rules(ctx).phone_interaction_on_certificate_update and (
        deps(ctx).phone_interaction != "manual"
    )


def cluster_nodes(ctx: StepContext) -> dict[str, str]:
    """Every node of the cluster and its role, publisher first (older runs: the type's nodes)."""
    return dict(context.view(ctx.context).get("cluster_nodes") or context.node_roles(ctx.context))


def targets(ctx: StepContext) -> list[str]:
    """The nodes this run renews, publisher first, then subscribers, then IM&P, each by name."""
    return context.targets(ctx.context)


def role_of(ctx: StepContext, node: str) -> str:
    return context.node_roles(ctx.context).get(node, "subscriber")


def order_nodes(nodes: Iterable[tuple[str, str]]) -> list[str]:
    """``(name, role)`` pairs sorted publisher first, then subscribers, then IM&P nodes."""
    return [n for n, _ in sorted(nodes, key=lambda nr: (ROLE_RANK.get(nr[1], 3), nr[0]))]


def each_node(nodes: Sequence[str], work: Callable[[str], T]) -> dict[str, T]:
    """``work(node)`` for every node at once; results by node, in ``nodes`` order.

    CUCM's certificate APIs are server-specific, so nodes do not contend and a cluster's CSRs and
    uploads need not wait for each other (no guard orders them; restarts do not use this). Every
    node's work ends before the first error, in node order, is raised: no node is left half-done
    because another failed. Each node's side effects are journaled effects of their own.
    """
    if len(nodes) <= 1:
        return {node: work(node) for node in nodes}
    with ThreadPoolExecutor(max_workers=min(NODE_WORKERS, len(nodes)), thread_name_prefix="node") as pool:
        futures = {node: pool.submit(work, node) for node in nodes}
    results: dict[str, T] = {}
    for node in nodes:
        error = futures[node].exception()
        if error is not None:
            raise error
        results[node] = futures[node].result()
    return results


def node_map(ctx: StepContext, key: str) -> dict[str, Any]:
    """A per-node table from the context, copied so a step can extend and return it."""
    return {k: v for k, v in dict(ctx.context.get(key) or {}).items()}


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def names(items: Iterable[str]) -> str:
    items = list(items)
    if len(items) > 6:
        return ", ".join(items[:6]) + f" and {len(items) - 6} more"
    return ", ".join(items)


def as_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
