"""Every ``*.yaml`` in a folder loaded, its ``extends`` resolved, and each runnable one validated."""

from __future__ import annotations

from pathlib import Path

from engine.api import Registry
from engine.definition.model import Definition
from engine.definition.validator import build
from engine.definition.yamlfile import LDict, merge, parse, refuse


def load_definitions(folder: Path, registry: Registry) -> dict[str, Definition]:
    """Load every ``*.yaml`` in ``folder``; return the runnable (non-abstract) definitions by name."""
    raws: dict[str, LDict] = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        raw = parse(path)
        name = raw.get("name", path.stem)
        if not isinstance(name, str) or not name:
            raise refuse(raw, "name", "name must be a non-empty string")
        if name in raws:
            raise refuse(raw, "name", f"definition {name!r} is also defined in {raws[name].file}")
        raws[name] = raw

    resolved: dict[str, LDict] = {}

    def resolve(name: str, chain: tuple[str, ...]) -> LDict:
        if name in resolved:
            return resolved[name]
        raw = raws[name]
        parent = raw.get("extends")
        if parent is None:
            merged = raw
        else:
            if not isinstance(parent, str) or parent not in raws:
                raise refuse(raw, "extends", f"extends names unknown definition {parent!r}")
            if parent in chain:
                cycle = " -> ".join((*chain, parent))
                raise refuse(raw, "extends", f"extends forms a cycle: {cycle}")
            base = resolve(parent, (*chain, parent))
            merged = merge(base, raw)
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
        # An abstract definition is only a shape: it is validated as part of each child. Only
        # ``true`` makes one abstract; any other value is validated, and refused as not a boolean.
        if merged.get("abstract") is not True:
            out[name] = build(merged, name, registry)
    return out
