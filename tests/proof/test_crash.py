"""SIGKILL `cucm-renew run` at the engine's crash points and at random instants, for each type.

Each trial is a real ``cucm-renew run --type T`` subprocess on one state folder, killed by its own
crash point (``CUCM_RENEW_CRASH_AT``) or by the test after a random delay, and started again until
a last, uninterrupted run finishes. The simulator lives in the test process, so it sees every
request of every process. At the end the cluster must look exactly as after an uninterrupted run
of the same type on an identical cluster: one CSR per node, one accepted upload per node, every
service restarted once, every phone reset once, the new certificates presented and verified, no
run failed, and an audit chain that verifies with no gap.
"""

from __future__ import annotations

import random
import signal
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.proof.harness import ProofLab, assert_audit_sound, outcome_shape, restart_counts, role_nodes

TYPES = ["tomcat", "ipsec", "CAPF", "CallManager", "TVS"]
# The engine's boundaries: before the intent is recorded; after the intent, before the side effect;
# after the side effect, before its outcome commits; after the commit (effects, then transitions).
POINTS = [
    "effect.before_intent",
    "effect.after_intent",
    "effect.after_action",
    "effect.after_output",
    "transition.before_commit",
    "transition.after_commit",
]
SPREAD = [1, 2, 3, 5]
LAB = {"nodes": 2, "imp": 1, "phones": 40, "mixed_mode": True, "time_scale": 2000.0}
# Engine waits are scaled, a restarted process is not: each kill costs ~1.5 s of wall time, which
# at x2000 is most of `restarted`'s 4 h timeout (7.2 s). The soak kills far more often in one state,
# so its clusters run at x300 (48 s).
SOAK_LAB = {**LAB, "time_scale": 300.0}


@dataclass
class Tally:
    kills: int = 0
    finished_early: int = 0
    states_at_kill: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)


_REFERENCES: dict[tuple[str, bool], tuple[dict[str, Any], list[dict[str, Any]]]] = {}


