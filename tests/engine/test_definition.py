"""Definition loading: every refusal names the file, the line and the problem."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from engine.definition import DefinitionError, human_duration, load_definitions, to_mermaid
from tests.engine.toy import registry

GOOD = """\
name: t
initial: one
final: [done]
states:
  one:
    step: check
  two:
    step: poll
    wait: {poll: 5s, timeout: 1h, on_timeout: paused}
  done: {}
transitions:
  - {trigger: next, source: one, dest: two}
  - {trigger: next, source: two, dest: done, guards: [allowed]}
"""


def _load(tmp_path: Path, text: str, name: str = "t.yaml", extra: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    (tmp_path / name).write_text(textwrap.dedent(text))
    for other, body in (extra or {}).items():
        (tmp_path / other).write_text(textwrap.dedent(body))
    return load_definitions(tmp_path, registry)


def _error(tmp_path: Path, text: str, **kw: dict[str, str]) -> DefinitionError:
    with pytest.raises(DefinitionError) as info:
        _load(tmp_path, text, **kw)  # type: ignore[arg-type]
    return info.value


def test_good_definition_loads_typed(tmp_path: Path) -> None:
    defs = _load(tmp_path, GOOD)
    t = defs["t"]
    assert t.initial == "one"
    assert "aborted" in t.final and "done" in t.final
    assert t.states["two"].wait is not None and t.states["two"].wait.poll == 5.0
    assert t.states["two"].wait.timeout == 3600.0
    assert t.find("two", "next")[0].guards == ("allowed",)
    with pytest.raises(AttributeError):
        t.initial = "two"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("old", "new", "line", "words"),
    [
        ("dest: two}", "dest: three}", 12, "unknown state 'three'"),
        ("initial: one", "initial: zero", 2, "unknown state 'zero' in initial"),
        ("final: [done]", "final: [done, gone]", 3, "unknown state 'gone' in final"),
        ("final: [done]", "final: []", 3, "no final state"),
        ("step: check", "step: chek", 6, "unknown step 'chek'"),
        ("guards: [allowed]", "guards: [alowed]", 13, "unknown guard 'alowed'"),
        ("    wait: {poll: 5s,", "    wiat: {poll: 5s,", 9, "unknown key 'wiat'"),
        ("on_timeout: paused}", "on_timeout: nowhere}", 9, "unknown state 'nowhere'"),
        ("poll: 5s", "poll: 5 fortnights", 9, "not a duration"),
        ("name: t", "name: t\nextends: nothing", 2, "unknown definition 'nothing'"),
        ("  done: {}", "  done: {}\n  orphan: {step: check}", 11, "'orphan' is unreachable"),
        (
            "  - {trigger: next, source: one, dest: two}",
            "  - {trigger: next, source: one, dest: two}\n  - {trigger: back, source: done, dest: one}",
            13,
            "final state 'done'",
        ),
    ],
)
def test_refusals_name_line_and_problem(tmp_path: Path, old: str, new: str, line: int, words: str) -> None:
    assert old in GOOD
    err = _error(tmp_path, GOOD.replace(old, new))
    assert words in str(err)
    assert err.file == str(tmp_path / "t.yaml")
    assert err.line == line, str(err)
    assert str(err).startswith(f"{tmp_path / 't.yaml'}:{line}: ")


def test_state_with_no_way_out(tmp_path: Path) -> None:
    text = GOOD.replace("  done: {}", "  done: {}\n  three: {step: check}") + (
        "  - {trigger: side, source: two, dest: three}\n"
    )
    err = _error(tmp_path, text)
    assert "state 'three' is not final and has no way out" in str(err)
    assert err.line == 11


def test_cycle_without_wait_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("    wait: {poll: 5s, timeout: 1h, on_timeout: paused}\n", "").replace(
        "  - {trigger: next, source: one, dest: two}",
        "  - {trigger: next, source: one, dest: two}\n  - {trigger: again, source: two, dest: one}",
    )
    err = _error(tmp_path, text)
    assert "cycle one -> two has no waiting state" in str(err)
    assert err.line == 5


def test_self_loop_without_wait_is_refused_and_with_wait_accepted(tmp_path: Path) -> None:
    loop = "  - {trigger: next, source: one, dest: two}\n  - {trigger: again, source: one, dest: one}"
    err = _error(tmp_path, GOOD.replace("  - {trigger: next, source: one, dest: two}", loop))
    assert "cycle one has no waiting state" in str(err)
    ok = GOOD.replace("  - {trigger: next, source: one, dest: two}", loop).replace(
        "    step: check\n", "    step: check\n    gate: look first\n", 1
    )
    assert "t" in _load(tmp_path, ok)


@pytest.mark.parametrize(
    ("retry", "words"),
    [
        ("{attempts: 0}", "attempts must be an integer >= 1"),
        ("{attempts: 2.5}", "attempts must be an integer >= 1"),
        ("{backoff: 0.5}", "backoff must be >= 1"),
        ("{jitter: 1.5}", "jitter must be between 0 and 1"),
        ("{jitter: -0.1}", "jitter must be between 0 and 1"),
        ("{initial: 10s, cap: 5s}", "cap (5.0s) is below initial (10.0s)"),
        ("{attempts: 3, tries: 4}", "unknown key 'tries'"),
    ],
)
def test_bad_retry_policy(tmp_path: Path, retry: str, words: str) -> None:
    err = _error(tmp_path, GOOD.replace("    step: check\n", f"    step: check\n    retry: {retry}\n", 1))
    assert words in str(err)
    assert err.line == 7


def test_top_level_retry_and_unknown_top_key(tmp_path: Path) -> None:
    err = _error(tmp_path, GOOD + "retry: {attempts: 0}\n")
    assert err.line == 14 and "retry.attempts" in str(err)
    err = _error(tmp_path, GOOD + "exclusions: []\n")
    assert err.line == 14 and "unknown key 'exclusions'" in str(err)


def test_unknown_validator_and_skip_and_exclusion_states(tmp_path: Path) -> None:
    err = _error(
        tmp_path, GOOD.replace("    step: poll\n", "    step: poll\n    submit: {validator: nope}\n")
    )
    assert "unknown validator 'nope'" in str(err) and err.line == 9
    err = _error(tmp_path, GOOD + "skip: [ghost]\n")
    assert "unknown state 'ghost' in skip" in str(err) and err.line == 14
    err = _error(tmp_path, GOOD + "exclusion:\n  - {group: g, from: one, until: ghost}\n")
    assert "unknown state 'ghost'" in str(err) and err.line == 15


def test_duplicate_key_and_bad_yaml(tmp_path: Path) -> None:
    err = _error(tmp_path, GOOD.replace("  done: {}", "  done: {}\n  one: {step: check}"))
    assert "key 'one' appears twice" in str(err) and err.line == 11
    err = _error(tmp_path, GOOD.replace("final: [done]", "final: [done"))
    assert "not valid YAML" in str(err)


def test_extends_merges_deeply_and_cycles_are_refused(tmp_path: Path) -> None:
    base = GOOD.replace("name: t", "name: base\nabstract: true") + "params: {a: 1, nested: {x: 1, y: 2}}\n"
    child = """\
    name: child
    extends: base
    params: {nested: {y: 3}}
    states:
      two:
        wait: {poll: 9s}
    """
    defs = _load(tmp_path, base, name="base.yaml", extra={"child.yaml": child})
    assert set(defs) == {"child"}
    c = defs["child"]
    assert c.params == {"a": 1, "nested": {"x": 1, "y": 3}}
    assert c.states["two"].step == "poll" and c.states["two"].wait is not None
    assert c.states["two"].wait.poll == 9.0

    err = _error(
        tmp_path,
        "name: a\nextends: b\n",
        name="a.yaml",
        extra={"b.yaml": "name: b\nextends: a\n", "base.yaml": "name: base\n", "child.yaml": "name: child\n"},
    )
    assert "extends forms a cycle" in str(err) and err.line == 2


def test_error_in_inherited_part_names_the_parent_file(tmp_path: Path) -> None:
    base = GOOD.replace("name: t", "name: base\nabstract: true").replace("step: check", "step: missing")
    with pytest.raises(DefinitionError) as info:
        _load(tmp_path, base, name="base.yaml", extra={"child.yaml": "name: child\nextends: base\n"})
    assert info.value.file == str(tmp_path / "base.yaml")
    assert "unknown step 'missing'" in str(info.value)


def test_skip_redirects_transitions(toy_defs) -> None:  # type: ignore[no-untyped-def]
    flow = toy_defs["flow"]
    assert "approval" not in flow.states
    assert flow.find("locked", "next")[0].dest == "finish"
    assert toy_defs["toy"].find("locked", "next")[0].dest == "approval"
    assert flow.states["locked"].retry.attempts == 4
    assert flow.states["locked"].retry.initial == 0.2


def test_mermaid_lists_every_transition(toy_defs) -> None:  # type: ignore[no-untyped-def]
    text = to_mermaid(toy_defs["toy"])
    assert text.startswith("stateDiagram-v2\n    [*] --> check\n")
    for t in toy_defs["toy"].transitions:
        assert f"{t.source} --> {t.dest} : {t.trigger}" in text
    assert "act --> waiting : next [allowed]" in text
    assert "note right of approval : gate Confirm the toy by hand, then approve." in text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (2_592_000, "30d"),
        (3600, "1h"),
        (5400, "1h30m"),
        (10, "10s"),
        (0.5, "500ms"),
        (1.5, "1.5s"),
        (90061, "1d1h1m1s"),
        (0, "0ms"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


# The Mermaid state-diagram lexer's rules for what this generator emits: an id is
# ``[^:\n\s\-\{]+`` and not a keyword, and a label or a note's text runs from ``:`` up to the next
# ``:``, ``;`` or line break, so neither may contain those.
_ID = r"(?:\[\*\]|[^:\s\-\{]+)"
_LINE = re.compile(
    rf"^    (?:{_ID} --> {_ID}(?: : [^:;]+)?"
    rf"|note right of [^:\s\-]+ : [^:;]+"
    r'|state "[^"\n]*" as [A-Za-z_][A-Za-z0-9_]*'
    r"|%%.*)$"
)
_WORDS = {"default", "end", "note", "state", "class", "classdef", "direction", "scale", "hide", "style"}


def test_mermaid_is_valid_state_diagram_syntax(tmp_path: Path) -> None:
    text = """\
        name: t
        initial: pre-check
        final: [end]
        states:
          pre-check:
            step: check
            gate: "Check: the CA; then <approve> #1"
          "wait here":
            step: poll
            wait: {poll: 30s, timeout: 30d, on_timeout: end}
          end: {}
        transitions:
          - {trigger: next, source: pre-check, dest: "wait here", guards: [allowed]}
          - {trigger: next, source: "wait here", dest: end}
        """
    defn = _load(tmp_path, text)["t"]
    out = to_mermaid(defn)
    lines = out.splitlines()
    assert lines[0] == "stateDiagram-v2"
    for line in lines[1:]:
        assert _LINE.match(line), line
        if " --> " in line:
            for side in line.split(" : ")[0].strip().split(" --> "):
                assert side.lower() not in _WORDS, line
    assert "e+" not in out and "2592000" not in out
    assert "timeout 30d then" in out and "poll 30s" in out
    assert 'state "pre-check" as ' in out and 'state "wait here" as ' in out and 'state "end" as ' in out
    assert "Check\u2236 the CA, then \u2039approve\u203a \u266f1" in out


@pytest.mark.parametrize(
    ("data", "line", "problem"),
    [
        (b"name: t\n\x80\n", 2, "not UTF-8 text (byte 0x80): save the file as UTF-8"),
        (b"name: t\ninitial: \x00\n", 2, "character #x0000 is not allowed"),
    ],
)
def test_unreadable_bytes_are_a_definition_error(
    tmp_path: Path, data: bytes, line: int, problem: str
) -> None:
    (tmp_path / "t.yaml").write_bytes(data)
    with pytest.raises(DefinitionError) as info:
        load_definitions(tmp_path, registry)
    assert info.value.line == line and problem in info.value.problem


def test_schema_refusals_name_the_key_path_and_the_fix(tmp_path: Path) -> None:
    err = _error(tmp_path, GOOD.replace("  - {trigger: next, source: one, dest: two}", "  - just a string"))
    assert err.line == 12 and err.key == "transitions[0]" and "must be a mapping" in err.problem
    err = _error(tmp_path, GOOD.replace("    wait: {poll: 5s,", "    wiat: {poll: 5s,"))
    assert err.key == "states.two.wiat" and err.fix.startswith("rename it to 'wait'")
    err = _error(tmp_path, GOOD.replace("initial: one\n", ""))
    assert err.line == 1 and "missing required key 'initial'" in str(err)


def test_abstract_must_be_a_boolean(tmp_path: Path) -> None:
    # A quoted "no" is truthy: read as a flag it would silently drop the definition.
    err = _error(tmp_path, GOOD + "abstract: 'no'\n")
    assert err.line == 14 and "abstract: must be true or false" in str(err)
