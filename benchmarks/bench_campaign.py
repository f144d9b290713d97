"""A full five-type campaign on a four-node cluster with 10,000 phones, beside its critical path.

The critical path is the sum of the waits no tool can avoid under Cisco's order: one outage at a
time per cluster, so every type's service restarts in order (publisher first, one node at a time,
on every node where the service is activated), the phones failing back after each CallManager
restart, and for the phone-impacting types the phone reset and the re-registration, one type after
another. Everything else (engine, adapters, polling latency, CSRs and signing, which run in
parallel before the outages) is overhead. Also: the AXL requests spent on resets, RisPort70
requests per sweep and throttle faults (there should be none). Times are wall-clock seconds on this
machine, with the simulator's time scale; "CUCM time" multiplies them back.

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
    pool_resets = sum(len(t) for t in state["device_pool_resets"].values())
    phone_requests = axl_calls.get("doDeviceReset", 0)
    # Reset by name, CUCM takes phones at the configured pace (10 a second): that pace is
    # unavoidable, the simulator's own speed on two busy cores is not. A pool is one request.
    paced_reset = phone_requests / len(PHONE_TYPES) / PHONE_RESETS_PER_SECOND / TIME_SCALE
    critical = sum(
        figures[t]["restarts"]
        + figures[t]["failback"]
        + (paced_reset + figures[t]["reregistration"] if t in PHONE_TYPES else 0.0)
        for t in figures
    )
    resets = sum(figures[t]["reset"] for t in PHONE_TYPES)
    sweeps = sum(
        int((v.context.get("phones") or {}).get("sweeps", 0)) + 1
        for v in views
        if v.definition in PHONE_TYPES
    )
    print(f"  cluster: 3 CUCM nodes + 1 IM&P, {PHONES} phones, mixed mode, time scale x{TIME_SCALE:g}")
    print(f'  phone_reset = "{method}"')
    print(f"  runs: {', '.join(f'{v.definition}={v.state}' for v in views)}")
    print(
        f"  wall time, five types:            {wall:7.1f} s   ({wall * TIME_SCALE / 60:6.0f} min CUCM time)"
    )
    cucm_min = critical * TIME_SCALE / 60
    print(f"  critical path (unavoidable waits): {critical:7.1f} s   ({cucm_min:6.0f} min CUCM time)")
    print(
        f"  overhead beyond the critical path: {wall - critical:7.1f} s   ({(wall - critical) / wall:6.1%})"
        f"; wall / critical path = {wall / critical:.2f}x"
    )
    for t in CERT_TYPES:
        f = figures.get(t)
        if f:
            print(
                f"    {t:<12} restarts {f['restarts']:6.1f} s   failback {f['failback']:6.1f} s   "
                f"phone reset {f['reset']:6.1f} s   re-registration {f['reregistration']:6.1f} s"
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
