"""RisPort70 economy and reaction time for 40,000 phones, through the real adapter and the simulator.

Prints, for a cluster of 40,000 phones:

* requests per registration sweep (goal: 40, i.e. ceil(phones / 1000)) and throttle faults (goal: 0),
  as the simulator counted them;
* the delay between the last phone registering again after a reset and the sweep that notices it
  (goal: at most one sweep period, the step's wait between sweeps plus one sweep), sweeping as the
  phones step does: the whole cluster once, then the missing phones by name.

The simulator runs in real time (scale 1) with its RisPort70 limit raised to match the configuration
(600 a minute on both sides), so a 40-request sweep is not spread over minutes; re-registration
delays are shortened to 5-25 s so the whole benchmark takes about a minute.
"""

from __future__ import annotations

import json
import math
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from app.config import load_config
from app.initconfig import simulator_config
from app.wiring import Adapters
from simulator.runtime import SimulatedCluster
from workflows.steps.phones import back, sweep_for, sweep_interval

PHONES = 40_000
PER_MINUTE = 600
SETTLE = 20.0  # the phones step waits this long after the reset before its first sweep (param reset_settle)


class Counting:
    """Counts the simulator's RisPort70 admissions and refusals (throttle faults)."""

    def __init__(self, sim: SimulatedCluster) -> None:
        self.allowed = 0
        self.refused = 0
        self._lock = threading.Lock()
        allow = sim.ris_limiter.allow

        def spy(node: str) -> bool:
            ok = bool(allow(node))
            with self._lock:
                if ok:
                    self.allowed += 1
                else:
                    self.refused += 1
            return ok

        sim.ris_limiter.allow = spy

    def total(self) -> int:
        with self._lock:
            return self.allowed + self.refused


def _configure(sim: SimulatedCluster, folder: Path) -> Any:
    path = folder / "cucm-renew.toml"
    text = simulator_config(sim.json_path, path).replace(
        "requests_per_minute = 15", f"requests_per_minute = {PER_MINUTE}"
    )
    path.write_text(text)
    return load_config(path)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-risport-") as tmp:
        folder = Path(tmp)
        sim = SimulatedCluster(
            folder / "sim",
            nodes=3,
            phones=PHONES,
            time_scale=1.0,
            ris_rate_limit=PER_MINUTE,
            reregister_seconds=(5.0, 25.0),
        )
        with sim:
            counting = Counting(sim)
            config = _configure(sim, folder)
            adapters = Adapters(config)
            try:
                port = adapters.cucm(next(iter(config.clusters)))
                baseline = _economy(port, counting)
                _reaction(sim, port, counting, config.risport_per_minute, baseline)
            finally:
                adapters.close()


def _sweep(port: Any, counting: Counting) -> tuple[dict[str, Any], int, int, float]:
    before, refused_before = counting.total(), counting.refused
    started = time.monotonic()
    seen = port.registered_phones()
    return seen, counting.total() - before, counting.refused - refused_before, time.monotonic() - started


def _economy(port: Any, counting: Counting) -> dict[str, Any]:
    """Three sweeps of the whole cluster; returns the last one's phone states."""
    goal = math.ceil(PHONES / 1000)
    figures = [_sweep(port, counting) for _ in range(3)]
    for i, (seen, requests, refused, took) in enumerate(figures, 1):
        print(
            f"sweep {i}: {len(seen)} phones, {requests} RisPort70 requests (goal {goal}), "
            f"{refused} throttle faults (goal 0), {took:.2f} s"
        )
    return figures[-1][0]


def _reaction(
    sim: SimulatedCluster, port: Any, counting: Counting, per_minute: float, baseline: dict[str, Any]
) -> None:
    """Reset every phone, then sweep as the phones step does (workflows/steps/phones.py, through
    its own functions): the whole cluster, then only the phones still missing, by name, with the
    step's interval between sweeps. ``baseline``: the phone states before the reset."""
    cluster = sim.cluster
    names = list(cluster.phones.names)
    stamps = {n: s.timestamp for n, s in baseline.items() if s.timestamp is not None}
    reset_at = time.monotonic()
    for name in names:
        cluster.reset_phone(name)
    ctx = SimpleNamespace(params={"sweep_interval": 15}, deps=SimpleNamespace(risport_per_minute=per_minute))
    time.sleep(SETTLE)
    sweeps: list[tuple[int, float]] = []  # (phones asked for, seconds)
    missing = names
    interval = 0.0
    while True:
        started = time.monotonic()
        seen = sweep_for(port, missing, of=PHONES)  # every phone missing: a sweep of the cluster
        sweeps.append((len(missing), time.monotonic() - started))
        missing = [n for n in missing if not back(seen, n, stamps)]
        if not missing:
            noticed = time.monotonic()
            break
        interval = sweep_interval(ctx, len(seen))  # type: ignore[arg-type]
        time.sleep(interval)
    with cluster.lock:
        cluster.advance()
        last = max(cluster.phones.reg_at)
    lag = noticed - last
    longest = max(took for _asked, took in sweeps)
    period = interval + longest
    print(
        "sweeps: "
        + ", ".join(f"{asked} phones {took:.2f} s" for asked, took in sweeps)
        + " (the first pages the whole cluster, the others ask for the missing phones by name)"
    )
    print(
        f"re-registration: last phone registered {last - reset_at:.1f} s after the reset, noticed "
        f"{lag:.1f} s later by sweep {len(sweeps)} (goal <= one sweep period = {interval:.0f} s wait + "
        f"{longest:.1f} s longest sweep = {period:.1f} s): {'met' if lag <= period else 'MISSED'}"
    )
    print(f"throttle faults over the whole benchmark: {counting.refused} (goal 0)")
    print(json.dumps({"requests_per_sweep_goal": math.ceil(PHONES / 1000), "notice_lag_s": round(lag, 2)}))


if __name__ == "__main__":
    main()
