"""The rules of Cisco's procedure, as named pure guards (DESIGN §2).

Each guard reads only its :class:`GuardInput` (the definition's params, the run's context with the
pending step output merged in, and the other runs on the same cluster) and returns
``(allowed, reason)``. The reason is what ``cucm-renew status`` shows, so when a guard refuses it
says what is being waited for and how it ends. A guard that does not concern a type allows it and
says so, which lets every definition share one set of transitions.

Context keys read here are written by the steps in :mod:`workflows.steps`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from engine.api import GuardInput, GuardResult, Registry
from workflows.context import ROLE_RANK, view
from workflows.context import targets as _targets
from workflows.releases import rules
from workflows.timestamps import instant

# States in which a run's CUCM changes are live and not yet finished.
IN_FLIGHT = frozenset(
    {
        "trust_uploaded",
        "backup_idle",
        "window_before_upload",
        "leaf_uploaded",
        "window_before_restart",
        "ctl_updated",
        "restarted",
        "phones_reset",
        "phones_reregistered",
        "phones_missing",
        "verified",
        "outage_reported",
        "sso_reenabled",
    }
)
# Holding states hide where a run stopped; a held peer counts as in flight, to be safe.
HELD = frozenset({"paused", "failed"})
# Every state name the guards rely on, by the name of its set: checked against the loaded
# definitions at start-up (workflows.registry), so a renamed state cannot silently never match.
NAMED_STATES: Mapping[str, frozenset[str]] = {
    "IN_FLIGHT": IN_FLIGHT,
    "HELD": HELD,
}


def _names(peers: Iterable[str]) -> str:
    return ", ".join(sorted(peers))


def applies_to_nodes(g: GuardInput) -> GuardResult:
    """CAPF on the publisher only; every type only on the node roles it declares."""
    roles = set(g.params.get("roles") or [])
    node_roles: Mapping[str, str] = view(g.context).get("node_roles") or {}
    wrong = [n for n in _targets(g.context) if node_roles.get(n) not in roles]
    if wrong:
        return False, (
            f"{g.definition} applies only to {', '.join(sorted(roles))} nodes; refusing {_names(wrong)}: "
            "remove them from the run (abort it and start again)"
        )
    return True, f"{g.definition} targets only {', '.join(sorted(roles))} nodes"


def itl_recovery_checked(g: GuardInput) -> GuardResult:
    """An ITL signer (CallManager, its twin, TVS) goes on only with ITLRecovery read and either far
    enough from expiry or the operator's approval of the gate that named it."""
    if not g.params.get("itl_signers"):
        return True, f"{g.definition} does not sign the ITL"
    itl = view(g.context).get("itl_recovery")
    if not itl:
        return False, "ITLRecovery has not been read on the publisher yet"
    if not itl.get("found"):
        return True, "CUCM lists no ITLRecovery: nothing to check"
    days, minimum = float(itl.get("days_left", 0)), float(itl.get("min_days", 0))
    if days >= minimum:
        return True, f"ITLRecovery expires in {days:.0f} days (at least {minimum:g})"
    if itl.get("approved"):
        return True, f"ITLRecovery expires in {days:.0f} days: the operator approved going on"
    return False, (
        f"ITLRecovery expires in {days:.0f} days, under itl_recovery_min_days = {minimum:g}: regenerate "
        "it first in its own window (cucm-renew never does), or approve the gate"
    )


def sso_off_for_tomcat(g: GuardInput) -> GuardResult:
    """Tomcat goes on only with SAML SSO read as off in the state it leaves (before the CSR, and
    again right before the restarts)."""
    if not g.params.get("requires_sso_off"):
        return True, f"{g.definition} does not depend on single sign-on"
    read = view(g.context).get("sso_read") or {}
    if read.get("state") != g.source:
        return False, f"single sign-on has not been read in {g.source} yet: the step reads it first"
    if read.get("enabled") is not False:
        return False, (
            f"single sign-on is enabled on cluster {g.scope}: disable it (CM Administration > System > "
            "SAML Single Sign-On, or `utils sso disable`) before tomcat changes"
        )
    return True, "single sign-on is disabled"


