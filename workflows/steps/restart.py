"""restarted: the type's services, publisher first, then one node at a time, each running again
before the next restart begins."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.api import Effect, Outcome, Registry, StepContext
from workflows.context import RestartRecord, view
from workflows.timestamps import instant, iso

from .common import deps, role_of, targets
from .errors import classified

RUNNING = "Started"


def _ts(value: datetime | None) -> str | None:
    return iso(value) if value is not None else None


def restart_services(ctx: StepContext) -> Outcome:
    """Each restart is an effect keyed by node and service; its intent records the service's start
    time before the restart, so a resumed run that finds a later start time knows the restart
    happened and does not restart the service a second time."""
    cucm = deps(ctx).cucm
    services: list[str] = list(ctx.params.get("services") or [])
    done = [RestartRecord(**r) for r in view(ctx.context).get("restarts") or []]
    if not done:
        # Decide once, durably, where each service runs: after a crash mid-restart a service may be
        # Stopped because of us, and must not then be taken for one that was never active.
        for node in targets(ctx):
            for service in services:
                before = cucm.service_status(node, service)
                record = RestartRecord(node=node, role=role_of(ctx, node), service=service)
                if before.status != RUNNING:
                    # Cisco: restart only where the service runs and is active.
                    record.update(RestartRecord(skipped=True, status=before.status))
                else:
                    record["previous_start"] = _ts(before.start_time)
                done.append(record)
        return Outcome.wait(0, "restart plan recorded", output={"restarts": done})
    for record in done:
        node, service = str(record["node"]), str(record["service"])
        if record.get("running_at") or record.get("skipped"):
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
        if any(not (r.get("running_at") or r.get("skipped")) for r in done):
            # Checkpoint before the next restart: were the process to die after that restart, the
            # resumed step must not record this service as running only once the next one began.
            return Outcome.wait(0, f"{service} on {node} is running again", output={"restarts": done})
    restarted = [r for r in done if not r.get("skipped")]
    return Outcome.advance(
        output={"restarts": done},
        evidence={
            "restarts": [
                {"node": r["node"], "service": r["service"], "start_time": r.get("start_time")}
                for r in restarted
            ]
        },
        reason=f"{len(restarted)} service restart(s), publisher first",
    )


def register(registry: Registry) -> None:
    registry.step("restart_services")(classified(restart_services))
