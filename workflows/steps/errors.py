"""How adapter errors count for the engine's retry policy."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import cast

from adapters.ca.port import CaMisconfigured, CaRejected, CaUnreachable
from adapters.cucm.port import CucmError, CucmPort, CucmRejected, CucmUnreachable
from engine.api import Outcome, PermanentError, StepContext, TransientError

TOMCAT_POLL = 15.0
"""Seconds between looks at a node whose Cisco Tomcat is restarting (CUCM time)."""


def tomcat_restarting(ctx: StepContext, error: CucmUnreachable) -> Outcome | None:
    """A durable wait when ``error`` came from a node whose Cisco Tomcat is stopping or starting: its
    APIs are down because Tomcat is restarting (another run's restart, or an operator's), which is
    neither a failure nor a retry. The platform CLI (SSH) stays up and tells."""
    if error.node is None:
        return None
    cucm = cast(CucmPort, getattr(ctx.deps, "cucm", None))
    try:
        restarting = cucm.tomcat_restarting(error.node)
    except CucmError:
        return None
    if not restarting:
        return None
    return Outcome.wait(
        TOMCAT_POLL,
        f"Cisco Tomcat is restarting on {error.node}: its certmgr, AXL, RisPort70 and "
        "ControlCenterServices are down until it runs again; waiting (not a failure)",
    )


def classified(step: Callable[[StepContext], Outcome]) -> Callable[[StepContext], Outcome]:
    """CUCM or the CA refusing, bad credentials, an unknown host key or certificate: permanent
    (retrying cannot help, an operator must act). Unreachable or throttled: transient, unless the
    node's Tomcat is restarting: then a wait."""

    @functools.wraps(step)
    def run(ctx: StepContext) -> Outcome:
        try:
            return step(ctx)
        except CucmUnreachable as exc:
            waiting = tomcat_restarting(ctx, exc)
            if waiting is not None:
                return waiting
            raise TransientError(str(exc)) from exc
        except CaUnreachable as exc:
            raise TransientError(str(exc)) from exc
        except CucmRejected as exc:
            raise PermanentError(
                f"{exc} (CUCM said: {exc.cucm_message})" if exc.cucm_message not in str(exc) else str(exc)
            ) from exc
        except (CucmError, CaRejected, CaMisconfigured) as exc:
            raise PermanentError(str(exc)) from exc

    return run
