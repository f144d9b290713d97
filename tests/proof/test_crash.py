"""SIGKILL `cucm-renew run` at the engine's crash points and at random instants, for each type.

Each trial is a real ``cucm-renew run --type T`` subprocess on one state folder, killed by its own
crash point (``CUCM_RENEW_CRASH_AT``) or by the test after a random delay, and started again until
a last, uninterrupted run finishes. The simulator lives in the test process, so it sees every
request of every process. At the end the cluster must look exactly as after an uninterrupted run
of the same type on an identical cluster: one CSR per node, one accepted upload per node, every
service restarted once, every phone reset once, the new certificates presented and verified, no
run failed, and an audit chain that verifies with no gap.

Nodes work at once, so the N-th arrival at a point is a different effect from one run to the next.
The matrix therefore names each kill by what an uninterrupted reference run journaled (the effect's
type, state, node and name; a transition's type and state), in the order the run reaches them, and
a named kill that the process does not reach is a failure, not a run that happened to finish.
"""

from __future__ import annotations

import glob
import os
import random
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from engine.crashpoints import POINTS
from simulator.cluster.certificates import default_expiry_days
from tests.proof.harness import (
    ProofLab,
    assert_audit_sound,
    assert_exactly_once,
    outcome_shape,
    restart_counts,
    role_nodes,
)
from workflows.cert_types import ALL_TYPES

TYPES = ["tomcat", "ipsec", "CAPF", "CallManager", "TVS"]
# The matrix also covers an IM&P type, an EC twin and a multi-server certificate (one CSR and one
# upload on the publisher, CUCM distributing it): a case is a type, or a type + its distribution.
MULTI = "+multi-server"
CASES = [*TYPES, "cup", "CallManager-ECDSA", f"tomcat{MULTI}"]
# The engine's boundaries: before the intent is recorded; after the intent, before the side effect;
# after the side effect, before its outcome commits; after the commit (effects, then transitions).
EFFECT_POINTS = [p for p in POINTS if p.startswith("effect.")]
TRANSITION_POINTS = [p for p in POINTS if p.startswith("transition.")]
# The tool resets the phones (Phone Interaction on Certificate Update off, as on clusters before
# 14): its resets are among the effects interrupted here.
LAB = {
    "nodes": 2,
    "imp": 1,
    "phones": 40,
    "mixed_mode": True,
    "time_scale": 2000.0,
    "phone_interaction": "manual",
}
# Engine waits are scaled, a restarted process is not: each kill costs ~1.5 s of wall time, which
# at x2000 is most of `restarted`'s 4 h timeout (7.2 s). The soak kills far more often in one state,
# so its clusters run at x300 (48 s).
SOAK_LAB = {**LAB, "time_scale": 300.0}
# Lost answers (the seed is the round's) and RisPort70 trailing by a few seconds, within the bound
# the configuration gives.
LOSSY = {"ris_lag": 5.0, "risport_lag": 15.0}

# Every identity due, the EC twins and IM&P types included (the simulator's own default leaves
# those years away).
LAB["expiry_days"] = {**dict.fromkeys(ALL_TYPES, 20.0), **default_expiry_days()}


def split(case: str) -> tuple[str, bool]:
    """The certificate type of a case, and whether it is renewed multi-server."""
    return case.removesuffix(MULTI), case.endswith(MULTI)


def lab_options(case: str, *, soak: bool = False) -> dict[str, Any]:
    cert_type, multi = split(case)
    extra = f"types = [{', '.join(repr(t).replace(chr(39), chr(34)) for t in ALL_TYPES)}]"
    options: dict[str, Any] = {**(SOAK_LAB if soak else LAB), "config_extra": extra}
    if multi:
        # 14SU1: the last release whose API takes a multi-server upload (from 14SU2 it is the GUI's).
        extra += f'\ndistribution = {{ {cert_type} = "multi-server" }}'
        options.update(config_extra=extra, version="14SU1")
    return options


