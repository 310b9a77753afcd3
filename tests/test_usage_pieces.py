"""How GET /v1/usage cuts a range into pieces (store/usage.py): their signed sum is exactly the
range at every moment, each rollup piece is whole hours or days, and the raw events read at
each end are at most half an hour (half a day grouped by run) unless the range itself is
shorter. tests/test_scale_rollups.py checks the answers against the events on both databases."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings, strategies as st

from tollmeter.store.usage import cut, pieces, plan

UTC = timezone.utc
BASE = datetime(2026, 3, 1, tzinfo=UTC)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)

moment_st = st.one_of(
    st.integers(0, 5 * 86_400 * 1_000_000).map(lambda us: BASE + timedelta(microseconds=us)),
    st.integers(0, 5 * 24 * 4).map(lambda q: BASE + q * timedelta(minutes=15)),  # on and near hours, midnights
    st.integers(0, 5 * 24).map(lambda h: BASE + h * HOUR + timedelta(minutes=30)),  # ties
)


def covered(parts, moment: datetime) -> int:
    return sum(sign for _, sign, lo, hi in parts if (lo is None or lo <= moment) and (hi is None or moment < hi))


def probes(*moments: datetime | None) -> list[datetime]:
    out = []
    for m in moments:
        if m is None:
            continue
        base = m.replace(minute=0, second=0, microsecond=0)
        for step in (-HOUR, timedelta(0), HOUR):
            out.append(base + step)
        out += [m - timedelta(microseconds=1), m, m + timedelta(microseconds=1), m.replace(hour=0, minute=0,
                                                                                            second=0, microsecond=0)]
    return out


@settings(max_examples=3000, deadline=None)
@given(since=st.one_of(st.none(), moment_st), until=st.one_of(st.none(), moment_st), hours=st.booleans(),
       extra=st.lists(moment_st, max_size=8))
def test_the_signed_pieces_are_exactly_the_range(since, until, hours, extra):
    parts = pieces(since, until, hours=hours)
    for moment in probes(since, until, *extra) + [BASE - 400 * DAY, BASE + 400 * DAY]:
        inside = (since is None or since <= moment) and (until is None or moment < until)
        assert covered(parts, moment) == int(inside), (moment, parts)
    for source, sign, lo, hi in parts:
        assert sign in (1, -1)
        assert lo is None or hi is None or lo < hi
        if source == "raw":
            whole = parts == [("raw", 1, since, until)]
            assert whole or hi - lo <= (HOUR if hours else DAY) / 2, parts
        else:
            unit = HOUR if source == "hourly" else DAY
            for edge in (lo, hi):
                assert edge is None or (edge - BASE) % unit == timedelta(0), parts
            assert source in (("hourly", "daily") if hours else ("rundays",))


def test_a_month_from_7_past_midnight_to_3_to_midnight_reads_ten_minutes_of_events():
    since, until = datetime(2026, 11, 5, 0, 7, tzinfo=UTC), datetime(2026, 12, 4, 23, 57, tzinfo=UTC)
    assert pieces(since, until) == [
        ("raw", -1, datetime(2026, 11, 5, tzinfo=UTC), since),
        ("raw", -1, until, datetime(2026, 12, 5, tzinfo=UTC)),
        ("daily", 1, datetime(2026, 11, 5, tzinfo=UTC), datetime(2026, 12, 5, tzinfo=UTC)),
    ]


def test_a_short_range_reads_its_own_events():
    since = datetime(2026, 11, 5, 10, 20, tzinfo=UTC)
    assert pieces(since, since + timedelta(minutes=20)) == [("raw", 1, since, since + timedelta(minutes=20))]
    assert pieces(since, since) == []


MONDAY = datetime(2026, 3, 2, tzinfo=UTC)  # BASE is a Sunday
week_moment_st = st.one_of(
    st.integers(0, 30 * 86_400).map(lambda s: BASE + timedelta(seconds=s)),
    st.integers(0, 30).map(lambda d: BASE + d * DAY),  # midnights
    st.integers(0, 30 * 24).map(lambda h: BASE + h * HOUR),
)


@settings(max_examples=3000, deadline=None)
@given(since=st.one_of(st.none(), week_moment_st), until=st.one_of(st.none(), week_moment_st),
       extra=st.lists(week_moment_st, max_size=8), at=st.integers(0, 30).map(lambda d: BASE + d * DAY))
def test_with_weeks_the_signed_pieces_are_still_exactly_the_range_and_cut_anywhere(since, until, extra, at):
    parts = pieces(since, until, weeks=True)
    before, after = cut(parts, at)
    moments = probes(since, until, *extra, at) + [m + d * DAY for m in (since, until) if m for d in range(-8, 9)]
    for moment in moments + [BASE - 400 * DAY, BASE + 400 * DAY]:
        inside = (since is None or since <= moment) and (until is None or moment < until)
        assert covered(parts, moment) == int(inside), (moment, parts)
        assert covered(before, moment) == (int(inside) if moment < at else 0), (moment, before)
        assert covered(after, moment) == (int(inside) if moment >= at else 0), (moment, after)
    for part in parts + before + after:
        source, sign, lo, hi = part
        assert lo is None or hi is None or lo < hi
        if source == "weekly":
            assert all(edge is None or (edge - MONDAY) % (7 * DAY) == timedelta(0) for edge in (lo, hi)), part
        elif source == "daily":
            assert all(edge is None or (edge - BASE) % DAY == timedelta(0) for edge in (lo, hi)), part
    # days read at each end: at most four added, or two taken off a week read whole
    daily = [(sign, hi - lo) for source, sign, lo, hi in parts if source == "daily" and lo and hi]
    assert all(length <= (4 if sign > 0 else 2) * DAY or not any(s == "weekly" for s, *_ in parts)
               for sign, length in daily), parts


def test_a_month_by_model_reads_four_weeks_and_four_days_less_two_and_ten_minutes():
    since, until = datetime(2026, 11, 5, 0, 7, tzinfo=UTC), datetime(2026, 12, 4, 23, 57, tzinfo=UTC)
    midnight = lambda month, day: datetime(2026, month, day, tzinfo=UTC)  # noqa: E731
    assert pieces(since, until, weeks=True) == [
        ("raw", -1, midnight(11, 5), since),
        ("raw", -1, until, midnight(12, 5)),
        ("weekly", 1, midnight(11, 9), midnight(12, 7)),  # Monday Nov 9 to Sunday Dec 6
        ("daily", 1, midnight(11, 5), midnight(11, 9)),  # Thursday to Sunday
        ("daily", -1, midnight(12, 5), midnight(12, 7)),  # the last week's Saturday and Sunday off
    ]
    assert plan(["tenant_id"], since, until) == pieces(since, until)  # tenant_rollup's days
    assert plan(["day", "model"], since, until) == pieces(since, until)
    assert any(p[0] == "weekly" for p in plan(["tenant_id", "model"], since, until))
