"""What one command knows beside its arguments: the configuration, loaded once, and the adapters
built from it.

The engine's hooks (per-run dependencies, time scale, daemon jobs) receive this context, never the
command line. The configuration is read on first use, so commands that only read the state folder
(status, approve, audit) work without a configuration file.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.config import Config, ConfigError, load_config
from app.wiring import Adapters
from workflows.deps import RunDeps

TIME_SCALED_COMMANDS = ("daemon", "run")
"""The commands that drive runs: a simulated cluster's time scale applies to them only."""


class AppContext:
    """One command's configuration and adapters, each built once, on first use (thread-safe: the
    engine builds per-run dependencies from its worker threads)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._lock = threading.Lock()
        self._config: Config | None = None
        self._adapters: Adapters | None = None

    @property
    def config(self) -> Config:
        """The configuration file named by ``--config`` (or the default), parsed once."""
        with self._lock:
            if self._config is None:
                self._config = load_config(getattr(self.args, "config", None))
            return self._config

    def reload_config(self) -> Config:
        """The configuration file read again: the daemon's schedule picks up edits without a
        restart. The adapters keep the configuration they were built from."""
        return load_config(getattr(self.args, "config", None))

    @property
    def adapters(self) -> Adapters:
        config = self.config
        with self._lock:
            if self._adapters is None:
                state = getattr(self.args, "state_dir", None)
                self._adapters = Adapters(config, state_dir=Path(state) if state else None)
            return self._adapters

    def deps(self, run: Any) -> RunDeps:
        """The engine's per-run dependencies (``run`` is its RunView)."""
        return self.adapters.deps(run)

    def audit_settings(self) -> Mapping[str, Any]:
        """``[audit]`` of the configuration; none when there is no configuration to read (commands
        that only read the state folder need none)."""
        try:
            return self.config.audit
        except ConfigError:
            return {}

    def time_scale(self) -> float:
        if getattr(self.args, "command", None) not in TIME_SCALED_COMMANDS:
            return 1.0
        return self.config.time_scale

    def close(self) -> None:
        with self._lock:
            adapters, self._adapters = self._adapters, None
        if adapters is not None:
            adapters.close()
