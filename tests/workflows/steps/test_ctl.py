"""update_ctl: the CTL is rebuilt on the publisher in mixed mode only, once per visit."""

from __future__ import annotations

import pytest

from engine.api import TransientError
from tests.workflows.steps.conftest import PUB, Lab


def test_not_in_ctl_or_non_secure_updates_nothing(lab: Lab) -> None:
    lab.fake.mixed_mode = True
    tomcat = lab.run(lab.ctx("tomcat", "ctl_updated"))
    assert tomcat.kind == "advance" and "no CTL update" in tomcat.reason
    lab.fake.mixed_mode = False
    cm = lab.run(lab.ctx("CallManager", "ctl_updated"))
    assert cm.output == {"security_mode": "non-secure", "ctl_updated": False}
    assert lab.fake.calls_to("ctl_update") == []


def test_mixed_mode_updates_once_on_the_publisher(lab: Lab) -> None:
    lab.fake.mixed_mode = True
    ctx = lab.ctx("CallManager", "ctl_updated")
    outcome = lab.run(ctx)
    assert outcome.output["ctl_updated"] is True and "successfully" in outcome.evidence["ctl_output"]
    assert ctx.entry(PUB, "ctl_update") is not None
    lab.run(ctx)  # re-entered in the same visit: the journaled output stands
    assert lab.fake.ctl_updates == 1


def test_a_lost_reply_is_retried_and_rebuilds_the_same_file(lab: Lab) -> None:
    lab.fake.mixed_mode = True
    lab.fake.lose_reply("ctl_update")
    ctx = lab.ctx("CallManager", "ctl_updated")
    with pytest.raises(TransientError):
        lab.run(ctx)
    assert lab.run(ctx).kind == "advance"
    assert lab.fake.ctl_updates == 2
