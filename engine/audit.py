"""Audit export and verification.

Events are exported as JSON Lines or CSV, filtered by run, scope and time. ``verify`` walks the
hash chain from the first event: each row's hash must match its contents, its ``prev_hash`` the
previous row's hash, its sequence number the previous one plus one, and the last row the chain
head recorded beside it. It then checks the anchor outside the database (:mod:`engine.anchor`):
every event from the one the key was first used for carries a MAC that verifies with the key,
and every checkpoint in the log verifies and names an event the table still holds, with the same
hash. Last, each run row must be in the state, and have the status, its last event gave it. The
first problem found is reported.
"""

from __future__ import annotations

import csv
import hmac
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import IO, Any

from engine.anchor import checkpoint_mac, event_mac, key_id, read_checkpoints
from engine.store import GENESIS, Store, event_hash

FIELDS = (
    "seq",
    "ts",
    "run",
    "scope",
    "definition",
    "node",
    "from",
    "to",
    "trigger",
    "actor",
    "reason",
    "evidence",
    "prev_hash",
    "hash",
)


class AuditError(Exception):
    """Bad export arguments."""


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events: int
    first_broken_seq: int | None = None
    problem: str = ""
    unanchored_upto: int = 0
    """Events up to this seq carry no MAC: written before the trail was anchored."""
    checkpoints: int = 0
    notes: tuple[str, ...] = ()
    """What an intact result still does not prove (no key to check MACs with, no checkpoint)."""

    def __str__(self) -> str:
        if self.ok:
            text = f"audit chain intact: {self.events} events verified"
            if self.checkpoints:
                text += f", {self.checkpoints} checkpoint(s) outside the database agree"
        else:
            text = f"audit chain broken at seq {self.first_broken_seq}: {self.problem}"
        if self.unanchored_upto:
            text += (
                f"\nunanchored up to seq {self.unanchored_upto}: those events were written before the "
                "audit key existed; their hash chain is checked, but whoever could write the database "
                "could have rewritten them and recomputed it"
            )
        return "\n".join([text, *self.notes])

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "first_broken_seq": self.first_broken_seq,
            "problem": self.problem,
            "unanchored_upto": self.unanchored_upto,
            "checkpoints": self.checkpoints,
            "notes": list(self.notes),
        }


