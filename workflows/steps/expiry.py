"""expiry_check: which nodes need a new certificate of this type.

Beyond the expiry dates it decides, before anything changes on CUCM: whether the release carries
the type at all (``since``), which nodes use it (``where_activated``: XMPP federation nodes for
cup-xmpp-s2s), every node of the scope at once when the certificate is multi-server, and, for the
ITL's signers, whether ITLRecovery is too close to expiry to go on without the operator.
"""

from __future__ import annotations

from typing import Any

from adapters.cucm.port import ServiceStatus
from engine.api import Outcome, Registry, StepContext
from workflows.certkit import cert_summary, load_cert
from workflows.context import view
from workflows.itl_recovery import DEFAULT_ITL_RECOVERY_MIN_DAYS, ITL_RECOVERY_GUIDANCE
from workflows.releases import Release, ReleaseError, differs
from workflows.renewal import RenewalPolicy, renewal_due
from workflows.timestamps import iso

from .common import deps, order_nodes, unit
from .errors import classified
from .multi import multi_server

ITL_RECOVERY = "ITLRecovery"


def check_expiry(ctx: StepContext) -> Outcome:
    """Renew a node when fewer than ``renew_before_days`` remain, or when the run is forced.

    Only reads CUCM, so re-running it after a crash is harmless.
    """
    cucm = deps(ctx).cucm
    reported = cucm.version()
    release = Release.parse(reported)
    configured = deps(ctx).configured_version
    if configured:
        try:
            wanted_release = Release.parse(configured)
        except ReleaseError as exc:
            return Outcome.fail(f"the configuration's version: {exc}", retryable=False)
        if differs(wanted_release, release):
            return Outcome.fail(
                f"cluster {ctx.scope} runs CUCM {reported} ({release}), but the configuration says "
                f"version = {configured!r} ({wanted_release}): correct or remove `version` in "
                f"[clusters.{ctx.scope}], then `cucm-renew retry {ctx.run_id}`",
                retryable=False,
            )
    since = ctx.params.get("since")
    if since and release < Release.parse(str(since)):
        return Outcome.advance(
            "not_due",
            output={"release": str(release), "release_version": reported, "targets": []},
            reason=f"CUCM {release} has no {unit(ctx)} to renew here (renewed from {since})",
        )
    roles = set(ctx.params.get("roles") or [])
    given = view(ctx.context)
    if multi_server(ctx) and given.get("only_nodes"):
        return Outcome.fail(
            f"{unit(ctx)} is multi-server on cluster {ctx.scope}: one certificate names every node, so "
            "a run cannot renew only some of them. Start it without --node",
            retryable=False,
        )
    policy = RenewalPolicy(float(given.get("renew_before_days", 30)), force=bool(given.get("force")))
    wanted = set(given.get("only_nodes") or [])
    now = ctx.now()
    every = [(n.name, n.role) for n in cucm.nodes()]
    nodes = [(n, r) for n, r in every if r in roles and (not wanted or n in wanted)]
    needed = str(ctx.params.get("where_activated") or "")
    idle: list[str] = []
    if needed:
        idle = [n for n, _ in nodes if not _activated(cucm.service_status(n, needed))]
        nodes = [(n, r) for n, r in nodes if n not in idle]
        for name in idle:
            ctx.progress(name, f"{needed} is not activated here: its {unit(ctx)} certificate is not in use")
    expiry: dict[str, dict[str, object]] = {}
    due: list[str] = []
    for name in order_nodes(nodes):
        pem = cucm.identity_certificate(name, unit(ctx))
        decision = renewal_due(load_cert(pem), now, policy)
        summary = cert_summary(pem)
        summary["days_left"] = round(decision.days_left, 1)
        expiry[name] = summary
        if decision.due:
            due.append(name)
        ctx.progress(
            name, f"expires in {decision.days_left:.0f} days" + (" (renewing)" if decision.due else "")
        )
    if due and multi_server(ctx):
        # One certificate names them all: when one node is due, every node of the scope is renewed.
        due = [n for n in order_nodes(nodes)]
    output: dict[str, Any] = {
        "release": str(release),
        "release_version": reported,
        "cluster_nodes": {n: dict(every)[n] for n in order_nodes(every)},
        "node_roles": dict(nodes),
        "expiry": expiry,
        "old": expiry,
        "targets": due,
    }
    if idle:
        output["not_in_use"] = idle
    if not due:
        return Outcome.advance(
            "not_due",
            output=output,
            reason=f"no {unit(ctx)} certificate expires within {policy.renew_before_days:g} days",
        )
    if ctx.params.get("itl_signers"):
        gated = _itl_recovery(ctx, output)
        if gated is not None:
            return gated
    return Outcome.advance(
        output=output,
        evidence={
            "release": str(release),
            "targets": due,
            "expiry": {n: expiry[n]["not_after"] for n in due},
            "forced": policy.force,
        },
        reason=f"renewing {unit(ctx)} on {len(due)} node(s)",
    )


def _activated(status: ServiceStatus) -> bool:
    return status.status not in ("NotFound", "Unknown") and not (
        status.status == "Stopped" and "not activated" in (status.reason or "").lower()
    )


def _itl_recovery(ctx: StepContext, output: dict[str, Any]) -> Outcome | None:
    """Read the publisher's ITLRecovery into ``output``; stop at a gate when it expires within
    the run's ``itl_recovery_min_days``. The tool never regenerates it: the gate says how, and
    approving goes on with the operator's decision in the audit trail."""
    cucm = deps(ctx).cucm
    publisher = next(n.name for n in cucm.nodes() if n.role == "publisher")
    minimum = float(view(ctx.context).get("itl_recovery_min_days", DEFAULT_ITL_RECOVERY_MIN_DAYS))
    pem = cucm.identities(publisher).get(ITL_RECOVERY)
    if pem is None:
        output["itl_recovery"] = {"found": False, "min_days": minimum}
        ctx.progress(publisher, "ITLRecovery not listed by CUCM: not checked")
        return None
    cert = load_cert(pem)
    days = (cert.not_valid_after_utc - ctx.now()).total_seconds() / 86400
    record: dict[str, Any] = {
        "found": True,
        "not_after": iso(cert.not_valid_after_utc),
        "days_left": round(days, 1),
        "min_days": minimum,
        "sha256": cert_summary(pem)["sha256"],
    }
    previous = dict(view(ctx.context).get("itl_recovery") or {})
    if days >= minimum:
        output["itl_recovery"] = record
        return None
    if previous.get("gated") and previous.get("sha256") == record["sha256"]:
        # The step runs again only once the gate was approved: the operator goes on knowingly.
        record.update(gated=True, approved=True)
        output["itl_recovery"] = record
        ctx.progress(publisher, f"ITLRecovery expires in {days:.0f} days: going on, approved by the operator")
        return None
    record["gated"] = True
    output["itl_recovery"] = record
    return Outcome.gate(
        f"ITLRecovery on {publisher} expires {cert.not_valid_after_utc:%Y-%m-%d} ({days:.0f} days, under "
        f"itl_recovery_min_days = {minimum:g}): it signs the ITL phones trust, and {unit(ctx)} changes "
        "the ITL. Regenerate ITLRecovery first in its own window (cucm-renew never does): "
        f"{ITL_RECOVERY_GUIDANCE} Then `cucm-renew approve {ctx.run_id}` reads it again; approving "
        "while it is still close goes on as it is",
        on_approve=None,
        output=output,
        evidence={"itl_recovery": record},
    )


def register(registry: Registry) -> None:
    registry.step("check_expiry")(classified(check_expiry))