@dataclass
class Tally:
    kills: int = 0
    named_hits: int = 0
    finished_early: int = 0
    states_at_kill: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    lost: Counter[str] = field(default_factory=Counter)
    """Answers the cluster did not send, by endpoint (lossy rounds)."""


@dataclass(frozen=True)
class Reference:
    """What an uninterrupted run did, kept for the other tests of this process: the simulator is
    deterministic in what these compare."""

    outcome: dict[str, Any]
    effects: list[dict[str, Any]]
    """The effect journal, in the order the intents were recorded."""
    path: list[str]
    """Each state whose step ran, once, in the order the run reached them."""


_REFERENCES: dict[tuple[str, bool], Reference] = {}


def reference(tmp: Path, case: str, *, soak: bool = False) -> Reference:
    key = (case, soak)
    cert_type, _ = split(case)
    if key not in _REFERENCES:
        with ProofLab(tmp / f"ref-{case}", **lab_options(case, soak=soak)) as lab:
            done = lab.cli("run", "--type", cert_type)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            run = lab.run_of(cert_type)
            ticked = [e.from_state for e in lab.store.events() if e.run == run.id and e.from_state]
            _REFERENCES[key] = Reference(
                outcome_shape(lab.sim.state(), cert_type, run),
                lab.store.effects(run.id),
                list(dict.fromkeys(ticked)),
            )
    return _REFERENCES[key]


def name_pattern(name: str) -> str:
    """An effect's name as a crash qualifier field: a CA certificate's upload is named after its
    fingerprint, and each lab has its own CA."""
    return "trust:*" if name.startswith("trust:") else glob.escape(name)


def effect_spec(point: str, cert_type: str, effect: dict[str, Any], effects: list[dict[str, Any]]) -> str:
    """The crash specification that names ``effect`` of a reference run, on any cluster like it."""
    pattern = name_pattern(effect["name"])
    # Within one node and state the same pattern can repeat (root, then intermediate CA): count it.
    same = [
        e for e in effects if (e["state"], e["node"]) == (effect["state"], effect["node"])
        and name_pattern(e["name"]) == pattern
    ]  # fmt: skip
    n = [e["name"] for e in same].index(effect["name"]) + 1
    fields = [cert_type, effect["state"], glob.escape(effect["node"]), pattern]
    return f"{point}@{'/'.join(fields)}:{n}"


