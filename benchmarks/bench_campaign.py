"""A full five-type campaign on a four-node cluster with 10,000 phones, beside its critical path.

What counts as critical is measured, not estimated: the simulator records, as its own truth, when
each service restart was asked for and when the service was Started again, and when each phone
knocked off (by a restart, CUCM's automatic reset on an identity upload, a pool or phone reset)
actually registered again. Under Cisco's order only one type's outage runs at a time per cluster,
and within it each step waits for the one before (publisher first, one node at a time, failback
after each CallManager restart, phones back before the next type). So the critical path is, for
each type in turn, the time inside its outage during which CUCM itself is busy: the union of its
restarts (request to Started) and of its phones' re-registrations (knocked off to the last one
registered again). CUCM's automatic-reset grace period is not critical when every phone is back
before it ends: the tool has then nothing left to look for. With ``phone_reset = "phones"`` CUCM's
pace for resets by name (10 a second) is added where the simulator went faster.

Not critical, and reported as overhead: the preparation before the first outage (CSRs, CA
signing, trust uploads: seconds of tool and API work that CUCM does not make anyone wait for),
waits for the ``outage`` lease beyond the holder's release, and within an outage the tool's own
time (polling latency, RisPort70 sweeps, verification handshakes, audit writes). Each type's line
shows, from the runs' audit events: preparation (start to asking for the lease), waiting for the
lease, the outage (lease taken to released) and inside it restarts / phones / verification / tool
overhead. Also: the AXL requests spent on resets, RisPort70 requests per sweep and throttle faults
(there should be none). Times are wall-clock seconds on this machine, with the simulator's time
scale; "CUCM time" multiplies them back.

Phones are reset by device pool (the default: one AXL resetDevicePool per pool). For comparison,
``python -m benchmarks.bench_campaign phones`` runs the same campaign with ``phone_reset =
"phones"`` (one throttled doDeviceReset per phone).
"""

from __future__ import annotations

import logging
import math
import sys
import tempfile
import threading
import time
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from adapters.ca.local import LocalCA
from app.campaign import start_campaign
from app.config import load_config
from app.demo import wait_figures
from app.initconfig import simulator_config
from app.wiring import PHONE_RESETS_PER_SECOND, Adapters
from engine.facade import Engine
from engine.logging import configure_logging
from simulator import soap
from simulator.runtime import SimulatedCluster
from workflows.cert_types import CERT_TYPES
from workflows.registry import build_registry, load_checked_definitions

PHONES = 10_000
TIME_SCALE = 600.0
PHONE_TYPES = ("CAPF", "CallManager", "TVS")
RESET_OPERATIONS = ("doDeviceReset", "resetDevicePool")
OUTAGE = "outage"
"""The lease group of one outage at a time per cluster (workflows/*.yaml)."""


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


Interval = tuple[float, float]


def _union(intervals: list[Interval], within: Interval) -> list[Interval]:
    """``intervals`` clipped to ``within`` and merged, in order."""
    low, high = within
    clipped = sorted((max(a, low), min(b, high)) for a, b in intervals if b > low and a < high)
    merged: list[Interval] = []
    for a, b in clipped:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _length(intervals: list[Interval]) -> float:
    return sum(b - a for a, b in intervals)


class Truth:
    """When CUCM was busy, as the simulator itself knows it (wall-clock seconds): each service from
    the request that stopped it to Started again, and each set of phones knocked off at one moment
    to the moment the last of them registered again. Read from the simulator's own timed effects,
    not from anything the tool observed."""

    def __init__(self, sim: SimulatedCluster) -> None:
        cluster = sim.cluster
        clock = cluster.clock
        offset = time.time() - time.monotonic()
        self.restarts: list[Interval] = []
        self.phones: dict[float, float] = {}
        opened: dict[tuple[str, str], float] = {}
        services = cluster.service_control
        control, finish = services.control, services._finish_start

        def controlled(node: Any, name: str, action: str) -> Any:
            svc = control(node, name, action)
            if svc.state in ("Stopping", "Starting"):
                opened.setdefault((node.name, name), clock.now() + offset)
            return svc

        def finished(node: Any, svc: Any, gen: int) -> None:
            current = svc.generation == gen
            finish(node, svc, gen)
            began = opened.pop((node.name, svc.name), None) if current else None
            if began is not None:
                self.restarts.append((began, clock.now() + offset))

        services.control = controlled  # type: ignore[method-assign]
        services._finish_start = finished  # type: ignore[method-assign]
        phones = cluster.phone_control
        schedule, reg_at = phones.schedule_registration, phones.phones.reg_at

        def scheduled(i: int, now: float) -> None:
            schedule(i, now)
            if reg_at[i] != math.inf:
                at = now + offset
                self.phones[at] = max(self.phones.get(at, at), reg_at[i] + offset)

        phones.schedule_registration = scheduled  # type: ignore[method-assign]

    def phone_intervals(self) -> list[Interval]:
        return list(self.phones.items())


