"""The engine facade: one state folder, its definitions and the application's steps.

:class:`Engine` is what the command line and the tests use: start runs, drive them in the
foreground (``run_until_quiet``) or forever (``serve``, holding ``daemon.lock`` in the state
folder), read them, and apply operator commands (:mod:`engine.commands`). It wires the parts:
moves (:mod:`engine.moves`), ticks (:mod:`engine.tick`), the group commit
(:mod:`engine.group_commit`) and the scheduler (:mod:`engine.scheduler`).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.anchor import AnchorPaths
from engine.api import JSON, Registry
from engine.audit import VerifyResult, export, verify
from engine.commands import Commands, Refusal, Submission
from engine.daemon import (
    DaemonLock,
    PeriodicJob,
    default_actor,
    run_jobs,
    run_watchdog,
    sd_notify,
    watchdog_interval,
)
from engine.definition import ABORTED, Definition
from engine.errors import CommandError
from engine.group_commit import GroupCommit
from engine.logging import get_logger
from engine.moves import Moves
from engine.runtime import Runtime
from engine.scheduler import Scheduler
from engine.store import EventRow, HoldRow, RunRow, Store
from engine.tick import Ticker
from engine.views import EventFeed, EventView, RunView, view

Clock = Callable[[], float]
"""Seconds since the epoch (UTC)."""


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
        anchor: AnchorPaths | None = None,
        read_only: bool = False,
    ) -> None:
        """``anchor`` says where the audit key and checkpoint log are (default: in the state
        folder). ``read_only`` opens the database for reading only: the folder must hold one, and
        starting or driving runs and operator commands are refused."""
        if time_scale <= 0:
            raise ValueError("time_scale must be above 0")
        self.state_dir = Path(state_dir)
        self.time_scale = time_scale
        self.definitions = dict(definitions)
        self.registry = registry
        self.clock: Clock = clock or time.time
        self.actor = actor or default_actor()
        self.store = Store(
            self.state_dir, anchor=anchor or AnchorPaths.default(self.state_dir), read_only=read_only
        )
        self.lock = DaemonLock(self.state_dir)
        self.feed = EventFeed()
        self.moves = Moves(
            self.definitions, Runtime(self.definitions, registry), clock=self.clock, time_scale=time_scale
        )
        self.writer = GroupCommit(self.store, self.clock)
        self.ticker = Ticker(
            self.store,
            self.definitions,
            registry,
            self.moves,
            self.writer,
            self.feed,
            deps_factory,
            clock=self.clock,
            time_scale=time_scale,
            actor="daemon",
        )
        self.scheduler = Scheduler(
            self.store, self.definitions, self.ticker, clock=self.clock, workers=workers
        )
        self.commands = Commands(
            self.store,
            self.definitions,
            registry,
            self.moves,
            self.scheduler,
            self.feed,
            clock=self.clock,
            actor=self.actor,
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
            self.moves.start(tx, run, actor=self.actor)
            tx.insert_run(run)
            events = list(tx.events)
        self.feed.emit(events)
        self.scheduler.schedule(run_id, run.next_wake_at)
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
        self.feed.on_event = on_event
        with self.lock.held():
            self.scheduler.load()
            self.scheduler.loop(stop or threading.Event(), until_quiet=True)

    def serve(
        self,
        stop: threading.Event,
        *,
        on_event: Callable[[EventView], None] | None = None,
        jobs: Sequence[PeriodicJob] = (),
    ) -> None:
        """The daemon loop: resume every run and drive them until ``stop`` is set, running
        ``jobs`` on their schedule meanwhile."""
        self.feed.on_event = on_event
        with self.lock.held():
            self.scheduler.load()
            get_logger().info(
                "daemon started",
                pid=os.getpid(),
                state_dir=str(self.state_dir),
                resumed=self.scheduler.scheduled(),
                jobs=[job.name for job in jobs],
            )
            jobs_thread = None
            if jobs:
                jobs_thread = threading.Thread(
                    target=run_jobs, args=(stop, jobs, self.time_scale), name="daemon-jobs", daemon=True
                )
                jobs_thread.start()
            watchdog = self._start_watchdog(stop)
            # Ready once every run is back on the heap: a unit ordered After= this one finds the
            # state folder locked and the runs resumed.
            sd_notify(f"READY=1\nSTATUS=driving {self.scheduler.scheduled()} run(s)\nMAINPID={os.getpid()}")
            try:
                self.scheduler.loop(stop, until_quiet=False)
            finally:
                stop.set()
                sd_notify("STOPPING=1")
                if jobs_thread is not None:
                    jobs_thread.join(timeout=60)
                if watchdog is not None:
                    watchdog.join(timeout=5)
            get_logger().info("daemon stopped", pid=os.getpid())

    def subscribe(self, observer: Callable[[EventView], None]) -> Callable[[], None]:
        """Call ``observer`` with each event this process commits (see
        :class:`engine.views.EventFeed`); returns the function that removes it."""
        return self.feed.subscribe(observer)

    def _start_watchdog(self, stop: threading.Event) -> threading.Thread | None:
        interval = watchdog_interval()
        if interval is None:
            return None
        scheduler = self.scheduler

        def alive() -> bool:
            # The loop goes round at least every 0.3 s and reads the store each time, so a loop
            # stuck on a lock or a hung disk stops the pings.
            return time.monotonic() - scheduler.heartbeat < max(interval, 1.0)

        thread = threading.Thread(
            target=run_watchdog, args=(stop, interval, alive), name="watchdog", daemon=True
        )
        thread.start()
        return thread

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
        final = {name: {*d.final, ABORTED} for name, d in self.definitions.items()}
        return verify(self.store, final_states=final)

    # ------------------------------------------------------------------ operator commands

    def approve(self, run_id: str, actor: str | None = None, reason: str = "") -> RunView:
        """Release a run held ``paused``: fire its gate's trigger, or re-run its step."""
        return self.commands.approve(run_id, actor, reason)

    def advance(self, run_id: str, to: str, reason: str, actor: str | None = None) -> RunView:
        """Move a run by hand to a state one declared transition away from where it is (or is held)."""
        return self.commands.advance(run_id, to, reason, actor)

    def retry(self, run_id: str, actor: str | None = None) -> RunView:
        """Give a failed run a fresh set of attempts in the state it failed in."""
        return self.commands.retry(run_id, actor)

    def abort(self, run_id: str, reason: str, actor: str | None = None) -> RunView:
        return self.commands.abort(run_id, reason, actor)

    def submit(self, run_id: str, key: str, data: JSON, actor: str | None = None) -> RunView:
        """Attach ``data`` under ``key`` to a run waiting in a state that declares ``submit``."""
        return self.commands.submit(run_id, key, data, actor)

    def submit_many(
        self,
        submissions: Sequence[Submission],
        actor: str | None = None,
        *,
        partial: bool = False,
        dry_run: bool = False,
    ) -> tuple[list[RunView], list[Refusal]]:
        """Several submissions in one transaction: all or none, or with ``partial`` the ones that
        pass; ``dry_run`` only checks (see :meth:`engine.commands.Commands.submit_many`)."""
        return self.commands.submit_many(submissions, actor, partial=partial, dry_run=dry_run)

    def hold(self, scope: str, reason: str, actor: str | None = None) -> HoldRow:
        """Put ``scope`` on hold: its runs' guards see it until :meth:`release`."""
        return self.commands.hold(scope, reason, actor)

    def release(self, scope: str, actor: str | None = None, reason: str = "") -> HoldRow:
        """Lift the hold on ``scope``; returns the hold that stood."""
        return self.commands.release(scope, actor, reason)

    def holds(self) -> list[HoldRow]:
        """Every scope on hold."""
        return self.store.holds()
