"""The one format for moments the workflows record: in the run's context, evidence and output.

``2026-11-26T10:00:00.000000Z``: UTC, microseconds, a ``Z``. It is the engine's format too, so a
run's context and its audit trail read alike, and being fixed-width it sorts as text.

Runs recorded before this format was settled hold ``+00:00`` offsets instead of the ``Z``; compare
stored moments with :func:`instant`, never as text, so that a value of either kind compares right.
"""

from __future__ import annotations

from datetime import UTC, datetime

from engine.views import iso

__all__ = ["instant", "iso"]


def instant(text: str) -> datetime:
    """A recorded moment back as an aware UTC datetime, whichever way it was written.

    Raises ``ValueError`` when ``text`` is not an ISO 8601 moment.
    """
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