def breakdown(
    views: list[Any], events: list[Any], definitions: Any, truth: Truth
) -> dict[str, dict[str, float]]:
    """Per type, from its audit events and the simulator's record: preparation (start to asking
    for the outage lease), lease (waiting for it), outage (holding it), and within the outage
    restarts, phones (beyond the restarts), verification and the tool's own time."""
    out: dict[str, dict[str, float]] = {}
    for v in views:
        mine = [e for e in events if e.run == v.id]
        if not mine:
            continue
        excl = next((x for x in definitions[v.definition].exclusion if x.group == OUTAGE), None)
        if excl is None:
            continue
        start = _ts(mine[0].ts)
        taken = next((_ts(e.ts) for e in mine if e.to_state == excl.from_state != e.from_state), None)
        if taken is None:
            continue
        released = next(
            (_ts(e.ts) for e in mine if _ts(e.ts) >= taken and e.to_state not in excl.section),
            _ts(mine[-1].ts),
        )
        asked = next(
            (_ts(e.ts) for e in mine if e.trigger == "wait" and e.reason.startswith("waiting for lease")),
            taken,
        )
        entered = next((_ts(e.ts) for e in mine if e.to_state == "verified" != e.from_state), released)
        left = next((_ts(e.ts) for e in mine if e.from_state == "verified" != e.to_state), entered)
        outage = (taken, released)
        restarts = _length(_union(truth.restarts, outage))
        busy = _length(_union(truth.restarts + truth.phone_intervals(), outage))
        verification = left - entered
        out[v.definition] = {
            "start": start,
            "taken": taken,
            "released": released,
            "preparation": asked - start,
            "lease": taken - asked,
            "outage": released - taken,
            "restarts": restarts,
            "phones": busy - restarts,
            "verification": verification,
            "tool": released - taken - busy - verification,
            "critical": busy,
        }
    return out


