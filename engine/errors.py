"""The errors the engine reports to an operator::

    EngineError
    ├── CommandError   an operator command does not apply; nothing was changed
    └── DaemonBusy     another process holds the state folder

(:class:`engine.store.StoreFatal` is not among them: a failed disk stops the process.)
"""

from __future__ import annotations

from pathlib import Path


class EngineError(Exception):
    """Base class of the errors the engine reports to an operator."""


class CommandError(EngineError):
    """An operator command does not apply; nothing was changed."""


class DaemonBusy(EngineError):
    """Another process holds the state folder."""

    def __init__(self, state_dir: Path, pid: int | None, *, hint: str = "") -> None:
        self.pid = pid
        who = f"pid {pid}" if pid else "pid unknown"
        also = f"; {hint}" if hint else ""
        super().__init__(
            f"another daemon ({who}) holds {state_dir}: nothing was started; stop it, or use another "
            f"--state-dir{also}"
        )
