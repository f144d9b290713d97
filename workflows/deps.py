"""What a certificate run needs from the outside world: the ports, never their implementations."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from adapters.ca.port import CaPort
from adapters.cucm.port import CucmPort
from workflows.windows import Windows


@dataclass
class RunDeps:
    """Handed to every step as ``ctx.deps`` by the composition root (:mod:`app.wiring`)."""

    cucm: CucmPort
    ca: CaPort
    risport_per_minute: float = 15.0
    """RisPort70's allowed rate; sweeps are spaced so that it is never exceeded."""
    risport_lag: float = 30.0
    """How far (CUCM seconds) RisPort70 may trail reality; nothing is concluded from a phone not
    having moved until that long after the action that should have moved it."""
    time_scale: float = 1.0
    """CUCM seconds per wall second (above 1 only against the simulator): the engine's clock is the
    wall clock, so a duration measured on it is multiplied by this to be compared with CUCM's."""
    phone_reset: str = "phones"
    """``pools``: reset phones by device pool (names for phones in none); ``phones``: each by name."""
    tls_anchors: frozenset[str] = frozenset()
    """SHA-256 of every certificate in the bundle the nodes' TLS is verified against (empty: not
    checked). A new certificate must chain to one of them, or the tool could not verify the node
    once it presents it."""
    tls_bundle: str = ""
    """Where that bundle is, for messages."""
    configured_version: str | None = None
    """The release the configuration names, if it does: a cluster reporting another is refused."""
    phone_interaction: str | None = None
    """``automatic``: CUCM resets phones itself when a CallManager, TVS or CAPF identity is
    uploaded (the 14+ enterprise parameter "Phone Interaction on Certificate Update");
    ``manual``: the tool resets them; ``None``: as the release does by default."""
    max_phones_missing: int = 0
    """Phones of the baseline that may stay unregistered before a run stops at a gate."""
    windows: Windows | None = None
    """The cluster's change windows and blackout dates; ``None``: the outage may start any time."""
    approval: bool = False
    """Whether an operator approves each run before its outage (``approve RUN``)."""
    clock: Callable[[], datetime] | None = None
    """The cluster's clock for the change windows; ``None``: the engine's (a time-scaled lab gives
    one running as fast as its cluster)."""
    restart_history: Callable[[], Mapping[str, float]] | None = None
    """``node|service`` -> seconds this cluster's last measured restart of it took (CUCM seconds),
    read from earlier runs when an outage is estimated."""