def prechecks_passed(g: GuardInput) -> GuardResult:
    """No failed pre-check (workflows.readiness) in what the state being left read: the cluster
    before the first change, the CTL's feasibility before the first upload."""
    record = view(g.context).get("prechecks") or {}
    if record.get("state") != g.source:
        return False, f"the pre-checks have not been read in {g.source} yet: the step reads them first"
    failed = [c for c in record.get("checks") or [] if c.get("level") == "fail"]
    if failed:
        what = "the first change" if g.source == "cluster_ready" else "anything is uploaded"
        return False, (
            f"held before {what} on cluster {g.scope}: "
            + " | ".join(f"{c.get('check')}: {c.get('message')}" for c in failed)
            + f" The checks run again at every poll and the run goes on once they pass (or `cucm-renew "
            f"advance {g.run_id} --to {g.dest} --reason ...` to go on regardless)."
        )
    warned = [str(c.get("check")) for c in record.get("checks") or [] if c.get("level") == "warn"]
    return True, "pre-checks passed" + (f" (warnings: {', '.join(warned)})" if warned else "")


def preflight_passed(g: GuardInput) -> GuardResult:
    issued = view(g.context).get("issued") or {}
    missing = [n for n in _targets(g.context) if not (issued.get(n) or {}).get("preflight_ok")]
    if missing:
        return False, f"no certificate that passed pre-flight yet for {_names(missing)}"
    return True, "every signed certificate passed pre-flight"


def key_usage_for_type(g: GuardInput) -> GuardResult:
    unit = g.params.get("unit")
    issued = view(g.context).get("issued") or {}
    wrong = [n for n in _targets(g.context) if (issued.get(n) or {}).get("checked_for") != unit]
    if wrong:
        return False, (
            f"certificates for {_names(wrong)} were not checked for the key usages {unit} needs: "
            "submit them again"
        )
    return True, f"key usage and EKU checked for {unit}"


def itl_signers_exclusive(g: GuardInput) -> GuardResult:
    """Never CallManager and TVS at once on a cluster: CallManager finishes first, then TVS."""
    rule: Mapping[str, Any] = g.params.get("itl_signers") or {}
    if not rule:
        return True, f"{g.definition} does not sign the ITL"
    first = set(rule.get("finish_first") or [])
    beside = set(rule.get("not_beside") or [])
    for peer in g.peers:
        if peer.run_id == g.run_id:
            continue
        if peer.definition in first:
            return False, (
                f"waiting for {peer.definition} run {peer.run_id} (now {peer.state}) to finish with its "
                f"phones re-registered: {peer.definition} and {g.definition} must never be in flight "
                "together on a cluster (ITL mismatch leaves every phone unregistered)"
            )
        if peer.definition in beside and (peer.state in IN_FLIGHT or peer.state in HELD):
            return False, (
                f"{peer.definition} run {peer.run_id} is in flight ({peer.state}): {g.definition} waits, "
                "the two ITL signers must never change together"
            )
    return True, "no other ITL signer in flight on this cluster"


def chain_trusted_before_leaf(g: GuardInput) -> GuardResult:
    issued = view(g.context).get("issued") or {}
    trusted = view(g.context).get("trusted") or {}
    for node in _targets(g.context):
        chain = (issued.get(node) or {}).get("chain_sha256") or []
        have = set(trusted.get(node) or [])
        lacking = [fp for fp in chain if fp not in have]
        if lacking:
            return False, (
                f"{len(lacking)} CA certificate(s) of {node}'s chain are not in {g.params.get('unit')}-trust "
                "yet: the root and intermediates go in before the leaf"
            )
    return True, "the whole chain is trusted on every node"


