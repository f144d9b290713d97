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


# ---------------------------------------------------------------------- the anchor outside the database


def _rows(engine: Engine) -> list[dict[str, object]]:
    return engine.store.raw_events()


def _rehash_from(engine: Engine, first: int, **changes: str) -> None:
    """What someone who can write the database but has no key does: edit event ``first`` and
    recompute every hash after it, then move the chain head, so the chain is whole again."""
    from engine.store import event_hash

    conn = sqlite3.connect(engine.store.path)
    rows = _rows(engine)
    prev = rows[first - 2]["hash"] if first > 1 else "0" * 64
    for row in rows[first - 1 :]:
        row = {**row, **(changes if row["seq"] == first else {})}
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
            "actor": row["actor"],
            "reason": row["reason"],
            "evidence": json.loads(str(row["evidence"])),
            "prev_hash": prev,
        }
        digest = event_hash(fields)
        conn.execute(
            "UPDATE events SET actor = ?, reason = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            (row["actor"], row["reason"], prev, digest, row["seq"]),
        )
        prev = digest
    conn.execute("UPDATE meta SET value = ? WHERE key = 'head'", (f"{rows[-1]['seq']}:{prev}",))
    conn.commit()
    conn.close()


def _reader(engine: Engine, **kwargs: object) -> Engine:
    """A second engine on the same folder, read-only, as `audit verify` opens it."""
    return Engine(engine.state_dir, engine.definitions, engine.registry, read_only=True, **kwargs)  # type: ignore[arg-type]


def test_every_event_has_a_mac_and_the_head_is_checkpointed(finished: tuple[Engine, list[str]]) -> None:
    engine, _ = finished
    key = engine.state_dir / "audit.key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert all(row["mac"] for row in _rows(engine))
    engine.store.anchor.flush()  # type: ignore[union-attr]
    log = (engine.state_dir / "audit-checkpoints.log").read_text().splitlines()
    assert json.loads(log[-1])["seq"] == len(engine.events())
    result = engine.verify_audit()
    assert result.ok and result.checkpoints == len(log) and result.unanchored_upto == 0, str(result)


def test_a_cut_tail_with_the_head_moved_is_caught_by_the_checkpoints(
    finished: tuple[Engine, list[str]],
) -> None:
    engine, _ = finished
    last = len(engine.events())
    kept = _rows(engine)[last - 4]
    _tamper(engine, f"DELETE FROM events WHERE seq > {last - 3}")  # noqa: S608
    _tamper(engine, f"UPDATE meta SET value = '{kept['seq']}:{kept['hash']}' WHERE key = 'head'")  # noqa: S608
    _tamper(engine, "UPDATE runs SET state = 'done', status = 'final'")  # the runs agree with the cut chain
    result = _reader(engine).verify_audit()
    assert not result.ok, str(result)
    assert result.first_broken_seq == last - 2
    assert f"records event {last}" in result.problem and "were deleted" in result.problem


def test_a_recomputed_chain_fails_its_macs(finished: tuple[Engine, list[str]]) -> None:
    engine, _ = finished
    _rehash_from(engine, 5, actor="mallory@evil")
    result = engine.verify_audit()
    assert not result.ok and result.first_broken_seq == 5
    assert "MAC does not verify" in result.problem


def test_a_recomputed_chain_with_its_macs_stripped_is_caught(finished: tuple[Engine, list[str]]) -> None:
    engine, _ = finished
    _rehash_from(engine, 5, actor="mallory@evil")
    # Passing the whole trail off as written before the key existed:
    _tamper(engine, "UPDATE events SET mac = NULL")
    _tamper(engine, "UPDATE meta SET value = '999999' WHERE key = 'anchored_from'")
    result = engine.verify_audit()
    assert not result.ok and result.first_broken_seq == 1 and "has no MAC" in result.problem


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        ("UPDATE runs SET state = 'step1' WHERE id = 'one'", "is in state 'step1' but its last event"),
        ("UPDATE runs SET status = 'active' WHERE id = 'one'", "has status 'active' but its last event"),
        ("UPDATE runs SET status = 'paused' WHERE id = 'two'", "has status 'paused'"),
        ("DELETE FROM runs WHERE id = 'two'", "run two has events but no row"),
    ],
)
def test_run_rows_that_disagree_with_their_events_are_caught(
    finished: tuple[Engine, list[str]], sql: str, words: str
) -> None:
    engine, _ = finished
    _tamper(engine, sql)
    result = engine.verify_audit()
    assert not result.ok and words in result.problem, str(result)


