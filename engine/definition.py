"""Workflow definitions: YAML files loaded and validated into frozen, typed objects.

The schema is described in ``workflows/README.md``. Every problem is reported as a
:class:`DefinitionError` naming the file, the line and what is wrong, at load time, so a typo never
silently changes how a renewal behaves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from engine.api import JSON, Registry

HELD_STATES = ("paused", "failed")
"""Holding states every definition has implicitly."""
ABORTED = "aborted"
"""The final state ``abort`` moves a run to; implicit when a definition does not declare it."""
DEFAULT_POLL = 60.0


class DefinitionError(Exception):
    """A definition file is invalid. ``file`` and ``line`` locate the problem."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file = file
        self.line = line
        self.problem = message
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {message}")


# --------------------------------------------------------------------------- typed objects


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    initial: float = 1.0
    backoff: float = 2.0
    cap: float = 120.0
    jitter: float = 0.2

    def delay(self, attempt: int, rand: float) -> float:
        """Seconds to wait after failed ``attempt`` (1-based); ``rand`` is uniform in [0, 1)."""
        base = min(self.cap, self.initial * self.backoff ** (attempt - 1))
        return max(0.0, base * (1.0 + self.jitter * (2.0 * rand - 1.0)))


@dataclass(frozen=True)
class WaitSpec:
    poll: float = DEFAULT_POLL
    timeout: float | None = None
    on_timeout: str = "paused"


@dataclass(frozen=True)
class StateDef:
    name: str
    line: int
    step: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    wait: WaitSpec | None = None
    gate: str | None = None
    submit_validator: str | None = None
    final: bool = False

    @property
    def waits(self) -> bool:
        return self.wait is not None or self.gate is not None

    @property
    def poll(self) -> float:
        return self.wait.poll if self.wait else DEFAULT_POLL


@dataclass(frozen=True)
class TransitionDef:
    trigger: str
    source: str
    dest: str
    guards: tuple[str, ...] = ()
    line: int = 0


@dataclass(frozen=True)
class ExclusionDef:
    group: str
    from_state: str
    until: str
    section: frozenset[str] = frozenset()
    """States in which a run holds the lease: reachable from ``from_state`` without passing
    ``until`` or a final state."""


@dataclass(frozen=True)
class Definition:
    name: str
    file: str
    initial: str
    final: tuple[str, ...]
    states: Mapping[str, StateDef]
    transitions: tuple[TransitionDef, ...]
    params: Mapping[str, JSON] = field(default_factory=lambda: MappingProxyType({}))
    exclusion: tuple[ExclusionDef, ...] = ()
    skip: tuple[str, ...] = ()
    abstract: bool = False

    def outgoing(self, source: str) -> tuple[TransitionDef, ...]:
        return tuple(t for t in self.transitions if t.source == source)

    def find(self, source: str, trigger: str) -> tuple[TransitionDef, ...]:
        index: dict[tuple[str, str], tuple[TransitionDef, ...]] | None = self.__dict__.get("_index")
        if index is None:
            built: dict[tuple[str, str], list[TransitionDef]] = {}
            for t in self.transitions:
                built.setdefault((t.source, t.trigger), []).append(t)
            index = {k: tuple(v) for k, v in built.items()}
            object.__setattr__(self, "_index", index)  # a cache on a frozen dataclass
        return index.get((source, trigger), ())

    def is_final(self, state: str) -> bool:
        return state in self.final


# --------------------------------------------------------------------------- YAML with line numbers


class _LDict(dict[str, Any]):
    line: int = 0
    file: str = ""
    key_lines: dict[str, int]


class _LList(list[Any]):
    line: int = 0
    file: str = ""
    item_lines: list[int]