def main(method: str = "pools") -> None:
    configure_logging("error")
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    folder = Path(tempfile.mkdtemp(prefix="bench-campaign-"))
    sim = SimulatedCluster(
        folder / "sim", nodes=3, imp=1, phones=PHONES, mixed_mode=True, time_scale=TIME_SCALE
    ).start()
    ris_calls: list[bool] = []
    lock = threading.Lock()
    allow = sim.ris_limiter.allow

    def counting(node: str) -> bool:
        ok = allow(node)
        with lock:
            ris_calls.append(ok)
        return ok

    sim.ris_limiter.allow = counting
    truth = Truth(sim)
    axl_calls: dict[str, int] = {}
    serve_axl = soap.axl

    def counting_axl(cluster: Any, node: Any, op: Any, action: str) -> str:
        name = op.tag.rpartition("}")[2]
        with lock:
            axl_calls[name] = axl_calls.get(name, 0) + 1
        return serve_axl(cluster, node, op, action)

    soap.axl = counting_axl  # type: ignore[assignment]
    try:
        config_path = folder / "cucm-renew.toml"
        text = simulator_config(sim.json_path, config_path)
        assert '\nphone_reset = "pools"\n' in text
        text = text.replace('\nphone_reset = "pools"\n', f'\nphone_reset = "{method}"\n', 1)
        config_path.write_text(text)
        config = load_config(config_path)
        lab = config.cas["lab"]
        assert lab.folder is not None
        sim.trust_ca(LocalCA(lab.folder, name="lab").root_pem)
        adapters = Adapters(config)
        registry = build_registry()
        definitions = load_checked_definitions(registry)
        engine = Engine(folder / "state", definitions, registry, adapters.deps, time_scale=config.time_scale)
        events: list[Any] = []
        try:
            started = time.monotonic()
            started_wall = time.time()
            start_campaign(engine, config, [("sim", list(CERT_TYPES))], force=False, definitions=definitions)
            engine.run_until_quiet(on_event=events.append)
            wall = time.monotonic() - started
            views = [engine.status(r.id)[0] for r in engine.find_runs(include_final=True)]
        finally:
            engine.close()
            adapters.close()
        state = sim.state()
    finally:
        soap.axl = serve_axl  # type: ignore[assignment]
        sim.stop()

    figures = {v.definition: wait_figures(v, events) for v in views}
    parts = breakdown(views, events, definitions, truth)
    pool_resets = sum(len(t) for t in state["device_pool_resets"].values())
    phone_requests = axl_calls.get("doDeviceReset", 0)
    # Reset by name, CUCM takes phones at the configured pace (10 a second): that pace is
    # unavoidable, the simulator's own speed on two busy cores is not. A pool is one request.
    paced_reset = phone_requests / PHONE_RESETS_PER_SECOND / TIME_SCALE
    critical = sum(f["critical"] for f in parts.values()) + max(
        0.0, paced_reset - sum(figures[t]["reset"] for t in PHONE_TYPES if t in figures)
    )
    resets = sum(figures[t]["reset"] for t in PHONE_TYPES if t in figures)
    sweeps = sum(
        int((v.context.get("phones") or {}).get("sweeps", 0)) + 1
        for v in views
        if v.definition in PHONE_TYPES
    )
    order = sorted(parts, key=lambda t: parts[t]["taken"])
    outside = _length(_union(truth.restarts + truth.phone_intervals(), (started_wall, started_wall + wall)))
    outside -= sum(f["critical"] for f in parts.values())
    print(f"  cluster: 3 CUCM nodes + 1 IM&P, {PHONES} phones, mixed mode, time scale x{TIME_SCALE:g}")
    print(f'  phone_reset = "{method}"')
    print(f"  runs: {', '.join(f'{v.definition}={v.state}' for v in views)}")
    print(
        f"  wall time, five types:            {wall:7.1f} s   ({wall * TIME_SCALE / 60:6.0f} min CUCM time)"
    )
    cucm_min = critical * TIME_SCALE / 60
    print(f"  critical path (CUCM busy, in outages): {critical:5.1f} s   ({cucm_min:6.0f} min CUCM time)")
    print(
        f"  overhead beyond the critical path: {wall - critical:7.1f} s   ({(wall - critical) / wall:6.1%})"
        f"; wall / critical path = {wall / critical:.2f}x"
    )
    if order:
        first, last = parts[order[0]], parts[order[-1]]
        gaps = sum(parts[b]["taken"] - parts[a]["released"] for a, b in pairwise(order))
        print(
            f"    before the first outage {first['taken'] - started_wall:5.1f} s   between outages "
            f"{gaps:5.1f} s   after the last {started_wall + wall - last['released']:5.1f} s   "
            f"outages {sum(f['outage'] for f in parts.values()):5.1f} s (of which tool "
            f"{sum(f['tool'] for f in parts.values()):5.1f} s, verification "
            f"{sum(f['verification'] for f in parts.values()):5.1f} s)"
        )
    if abs(outside) > 0.05:
        print(f"    CUCM busy outside any outage: {outside:5.1f} s (should be none)")
    print("    per type, in outage order (seconds):")
    print("      type         prepare  lease | outage = restarts  phones  verify  tool")
    for t in order:
        f = parts[t]
        print(
            f"      {t:<12} {f['preparation']:6.1f} {f['lease']:6.1f} | {f['outage']:6.1f}   "
            f"{f['restarts']:6.1f}  {f['phones']:6.1f}  {f['verification']:6.1f} {f['tool']:5.1f}"
        )
    print("    as the tool saw it (request to seen running, seen back):")
    for t in CERT_TYPES:
        w = figures.get(t)
        if w:
            print(
                f"      {t:<12} restarts {w['restarts']:6.1f} s   failback {w['failback']:6.1f} s   "
                f"phone reset {w['reset']:6.1f} s   re-registration {w['reregistration']:6.1f} s"
            )
    throttled = ris_calls.count(False)
    print(
        f"  RisPort70: {len(ris_calls)} requests in {sweeps} sweeps "
        f"({len(ris_calls) / max(sweeps, 1):.1f} per sweep; at most ceil({PHONES}/1000) = "
        f"{math.ceil(PHONES / 1000)}), "
        f"{throttled} throttled"
    )
    reset_requests = sum(axl_calls.get(op, 0) for op in RESET_OPERATIONS)
    print(
        f"  phone resets: {state['phone_resets']} phones reset with {reset_requests} AXL requests "
        f"({pool_resets} resetDevicePool, {phone_requests} doDeviceReset) in {resets:.1f} s; "
        f"AXL requests in all: {sum(axl_calls.values())}"
    )
    if phone_requests:
        print(
            f"    by name: {phone_requests / max(resets, 1e-9):.0f}/s, bound by the simulator; CUCM's pace "
            f"of {PHONE_RESETS_PER_SECOND}/s counts in the critical path"
        )
    print(f"  phones at the end: {state['phones']}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
