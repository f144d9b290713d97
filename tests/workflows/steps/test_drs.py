"""check_backup: records whether a DRS job runs, for the ipsec guard."""

from __future__ import annotations

from tests.workflows.steps.conftest import Lab


def test_backup_state_is_recorded(lab: Lab) -> None:
    ctx = lab.ctx("ipsec", "backup_idle")
    outcome = lab.run(ctx)
    assert outcome.kind == "advance" and ctx.context["backup_running"] is False
    lab.fake.backup = True
    outcome = lab.run(ctx)
    assert ctx.context["backup_running"] is True and "running" in outcome.reason
    assert len(lab.fake.calls_to("backup_running")) == 2  # read afresh on every poll