def named_kills(ref: Reference, case: str) -> list[str]:
    """One kill per crash point, each naming an effect (or a state's commit) of the reference run, in
    distinct states taken in the run's order, so each is reached by the process it is armed in
    whatever the previous kills interrupted. Shifted per type, so kills land in different states
    and effects across types."""
    offset = CASES.index(case)
    cert_type, _ = split(case)
    by_state: dict[str, list[dict[str, Any]]] = {}
    for e in ref.effects:
        by_state.setdefault(e["state"], []).append(e)
    with_effects = [s for s in ref.path if s in by_state]
    assert len(with_effects) >= len(EFFECT_POINTS), (cert_type, ref.path, list(by_state))
    spare = len(with_effects) - len(EFFECT_POINTS)
    dropped = {with_effects[(offset + i) % len(with_effects)] for i in range(spare)}
    chosen = [s for s in with_effects if s not in dropped]
    points = EFFECT_POINTS[offset % len(EFFECT_POINTS) :] + EFFECT_POINTS[: offset % len(EFFECT_POINTS)]
    kills: list[tuple[int, str]] = []
    for point, state in zip(points, chosen, strict=True):
        candidates = sorted(by_state[state], key=lambda e: (e["node"], e["name"]))
        effect = candidates[(offset + len(kills)) % len(candidates)]
        kills.append((ref.path.index(state), effect_spec(point, cert_type, effect, ref.effects)))
    rest = [s for s in ref.path if s not in chosen]
    assert len(rest) >= len(TRANSITION_POINTS), (cert_type, ref.path)
    picked = sorted(
        {rest[offset % len(rest)], rest[(offset + len(rest) // 2) % len(rest)]}, key=ref.path.index
    )
    for point, state in zip(TRANSITION_POINTS, picked, strict=True):
        kills.append((ref.path.index(state), f"{point}@{cert_type}/{state}:1"))
    return [spec for _, spec in sorted(kills)]


def schedule(
    case: str, rng: random.Random, ref: Reference, *, soak: bool, instants: int = 2
) -> list[str | float]:
    """Crash specifications and random instants (seconds), in the order tried: the named kills,
    then ``instants`` kills at random moments (a soak round shuffles both)."""
    if soak:
        # Unnamed N-th arrivals, shuffled with random instants: kills at random, not targeted ones.
        items: list[str | float] = [f"{p}:{n}" for p in POINTS for n in (1, 2, 3, 4)]
        items += [rng.uniform(0.5, 4.0) for _ in range(20)]
        rng.shuffle(items)
        return items
    return [*named_kills(ref, case), *(rng.uniform(0.8, 3.0) for _ in range(instants))]


def finished(lab: ProofLab, cert_type: str) -> bool:
    runs = [r for r in lab.runs() if r.definition == cert_type]
    return bool(runs) and all(r.status == "final" for r in runs)


def current(lab: ProofLab, cert_type: str) -> Any | None:
    runs = [r for r in lab.runs() if r.definition == cert_type]
    assert len(runs) <= 1, [(r.id, r.state) for r in runs]
    return runs[0] if runs else None


# What the effect journal holds for the effect a crash point interrupted: (intent, outcome).
JOURNALED_AT = {
    "effect.before_intent": (False, False),
    "effect.after_intent": (True, False),
    "effect.after_action": (True, False),
    "effect.after_output": (True, True),
}


def missed(lab: ProofLab, run: Any, spec: str, err: str) -> str | None:
    """None when the process died at the point ``spec`` names, on the effect it names, and the journal
    shows that effect as the point leaves it; else what happened instead."""
    prefix = f"crash point {spec} hit at "
    line = next((x for x in err.splitlines() if x.startswith(prefix)), None)
    if line is None:
        return f"{spec}: SIGKILL, but not by this crash point: {err[-1500:]}"
    point, _, identity = line.removeprefix(prefix).partition(" ")
    if point not in JOURNALED_AT:
        return None
    _definition, state, node, name = identity.split("/", 3)
    rows = [e for e in lab.store.effects(run.id) if (e["state"], e["node"], e["name"]) == (state, node, name)]
    journaled = (bool(rows), bool(rows) and rows[-1]["completed_at"] is not None)
    if journaled != JOURNALED_AT[point]:
        return f"{spec}: hit {identity}, whose (intent, outcome) journaled are {journaled}"
    return None


def attempt(lab: ProofLab, cert_type: str, trial: str | float, tally: Tally) -> str | None:
    """One process, killed by its crash point or after ``trial`` seconds, unless it finishes first;
    returns what went wrong when it ended otherwise than killed or finished, or when a named crash
    point was not the one that killed it."""
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
    named = isinstance(trial, str) and "@" in trial
    if proc.returncode == -signal.SIGKILL:
        if named:
            problem = missed(lab, run, str(trial), err) if run else f"{trial}: killed before the run existed"
            if problem:
                return problem
            tally.named_hits += 1
        tally.kills += 1
        tally.states_at_kill[(run.held_from or run.state) if run else "(before the run existed)"] += 1
        return None
    if proc.returncode == 0 and not named:  # not reached this many times: the run finished first
        tally.finished_early += 1
        return None
    where = f"{run.status} in {run.held_from or run.state}: {run.last_error}" if run else "no run"
    return f"{trial}: exit {proc.returncode}, the run is {where} {err[-1500:]}{out[-1500:]}"


def crash_round(
    tmp: Path, case: str, ref: Reference, tally: Tally, *, soak: bool, lossy: bool = False, instants: int = 2
) -> str | None:
    """One cluster, one run of the case's type killed again and again; None when it ends exactly
    as the uninterrupted reference, else what differs. ``lossy``: the cluster also loses the
    answers of 20% of the requests it carries out, and RisPort70 lags (:data:`LOSSY`)."""
    # A new schedule each round, to explore; CUCM_RENEW_CRASH_SEED replays one a report names.
    seed = int(os.environ.get("CUCM_RENEW_CRASH_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    cert_type, multi = split(case)
    where = f"{case}, seed {seed}"
    options = lab_options(case, soak=soak)
    if lossy:
        options.update(LOSSY, faults=f"lost=0.2,seed={seed}")
    with ProofLab(tmp, **options) as lab:
        for trial in schedule(case, rng, ref, soak=soak, instants=instants):
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
        tally.lost.update(r["endpoint"] for r in lab.sim.state()["lost_replies"])
        try:
            check_outcome(lab, cert_type, run, ref.outcome, where, multi=multi)
            if lossy:
                assert_exactly_once(lab, [run])
        except AssertionError as exc:
            return f"{where}: {exc}"
    return None


def check_outcome(
    lab: ProofLab, cert_type: str, run: Any, expected: dict[str, Any], where: str, *, multi: bool = False
) -> None:
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
    if multi:
        # One multi-server CSR, on the publisher; CUCM installed the one upload once on every node.
        csrs = {n: c.get(cert_type, 0) for n, c in state["csrs_generated"].items() if c.get(cert_type)}
        assert csrs == {targets[0]: 1}, (where, csrs)
        assert got["identity_uploads"] == sorted(targets), where
        assert len({run.context["issued"][n]["sha256"] for n in targets}) == 1, where
    else:
        # Exactly one CSR per node and type; one accepted leaf per node; presented == issued.
        assert all(state["csrs_generated"][n][cert_type] == 1 for n in targets), where
        assert got["identity_uploads"] == sorted(targets), where
    assert got["presented_is_issued"] == sorted(targets) == got["verified"], where
    # No service restarted twice, no phone reset twice.
    assert set(got["restarts"].values()) == {1}, f"{where}: restarts {got['restarts']}"
    phone_reset = bool(lab.sim.cluster.phones.count) and cert_type in (
        "CAPF",
        "CallManager",
        "CallManager-ECDSA",
        "TVS",
    )
    assert state["phone_resets"] == (lab.sim.cluster.phones.count if phone_reset else 0), (
        f"{where}: {state['phone_resets']} phone resets"
    )
    events = lab.store.events()
    assert not [e for e in events if e.to_state == "failed"], where
    assert {r.status for r in lab.runs()} == {"final"}
    assert_audit_sound(lab)


@pytest.mark.parametrize("case", TYPES)
def test_named_kill_matrix(tmp_path: Path, case: str) -> None:
    """One kill per crash point, each at an effect or commit the reference run names: the same
    kills on every run, so a failure names what it hit. The five CUCM types here; the IM&P, EC and
    multi-server cases with the random matrix in `make soak` (the suite's time)."""
    ref = reference(tmp_path, case)
    tally = Tally()
    problem = crash_round(tmp_path / "crash", case, ref, tally, soak=False, instants=0)
    assert problem is None, problem
    assert tally.named_hits == len(POINTS) == tally.kills, tally
    assert len(tally.states_at_kill) >= len(EFFECT_POINTS), tally


# Kills at random moments besides the named ones explore where else a kill can land: `make soak`,
# where a failing round names its seed (CUCM_RENEW_CRASH_SEED replays its schedule; the moments
# are wall-clock ones, so a replay lands near, not exactly, where the round's kills did).
@pytest.mark.soak
@pytest.mark.parametrize("case", CASES)
def test_crash_matrix(tmp_path: Path, case: str) -> None:
    ref = reference(tmp_path, case)
    tally = Tally()
    problem = crash_round(tmp_path / "crash", case, ref, tally, soak=False)
    assert problem is None, problem
    # Every named kill happened where it was aimed (`attempt` checks each), in distinct states; a
    # transition's commit moves the run on, so two of them may share the state after.
    assert tally.named_hits == len(POINTS), tally
    assert tally.kills >= len(POINTS), tally
    assert len(tally.states_at_kill) >= len(EFFECT_POINTS), tally


def test_named_kills_follow_the_reference_run() -> None:
    """The schedule alone, on a journal shaped like a CallManager run's: one kill per point, in
    distinct states in the run's order, trust uploads named by pattern and counted per node."""
    path = ["expiry_check", "csr_generated", "trust_uploaded", "restarted", "phones_reset", "verified"]
    nodes = ["cucm-pub.example.com", "cucm-sub1.example.com"]
    effects = [{"state": "csr_generated", "node": n, "name": "generate_csr"} for n in nodes]
    effects += [
        {"state": "trust_uploaded", "node": n, "name": f"trust:{fp}"}
        for fp in ("00ff", "11ee")
        for n in nodes
    ]
    effects += [{"state": "restarted", "node": nodes[1], "name": "restart:Cisco Tftp"}]
    effects += [{"state": "phones_reset", "node": f"{nodes[0]}#pool-DP[1]", "name": "phone_reset"}]
    ref = Reference({}, effects, path)
    kills = named_kills(ref, "CallManager")
    assert sorted(k.split("@")[0] for k in kills) == sorted(POINTS)
    states = [k.split("@")[1].split("/")[1].split(":")[0] for k in kills]
    assert states == sorted(set(states), key=path.index), kills
    trust = next(k for k in kills if "/trust_uploaded/" in k)
    assert trust.endswith(("/trust:*:1", "/trust:*:2")), trust
    reset = next(k for k in kills if "phone_reset" in k)
    assert reset.endswith("/cucm-pub.example.com#pool-DP[[]1]/phone_reset:1"), reset


SOAK_KILLS_PER_TYPE = 42  # five types: at least 210 kills


@pytest.mark.soak
@pytest.mark.parametrize("cert_type", TYPES)
def test_crash_soak(tmp_path: Path, cert_type: str) -> None:
    ref = reference(tmp_path, cert_type, soak=True)
    tally = Tally()
    problems: list[str] = []
    rounds = 0
    while tally.kills < SOAK_KILLS_PER_TYPE:
        rounds += 1
        problem = crash_round(tmp_path / f"round-{rounds}", cert_type, ref, tally, soak=True)
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


LOSSY_SOAK_KILLS_PER_TYPE = 20  # five types: at least 100 kills, each cluster losing answers


@pytest.mark.soak
@pytest.mark.parametrize("cert_type", TYPES)
def test_crash_soak_with_lost_replies_and_risport_lag(tmp_path: Path, cert_type: str) -> None:
    """Kills at random, on clusters that carry out one request in five without answering it and
    whose RisPort70 lags: every run still ends as an uninterrupted run on a kind cluster does."""
    ref = reference(tmp_path, cert_type, soak=True)
    tally = Tally()
    problems: list[str] = []
    rounds = 0
    while tally.kills < LOSSY_SOAK_KILLS_PER_TYPE:
        rounds += 1
        problem = crash_round(tmp_path / f"round-{rounds}", cert_type, ref, tally, soak=True, lossy=True)
        if problem:
            problems.append(problem)
    print(
        f"\nlossy soak {cert_type}: {tally.kills} kills in {rounds} rounds, kills by state "
        f"{dict(tally.states_at_kill)}, {tally.finished_early} processes finished before their crash "
        f"point, final states {dict(tally.outcomes)}, lost answers {dict(tally.lost)}, "
        f"{len(problems)} rounds differing"
    )
    for p in problems:
        print(f"  {p[:400]}")
    assert problems == [], problems


# ---------------------------------------------------------------------- targeted windows


def the_effect(ref: Reference, name: str, node: str | None = None, nth: int = 1) -> dict[str, Any]:
    """The ``nth`` effect called ``name`` (on ``node``) the reference run journaled."""
    found = [e for e in ref.effects if e["name"] == name and node in (None, e["node"])]
    assert len(found) >= nth, f"no effect {name} on {node} in {[(e['node'], e['name']) for e in ref.effects]}"
    return found[nth - 1]


def crash_at(lab: ProofLab, cert_type: str, spec: str) -> None:
    """Run ``cert_type`` armed with ``spec``; it must die there, by that crash point."""
    killed = lab.cli("run", "--type", cert_type, crash=spec)
    assert killed.returncode == -signal.SIGKILL, (
        f"{spec} never reached: exit {killed.returncode} {killed.stderr[-2000:]}"
    )
    assert f"crash point {spec} hit at " in killed.stderr, killed.stderr[-2000:]


@pytest.mark.slow
def test_phone_reset_interrupted_before_its_outcome_commits_is_not_repeated(tmp_path: Path) -> None:
    """Killed between AXL's resets and recording them: the restarted run must not reset every phone
    a second time (CUCM reboots each phone again, and they all drop their calls twice)."""
    ref = reference(tmp_path, "CAPF")
    spec = effect_spec("effect.after_action", "CAPF", the_effect(ref, "phone_reset"), ref.effects)
    with ProofLab(tmp_path / "crash", **LAB) as lab:  # type: ignore[arg-type]
        crash_at(lab, "CAPF", spec)
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
    ref = reference(tmp_path, "TVS")
    spec = effect_spec("effect.after_action", "TVS", the_effect(ref, f"restart:{service}", pub), ref.effects)
    slow = f"slow=cucm-pub:{service}:40"
    with ProofLab(tmp_path / "crash", faults=slow, **LAB) as lab:  # type: ignore[arg-type]
        crash_at(lab, "TVS", spec)
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
    ref = reference(tmp_path, "CAPF")
    # One node, services one after the other: the journal's order is the restart order.
    restarts = [e for e in ref.effects if e["name"].startswith("restart:")]
    spec = effect_spec("effect.after_output", "CAPF", restarts[1], ref.effects)
    with ProofLab(tmp_path / "crash", **LAB) as lab:  # type: ignore[arg-type]
        crash_at(lab, "CAPF", spec)
        final = lab.cli("run", "--type", "CAPF")
        run = lab.run_of("CAPF")
        assert final.returncode == 0 and run.state == "done", f"{run.state}: {run.last_error}"
        assert set(restart_counts(lab.sim.state()).values()) == {1}


@pytest.mark.slow
def test_phone_reset_interrupted_before_axl_was_called_still_resets_every_phone_once(tmp_path: Path) -> None:
    """Killed after the reset batch's intent is journaled, before any doDeviceReset: no phone was
    reset, so the resumed run must reset each of them (once), not record them as unconfirmed and
    finish with phones that never received the new trust list."""
    ref = reference(tmp_path, "CallManager")
    spec = effect_spec("effect.after_intent", "CallManager", the_effect(ref, "phone_reset"), ref.effects)
    with ProofLab(tmp_path / "crash", **LAB) as lab:  # type: ignore[arg-type]
        crash_at(lab, "CallManager", spec)
        assert lab.sim.state()["phone_resets"] == 0
        final = lab.cli("run", "--type", "CallManager")
        assert final.returncode == 0, final.stderr[-2000:]
        assert lab.run_of("CallManager").state == "done"
        phones = lab.sim.cluster.phones.count
        assert lab.sim.state()["phone_resets"] == phones, "phones were left without their reset"


# The waits of phones_reregistered, 45 minutes, are 1.35 s of wall time at x2000: a process kept
# down this long resumes past them.
PAST_THE_PHONE_WAIT = 45 * 60 / LAB["time_scale"] + 0.5  # type: ignore[operator]


@pytest.mark.slow
@pytest.mark.parametrize(
    "spec",
    [
        # While RisPort's lag is waited out before the reset: no phone has been reset yet.
        "transition.after_commit@TVS/phones_re*:1",
        # Once every phone was reset, while they settle: they come back while the process is down.
        "transition.after_commit@TVS/phones_reregistered:1",
    ],
)
def test_a_stop_past_the_phone_wait_neither_skips_the_reset_nor_reports_phones_missing(
    tmp_path: Path, spec: str
) -> None:
    """Killed while the phones' step waits and kept down longer than the wait for the phones: the
    resumed run resets every phone once and finds them back, instead of timing out on phones
    nobody reset (the random matrix ended such a TVS run done with no phone reset) or reporting
    phones missing that came back while it was down."""
    with ProofLab(tmp_path, **LAB) as lab:  # type: ignore[arg-type]
        crash_at(lab, "TVS", spec)
        time.sleep(PAST_THE_PHONE_WAIT)  # the daemon is down; CUCM's clock runs on
        final = lab.cli("run", "--type", "TVS")
        assert final.returncode == 0, final.stderr[-2000:]
        run = lab.run_of("TVS")
        assert run.state == "done", (run.state, run.last_error)
        assert lab.sim.state()["phone_resets"] == lab.sim.cluster.phones.count
        visited = {e.to_state for e in lab.store.events() if e.run == run.id}
        assert "phones_missing" not in visited, "phones that came back were timed out unseen"


@pytest.mark.slow
@pytest.mark.parametrize(("ris_lag", "time_scale"), [(0.0, 2000.0), (180.0, 30.0)])
def test_pool_reset_killed_after_cucm_accepted_it_is_not_repeated_while_risport_lags(
    tmp_path: Path, ris_lag: float, time_scale: float
) -> None:
    """Killed right after CUCM accepted the pool reset, with RisPort70 trailing by ``ris_lag`` CUCM
    seconds: the resumed run finds every phone still showing its old registration, which proves
    nothing until the configured lag has passed; it must wait, see the reset, and not reset the pool
    again. At x30 three minutes of lag are six seconds of wall time, longer than a process takes to
    start again and resume, so the resumed run does look while RisPort still lags (a few seconds
    and a minute of lag are the fault suite's)."""
    spec = "effect.after_action@CAPF/phones_reset/*#pool-*/phone_reset:1"
    options = {**LAB, "time_scale": time_scale}
    with ProofLab(tmp_path, ris_lag=ris_lag, risport_lag=ris_lag + 10, **options) as lab:  # type: ignore[arg-type]
        crash_at(lab, "CAPF", spec)
        phones = lab.sim.cluster.phones.count
        assert lab.sim.state()["phone_resets"] == phones
        final = lab.cli("run", "--type", "CAPF")
        assert final.returncode == 0, final.stderr[-2000:]
        run = lab.run_of("CAPF")
        assert run.state == "done", (run.state, run.last_error)
        assert lab.sim.state()["phone_resets"] == phones, "the pool was reset again for one intent"
        assert [len(t) for t in lab.sim.state()["device_pool_resets"].values()] == [1]


def test_multi_server_upload_interrupted_before_its_outcome_commits_is_not_repeated(tmp_path: Path) -> None:
    """Killed after CUCM took the multi-server certificate and distributed it, before the upload
    was recorded: the restarted run finds it on every node and does not upload it again."""
    case = f"tomcat{MULTI}"
    ref = reference(tmp_path, case)
    spec = effect_spec("effect.after_action", "tomcat", the_effect(ref, "upload_multi_server"), ref.effects)
    with ProofLab(tmp_path / "crash", **lab_options(case)) as lab:
        crash_at(lab, "tomcat", spec)
        every = role_nodes(lab.sim, "tomcat")
        uploads = [u for u in lab.sim.state()["uploads_accepted"] if u["type"] == "tomcat"]
        assert sorted(u["node"] for u in uploads if u["kind"] == "identity") == sorted(every)
        final = lab.cli("run", "--type", "tomcat")
        assert final.returncode == 0, final.stderr[-2000:]
        assert lab.run_of("tomcat").state == "done"
        uploads = [u for u in lab.sim.state()["uploads_accepted"] if u["type"] == "tomcat"]
        assert sorted(u["node"] for u in uploads if u["kind"] == "identity") == sorted(every), uploads
