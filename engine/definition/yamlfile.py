"""YAML read with the file and line of every mapping, list and key, so errors can point at them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from engine.definition.model import DefinitionError


class LDict(dict[str, Any]):
    """A YAML mapping that knows where it, and each of its keys, was written."""

    line: int = 0
    file: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.key_lines: dict[str, int] = {}
        # Set by a merge: a key taken from a parent keeps the parent's file for error reports.
        self.key_files: dict[str, str] = {}

    def locate(self, key: str | None = None) -> tuple[str, int]:
        """The file and line of ``key``, or of the mapping itself; ``""`` and 0 when built in code."""
        if key is None:
            return self.file, self.line
        return self.key_files.get(key, self.file), self.key_lines.get(key, self.line)


class LList(list[Any]):
    """A YAML list that knows where it, and each of its items, was written."""

    line: int = 0
    file: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.item_lines: list[int] = []

    def locate(self, key: str | None = None) -> tuple[str, int]:
        return self.file, self.line


class _Loader(yaml.SafeLoader):
    file_name = ""


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> Any:
    data = LDict()
    data.line = node.start_mark.line + 1
    data.file = loader.file_name
    yield data
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            raise DefinitionError(loader.file_name, "", f"key {key!r} must be a string", line=line)
        if key in data:
            raise DefinitionError(loader.file_name, "", f"key {key!r} appears twice: keep one", line=line)
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[key] = line


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> Any:
    data = LList()
    data.line = node.start_mark.line + 1
    data.file = loader.file_name
    data.item_lines = [item.start_mark.line + 1 for item in node.value]
    yield data
    data.extend(loader.construct_object(item, deep=True) for item in node.value)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def parse(path: Path) -> LDict:
    """One definition file; anything that is not a readable YAML mapping is a :class:`DefinitionError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DefinitionError(
            str(path),
            "",
            f"not UTF-8 text (byte {exc.object[exc.start]:#04x}): save the file as UTF-8",
            line=path.read_bytes()[: exc.start].count(b"\n") + 1,
        ) from None
    except OSError as exc:
        raise DefinitionError(str(path), "", f"cannot read the file: {exc.strerror}") from None
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:
        raise DefinitionError(
            str(path),
            "",
            f"not valid YAML: character #x{exc.character:04x} is not allowed; remove it",
            line=text[: exc.position].count("\n") + 1,
        ) from None
    loader.file_name = str(path)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise DefinitionError(str(path), "", f"not valid YAML: {exc.problem}", line=line) from None
    except yaml.YAMLError as exc:
        raise DefinitionError(str(path), "", f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    if not isinstance(data, LDict):
        raise DefinitionError(
            str(path), "", "a definition must be a YAML mapping (name: ..., states: ...)", line=1
        )
    return data


def merge(base: Any, over: Any) -> Any:
    """Deep merge: mappings merge key by key, anything else in ``over`` replaces ``base``."""
    if isinstance(base, LDict) and isinstance(over, LDict):
        out = LDict()
        out.line, out.file = over.line, over.file
        for key, value in base.items():
            out[key] = value
            out.key_lines[key] = base.key_lines.get(key, base.line)
        for key, value in over.items():
            out[key] = merge(base[key], value) if key in base else value
            out.key_lines[key] = over.key_lines.get(key, over.line)
        out.key_files = {k: (over.file if k in over else base.file) for k in out}
        return out
    return over


def plain(value: Any) -> Any:
    """``value`` with every :class:`LDict` and :class:`LList` turned back into a plain dict and list."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def refuse(node: LDict | LList, key: str | None, message: str, file: str = "") -> DefinitionError:
    """The error for ``key`` of ``node`` (``None``: the node itself), at its file and line;
    ``file`` stands in for a node built in code, which has none."""
    where, line = node.locate(key)
    return DefinitionError(where or file, "", message, line=line)
