"""What a person reads: the live view of runs in progress, progress lines, the closing table of a
campaign, held runs.

Pure formatting of the engine's read-only views; nothing here decides or changes anything.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from engine.views import EventView, RunView

TABLE_HEADERS = ("type", "node", "old expiry", "new expiry", "serial", "verified", "state")


def event_line(event: EventView) -> str:
    """One progress line per audited transition."""
    ts = event.ts[11:19] if len(event.ts) >= 19 else event.ts
    move = f"{event.from_state or '-'} -> {event.to_state or '-'}"
    node = f" [{event.node}]" if event.node else ""
    why = f"  {event.reason}" if event.reason else ""
    return f"{ts}  {event.scope:<8} {event.definition:<12} {move}{node}{why}"


def printer(stream: TextIO) -> Callable[[EventView], None]:
    """An ``on_event`` callback writing :func:`event_line` for each event, from any thread."""
    lock = threading.Lock()

    def show(event: EventView) -> None:
        with lock:
            stream.write(event_line(event) + "\n")
            stream.flush()

    return show


def summary_rows(runs: Sequence[RunView]) -> list[dict[str, Any]]:
    """Type x node: old expiry -> new expiry, serial, verified; from each run's context."""
    rows: list[dict[str, Any]] = []
    for run in runs:
        ctx: Any = run.context
        old = ctx.get("old") or {}
        issued = ctx.get("issued") or {}
        verified = ctx.get("verified") or {}
        for node in ctx.get("targets") or []:
            rows.append(
                {
                    "cluster": run.scope,
                    "type": run.definition,
                    "node": node,
                    "old_expiry": str((old.get(node) or {}).get("not_after", ""))[:10],
                    "new_expiry": str((issued.get(node) or {}).get("not_after", ""))[:10],
                    "serial": str((issued.get(node) or {}).get("serial", ""))[:16],
                    "verified": bool((verified.get(node) or {}).get("ok")),
                    "state": run.state,
                }
            )
        if not ctx.get("targets"):
            # Nothing renewed (not due, or stopped before the nodes were chosen): show what each
            # node presents now, so the table still answers "when does it expire?".
            expiry = ctx.get("expiry") or {"-": {}}
            for node, seen in expiry.items():
                rows.append(
                    {
                        "cluster": run.scope,
                        "type": run.definition,
                        "node": node,
                        "old_expiry": str((seen or {}).get("not_after", ""))[:10],
                        "new_expiry": "",
                        "serial": "",
                        "verified": None,
                        "state": run.state,
                    }
                )
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    body = [
        [
            r["type"],
            r["node"],
            r["old_expiry"],
            r["new_expiry"],
            r["serial"],
            "-" if r["verified"] is None else "yes" if r["verified"] else "no",
            r["state"],
        ]
        for r in rows
    ]
    widths = [
        max(len(h), *(len(str(b[i])) for b in body)) if body else len(h) for i, h in enumerate(TABLE_HEADERS)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(TABLE_HEADERS, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for b in body:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(b, widths, strict=True)))
    return "\n".join(lines)


def held_text(views: Sequence[RunView]) -> str:
    """One line per run that waits for an operator (paused at a gate, or failed)."""
    return "\n".join(
        f"{r.id} is {r.status} at {r.held_from or r.state}: {r.waiting_reason or r.last_error}"
        for r in views
        if r.status in ("paused", "failed")
    )


# --------------------------------------------------------------------------- the live view

WindowLeft = Callable[[RunView], float | None]
"""Seconds left in the run's change window, or None when it has none (or it is not known)."""


def no_window(run: RunView) -> float | None:
    return None


def clock(seconds: float | None) -> str:
    """``42s``, ``3:07``, ``1:02:07``: a duration at a glance."""
    if seconds is None:
        return ""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}" if minutes else f"{secs}s"


@dataclass(frozen=True)
class LiveRow:
    """What a person watching wants of one run: where it is, on which node, how far the phones are,
    how long it has waited, and how long its window stays open."""

    run: str
    cluster: str
    cert_type: str
    state: str
    status: str
    node: str
    phones: str
    waited: float | None
    window_left: float | None
    reason: str


def node_in_progress(run: RunView) -> str:
    """The node a serial step works on (the restart under way); else how many nodes the run
    renews, since the other steps work on all of them at once."""
    ctx: Any = run.context
    for record in ctx.get("restarts") or []:
        if not (record.get("running_at") or record.get("skipped")):
            return f"{record.get('node', '?')} ({record.get('service', '?')})"
    targets = ctx.get("targets") or []
    return f"{len(targets)} node(s)" if targets else ""


def phones_back(run: RunView) -> str:
    """``phones 18/20`` once the run has a baseline of registered phones."""
    phones: Any = run.context.get("phones") or {}
    baseline = phones.get("baseline")
    if not baseline:
        return ""
    registered = phones.get("registered")
    return f"phones {registered if registered is not None else '?'}/{baseline}"


def live_rows(
    runs: Sequence[RunView],
    entered: Mapping[str, datetime],
    now: datetime,
    window_left: WindowLeft = no_window,
) -> list[LiveRow]:
    rows = []
    for run in runs:
        since = entered.get(run.id)
        waited = (now - since).total_seconds() if since is not None and run.status != "final" else None
        reason = run.last_error if run.status == "failed" else run.waiting_reason
        rows.append(
            LiveRow(
                run=run.id,
                cluster=run.scope,
                cert_type=run.definition,
                state=run.held_from or run.state,
                status=run.status,
                node=node_in_progress(run) if run.status != "final" else "",
                phones=phones_back(run),
                waited=waited,
                window_left=window_left(run) if run.status != "final" else None,
                reason=reason if run.status != "final" else "",
            )
        )
    return rows


