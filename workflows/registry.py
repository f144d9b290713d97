"""The one registry of the certificate workflows' steps, guards and validators."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from engine.api import Registry
from engine.definition import Definition, DefinitionError, load_definitions
from engine.definition.model import HELD_STATES
from workflows import guards
from workflows.cert_types import CERT_TYPES
from workflows.steps import (
    csr,
    ctl,
    drs,
    expiry,
    held,
    phones,
    prechecks,
    restart,
    signature,
    sso,
    upload,
    verify,
    window,
)

__all__ = [
    "CERT_TYPES",
    "DEFINITIONS_DIR",
    "build_registry",
    "check_guard_states",
    "load_checked_definitions",
]

DEFINITIONS_DIR = Path(__file__).resolve().parent


def build_registry() -> Registry:
    registry = Registry()
    for module in (
        expiry,
        prechecks,
        sso,
        csr,
        signature,
        upload,
        drs,
        ctl,
        restart,
        phones,
        verify,
        window,
        held,
    ):
        module.register(registry)
    guards.register(registry)
    return registry


def check_guard_states(
    definitions: Mapping[str, Definition],
    named: Mapping[str, frozenset[str]] | None = None,
) -> None:
    """Raise :class:`DefinitionError` when a guard names a state that no definition has
    (``named``: the sets to check, by default the guards' own).

    The guards compare peers' states with these names; one that matches no state would make a
    rule (one ITL signer at a time, one phone-impacting type at a time) silently never apply.
    """
    named = guards.NAMED_STATES if named is None else named
    known = {state for d in definitions.values() for state in d.states} | set(HELD_STATES)
    for set_name, states in named.items():
        unknown = sorted(states - known)
        if unknown:
            raise DefinitionError(
                Path(guards.__file__).name,
                f"NAMED_STATES[{set_name!r}]",
                f"names state(s) {', '.join(unknown)} that no loaded definition has "
                f"(definitions: {', '.join(sorted(definitions))})",
                "correct the name in the guards or in the definitions",
            )


def load_checked_definitions(registry: Registry, folder: Path = DEFINITIONS_DIR) -> dict[str, Definition]:
    """The definitions in ``folder``, loaded by the engine, with the guards' state names checked."""
    definitions = load_definitions(folder, registry)
    check_guard_states(definitions)
    return definitions
