"""The operator commands: approve, advance, retry, abort, submit and submit_many on runs; hold and
release on a scope.

Each command is one transaction recorded in the ``commands`` table and the audit with its actor; a
command that does not apply raises :class:`~engine.errors.CommandError` and changes nothing. The
checks are here; the changes they allow are :mod:`engine.moves`. Commands issued from another
process while a daemon runs are plain transactions on the same database; the daemon notices them
through ``PRAGMA data_version`` within its poll interval.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from engine.api import JSON, Registry, SubmitRejected
from engine.definition import Definition
from engine.errors import CommandError
from engine.moves import Moves
from engine.runtime import Refused
from engine.scheduler import Scheduler
from engine.store import HoldRow, RunRow, Store, Tx
from engine.views import EventFeed, RunView, iso, missing_state, view


@dataclass(frozen=True)
class Submission:
    """One item of :meth:`Commands.submit_many`: ``data`` for ``key`` of run ``run_id``.
    ``source`` is what the operator calls it (a file name), named in its refusal."""

    run_id: str
    key: str
    data: JSON
    source: str = ""


@dataclass(frozen=True)
class Refusal:
    submission: Submission
    reason: str


class SubmissionsRefused(CommandError):
    """What :meth:`Commands.submit_many` refused; nothing was recorded."""

    def __init__(self, refusals: Sequence[Refusal]) -> None:
        self.refusals = list(refusals)
        lines = [f"{r.submission.source or r.submission.key}: {r.reason}" for r in self.refusals]
        super().__init__(
            f"{len(self.refusals)} submission(s) refused, nothing recorded:\n  " + "\n  ".join(lines)
        )


class Commands:
    """Operator commands on the runs of one state folder."""

    def __init__(
        self,
        store: Store,
        definitions: Mapping[str, Definition],
        registry: Registry,
        moves: Moves,
        scheduler: Scheduler,
        feed: EventFeed,
        *,
        clock: Callable[[], float],
        actor: str,
    ) -> None:
        self.store = store
        self.definitions = definitions
        self.registry = registry
        self.moves = moves
        self.scheduler = scheduler
        self.feed = feed
        self.clock = clock
        self.actor = actor

    def approve(self, run_id: str, actor: str | None = None, reason: str = "") -> RunView:
        """Release a run held ``paused``: fire its gate's trigger, or re-run its step."""
        who = actor or self.actor

        def body(tx: Tx, run: RunRow) -> None:
            if run.status != "paused" or run.held_from is None:
                raise CommandError(
                    f"run {run.id} is not paused (it is {_where(run)}): approve applies only to a paused run"
                )
            held = self._known_state(run)
            trigger = run.on_approve
            refused = self.moves.approve(tx, run, actor=who, reason=reason)
            if isinstance(refused, Refused):
                raise CommandError(f"cannot approve run {run.id}: {refused.reason}")
            if refused is not None:
                raise CommandError(
                    f"cannot approve run {run.id}: state {held!r} has no {trigger!r} transition"
                )

        return self._command(run_id, "approve", {"reason": reason}, who, body)

    def advance(self, run_id: str, to: str, reason: str, actor: str | None = None) -> RunView:
        """Move a run by hand to a state one declared transition away from where it is (or is held)."""
        who = actor or self.actor
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
            blocked = self.moves.runtime.lease_block(tx, run, to)
            if blocked:
                raise CommandError(f"cannot advance run {run.id} to {to!r}: {blocked}")
            self.moves.advance(tx, run, to, actor=who, reason=reason)

        return self._command(run_id, "advance", {"to": to, "reason": reason}, who, body)

    def retry(self, run_id: str, actor: str | None = None) -> RunView:
        """Give a failed run a fresh set of attempts in the state it failed in."""
        who = actor or self.actor

        def body(tx: Tx, run: RunRow) -> None:
            if run.status != "failed" or run.held_from is None:
                raise CommandError(
                    f"run {run.id} has not failed (it is {_where(run)}): retry applies only to a failed run"
                )
            self._known_state(run)
            self.moves.reopen(
                tx, run, trigger="retry", actor=who, reason=f"operator retry after: {run.last_error}"
            )

        return self._command(run_id, "retry", {}, who, body)

    def abort(self, run_id: str, reason: str, actor: str | None = None) -> RunView:
        who = actor or self.actor
        if not reason.strip():
            raise CommandError("abort needs --reason: say why the run is stopped (it goes into the audit)")

        def body(tx: Tx, run: RunRow) -> None:
            if run.status == "final":
                raise CommandError(f"run {run.id} is already finished ({run.state}): nothing to abort")
            self.moves.abort(tx, run, reason, actor=who)

        return self._command(run_id, "abort", {"reason": reason}, who, body)

    def submit(self, run_id: str, key: str, data: JSON, actor: str | None = None) -> RunView:
        """Attach ``data`` under ``key`` to a run waiting in a state that declares ``submit``."""
        who = actor or self.actor

        def body(tx: Tx, run: RunRow) -> None:
            self.moves.submit(tx, run, key, self._validated(run, key, data), actor=who)

        return self._command(run_id, "submit", {"key": key}, who, body)

    def submit_many(
        self,
        submissions: Sequence[Submission],
        actor: str | None = None,
        *,
        partial: bool = False,
        dry_run: bool = False,
    ) -> tuple[list[RunView], list[Refusal]]:
        """Several :meth:`submit`, to one run or many, in one transaction: each checked as
        ``submit`` checks it, and also refused when its run already holds data under its key or
        when the batch gives the same run and key twice. Every one passes or none is recorded
        (:class:`SubmissionsRefused`); with ``partial`` the ones that pass are recorded and the
        others returned. Returns the views of the runs that took something, and the refusals.
        Each recorded submission is one ``commands`` row and one audit event, as with ``submit``.
        ``dry_run`` checks every one and records none: it returns ``([], refusals)``."""
        who = actor or self.actor
        if not submissions:
            raise CommandError("nothing to submit")
        twice: dict[tuple[str, str], list[Submission]] = {}
        for item in submissions:
            twice.setdefault((item.run_id, item.key), []).append(item)
        refusals: list[Refusal] = []
        accepted: list[tuple[Submission, JSON]] = []
        with self.store.tx() as tx:
            runs: dict[str, RunRow | None] = {}
            for item in submissions:
                if item.run_id not in runs:
                    runs[item.run_id] = tx.get_run(item.run_id)
                run = runs[item.run_id]
                try:
                    if run is None:
                        raise CommandError(f"unknown run {item.run_id!r}: `status` lists the runs")
                    if run.definition not in self.definitions:
                        raise CommandError(
                            f"run {run.id} uses definition {run.definition!r}, which is not loaded"
                        )
                    same = twice[(item.run_id, item.key)]
                    if len(same) > 1:
                        raise CommandError(
                            f"{', '.join(s.source or s.key for s in same)} are all for {item.key!r} of run "
                            f"{run.id}: give one"
                        )
                    if item.key in run.submitted:
                        raise CommandError(
                            f"run {run.id} already holds a submission for {item.key!r}: "
                            "it takes one, and uses it on its next step"
                        )
                    accepted.append((item, self._validated(run, item.key, item.data)))
                except CommandError as exc:
                    refusals.append(Refusal(item, str(exc)))
            if dry_run:
                return [], refusals
            if refusals and (not partial or not accepted):
                raise SubmissionsRefused(refusals)
            touched: dict[str, RunRow] = {}
            now = self.clock()
            for item, cleaned in accepted:
                run = runs[item.run_id]
                assert run is not None
                self.moves.submit(tx, run, item.key, cleaned, actor=who)
                tx.record_command(now, run.id, "submit", {"key": item.key}, who)
                touched[run.id] = run
            for run in touched.values():
                run.updated_at = now
                tx.update_run(run)
            events = list(tx.events)
        self.feed.emit(events)
        for run in touched.values():
            self.scheduler.schedule(run.id, run.next_wake_at if run.status == "active" else None)
        return [view(run, self.store.progress(run.id)) for run in touched.values()], refusals

    # ------------------------------------------------------------------ scope holds

    def hold(self, scope: str, reason: str, actor: str | None = None) -> HoldRow:
        """Put ``scope`` on hold until :meth:`release`. The engine records it (a ``holds`` row, a
        ``commands`` row and an audit event, in one transaction) and hands it to every guard of
        that scope's runs (:attr:`engine.api.GuardInput.hold`); the guards decide what it stops."""
        who = actor or self.actor
        if not reason.strip():
            raise CommandError("hold needs --reason: say why (it is shown by status and goes into the audit)")
        now = self.clock()
        with self.store.tx() as tx:
            current = tx.get_hold(scope)
            if current is not None:
                raise CommandError(
                    f"{scope} is already on hold (by {current.actor} since {iso(current.since)}: "
                    f"{current.reason}): release it first to change the reason"
                )
            hold = HoldRow(scope, reason, who, now)
            tx.put_hold(hold)
            tx.append_scope_event(
                ts=iso(now), scope=scope, trigger="hold", actor=who, reason=reason, evidence={"scope": scope}
            )
            tx.record_command(now, "", "hold", {"scope": scope, "reason": reason}, who)
            events = list(tx.events)
        self.feed.emit(events)
        return hold

    def release(self, scope: str, actor: str | None = None, reason: str = "") -> HoldRow:
        """Lift the hold on ``scope``; the scope's runs waiting on a guard look again at once."""
        who = actor or self.actor
        now = self.clock()
        with self.store.tx() as tx:
            current = tx.get_hold(scope)
            if current is None:
                raise CommandError(f"{scope} is not on hold: nothing to release (`status` lists the holds)")
            tx.delete_hold(scope)
            tx.append_scope_event(
                ts=iso(now),
                scope=scope,
                trigger="release",
                actor=who,
                reason=reason or f"hold by {current.actor} released",
                evidence={"scope": scope, "held_since": iso(current.since), "held_for": current.reason},
            )
            tx.record_command(now, "", "release", {"scope": scope, "reason": reason}, who)
            woken = [r for r in tx.active_in_scope(scope) if r.waiting_kind == "guard"]
            for run in woken:
                # A guard may have refused because of the hold: its next look is now, not a poll away.
                run.next_wake_at = now
                tx.update_run(run, stored_status=run.status)
            events = list(tx.events)
        self.feed.emit(events)
        for run in woken:
            self.scheduler.schedule(run.id, run.next_wake_at)
        return current

    # ------------------------------------------------------------------ shared

    def _command(
        self,
        run_id: str,
        kind: str,
        args: Mapping[str, JSON],
        actor: str,
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
            tx.record_command(self.clock(), run_id, kind, args, actor)
            events = list(tx.events)
        self.feed.emit(events)
        self.scheduler.schedule(run.id, run.next_wake_at if run.status == "active" else None)
        return view(run, self.store.progress(run.id))

    def _validated(self, run: RunRow, key: str, data: JSON) -> JSON:
        """``data`` as the state's validator cleans it; CommandError when the run takes none."""
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
        loaded: JSON = json.loads(json.dumps(cleaned))
        return loaded

    def _known_state(self, run: RunRow) -> str:
        """The state a held run goes back to, which its definition must still have."""
        where = run.held_from or run.state
        if where not in self.definitions[run.definition].states:
            raise CommandError(f"run {run.id}: {missing_state(where, run.definition)}")
        return where


def _where(run: RunRow) -> str:
    return f"{run.state} (held from {run.held_from})" if run.held_from else run.state
