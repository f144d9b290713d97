"""The durable store: one SQLite database in the state folder.

WAL journal, ``synchronous=FULL`` and ``BEGIN IMMEDIATE`` transactions: a transition, its audit
event and the step output behind it commit together or not at all. Events form a SHA-256 hash
chain, each event with a MAC under a key kept outside the database and the head checkpointed to
a log outside it (:mod:`engine.anchor`), so that an edit, a recomputed chain or a cut tail is
detectable. Any SQLite error (including a failed fsync,
which SQLite reports as a disk I/O error) raises :class:`StoreFatal`: the process must stop and the
next start recovers from what is on disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from engine.anchor import KEY_ENV, Anchor, AnchorError, AnchorPaths, key_id, load_key
from engine.api import JSON
from engine.logging import get_logger

DB_NAME = "engine.db"
GENESIS = "0" * 64

_MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        definition TEXT NOT NULL,
        scope TEXT NOT NULL,
        state TEXT NOT NULL,
        held_from TEXT,
        status TEXT NOT NULL,
        waiting_reason TEXT NOT NULL DEFAULT '',
        waiting_kind TEXT NOT NULL DEFAULT '',
        next_wake_at REAL,
        wait_started_at REAL,
        attempt INTEGER NOT NULL DEFAULT 1,
        last_error TEXT NOT NULL DEFAULT '',
        on_approve TEXT,
        context TEXT NOT NULL,
        visits TEXT NOT NULL,
        submitted TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        rev INTEGER NOT NULL
    );
    CREATE INDEX runs_status ON runs (status);
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        run TEXT NOT NULL,
        scope TEXT NOT NULL,
        definition TEXT NOT NULL,
        node TEXT,
        from_state TEXT,
        to_state TEXT,
        trigger TEXT NOT NULL,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL,
        evidence TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TABLE effects (
        run TEXT NOT NULL,
        state TEXT NOT NULL,
        visit INTEGER NOT NULL,
        node TEXT NOT NULL,
        name TEXT NOT NULL,
        intent TEXT NOT NULL,
        output TEXT,
        recorded_at REAL NOT NULL,
        completed_at REAL,
        PRIMARY KEY (run, state, visit, node, name)
    );
    CREATE TABLE leases (
        grp TEXT NOT NULL,
        scope TEXT NOT NULL,
        run TEXT NOT NULL,
        acquired_at REAL NOT NULL,
        PRIMARY KEY (grp, scope)
    );
    CREATE TABLE commands (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        run TEXT NOT NULL,
        kind TEXT NOT NULL,
        args TEXT NOT NULL,
        actor TEXT NOT NULL,
        status TEXT NOT NULL,
        result TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE progress (
        run TEXT NOT NULL,
        node TEXT NOT NULL,
        text TEXT NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (run, node)
    );
    """,
    # The anchor (engine/anchor.py): each event's MAC. Events written before stay without one and
    # verify as unanchored.
    """
    ALTER TABLE events ADD COLUMN mac TEXT;
    """,
    # Holds an operator puts on a scope (engine/commands.py): one per scope, until released.
    """
    CREATE TABLE holds (
        scope TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        actor TEXT NOT NULL,
        since REAL NOT NULL
    ) WITHOUT ROWID;
    """,
]


class StoreFatal(Exception):
    """The database or the disk under it failed. Stop the process; restart recovers from disk."""


@dataclass
class RunRow:
    id: str
    definition: str
    scope: str
    state: str
    status: str
    """``active`` (being driven or waiting on a timer), ``paused``, ``failed`` or ``final``."""
    context: dict[str, JSON]
    visits: dict[str, int]
    created_at: float
    updated_at: float
    held_from: str | None = None
    waiting_reason: str = ""
    waiting_kind: str = ""
    next_wake_at: float | None = None
    wait_started_at: float | None = None
    attempt: int = 1
    last_error: str = ""
    on_approve: str | None = None
    submitted: dict[str, JSON] = field(default_factory=dict)
    rev: int = 0


