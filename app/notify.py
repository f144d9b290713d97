"""Notifications: a webhook or an e-mail when a run needs a person or a cluster's campaign is done.

What a ``[notify.NAME]`` target can be told (its ``events``; a cluster opts in with ``notify``):

- ``gate_waiting``: a run is held ``paused`` until an operator approves it (a gate, a missing phone,
  a wait that timed out to ``paused``).
- ``run_failed``: a run is held ``failed``, its attempts spent; ``retry`` or ``abort`` it.
- ``campaign_done``: every run of the cluster is final, and at least one of them did more than
  find nothing due (a check that found nothing to renew is not news).
- ``window_missed``, ``expires_before_window``: recorded by whoever knows. Any audit event whose
  evidence carries ``{"notify": KIND}`` (one of the kinds above, ``message`` optional) is
  notified as that kind, so a new reason to tell someone is an event, not a change here.

Durability comes from the audit trail: the events are already durable, and this module keeps, in
``STATE/notify.db``, the sequence number of the last event it looked at and an outbox of the
messages those events gave, both written in one transaction. A process that dies before looking
at an event looks at it after the restart; a message in the outbox is sent after the restart. The
delivery is at least once: each message carries a delivery id (the ``X-Cucm-Renew-Delivery``
header, the e-mail's ``Message-ID``) a receiver can drop a repeat by.

Never blocking a run: the engine hands each event it commits to a bounded queue
(``put_nowait``; a full queue drops only the prompt, since the cursor finds the event anyway) and
one worker thread reads the store from its cursor, fills the outbox and sends, retrying with
exponential back-off. Events committed by another process (an ``approve`` on the command line)
are found by polling the store every few seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import queue
import random
import smtplib
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import requests

from app.config import Config, NotifyConfig
from engine.api import JSON
from engine.definition import ABORTED, Definition
from engine.facade import Engine
from engine.logging import get_logger
from engine.store import EventRow

DB_NAME = "notify.db"
SIGNATURE_HEADER = "X-Cucm-Renew-Signature"
DELIVERY_HEADER = "X-Cucm-Renew-Delivery"
EVENT_HEADER = "X-Cucm-Renew-Event"
QUIET_FINAL_STATES = frozenset({"not_due"})
"""Final states that are not news: a campaign whose runs all ended here is not notified."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cursor (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    delivery TEXT NOT NULL UNIQUE,
    target TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_at);
CREATE TABLE IF NOT EXISTS campaign (
    scope TEXT NOT NULL, run TEXT NOT NULL, definition TEXT NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (scope, run)
);
"""


class DeliveryError(Exception):
    """A message could not be delivered. ``transient``: try again later (the receiver was down,
    answered 5xx, throttled); otherwise the target is misconfigured and retrying cannot help."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class Notice:
    """One thing to tell: what happened to which run, with the event that says so."""

    kind: str
    cluster: str
    run: str
    cert_type: str
    state: str
    reason: str
    ts: str
    seq: int
    runs: tuple[Mapping[str, str], ...] = ()

    def payload(self) -> dict[str, JSON]:
        return {
            "kind": self.kind,
            "cluster": self.cluster,
            "run": self.run,
            "type": self.cert_type,
            "state": self.state,
            "reason": self.reason,
            "ts": self.ts,
            "event_seq": self.seq,
            "runs": [dict(r) for r in self.runs],
            "summary": summary(self),
        }


def summary(notice: Notice) -> str:
    """One line a person reads (the e-mail's subject)."""
    if notice.kind == "gate_waiting":
        return (
            f"{notice.cluster}: {notice.cert_type} waits for an operator in {notice.state} "
            f"({notice.reason}): cucm-renew approve {notice.run}"
        )
    if notice.kind == "run_failed":
        return f"{notice.cluster}: {notice.cert_type} failed in {notice.state}: cucm-renew retry {notice.run}"
    if notice.kind == "campaign_done":
        states = ", ".join(f"{r['type']} {r['state']}" for r in notice.runs)
        return f"{notice.cluster}: campaign done ({states})"
    return f"{notice.cluster}: {notice.kind.replace('_', ' ')}: {notice.reason}"


