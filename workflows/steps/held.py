"""window_before_restart and restarted, with what must still hold when their run moves on.

The window and the restarts are :mod:`.window`'s and :mod:`.restart`'s steps; these run them, then,
when they are ready to advance, read afresh what Cisco says must hold around the restarts: SAML SSO
off for tomcat right before its first restart (:func:`.sso.sso_before_restart`) and, for the
release table's ``drs_idle_for``, no DRS job before the first restart and once the restarts are done
(:mod:`.drs`). The guards on the way out judge those reads. Read last, so nothing lies between the
read and the guard but the transaction that moves the run.
"""

from __future__ import annotations

import dataclasses

from engine.api import Outcome, Registry, StepContext

from .drs import drs_concerned, drs_output
from .errors import classified
from .restart import restart_services
from .sso import sso_before_restart
from .window import await_window


def await_window_rechecked(ctx: StepContext) -> Outcome:
    outcome = await_window(ctx)
    if outcome.kind != "advance" or outcome.trigger != "next":
        return outcome
    output = dict(outcome.output)
    if ctx.params.get("requires_sso_off"):
        gate, read = sso_before_restart(ctx)
        if gate is not None:
            # Keep what the window step recorded (the window entered): approving re-runs both.
            return dataclasses.replace(gate, output={**output, **gate.output})
        output.update(read)
    if drs_concerned(ctx):
        output.update(drs_output(ctx))
    return dataclasses.replace(outcome, output=output)


def restart_services_rechecked(ctx: StepContext) -> Outcome:
    outcome = restart_services(ctx)
    if outcome.kind != "advance" or not drs_concerned(ctx):
        return outcome
    return dataclasses.replace(outcome, output={**outcome.output, **drs_output(ctx)})


def register(registry: Registry) -> None:
    registry.step("await_window_rechecked")(classified(await_window_rechecked))
    registry.step("restart_services_rechecked")(classified(restart_services_rechecked))
