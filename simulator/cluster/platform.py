"""Conditions of the cluster a renewal must check before changing anything (reference part 2 §7).

Each is settable per test (``Cluster.platform``, ``SimulatedCluster.set_flags``) and by
``simulate`` options; the CLI renders them (``simulator/cli.py``). What is modelled, per condition:

* database replication: a node's ``Replicate_State`` code (2 = good; 0, 1, 3, 4 otherwise, PCD14);
* ``show network cluster``: a node missing from the list, or listed but not authenticated;
* the CTL: signed without a token (the default in mixed mode), by a ``SAST-ADN`` hardware token, or
  absent (T118893);
* Smart Licensing: registered with export-controlled functionality allowed (the default), registered
  without it, or unregistered (T212915, SCG125-SL);
* triggers: SSO re-enabled or a DRS backup started when the first CSR is generated or the first
  identity is uploaded, as if an administrator acted during the run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.cluster.node import Node

REPLICATION_TEXTS = {
    0: "(0) Initializing",
    1: "(1) Setup Ongoing",
    2: "(2) Setup Completed",
    3: "(3) Mismatch",
    4: "(4) Setup Failed",
}
CTL_KINDS = ("tokenless", "token", "none")
LICENSE_KINDS = ("export", "no-export", "unregistered")
TRIGGER_EVENTS = ("csr", "identity")
TRIGGER_ACTIONS = ("sso", "drs")


@dataclass
class PlatformState:
    """What the platform CLI reports about the cluster's health; defaults are a healthy cluster."""

    replication: dict[str, int] = field(default_factory=dict)
    """Node (short name) -> Replicate_State code; nodes not listed are 2 (Setup Completed)."""
    missing_from_cluster: set[str] = field(default_factory=set)
    unauthenticated: set[str] = field(default_factory=set)
    ctl: str = "tokenless"
    license: str = "export"
    triggers: list[tuple[str, str]] = field(default_factory=list)
    """(event, action): on the first ``event`` (csr | identity), do ``action`` (sso | drs)."""

    def check_nodes(self, nodes: Sequence[Node]) -> None:
        """Name every condition by the node's short name; a node that does not exist is refused."""
        by_name = {**{n.name: n.short for n in nodes}, **{n.short: n.short for n in nodes}}

        def short(name: str) -> str:
            if name not in by_name:
                raise ValueError(f"no node named {name!r}; nodes: {', '.join(n.name for n in nodes)}")
            return by_name[name]

        self.replication = {short(n): c for n, c in self.replication.items()}
        self.missing_from_cluster = {short(n) for n in self.missing_from_cluster}
        self.unauthenticated = {short(n) for n in self.unauthenticated}

    def replication_code(self, node: Node) -> int:
        return self.replication.get(node.short, 2)

    def set_replication(self, node: str, code: int) -> None:
        if code not in REPLICATION_TEXTS:
            raise ValueError(f"replication state must be one of {sorted(REPLICATION_TEXTS)}, not {code}")
        self.replication[node.split(".")[0]] = code

    def set_ctl(self, kind: str) -> None:
        if kind not in CTL_KINDS:
            raise ValueError(f"ctl must be one of {', '.join(CTL_KINDS)}, not {kind!r}")
        self.ctl = kind

    def set_license(self, kind: str) -> None:
        if kind not in LICENSE_KINDS:
            raise ValueError(f"license must be one of {', '.join(LICENSE_KINDS)}, not {kind!r}")
        self.license = kind

    def add_trigger(self, event: str, action: str) -> None:
        if event not in TRIGGER_EVENTS or action not in TRIGGER_ACTIONS:
            raise ValueError(
                f"a trigger is EVENT:ACTION with EVENT in {TRIGGER_EVENTS} and ACTION in {TRIGGER_ACTIONS}"
            )
        self.triggers.append((event, action))

    def fire(self, event: str, act: Callable[[str], None]) -> None:
        """Run, once each, the actions waiting for ``event``."""
        due = [a for e, a in self.triggers if e == event]
        self.triggers = [(e, a) for e, a in self.triggers if e != event]
        for action in due:
            act(action)


def parse_trigger(text: str) -> tuple[str, str]:
    """``identity:sso`` -> ("identity", "sso")."""
    event, _, action = text.partition(":")
    if event not in TRIGGER_EVENTS or action not in TRIGGER_ACTIONS:
        raise ValueError(
            f"{text!r}: write EVENT:ACTION, EVENT one of {', '.join(TRIGGER_EVENTS)}, "
            f"ACTION one of {', '.join(TRIGGER_ACTIONS)} (e.g. identity:sso)"
        )
    return event, action
