"""Network faults: lost requests, a node that is down, and RisPort70's rate limit.

The simulator injects the faults (see simulator/faults.py); the test wraps its fault decisions and
its RisPort70 limiter to count what it did, so the assertions rest on what the server saw.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.cucm.retry import RetryPolicy
from app.config import load_config
from app.wiring import Adapters
from tests.proof.harness import ProofLab, assert_audit_sound, assert_exactly_once, definitions

ALL_TYPES = ["tomcat", "ipsec", "CAPF", "CallManager", "TVS"]


def count_faults(lab: ProofLab) -> Counter[str]:
    """Wrap the simulator's fault decisions: endpoint/kind -> how many were injected."""
    seen: Counter[str] = Counter()
    lock = threading.Lock()
    decide = lab.sim.faults.decide

    def counting(node: str, endpoint: str) -> str | None:
        fault = decide(node, endpoint)
        if fault is not None:
            with lock:
                seen[f"{endpoint}/{fault}"] += 1
        return fault

    lab.sim.faults.decide = counting  # type: ignore[method-assign]
    return seen


def log_lines(stderr: str) -> Iterator[dict[str, Any]]:
    for line in stderr.splitlines():
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except ValueError:
                continue


def assert_engine_retries_within_bounds(lab: ProofLab) -> list[Any]:
    """Every retry the audit records stays within its state's declared attempts."""
    defs = definitions()
    retries = [e for e in lab.store.events() if e.trigger == "retry" and e.from_state == e.to_state]
    for e in retries:
        policy = defs[e.definition].states[e.from_state].retry
        assert 1 < int(e.evidence["attempt"]) <= policy.attempts, e
        assert e.reason, e
    return retries


def fault_seed() -> int:
    """The seed of a suite's fault draws: one fixed seed, so a run fails or passes the same way each
    time; CUCM_RENEW_FAULT_SEED tries another (``random`` picks a new one) or replays one a failure
    names."""
    chosen = os.environ.get("CUCM_RENEW_FAULT_SEED", "20261129")
    return random.randrange(1 << 20) if chosen == "random" else int(chosen)


@pytest.mark.slow
def test_every_run_completes_through_twenty_percent_lost_requests(tmp_path: Path) -> None:
    seed = fault_seed()
    # AXL and RisPort70 see a handful of requests each (phones are reset by device pool, 40 phones
    # fit one RisPort page): higher rates there make sure some of them fail too (none failing would
    # be about 0.4^9 for RisPort, under 0.1%); the adapters' and the engine's retries absorb them.
    faults = f"5xx=0.1,timeout=0.05,drop=0.05,5xx@axl=0.4,5xx@ris=0.5,hold=0.3,seed={seed}"
    # Engine waits are divided by the time scale, the adapters' own back-off is not: a scale that
    # keeps the restart timeout (4 h) well above a few seconds of back-off.
    with ProofLab(tmp_path, nodes=2, imp=1, phones=40, faults=faults, time_scale=300.0) as lab:
        injected = count_faults(lab)
        done = lab.cli("--log-level", "warning", "run")
        assert done.returncode == 0, f"seed {seed}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
        runs = lab.runs()
        assert sorted(r.definition for r in runs) == sorted(ALL_TYPES)
        assert {r.state for r in runs} == {"done"}, [(r.definition, r.state, r.last_error) for r in runs]
        # Faults reached every endpoint: certmgr REST, AXL, RisPort70, ControlCenterServices.
        for endpoint in ("rest", "axl", "ris", "ccs"):
            assert any(k.startswith(f"{endpoint}/") for k in injected), (endpoint, injected)
        assert sum(injected.values()) >= 20, injected
        # The adapters retried within their declared bound, and said so in the log.
        declared = RetryPolicy().attempts
        retried = [e for e in log_lines(done.stderr) if e.get("event") == "cucm.retry"]
        assert retried, done.stderr[-2000:]
        assert all(e["of"] == declared and 1 <= e["attempt"] < declared for e in retried), retried
        assert all(e.get("node") and e.get("operation") for e in retried)
        assert_engine_retries_within_bounds(lab)
        state = lab.sim.state()
        for r in runs:
            for node in r.context["targets"]:
                assert state["presented"][node][r.definition] == r.context["issued"][node]["sha256"]
        assert_audit_sound(lab)


