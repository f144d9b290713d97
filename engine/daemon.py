"""The engine facade, the daemon lock and the operator commands.

:class:`Engine` is what the command line and the tests use: start runs, drive them in the
foreground (``run_until_quiet``) or forever (``serve``, holding ``daemon.lock`` in the state
folder), and apply operator commands. Each command is one transaction recorded in the audit with
its actor; a command that does not apply raises :class:`CommandError` and changes nothing. Commands
issued from another process while a daemon runs are plain transactions on the same database; the
daemon notices them through ``PRAGMA data_version`` within its poll interval.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import getpass
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from engine.api import JSON, Registry, SubmitRejected
from engine.audit import VerifyResult, export, verify
from engine.definition import Definition
from engine.logging import get_logger
from engine.runner import Clock, EventView, Runner, RunView, iso, missing_state, view
from engine.store import EventRow, RunRow, Store, Tx

LOCK_NAME = "daemon.lock"


class EngineError(Exception):
    """Base class of the errors the engine reports to an operator."""


class CommandError(EngineError):
    """An operator command does not apply; nothing was changed."""


class DaemonBusy(EngineError):
    """Another process holds the state folder."""

    def __init__(self, state_dir: Path, pid: int | None) -> None:
        self.pid = pid
        who = f"pid {pid}" if pid else "pid unknown"
        super().__init__(f"another daemon ({who}) holds {state_dir}: stop it, or use another --state-dir")


def default_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


class DaemonLock:
    """``flock`` on ``STATE_DIR/daemon.lock``, which holds the owner's pid."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise DaemonBusy(self.state_dir, self.holder()) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd

    def holder(self) -> int | None:
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()