class _Loader(yaml.SafeLoader):
    file_name = ""


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> Any:
    data = _LDict()
    data.line = node.start_mark.line + 1
    data.file = loader.file_name
    data.key_lines = {}
    yield data
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            raise DefinitionError(loader.file_name, line, f"key {key!r} must be a string")
        if key in data:
            raise DefinitionError(loader.file_name, line, f"key {key!r} appears twice: keep one")
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[key] = line


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> Any:
    data = _LList()
    data.line = node.start_mark.line + 1
    data.file = loader.file_name
    data.item_lines = [item.start_mark.line + 1 for item in node.value]
    yield data
    data.extend(loader.construct_object(item, deep=True) for item in node.value)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def _parse(path: Path) -> _LDict:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DefinitionError(
            str(path),
            path.read_bytes()[: exc.start].count(b"\n") + 1,
            f"not UTF-8 text (byte {exc.object[exc.start]:#04x}): save the file as UTF-8",
        ) from None
    except OSError as exc:
        raise DefinitionError(str(path), None, f"cannot read the file: {exc.strerror}") from None
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:
        raise DefinitionError(
            str(path),
            text[: exc.position].count("\n") + 1,
            f"not valid YAML: character #x{exc.character:04x} is not allowed; remove it",
        ) from None
    loader.file_name = str(path)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise DefinitionError(str(path), line, f"not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise DefinitionError(str(path), None, f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    if not isinstance(data, _LDict):
        raise DefinitionError(str(path), 1, "a definition must be a YAML mapping (name: ..., states: ...)")
    return data


def _merge(base: Any, over: Any) -> Any:
    """Deep merge: mappings merge key by key, anything else in ``over`` replaces ``base``."""
    if isinstance(base, _LDict) and isinstance(over, _LDict):
        out = _LDict()
        out.line, out.file = over.line, over.file
        out.key_lines = {}
        for key, value in base.items():
            out[key] = value
            out.key_lines[key] = base.key_lines.get(key, base.line)
        for key, value in over.items():
            out[key] = _merge(base[key], value) if key in base else value
            out.key_lines[key] = over.key_lines.get(key, over.line)
        # A key taken from the parent keeps the parent's file for error reports.
        out.key_files = {k: (over.file if k in over else base.file) for k in out}  # type: ignore[attr-defined]
        return out
    return over


# --------------------------------------------------------------------------- validation helpers

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class _Ctx:
    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, node: Any, key: str | None, message: str) -> DefinitionError:
        file, line = self.file, None
        if isinstance(node, _LDict):
            file = node.file or file
            files = getattr(node, "key_files", {})
            if key is not None and key in files:
                file = files[key]
            line = node.key_lines.get(key, node.line) if key is not None else node.line
        elif isinstance(node, _LList):
            file, line = node.file or file, node.line
        return DefinitionError(file, line, message)

    def keys(self, node: Any, where: str, allowed: Iterable[str], required: Iterable[str] = ()) -> _LDict:
        if not isinstance(node, _LDict):
            raise self.fail(node, None, f"{where} must be a mapping")
        allowed_set = set(allowed)
        for key in node:
            if key not in allowed_set:
                raise self.fail(
                    node,
                    key,
                    f"unknown key {key!r} in {where}: expected one of {', '.join(sorted(allowed_set))}",
                )
        for key in required:
            if key not in node:
                raise self.fail(node, None, f"{where} is missing required key {key!r}")
        return node

    def string(self, node: _LDict, key: str, where: str) -> str:
        value = node[key]
        if not isinstance(value, str) or not value:
            raise self.fail(node, key, f"{where}.{key} must be a non-empty string, not {value!r}")
        return value

    def names(self, node: _LDict, key: str, where: str) -> tuple[str, ...]:
        value = node[key]
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(node, key, f"{where}.{key} must be a list of names")
        return tuple(value)

    def duration(self, node: _LDict, key: str, where: str) -> float:
        value = node[key]
        if isinstance(value, bool):
            value = None
        if isinstance(value, int | float) and value >= 0:
            return float(value)
        match = _DURATION.match(value) if isinstance(value, str) else None
        if not match:
            raise self.fail(
                node,
                key,
                f"{where}.{key}: {value!r} is not a duration: use seconds or e.g. 500ms, 30s, 5m, 2h, 7d",
            )
        return float(match.group(1)) * _UNITS[match.group(2)]

    def number(self, node: _LDict, key: str, where: str) -> float:
        value = node[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(node, key, f"{where}.{key} must be a number, not {value!r}")
        return float(value)


_TOP_KEYS = (
    "name",
    "extends",
    "abstract",
    "initial",
    "final",
    "params",
    "skip",
    "states",
    "transitions",
    "exclusion",
    "retry",
)
_STATE_KEYS = ("step", "retry", "wait", "gate", "submit")
_RETRY_KEYS = ("attempts", "initial", "backoff", "cap", "jitter")


def _retry(ctx: _Ctx, node: Any, where: str, default: RetryPolicy) -> RetryPolicy:
    node = ctx.keys(node, where, _RETRY_KEYS)
    attempts = default.attempts
    if "attempts" in node:
        value = node["attempts"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ctx.fail(node, "attempts", f"{where}.attempts must be an integer >= 1, not {value!r}")
        attempts = value
    initial = ctx.duration(node, "initial", where) if "initial" in node else default.initial
    cap = ctx.duration(node, "cap", where) if "cap" in node else default.cap
    backoff = ctx.number(node, "backoff", where) if "backoff" in node else default.backoff
    jitter = ctx.number(node, "jitter", where) if "jitter" in node else default.jitter
    if backoff < 1:
        raise ctx.fail(node, "backoff", f"{where}.backoff must be >= 1 (1 = constant delay), not {backoff}")
    if not 0 <= jitter <= 1:
        raise ctx.fail(node, "jitter", f"{where}.jitter must be between 0 and 1, not {jitter}")
    if cap < initial:
        raise ctx.fail(
            node,
            "cap" if "cap" in node else None,
            f"{where}.cap ({cap}s) is below initial ({initial}s): raise cap",
        )
    return RetryPolicy(attempts, initial, backoff, cap, jitter)


def _build(raw: _LDict, name: str, registry: Registry) -> Definition:
    file = raw.file
    ctx = _Ctx(file)
    ctx.keys(raw, "the definition", _TOP_KEYS)
    abstract = bool(raw.get("abstract", False))

    default_retry = _retry(ctx, raw["retry"], "retry", RetryPolicy()) if "retry" in raw else RetryPolicy()
    raw_states = raw.get("states")
    if not isinstance(raw_states, _LDict) or not raw_states:
        raise ctx.fail(
            raw, "states" if "states" in raw else None, "a definition needs a non-empty 'states' mapping"
        )
    for required in ("initial", "final", "transitions"):
        if required not in raw:
            raise ctx.fail(raw, None, f"the definition is missing required key {required!r}")

    skip = ctx.names(raw, "skip", "definition") if "skip" in raw else ()
    finals = ctx.names(raw, "final", "definition")
    if not finals:
        raise ctx.fail(raw, "final", "no final state: list at least one state under 'final'")

    declared = set(raw_states) | {ABORTED}
    for held in HELD_STATES:
        if held in raw_states:
            raise ctx.fail(
                raw_states, held, f"state {held!r} is implicit in every definition: rename this state"
            )

    def known(state: str, node: _LDict, key: str, what: str) -> str:
        if state not in declared:
            raise ctx.fail(node, key, f"unknown state {state!r} in {what}: declare it under 'states'")
        return state

    initial = known(ctx.string(raw, "initial", "definition"), raw, "initial", "initial")
    for state in finals:
        known(state, raw, "final", "final")
    for state in skip:
        known(state, raw, "skip", "skip")
        if state == initial or state in finals:
            raise ctx.fail(
                raw, "skip", f"state {state!r} cannot be skipped: it is the initial or a final state"
            )

    states: dict[str, StateDef] = {}
    for sname, snode in raw_states.items():
        where = f"states.{sname}"
        snode = ctx.keys(snode if snode is not None else _LDict(), where, _STATE_KEYS)
        line = raw_states.key_lines.get(sname, raw_states.line)
        step = ctx.string(snode, "step", where) if "step" in snode else None
        if step is not None and step not in registry.steps and not abstract:
            raise ctx.fail(snode, "step", f"unknown step {step!r} in {where}: register it with Registry.step")
        retry = (
            _retry(ctx, snode["retry"], f"{where}.retry", default_retry)
            if "retry" in snode
            else default_retry
        )
        wait = None
        if "wait" in snode:
            wnode = ctx.keys(snode["wait"], f"{where}.wait", ("poll", "timeout", "on_timeout"))
            poll = ctx.duration(wnode, "poll", f"{where}.wait") if "poll" in wnode else DEFAULT_POLL
            if poll <= 0:
                raise ctx.fail(wnode, "poll", f"{where}.wait.poll must be above 0")
            timeout = ctx.duration(wnode, "timeout", f"{where}.wait") if "timeout" in wnode else None
            on_timeout = (
                ctx.string(wnode, "on_timeout", f"{where}.wait") if "on_timeout" in wnode else "paused"
            )
            if on_timeout not in HELD_STATES:
                known(on_timeout, wnode, "on_timeout", f"{where}.wait.on_timeout")
            wait = WaitSpec(poll, timeout, on_timeout)
        gate = None
        if "gate" in snode:
            gate = ctx.string(snode, "gate", where)
        validator = None
        if "submit" in snode:
            vnode = ctx.keys(snode["submit"], f"{where}.submit", ("validator",), ("validator",))
            validator = ctx.string(vnode, "validator", f"{where}.submit")
            if validator not in registry.validators and not abstract:
                raise ctx.fail(
                    vnode,
                    "validator",
                    f"unknown validator {validator!r} in {where}: register it with Registry.validator",
                )
        is_final = sname in finals
        if not is_final and step is None and gate is None and sname not in skip:
            raise ctx.fail(
                raw_states, sname, f"state {sname!r} has neither a step nor a gate: give it one of them"
            )
        states[sname] = StateDef(sname, line, step, retry, wait, gate, validator, is_final)
    if ABORTED not in states:
        states[ABORTED] = StateDef(ABORTED, 0, final=True)
    if ABORTED not in finals:
        finals = (*finals, ABORTED)

    raw_transitions = raw["transitions"]
    if not isinstance(raw_transitions, _LList):
        raise ctx.fail(raw, "transitions", "'transitions' must be a list of {trigger, source, dest}")
    transitions: list[TransitionDef] = []
    for tnode in raw_transitions:
        tnode = ctx.keys(
            tnode, "a transition", ("trigger", "source", "dest", "guards"), ("trigger", "source", "dest")
        )
        trigger = ctx.string(tnode, "trigger", "transition")
        source = known(ctx.string(tnode, "source", "transition"), tnode, "source", "a transition's source")
        dest = known(ctx.string(tnode, "dest", "transition"), tnode, "dest", "a transition's dest")
        guards = ctx.names(tnode, "guards", "transition") if "guards" in tnode else ()
        for guard in guards:
            if guard not in registry.guards and not abstract:
                raise ctx.fail(tnode, "guards", f"unknown guard {guard!r}: register it with Registry.guard")
        if source in finals:
            raise ctx.fail(
                tnode, "source", f"transition leaves final state {source!r}: final states have no way out"
            )
        transitions.append(TransitionDef(trigger, source, dest, guards, tnode.line))

    transitions = _apply_skip(ctx, raw, transitions, skip)
    for sname in skip:
        states.pop(sname, None)

    exclusion: list[ExclusionDef] = []
    raw_excl = raw.get("exclusion", _LList())
    if not isinstance(raw_excl, list):
        raise ctx.fail(raw, "exclusion", "'exclusion' must be a list of {group, from, until}")
    for enode in raw_excl:
        enode = ctx.keys(enode, "an exclusion", ("group", "from", "until"), ("group", "from", "until"))
        group = ctx.string(enode, "group", "exclusion")
        start = known(ctx.string(enode, "from", "exclusion"), enode, "from", "exclusion.from")
        until = known(ctx.string(enode, "until", "exclusion"), enode, "until", "exclusion.until")
        if start in skip or until in skip:
            raise ctx.fail(enode, "from", f"exclusion {group!r} names a skipped state")
        exclusion.append(ExclusionDef(group, start, until, _section(transitions, start, until, set(finals))))

    params = raw.get("params", _LDict())
    if not isinstance(params, dict):
        raise ctx.fail(raw, "params", "'params' must be a mapping")

    defn = Definition(
        name=name,
        file=file,
        initial=initial,
        final=tuple(f for f in finals if f not in skip),
        states=MappingProxyType(states),
        transitions=tuple(transitions),
        params=MappingProxyType(_plain(params)),
        exclusion=tuple(exclusion),
        skip=tuple(skip),
        abstract=abstract,
    )
    _check_graph(ctx, raw, raw_states, defn)
    return defn


def _apply_skip(
    ctx: _Ctx, raw: _LDict, transitions: list[TransitionDef], skip: tuple[str, ...]
) -> list[TransitionDef]:
    if not skip:
        return transitions

    def resolve(state: str, seen: tuple[str, ...]) -> str:
        if state not in skip:
            return state
        if state in seen:
            raise ctx.fail(raw, "skip", f"skipped states {' -> '.join(seen)} lead only to each other")
        onward = [t for t in transitions if t.source == state and t.trigger == "next"]
        if not onward:
            raise ctx.fail(raw, "skip", f"skipped state {state!r} has no 'next' transition to redirect to")
        return resolve(onward[0].dest, (*seen, state))

    out: list[TransitionDef] = []
    for t in transitions:
        if t.source in skip:
            continue
        out.append(TransitionDef(t.trigger, t.source, resolve(t.dest, ()), t.guards, t.line))
    return out


def _section(transitions: list[TransitionDef], start: str, until: str, finals: set[str]) -> frozenset[str]:
    inside = {start}
    todo = [start]
    while todo:
        state = todo.pop()
        for t in transitions:
            if t.source == state and t.dest not in inside and t.dest != until and t.dest not in finals:
                inside.add(t.dest)
                todo.append(t.dest)
    return frozenset(inside)


def _check_graph(ctx: _Ctx, raw: _LDict, raw_states: _LDict, defn: Definition) -> None:
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
            raise ctx.fail(
                raw_states,
                sname,
                f"state {sname!r} is unreachable from {defn.initial!r}: add a transition into it",
            )

    for s in defn.states.values():
        if not s.final and not edges[s.name]:
            raise ctx.fail(
                raw_states, s.name, f"state {s.name!r} is not final and has no way out: add a transition"
            )

    for component in _cycles(edges):
        if not any(defn.states[s].waits for s in component):
            loop = " -> ".join(sorted(component))
            first = min(component, key=lambda s: defn.states[s].line)
            raise ctx.fail(
                raw_states,
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


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------- public entry points


def load_definitions(folder: Path, registry: Registry) -> dict[str, Definition]:
    """Load every ``*.yaml`` in ``folder``; return the runnable (non-abstract) definitions by name."""
    raws: dict[str, _LDict] = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        raw = _parse(path)
        name = raw.get("name", path.stem)
        if not isinstance(name, str) or not name:
            raise _Ctx(str(path)).fail(raw, "name", "name must be a non-empty string")
        if name in raws:
            raise _Ctx(str(path)).fail(
                raw, "name", f"definition {name!r} is also defined in {raws[name].file}"
            )
        raws[name] = raw

    resolved: dict[str, _LDict] = {}

    def resolve(name: str, chain: tuple[str, ...]) -> _LDict:
        if name in resolved:
            return resolved[name]
        raw = raws[name]
        parent = raw.get("extends")
        if parent is None:
            merged = raw
        else:
            ctx = _Ctx(raw.file)
            if not isinstance(parent, str) or parent not in raws:
                raise ctx.fail(raw, "extends", f"extends names unknown definition {parent!r}")
            if parent in chain:
                raise ctx.fail(raw, "extends", f"extends forms a cycle: {' -> '.join((*chain, parent))}")
            base = resolve(parent, (*chain, parent))
            merged = _merge(base, raw)
            merged.pop("abstract", None)
            if "abstract" in raw:
                merged["abstract"] = raw["abstract"]
            merged.pop("extends", None)
            merged.file = raw.file
        resolved[name] = merged
        return merged

    out: dict[str, Definition] = {}
    for name in raws:
        merged = resolve(name, (name,))
        # An abstract definition is only a shape: it is validated as part of each child.
        if not merged.get("abstract", False):
            out[name] = _build(merged, name, registry)
    return out


def human_duration(seconds: float) -> str:
    """``2592000`` -> ``30d``, ``5400`` -> ``1h30m``, ``0.5`` -> ``500ms``, ``1.5`` -> ``1.5s``."""
    millis = round(seconds * 1000)
    if millis < 1000:
        return f"{millis}ms"
    whole, frac = divmod(millis, 1000)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    if whole or frac:
        parts.append(f"{whole}.{frac:03d}".rstrip("0").rstrip(".") + "s")
    return "".join(parts)


# Words the Mermaid state-diagram lexer takes as keywords wherever an id could stand.
_MERMAID_WORDS = frozenset(
    {
        "default",
        "end",
        "note",
        "state",
        "class",
        "classdef",
        "direction",
        "scale",
        "hide",
        "style",
        "click",
        "acctitle",
        "accdescr",
        "statediagram",
        "statediagram-v2",
    }
)
_MERMAID_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _mermaid_text(text: str) -> str:
    """Text for a label or a note: the lexer ends one at ``:``, ``;`` or a line break, and notes
    are HTML, so those characters are replaced by look-alikes."""
    for bad, good in (
        (":", "\u2236"),
        (";", ","),
        ("\n", " "),
        ("\r", " "),
        ("<", "\u2039"),
        (">", "\u203a"),
        ("#", "\u266f"),
        ("%%", "%"),
    ):
        text = text.replace(bad, good)
    return text.strip() or "-"


def to_mermaid(defn: Definition) -> str:
    """The definition as a Mermaid ``stateDiagram-v2``. States whose names the Mermaid lexer would
    not take as ids (hyphens, spaces, keywords such as ``end``) are declared under a safe alias
    with their name as the label."""
    ids: dict[str, str] = {}
    aliases: list[str] = []
    for number, name in enumerate(defn.states):
        if _MERMAID_ID.fullmatch(name) and name.lower() not in _MERMAID_WORDS:
            ids[name] = name
        else:
            ids[name] = f"state_{number}"
            label = name.replace('"', "'")
            aliases.append(f'    state "{label}" as {ids[name]}')

    def sid(name: str) -> str:
        return ids.get(name) or name

    lines = ["stateDiagram-v2", *aliases, f"    [*] --> {sid(defn.initial)}"]
    for t in defn.transitions:
        label = t.trigger + (f" [{', '.join(t.guards)}]" if t.guards else "")
        lines.append(f"    {sid(t.source)} --> {sid(t.dest)} : {_mermaid_text(label)}")
    for s in defn.states.values():
        if s.wait and s.wait.on_timeout not in HELD_STATES:
            lines.append(f"    {sid(s.name)} --> {sid(s.wait.on_timeout)} : timeout")
    for f in defn.final:
        if f in defn.states and (f != ABORTED or any(t.dest == ABORTED for t in defn.transitions)):
            lines.append(f"    {sid(f)} --> [*]")
    for s in defn.states.values():
        notes = []
        if s.step:
            notes.append(f"step {s.step}")
        if s.gate:
            notes.append(f"gate {s.gate}")
        if s.wait:
            timeout = (
                f", timeout {human_duration(s.wait.timeout)} then {s.wait.on_timeout}"
                if s.wait.timeout
                else ""
            )
            notes.append(f"wait poll {human_duration(s.wait.poll)}{timeout}")
        if s.submit_validator:
            notes.append(f"submit {s.submit_validator}")
        if notes:
            text = "<br/>".join(_mermaid_text(n) for n in notes)
            lines.append(f"    note right of {sid(s.name)} : {text}")
    for e in defn.exclusion:
        lines.append(f"    %% exclusion {_mermaid_text(e.group)}: {e.from_state} .. {e.until}")
    return "\n".join(lines) + "\n"