@pytest.mark.slow
def test_a_node_down_briefly_is_retried_and_the_audit_records_the_retries(tmp_path: Path) -> None:
    with ProofLab(tmp_path, nodes=2, phones=0, faults="down=cucm-sub1@0:9s") as lab:
        # The outage is timed from here, not from the simulator's start: setting up the lab may
        # take longer than 9 s on a loaded machine, and an outage over before the run begins
        # proves nothing.
        lab.sim.faults.started = time.monotonic()
        done = lab.cli("run", "--type", "ipsec")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert lab.run_of("ipsec").state == "done"
        retries = assert_engine_retries_within_bounds(lab)
        assert retries, "the outage outlasted the adapter's retries: the engine must have retried"
        assert all("cucm-sub1" in e.reason for e in retries), [e.reason for e in retries]
        assert_audit_sound(lab)


@pytest.mark.slow
def test_a_node_down_beyond_the_retry_budget_fails_the_run_naming_it_and_retry_completes(
    tmp_path: Path,
) -> None:
    # Long enough that the run exhausts its retry budget before the node returns, even on a loaded
    # machine (the adapters back off in real seconds).
    outage = 60.0
    with ProofLab(tmp_path, nodes=2, phones=0, faults=f"down=cucm-sub1@0:{outage:g}s") as lab:
        started = lab.sim.faults.started = time.monotonic()  # the outage begins with the run
        failed = lab.cli("run", "--type", "ipsec")
        assert time.monotonic() - started < outage, "the run outlived the outage: no budget was exceeded"
        assert failed.returncode == 1, failed.stdout[-3000:]
        run = lab.run_of("ipsec")
        assert run.status == "failed", (run.state, run.last_error)
        assert "cucm-sub1.example.com" in run.last_error, run.last_error
        assert "cucm-sub1.example.com" in failed.stdout
        status = lab.cli("status", run.id, "--json")
        assert status.returncode == 0 and json.loads(status.stdout)[0]["status"] == "failed"
        while lab.sim.faults.node_down("cucm-sub1"):
            time.sleep(0.2)
        again = lab.cli("retry", run.id)
        assert again.returncode == 0, again.stderr
        done = lab.cli("run", "--type", "ipsec")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        run = lab.run_of("ipsec")
        assert run.state == "done"
        state = lab.sim.state()
        assert all(state["csrs_generated"][n]["ipsec"] == 1 for n in run.context["targets"])
        assert [e.trigger for e in lab.store.events() if e.to_state == "failed"] != []
        assert any(e.trigger == "retry" and e.from_state == "failed" for e in lab.store.events())
        assert_audit_sound(lab)


class RisSpy:
    """Wraps the simulator's RisPort70 limiter: when each request came and whether it was refused."""

    def __init__(self, lab: ProofLab) -> None:
        self.limiter = lab.sim.ris_limiter
        self.window = 60.0 / lab.sim.cluster.time_scale
        self.limit = lab.sim.cluster.ris_rate_limit
        self.allowed: list[float] = []
        self.refused: list[float] = []
        allow = self.limiter.allow

        def spy(node: str) -> bool:
            ok = bool(allow(node))
            (self.allowed if ok else self.refused).append(time.monotonic())
            return ok

        self.limiter.allow = spy

    def busiest_window(self) -> int:
        stamps = sorted(self.allowed + self.refused)
        most, recent = 0, deque[float]()
        for t in stamps:
            recent.append(t)
            while recent and recent[0] <= t - self.window:
                recent.popleft()
            most = max(most, len(recent))
        return most


@pytest.mark.slow
def test_risport_sweeps_never_exceed_the_rate_limit(tmp_path: Path) -> None:
    """Back-to-back sweeps of 20,000 phones (20 requests each) against the simulator's limit of 15
    requests a minute (a minute divided by the time scale), through the tool's own wiring."""
    with ProofLab(tmp_path, nodes=2, phones=20000, time_scale=20.0) as lab:
        spy = RisSpy(lab)
        adapters = Adapters(load_config(lab.config_path))
        results: list[int] = []

        def sweep() -> None:
            port = adapters.cucm("sim")
            for _ in range(2):
                results.append(len(port.registered_phones()))

        worker = threading.Thread(target=sweep, daemon=True)
        worker.start()
        # A throttled adapter backs off for half a minute: stop at the first refusal.
        deadline = time.monotonic() + 120
        while worker.is_alive() and not spy.refused and time.monotonic() < deadline:
            worker.join(0.1)
        refused = list(spy.refused)
        if not worker.is_alive():
            adapters.close()
        busiest = spy.busiest_window()
        assert refused == [], (
            f"the simulator refused a RisPort70 request: {busiest} requests in one "
            f"{spy.window:g} s window against a limit of {spy.limit}"
        )
        assert results == [20000, 20000]
        assert len(spy.allowed) >= 40
        assert busiest <= spy.limit


