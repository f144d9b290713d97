"""What a person reads: progress lines, the closing table of a campaign, held runs.

Pure formatting of the engine's read-only views; nothing here decides or changes anything.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
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
