"""Multi-server (SAN) certificates: one CSR on the scope's publisher naming every node, one CA
signature, one upload that CUCM distributes to the nodes the CSR named (CUCM reference part 2 §4).

The run still keeps its per-node tables (``csr``, ``issued``, ``uploaded``) with the same record
under every node, so the guards, restarts and verification read a multi-server run as any other.
"""

from __future__ import annotations

from engine.api import StepContext
from workflows.cert_types import MULTI_SERVER_TYPES
from workflows.context import view

from .common import targets, unit

MULTI_SERVER = "multi-server"


def multi_server(ctx: StepContext) -> bool:
    """Whether this run renews its type with one multi-server certificate (the configuration's
    ``distribution``, recorded with the run when it started)."""
    return view(ctx.context).get("distribution") == MULTI_SERVER and unit(ctx) in MULTI_SERVER_TYPES


def signer(ctx: StepContext) -> str:
    """Where the multi-server CSR is made and the certificate uploaded: the scope's publisher (the
    CUCM publisher; for the cup-xmpp types the IM&P publisher, the first IM&P node)."""
    return targets(ctx)[0]


def own_nodes(ctx: StepContext) -> list[str]:
    """The nodes whose CSR, signature and upload are their own: the signer alone when multi-server."""
    return [signer(ctx)] if multi_server(ctx) else targets(ctx)
