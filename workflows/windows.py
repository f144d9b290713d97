"""Change windows: when a cluster may be interrupted, in the cluster's own time zone. Pure.

A cluster's windows are written as an operator writes them in a change calendar:

* weekly: ``"Sat 01:00-05:00"`` (``Mon`` … ``Sun``; an end at or before the start runs past
  midnight: ``"Sat 23:00-02:00"``; ``24:00`` is the end of the day);
* one-off: ``"2026-12-24 22:00-23:30"``;
* blackout dates: ``"2026-12-25"``, a whole local day on which no window opens or runs on.

Times are local to the cluster's IANA time zone (``Europe/Paris``), so a weekly window follows
daylight saving: ``01:00-05:00`` is three hours long on the night clocks go forward. A local
time that does not exist that night (inside the spring gap) is read as zoneinfo reads it (the
offset before the change). Windows that touch or overlap are one window. No window at all
means any time (minus the blackout dates).

Everything here is a function of its arguments: the caller gives "now" (the cluster's clock).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HORIZON = timedelta(days=366)
"""How far ahead a window that fits is looked for."""

_WEEKLY = re.compile(r"^\s*([A-Za-z]{3})[A-Za-z]*\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_ONE_OFF = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_DATE = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})\s*$")


class WindowError(ValueError):
    """A window, blackout date or time zone that cannot be read; the message names the fix."""


@dataclass(frozen=True)
class Slot:
    """A stretch of time (UTC, timezone-aware) the cluster may be interrupted in."""

    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class _Weekly:
    day: int
    start: time
    minutes: int
    text: str


@dataclass(frozen=True)
class _OneOff:
    day: date
    start: time
    minutes: int
    text: str


def _clock(hours: str, minutes: str, text: str, *, end: bool) -> int:
    h, m = int(hours), int(minutes)
    if m > 59 or h > 24 or (h == 24 and (m or not end)):
        raise WindowError(
            f"{text!r}: {hours}:{minutes} is not a time of day (00:00 to 23:59, or 24:00 as an end)"
        )
    return h * 60 + m


def _span(start: int, end: int) -> int:
    """Minutes from ``start`` to ``end``: an end at or before the start is the next day's."""
    return end - start if end > start else end + 24 * 60 - start


def _day(y: str, m: str, d: str, text: str) -> date:
    try:
        return date(int(y), int(m), int(d))
    except ValueError:
        raise WindowError(f"{text!r}: not a date (write it YYYY-MM-DD)") from None


