"""submit_many: several submissions across runs in one transaction, all or none (or, partial, the
ones that pass), each checked and audited as ``submit`` checks and audits one."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.commands import Submission, SubmissionsRefused
from engine.errors import CommandError
from engine.facade import Engine
from tests.engine.test_runner import Serving, wait_for

WAITING = "waiting for a ticket (submit --key ticket)"


def _tables(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(f"file:{engine.store.path}?mode=ro", uri=True)
    try:
        return {
            t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()  # noqa: S608
            for t in ("runs", "events", "effects", "commands")
        }
    finally:
        conn.close()


def _two_waiting(make_engine: Callable[..., Engine], journal: Path) -> tuple[Engine, str, str]:
    engine = make_engine()
    first = engine.start_run("flow", "c1", {"journal": str(journal), "need_ticket": True}, run_id="r1")
    second = engine.start_run("flow", "c2", {"journal": str(journal), "need_ticket": True}, run_id="r2")
    serving = Serving(engine)
    try:
        wait_for(lambda: all(v.waiting_reason == WAITING for v in engine.status()))
    finally:
        serving.close()
    return engine, first, second


def test_one_bad_submission_records_none(make_engine: Callable[..., Engine], journal: Path) -> None:
    engine, r1, r2 = _two_waiting(make_engine, journal)
    before = _tables(engine)
    batches = {
        "a bad ticket": [
            Submission(r1, "ticket", {"id": "A"}, "a.json"),
            Submission(r2, "ticket", {"number": 5}, "b.json"),
        ],
        "an unknown run": [
            Submission(r1, "ticket", {"id": "A"}, "a.json"),
            Submission("r9", "ticket", {"id": "B"}, "b.json"),
        ],
        "the same run and key twice": [
            Submission(r1, "ticket", {"id": "A"}, "a.json"),
            Submission(r1, "ticket", {"id": "B"}, "b.json"),
        ],
        "a key the state does not take": [
            Submission(r1, "ticket", {"id": "A"}, "a.json"),
            Submission(r2, "cert", {"id": "B"}, "b.json"),
        ],
    }
    messages = {
        "a bad ticket": ["b.json: submission refused: a ticket needs an 'id' string"],
        "an unknown run": ["b.json: unknown run 'r9'"],
        "the same run and key twice": ["a.json, b.json are all for 'ticket' of run r1", "give one"],
        "a key the state does not take": ["b.json: submission refused: unknown key 'cert'"],
    }
    for case, batch in batches.items():
        with pytest.raises(SubmissionsRefused) as caught:
            engine.submit_many(batch)
        assert "nothing recorded" in str(caught.value), case
        for words in messages[case]:
            assert words in str(caught.value), (case, str(caught.value))
        assert _tables(engine) == before, case
    with pytest.raises(CommandError, match="nothing to submit"):
        engine.submit_many([])


def test_all_pass_in_one_transaction_across_runs(make_engine: Callable[..., Engine], journal: Path) -> None:
    engine, r1, r2 = _two_waiting(make_engine, journal)
    views, refused = engine.submit_many(
        [Submission(r1, "ticket", {"id": " A "}, "a.json"), Submission(r2, "ticket", {"id": "B"}, "b.json")],
        actor="operator@desk",
    )
    assert refused == [] and sorted(v.id for v in views) == [r1, r2]
    for run in (r1, r2):
        submits = [e for e in engine.events(run=run) if e.trigger == "submit"]
        assert len(submits) == 1 and submits[0].actor == "operator@desk"
        assert submits[0].evidence["key"] == "ticket"
    commands = [row for row in _tables(engine)["commands"] if row[3] == "submit"]
    assert len(commands) == 2
    # A run takes one answer per key: a second batch for it is refused, by name.
    with pytest.raises(SubmissionsRefused, match=r"c\.json: run r1 already holds a submission for 'ticket'"):
        engine.submit_many([Submission(r1, "ticket", {"id": "C"}, "c.json")])
    serving = Serving(engine)
    try:
        wait_for(lambda: all(v.state == "done" for v in engine.status()))
    finally:
        serving.close()
    assert [engine.status(r)[0].context["ticket"] for r in (r1, r2)] == [{"id": "A"}, {"id": "B"}]


def test_partial_records_the_good_and_lists_the_bad(
    make_engine: Callable[..., Engine], journal: Path
) -> None:
    engine, r1, r2 = _two_waiting(make_engine, journal)
    views, refused = engine.submit_many(
        [Submission(r1, "ticket", {"id": "A"}, "a.json"), Submission(r2, "ticket", {"no": 1}, "b.json")],
        partial=True,
    )
    assert [v.id for v in views] == [r1]
    assert [(r.submission.source, "needs an 'id' string" in r.reason) for r in refused] == [("b.json", True)]
    assert [e.run for e in engine.events() if e.trigger == "submit"] == [r1]
    # Nothing passes: still an error, with nothing recorded.
    before = _tables(engine)
    # A dry run checks each and records none, not even the good one.
    checked = engine.submit_many(
        [Submission(r2, "ticket", {"id": "B"}, "c.json"), Submission("r9", "ticket", {"id": "D"}, "d.json")],
        dry_run=True,
    )
    assert checked[0] == [] and [r.submission.source for r in checked[1]] == ["d.json"]
    assert _tables(engine) == before
    with pytest.raises(SubmissionsRefused, match=r"b\.json"):
        engine.submit_many([Submission(r2, "ticket", {"no": 1}, "b.json")], partial=True)
    assert _tables(engine) == before
