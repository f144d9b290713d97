"""One check for a mapping read from a file: the keys it may hold, the type of each, the ones required.

The workflow definitions (YAML, which knows the line of every key) and the configuration (TOML,
whose parser gives no lines) both check their tables with :meth:`Schema.check`, so a typo, a missing
key and a value of the wrong type are refused the same way in both, before any value is used. What a
value means (a state that exists, a port in range, a duration that parses) stays with each loader.

A refusal is a :class:`SchemaError`, or the loader's own subclass of it::

    SchemaError          file, key path, line where known, problem, fix
    ├── engine.definition.DefinitionError
    └── workflows.config.ConfigError
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


class SchemaError(Exception):
    """A value read from ``file`` is wrong: ``key`` is its dotted path (empty for the whole file),
    ``line`` its line where the parser knows it, ``problem`` what is wrong and ``fix`` what to do."""

    def __init__(
        self, file: str | os.PathLike[str], key: str, problem: str, fix: str = "", *, line: int | None = None
    ) -> None:
        self.file = str(file)
        self.key = key
        self.line = line or None
        self.problem = problem
        self.fix = fix
        text = f"{self.file}:{self.line}" if self.line else self.file
        if key:
            text += f": {key}"
        text += f": {problem}"
        if fix:
            text += f". Fix: {fix}"
        super().__init__(text)


@dataclass(frozen=True)
class Kind:
    """A type a value must have: the test, and the words that name it to whoever edits the file."""

    words: str
    test: Callable[[Any], bool]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


ANY = Kind("any value", lambda value: True)
TEXT = Kind("a non-empty string", lambda value: isinstance(value, str) and bool(value))
NUMBER = Kind("a number", _number)
INTEGER = Kind("a whole number", lambda value: _number(value) and isinstance(value, int))
BOOLEAN = Kind("true or false", lambda value: isinstance(value, bool))
LIST = Kind("a list", lambda value: isinstance(value, list))
TEXTS = Kind("a non-empty list of strings", lambda value: _strings(value) and bool(value))
NAMES = Kind("a name or a list of names", lambda value: isinstance(value, str) or _strings(value))
DURATION = Kind(
    "a duration (seconds, or e.g. 30s, 5m, 2h, 7d)", lambda value: isinstance(value, str) or _number(value)
)
MAPPING = Kind("a mapping", lambda value: isinstance(value, Mapping))
TABLE = Kind("a table", lambda value: isinstance(value, Mapping))
"""TOML's word for a mapping."""


@runtime_checkable
class Located(Protocol):
    """A mapping that knows the file and line of each of its keys (``None``: of itself)."""

    def locate(self, key: str | None = None) -> tuple[str, int]: ...


@dataclass(frozen=True)
class Schema:
    """The keys a mapping may hold and the kind of each; ``required`` ones must be present.
    ``kind`` is what the mapping itself must be, in the words of its file's language. ``quote``
    false keeps a refused value out of the message (a table that may hold a secret)."""

    keys: Mapping[str, Kind]
    required: tuple[str, ...] = ()
    kind: Kind = MAPPING
    quote: bool = True

    def check(
        self,
        value: Any,
        *,
        file: str | os.PathLike[str],
        path: str,
        error: type[SchemaError] = SchemaError,
        at: tuple[str, int] | None = None,
    ) -> Mapping[str, Any]:
        """``value``, once it is a mapping whose keys are known, present when required and of their
        kind; else ``error`` for the first problem, in key order. ``path`` is the dotted path of
        ``value`` in its file; ``at`` the file and line of ``value`` when it cannot say itself."""

        def refuse(key: str | None, problem: str, fix: str, *, located: bool = True) -> SchemaError:
            where, line = at or (str(file), 0)
            if isinstance(value, Located):
                where, line = value.locate(key if located else None)
            full = path if key is None else f"{path}.{key}" if path else key
            return error(where or file, full, problem, fix, line=line)

        if not isinstance(value, Mapping) or not self.kind.test(value):
            raise refuse(
                None, f"must be {self.kind.words}, not {self.shown(value)}", f"write it as {self.kind.words}"
            )
        for key in value:
            if key not in self.keys:
                close = difflib.get_close_matches(str(key), list(self.keys), n=1)
                rename = f"rename it to {close[0]!r} or " if close else ""
                raise refuse(
                    str(key),
                    f"unknown key {key!r}",
                    f"{rename}remove it; use one of: {', '.join(sorted(self.keys))}",
                )
        for key in self.required:
            if key not in value:
                raise refuse(
                    key, f"missing required key {key!r}", f"add {key}, {self.keys[key].words}", located=False
                )
        for key, item in value.items():
            kind = self.keys[key]
            if not kind.test(item):
                raise refuse(
                    key, f"must be {kind.words}, not {self.shown(item)}", f"write it as {kind.words}"
                )
        return value

    def shown(self, value: Any) -> str:
        """``value`` as a refusal quotes it: its ``repr`` cut short so a mistake fits on one line,
        or only its type where values are not quoted."""
        if not self.quote:
            return f"a value of type {type(value).__name__}"
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
