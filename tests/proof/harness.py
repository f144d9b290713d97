"""A simulated cluster in the test process and the real command line against it, as an operator has it.

The simulator (with its TLS listeners for the non-web types) lives in this process, so it outlives any
``cucm-renew`` subprocess the tests kill. The configuration is the one ``cucm-renew init
--from-simulator`` writes; every command runs as a real subprocess with its own environment.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from adapters.ca.local import LocalCA
from engine.definition import Definition, load_definitions
from engine.store import Store
from simulator.runtime import SimulatedCluster
from workflows.registry import DEFINITIONS_DIR, build_registry

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 240.0
CLUSTER = "sim"

_DEFINITIONS: dict[str, Definition] | None = None


def definitions() -> dict[str, Definition]:
    global _DEFINITIONS
    if _DEFINITIONS is None:
        _DEFINITIONS = load_definitions(DEFINITIONS_DIR, build_registry())
    return _DEFINITIONS


def role_nodes(sim: SimulatedCluster, cert_type: str) -> list[str]:
    """The nodes a run of ``cert_type`` renews on this simulator (every identity there is due)."""
    roles = set(definitions()[cert_type].params.get("roles") or [])
    return [n.name for n in sim.cluster.nodes if n.role in roles]


class ProofLab:
    """``with ProofLab(tmp_path, ...) as lab:`` then ``lab.cli("run", "--type", "tomcat")``."""

    def __init__(
        self,
        folder: Path,
        *,
        nodes: int = 2,
        imp: int = 0,
        phones: int = 40,
        mixed_mode: bool = True,
        time_scale: float = 2000.0,
        faults: str | None = None,
        credentials: dict[str, dict[str, str]] | None = None,
        ca: str = "lab",
        password_env: Mapping[str, str] | None = None,
        risport_lag: float | None = None,
        config_extra: str = "",
        **sim_options: Any,
    ) -> None:
        """``config_extra``: lines added to the cluster's table (``types``, ``distribution``)."""
        self.folder = folder
        self.risport_lag = risport_lag
        self.config_extra = config_extra
        self.sim = SimulatedCluster(
            folder / "sim",
            nodes=nodes,
            imp=imp,
            phones=phones,
            mixed_mode=mixed_mode,
            time_scale=time_scale,
            faults=faults,
            credentials=credentials,
            **sim_options,
        )
        self.ca_choice = ca
        self.password_env = dict(password_env or {})
        self.config_path = folder / "cucm-renew.toml"
        self.state_dir = folder / "state"
        self.env_extra: dict[str, str] = {}
        self._store: Store | None = None

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> ProofLab:
        self.sim.start()
        try:
            done = self.cli(
                "init", "--from-simulator", str(self.sim.json_path), "--output", str(self.config_path)
            )
            assert done.returncode == 0, done.stderr
            text = self.config_path.read_text()
            if self.ca_choice != "lab":
                text = text.replace('ca = "lab"', f'ca = "{self.ca_choice}"')
            for kind, var in self.password_env.items():
                # Credentials from the environment instead of the files init wrote beside the config.
                old = f'password_file = "{CLUSTER}-{kind}.password"'
                assert old in text, text
                text = text.replace(old, f'password_env = "{var}"')
                (self.folder / f"{CLUSTER}-{kind}.password").unlink()
            if self.sim.cluster.phone_interaction == "manual":
                # The cluster's enterprise parameter, as its administrator would write it.
                text = text.replace(
                    'phone_reset = "pools"\n', 'phone_reset = "pools"\nphone_interaction = "manual"\n', 1
                )
            if self.risport_lag is not None:
                # How far the operator says RisPort may trail on this cluster (CUCM seconds).
                text = text.replace(
                    'phone_reset = "pools"\n',
                    f'phone_reset = "pools"\nrisport_lag = {self.risport_lag:g}\n',
                    1,
                )
                assert f"risport_lag = {self.risport_lag:g}" in text, text
            if self.config_extra:
                anchor = 'phone_reset = "pools"\n'
                text = text.replace(anchor, f"{anchor}{self.config_extra}\n", 1)
            self.config_path.write_text(text)
            lab_folder = self.folder / "lab-ca"
            self.sim.trust_ca(LocalCA(lab_folder, name="lab").root_pem)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        self.sim.stop()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ the command line

    def env(self, crash: str | None = None, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "CUCM_RENEW_CRASH_AT")
        }
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        env["CUCM_RENEW_CONFIG"] = str(self.config_path)
        env["CUCM_RENEW_STATE"] = str(self.state_dir)
        env.update(self.env_extra)
        env.update(extra)
        if crash:
            env["CUCM_RENEW_CRASH_AT"] = crash
        return env

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "app.cli", *args]

    def cli(
        self, *args: str, crash: str | None = None, timeout: float = DEADLINE, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(crash, **extra),
            cwd=str(self.folder),
        )

    def popen(self, *args: str, crash: str | None = None, **extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(crash, **extra),
            cwd=str(self.folder),
        )

    # ------------------------------------------------------------------ the store, read directly

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.state_dir)
        return self._store

    def runs(self) -> list[Any]:
        return self.store.runs(include_final=True)

    def run_of(self, cert_type: str) -> Any:
        matches = [r for r in self.runs() if r.definition == cert_type]
        assert len(matches) == 1, [(r.id, r.state) for r in matches]
        return matches[0]

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of the tables a command could change (runs, events, effects, leases, commands)."""
        db = self.state_dir / "engine.db"
        if not db.exists():
            return {}
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return {
                table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()  # noqa: S608
                for table in ("runs", "events", "effects", "leases", "commands", "progress")
            }
        finally:
            conn.close()

    def sim_snapshot(self) -> dict[str, Any]:
        state = self.sim.state()
        return {
            k: state[k]
            for k in ("csrs_generated", "uploads_accepted", "uploads_rejected", "restarts", "phone_resets",
                      "ctl_updates", "installed", "presented")
        }  # fmt: skip

    def wait_for(self, what: str, check: Callable[[], Any], deadline: float = DEADLINE) -> Any:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            value = check()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(
            f"timed out waiting for {what}: {[(r.id, r.state, r.waiting_reason) for r in self.runs()]}"
        )


def restart_counts(state: Mapping[str, Any]) -> dict[tuple[str, str], int]:
    return {
        (node, service): len(times)
        for node, by_service in state["restarts"].items()
        for service, times in by_service.items()
    }


def identity_uploads(state: Mapping[str, Any], cert_type: str) -> list[tuple[str, str]]:
    return sorted(
        (u["node"], u["fingerprint"])
        for u in state["uploads_accepted"]
        if u["kind"] == "identity" and u["type"] == cert_type
    )


def outcome_shape(state: Mapping[str, Any], cert_type: str, run: Any) -> dict[str, Any]:
    """What a finished run did to the cluster, in terms that do not depend on keys or timing."""
    issued = run.context.get("issued") or {}
    return {
        "state": run.state,
        "targets": sorted(run.context.get("targets") or []),
        "csrs": {n: c.get(cert_type, 0) for n, c in state["csrs_generated"].items()},
        "identity_uploads": sorted(n for n, _ in identity_uploads(state, cert_type)),
        "restarts": restart_counts(state),
        "phone_resets": state["phone_resets"],
        "ctl_updates": state["ctl_updates"],
        "verified": sorted(n for n, v in (run.context.get("verified") or {}).items() if v.get("ok")),
        "presented_is_issued": sorted(
            n for n in issued if state["presented"][n][cert_type] == issued[n]["sha256"]
        ),
    }


def issued_by_the_lab_ca(lab: ProofLab) -> list[str]:
    """SHA-256 of every leaf the lab's local CA issued, one file per request it signed."""
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    found = []
    for path in sorted((lab.folder / "lab-ca" / "issued").glob("*.pem")):
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        found.append(hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest())
    return found


