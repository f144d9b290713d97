"""A definition drawn as a Mermaid ``stateDiagram-v2``."""

from __future__ import annotations

import re

from engine.definition.durations import human_duration
from engine.definition.model import ABORTED, HELD_STATES, Definition

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