def no_drs_job(g: GuardInput) -> GuardResult:
    """For the release table's ``drs_idle_for`` (ipsec; tomcat and tomcat-ECDSA from 14), from the
    identity upload until the restarts are verified: no DRS backup or restore, read in the state the
    run leaves."""
    release = view(g.context).get("release") or "11.5"
    if g.params.get("unit") not in rules(release).drs_idle_for:
        return True, f"{g.definition} does not depend on DRS on CUCM {release}"
    read = view(g.context).get("drs_read") or {}
    if read.get("state") != g.source:
        return False, f"whether a DRS job runs has not been read in {g.source} yet: the step reads it first"
    if read.get("running") is not False:
        before = {
            "restarted": "before its first restart: nothing has been restarted yet",
            "verified": "before its restarts are verified",
        }.get(g.dest, "before its identity upload: nothing has been uploaded yet")
        return False, (
            f"a DRS backup or restore is running on cluster {g.scope} (`utils disaster_recovery status "
            f"backup`): {g.definition} waits {before}, and goes on by itself once the job ends"
        )
    return True, "no DRS backup or restore running"


def ctl_before_restart(g: GuardInput) -> GuardResult:
    # A run recorded before releases were read has none: the table's oldest row applies.
    after = rules(view(g.context).get("release") or "11.5").ctl_update_after
    if g.params.get("unit") not in after:
        return True, f"{g.definition} does not call for a CTL update"
    if g.context.get("security_mode") != "mixed":
        return True, "cluster is non-secure: no CTL to update"
    if not g.context.get("ctl_updated"):
        return False, "cluster is in mixed mode: the CTL must be updated on the publisher before restarts"
    return True, "CTL updated before the restarts"


def restart_order(g: GuardInput) -> GuardResult:
    """Publisher first, then one node at a time, each service running before the next restart."""
    restarts = [r for r in view(g.context).get("restarts") or [] if not r.get("skipped")]
    seen_other = False
    previous_running: datetime | None = None
    for r in restarts:
        rank = ROLE_RANK.get(str(r.get("role")), 3)
        if rank > 0:
            seen_other = True
        elif seen_other:
            return False, f"{r.get('service')} on the publisher was restarted after a subscriber"
        if not r.get("running_at"):
            return False, f"{r.get('service')} on {r.get('node')} is not running again yet"
        # As moments, not text: runs recorded before the timestamp format was settled mix two forms.
        if previous_running and instant(str(r.get("requested_at"))) < previous_running:
            return False, (
                f"{r.get('service')} on {r.get('node')} was restarted before the previous service "
                "was running again"
            )
        previous_running = instant(str(r.get("running_at")))
    return True, f"{len(restarts)} restart(s), publisher first, one at a time"


def no_hold_on_cluster(g: GuardInput) -> GuardResult:
    """No new outage on a cluster an operator put on hold (``cucm-renew hold CLUSTER``)."""
    if g.hold is not None:
        return False, (
            f"cluster {g.scope} is on hold since {g.hold.since:%Y-%m-%d %H:%M} UTC by {g.hold.actor}: "
            f"{g.hold.reason}; no outage starts until `cucm-renew release {g.scope}`"
        )
    return True, f"cluster {g.scope} is not on hold"


GUARDS: dict[str, Callable[[GuardInput], GuardResult]] = {
    "applies_to_nodes": applies_to_nodes,
    "itl_recovery_checked": itl_recovery_checked,
    "sso_off_for_tomcat": sso_off_for_tomcat,
    "prechecks_passed": prechecks_passed,
    "preflight_passed": preflight_passed,
    "key_usage_for_type": key_usage_for_type,
    "itl_signers_exclusive": itl_signers_exclusive,
    "chain_trusted_before_leaf": chain_trusted_before_leaf,
    "no_drs_job": no_drs_job,
    "ctl_before_restart": ctl_before_restart,
    "restart_order": restart_order,
    "no_hold_on_cluster": no_hold_on_cluster,
}


def register(registry: Registry) -> None:
    for name, fn in GUARDS.items():
        registry.guard(name)(fn)