def assert_exactly_once(lab: ProofLab, runs: list[Any]) -> dict[str, int]:
    """What "carried out, reply lost" and kills must never cause, over every finished run: per node
    and type exactly one CSR; no service restarted more often than the runs' plans restart it (once
    per intent); each phone reset at most once per phase; each CA certificate issued once per CSR
    and the one issued is the one presented. Returns the counts, for the report."""
    state = lab.sim.state()
    planned: Counter[tuple[str, str]] = Counter()
    resetting = 0
    for run in runs:
        assert run.state == "done", (run.definition, run.state, run.last_error)
        for node in run.context["targets"]:
            assert state["csrs_generated"][node][run.definition] == 1, (
                node,
                run.definition,
                state["csrs_generated"],
            )
            assert state["presented"][node][run.definition] == run.context["issued"][node]["sha256"]
        for record in run.context.get("restarts") or []:
            if not record.get("skipped"):
                planned[(record["node"], record["service"])] += 1
        resetting += bool((run.context.get("phones") or {}).get("reset"))
    restarts = restart_counts(state)
    assert restarts == dict(planned), f"restarts {restarts} against the plans' {dict(planned)}"
    phones = lab.sim.cluster.phones.count
    assert state["phone_resets"] <= phones * resetting, (state["phone_resets"], phones, resetting)
    for pool, times in state["device_pool_resets"].items():
        assert len(times) <= resetting, (pool, times)
    issued = issued_by_the_lab_ca(lab)
    csrs = sum(sum(by_type.values()) for by_type in state["csrs_generated"].values())
    assert len(issued) == len(set(issued)) == csrs, (len(issued), csrs)
    assert {r.context["issued"][n]["sha256"] for r in runs for n in r.context["targets"]} == set(issued)
    return {
        "lost_replies": len(state["lost_replies"]),
        "csrs": csrs,
        "restarts": sum(restarts.values()),
        "phone_resets": state["phone_resets"],
        "ca_issued": len(issued),
    }


def assert_audit_sound(lab: ProofLab) -> None:
    """`audit verify` passes through the command line and the event seqs have no gap."""
    verify = lab.cli("audit", "verify", "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert json.loads(verify.stdout)["ok"] is True
    seqs = [e.seq for e in lab.store.events()]
    assert seqs == list(range(1, len(seqs) + 1))
