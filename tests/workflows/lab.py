"""A simulated cluster, its configuration and an engine over it, as the end-to-end tests use them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from adapters.ca.local import LocalCA
from app.campaign import start_campaign
from app.config import Config, load_config
from app.initconfig import simulator_config
from app.wiring import Adapters
from engine.facade import Engine
from engine.views import EventView, RunView
from simulator.runtime import SimulatedCluster
from workflows.registry import build_registry, load_checked_definitions

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 120.0


class Lab:
    """``with Lab(tmp_path, nodes=3, imp=1, phones=100) as lab:`` then ``lab.start(...)``,
    ``lab.drive()``; ``lab.sim`` is the simulator, ``lab.events`` every audited transition."""

    def __init__(
        self,
        folder: Path,
        *,
        ca: str = "lab",
        time_scale: float = 2000.0,
        extra_config: str = "",
        init_by_cli: bool = False,
        edit_config: Callable[[str], str] | None = None,
        **sim: Any,
    ) -> None:
        """``init_by_cli``: the configuration is written by `cucm-renew init --from-simulator`, as an
        operator gets it, instead of by the function behind it. ``edit_config``: the operator's
        edits of that file (CAs, mappings) before anything reads it."""
        self.folder = folder
        self.init_by_cli = init_by_cli
        self.edit_config = edit_config
        self.state_dir = folder / "state"
        self.time_scale = time_scale
        sim.setdefault("nodes", 2)
        self.sim = SimulatedCluster(folder / "sim", time_scale=time_scale, **sim)
        self.ca_choice = ca
        self.extra_config = extra_config
        self.events: list[EventView] = []
        self._events_lock = threading.Lock()
        self.engine: Engine | None = None
        self.adapters: Adapters | None = None

    def __enter__(self) -> Lab:
        self.sim.start()
        self.config_path = self.folder / "cucm-renew.toml"
        if self.init_by_cli:
            written = self.cli(
                "init", "--from-simulator", str(self.sim.json_path), "--output", str(self.config_path)
            )
            assert written.returncode == 0, written.stderr
            text = self.config_path.read_text()
        else:
            text = simulator_config(self.sim.json_path, self.config_path)
        text = text.replace('ca = "lab"', f'ca = "{self.ca_choice}"')
        text = text.replace("[ca.lab]", self.extra_config + "\n[ca.lab]") if self.extra_config else text
        if self.sim.cluster.phone_interaction == "manual":
            # The cluster's enterprise parameter, as its administrator would write it in the file.
            text = text.replace(
                'phone_reset = "pools"\n', 'phone_reset = "pools"\nphone_interaction = "manual"\n', 1
            )
        text = self.edit_config(text) if self.edit_config is not None else text
        self.config_path.write_text(text)
        self.config: Config = load_config(self.config_path)
        lab_ca = self.config.cas["lab"]
        assert lab_ca.folder is not None
        self.ca = LocalCA(lab_ca.folder, name="lab")
        self.sim.trust_ca(self.ca.root_pem)
        self.state_dir = self.folder / "state"
        self.open_engine()
        return self

    def open_engine(self) -> Engine:
        registry = build_registry()
        self.definitions = load_checked_definitions(registry)
        self.adapters = Adapters(self.config)
        self.engine = Engine(
            self.state_dir, self.definitions, registry, self.adapters.deps, time_scale=self.config.time_scale
        )
        return self.engine

    def close_engine(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        if self.adapters is not None:
            self.adapters.close()
            self.adapters = None

    def __exit__(self, *exc: object) -> None:
        self.close_engine()
        self.sim.stop()

    # ------------------------------------------------------------------ runs

    @property
    def cluster(self) -> str:
        return next(iter(self.config.clusters))

    def start(self, types: Sequence[str], *, force: bool = False) -> list[str]:
        assert self.engine is not None
        return start_campaign(
            self.engine, self.config, [(self.cluster, list(types))], force=force, definitions=self.definitions
        )

    def record(self, event: EventView) -> None:
        with self._events_lock:
            self.events.append(event)

    def drive(self) -> list[RunView]:
        """Run everything until quiet (final, failed or paused); return every run's view."""
        assert self.engine is not None
        self.engine.run_until_quiet(on_event=self.record)
        return self.views()

    def views(self) -> list[RunView]:
        assert self.engine is not None
        return [self.engine.status(r.id)[0] for r in self.engine.find_runs(include_final=True)]

    def view(self, definition: str) -> RunView:
        matches = [v for v in self.views() if v.definition == definition]
        assert len(matches) == 1, matches
        return matches[0]

    def serve(self) -> Callable[[], None]:
        """Drive in a background thread (as the daemon does); returns the function that stops it."""
        assert self.engine is not None
        stop = threading.Event()
        engine = self.engine
        thread = threading.Thread(target=lambda: engine.serve(stop, on_event=self.record), daemon=True)
        thread.start()

        def halt() -> None:
            stop.set()
            thread.join(timeout=30)
            assert not thread.is_alive()

        return halt

    def wait_for(self, what: str, check: Callable[[], Any], deadline: float = DEADLINE) -> Any:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            value = check()
            if value:
                return value
            time.sleep(0.05)
        runs = [(v.id, v.state, v.waiting_reason) for v in self.views()]
        raise AssertionError(f"timed out waiting for {what}; runs: {runs}")

    def watch_status(self) -> tuple[list[RunView], Callable[[], None]]:
        """Poll ``status`` from a second engine on the same state folder, as an operator's
        `cucm-renew status` would, while the runs are driven; returns (seen, stop)."""
        seen: list[RunView] = []
        stop = threading.Event()
        reader = Engine(self.state_dir, self.definitions, build_registry())

        def poll() -> None:
            while not stop.is_set():
                seen.extend(reader.status())
                stop.wait(0.02)

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()

        def halt() -> None:
            stop.set()
            thread.join(timeout=10)
            reader.close()

        return seen, halt

    def until(self, run_id: str, check: Callable[[RunView], bool], what: str) -> RunView:
        """Poll the run's status until ``check`` holds."""
        assert self.engine is not None
        engine = self.engine
        return self.wait_for(what, lambda: next((v for v in engine.status(run_id) if check(v)), None))

    def events_of(self, definition: str) -> list[EventView]:
        with self._events_lock:
            return [e for e in self.events if e.definition == definition]

    # ------------------------------------------------------------------ the CLI, as an operator runs it

    def cli_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
        env["CUCM_RENEW_CONFIG"] = str(self.config_path)
        env["CUCM_RENEW_STATE"] = str(self.state_dir)
        return env

    def cli(self, *args: str, timeout: float = DEADLINE) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app.cli", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.cli_env(),
            cwd=str(REPO),
        )

    def daemon(self, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", "daemon"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**self.cli_env(), **env},
            cwd=str(REPO),
        )


def stop_process(proc: subprocess.Popen[str]) -> str:
    """SIGTERM, then collect what it printed."""
    proc.terminate()
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return out + err


def sim_restarts(state: dict[str, Any], services: Iterable[str]) -> list[tuple[str, str, str]]:
    """The simulator's own record of restarts: (time, node, service), in time order."""
    wanted = set(services)
    out = []
    for node, by_service in state["restarts"].items():
        for service, times in by_service.items():
            if service in wanted:
                out.extend((t, node, service) for t in times)
    return sorted(out)