def reference(
    tmp: Path, cert_type: str, *, soak: bool = False
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An uninterrupted run on an identical cluster: its outcome, and its effects in order (kept for
    the other tests of this process: the simulator is deterministic in what these compare)."""
    key = (cert_type, soak)
    if key not in _REFERENCES:
        with ProofLab(tmp / f"ref-{cert_type}", **(SOAK_LAB if soak else LAB)) as lab:  # type: ignore[arg-type]
            done = lab.cli("run", "--type", cert_type)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            run = lab.run_of(cert_type)
            _REFERENCES[key] = (outcome_shape(lab.sim.state(), cert_type, run), lab.store.effects(run.id))
    return _REFERENCES[key]


def schedule(cert_type: str, rng: random.Random, *, soak: bool) -> list[str | float]:
    """Crash specifications (``point:N``) and random instants (seconds), in the order tried."""
    offset = TYPES.index(cert_type)
    if soak:
        items: list[str | float] = [f"{p}:{n}" for p in POINTS for n in (1, 2, 3, 4)]
        items += [rng.uniform(0.5, 4.0) for _ in range(20)]
        rng.shuffle(items)
        return items
    # A spread of N per point, shifted per type, so kills land in different states across types.
    items = [f"{p}:{SPREAD[(i + offset) % len(SPREAD)]}" for i, p in enumerate(POINTS)]
    return [*items, rng.uniform(0.8, 3.0), rng.uniform(0.8, 3.0)]


def finished(lab: ProofLab, cert_type: str) -> bool:
    runs = [r for r in lab.runs() if r.definition == cert_type]
    return bool(runs) and all(r.status == "final" for r in runs)


def current(lab: ProofLab, cert_type: str) -> Any | None:
    runs = [r for r in lab.runs() if r.definition == cert_type]
    assert len(runs) <= 1, [(r.id, r.state) for r in runs]
    return runs[0] if runs else None


def attempt(lab: ProofLab, cert_type: str, trial: str | float, tally: Tally) -> str | None:
    """One process, killed by its crash point or after ``trial`` seconds, unless it finishes first;
    returns what went wrong when it ended otherwise than killed or finished."""
    if isinstance(trial, str):
        proc = lab.popen("run", "--type", cert_type, crash=trial)
        try:
            out, err = proc.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    else:
        proc = lab.popen("run", "--type", cert_type)
        try:
            out, err = proc.communicate(timeout=trial)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            out, err = proc.communicate(timeout=60)
    run = current(lab, cert_type)
    if proc.returncode == -signal.SIGKILL:
        tally.kills += 1
        tally.states_at_kill[(run.held_from or run.state) if run else "(before the run existed)"] += 1
        return None
    if proc.returncode == 0:  # the crash point was not reached this many times: the run finished
        tally.finished_early += 1
        return None
    where = f"{run.status} in {run.held_from or run.state}: {run.last_error}" if run else "no run"
    return f"{trial}: exit {proc.returncode}, the run is {where} {err[-1500:]}{out[-1500:]}"


def crash_round(
    tmp: Path, cert_type: str, expected: dict[str, Any], tally: Tally, *, soak: bool
) -> str | None:
    """One cluster, one run of ``cert_type`` killed again and again; None when it ends exactly as
    the uninterrupted ``expected``, else what differs."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    where = f"{cert_type}, seed {seed}"
    with ProofLab(tmp, **(SOAK_LAB if soak else LAB)) as lab:  # type: ignore[arg-type]
        for trial in schedule(cert_type, rng, soak=soak):
            if finished(lab, cert_type):
                break  # a second `run` would start a new run of a type already renewed
            problem = attempt(lab, cert_type, trial, tally)
            if problem:
                tally.outcomes["failed"] += 1
                return f"{where}, kills in {dict(tally.states_at_kill)}: {problem}"
        where += f", kills in {dict(tally.states_at_kill)}"
        if not finished(lab, cert_type):
            final = lab.cli("run", "--type", cert_type)
            if final.returncode != 0:
                run = lab.run_of(cert_type)
                tally.outcomes[run.status] += 1
                held = run.held_from or run.state
                return f"{where}: the last run ended {run.status} in {held}: {run.last_error}"
        run = lab.run_of(cert_type)
        tally.outcomes[run.state] += 1
        try:
            check_outcome(lab, cert_type, run, expected, where)
        except AssertionError as exc:
            return str(exc)
    return None


def check_outcome(lab: ProofLab, cert_type: str, run: Any, expected: dict[str, Any], where: str) -> None:
    state = lab.sim.state()
    got = outcome_shape(state, cert_type, run)
    assert run.state == "done", where
    # Rebuilding the CTL again after a crash yields the same CTL file: counted, not compared.
    assert (got["ctl_updates"] > 0) == (expected["ctl_updates"] > 0), where
    differs = {
        k: (got.get(k), expected[k]) for k in expected if k != "ctl_updates" and got.get(k) != expected[k]
    }
    assert not differs, f"{where}: differs from an uninterrupted run in (got, uninterrupted): {differs}"
    targets = role_nodes(lab.sim, cert_type)
    assert got["targets"] == sorted(targets)
    # Exactly one CSR per node and type; one accepted leaf per node; presented == issued.
    assert all(state["csrs_generated"][n][cert_type] == 1 for n in targets), where
    assert got["identity_uploads"] == sorted(targets), where
    assert got["presented_is_issued"] == sorted(targets) == got["verified"], where
    # No service restarted twice, no phone reset twice.
    assert set(got["restarts"].values()) == {1}, f"{where}: restarts {got['restarts']}"
    phone_reset = bool(lab.sim.cluster.phones.count) and cert_type in ("CAPF", "CallManager", "TVS")
    assert state["phone_resets"] == (lab.sim.cluster.phones.count if phone_reset else 0), (
        f"{where}: {state['phone_resets']} phone resets"
    )
    events = lab.store.events()
    assert not [e for e in events if e.to_state == "failed"], where
    assert {r.status for r in lab.runs()} == {"final"}
    assert_audit_sound(lab)


@pytest.mark.slow
@pytest.mark.parametrize("cert_type", TYPES)
def test_crash_matrix(tmp_path: Path, cert_type: str) -> None:
    expected, _ = reference(tmp_path, cert_type)
    tally = Tally()
    problem = crash_round(tmp_path / "crash", cert_type, expected, tally, soak=False)
    assert problem is None, problem
    # The matrix must actually interrupt the run, in more than one place.
    assert tally.kills >= 5, tally
    assert len(tally.states_at_kill) >= 2, tally


SOAK_KILLS_PER_TYPE = 42  # five types: at least 210 kills


@pytest.mark.soak
@pytest.mark.parametrize("cert_type", TYPES)
def test_crash_soak(tmp_path: Path, cert_type: str) -> None:
    expected, _ = reference(tmp_path, cert_type, soak=True)
    tally = Tally()
    problems: list[str] = []
    rounds = 0
    while tally.kills < SOAK_KILLS_PER_TYPE:
        rounds += 1
        problem = crash_round(tmp_path / f"round-{rounds}", cert_type, expected, tally, soak=True)
        if problem:
            problems.append(problem)
    print(
        f"\nsoak {cert_type}: {tally.kills} kills in {rounds} rounds, kills by state "
        f"{dict(tally.states_at_kill)}, {tally.finished_early} processes finished before their crash "
        f"point, final states {dict(tally.outcomes)}, {len(problems)} rounds differing"
    )
    for p in problems:
        print(f"  {p[:400]}")
    assert problems == [], problems


# ---------------------------------------------------------------------- targeted windows


def nth_action(effects: list[dict[str, Any]], name: str, node: str | None = None) -> int:
    """1-based arrival number at ``effect.after_action`` of the effect called ``name``."""
    ordered = sorted(effects, key=lambda e: e["recorded_at"])
    for i, e in enumerate(ordered, 1):
        if e["name"] == name and (node is None or e["node"] == node):
            return i
    raise AssertionError(f"no effect {name} in {[e['name'] for e in ordered]}")


@pytest.mark.slow
def test_phone_reset_interrupted_before_its_outcome_commits_is_not_repeated(tmp_path: Path) -> None:
    """Killed between AXL's resets and recording them: the restarted run must not reset every phone
    a second time (CUCM reboots each phone again, and they all drop their calls twice)."""
    _, effects = reference(tmp_path, "CAPF")
    n = nth_action(effects, "phone_reset")
    with ProofLab(tmp_path / "crash", **LAB) as lab:  # type: ignore[arg-type]
        killed = lab.cli("run", "--type", "CAPF", crash=f"effect.after_action:{n}")
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        phones = lab.sim.cluster.phones.count
        assert lab.sim.state()["phone_resets"] == phones
        final = lab.cli("run", "--type", "CAPF")
        assert final.returncode == 0, final.stderr[-2000:]
        assert lab.run_of("CAPF").state == "done"
        assert lab.sim.state()["phone_resets"] == phones, "every phone was reset twice for one intent"


@pytest.mark.slow
def test_restart_interrupted_while_the_service_is_restarting_is_not_repeated(tmp_path: Path) -> None:
    """Killed just after asking ControlCenterServices for a restart that takes a while: the restarted
    run finds the service Stopping or Starting and must wait for it, not restart it again."""
    service = "Cisco Trust Verification Service"
    pub = "cucm-pub.example.com"
    _, effects = reference(tmp_path, "TVS")
    n = nth_action(effects, f"restart:{service}", pub)
    slow = f"slow=cucm-pub:{service}:40"
    with ProofLab(tmp_path / "crash", faults=slow, **LAB) as lab:  # type: ignore[arg-type]
        killed = lab.cli("run", "--type", "TVS", crash=f"effect.after_action:{n}")
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        assert len(lab.sim.state()["restarts"][pub][service]) == 1
        final = lab.cli("run", "--type", "TVS")
        assert final.returncode == 0, final.stderr[-2000:]
        assert lab.run_of("TVS").state == "done"
        restarts = lab.sim.state()["restarts"][pub][service]
        assert len(restarts) == 1, f"{service} on {pub} restarted twice for one intent: {restarts}"


@pytest.mark.slow
def test_restart_order_survives_a_crash_between_two_restarts(tmp_path: Path) -> None:
    """Killed after the second service's restart is recorded but before the step's outcome commits:
    the first service came up before the second restart, and the resumed run must not decide
    otherwise (the restart_order guard then refuses for ever and the run fails on its timeout)."""
    _, effects = reference(tmp_path, "CAPF")
    restarts = [
        e for e in sorted(effects, key=lambda e: e["recorded_at"]) if e["name"].startswith("restart:")
    ]
    n = nth_action(effects, restarts[1]["name"], restarts[1]["node"])
    with ProofLab(tmp_path / "crash", **LAB) as lab:  # type: ignore[arg-type]
        killed = lab.cli("run", "--type", "CAPF", crash=f"effect.after_output:{n}")
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        final = lab.cli("run", "--type", "CAPF")
        run = lab.run_of("CAPF")
        assert final.returncode == 0 and run.state == "done", f"{run.state}: {run.last_error}"
        assert set(restart_counts(lab.sim.state()).values()) == {1}


@pytest.mark.slow
def test_phone_reset_interrupted_before_axl_was_called_still_resets_every_phone_once(tmp_path: Path) -> None:
    """Killed after the reset batch's intent is journaled, before any doDeviceReset: no phone was
    reset, so the resumed run must reset each of them (once), not record them as unconfirmed and
    finish with phones that never received the new trust list."""
    _, effects = reference(tmp_path, "CallManager")
    ordered = sorted(effects, key=lambda e: e["recorded_at"])
    n = next(i for i, e in enumerate(ordered, 1) if e["name"] == "phone_reset")
    with ProofLab(tmp_path / "crash", **LAB) as lab:  # type: ignore[arg-type]
        killed = lab.cli("run", "--type", "CallManager", crash=f"effect.after_intent:{n}")
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        assert lab.sim.state()["phone_resets"] == 0
        final = lab.cli("run", "--type", "CallManager")
        assert final.returncode == 0, final.stderr[-2000:]
        assert lab.run_of("CallManager").state == "done"
        phones = lab.sim.cluster.phones.count
        assert lab.sim.state()["phone_resets"] == phones, "phones were left without their reset"
