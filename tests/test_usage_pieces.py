"""How GET /v1/usage cuts a range into pieces (store/usage.py): their signed sum is exactly the
range at every moment, each rollup piece is whole hours or days, and the raw events read at
each end are at most half an hour (half a day grouped by run) unless the range itself is
shorter. tests/test_scale_rollups.py checks the answers against the events on both databases."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings, strategies as st

from tollmeter.store.usage import pieces

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