@dataclass(frozen=True)
class EventRow:
    seq: int
    ts: str
    run: str
    scope: str
    definition: str
    node: str | None
    from_state: str | None
    to_state: str | None
    trigger: str
    actor: str
    reason: str
    evidence: Mapping[str, JSON]
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, JSON]:
        return {
            "seq": self.seq,
            "ts": self.ts,
            "run": self.run,
            "scope": self.scope,
            "definition": self.definition,
            "node": self.node,
            "from": self.from_state,
            "to": self.to_state,
            "trigger": self.trigger,
            "actor": self.actor,
            "reason": self.reason,
            "evidence": dict(self.evidence),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class HoldRow:
    """An operator's hold on a scope: what the application's guards stop while it stands."""

    scope: str
    reason: str
    actor: str
    since: float


@dataclass(frozen=True)
class EffectRow:
    node: str
    name: str
    intent: Mapping[str, JSON]
    output: JSON
    recorded_at: float
    completed_at: float | None


_RUN_COLS = (
    "id, definition, scope, state, held_from, status, waiting_reason, waiting_kind, next_wake_at, "
    "wait_started_at, attempt, last_error, on_approve, context, visits, submitted, created_at, updated_at, "
    "rev"
)
_EVENT_COLS = (
    "seq, ts, run, scope, definition, node, from_state, to_state, trigger, actor, reason, evidence, "
    "prev_hash, hash"
)


def _dumps(value: JSON) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_FAST = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _fast_dumps(value: JSON) -> str:
    """Compact JSON for stored state, where key order does not matter (the audit hash uses
    :func:`_dumps`)."""
    return _FAST.encode(value)


def event_hash(fields: Mapping[str, JSON]) -> str:
    """SHA-256 over the canonical JSON of an event's fields (everything but ``hash``)."""
    body = {k: v for k, v in fields.items() if k != "hash"}
    return hashlib.sha256(_dumps(body).encode("utf-8")).hexdigest()


_str = json.encoder.encode_basestring


def _opt(value: str | None) -> str:
    return "null" if value is None else _str(value)


def _event_digest(
    seq: int,
    ts: str,
    run: RunRow,
    node: str | None,
    from_state: str | None,
    to_state: str | None,
    trigger: str,
    actor: str,
    reason: str,
    evidence_text: str,
    prev: str,
) -> str:
    """:func:`event_hash` of an event being appended, without building and sorting a dict: the
    same canonical text (keys in sorted order, compact, UTF-8), spelled out."""
    text = (
        f'{{"actor":{_str(actor)},"definition":{_str(run.definition)},"evidence":{evidence_text},'
        f'"from":{_opt(from_state)},"node":{_opt(node)},"prev_hash":{_str(prev)},'
        f'"reason":{_str(reason)},"run":{_str(run.id)},"scope":{_str(run.scope)},"seq":{seq:d},'
        f'"to":{_opt(to_state)},"trigger":{_str(trigger)},"ts":{_str(ts)}}}'
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _run_from(row: tuple[Any, ...]) -> RunRow:
    return RunRow(
        id=row[0],
        definition=row[1],
        scope=row[2],
        state=row[3],
        held_from=row[4],
        status=row[5],
        waiting_reason=row[6],
        waiting_kind=row[7],
        next_wake_at=row[8],
        wait_started_at=row[9],
        attempt=row[10],
        last_error=row[11],
        on_approve=row[12],
        context=json.loads(row[13]),
        visits=json.loads(row[14]),
        submitted=json.loads(row[15]),
        created_at=row[16],
        updated_at=row[17],
        rev=row[18],
    )


def _event_from(row: tuple[Any, ...]) -> EventRow:
    return EventRow(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        row[8],
        row[9],
        row[10],
        json.loads(row[11]),
        row[12],
        row[13],
    )


class Tx:
    """One open ``BEGIN IMMEDIATE`` transaction."""

    def __init__(self, conn: sqlite3.Connection, anchor: Anchor | None = None) -> None:
        self._conn = conn
        self._anchor = anchor
        self._meta: dict[str, str] | None = None
        self._dirty: dict[str, str] = {}
        self._rev: int | None = None
        self.events: list[EventRow] = []
        self.woken: list[str] = []
        """Runs this transaction made due at once (lease waiters whose lease was released)."""

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, args)

    def _get_meta(self, key: str) -> str | None:
        if self._meta is None:
            rows = self.execute("SELECT key, value FROM meta WHERE key IN ('rev', 'head')").fetchall()
            self._meta = {str(k): str(v) for k, v in rows}
        return self._dirty.get(key, self._meta.get(key))

    def flush(self) -> None:
        """Write the chain head and revision counter (once per transaction, before COMMIT)."""
        if self._dirty:
            rows = list(self._dirty.items())
            # One statement for both keys: executemany steps a statement per row.
            self._conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES " + ", ".join(["(?, ?)"] * len(rows)),  # noqa: S608
                tuple(value for row in rows for value in row),
            )
            self._dirty.clear()

    def next_rev(self) -> int:
        """The revision number this transaction stamps on the runs it writes."""
        if self._rev is None:
            self._rev = int(self._get_meta("rev") or 0) + 1
            self._dirty["rev"] = str(self._rev)
        return self._rev

    def get_run(self, run_id: str) -> RunRow | None:
        row = self.execute(f"SELECT {_RUN_COLS} FROM runs WHERE id = ?", (run_id,)).fetchone()  # noqa: S608
        return _run_from(row) if row else None

    def run_rev(self, run_id: str) -> int | None:
        if self._meta is None:
            # The chain head and revision counter come with the first revision check: the write
            # that follows needs them, and one statement costs less than two.
            row = self.execute(
                "SELECT (SELECT rev FROM runs WHERE id = ?), (SELECT value FROM meta WHERE key = 'rev'), "
                "(SELECT value FROM meta WHERE key = 'head')",
                (run_id,),
            ).fetchone()
            self._meta = {
                key: str(value) for key, value in (("rev", row[1]), ("head", row[2])) if value is not None
            }
            return int(row[0]) if row[0] is not None else None
        row = self.execute("SELECT rev FROM runs WHERE id = ?", (run_id,)).fetchone()
        return int(row[0]) if row else None

    def insert_run(self, run: RunRow) -> None:
        run.rev = self.next_rev()
        self.execute(f"INSERT INTO runs ({_RUN_COLS}) VALUES ({', '.join('?' * 19)})", self._run_args(run))  # noqa: S608

    def update_run(self, run: RunRow, *, stored_status: str | None = None) -> None:
        """Write ``run`` back. ``stored_status`` is the status the row holds now, when the caller
        knows it (it read the row in this transaction's revision): an unchanged status is then not
        written at all."""
        run.rev = self.next_rev()
        args = self._run_args(run)
        # ``status`` is indexed and SQLite rewrites an index entry whenever its column is assigned,
        # changed or not: set it in a statement of its own that matches only when it did change,
        # which saves a page (a quarter of what a transition writes) on most commits.
        self.execute(
            "UPDATE runs SET definition=?, scope=?, state=?, held_from=?, waiting_reason=?, "
            "waiting_kind=?, next_wake_at=?, wait_started_at=?, attempt=?, last_error=?, on_approve=?, "
            "context=?, visits=?, submitted=?, created_at=?, updated_at=?, rev=? WHERE id=?",
            (*args[1:5], *args[6:], args[0]),
        )
        if stored_status != run.status:
            self.execute(
                "UPDATE runs SET status=? WHERE id=? AND status!=?", (run.status, run.id, run.status)
            )

    @staticmethod
    def _run_args(r: RunRow) -> tuple[Any, ...]:
        return (
            r.id,
            r.definition,
            r.scope,
            r.state,
            r.held_from,
            r.status,
            r.waiting_reason,
            r.waiting_kind,
            r.next_wake_at,
            r.wait_started_at,
            r.attempt,
            r.last_error,
            r.on_approve,
            _fast_dumps(r.context),
            _fast_dumps(r.visits),
            _fast_dumps(r.submitted) if r.submitted else "{}",
            r.created_at,
            r.updated_at,
            r.rev,
        )

    def append_event(
        self,
        *,
        ts: str,
        run: RunRow,
        from_state: str | None,
        to_state: str | None,
        trigger: str,
        actor: str,
        reason: str = "",
        evidence: Mapping[str, JSON] | None = None,
        node: str | None = None,
    ) -> EventRow:
        evidence_text = _dumps(dict(evidence)) if evidence else "{}"
        head = self._get_meta("head")
        seq, prev = 1, GENESIS
        if head:
            last, _, prev = head.partition(":")
            seq = int(last) + 1
        digest = _event_digest(
            seq, ts, run, node, from_state, to_state, trigger, actor, reason, evidence_text, prev
        )
        self.execute(
            f"INSERT INTO events ({_EVENT_COLS}, mac) VALUES ({', '.join('?' * 15)})",  # noqa: S608
            (
                seq,
                ts,
                run.id,
                run.scope,
                run.definition,
                node,
                from_state,
                to_state,
                trigger,
                actor,
                reason,
                evidence_text,
                prev,
                digest,
                self._anchor.mac(seq, digest) if self._anchor is not None else None,
            ),
        )
        self._dirty["head"] = f"{seq}:{digest}"
        event = EventRow(
            seq,
            ts,
            run.id,
            run.scope,
            run.definition,
            node,
            from_state,
            to_state,
            trigger,
            actor,
            reason,
            json.loads(evidence_text) if evidence else {},
            prev,
            digest,
        )
        self.events.append(event)
        return event

    def lease_holder(self, group: str, scope: str) -> str | None:
        row = self.execute("SELECT run FROM leases WHERE grp = ? AND scope = ?", (group, scope)).fetchone()
        return str(row[0]) if row else None

    def take_lease(self, group: str, scope: str, run_id: str, now: float) -> None:
        self.execute(
            "INSERT INTO leases (grp, scope, run, acquired_at) VALUES (?, ?, ?, ?)",
            (group, scope, run_id, now),
        )

    def release_lease(self, group: str, scope: str, run_id: str) -> bool:
        """Release the lease if ``run_id`` holds it; return whether it did."""
        cur = self.execute(
            "DELETE FROM leases WHERE grp = ? AND scope = ? AND run = ?", (group, scope, run_id)
        )
        return cur.rowcount > 0

    def lease_waiters(self, scope: str, exclude: str) -> list[tuple[str, str]]:
        """``(id, definition)`` of the active runs in ``scope`` waiting on a lease."""
        rows = self.execute(
            "SELECT id, definition FROM runs WHERE status = 'active' AND scope = ? "
            "AND waiting_kind = 'lease' AND id != ?",
            (scope, exclude),
        ).fetchall()
        return [(str(r[0]), str(r[1])) for r in rows]

    def wake(self, run_ids: list[str], now: float) -> None:
        """Make ``run_ids`` due at ``now`` (not later than they were), as a change of their row:
        a new revision, so another process's scheduler sees it too and a tick of one of them that
        read the row before is not committed over it."""
        if not run_ids:
            return
        rev = self.next_rev()
        for run_id in run_ids:
            cur = self.execute(
                "UPDATE runs SET next_wake_at = ?, rev = ? WHERE id = ? AND status = 'active' "
                "AND (next_wake_at IS NULL OR next_wake_at > ?)",
                (now, rev, run_id, now),
            )
            if cur.rowcount:
                self.woken.append(run_id)

    def peers(self, scope: str, exclude: str) -> list[tuple[str, str, str]]:
        rows = self.execute(
            "SELECT id, definition, CASE WHEN held_from IS NOT NULL THEN held_from ELSE state END "
            "FROM runs WHERE scope = ? AND status != 'final' AND id != ? ORDER BY created_at, id",
            (scope, exclude),
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def get_hold(self, scope: str) -> HoldRow | None:
        sql = "SELECT scope, reason, actor, since FROM holds WHERE scope = ?"
        row = self.execute(sql, (scope,)).fetchone()
        return HoldRow(row[0], row[1], row[2], row[3]) if row else None

    def put_hold(self, hold: HoldRow) -> None:
        self.execute(
            "INSERT INTO holds (scope, reason, actor, since) VALUES (?, ?, ?, ?)",
            (hold.scope, hold.reason, hold.actor, hold.since),
        )

    def delete_hold(self, scope: str) -> None:
        self.execute("DELETE FROM holds WHERE scope = ?", (scope,))

    def active_in_scope(self, scope: str) -> list[RunRow]:
        rows = self.execute(
            f"SELECT {_RUN_COLS} FROM runs WHERE scope = ? AND status = 'active'",  # noqa: S608
            (scope,),
        ).fetchall()
        return [_run_from(r) for r in rows]

    def append_scope_event(
        self, *, ts: str, scope: str, trigger: str, actor: str, reason: str, evidence: Mapping[str, JSON]
    ) -> EventRow:
        """An event about a scope rather than a run (a hold, its release): in the same chain, with
        an empty run and definition."""
        placeholder = RunRow("", "", scope, "", "", {}, {}, 0.0, 0.0)
        return self.append_event(
            ts=ts,
            run=placeholder,
            from_state=None,
            to_state=None,
            trigger=trigger,
            actor=actor,
            reason=reason,
            evidence=evidence,
        )

    def record_command(self, ts: float, run: str, kind: str, args: Mapping[str, JSON], actor: str) -> None:
        self.execute(
            "INSERT INTO commands (ts, run, kind, args, actor, status) VALUES (?, ?, ?, ?, ?, 'applied')",
            (ts, run, kind, _dumps(dict(args)), actor),
        )


class Store:
    """Thread-safe access to the state folder's database (one connection, serialised)."""

    def __init__(
        self,
        state_dir: Path,
        *,
        busy_timeout: float = 30.0,
        anchor: AnchorPaths | None = None,
        read_only: bool = False,
    ) -> None:
        """Open (and create, unless ``read_only``) the state folder's database. ``anchor`` says
        where the audit key and checkpoint log are; without it events carry no MAC. Read-only, a
        folder that holds no database is refused, nothing is created or migrated, and the key is
        only read if it is there."""
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / DB_NAME
        self.read_only = read_only
        self.anchor_paths = anchor
        self.anchor: Anchor | None = None
        self.key: bytes | None = None
        self._lock = threading.RLock()
        self._on_woken: list[Callable[[list[str]], None]] = []
        if read_only:
            self._conn = self._open_read_only(busy_timeout)
        else:
            self._conn = self._open_for_writing(busy_timeout)
        try:
            self._has_mac = any(row[1] == "mac" for row in self._conn.execute("PRAGMA table_info(events)"))
        except sqlite3.Error as exc:
            raise StoreFatal(f"state database {self.path} failed: {exc}") from exc
        if anchor is not None:
            self._open_anchor(anchor)

    def _open_for_writing(self, busy_timeout: float) -> sqlite3.Connection:
        try:
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.state_dir, 0o700)
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
            os.chmod(self.path, 0o600)
        except OSError as exc:
            raise StoreFatal(
                f"cannot create the state database {self.path}: {exc.strerror}; check the folder"
            ) from exc
        try:
            conn = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=busy_timeout
            )
            self._conn = conn
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.Error as exc:
            raise StoreFatal(f"state database {self.path} failed: {exc}") from exc
        return conn

    def _open_read_only(self, busy_timeout: float) -> sqlite3.Connection:
        if not self.state_dir.is_dir():
            raise StoreFatal(
                f"{self.state_dir} is not a state folder (it does not exist): check --state-dir or "
                "$CUCM_RENEW_STATE; `run` or `daemon` creates one"
            )
        if not self.path.is_file():
            raise StoreFatal(
                f"{self.state_dir} holds no state database ({DB_NAME}): check --state-dir or "
                "$CUCM_RENEW_STATE; `run` or `daemon` creates one"
            )
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        wal = self.path.with_name(DB_NAME + "-wal")
        try:
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=busy_timeout)
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            if wal.exists() or os.access(self.state_dir, os.W_OK):
                raise StoreFatal(f"cannot read the state database {self.path}: {exc}") from exc
            # A folder on a read-only file system (a snapshot, a backup mount) holding a cleanly
            # closed WAL database: SQLite cannot create the shared-memory file it wants, and no
            # writer can be at work there, so the file is read as it is.
            try:
                conn = sqlite3.connect(uri + "&immutable=1", uri=True, check_same_thread=False)
                conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            except sqlite3.Error as exc2:
                raise StoreFatal(f"cannot read the state database {self.path}: {exc2}") from exc2
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            raise StoreFatal(f"cannot read the state database {self.path}: {exc}") from exc
        if version > len(_MIGRATIONS):
            raise StoreFatal(
                f"{self.path} has schema version {version}, newer than this program "
                f"({len(_MIGRATIONS)}): upgrade cucm-renew"
            )
        if version == 0:
            raise StoreFatal(
                f"{self.path} is an empty state database: check --state-dir or $CUCM_RENEW_STATE"
            )
        return conn

    def _open_anchor(self, paths: AnchorPaths) -> None:
        """Load (or, writing to a trail not anchored yet, create) the audit key and check that it
        is the one the trail was anchored with."""
        stored = self._meta_value("key_id")
        self.key = load_key(paths.key, create=not self.read_only and stored is None)
        if self.key is None:
            if self.read_only:
                return
            raise AnchorError(
                f"this state folder's audit trail is anchored with key id {stored}, but there is no key "
                f"file {paths.key}: pass --audit-key (or ${KEY_ENV}) naming the key file, or restore it"
            )
        if stored is not None and stored != key_id(self.key):
            raise AnchorError(
                f"the audit key {paths.key} (id {key_id(self.key)}) is not the one this state folder's "
                f"audit trail is anchored with (id {stored}): pass --audit-key (or ${KEY_ENV}) "
                "naming the right key file"
            )
        if self.read_only:
            return
        if stored is None:
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    head = self._conn.execute("SELECT value FROM meta WHERE key = 'head'").fetchone()
                    first = int(str(head[0]).partition(":")[0]) + 1 if head else 1
                    self._conn.execute(
                        "INSERT OR IGNORE INTO meta (key, value) VALUES ('key_id', ?), ('anchored_from', ?)",
                        (key_id(self.key), str(first)),
                    )
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._rollback()
                    raise
            if self._meta_value("key_id") != key_id(self.key):
                raise AnchorError(
                    f"another process anchored this state folder's audit trail with another key than "
                    f"{paths.key} meanwhile: pass --audit-key naming the key it used"
                )
        self.anchor = Anchor(self.key, paths)
        self.anchor.anchored_from = int(self._meta_value("anchored_from") or 1)

    def _meta_value(self, key: str) -> str | None:
        try:
            rows = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchall()
        except sqlite3.Error as exc:
            raise StoreFatal(f"state database {self.path} failed: {exc}") from exc
        return str(rows[0][0]) if rows else None

    def meta(self, key: str) -> str | None:
        with self._lock:
            return self._meta_value(key)

    def _migrate(self) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                version = self._conn.execute("PRAGMA user_version").fetchone()[0]
                if version > len(_MIGRATIONS):
                    raise StoreFatal(
                        f"{self.path} has schema version {version}, newer than this program "
                        f"({len(_MIGRATIONS)}): upgrade cucm-renew"
                    )
                for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
                    for statement in script.split(";"):
                        if statement.strip():
                            self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version = {number}")
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            if self.anchor is not None:
                with contextlib.suppress(OSError, AnchorError):
                    self.anchor.close()
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()

    def on_woken(self, callback: Callable[[list[str]], None]) -> None:
        """Call ``callback`` with the runs a committed transaction made due at once (see
        :meth:`Tx.wake`), after the commit and outside the store's lock."""
        self._on_woken.append(callback)

    @contextlib.contextmanager
    def tx(self) -> Iterator[Tx]:
        """A ``BEGIN IMMEDIATE`` transaction. Exceptions from the body roll back and propagate;
        SQLite errors become :class:`StoreFatal`."""
        woken: list[str] = []
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreFatal(f"state database {self.path}: cannot begin a transaction: {exc}") from exc
            if self.read_only:
                self._rollback()
                raise StoreFatal(
                    f"state database {self.path} was opened read-only: this command cannot write"
                )
            tx = Tx(self._conn, self.anchor)
            try:
                yield tx
            except sqlite3.Error as exc:
                self._rollback()
                raise StoreFatal(f"state database {self.path} failed: {exc}") from exc
            except BaseException:
                self._rollback()
                raise
            try:
                tx.flush()
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise StoreFatal(f"state database {self.path}: commit failed: {exc}") from exc
            if self.anchor is not None and tx.events:
                last = tx.events[-1]
                try:
                    self.anchor.committed(last.seq, last.hash)
                except OSError as exc:
                    # The commit stands; only its checkpoint is missing, which verify reports as a
                    # tail anchored by MACs alone. Stopping here would not make it less so.
                    get_logger().warning(
                        "audit checkpoint not written", log=str(self.anchor.paths.log), error=exc.strerror
                    )
            woken = tx.woken
        # Outside the lock: a listener (the scheduler) takes its own lock, which it also holds
        # while reading the store.
        if woken:
            for callback in self._on_woken:
                callback(woken)

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("ROLLBACK")

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._conn.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StoreFatal(f"state database {self.path} failed: {exc}") from exc

    # ------------------------------------------------------------------ reads

    def data_version(self) -> int:
        """Changes when another connection (another process) commits."""
        return int(self._query("PRAGMA data_version")[0][0])

    def get_run(self, run_id: str) -> RunRow | None:
        rows = self._query(f"SELECT {_RUN_COLS} FROM runs WHERE id = ?", (run_id,))  # noqa: S608
        return _run_from(rows[0]) if rows else None

    def runs(self, *, include_final: bool = True) -> list[RunRow]:
        where = "" if include_final else "WHERE status != 'final'"
        return [
            _run_from(r)
            for r in self._query(f"SELECT {_RUN_COLS} FROM runs {where} ORDER BY created_at, id")  # noqa: S608
        ]

    def wake_list(self, written_before: float | None = None) -> list[tuple[float, str]]:
        """``(next_wake_at, run_id)`` of every active run (a run due now has its creation time).
        A run last written after ``written_before`` is due at once (``0``): the clock has gone
        back since its wake time was set, so that time is no longer to be trusted."""
        if written_before is None:
            rows = self._query("SELECT COALESCE(next_wake_at, 0), id FROM runs WHERE status = 'active'")
        else:
            rows = self._query(
                "SELECT CASE WHEN updated_at > ? THEN 0 ELSE COALESCE(next_wake_at, 0) END, id "
                "FROM runs WHERE status = 'active'",
                (written_before,),
            )
        return [(float(r[0]), str(r[1])) for r in rows]

    def active_summary(self) -> list[tuple[str, str, str, str]]:
        """``(id, definition, scope, waiting_kind)`` of every active run."""
        rows = self._query("SELECT id, definition, scope, waiting_kind FROM runs WHERE status = 'active'")
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def changed_since(self, rev: int) -> list[tuple[str, int, str, float | None]]:
        """``(id, rev, status, next_wake_at)`` of runs written after ``rev``."""
        rows = self._query("SELECT id, rev, status, next_wake_at FROM runs WHERE rev > ?", (rev,))
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def max_rev(self) -> int:
        rows = self._query("SELECT value FROM meta WHERE key = 'rev'")
        return int(rows[0][0]) if rows else 0

    def events(
        self,
        *,
        run: str | None = None,
        scope: str | None = None,
        since: str | None = None,
        after_seq: int = 0,
    ) -> list[EventRow]:
        sql = f"SELECT {_EVENT_COLS} FROM events WHERE seq > ?"  # noqa: S608
        args: list[Any] = [after_seq]
        if run:
            sql += " AND run = ?"
            args.append(run)
        if scope:
            sql += " AND scope = ?"
            args.append(scope)
        if since:
            sql += " AND ts >= ?"
            args.append(since)
        return [_event_from(r) for r in self._query(sql + " ORDER BY seq", tuple(args))]

    def raw_events(self) -> list[dict[str, Any]]:
        """Every event row as stored, with its ``mac`` (``None`` where there is none or the
        database predates MACs), for verification (no parsing that could hide tampering)."""
        mac = "mac" if self._has_mac else "NULL"
        rows = self._query(f"SELECT {_EVENT_COLS}, {mac} FROM events ORDER BY seq")  # noqa: S608
        keys = [*_EVENT_COLS.split(", "), "mac"]
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def chain_head(self) -> tuple[int, str] | None:
        rows = self._query("SELECT value FROM meta WHERE key = 'head'")
        if not rows:
            return None
        seq, _, digest = str(rows[0][0]).partition(":")
        return int(seq), digest

    def get_effect(self, run: str, state: str, visit: int, node: str, name: str) -> EffectRow | None:
        rows = self._query(
            "SELECT node, name, intent, output, recorded_at, completed_at FROM effects "
            "WHERE run = ? AND state = ? AND visit = ? AND node = ? AND name = ?",
            (run, state, visit, node, name),
        )
        if not rows:
            return None
        r = rows[0]
        return EffectRow(
            r[0], r[1], json.loads(r[2]), json.loads(r[3]) if r[3] is not None else None, r[4], r[5]
        )

    def effects(self, run: str) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT state, visit, node, name, intent, output, recorded_at, completed_at FROM effects "
            "WHERE run = ? ORDER BY recorded_at",
            (run,),
        )
        keys = ("state", "visit", "node", "name", "intent", "output", "recorded_at", "completed_at")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def progress(self, run: str) -> dict[str, str]:
        return {
            r[0]: r[1]
            for r in self._query("SELECT node, text FROM progress WHERE run = ? ORDER BY node", (run,))
        }

    def holds(self) -> list[HoldRow]:
        """Every scope on hold (none in a read-only database older than holds)."""
        if not self._query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'holds'"):
            return []
        rows = self._query("SELECT scope, reason, actor, since FROM holds ORDER BY scope")
        return [HoldRow(r[0], r[1], r[2], r[3]) for r in rows]

    def lease_holders(self) -> dict[tuple[str, str], str]:
        return {(r[0], r[1]): r[2] for r in self._query("SELECT grp, scope, run FROM leases")}

    # ------------------------------------------------------------------ small writes

    def record_intent(
        self, run: str, state: str, visit: int, node: str, name: str, intent: Mapping[str, JSON], now: float
    ) -> None:
        with self.tx() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO effects (run, state, visit, node, name, intent, output, recorded_at, "
                "completed_at) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, NULL)",
                (run, state, visit, node, name, _dumps(dict(intent)), now),
            )

    def record_output(
        self, run: str, state: str, visit: int, node: str, name: str, output: JSON, now: float
    ) -> None:
        with self.tx() as tx:
            tx.execute(
                "UPDATE effects SET output = ?, completed_at = ? "
                "WHERE run = ? AND state = ? AND visit = ? AND node = ? AND name = ?",
                (_dumps(output), now, run, state, visit, node, name),
            )

    def set_progress(self, run: str, node: str, text: str, now: float) -> None:
        with self.tx() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO progress (run, node, text, updated_at) VALUES (?, ?, ?, ?)",
                (run, node, text, now),
            )
