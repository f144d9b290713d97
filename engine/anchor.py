"""The audit trail's anchor outside its database: a MAC key and a checkpoint log.

The hash chain in ``events`` catches an edit only from someone who does not recompute it, and a
deleted tail only if the chain head beside it was not moved too: both live in the database. The
anchor adds what a database writer cannot forge without more:

* an HMAC-SHA256 key in its own ``0600`` file (by default ``STATE_DIR/audit.key``; point
  ``--audit-key`` or ``$CUCM_RENEW_AUDIT_KEY`` elsewhere to keep it out of the state folder). Each
  event's MAC over its sequence number and hash is stored with it, so a recomputed chain no longer
  verifies without the key;
* a checkpoint log (by default ``STATE_DIR/audit-checkpoints.log``; ``--audit-log`` or
  ``$CUCM_RENEW_AUDIT_LOG``), to which each commit that wrote events appends the head it reached
  ``(seq, hash, MAC)``, and optionally syslog. A table that ends before a checkpoint lost its tail.

The key's id (an HMAC of a fixed text, not the key) is kept in the database, so a process given
another key, or none where one was used, refuses to write rather than start a second anchor.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
import syslog
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import EngineError
from engine.files import FileRefused, read_small_file

KEY_NAME = "audit.key"
LOG_NAME = "audit-checkpoints.log"
KEY_ENV = "CUCM_RENEW_AUDIT_KEY"
LOG_ENV = "CUCM_RENEW_AUDIT_LOG"
KEY_BYTES = 32
CHECKPOINT_EVERY = 1
"""Commits between two checkpoints. One line appended without fsync measured ~30 us here (an
event's MAC ~7 us), against ~250 us and more for the commit's own fsync; benchmarks/bench_engine.py
shows no change beyond its noise, so every commit is anchored by default. A larger value trades
cost for the window in which a cut tail goes unnoticed."""


class AnchorError(EngineError):
    """The audit key or checkpoint log cannot be used as configured."""


@dataclass(frozen=True)
class AnchorPaths:
    """Where the key and the checkpoint log are; ``syslog`` also sends each checkpoint there."""

    key: Path
    log: Path
    syslog: bool = False

    @classmethod
    def default(cls, state_dir: Path) -> AnchorPaths:
        return cls(Path(state_dir) / KEY_NAME, Path(state_dir) / LOG_NAME)


@dataclass(frozen=True)
class Checkpoint:
    line: int
    seq: int
    hash: str
    anchored_from: int
    mac: str
    ts: str


def key_id(key: bytes) -> str:
    return hmac.new(key, b"cucm-renew audit key id", hashlib.sha256).hexdigest()[:16]


def event_mac(key: bytes, seq: int, digest: str) -> str:
    # The hash covers every field and the previous hash; the sequence number is bound as well so
    # that a MAC cannot be moved to another row.
    return hmac.new(key, f"event:{seq}:{digest}".encode("ascii"), hashlib.sha256).hexdigest()


def checkpoint_mac(key: bytes, seq: int, digest: str, anchored_from: int) -> str:
    text = f"checkpoint:{seq}:{digest}:{anchored_from}"
    return hmac.new(key, text.encode("ascii"), hashlib.sha256).hexdigest()


def load_key(path: Path, *, create: bool) -> bytes | None:
    """The key in ``path``; ``None`` if there is none and ``create`` is false, else a new one.

    A key file others can read or write is refused: it would anchor nothing."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        if not create:
            return None
        return _create_key(path)
    except OSError as exc:
        raise AnchorError(f"cannot read the audit key {path}: {exc.strerror}") from None
    if stat.S_ISREG(info.st_mode) and info.st_mode & 0o077:
        raise AnchorError(
            f"the audit key {path} is open to other users (mode {stat.S_IMODE(info.st_mode):04o}): "
            f"chmod 600 {path}"
        )
    try:
        text = read_small_file(path, "the audit key", limit=4096).decode("ascii", "replace").strip()
    except FileRefused as exc:
        raise AnchorError(str(exc)) from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise AnchorError(
            f"the audit key {path} does not hold a key (at least 32 hex digits): restore it from its "
            "backup; an empty or edited key cannot verify the trail it anchored"
        )
    return key


def _create_key(path: Path) -> bytes:
    key = secrets.token_bytes(KEY_BYTES)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process created it meanwhile: use that one.
        loaded = load_key(path, create=False)
        assert loaded is not None
        return loaded
    except OSError as exc:
        raise AnchorError(
            f"cannot create the audit key {path}: {exc.strerror}; check the folder or pass --audit-key"
        ) from None
    try:
        os.write(fd, (key.hex() + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return key


class Anchor:
    """Computes MACs with the key and appends checkpoints of the chain head to the log."""

    def __init__(self, key: bytes, paths: AnchorPaths, *, every: int = CHECKPOINT_EVERY) -> None:
        self.key = key
        self.key_id = key_id(key)
        self.paths = paths
        self.every = max(1, every)
        self.anchored_from = 0
        """The first event with a MAC (set by the store when it opens the database)."""
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pending: tuple[int, str] | None = None
        self._commits = 0

    def mac(self, seq: int, digest: str) -> str:
        return event_mac(self.key, seq, digest)

    def committed(self, seq: int, digest: str) -> None:
        """A commit made ``(seq, digest)`` the chain head."""
        with self._lock:
            if self._pending is not None and self._pending[0] >= seq:
                return
            self._pending = (seq, digest)
            self._commits += 1
            if self._commits >= self.every:
                self._write()

    def flush(self) -> None:
        with self._lock:
            self._write()

    def close(self) -> None:
        with self._lock:
            self._write()
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._fd)
                self._fd = None

    def _write(self) -> None:
        if self._pending is None:
            return
        seq, digest = self._pending
        self._pending, self._commits = None, 0
        record = {
            "seq": seq,
            "hash": digest,
            "from": self.anchored_from,
            "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "mac": checkpoint_mac(self.key, seq, digest, self.anchored_from),
        }
        line = json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"
        if self._fd is None:
            try:
                self.paths.log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                self._fd = os.open(self.paths.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            except OSError as exc:
                raise AnchorError(
                    f"cannot open the audit checkpoint log {self.paths.log}: {exc.strerror}; "
                    "check the folder or pass --audit-log"
                ) from None
        # One write() of one line with O_APPEND: lines from several processes never interleave.
        # No fsync: the database commit before it is durable, and a checkpoint lost in a crash only
        # leaves that tail anchored by its MACs alone until the next one.
        os.write(self._fd, line.encode("ascii"))
        if self.paths.syslog:
            syslog.syslog(syslog.LOG_INFO, f"cucm-renew audit checkpoint {line.strip()}")


def read_checkpoints(path: Path) -> tuple[list[Checkpoint], list[str]]:
    """The checkpoints in the log, and a note per line that is not one (an edited log)."""
    try:
        data = read_small_file(path, "the audit checkpoint log", limit=256 * 1024 * 1024)
    except FileNotFoundError:
        return [], []
    except FileRefused as exc:
        return [], [str(exc)]
    found: list[Checkpoint] = []
    bad: list[str] = []
    for number, raw in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        try:
            record = json.loads(raw)
            found.append(
                Checkpoint(
                    number,
                    int(record["seq"]),
                    str(record["hash"]),
                    int(record["from"]),
                    str(record["mac"]),
                    str(record.get("ts", "")),
                )
            )
        except (ValueError, KeyError, TypeError):
            bad.append(f"line {number} of {path} is not a checkpoint")
    return found, bad
