"""A merged definition document checked and built into a :class:`Definition`.

Every refusal listed in ``workflows/README.md`` is made here or in :mod:`engine.definition.graph`,
as a :class:`DefinitionError` naming the file, the line and the problem.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

from engine.api import Registry
from engine.definition.durations import parse_duration
from engine.definition.graph import check_graph, section
from engine.definition.model import (
    ABORTED,
    DEFAULT_POLL,
    HELD_STATES,
    Definition,
    DefinitionError,
    ExclusionDef,
    RetryPolicy,
    StateDef,
    TransitionDef,
    WaitSpec,
)
from engine.definition.yamlfile import LDict, LList, plain


class Ctx:
    """Checks on one document's nodes; each refusal names the node's file and line."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, node: Any, key: str | None, message: str) -> DefinitionError:
        file, line = node.locate(key) if isinstance(node, LDict | LList) else ("", None)
        return DefinitionError(file or self.file, line, message)

    def keys(self, node: Any, where: str, allowed: Iterable[str], required: Iterable[str] = ()) -> LDict:
        if not isinstance(node, LDict):
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

    def string(self, node: LDict, key: str, where: str) -> str:
        value = node[key]
        if not isinstance(value, str) or not value:
            raise self.fail(node, key, f"{where}.{key} must be a non-empty string, not {value!r}")
        return value

    def names(self, node: LDict, key: str, where: str) -> tuple[str, ...]:
        value = node[key]
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(node, key, f"{where}.{key} must be a list of names")
        return tuple(value)

    def duration(self, node: LDict, key: str, where: str) -> float:
        try:
            return parse_duration(node[key])
        except ValueError as exc:
            raise self.fail(node, key, f"{where}.{key}: {exc}") from None

    def number(self, node: LDict, key: str, where: str) -> float:
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


def _retry(ctx: Ctx, node: Any, where: str, default: RetryPolicy) -> RetryPolicy:
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


def build(raw: LDict, name: str, registry: Registry) -> Definition:
    """The definition ``name`` from its merged document, or the first :class:`DefinitionError`."""
    file = raw.file
    ctx = Ctx(file)
    ctx.keys(raw, "the definition", _TOP_KEYS)
    abstract = bool(raw.get("abstract", False))

    default_retry = _retry(ctx, raw["retry"], "retry", RetryPolicy()) if "retry" in raw else RetryPolicy()
    raw_states = raw.get("states")
    if not isinstance(raw_states, LDict) or not raw_states:
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

    def known(state: str, node: LDict, key: str, what: str) -> str:
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
        snode = ctx.keys(snode if snode is not None else LDict(), where, _STATE_KEYS)
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
    if not isinstance(raw_transitions, LList):
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
    raw_excl = raw.get("exclusion", LList())
    if not isinstance(raw_excl, list):
        raise ctx.fail(raw, "exclusion", "'exclusion' must be a list of {group, from, until}")
    for enode in raw_excl:
        enode = ctx.keys(enode, "an exclusion", ("group", "from", "until"), ("group", "from", "until"))
        group = ctx.string(enode, "group", "exclusion")
        start = known(ctx.string(enode, "from", "exclusion"), enode, "from", "exclusion.from")
        until = known(ctx.string(enode, "until", "exclusion"), enode, "until", "exclusion.until")
        if start in skip or until in skip:
            raise ctx.fail(enode, "from", f"exclusion {group!r} names a skipped state")
        exclusion.append(ExclusionDef(group, start, until, section(transitions, start, until, set(finals))))

    params = raw.get("params", LDict())
    if not isinstance(params, dict):
        raise ctx.fail(raw, "params", "'params' must be a mapping")

    defn = Definition(
        name=name,
        file=file,
        initial=initial,
        final=tuple(f for f in finals if f not in skip),
        states=MappingProxyType(states),
        transitions=tuple(transitions),
        params=MappingProxyType(plain(params)),
        exclusion=tuple(exclusion),
        skip=tuple(skip),
        abstract=abstract,
    )
    check_graph(raw_states, defn)
    return defn


def _apply_skip(
    ctx: Ctx, raw: LDict, transitions: list[TransitionDef], skip: tuple[str, ...]
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
