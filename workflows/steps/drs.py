"""ipsec and DRS: no backup or restore may run while the ipsec certificate changes."""

from __future__ import annotations

from engine.api import Outcome, Registry, StepContext

from .common import deps
from .errors import classified


def check_backup(ctx: StepContext) -> Outcome:
    # The guard `no_backup_for_ipsec` reads this; while it refuses, the engine re-runs this step
    # after the state's poll interval, so a backup that ends lets the run through on its own.
    running = deps(ctx).cucm.backup_running()
    return Outcome.advance(
        output={"backup_running": running},
        evidence={"backup_running": running},
        reason="a DRS backup or restore is running" if running else "no DRS backup or restore running",
    )


def register(registry: Registry) -> None:
    registry.step("check_backup")(classified(check_backup))
