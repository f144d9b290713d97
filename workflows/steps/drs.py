"""DRS: no backup or restore may meet a change of the certificate DRS depends on.

Which types that is, per release, is the release table's ``drs_idle_for`` (ipsec; from 14 also
tomcat and tomcat-ECDSA). The hold lasts from the identity upload until the restarts are verified:
``backup_idle`` reads it before the upload, ``window_before_restart`` before the first restart and
``restarted`` once the restarts are done, each recording ``drs_read`` for the state it was read in;
the guard ``no_drs_job`` on each way out judges that read, never an older one. While it refuses, the
engine runs the state's step again after its poll, so a job that ends lets the run through by itself.
"""

from __future__ import annotations

from typing import Any

from engine.api import Outcome, Registry, StepContext

from .common import deps, release_rules, unit
from .errors import classified


def drs_concerned(ctx: StepContext) -> bool:
    return unit(ctx) in release_rules(ctx).drs_idle_for


def drs_output(ctx: StepContext) -> dict[str, Any]:
    """Whether a DRS job runs, read now, as the output the guard judges."""
    running = deps(ctx).cucm.backup_running()
    return {"backup_running": running, "drs_read": {"state": ctx.state, "running": running}}


def check_backup(ctx: StepContext) -> Outcome:
    if not drs_concerned(ctx):
        return Outcome.advance(
            output={"drs_read": {"state": ctx.state, "running": None}},
            reason=f"{ctx.definition} does not depend on DRS on CUCM {release_rules(ctx).release}",
        )
    output = drs_output(ctx)
    running = output["backup_running"]
    return Outcome.advance(
        output=output,
        evidence={"backup_running": running},
        reason="a DRS backup or restore is running" if running else "no DRS backup or restore running",
    )


def register(registry: Registry) -> None:
    registry.step("check_backup")(classified(check_backup))
