"""What a certificate run needs from the outside world: the ports, never their implementations."""

from __future__ import annotations

from dataclasses import dataclass

from adapters.ca.port import CaPort
from adapters.cucm.port import CucmPort


@dataclass
class RunDeps:
    """Handed to every step as ``ctx.deps`` by the composition root (:mod:`workflows.wiring`)."""

    cucm: CucmPort
    ca: CaPort
    risport_per_minute: float = 15.0
    """RisPort70's allowed rate; sweeps are spaced so that it is never exceeded."""