def render_live(rows: Sequence[LiveRow], now: datetime, width: int = 120) -> list[str]:
    """The compact view: a heading, then one line per run, each cut to ``width``."""
    done = sum(r.status == "final" for r in rows)
    held = sum(r.status in ("paused", "failed") for r in rows)
    heading = f"{now:%H:%M:%S}  {len(rows)} run(s): {done} finished, {len(rows) - done - held} in progress"
    lines = [heading + (f", {held} waiting for an operator" if held else "")]
    for r in rows:
        status = "" if r.status == "active" else f" [{r.status}]"
        cells = [
            f"{r.cert_type:<12}",
            f"{r.cluster:<10}",
            f"{r.state + status:<22}",
            f"{r.node:<30}",
            f"{r.phones:<14}",
            f"{'waiting ' + clock(r.waited) if r.waited is not None else '':<15}",
        ]
        if r.window_left is not None:
            cells.append(f"window {clock(r.window_left)} left")
        line = " ".join(cells).rstrip()
        if r.reason:
            line += f"  {r.reason}"
        lines.append(line)
    return [line[: max(20, width - 1)] for line in lines]


class LiveView:
    """Shows runs as they go. On a terminal the view is redrawn in place (ANSI cursor movement);
    elsewhere each real state change is one line and each run still in progress gets one line
    every ``every`` seconds, so a log file grows by minutes, not by every sweep."""

    def __init__(
        self,
        stream: TextIO,
        fetch: Callable[[], Sequence[RunView]],
        events_of: Callable[[str], Sequence[EventView]],
        *,
        tty: bool,
        every: float,
        window_left: WindowLeft = no_window,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.stream = stream
        self.fetch = fetch
        self.events_of = events_of
        self.tty = tty
        self.every = every
        self.window_left = window_left
        self.now = now
        self._entered: dict[str, tuple[str, datetime]] = {}
        self._drawn = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_lines = 0.0

    def entered(self, runs: Sequence[RunView]) -> dict[str, datetime]:
        """When each run entered its current state: its last transition into that state from
        another (a wait's self-transitions do not restart the clock)."""
        out = {}
        for run in runs:
            known = self._entered.get(run.id)
            if known is None or known[0] != run.state:
                since = run.created_at
                for event in self.events_of(run.id):
                    if event.to_state == run.state and event.from_state != event.to_state:
                        since = _parse_ts(event.ts) or since
                known = (run.state, since)
                self._entered[run.id] = known
            out[run.id] = known[1]
        return out

    def draw(self) -> None:
        runs = list(self.fetch())
        now = self.now()
        rows = live_rows(runs, self.entered(runs), now, self.window_left)
        with self._lock:
            if self.tty:
                width = shutil.get_terminal_size((120, 40)).columns
                lines = render_live(rows, now, width)
                up = f"\x1b[{self._drawn}F" if self._drawn else ""
                self.stream.write(up + "\x1b[J" + "\n".join(lines) + "\n")
                self._drawn = len(lines)
            elif now.timestamp() - self._last_lines >= self.every:
                self._last_lines = now.timestamp()
                for r in rows:
                    if r.status == "active":
                        self.stream.write(plain_line(r, now) + "\n")
            self.stream.flush()

    def on_event(self, event: EventView) -> None:
        """Non-TTY: one line per real state change (never for a wait's self-transition)."""
        if self.tty or event.from_state == event.to_state:
            return
        with self._lock:
            self.stream.write(event_line(event) + "\n")
            self.stream.flush()

    def above(self, target: TextIO) -> TextIO:
        """A stream whose text (log lines on stderr, say) appears above the view, which is then
        redrawn below it, instead of tearing through it."""
        return _Above(self, target)  # type: ignore[return-value]

    def _erase(self) -> None:
        if self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
            self.stream.flush()
            self._drawn = 0

    def _loop(self) -> None:
        interval = 0.5 if self.tty else min(self.every, 1.0)
        while not self._stop.wait(interval):
            self.draw()

    def __enter__(self) -> LiveView:
        if self.tty:
            self.stream.write("\x1b[?25l")  # no cursor blinking across the view
        self.draw()
        self._thread = threading.Thread(target=self._loop, name="live-view", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.tty:
            self.draw()
            self.stream.write("\x1b[?25h")
            self.stream.flush()


class _Above:
    def __init__(self, view: LiveView, target: TextIO) -> None:
        self.view = view
        self.target = target

    def write(self, text: str) -> int:
        with self.view._lock:
            if self.view.tty:
                self.view._erase()
            written = self.target.write(text)
            self.target.flush()
        return written

    def flush(self) -> None:
        self.target.flush()


def plain_line(row: LiveRow, now: datetime) -> str:
    parts = [f"{now:%H:%M:%S}  {row.cluster:<8} {row.cert_type:<12} {row.state}"]
    detail = ", ".join(p for p in (row.node, row.phones) if p)
    if row.waited is not None:
        parts.append(f"for {clock(row.waited)}")
    if detail:
        parts.append(f"({detail})")
    if row.window_left is not None:
        parts.append(f"window {clock(row.window_left)} left")
    line = " ".join(parts)
    return f"{line}: {row.reason}" if row.reason else line


def _parse_ts(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
