"""The pre-checks inside a run, against the fake CUCM: what each type reads before its first change
and before its first upload, and what must still hold around the restarts (SSO, DRS)."""

from __future__ import annotations

from typing import Any

from adapters.cucm.port import CtlStatus, ReplicationRow, ReplicationState
from engine.api import GuardInput, Outcome
from engine.testing import StepContextDouble
from tests.workflows.steps.conftest import Lab
from workflows import guards

READS = (
    "replication_state",
    "network_cluster",
    "itl_recovery_certificate",
    "device_pools",
    "backup_running",
    "sso_enabled",
    "ctl_status",
    "license_status",
)


def step(lab: Lab, ctx: StepContextDouble, name: str) -> Outcome:
    return ctx.apply(lab.registry.steps[name](ctx))


def judge(
    lab: Lab, ctx: StepContextDouble, guard: str, outcome: Outcome, dest: str = "d"
) -> tuple[bool, str]:
    """The guard on the way out of ``ctx.state``, over the context with the pending output, as the
    engine evaluates it."""
    return guards.GUARDS[guard](
        GuardInput(
            run_id="r1",
            definition=ctx.definition,
            scope="lab",
            source=ctx.state,
            dest=dest,
            trigger="next",
            params=ctx.params,
            context={**ctx.context, **outcome.output},
            peers=[],
            now=ctx.now(),
        )
    )


def reads(lab: Lab) -> set[str]:
    return {c.op for c in lab.fake.calls if c.op in READS}


def test_broken_replication_holds_the_run_until_repaired(lab: Lab) -> None:
    context = lab.context_at("CallManager", "sso_disabled")
    lab.fake.replication = ReplicationState(
        (
            ReplicationRow("cucm-pub", "", 2, "(2) Setup Completed"),
            ReplicationRow("cucm-sub1", "", 3, "(3) Mismatch"),
        )
    )
    ctx = lab.ctx("CallManager", "cluster_ready", context)
    outcome = step(lab, ctx, "check_readiness")
    allowed, reason = judge(lab, ctx, "prechecks_passed", outcome)
    assert not allowed and "cucm-sub1 is (3) Mismatch" in reason and "utils dbreplication" in reason
    lab.fake.replication = None  # repaired: every server (2) Setup Completed
    outcome = step(lab, ctx, "check_readiness")
    assert judge(lab, ctx, "prechecks_passed", outcome)[0]
    assert [c["check"] for c in outcome.evidence["prechecks"]] == [
        "replication",
        "network-cluster",
        "itl-recovery",
        "ca-chain",
        "phones",
        "ctl-feasible",
    ]


def test_each_type_reads_only_what_concerns_it(lab: Lab) -> None:
    expected: dict[str, set[str]] = {
        "cup": {"replication_state", "network_cluster"},
        "tomcat": {"replication_state", "network_cluster", "backup_running", "sso_enabled"},
        "ipsec": {"replication_state", "network_cluster", "backup_running"},
        "CAPF": {"replication_state", "network_cluster", "itl_recovery_certificate", "device_pools"},
    }
    for cert_type, wanted in expected.items():
        context = lab.context_at(cert_type, "sso_disabled", force=True)
        lab.fake.forget_calls()
        outcome = step(lab, lab.ctx(cert_type, "cluster_ready", context), "check_readiness")
        assert outcome.kind == "advance"
        assert reads(lab) == wanted, cert_type


def test_a_warning_is_recorded_and_never_holds(lab: Lab) -> None:
    lab.fake.sso = True
    context = lab.context_at("tomcat", "sso_disabled")
    ctx = lab.ctx("tomcat", "cluster_ready", context)
    outcome = step(lab, ctx, "check_readiness")
    assert "WARN sso: SAML SSO is enabled" in outcome.reason
    assert {"check": "sso", "level": "warn"}.items() <= outcome.evidence["prechecks"][-1].items()
    assert judge(lab, ctx, "prechecks_passed", outcome)[0]
    assert ctx.context["prechecks"]["checks"][-1]["level"] == "warn"


