"""The store: schema version, fatal errors, effect journal keys."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.facade import Engine
from engine.store import RunRow, Store, StoreFatal, event_hash


def test_schema_version_and_pragmas(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    store.close()
    Store(tmp_path / "s").close()  # reopening migrates nothing and keeps the data


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    Store(tmp_path / "s").close()
    conn = sqlite3.connect(tmp_path / "s" / "engine.db")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreFatal, match="schema version 99, newer than this program"):
        Store(tmp_path / "s")


def test_a_damaged_database_is_fatal_and_the_cli_exits_1(tmp_path: Path) -> None:
    state = tmp_path / "s"
    state.mkdir()
    (state / "engine.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreFatal, match=r"state database .* failed"):
        Store(state)
    from tests.engine.test_cli import cli

    code, _out, err = cli(state, "status")
    assert code == 1 and "state database" in err


def test_engine_error_during_a_tick_stops_the_loop(make_engine: Callable[..., Engine], journal: Path) -> None:
    engine = make_engine()
    engine.start_run("flow", "c1", {"journal": str(journal)})
    engine.store._conn.execute("DROP TABLE events")  # what a failing disk looks like to SQLite
    with pytest.raises(StoreFatal):
        engine.run_until_quiet()


def test_start_unless_running(make_engine: Callable[..., Engine], journal: Path) -> None:
    engine = make_engine()
    first, started = engine.start_unless_running("flow", "c1", {"journal": str(journal)})
    again, started_again = engine.start_unless_running("flow", "c1", {"journal": str(journal)})
    assert started and not started_again and again == first
    engine.run_until_quiet()
    third, started_third = engine.start_unless_running("flow", "c1", {"journal": str(journal)})
    assert started_third and third != first


@pytest.mark.parametrize(
    ("reason", "evidence", "node", "source"),
    [
        ("", None, None, None),
        (
            'quote " back\\slash \u00e9\u4e2d \U0001f512 tab\t nl\n ctl\x01',
            {"z": [1, "\u00e9"], "a": None},
            "n1",
            "s0",
        ),
        ("plain", {"nested": {"b": 2, "a": 1.5}}, None, "s0"),
    ],
)
def test_appended_event_hash_is_the_canonical_hash(
    tmp_path: Path, reason: str, evidence: dict[str, object] | None, node: str | None, source: str | None
) -> None:
    """The append path spells the canonical JSON out by hand: it must hash exactly what the audit
    verifier recomputes from the stored fields."""
    store = Store(tmp_path / "s")
    run = RunRow("r\u00e9-1", 'd"ef', "sc:ope", "s0", "active", {}, {}, 0.0, 0.0)
    with store.tx() as tx:
        tx.append_event(
            ts="2026-01-01T00:00:00.000000Z",
            run=run,
            from_state=source,
            to_state="s1",
            trigger="next",
            actor="op@h",
            reason=reason,
            evidence=evidence,
            node=node,
        )
        tx.append_event(
            ts="2026-01-01T00:00:01.000000Z",
            run=run,
            from_state="s1",
            to_state=None,
            trigger="t",
            actor="op@h",
        )
    rows = store.events()
    assert len(rows) == 2
    for row in rows:
        fields = row.as_dict()
        assert event_hash(fields) == row.hash
    assert rows[1].prev_hash == rows[0].hash
    store.close()
