"""Fixtures for the engine tests: the toy definitions and engines on temporary state folders."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.definition import Definition, load_definitions
from engine.facade import Engine
from tests.engine.toy import DEFS, registry


@pytest.fixture(scope="session")
def toy_defs() -> dict[str, Definition]:
    return load_definitions(DEFS, registry)


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "journal.txt"


@pytest.fixture
def make_engine(tmp_path: Path, toy_defs: dict[str, Definition]) -> Iterator[Callable[..., Engine]]:
    engines: list[Engine] = []

    def make(**kwargs: Any) -> Engine:
        kwargs.setdefault("time_scale", 100.0)
        kwargs.setdefault("actor", "tester@host")
        engine = Engine(tmp_path / "state", toy_defs, registry, **kwargs)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()
