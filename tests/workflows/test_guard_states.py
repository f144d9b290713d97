"""The guards' state names are checked against the loaded definitions at start-up."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.definition import DefinitionError, load_definitions
from workflows import guards
from workflows.registry import DEFINITIONS_DIR, build_registry, check_guard_states, load_checked_definitions


def test_the_shipped_guards_name_only_states_the_definitions_have() -> None:
    definitions = load_checked_definitions(build_registry())
    states = {s for d in definitions.values() for s in d.states}
    assert states >= guards.IN_FLIGHT and states >= guards.HELD - {"paused", "failed"}


def test_a_misspelt_state_is_an_error_at_load() -> None:
    definitions = load_definitions(DEFINITIONS_DIR, build_registry())
    named = {**guards.NAMED_STATES, "IN_FLIGHT": guards.IN_FLIGHT | {"restartd"}}
    with pytest.raises(DefinitionError, match=r"NAMED_STATES\['IN_FLIGHT'\]: names state\(s\) restartd"):
        check_guard_states(definitions, named)


def test_states_missing_from_every_loaded_definition_are_refused(tmp_path: Path) -> None:
    # tomcat alone skips the CTL and phone states that IN_FLIGHT names.
    for name in ("base.yaml", "tomcat.yaml"):
        shutil.copy(DEFINITIONS_DIR / name, tmp_path / name)
    with pytest.raises(DefinitionError, match="phones_reregistered") as caught:
        load_checked_definitions(build_registry(), tmp_path)
    assert "tomcat" in str(caught.value)


def test_the_command_line_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app import cli

    monkeypatch.setattr(guards, "NAMED_STATES", {"IN_FLIGHT": guards.IN_FLIGHT | {"uploded"}})
    assert cli.main(["graph", "tomcat"]) == 1
    err = capsys.readouterr().err
    assert "uploded" in err and "correct the name" in err
