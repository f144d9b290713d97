"""Audit export and verification.

Events are exported as JSON Lines or CSV, filtered by run, scope and time. ``verify`` walks the
hash chain from the first event: each row's hash must match its contents, its ``prev_hash`` the
previous row's hash, its sequence number the previous one plus one, and the last row the chain
head recorded beside it; the first row that breaks any of these is reported.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

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

    def __str__(self) -> str:
        if self.ok:
            return f"audit chain intact: {self.events} events verified"
        return f"audit chain broken at seq {self.first_broken_seq}: {self.problem}"


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


def verify(store: Store) -> VerifyResult:
    rows = store.raw_events()
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
