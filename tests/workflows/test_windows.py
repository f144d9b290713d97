"""Change windows in the cluster's time zone: weekly, one-off, blackout dates, daylight saving."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from workflows.windows import WindowError, human, parse_windows

PARIS = ZoneInfo("Europe/Paris")


def paris(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=PARIS).astimezone(UTC)


WEEKEND = parse_windows(["Sat 01:00-05:00", "Sun 02:00-04:00"], timezone="Europe/Paris")
FRIDAY = paris(2026, 12, 4, 10)  # a Friday


def test_weekly_windows_are_local_times_in_the_cluster_zone() -> None:
    slots = WEEKEND.slots(FRIDAY, FRIDAY + timedelta(days=3))
    assert [(s.start, s.end) for s in slots] == [
        (paris(2026, 12, 5, 1), paris(2026, 12, 5, 5)),
        (paris(2026, 12, 6, 2), paris(2026, 12, 6, 4)),
    ]
    # Paris is UTC+1 in December: 01:00 there is midnight UTC.
    assert slots[0].start == datetime(2026, 12, 5, 0, 0, tzinfo=UTC)


def test_outside_a_window_the_next_one_long_enough_is_chosen() -> None:
    assert WEEKEND.current(FRIDAY) is None
    three_hours = WEEKEND.next_fitting(FRIDAY, 3 * 3600)
    assert three_hours is not None and three_hours.start == paris(2026, 12, 5, 1)
    # Too long for Sunday's two hours, and for Saturday's four: none within a year.
    assert WEEKEND.next_fitting(FRIDAY, 5 * 3600) is None
    assert WEEKEND.longest(FRIDAY) == 4 * 3600


def test_inside_a_window_only_what_is_left_counts() -> None:
    at = paris(2026, 12, 5, 3, 30)
    assert WEEKEND.current(at) is not None
    now = WEEKEND.next_fitting(at, 3600)
    assert now is not None and now.start == at and now.end == paris(2026, 12, 5, 5)
    # Two hours no longer fit in Saturday's last ninety minutes; Sunday's two hours do.
    later = WEEKEND.next_fitting(at, 2 * 3600)
    assert later is not None and later.start == paris(2026, 12, 6, 2)


def test_a_window_past_midnight_one_offs_and_merging() -> None:
    w = parse_windows(
        ["Sat 23:00-02:00", "Sun 02:00-03:00", "2026-12-24 22:00-23:30", "Tue 20:00-24:00"],
        timezone="Europe/Paris",
    )
    slots = w.slots(FRIDAY, FRIDAY + timedelta(days=21))
    assert (paris(2026, 12, 5, 23), paris(2026, 12, 6, 3)) == (slots[0].start, slots[0].end)
    assert (paris(2026, 12, 8, 20), paris(2026, 12, 9, 0)) == (slots[1].start, slots[1].end)
    assert any(s.start == paris(2026, 12, 24, 22) and s.end == paris(2026, 12, 24, 23, 30) for s in slots)


def test_blackout_dates_cut_windows_out_even_across_midnight() -> None:
    w = parse_windows(["Sat 23:00-02:00"], ["2026-12-06"], "Europe/Paris")
    first = w.slots(FRIDAY, FRIDAY + timedelta(days=2))
    # Saturday 23:00 to midnight stays; the blackout Sunday takes the rest.
    assert [(s.start, s.end) for s in first] == [(paris(2026, 12, 5, 23), paris(2026, 12, 6, 0))]
    fit = w.next_fitting(FRIDAY, 2 * 3600)
    assert fit is not None and fit.start == paris(2026, 12, 12, 23)
    blocked = parse_windows([], ["2026-12-04"], "Europe/Paris")
    assert blocked.current(FRIDAY) is None
    after = blocked.next_fitting(FRIDAY, 60)
    assert after is not None and after.start == paris(2026, 12, 5)


def test_daylight_saving_nights_are_shorter_or_longer() -> None:
    w = parse_windows(["Sun 01:00-05:00"], timezone="Europe/Paris")
    spring = w.slots(paris(2026, 3, 28), paris(2026, 3, 30))[0]
    autumn = w.slots(paris(2026, 10, 24), paris(2026, 10, 26))[0]
    assert spring.seconds == 3 * 3600 and autumn.seconds == 5 * 3600


def test_no_window_means_any_time() -> None:
    w = parse_windows([], timezone="UTC")
    assert w.always and not w.configured
    slot = w.next_fitting(FRIDAY, 10 * 3600)
    assert slot is not None and slot.start == FRIDAY


@pytest.mark.parametrize(
    ("windows", "blackout", "zone", "words"),
    [
        (["Sat 1-5"], [], "UTC", "not a change window"),
        (["Sat 25:00-26:00"], [], "UTC", "not a time of day"),
        (["Caturday 01:00-02:00"], [], "UTC", "not a change window"),
        (["2026-02-30 01:00-02:00"], [], "UTC", "not a date"),
        ([], ["25/12/2026"], "UTC", "not a blackout date"),
        ([], [], "Mars/Olympus", "unknown time zone"),
    ],
)
def test_what_cannot_be_read_is_refused_with_the_way_to_write_it(
    windows: list[str], blackout: list[str], zone: str, words: str
) -> None:
    with pytest.raises(WindowError, match=words):
        parse_windows(windows, blackout, zone)


def test_human_durations() -> None:
    assert [human(s) for s in (30, 42 * 60, 7500, 2 * 86400 + 3600)] == ["30s", "42m", "2h05m", "2d01h"]