def test_an_edited_checkpoint_log_is_caught(finished: tuple[Engine, list[str]]) -> None:
    engine, _ = finished
    engine.store.anchor.flush()  # type: ignore[union-attr]
    log = engine.state_dir / "audit-checkpoints.log"
    lines = log.read_text().splitlines()
    record = json.loads(lines[0])
    record["seq"] = 2
    log.write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
    result = engine.verify_audit()
    assert not result.ok and "does not verify with the audit key: the log was edited" in result.problem


def test_verify_without_the_key_says_what_it_cannot_check(
    finished: tuple[Engine, list[str]], tmp_path: Path
) -> None:
    from engine.anchor import AnchorPaths

    engine, _ = finished
    elsewhere = AnchorPaths(tmp_path / "nokey", engine.state_dir / "audit-checkpoints.log")
    result = _reader(engine, anchor=elsewhere).verify_audit()
    assert not result.ok and "is not available" in result.problem and "--audit-key" in result.problem


def test_the_key_can_live_outside_the_state_folder_and_another_key_is_refused(
    make_engine: Callable[..., Engine], journal: Path, tmp_path: Path
) -> None:
    from engine.anchor import AnchorError, AnchorPaths

    keys = tmp_path / "keys"
    paths = AnchorPaths(keys / "audit.key", keys / "checkpoints.log")
    engine = make_engine(anchor=paths)
    engine.start_run("flow", "c1", {"journal": str(journal)}, run_id="one")
    engine.run_until_quiet()
    engine.close()
    assert not (engine.state_dir / "audit.key").exists()
    assert oct(paths.key.stat().st_mode & 0o777) == "0o600"
    assert _reader(engine, anchor=paths).verify_audit().ok
    # Without the key, or with another (say a new one in the state folder), a writer would fork
    # the anchor: refused.
    with pytest.raises(AnchorError, match="there is no key file"):
        make_engine()
    other = AnchorPaths(tmp_path / "other.key", paths.log)
    other.key.write_text("ab" * 32)
    other.key.chmod(0o600)
    with pytest.raises(AnchorError, match="is not the one this state folder"):
        make_engine(anchor=other)
    paths.key.chmod(0o640)
    with pytest.raises(AnchorError, match="open to other users"):
        make_engine(anchor=paths)


def test_a_trail_written_before_the_key_verifies_as_unanchored_up_to_its_end(
    make_engine: Callable[..., Engine], journal: Path
) -> None:
    engine = make_engine()
    engine.start_run("flow", "c1", {"journal": str(journal)}, run_id="one")
    engine.run_until_quiet()
    before = len(engine.events())
    engine.close()
    # As the previous version left it: no MAC column values, no key, no checkpoint log.
    conn = sqlite3.connect(engine.store.path)
    conn.execute("UPDATE events SET mac = NULL")
    conn.execute("DELETE FROM meta WHERE key IN ('key_id', 'anchored_from')")
    conn.commit()
    conn.close()
    (engine.state_dir / "audit.key").unlink()
    (engine.state_dir / "audit-checkpoints.log").unlink()
    old = _reader(engine).verify_audit()
    assert old.ok and old.unanchored_upto == before
    assert f"unanchored up to seq {before}" in str(old)
    # The next writer anchors what follows.
    engine = make_engine()
    engine.start_run("flow", "c2", {"journal": str(journal)}, run_id="two")
    engine.run_until_quiet()
    result = engine.verify_audit()
    assert result.ok and result.unanchored_upto == before and result.checkpoints >= 1, str(result)
    assert [row["mac"] is not None for row in _rows(engine)] == [
        seq > before for seq in range(1, len(engine.events()) + 1)
    ]
