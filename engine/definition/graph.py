"""The shape of a definition's state graph: reachability, ways out, cycles that wait, lease sections."""

from __future__ import annotations

from collections.abc import Mapping

from engine.definition.model import ABORTED, HELD_STATES, Definition, DefinitionError, TransitionDef
from engine.definition.yamlfile import LDict, refuse


def section(transitions: list[TransitionDef], start: str, until: str, finals: set[str]) -> frozenset[str]:
    """States reachable from ``start`` without passing ``until`` or a final state: where a run
    holds an exclusion lease."""
    inside = {start}
    todo = [start]
    while todo:
        state = todo.pop()
        for t in transitions:
            if t.source == state and t.dest not in inside and t.dest != until and t.dest not in finals:
                inside.add(t.dest)
                todo.append(t.dest)
    return frozenset(inside)


def check_graph(raw_states: LDict, defn: Definition) -> None:
    """Refuse a state no path reaches, a non-final state with no way out, a cycle none of whose
    states waits. ``raw_states`` locates each state for the error."""

    def fail(state: str, message: str) -> DefinitionError:
        return refuse(raw_states, state, message)

    edges: dict[str, set[str]] = {s: set() for s in defn.states}
    for t in defn.transitions:
        edges[t.source].add(t.dest)
    for s in defn.states.values():
        if s.wait and s.wait.on_timeout not in HELD_STATES:
            edges[s.name].add(s.wait.on_timeout)

    reached = {defn.initial}
    todo = [defn.initial]
    while todo:
        for nxt in edges[todo.pop()]:
            if nxt not in reached:
                reached.add(nxt)
                todo.append(nxt)
    for sname in defn.states:
        if sname not in reached and sname != ABORTED:
            raise fail(
                sname,
                f"state {sname!r} is unreachable from {defn.initial!r}: add a transition into it",
            )

    for s in defn.states.values():
        if not s.final and not edges[s.name]:
            raise fail(s.name, f"state {s.name!r} is not final and has no way out: add a transition")

    for component in _cycles(edges):
        if not any(defn.states[s].waits for s in component):
            loop = " -> ".join(sorted(component))
            first = min(component, key=lambda s: defn.states[s].line)
            raise fail(
                first,
                f"cycle {loop} has no waiting state: declare 'wait' or 'gate' on one of them",
            )


def _cycles(edges: Mapping[str, set[str]]) -> list[set[str]]:
    """Strongly connected components that contain a cycle (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[set[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(edges[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, pending = work[-1]
            if pending:
                nxt = pending.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(edges[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp.add(member)
                    if member == node:
                        break
                if len(comp) > 1 or node in edges[node]:
                    out.append(comp)
    return out