def body_text(notice: Notice) -> str:
    lines = [summary(notice), ""]
    if notice.runs:
        lines += [f"  {r['type']:<12} {r['state']:<10} {r['run']}" for r in notice.runs]
    else:
        lines += [
            f"cluster: {notice.cluster}",
            f"type:    {notice.cert_type}",
            f"run:     {notice.run}",
            f"state:   {notice.state}",
            f"reason:  {notice.reason}",
        ]
    lines += ["", f"at {notice.ts} (audit event {notice.seq}); `cucm-renew status` shows every run."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- what an event means


class Classifier:
    """Turns committed events into notices. ``campaign`` is the notifier's record of the runs of a
    cluster that ended since its last ``campaign_done``."""

    def __init__(
        self,
        engine: Engine,
        definitions: Mapping[str, Definition],
        quiet: frozenset[str] = QUIET_FINAL_STATES,
    ) -> None:
        self.engine = engine
        self.definitions = definitions
        self.quiet = quiet

    def is_final(self, definition: str, state: str | None) -> bool:
        if state is None:
            return False
        defn = self.definitions.get(definition)
        return state == ABORTED or (defn is not None and defn.is_final(state))

    def notices(self, event: EventRow, conn: sqlite3.Connection) -> list[Notice]:
        def notice(kind: str, state: str, reason: str) -> Notice:
            return Notice(kind, event.scope, event.run, event.definition, state, reason, event.ts, event.seq)

        found: list[Notice] = []
        declared = event.evidence.get("notify") if event.evidence else None
        if isinstance(declared, str):
            message = event.evidence.get("message")
            found.append(notice(declared, event.to_state or "", str(message or event.reason)))
        if event.to_state == "paused":
            found.append(notice("gate_waiting", event.from_state or "", event.reason))
        elif event.to_state == "failed":
            found.append(notice("run_failed", event.from_state or "", event.reason))
        elif self.is_final(event.definition, event.to_state):
            conn.execute(
                "INSERT OR REPLACE INTO campaign (scope, run, definition, state) VALUES (?, ?, ?, ?)",
                (event.scope, event.run, event.definition, event.to_state),
            )
            done = self._campaign_done(event, conn)
            if done is not None:
                found.append(done)
        return found

    def _campaign_done(self, event: EventRow, conn: sqlite3.Connection) -> Notice | None:
        if self.engine.find_runs(scope=event.scope):
            return None  # a run of the cluster is still going
        later = self.engine.store.events(scope=event.scope, after_seq=event.seq)
        if any(self.is_final(e.definition, e.to_state) for e in later):
            return None  # the last run to end reports the campaign, once
        rows = conn.execute(
            "SELECT run, definition, state FROM campaign WHERE scope = ? ORDER BY run", (event.scope,)
        ).fetchall()
        conn.execute("DELETE FROM campaign WHERE scope = ?", (event.scope,))
        if all(state in self.quiet for _, _, state in rows):
            return None
        runs = tuple({"run": r, "type": d, "state": s} for r, d, s in rows)
        return Notice(
            "campaign_done",
            event.scope,
            event.run,
            event.definition,
            event.to_state or "",
            f"{len(runs)} run(s) final",
            event.ts,
            event.seq,
            runs,
        )


# --------------------------------------------------------------------------- senders


def send_webhook(target: NotifyConfig, delivery: str, payload: Mapping[str, JSON]) -> None:
    """POST the JSON body, signed: ``X-Cucm-Renew-Signature: sha256=HEX``, the HMAC-SHA256 of the
    exact body bytes under the target's secret (GitHub's scheme: a receiver recomputes it over the
    raw body and compares in constant time)."""
    assert target.secret is not None
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
    signature = hmac.new(target.secret.value.encode("utf-8"), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "cucm-renew",
        SIGNATURE_HEADER: f"sha256={signature}",
        DELIVERY_HEADER: delivery,
        EVENT_HEADER: str(payload.get("kind", "")),
    }
    try:
        response = requests.post(
            target.url,
            data=body,
            headers=headers,
            timeout=(5, 15),
            verify=str(target.ca_bundle) if target.ca_bundle else True,
            allow_redirects=False,
        )
    except requests.exceptions.SSLError as exc:
        raise DeliveryError(
            f"webhook {target.name}: TLS verification failed ({exc}); fix: set ca_bundle to the CA "
            f"that signed {target.url}'s certificate",
            transient=False,
        ) from None
    except requests.RequestException as exc:
        raise DeliveryError(f"webhook {target.name}: {type(exc).__name__}: {exc}", transient=True) from None
    if 200 <= response.status_code < 300:
        return
    transient = response.status_code >= 500 or response.status_code in (408, 425, 429)
    raise DeliveryError(
        f"webhook {target.name} answered HTTP {response.status_code}: {response.text[:200]}",
        transient=transient,
    )


def send_email(target: NotifyConfig, delivery: str, payload: Mapping[str, JSON], text: str) -> None:
    """Send through the target's SMTP server: STARTTLS with the server's certificate verified
    before anything else, AUTH only inside TLS. A server that does not offer STARTTLS is refused."""
    message = EmailMessage()
    message["Subject"] = f"[cucm-renew] {payload.get('summary', '')}"
    message["From"] = target.sender
    message["To"] = ", ".join(target.recipients)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    domain = target.sender.rpartition("@")[2] or "cucm-renew.invalid"
    message["Message-ID"] = f"<{delivery}@{domain}>"
    message.set_content(text)
    context = ssl.create_default_context(cafile=str(target.ca_bundle) if target.ca_bundle else None)
    where = f"e-mail {target.name} via {target.smtp_host}:{target.smtp_port}"
    try:
        with smtplib.SMTP(target.smtp_host, target.smtp_port, timeout=20) as smtp:
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise DeliveryError(
                    f"{where}: the server does not offer STARTTLS; nothing is sent in clear. Fix: "
                    f"enable STARTTLS on the relay or point smtp_host at one that offers it",
                    transient=False,
                )
            smtp.starttls(context=context)
            smtp.ehlo()
            if target.username and target.password is not None:
                smtp.login(target.username, target.password.value)
            smtp.send_message(message)
    except ssl.SSLCertVerificationError as exc:
        raise DeliveryError(
            f"{where}: TLS verification failed ({exc.verify_message}); fix: set ca_bundle to the CA "
            f"that signed the server's certificate",
            transient=False,
        ) from None
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(f"{where}: login refused ({exc.smtp_code})", transient=False) from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryError(
            f"{where}: recipients refused: {sorted(exc.recipients)}", transient=False
        ) from None
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(
            f"{where}: {exc.smtp_code} {exc.smtp_error!r}", transient=exc.smtp_code < 500
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"{where}: {type(exc).__name__}: {exc}", transient=True) from None


def default_backoff(attempts: int) -> float:
    """Seconds before attempt ``attempts + 1``: 5 s doubling to an hour, with a fifth of jitter so
    that messages to a receiver that came back do not all arrive at once."""
    base = min(3600.0, 5.0 * 2.0 ** (attempts - 1))
    return base * (1 + random.uniform(-0.2, 0.2))


# --------------------------------------------------------------------------- the notifier


class Notifier:
    """The durable cursor and outbox in ``STATE/notify.db`` and the worker thread that sends."""

    def __init__(
        self,
        engine: Engine,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        backoff: Callable[[int], float] = default_backoff,
        max_attempts: int = 12,
        poll: float = 5.0,
        queue_size: int = 1024,
        quiet: frozenset[str] = QUIET_FINAL_STATES,
    ) -> None:
        self.engine = engine
        self.targets = dict(config.notify)
        self.subscribed = {name: set(c.notify) for name, c in config.clusters.items()}
        self.classifier = Classifier(engine, engine.definitions, quiet)
        self.clock = clock
        self.backoff = backoff
        self.max_attempts = max_attempts
        self.poll = poll
        self._queue: queue.Queue[int] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._draining = False
        path = engine.state_dir / DB_NAME
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
        path.chmod(0o600)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        with self._tx() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            if conn.execute("SELECT seq FROM cursor").fetchone() is None:
                # Notifications start from now: what happened before they were configured is in
                # the audit trail, not news.
                head = engine.store.chain_head()
                conn.execute("INSERT INTO cursor (id, seq) VALUES (1, ?)", (head[0] if head else 0,))

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # ------------------------------------------------------------------ the two halves

    def pump(self) -> int:
        """Look at every event after the cursor: queue its messages and move the cursor, in one
        transaction. Returns how many messages were queued."""
        with self._lock:
            (cursor,) = self._conn.execute("SELECT seq FROM cursor").fetchone()
        events = self.engine.store.events(after_seq=int(cursor))
        if not events:
            return 0
        queued = 0
        now = self.clock()
        with self._tx() as conn:
            for event in events:
                for notice in self.classifier.notices(event, conn):
                    for target in self._targets_for(notice):
                        delivery = f"cucm-renew-{event.seq}-{notice.kind}-{target.name}"
                        cur = conn.execute(
                            "INSERT OR IGNORE INTO outbox (delivery, target, kind, payload, next_at, "
                            "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                            (delivery, target.name, notice.kind, json.dumps(notice.payload()), now, now),
                        )
                        queued += cur.rowcount
            conn.execute("UPDATE cursor SET seq = ?", (events[-1].seq,))
        return queued

    def _targets_for(self, notice: Notice) -> list[NotifyConfig]:
        names = self.subscribed.get(notice.cluster, set())
        return [t for name, t in self.targets.items() if name in names and notice.kind in t.events]

    def deliver_due(self) -> int:
        """Send every message that is due; returns how many were sent."""
        sent = 0
        while self._draining or not self._stop.is_set():
            with self._lock:
                row = self._conn.execute(
                    "SELECT id, delivery, target, kind, payload, attempts FROM outbox "
                    "WHERE status = 'pending' AND next_at <= ? ORDER BY next_at, id LIMIT 1",
                    (self.clock(),),
                ).fetchone()
            if row is None:
                return sent
            ident, delivery, target_name, kind, payload_text, attempts = row
            if self._send(ident, delivery, target_name, kind, json.loads(payload_text), attempts + 1):
                sent += 1
        return sent

    def _send(
        self, ident: int, delivery: str, target_name: str, kind: str, payload: dict[str, Any], attempt: int
    ) -> bool:
        target = self.targets.get(target_name)
        log = get_logger()
        try:
            if target is None:
                raise DeliveryError(f"target {target_name!r} is no longer configured", transient=False)
            if target.kind == "webhook":
                send_webhook(target, delivery, payload)
            else:
                notice = Notice(
                    payload["kind"],
                    payload["cluster"],
                    payload["run"],
                    payload["type"],
                    payload["state"],
                    payload["reason"],
                    payload["ts"],
                    payload["event_seq"],
                    tuple(payload.get("runs") or ()),
                )
                send_email(target, delivery, payload, body_text(notice))
        except DeliveryError as exc:
            give_up = not exc.transient or attempt >= self.max_attempts
            with self._tx() as conn:
                conn.execute(
                    "UPDATE outbox SET attempts = ?, last_error = ?, status = ?, next_at = ? WHERE id = ?",
                    (
                        attempt,
                        str(exc),
                        "dead" if give_up else "pending",
                        self.clock() + (0 if give_up else self.backoff(attempt)),
                        ident,
                    ),
                )
            (log.error if give_up else log.warning)(
                "notification not delivered" + ("; given up" if give_up else "; will retry"),
                target=target_name,
                kind=kind,
                delivery=delivery,
                attempt=attempt,
                reason=str(exc),
            )
            return False
        with self._tx() as conn:
            conn.execute("UPDATE outbox SET status = 'sent', attempts = ? WHERE id = ?", (attempt, ident))
        log.info("notification sent", target=target_name, kind=kind, delivery=delivery, attempt=attempt)
        return True

    def outbox(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT delivery, target, kind, status, attempts, last_error FROM outbox ORDER BY id"
            ).fetchall()
        keys = ("delivery", "target", "kind", "status", "attempts", "last_error")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def next_due(self) -> float | None:
        with self._lock:
            row = self._conn.execute("SELECT MIN(next_at) FROM outbox WHERE status = 'pending'").fetchone()
        return float(row[0]) if row and row[0] is not None else None

    # ------------------------------------------------------------------ the worker

    def prompt(self, event: EventRow) -> None:
        """The engine's subscriber: never blocks, never raises."""
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(event.seq)

    def start(self) -> None:
        self._unsubscribe = self.engine.subscribe(self.prompt)
        self._thread = threading.Thread(target=self._work, name="notifier", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                self.pump()
                self.deliver_due()
            except Exception as exc:  # a notifier failing must not stop the daemon; it tries again
                get_logger().error("notifier failed", error=type(exc).__name__, reason=str(exc))
            wait = self.poll
            due = self.next_due()
            if due is not None:
                wait = max(0.0, min(wait, due - self.clock()))
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=wait)
                while True:  # one look at the store serves every event queued meanwhile
                    self._queue.get_nowait()

    def stop(self, drain: float = 10.0) -> None:
        """Stop the worker after one last look, giving the messages due now up to ``drain``
        seconds; anything still owed is sent by the next process."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(-1)
        if self._thread is not None:
            self._thread.join(timeout=30)
        finisher = threading.Thread(target=self._drain, name="notifier-drain", daemon=True)
        finisher.start()
        finisher.join(timeout=drain)

    def _drain(self) -> None:
        self._draining = True
        try:
            self.pump()
            self.deliver_due()
        except Exception as exc:
            get_logger().error("notifier failed while stopping", error=type(exc).__name__, reason=str(exc))

    def close(self) -> None:
        with self._lock:
            self._conn.close()


@contextlib.contextmanager
def notifications(engine: Engine, config: Config, **kwargs: Any) -> Iterator[Notifier | None]:
    """A running :class:`Notifier` for as long as the block lasts, or None when no cluster asks for
    notifications."""
    if not config.notify or not any(c.notify for c in config.clusters.values()):
        yield None
        return
    notifier = Notifier(engine, config, **kwargs)
    notifier.start()
    try:
        yield notifier
    finally:
        notifier.stop()
        notifier.close()


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does with ``X-Cucm-Renew-Signature`` (for receivers written in Python)."""
    expected = "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)
