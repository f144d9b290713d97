"""restarted: the type's services (the release table's list, plus TFTP and CallManager after a CTL
update) on every node where each is activated: publisher first, then one node at a time, each
service running again before the next restart begins. After each Cisco CallManager restart, the
phones registered to that node before the change must register again (fail back) before the next
node's turn."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from engine.api import Effect, Outcome, Registry, StepContext
from workflows.certkit import fingerprint
from workflows.context import RestartRecord, view
from workflows.releases import rules
from workflows.timestamps import instant, iso

from .common import cluster_nodes, deps, names, order_nodes, release_rules, unit
from .errors import classified
from .phones import REGISTERED, baseline_output, sweep_for, sweep_interval

RUNNING = "Started"
CALLMANAGER = "Cisco CallManager"
NOT_ACTIVATED = "Service Not Activated"


def _ts(value: datetime | None) -> str | None:
    return iso(value) if value is not None else None


def services_for(ctx: StepContext) -> list[str]:
    """The type's restart list for the release, then those the CTL update calls for, once each."""
    rules = release_rules(ctx)
    services = list(rules.restart_services(unit(ctx)))
    if view(ctx.context).get("ctl_updated"):
        services += [s for s in rules.ctl_update_restarts if s not in services]
    return services


def trust_sync(ctx: StepContext) -> tuple[str | None, list[str]]:
    """The IM&P publisher and the services to restart there because this run added a CA to the
    type's trust store on an IM&P node (the chain then reaches intercluster peers, IMP125)."""
    services = list(release_rules(ctx).trust_sync_restarts.get(unit(ctx), ()))
    imp = next((n for n, r in cluster_nodes(ctx).items() if r == "imp"), None)
    if not services or imp is None:
        return None, []
    issued = dict(view(ctx.context).get("issued") or {})
    before = dict(view(ctx.context).get("trust_snapshot") or {})
    roles = cluster_nodes(ctx)
    for node, info in issued.items():
        if roles.get(node) != "imp":
            continue
        had = {fingerprint(p) for p in before.get(node) or []}
        # Read from what the run recorded, not from CUCM: after a crash the chain is there either way.
        if set(info.get("chain_sha256") or []) - had:
            return imp, services
    return None, []


def planned_restarts(
    release: str, cert_type: str, nodes: Sequence[tuple[str, str]], *, ctl_update: bool
) -> list[tuple[str, list[str]]]:
    """What ``cert_type`` restarts on ``release``, node by node in Cisco's order (publisher first,
    then subscribers, then IM&P): the table's list, plus TFTP and CallManager when the CTL is
    updated. Each node's list still drops the services not activated there (known only at run
    time); ``cucm-renew plan`` shows this."""
    table = rules(release)
    services = list(table.restart_services(cert_type))
    if ctl_update and cert_type in table.ctl_update_after:
        services += [s for s in table.ctl_update_restarts if s not in services]
    return [(node, list(services)) for node in order_nodes(nodes)]


def _skip_reason(status: Any) -> str:
    """Why a service that is not Started is left alone: ControlCenterServices says Stopped with
    -1068 "Service Not Activated", or does not know it on that node (-1010, e.g. IM&P)."""
    if status.status in ("NotFound", "Unknown") or "No such service" in (status.reason or ""):
        return "not on this node"
    if NOT_ACTIVATED.lower() in (status.reason or "").lower():
        return "not activated"
    return f"{status.status.lower()} ({status.reason or 'not running'}): not started by the tool"


def _plan(ctx: StepContext, baseline: Mapping[str, Any]) -> list[RestartRecord]:
    cucm = deps(ctx).cucm
    plan: list[RestartRecord] = []
    homes: dict[str, str] = dict(baseline.get("nodes") or {})
    sync_node, sync_services = trust_sync(ctx)
    for node, role in cluster_nodes(ctx).items():
        extra = [s for s in sync_services if node == sync_node and s not in services_for(ctx)]
        for service in [*services_for(ctx), *extra]:
            before = cucm.service_status(node, service)
            record = RestartRecord(node=node, role=role, service=service)
            if before.status != RUNNING:
                record.update(RestartRecord(skipped=True, status=before.status, why=_skip_reason(before)))
            else:
                record["previous_start"] = _ts(before.start_time)
                if service == CALLMANAGER:
                    short = node.split(".")[0]
                    record["failback"] = sorted(p for p, home in homes.items() if home in (node, short))
            plan.append(record)
    return plan


