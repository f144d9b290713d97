"""Audit export and the hash chain: any edit or deletion of an event is caught."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.audit import AuditError
from engine.facade import Engine


@pytest.fixture
def finished(make_engine: Callable[..., Engine], journal: Path) -> tuple[Engine, list[str]]:
    engine = make_engine()
    runs = [
        engine.start_run("flow", "c1", {"journal": str(journal)}, run_id="one"),
        engine.start_run("flow", "c2", {"journal": str(journal)}, run_id="two"),
    ]
    engine.run_until_quiet()
    return engine, runs


def _tamper(engine: Engine, sql: str) -> None:
    conn = sqlite3.connect(engine.store.path)
    conn.execute(sql)
    conn.commit()
    conn.close()


def test_export_jsonl_and_csv_with_filters(finished: tuple[Engine, list[str]]) -> None:
    engine, _runs = finished
    out = io.StringIO()
    total = engine.export_audit(out, "jsonl")
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert total == len(rows) == len(engine.events())
    assert set(rows[0]) == {
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
    }
    out = io.StringIO()
    assert engine.export_audit(out, "jsonl", run="one") == len(engine.events(run="one"))
    assert {json.loads(line)["run"] for line in out.getvalue().splitlines()} == {"one"}
    out = io.StringIO()
    count = engine.export_audit(out, "csv", scope="c2")
    table = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert count == len(table) and {r["scope"] for r in table} == {"c2"}
    assert json.loads(table[-1]["evidence"]) == {"finished": True}
    assert engine.export_audit(io.StringIO(), "jsonl", since="2999-01-01") == 0
    assert engine.export_audit(io.StringIO(), "jsonl", since=rows[-1]["ts"]) >= 1
    with pytest.raises(AuditError, match="not a date"):
        engine.export_audit(io.StringIO(), "jsonl", since="yesterday")
    with pytest.raises(AuditError, match="use jsonl or csv"):
        engine.export_audit(io.StringIO(), "xml")


def test_intact_chain_verifies(finished: tuple[Engine, list[str]]) -> None:
    engine, _ = finished
    result = engine.verify_audit()
    assert result.ok and result.events == len(engine.events()) and result.first_broken_seq is None


@pytest.mark.parametrize(
    ("sql", "seq", "words"),
    [
        ("UPDATE events SET reason = 'nothing to see' WHERE seq = 5", 5, "contents do not match"),
        ("UPDATE events SET actor = 'mallory@evil' WHERE seq = 3", 3, "contents do not match"),
        ("UPDATE events SET evidence = '{\"nodes\": 4}' WHERE seq = 7", 7, "contents do not match"),
        ("DELETE FROM events WHERE seq = 4", 4, "event 4 is missing"),
        ("DELETE FROM events WHERE seq = (SELECT MAX(seq) FROM events)", None, "the chain ends at"),
        ("UPDATE events SET hash = 'ab' || substr(hash, 3) WHERE seq = 6", 6, "contents do not match"),
    ],
)
def test_tampering_is_caught(
    finished: tuple[Engine, list[str]], sql: str, seq: int | None, words: str
) -> None:
    engine, _ = finished
    last = len(engine.events())
    _tamper(engine, sql)
    result = engine.verify_audit()
    assert not result.ok
    assert result.first_broken_seq == (seq if seq is not None else last)
    assert words in result.problem
    assert str(result).startswith(f"audit chain broken at seq {result.first_broken_seq}")


def test_rehashed_edit_is_caught_at_the_next_event(finished: tuple[Engine, list[str]]) -> None:
    engine, _ = finished
    from engine.store import event_hash

    row = engine.store.raw_events()[4]
    fields = {
        "seq": row["seq"],
        "ts": row["ts"],
        "run": row["run"],
        "scope": row["scope"],
        "definition": row["definition"],
        "node": row["node"],
        "from": row["from_state"],
        "to": row["to_state"],
        "trigger": row["trigger"],
        "actor": "mallory@evil",
        "reason": row["reason"],
        "evidence": json.loads(row["evidence"]),
        "prev_hash": row["prev_hash"],
    }
    forged = event_hash(fields)
    _tamper(engine, f"UPDATE events SET actor = 'mallory@evil', hash = '{forged}' WHERE seq = 5")  # noqa: S608
    result = engine.verify_audit()
    assert not result.ok and result.first_broken_seq == 6 and "prev_hash" in result.problem
