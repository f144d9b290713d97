"""A merged definition document checked and built into a :class:`Definition`.

Every refusal listed in ``workflows/README.md`` is made here or in :mod:`engine.definition.graph`,
as a :class:`DefinitionError` naming the file, the line and the problem.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, cast

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
from engine.definition.yamlfile import LDict, LList, plain, refuse
from engine.schema import BOOLEAN, DURATION, LIST, MAPPING, NAMES, NUMBER, TEXT, Schema


class _Doc:
    """One merged document: its nodes checked against their schemas, refusals at their file and line."""

    def __init__(self, file: str) -> None:
        self.file = file

    def check(self, node: Any, schema: Schema, path: str, at: tuple[str, int] | None = None) -> LDict:
        # Every mapping in a parsed document is an LDict, so a checked one is too.
        return cast(LDict, schema.check(node, file=self.file, path=path, error=DefinitionError, at=at))

    def fail(self, node: Any, key: str | None, message: str) -> DefinitionError:
        if isinstance(node, LDict | LList):
            return refuse(node, key, message, self.file)
        return DefinitionError(self.file, "", message)

    def duration(self, node: LDict, key: str, where: str) -> float:
        try:
            return parse_duration(node[key])
        except ValueError as exc:
            raise self.fail(node, key, f"{where}.{key}: {exc}") from None


_TOP = Schema(
    {
        "name": TEXT,
        "extends": TEXT,
        "abstract": BOOLEAN,
        "initial": TEXT,
        "final": NAMES,
        "params": MAPPING,
        "skip": NAMES,
        "states": MAPPING,
        "transitions": LIST,
        "exclusion": LIST,
        "retry": MAPPING,
    },
    required=("states", "initial", "final", "transitions"),
)
_STATE = Schema({"step": TEXT, "retry": MAPPING, "wait": MAPPING, "gate": TEXT, "submit": MAPPING})
# attempts is checked as a number here and as a whole number >= 1 below, in one message.
_RETRY = Schema(
    {"attempts": NUMBER, "initial": DURATION, "backoff": NUMBER, "cap": DURATION, "jitter": NUMBER}
)
_WAIT = Schema({"poll": DURATION, "timeout": DURATION, "on_timeout": TEXT})
_SUBMIT = Schema({"validator": TEXT}, required=("validator",))
_TRANSITION = Schema(
    {"trigger": TEXT, "source": TEXT, "dest": TEXT, "guards": NAMES}, required=("trigger", "source", "dest")
)
_EXCLUSION = Schema({"group": TEXT, "from": TEXT, "until": TEXT}, required=("group", "from", "until"))


def _names(value: str | list[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _retry(doc: _Doc, node: Any, where: str, default: RetryPolicy) -> RetryPolicy:
    node = doc.check(node, _RETRY, where)
    attempts = default.attempts
    if "attempts" in node:
        value = node["attempts"]
        if not isinstance(value, int) or value < 1:
            raise doc.fail(node, "attempts", f"{where}.attempts must be an integer >= 1, not {value!r}")
        attempts = value
    initial = doc.duration(node, "initial", where) if "initial" in node else default.initial
    cap = doc.duration(node, "cap", where) if "cap" in node else default.cap
    backoff = float(node.get("backoff", default.backoff))
    jitter = float(node.get("jitter", default.jitter))
    if backoff < 1:
        raise doc.fail(node, "backoff", f"{where}.backoff must be >= 1 (1 = constant delay), not {backoff}")
    if not 0 <= jitter <= 1:
        raise doc.fail(node, "jitter", f"{where}.jitter must be between 0 and 1, not {jitter}")
    if cap < initial:
        raise doc.fail(
            node,
            "cap" if "cap" in node else None,
            f"{where}.cap ({cap}s) is below initial ({initial}s): raise cap",
        )
    return RetryPolicy(attempts, initial, backoff, cap, jitter)


def build(raw: LDict, name: str, registry: Registry) -> Definition:
    """The definition ``name`` from its merged document, or the first :class:`DefinitionError`."""
    file = raw.file
    doc = _Doc(file)
    doc.check(raw, _TOP, "")
    abstract = raw.get("abstract", False)

    default_retry = _retry(doc, raw["retry"], "retry", RetryPolicy()) if "retry" in raw else RetryPolicy()
    raw_states: LDict = raw["states"]
    if not raw_states:
        raise doc.fail(raw, "states", "a definition needs a non-empty 'states' mapping")

    skip = _names(raw["skip"]) if "skip" in raw else ()
    finals = _names(raw["final"])
    if not finals:
        raise doc.fail(raw, "final", "no final state: list at least one state under 'final'")

    declared = set(raw_states) | {ABORTED}
    for held in HELD_STATES:
        if held in raw_states:
            raise doc.fail(
                raw_states, held, f"state {held!r} is implicit in every definition: rename this state"
            )

    def known(state: str, node: LDict, key: str, what: str) -> str:
        if state not in declared:
            raise doc.fail(node, key, f"unknown state {state!r} in {what}: declare it under 'states'")
        return state

    initial = known(raw["initial"], raw, "initial", "initial")
    for state in finals:
        known(state, raw, "final", "final")
    for state in skip:
        known(state, raw, "skip", "skip")
        if state == initial or state in finals:
            raise doc.fail(
                raw, "skip", f"state {state!r} cannot be skipped: it is the initial or a final state"
            )

    states: dict[str, StateDef] = {}
    for sname, snode in raw_states.items():
        where = f"states.{sname}"
        at = raw_states.locate(sname)
        snode = doc.check(snode if snode is not None else LDict(), _STATE, where, at)
        line = at[1]
        step: str | None = snode.get("step")
        if step is not None and step not in registry.steps and not abstract:
            raise doc.fail(snode, "step", f"unknown step {step!r} in {where}: register it with Registry.step")
        retry = (
            _retry(doc, snode["retry"], f"{where}.retry", default_retry)
            if "retry" in snode
            else default_retry
        )
        wait = None
        if "wait" in snode:
            wnode = doc.check(snode["wait"], _WAIT, f"{where}.wait")
            poll = doc.duration(wnode, "poll", f"{where}.wait") if "poll" in wnode else DEFAULT_POLL
            if poll <= 0:
                raise doc.fail(wnode, "poll", f"{where}.wait.poll must be above 0")
            timeout = doc.duration(wnode, "timeout", f"{where}.wait") if "timeout" in wnode else None
            on_timeout: str = wnode.get("on_timeout", "paused")
            if on_timeout not in HELD_STATES:
                known(on_timeout, wnode, "on_timeout", f"{where}.wait.on_timeout")
            wait = WaitSpec(poll, timeout, on_timeout)
        gate: str | None = snode.get("gate")
        validator = None
        if "submit" in snode:
            vnode = doc.check(snode["submit"], _SUBMIT, f"{where}.submit")
            validator = vnode["validator"]
            if validator not in registry.validators and not abstract:
                raise doc.fail(
                    vnode,
                    "validator",
                    f"unknown validator {validator!r} in {where}: register it with Registry.validator",
                )
        is_final = sname in finals
        if not is_final and step is None and gate is None and sname not in skip:
            raise doc.fail(
                raw_states, sname, f"state {sname!r} has neither a step nor a gate: give it one of them"
            )
        states[sname] = StateDef(sname, line, step, retry, wait, gate, validator, is_final)
    if ABORTED not in states:
        states[ABORTED] = StateDef(ABORTED, 0, final=True)
    if ABORTED not in finals:
        finals = (*finals, ABORTED)

    raw_transitions = raw["transitions"]
    transitions: list[TransitionDef] = []
    for i, tnode in enumerate(raw_transitions):
        tnode = doc.check(tnode, _TRANSITION, f"transitions[{i}]", _item(raw_transitions, i))
        trigger = tnode["trigger"]
        source = known(tnode["source"], tnode, "source", "a transition's source")
        dest = known(tnode["dest"], tnode, "dest", "a transition's dest")
        guards = _names(tnode["guards"]) if "guards" in tnode else ()
        for guard in guards:
            if guard not in registry.guards and not abstract:
                raise doc.fail(tnode, "guards", f"unknown guard {guard!r}: register it with Registry.guard")
        if source in finals:
            raise doc.fail(
                tnode, "source", f"transition leaves final state {source!r}: final states have no way out"
            )
        transitions.append(TransitionDef(trigger, source, dest, guards, tnode.line))

    transitions = _apply_skip(doc, raw, transitions, skip)
    for sname in skip:
        states.pop(sname, None)

    exclusion: list[ExclusionDef] = []
    raw_excl = raw.get("exclusion", LList())
    for i, enode in enumerate(raw_excl):
        enode = doc.check(enode, _EXCLUSION, f"exclusion[{i}]", _item(raw_excl, i))
        group = enode["group"]
        start = known(enode["from"], enode, "from", "exclusion.from")
        until = known(enode["until"], enode, "until", "exclusion.until")
        if start in skip or until in skip:
            raise doc.fail(enode, "from", f"exclusion {group!r} names a skipped state")
        exclusion.append(ExclusionDef(group, start, until, section(transitions, start, until, set(finals))))

    params = raw.get("params", LDict())

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


def _item(items: Any, index: int) -> tuple[str, int] | None:
    """Where item ``index`` of a parsed list was written, for an item that cannot say itself."""
    if isinstance(items, LList) and index < len(items.item_lines):
        return items.file, items.item_lines[index]
    return None


def _apply_skip(
    doc: _Doc, raw: LDict, transitions: list[TransitionDef], skip: tuple[str, ...]
) -> list[TransitionDef]:
    if not skip:
        return transitions

    def resolve(state: str, seen: tuple[str, ...]) -> str:
        if state not in skip:
            return state
        if state in seen:
            raise doc.fail(raw, "skip", f"skipped states {' -> '.join(seen)} lead only to each other")
        onward = [t for t in transitions if t.source == state and t.trigger == "next"]
        if not onward:
            raise doc.fail(raw, "skip", f"skipped state {state!r} has no 'next' transition to redirect to")
        return resolve(onward[0].dest, (*seen, state))

    out: list[TransitionDef] = []
    for t in transitions:
        if t.source in skip:
            continue
        out.append(TransitionDef(t.trigger, t.source, resolve(t.dest, ()), t.guards, t.line))
    return out