def restart_services(ctx: StepContext) -> Outcome:
    """Each restart is an effect keyed by node and service; its intent records the service's start
    time before the restart, so a resumed run that finds a later start time knows the restart
    happened and does not restart the service a second time."""
    cucm = deps(ctx).cucm
    done = [RestartRecord(**r) for r in view(ctx.context).get("restarts") or []]
    if not done:
        # Count the phones before the first restart (unless the upload or the CTL update came first),
        # then decide once, durably, where each service runs: after a crash mid-restart a service
        # may be Stopped because of us, and must not then be taken for one that was never active.
        output: dict[str, Any] = baseline_output(ctx, "restart")
        plan = _plan(ctx, output.get("baseline") or view(ctx.context).get("baseline") or {})
        for r in plan:
            if r.get("skipped"):
                ctx.progress(r["node"], f"{r['service']}: {r.get('why')}")
        return Outcome.wait(0, "restart plan recorded", output={**output, "restarts": plan})
    for record in done:
        node, service = str(record["node"]), str(record["service"])
        if record.get("skipped"):
            continue
        if record.get("running_at"):
            if service == CALLMANAGER and not (record.get("failback_at") or record.get("failback_waived")):
                waiting = _failback(ctx, record, done)
                if waiting is not None:
                    return waiting
            continue
        previous = record.get("previous_start")

        def reconcile(effect: Effect, node: str = node, service: str = service) -> Any:
            now = cucm.service_status(node, service)
            started = _ts(now.start_time)
            prior = effect.intent.get("previous_start")
            # The plan only restarts services that were Started: one stopping or starting now, or
            # started since the intent, is our restart under way or done.
            if now.status != RUNNING or (
                started is not None and (prior is None or instant(started) > instant(prior))
            ):
                return {"requested_at": effect.intent.get("requested_at"), "reconciled": True}
            return None

        requested_at = iso(ctx.now())

        def restart(node: str = node, service: str = service, requested_at: str = requested_at) -> Any:
            cucm.restart_service(node, service)
            return {"requested_at": requested_at}

        result = ctx.effect(
            node,
            f"restart:{service}",
            restart,
            intent={"service": service, "previous_start": previous, "requested_at": requested_at},
            reconcile=reconcile,
        )
        record["requested_at"] = result["requested_at"]
        status = cucm.service_status(node, service)
        started = _ts(status.start_time)
        if (
            status.status != RUNNING
            or started is None
            or (previous is not None and instant(started) <= instant(str(previous)))
        ):
            ctx.progress(node, f"{service}: {status.status}")
            return Outcome.wait(
                5,
                f"waiting for {service} on {node} to be running again ({status.status})",
                output={"restarts": done},
            )
        record["running_at"] = iso(ctx.now())
        record["start_time"] = started
        ctx.progress(node, f"{service} running again")
        # Checkpoint before the next restart (or the failback wait): were the process to die after
        # that, the resumed step must not record this service as running only once the next began.
        return Outcome.wait(0, f"{service} on {node} is running again", output={"restarts": done})
    restarted = [r for r in done if not r.get("skipped")]
    return Outcome.advance(
        output={"restarts": done},
        evidence={
            "restarts": [
                {"node": r["node"], "service": r["service"], "start_time": r.get("start_time")}
                for r in restarted
            ],
            "not_restarted": [
                {"node": r["node"], "service": r["service"], "why": r.get("why")}
                for r in done
                if r.get("skipped")
            ],
        },
        reason=f"{len(restarted)} service restart(s), publisher first, one node at a time",
    )


def _failback(ctx: StepContext, record: RestartRecord, done: list[RestartRecord]) -> Outcome | None:
    """After a CallManager restart, wait until the phones registered to that node before the change
    are registered again since it started; a timeout ends at a gate naming them."""
    node = str(record["node"])
    phones = list(record.get("failback") or [])
    if record.get("failback_gated"):
        # The operator approved the gate: go on without those phones (they are in the evidence).
        record["failback_waived"] = True
        return Outcome.wait(0, f"failback on {node} waived by the operator", output={"restarts": done})
    if not phones:
        record["failback_at"] = iso(ctx.now())
        return None
    started = record.get("start_time")
    since = math.floor(instant(str(started)).timestamp()) if started else None
    seen = sweep_for(deps(ctx).cucm, phones)
    missing = [
        p
        for p in phones
        if (s := seen.get(p)) is None
        or s.status != REGISTERED
        or (since is not None and s.timestamp is not None and s.timestamp < since)
    ]
    if not missing:
        record["failback_at"] = iso(ctx.now())
        record.pop("failback_missing", None)
        ctx.progress(node, f"{len(phones)} phone(s) failed back to {node}")
        return Outcome.wait(0, f"phones failed back to {node}", output={"restarts": done})
    polls = int(record.get("failback_polls", 0)) + 1
    record["failback_polls"] = polls
    record["failback_missing"] = missing[:200]
    interval = sweep_interval(ctx, len(phones))
    limit = max(1, math.ceil(float(ctx.params.get("failback_timeout", 900)) / interval))
    ctx.progress(node, f"{len(phones) - len(missing)}/{len(phones)} phones failed back")
    if polls > limit:
        record["failback_gated"] = True
        return Outcome.gate(
            f"{len(missing)} of the {len(phones)} phones registered to {node} before the change did not "
            f"register again after its Cisco CallManager restart: {names(missing)}. Check them (reset "
            f"them; `utils itl reset localkey` on the publisher for an ITL mismatch) before the next "
            f"node's CallManager restarts; `cucm-renew approve {ctx.run_id}` goes on without them",
            on_approve=None,
            output={"restarts": done},
            evidence={"failback_missing": missing, "node": node},
        )
    return Outcome.wait(
        interval,
        f"waiting for {len(missing)} phone(s) to fail back to {node} before the next node: {names(missing)}",
        output={"restarts": done},
    )


def register(registry: Registry) -> None:
    registry.step("restart_services")(classified(restart_services))