def normalise_since(since: str) -> str:
    """Accept an ISO date or timestamp (naive means UTC) and return the stored timestamp format."""
    text = since.strip()
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise AuditError(
            f"--since {since!r} is not a date or timestamp: use e.g. 2026-11-26 or 2026-11-26T10:00:00Z"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def export(
    store: Store,
    out: IO[str],
    fmt: str = "jsonl",
    *,
    run: str | None = None,
    scope: str | None = None,
    since: str | None = None,
) -> int:
    """Write the matching events to ``out``; return how many."""
    if fmt not in ("jsonl", "csv"):
        raise AuditError(f"unknown audit format {fmt!r}: use jsonl or csv")
    events = store.events(run=run, scope=scope, since=normalise_since(since) if since else None)
    if fmt == "jsonl":
        for event in events:
            out.write(json.dumps(event.as_dict(), sort_keys=True, ensure_ascii=False) + "\n")
    else:
        writer = csv.DictWriter(out, fieldnames=list(FIELDS), lineterminator="\n")
        writer.writeheader()
        for event in events:
            row: dict[str, Any] = event.as_dict()
            row["evidence"] = json.dumps(row["evidence"], sort_keys=True, ensure_ascii=False)
            writer.writerow(row)
    return len(events)


def verify(store: Store, *, final_states: Mapping[str, Collection[str]] | None = None) -> VerifyResult:
    """Check the chain, then its anchor (MACs under the store's key, the checkpoint log), then that
    every run row is where its last event put it. ``final_states`` (per definition) lets the last
    check tell a final run from an active one."""
    rows = store.raw_events()
    chain = _verify_chain(store, rows)
    if not chain.ok:
        return chain
    anchored = _verify_anchor(store, rows)
    if not anchored.ok:
        return anchored
    broken = _verify_runs(store, rows, final_states)
    if broken is not None:
        return replace(anchored, ok=False, first_broken_seq=broken[0], problem=broken[1])
    return anchored


def _verify_chain(store: Store, rows: list[dict[str, Any]]) -> VerifyResult:
    prev_hash, prev_seq = GENESIS, 0
    for row in rows:
        seq = int(row["seq"])
        if seq != prev_seq + 1:
            return VerifyResult(
                False, len(rows), prev_seq + 1, f"event {prev_seq + 1} is missing (next is {seq})"
            )
        try:
            evidence = json.loads(row["evidence"])
        except (TypeError, ValueError):
            return VerifyResult(False, len(rows), seq, "evidence is not valid JSON")
        fields = {
            "seq": seq,
            "ts": row["ts"],
            "run": row["run"],
            "scope": row["scope"],
            "definition": row["definition"],
            "node": row["node"],
            "from": row["from_state"],
            "to": row["to_state"],
            "trigger": row["trigger"],
            "actor": row["actor"],
            "reason": row["reason"],
            "evidence": evidence,
            "prev_hash": row["prev_hash"],
        }
        if row["prev_hash"] != prev_hash:
            return VerifyResult(False, len(rows), seq, "prev_hash does not match the previous event's hash")
        if event_hash(fields) != row["hash"]:
            return VerifyResult(False, len(rows), seq, "the event's contents do not match its hash")
        prev_hash, prev_seq = row["hash"], seq
    head = store.chain_head()
    if head is not None and (head[0] != prev_seq or head[1] != prev_hash):
        return VerifyResult(
            False,
            len(rows),
            prev_seq + 1,
            f"the chain ends at {prev_seq} but events up to {head[0]} were written",
        )
    if head is None and rows:
        return VerifyResult(False, len(rows), 1, "the chain head record is missing")
    return VerifyResult(True, len(rows))


def _verify_anchor(store: Store, rows: list[dict[str, Any]]) -> VerifyResult:
    total = len(rows)
    paths = store.anchor_paths
    key = store.key
    stored_from = store.meta("anchored_from")
    checkpoints, bad_lines = read_checkpoints(paths.log) if paths is not None else ([], [])
    # Where MACs begin: the database says, and so does every checkpoint. A database edited to
    # start later (to pass off stripped MACs as "written before the key") disagrees with the log.
    declared = [int(stored_from)] if stored_from and stored_from.isdigit() else []
    declared += [c.anchored_from for c in checkpoints]
    anchored_from = min(declared) if declared else None
    if anchored_from is None:
        if any(row["mac"] is not None for row in rows):
            first = next(int(r["seq"]) for r in rows if r["mac"] is not None)
            return VerifyResult(
                False, total, first, "events carry MACs but the database records no audit key"
            )
        hint = "no audit key anchors this trail yet: the next command that writes anchors it"
        return VerifyResult(True, total, unanchored_upto=total, notes=(hint,) if rows else ())
    unanchored = min(anchored_from - 1, total)
    if key is None:
        where = paths.key if paths is not None else "the audit key"
        return VerifyResult(
            False,
            total,
            anchored_from,
            f"the audit key {where} is not available, so the MACs from seq {anchored_from} on cannot be "
            "checked: pass --audit-key (or $CUCM_RENEW_AUDIT_KEY) naming the key file",
            unanchored_upto=unanchored,
        )
    stored_id = store.meta("key_id")
    if stored_id is not None and stored_id != key_id(key):
        return VerifyResult(
            False,
            total,
            anchored_from,
            f"the audit key given (id {key_id(key)}) is not the one recorded (id {stored_id})",
            unanchored_upto=unanchored,
        )
    for row in rows:
        seq = int(row["seq"])
        if seq < anchored_from:
            continue
        mac = row["mac"]
        if mac is None:
            return VerifyResult(
                False, total, seq, "the event has no MAC although the trail is anchored from seq "
                f"{anchored_from}", unanchored_upto=unanchored
            )  # fmt: skip
        if not hmac.compare_digest(str(mac), event_mac(key, seq, str(row["hash"]))):
            return VerifyResult(
                False,
                total,
                seq,
                "the event's MAC does not verify with the audit key: the event was rewritten (its "
                "hash recomputed) by someone without the key",
                unanchored_upto=unanchored,
            )
    by_seq = {int(r["seq"]): str(r["hash"]) for r in rows}
    last = max(by_seq, default=0)
    for line in bad_lines:
        return VerifyResult(
            False, total, None, f"the checkpoint log was edited: {line}", unanchored_upto=unanchored
        )
    for cp in checkpoints:
        expected = checkpoint_mac(key, cp.seq, cp.hash, cp.anchored_from)
        if not hmac.compare_digest(cp.mac, expected):
            return VerifyResult(
                False,
                total,
                cp.seq,
                f"checkpoint on line {cp.line} of {paths.log if paths else 'the log'} does not verify "
                "with the audit key: the log was edited",
                unanchored_upto=unanchored,
            )
    furthest = max(checkpoints, key=lambda c: c.seq, default=None)
    if furthest is not None and furthest.seq > last:
        return VerifyResult(
            False,
            total,
            last + 1,
            f"the checkpoint log records event {furthest.seq} (written {furthest.ts}) but the table ends "
            f"at seq {last}: events {last + 1}..{furthest.seq} were deleted",
            unanchored_upto=unanchored,
        )
    for cp in checkpoints:
        if by_seq[cp.seq] != cp.hash:
            return VerifyResult(
                False,
                total,
                cp.seq,
                f"event {cp.seq} is not the one checkpointed on line {cp.line} of the log: the chain was "
                "rewritten",
                unanchored_upto=unanchored,
            )
    notes: list[str] = []
    newest = max((c.seq for c in checkpoints), default=0)
    if last >= anchored_from and newest < last:
        notes.append(
            f"events {newest + 1}..{last} are after the last checkpoint: their MACs verify, but "
            "deleting them would go unnoticed"
        )
    return VerifyResult(
        True, total, unanchored_upto=unanchored, checkpoints=len(checkpoints), notes=tuple(notes)
    )


def _expected_status(to_state: str, final: Collection[str] | None) -> str | None:
    if to_state in ("paused", "failed"):
        return to_state
    if final is None:
        return None
    return "final" if to_state in final else "active"


def _verify_runs(
    store: Store, rows: list[dict[str, Any]], final_states: Mapping[str, Collection[str]] | None
) -> tuple[int | None, str] | None:
    """Each run's state and status are what its last event says; a run without events, or events
    of a run that is not there, are edits of the runs table. Each scope on hold is where its last
    hold or release event left it."""
    last_event: dict[str, dict[str, Any]] = {}
    held: dict[str, dict[str, Any]] = {}
    for row in rows:
        if not row["run"]:
            # An event about a scope (hold, release), not a run.
            held[str(row["scope"])] = row
            continue
        last_event[str(row["run"])] = row
    holds = {h.scope for h in store.holds()}
    for scope in sorted(holds | set(held)):
        event = held.get(scope)
        on_hold = event is not None and event["trigger"] == "hold"
        if on_hold != (scope in holds):
            seq = int(event["seq"]) if event is not None else None
            said = f"its last event (seq {seq}) is a {event['trigger']}" if event else "no event holds it"
            now = "on hold" if scope in holds else "not on hold"
            return seq, f"scope {scope} is {now} but {said}: the holds table was edited"
    runs = {run.id: run for run in store.runs()}
    for run_id, run in runs.items():
        event = last_event.get(run_id)
        if event is None:
            return None, f"run {run_id} has no events: the runs table was edited"
        seq = int(event["seq"])
        if run.state != event["to_state"]:
            return seq, (
                f"run {run_id} is in state {run.state!r} but its last event (seq {seq}) took it to "
                f"{event['to_state']!r}: the runs table was edited"
            )
        final = None if final_states is None else final_states.get(run.definition)
        expected = _expected_status(str(event["to_state"]), final)
        if expected is not None and run.status != expected:
            return seq, (
                f"run {run_id} has status {run.status!r} but its last event (seq {seq}) left it "
                f"{expected!r}: the runs table was edited"
            )
        if expected is None and run.status in ("paused", "failed"):
            return seq, (
                f"run {run_id} has status {run.status!r} but its last event (seq {seq}) held it in no "
                "state: the runs table was edited"
            )
    missing = sorted(set(last_event) - set(runs))
    if missing:
        return int(
            last_event[missing[0]]["seq"]
        ), f"run {missing[0]} has events but no row: the runs table was edited"
    return None