@dataclass(frozen=True)
class Windows:
    """A cluster's change windows and blackout dates in its time zone."""

    zone: ZoneInfo
    weekly: tuple[_Weekly, ...] = ()
    one_off: tuple[_OneOff, ...] = ()
    blackout: tuple[date, ...] = ()

    @property
    def always(self) -> bool:
        """No window is configured: the cluster may be interrupted at any time (but blackouts)."""
        return not self.weekly and not self.one_off

    @property
    def configured(self) -> bool:
        """Whether anything restricts when the cluster may be interrupted."""
        return not self.always or bool(self.blackout)

    def describe(self) -> str:
        parts = [w.text for w in self.weekly] + [o.text for o in self.one_off]
        text = ", ".join(parts) if parts else "any time"
        if self.blackout:
            text += f"; never on {', '.join(d.isoformat() for d in self.blackout)}"
        return f"{text} ({self.zone.key})"

    def _local(self, day: date, at: time) -> datetime:
        return datetime.combine(day, at, tzinfo=self.zone).astimezone(UTC)

    def _raw(self, start: datetime, end: datetime) -> list[Slot]:
        """Every configured window that overlaps [start, end), before blackouts, unmerged."""
        if self.always:
            return [Slot(start, end)]
        first = start.astimezone(self.zone).date() - timedelta(days=1)
        last = end.astimezone(self.zone).date() + timedelta(days=1)
        slots: list[Slot] = []
        day = first
        while day <= last:
            for w in self.weekly:
                if w.day == day.weekday():
                    begin = self._local(day, w.start)
                    slots.append(Slot(begin, self._end(day, w.start, w.minutes)))
            day += timedelta(days=1)
        for o in self.one_off:
            if first <= o.day <= last:
                slots.append(Slot(self._local(o.day, o.start), self._end(o.day, o.start, o.minutes)))
        return [s for s in slots if s.end > start and s.start < end]

    def _end(self, day: date, at: time, minutes: int) -> datetime:
        # Counted on the local wall clock (05:00 is 05:00 whatever the offset did overnight).
        naive = datetime.combine(day, at) + timedelta(minutes=minutes)
        return naive.replace(tzinfo=self.zone).astimezone(UTC)

    def _blackouts(self) -> list[Slot]:
        return [
            Slot(self._local(d, time(0)), self._local(d + timedelta(days=1), time(0))) for d in self.blackout
        ]

    def slots(self, start: datetime, end: datetime) -> list[Slot]:
        """The windows overlapping [start, end): merged where they touch, blackouts cut out, in
        order. A window already open at ``start`` keeps its real start."""
        merged: list[Slot] = []
        for s in sorted(self._raw(start, end), key=lambda s: s.start):
            if merged and s.start <= merged[-1].end:
                if s.end > merged[-1].end:
                    merged[-1] = Slot(merged[-1].start, s.end)
            else:
                merged.append(s)
        for b in self._blackouts():
            cut: list[Slot] = []
            for s in merged:
                if b.end <= s.start or b.start >= s.end:
                    cut.append(s)
                    continue
                if s.start < b.start:
                    cut.append(Slot(s.start, b.start))
                if b.end < s.end:
                    cut.append(Slot(b.end, s.end))
            merged = cut
        return merged

    def current(self, now: datetime) -> Slot | None:
        """The window ``now`` is in, or ``None``."""
        return next((s for s in self.slots(now, now + timedelta(seconds=1)) if s.start <= now < s.end), None)

    def next_fitting(self, now: datetime, seconds: float, horizon: timedelta = HORIZON) -> Slot | None:
        """Where an interruption of ``seconds`` may start: ``now`` when the window ``now`` is in
        has that much left (the slot then starts at ``now``), else the first later window at least
        that long. ``None``: no window within ``horizon`` is long enough."""
        need = timedelta(seconds=max(0.0, seconds))
        for s in self.slots(now, now + horizon):
            begin = max(s.start, now)
            if s.end - begin >= need:
                return Slot(begin, s.end)
        return None

    def longest(self, now: datetime, horizon: timedelta = HORIZON) -> float:
        """Seconds of the longest window within ``horizon`` (for a message when none fits)."""
        return max((s.seconds for s in self.slots(now, now + horizon)), default=0.0)

    def local(self, moment: datetime) -> str:
        """``Sat 2026-12-05 01:00 CET``: a moment as the cluster's operators read it."""
        return moment.astimezone(self.zone).strftime("%a %Y-%m-%d %H:%M %Z")


def parse_windows(windows: Iterable[str], blackout: Iterable[str] = (), timezone: str = "UTC") -> Windows:
    """Read a cluster's ``windows``, ``blackout`` and ``timezone``; :class:`WindowError` names
    the first one that cannot be read and how to write it."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise WindowError(
            f"unknown time zone {timezone!r}: use an IANA name such as Europe/Paris or America/New_York"
        ) from None
    weekly: list[_Weekly] = []
    one_off: list[_OneOff] = []
    for text in windows:
        one = _ONE_OFF.match(text)
        if one:
            start = _clock(one[4], one[5], text, end=False)
            minutes = _span(start, _clock(one[6], one[7], text, end=True))
            at = time(start // 60, start % 60)
            one_off.append(_OneOff(_day(one[1], one[2], one[3], text), at, minutes, text.strip()))
            continue
        week = _WEEKLY.match(text)
        if week and week[1].lower() in DAYS:
            start = _clock(week[2], week[3], text, end=False)
            minutes = _span(start, _clock(week[4], week[5], text, end=True))
            weekly.append(
                _Weekly(DAYS.index(week[1].lower()), time(start // 60, start % 60), minutes, text.strip())
            )
            continue
        raise WindowError(
            f'{text!r} is not a change window: write a weekly one as "Sat 01:00-05:00" (Mon to Sun, '
            'local time) or a one-off as "2026-12-24 22:00-23:30"'
        )
    days: list[date] = []
    for text in blackout:
        m = _DATE.match(text)
        if not m:
            raise WindowError(f'{text!r} is not a blackout date: write it YYYY-MM-DD, e.g. "2026-12-25"')
        days.append(_day(m[1], m[2], m[3], text))
    return Windows(zone, tuple(weekly), tuple(one_off), tuple(sorted(days)))


def human(seconds: float) -> str:
    """``2h05m``, ``42m``, ``30s``: an estimate or a wait as an operator reads it."""
    whole = max(0, round(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m" if minutes else f"{secs}s"