def mixed(lab: Lab) -> None:
    lab.fake.mixed_mode = True
    lab.fake.ctl = CtlStatus(present=True, signer="cn=ITLRECOVERY_pub")


def test_a_token_ctl_holds_callmanager_before_its_upload(lab: Lab) -> None:
    mixed(lab)
    context = lab.context_at("CallManager", "trust_uploaded")
    ctx = lab.ctx("CallManager", "ctl_feasible", context)
    assert judge(lab, ctx, "prechecks_passed", step(lab, ctx, "check_ctl_feasible"))[0]
    lab.fake.ctl = CtlStatus(present=True, signer='cn="SAST-ADN008580ef";ou=IPCBU', token=True)
    allowed, reason = judge(lab, ctx, "prechecks_passed", step(lab, ctx, "check_ctl_feasible"))
    assert not allowed and "hardware token" in reason and "held before anything is uploaded" in reason
    # TVS is not in the CTL: nothing is read for it.
    lab.fake.forget_calls()
    tvs = lab.ctx("TVS", "ctl_feasible", lab.context_at("TVS", "trust_uploaded"))
    lab.fake.forget_calls()
    assert judge(lab, tvs, "prechecks_passed", step(lab, tvs, "check_ctl_feasible"))[0]
    assert reads(lab) == set()


def at_window(lab: Lab, cert_type: str, **context: Any) -> StepContextDouble:
    start = lab.context_at(cert_type, "leaf_uploaded")
    return lab.ctx(cert_type, "window_before_restart", {**start, **context})


def settle(lab: Lab, ctx: StepContextDouble, name: str) -> Outcome:
    outcome = step(lab, ctx, name)
    for _ in range(20):
        if outcome.kind != "wait":
            return outcome
        outcome = step(lab, ctx, name)
    raise AssertionError(outcome.reason)


def test_sso_re_enabled_gates_tomcat_before_its_restarts(lab: Lab) -> None:
    ctx = at_window(lab, "tomcat")
    lab.fake.sso = True
    outcome = settle(lab, ctx, "await_window_rechecked")
    assert outcome.kind == "gate" and outcome.on_approve is None
    assert "enabled again" in outcome.reason and "nothing has been restarted" in outcome.reason
    assert ctx.context["sso_was_enabled"] is True  # the run ends with the reminder to re-enable it
    assert lab.fake.calls_to("restart_service") == []
    lab.fake.sso = False
    outcome = settle(lab, ctx, "await_window_rechecked")
    assert outcome.kind == "advance"
    assert judge(lab, ctx, "sso_off_for_tomcat", outcome, dest="restarted")[0]


def test_a_drs_job_holds_ipsec_before_the_restarts_and_before_verified(lab: Lab) -> None:
    ctx = at_window(lab, "ipsec", release="14SU2")
    lab.fake.backup = True
    outcome = settle(lab, ctx, "await_window_rechecked")
    allowed, reason = judge(lab, ctx, "no_drs_job", outcome, dest="restarted")
    assert not allowed and "nothing has been restarted yet" in reason
    lab.fake.backup = False
    outcome = settle(lab, ctx, "await_window_rechecked")
    assert judge(lab, ctx, "no_drs_job", outcome, dest="restarted")[0]
    ctx.apply(outcome)
    restart = lab.ctx("ipsec", "restarted", ctx.context)
    outcome = settle(lab, restart, "restart_services_rechecked")
    assert outcome.kind == "advance" and outcome.output["drs_read"] == {
        "state": "restarted",
        "running": False,
    }
    lab.fake.backup = True
    outcome = step(lab, restart, "restart_services_rechecked")
    allowed, reason = judge(lab, restart, "no_drs_job", outcome, dest="verified")
    assert not allowed and "before its restarts are verified" in reason


def test_tomcat_depends_on_drs_from_14_only(lab: Lab) -> None:
    lab.fake.backup = True
    for release, held in (("14SU2", True), ("12.5SU1", False)):
        ctx = at_window(lab, "tomcat", release=release)
        outcome = settle(lab, ctx, "await_window_rechecked")
        assert judge(lab, ctx, "no_drs_job", outcome, dest="restarted")[0] is not held, release