class Engine:
    """One state folder, its definitions and the application's steps."""

    def __init__(
        self,
        state_dir: Path,
        definitions: Mapping[str, Definition],
        registry: Registry,
        deps_factory: Callable[[RunView], Any] = lambda run: None,
        *,
        clock: Clock | None = None,
        time_scale: float = 1.0,
        actor: str | None = None,
        workers: int = 8,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be above 0")
        self.state_dir = Path(state_dir)
        self.definitions = dict(definitions)
        self.registry = registry
        self.clock: Clock = clock or time.time
        self.actor = actor or default_actor()
        self.store = Store(self.state_dir)
        self.lock = DaemonLock(self.state_dir)
        self.runner = Runner(
            self.store,
            self.definitions,
            registry,
            deps_factory,
            clock=self.clock,
            time_scale=time_scale,
            actor="daemon",
            workers=workers,
        )

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ runs

    def start_run(
        self, definition: str, scope: str, context: Mapping[str, JSON], *, run_id: str | None = None
    ) -> str:
        """Create a run in its definition's initial state; it is due at once."""
        defn = self.definitions.get(definition)
        if defn is None:
            known = ", ".join(sorted(self.definitions)) or "none"
            raise CommandError(f"unknown definition {definition!r}: use one of {known}")
        run_id = run_id or f"{definition}-{scope}-{uuid.uuid4().hex[:8]}"
        now = self.clock()
        run = RunRow(
            id=run_id,
            definition=definition,
            scope=scope,
            state=defn.initial,
            status="active",
            context=json.loads(json.dumps(dict(context))),
            visits={defn.initial: 1},
            created_at=now,
            updated_at=now,
            next_wake_at=now,
        )
        with self.store.tx() as tx:
            if tx.get_run(run_id) is not None:
                raise CommandError(f"run {run_id!r} already exists: choose another id")
            tx.insert_run(run)
            tx.append_event(
                ts=iso(now),
                run=run,
                from_state=None,
                to_state=defn.initial,
                trigger="start",
                actor=self.actor,
                evidence={"context_keys": sorted(run.context)},
            )
            if defn.states[defn.initial].gate is not None:
                self.runner.hold(
                    tx,
                    run,
                    "paused",
                    defn.states[defn.initial].gate or "",
                    trigger="gate",
                    actor=self.actor,
                    on_approve="next" if defn.states[defn.initial].step is None else None,
                )
                tx.update_run(run)
            events = list(tx.events)
        self.runner.emit(events)
        self.runner.schedule(run_id, run.next_wake_at)
        return run_id

    def start_unless_running(
        self, definition: str, scope: str, context: Mapping[str, JSON], *, run_id: str | None = None
    ) -> tuple[str, bool]:
        """The non-final run of ``definition`` on ``scope`` if there is one, else a new run.
        Returns ``(run_id, started)``; lets ``run`` and a daemon's scheduler be re-run safely."""
        for existing in self.find_runs(definition=definition, scope=scope):
            return existing.id, False
        return self.start_run(definition, scope, context, run_id=run_id), True

    def run_until_quiet(
        self, *, stop: threading.Event | None = None, on_event: Callable[[EventView], None] | None = None
    ) -> None:
        """Drive every run in the foreground until each is final, failed or paused (or waits on a
        lease a held run keeps). Sleeps on timers. Holds the state-folder lock meanwhile."""
        self.runner.on_event = on_event
        with self.lock.held():
            self.runner.load()
            self.runner.loop(stop or threading.Event(), until_quiet=True)

    def serve(self, stop: threading.Event, *, on_event: Callable[[EventView], None] | None = None) -> None:
        """The daemon loop: resume every run and drive them until ``stop`` is set."""
        self.runner.on_event = on_event
        with self.lock.held():
            self.runner.load()
            get_logger().info(
                "daemon started",
                pid=os.getpid(),
                state_dir=str(self.state_dir),
                resumed=self.runner.scheduled(),
            )
            self.runner.loop(stop, until_quiet=False)
            get_logger().info("daemon stopped", pid=os.getpid())

    def status(self, run_id: str | None = None) -> list[RunView]:
        if run_id is not None:
            run = self.store.get_run(run_id)
            if run is None:
                raise CommandError(f"unknown run {run_id!r}: `status` lists the runs")
            return [view(run, self.store.progress(run.id))]
        return [view(r, self.store.progress(r.id)) for r in self.store.runs()]

    def find_runs(
        self, *, definition: str | None = None, scope: str | None = None, include_final: bool = False
    ) -> list[RunView]:
        """Runs matching ``definition`` and ``scope`` (e.g. to avoid starting a second run of a type
        on a cluster)."""
        return [
            view(r, {})
            for r in self.store.runs(include_final=include_final)
            if (definition is None or r.definition == definition) and (scope is None or r.scope == scope)
        ]

    def events(
        self, *, run: str | None = None, scope: str | None = None, since: str | None = None
    ) -> list[EventRow]:
        return self.store.events(run=run, scope=scope, since=since)

    def export_audit(
        self,
        out: Any,
        fmt: str = "jsonl",
        *,
        run: str | None = None,
        scope: str | None = None,
        since: str | None = None,
    ) -> int:
        return export(self.store, out, fmt, run=run, scope=scope, since=since)

    def verify_audit(self) -> VerifyResult:
        return verify(self.store)

    # ------------------------------------------------------------------ operator commands

    def _command(
        self,
        run_id: str,
        kind: str,
        args: Mapping[str, JSON],
        actor: str | None,
        body: Callable[[Tx, RunRow], None],
    ) -> RunView:
        with self.store.tx() as tx:
            run = tx.get_run(run_id)
            if run is None:
                raise CommandError(f"unknown run {run_id!r}: `status` lists the runs")
            if run.definition not in self.definitions:
                raise CommandError(f"run {run_id} uses definition {run.definition!r}, which is not loaded")
            body(tx, run)
            run.updated_at = self.clock()
            tx.update_run(run)
            tx.record_command(self.clock(), run_id, kind, args, actor or self.actor)
            events = list(tx.events)
        self.runner.emit(events)
        self.runner.schedule(run.id, run.next_wake_at if run.status == "active" else None)
        return view(run, self.store.progress(run.id))

    def _known_state(self, run: RunRow) -> str:
        """The state a held run goes back to, which its definition must still have."""
        where = run.held_from or run.state
        if where not in self.definitions[run.definition].states:
            raise CommandError(f"run {run.id}: {missing_state(where, run.definition)}")
        return where

    @staticmethod
    def _where(run: RunRow) -> str:
        return f"{run.state} (held from {run.held_from})" if run.held_from else run.state

    def approve(self, run_id: str, actor: str | None = None, reason: str = "") -> RunView:
        """Release a run held ``paused``: fire its gate's trigger, or re-run its step."""
        actor = actor or self.actor

        def body(tx: Tx, run: RunRow) -> None:
            if run.status != "paused" or run.held_from is None:
                raise CommandError(
                    f"run {run.id} is not paused (it is {self._where(run)}): "
                    "approve applies only to a paused run"
                )
            held = self._known_state(run)
            trigger = run.on_approve
            run.state, run.held_from, run.status = held, None, "active"
            if trigger is None:
                tx.append_event(
                    ts=iso(self.clock()),
                    run=run,
                    from_state="paused",
                    to_state=held,
                    trigger="approve",
                    actor=actor,
                    reason=reason,
                )
                run.attempt, run.wait_started_at, run.waiting_reason, run.waiting_kind = 1, None, "", ""
                run.next_wake_at = self.clock()
                return
            result = self.runner.runtime.fire(tx, run, trigger, run.context, self.clock())
            from engine.runtime import Fired, Refused

            if isinstance(result, Refused):
                raise CommandError(f"cannot approve run {run.id}: {result.reason}")
            if not isinstance(result, Fired):
                raise CommandError(
                    f"cannot approve run {run.id}: state {held!r} has no {trigger!r} transition"
                )
            self.runner.enter(tx, run, result.dest, trigger="approve", actor=actor, reason=reason)

        return self._command(run_id, "approve", {"reason": reason}, actor, body)

    def advance(self, run_id: str, to: str, reason: str, actor: str | None = None) -> RunView:
        """Move a run by hand to a state one declared transition away from where it is (or is held)."""
        actor = actor or self.actor
        if not reason.strip():
            raise CommandError(
                "advance needs --reason: say why the run is moved by hand (it goes into the audit)"
            )

        def body(tx: Tx, run: RunRow) -> None:
            if run.status == "final":
                raise CommandError(f"run {run.id} is finished ({run.state}): nothing to advance")
            defn = self.definitions[run.definition]
            where = self._known_state(run)
            allowed = sorted({t.dest for t in defn.outgoing(where)})
            if to not in allowed:
                raise CommandError(
                    f"cannot advance run {run.id} to {to!r}: from {where!r} the definition allows "
                    f"{', '.join(allowed) or 'nothing'}"
                )
            blocked = self.runner.runtime.lease_block(tx, run, to)
            if blocked:
                raise CommandError(f"cannot advance run {run.id} to {to!r}: {blocked}")
            run.state, run.held_from = where, None
            self.runner.enter(tx, run, to, trigger="advance", actor=actor, reason=reason)

        return self._command(run_id, "advance", {"to": to, "reason": reason}, actor, body)

    def retry(self, run_id: str, actor: str | None = None) -> RunView:
        """Give a failed run a fresh set of attempts in the state it failed in."""
        actor = actor or self.actor

        def body(tx: Tx, run: RunRow) -> None:
            if run.status != "failed" or run.held_from is None:
                raise CommandError(
                    f"run {run.id} has not failed (it is {self._where(run)}): "
                    "retry applies only to a failed run"
                )
            held = self._known_state(run)
            tx.append_event(
                ts=iso(self.clock()),
                run=run,
                from_state="failed",
                to_state=held,
                trigger="retry",
                actor=actor,
                reason=f"operator retry after: {run.last_error}",
            )
            run.state, run.held_from, run.status = held, None, "active"
            run.attempt, run.wait_started_at, run.waiting_reason, run.waiting_kind = 1, None, "", ""
            run.next_wake_at = self.clock()

        return self._command(run_id, "retry", {}, actor, body)

    def abort(self, run_id: str, reason: str, actor: str | None = None) -> RunView:
        actor = actor or self.actor
        if not reason.strip():
            raise CommandError("abort needs --reason: say why the run is stopped (it goes into the audit)")

        def body(tx: Tx, run: RunRow) -> None:
            if run.status == "final":
                raise CommandError(f"run {run.id} is already finished ({run.state}): nothing to abort")
            self.runner.abort(tx, run, reason, actor)

        return self._command(run_id, "abort", {"reason": reason}, actor, body)

    def submit(self, run_id: str, key: str, data: JSON, actor: str | None = None) -> RunView:
        """Attach ``data`` under ``key`` to a run waiting in a state that declares ``submit``."""
        actor = actor or self.actor

        def body(tx: Tx, run: RunRow) -> None:
            if run.status == "final":
                raise CommandError(f"run {run.id} is finished ({run.state}): it accepts no submission")
            defn = self.definitions[run.definition]
            where = run.held_from or run.state
            sdef = defn.states.get(where)
            if sdef is None or sdef.submit_validator is None:
                accepting = sorted(s.name for s in defn.states.values() if s.submit_validator)
                raise CommandError(
                    f"run {run.id} is in {where!r}, which accepts no submission "
                    f"(states that do: {', '.join(accepting) or 'none'})"
                )
            validator = self.registry.validators[sdef.submit_validator]
            try:
                cleaned = validator(run.context, key, data)
            except SubmitRejected as exc:
                raise CommandError(f"submission refused: {exc}") from None
            cleaned = json.loads(json.dumps(cleaned))
            digest = hashlib.sha256(json.dumps(cleaned, sort_keys=True).encode()).hexdigest()
            tx.append_event(
                ts=iso(self.clock()),
                run=run,
                from_state=run.state,
                to_state=run.state,
                trigger="submit",
                actor=actor,
                reason=f"data submitted under {key!r}",
                evidence={"key": key, "sha256": digest},
            )
            run.submitted = {**run.submitted, key: cleaned}
            if run.status == "active":
                run.next_wake_at = self.clock()

        return self._command(run_id, "submit", {"key": key}, actor, body)
