"""The one schema check both loaders use: unknown, missing and mistyped keys, each with a fix."""

from __future__ import annotations

import pytest

from engine.schema import MAPPING, NAMES, NUMBER, TABLE, TEXT, Schema, SchemaError

SCHEMA = Schema({"name": TEXT, "size": NUMBER, "tags": NAMES, "extra": MAPPING}, required=("name",))


class _Lined(dict[str, object]):
    """A mapping that knows its keys' lines, as a parsed YAML document does."""

    def locate(self, key: str | None = None) -> tuple[str, int]:
        return "doc.yaml", {"name": 3, "size": 4, "sise": 5}.get(key or "", 2)


def _refusal(value: object, **kw: object) -> SchemaError:
    with pytest.raises(SchemaError) as info:
        SCHEMA.check(value, file="f.toml", path="top", **kw)  # type: ignore[arg-type]
    return info.value


def test_a_fitting_mapping_is_returned_as_is() -> None:
    value = {"name": "a", "size": 2.5, "tags": "one", "extra": {}}
    assert SCHEMA.check(value, file="f.toml", path="") is value


def test_unknown_key_names_the_path_and_the_closest_known_key() -> None:
    err = _refusal({"name": "a", "sise": 1})
    assert (err.file, err.key, err.line) == ("f.toml", "top.sise", None)
    assert err.problem == "unknown key 'sise'"
    assert err.fix == "rename it to 'size' or remove it; use one of: extra, name, size, tags"
    assert str(err) == f"f.toml: top.sise: unknown key 'sise'. Fix: {err.fix}"


def test_missing_key_is_reported_at_the_mapping_and_mistyped_at_the_key() -> None:
    missing = _refusal(_Lined(size=1))
    assert (missing.file, missing.key, missing.line) == ("doc.yaml", "top.name", 2)
    assert "missing required key 'name'" in str(missing) and "a non-empty string" in missing.fix
    mistyped = _refusal(_Lined(name="a", size=True))
    assert mistyped.line == 4 and mistyped.problem == "must be a number, not True"
    assert str(mistyped).startswith("doc.yaml:4: top.size: must be a number")


@pytest.mark.parametrize("value", [None, "text", [1], 3])
def test_a_value_that_is_no_mapping_is_reported_where_its_parent_says(value: object) -> None:
    err = _refusal(value, at=("parent.yaml", 7))
    assert (err.file, err.line, err.key) == ("parent.yaml", 7, "top")
    assert err.problem.startswith("must be a mapping, not ") and err.fix == "write it as a mapping"


def test_the_mapping_kind_uses_the_file_language_and_the_error_class_the_loader_gives() -> None:
    class LoaderError(SchemaError):
        pass

    with pytest.raises(LoaderError, match="must be a table"):
        Schema({}, kind=TABLE).check([], file="f.toml", path="ca", error=LoaderError)