@pytest.mark.slow
def test_run_returns_when_a_failed_run_holds_up_a_chain_of_lease_waiters(tmp_path: Path) -> None:
    """CAPF fails in `restarted` (its service takes far longer than the state allows) while holding
    phone-impact; CallManager waits for phone-impact while holding itl-signers; TVS waits for
    itl-signers. Nothing can move without an operator, so `cucm-renew run` must say so and exit."""
    slow = "slow=cucm-pub:Cisco Certificate Authority Proxy Function:1000"
    with ProofLab(tmp_path, nodes=2, phones=20, faults=slow) as lab:
        try:
            # Generous for a loaded machine: a run that cannot tell nothing moves never returns.
            done = lab.cli("run", "--type", "CAPF", "--type", "CallManager", "--type", "TVS", timeout=120)
        except subprocess.TimeoutExpired:
            views = [(r.definition, r.state, r.waiting_reason) for r in lab.runs()]
            pytest.fail(f"`cucm-renew run` did not return although nothing can move: {views}")
        assert done.returncode == 1, done.stdout[-2000:]
        runs = {r.definition: r for r in lab.runs()}
        assert runs["CAPF"].status == "failed"
        assert "CAPF" in done.stdout and "failed" in done.stdout


LOSSY = "lost=0.2,seed={seed}"
"""Every mutating endpoint (certmgr REST, AXL, ControlCenterServices, the CLI over SSH) carries out
one request in five and loses its answer."""


def lose_the_first_replies(lab: ProofLab) -> None:
    """Whatever the draws, the first request with effects on each endpoint loses its answer (a
    draw taken by a request without effects is answered normally); then the configured rate."""
    draw = lab.sim.faults.lose_reply
    record = lab.sim.cluster.record

    def first_then_drawn(node: str, endpoint: str) -> bool:
        if not any(r["endpoint"] == endpoint for r in record.lost_replies):
            return True
        return draw(node, endpoint)

    lab.sim.faults.lose_reply = first_then_drawn  # type: ignore[method-assign]


@pytest.mark.slow
@pytest.mark.parametrize("ris_lag", [4.0, 60.0])
def test_lost_replies_and_a_lagging_risport_never_do_anything_twice(tmp_path: Path, ris_lag: float) -> None:
    """Every type through 20% lost replies on every mutating endpoint, with RisPort70 trailing by
    ``ris_lag`` CUCM seconds (scaled like everything else): each run completes, and nothing is done
    twice for one intent (see ``assert_exactly_once``). The configured ``risport_lag`` covers it."""
    seed = fault_seed()
    with ProofLab(
        tmp_path,
        nodes=2,
        imp=1,
        phones=40,
        faults=LOSSY.format(seed=seed),
        time_scale=300.0,
        ris_lag=ris_lag,
        risport_lag=ris_lag + 10,
        phone_interaction="manual",
    ) as lab:
        lose_the_first_replies(lab)
        done = lab.cli("--log-level", "warning", "run")
        assert done.returncode == 0, f"seed {seed}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
        runs = lab.runs()
        assert sorted(r.definition for r in runs) == sorted(ALL_TYPES)
        counts = assert_exactly_once(lab, runs)
        lost = Counter(r["endpoint"] for r in lab.sim.state()["lost_replies"])
        print(f"\nlost replies (seed {seed}, RisPort lag {ris_lag:g} s): {dict(lost)}; {counts}")
        # Answers were lost on REST, SOAP (AXL and ControlCenterServices) and the CLI alike.
        assert all(lost[endpoint] for endpoint in ("rest", "axl", "ccs", "ssh")), (seed, lost)
        # No request with effects was resent by an adapter.
        resent = [
            e for e in log_lines(done.stderr) if e.get("event") == "cucm.retry" and "OutcomeUnknown" in str(e)
        ]
        assert resent == []
        assert_engine_retries_within_bounds(lab)
        assert_audit_sound(lab)
