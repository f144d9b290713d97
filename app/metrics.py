"""Prometheus metrics for ``cucm-renew daemon --metrics HOST:PORT``.

Everything is read at scrape time: the runs from the state database (so a command another process
ran shows at the next scrape, and nothing has to be kept in step with the store) and RisPort70's
request counters from the adapter. Names follow Prometheus' conventions: a timestamp is
``*_timestamp_seconds`` (seconds since the epoch), a duration ``*_seconds``, a counter ``*_total``.

- ``cucm_renew_certificate_expiry_timestamp_seconds{cluster,node,type}``: when each node's
  certificate expires, from the newest run's expiry check, or the certificate it verified after
  renewing. Alert on ``... - time() < 14 * 86400``.
- ``cucm_renew_runs{type,state,status}``: runs by type, state and status (final runs included).
- ``cucm_renew_gate_waiting_seconds{cluster,type,run,state}``: each run held ``paused`` for an
  operator, and for how long; ``cucm_renew_gates_waiting`` counts them.
- ``cucm_renew_last_success_timestamp_seconds{cluster,type}``: when a run last renewed and verified.
- ``cucm_renew_risport_requests_total{node}``, ``cucm_renew_risport_throttles_total{node}``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from adapters.cucm.risport import COUNTERS
from engine.facade import Engine

SUCCESS_STATE = "done"


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class RenewalCollector(Collector):
    """The daemon's metrics, computed from the store at each scrape."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    def collect(self) -> Iterable[Any]:
        now = self.clock()
        runs = sorted(self.engine.store.runs(), key=lambda r: (r.created_at, r.id))
        by_state = GaugeMetricFamily(
            "cucm_renew_runs",
            "Runs by certificate type, state and status",
            labels=["type", "state", "status"],
        )
        for (definition, state, status), count in sorted(
            Counter((r.definition, r.held_from or r.state, r.status) for r in runs).items()
        ):
            by_state.add_metric([definition, state, status], count)

        gates = GaugeMetricFamily(
            "cucm_renew_gate_waiting_seconds",
            "How long each run held paused for an operator has waited",
            labels=["cluster", "type", "run", "state"],
        )
        waiting = 0
        for r in runs:
            if r.status == "paused":
                waiting += 1
                gates.add_metric(
                    [r.scope, r.definition, r.id, r.held_from or r.state], max(0.0, now - r.updated_at)
                )
        gates_count = GaugeMetricFamily(
            "cucm_renew_gates_waiting", "Runs held paused for an operator", waiting
        )

        expiry: dict[tuple[str, str, str], float] = {}
        success: dict[tuple[str, str], float] = {}
        for r in runs:  # oldest first: a newer run's reading replaces an older one's
            checked = r.context.get("expiry")
            if isinstance(checked, dict):
                for node, summary in checked.items():
                    at = _timestamp(summary.get("not_after")) if isinstance(summary, dict) else None
                    if at is not None:
                        expiry[(r.scope, str(node), r.definition)] = at
            verified = r.context.get("verified")
            if isinstance(verified, dict):
                for node, result in verified.items():
                    if isinstance(result, dict) and result.get("ok"):
                        at = _timestamp(result.get("not_after"))
                        if at is not None:
                            expiry[(r.scope, str(node), r.definition)] = at
            if r.state == SUCCESS_STATE:
                key = (r.scope, r.definition)
                success[key] = max(success.get(key, 0.0), r.updated_at)
        expiry_family = GaugeMetricFamily(
            "cucm_renew_certificate_expiry_timestamp_seconds",
            "When each node's certificate of each type expires (seconds since the epoch)",
            labels=["cluster", "node", "type"],
        )
        for (cluster, node, cert_type), at in sorted(expiry.items()):
            expiry_family.add_metric([cluster, node, cert_type], at)
        success_family = GaugeMetricFamily(
            "cucm_renew_last_success_timestamp_seconds",
            "When a run last renewed and verified this type on this cluster (seconds since the epoch)",
            labels=["cluster", "type"],
        )
        for (cluster, cert_type), at in sorted(success.items()):
            success_family.add_metric([cluster, cert_type], at)

        requests, throttles = COUNTERS.snapshot()
        requests_family = CounterMetricFamily(
            "cucm_renew_risport_requests", "RisPort70 selectCmDeviceExt requests sent", labels=["node"]
        )
        for node, count in sorted(requests.items()):
            requests_family.add_metric([node], count)
        throttles_family = CounterMetricFamily(
            "cucm_renew_risport_throttles", "RisPort70 rate-limit faults received", labels=["node"]
        )
        for node, count in sorted(throttles.items()):
            throttles_family.add_metric([node], count)
        yield from (
            expiry_family,
            by_state,
            gates_count,
            gates,
            success_family,
            requests_family,
            throttles_family,
        )


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9464`` for IPv6) -> (host, port); ValueError names the fix."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:9464)")
    return host, int(port)


@contextmanager
def serving(
    engine: Engine, listen: str, *, clock: Callable[[], float] = time.time
) -> Iterator[tuple[str, int]]:
    """Serve ``/metrics`` on ``listen`` while the block runs; yields the address bound."""
    host, port = parse_listen(listen)
    registry = CollectorRegistry()
    registry.register(RenewalCollector(engine, clock))
    server, thread = start_http_server(port, addr=host, registry=registry)
    try:
        yield str(server.server_address[0]), int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        if isinstance(thread, threading.Thread):
            thread.join(timeout=10)
