"""Workflow definitions: YAML files loaded and validated into frozen, typed objects.

The schema is described in ``workflows/README.md``. Every problem is reported as a
:class:`DefinitionError` naming the file, the line and what is wrong, at load time, so a typo never
silently changes how a renewal behaves.

* :mod:`~engine.definition.model`: the frozen dataclasses and :class:`DefinitionError`;
* :mod:`~engine.definition.yamlfile`: YAML read with the file and line of every node;
* :mod:`~engine.definition.loader`: a folder of files, ``extends`` resolved;
* :mod:`~engine.definition.validator` and :mod:`~engine.definition.graph`: every refusal;
* :mod:`~engine.definition.durations`: ``5m`` to seconds and back;
* :mod:`~engine.definition.mermaid`: a definition drawn as a state diagram.
"""

from engine.definition.durations import human_duration, parse_duration
from engine.definition.loader import load_definitions
from engine.definition.mermaid import to_mermaid
from engine.definition.model import ABORTED, Definition, DefinitionError, ExclusionDef

__all__ = [
    "ABORTED",
    "Definition",
    "DefinitionError",
    "ExclusionDef",
    "human_duration",
    "load_definitions",
    "parse_duration",
    "to_mermaid",
]
