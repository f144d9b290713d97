"""What a certificate run needs from the outside world: the ports, never their implementations."""

from __future__ import annotations

from dataclasses import dataclass

from adapters.ca.port import CaPort
from adapters.cucm.port import CucmPort


@dataclass
class RunDeps:
    """Handed to every step as ``ctx.deps`` by the composition root (:mod:`app.wiring`)."""

    cucm: CucmPort
    ca: CaPort
    risport_per_minute: float = 15.0
    """RisPort70's allowed rate; sweeps are spaced so that it is never exceeded."""
    phone_reset: str = "phones"
    """``pools``: reset phones by device pool (names for phones in none); ``phones``: each by name."""
    tls_anchors: frozenset[str] = frozenset()
    """SHA-256 of every certificate in the bundle the nodes' TLS is verified against (empty: not
    checked). A new certificate must chain to one of them, or the tool could not verify the node
    once it presents it."""
    tls_bundle: str = ""
    """Where that bundle is, for messages."""
