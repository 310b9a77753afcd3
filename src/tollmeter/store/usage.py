"""GET /v1/usage's read: calls, tokens and cost over [since, until) grouped by event columns or
by day, from the rollups, so that its cost does not grow with the history.

A range is cut into pieces each source covers exactly (`pieces`): whole ISO weeks from
`usage_weekly` (a report not by day, nor by tenant alone), whole UTC days from `usage_daily` (or
`tenant_rollup`, `run_rollup`), whole hours from `usage_hourly`, and raw events only for the
minutes at each end outside a whole hour. Each end takes whichever side of
its hour is shorter: 00:07 reads the day whole less the events of its first 7 minutes, rather
than the 53 minutes after them. All pieces are added (or taken off) by the database in one
statement, so a report is one snapshot and one round trip, and Python sees only its groups.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Sequence, TypeVar

from sqlalchemy import Select, cast, func, literal_column, null, select, type_coerce, union_all
from sqlalchemy.types import Date, DateTime, NullType, Text
from sqlalchemy.engine import Connection

from . import schema

#: The event columns a report can group by (with "day").
GROUPS = ("tenant_id", "model", "provider", "agent_id", "run_id", "endpoint")
#: The groupings run_rollup answers for whole days.
RUN_GROUPS = frozenset({"run_id", "tenant_id", "day", "agent_id", "model"})

#: A piece: (source, sign, lo, hi) - source "raw" (events), "hourly", "daily", "weekly" or
#: "rundays" (whole days grouped by run: the runs' rows of run_rollup and the events of no
#: run); sign -1 takes the piece off.
Piece = tuple[str, int, "datetime | None", "datetime | None"]

#: The count columns of a rollup, in the order of its measures.
_COUNTS = tuple(m for m in schema.ROLLUP_MEASURES if m != "cost_usd")
#: 2^24: SQLite sums a count's high part (above 24 bits) and low part apart.
_LOW = 1 << 24
_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)
_WEEK = timedelta(days=7)
#: A week of which a range takes this many days or more is read whole, its other days taken off
#: (at most two: three reads, against five or more days).
_MOST_OF_A_WEEK = timedelta(days=5)
_ZERO = Decimal(0)


def report(conn: Connection, project: str, group_by: Sequence[str], since: datetime | None,
           until: datetime | None, tenant_id: str | None) -> list[dict[str, Any]]:
    """The rows of a usage report (UTC `since` and `until`), sorted by their keys, None last
    on PostgreSQL and first on SQLite (as each database's ORDER BY puts them)."""
    return ordered(summed(conn, project, group_by, plan(group_by, since, until), tenant_id), group_by,
                   conn.dialect.name)


def plan(group_by: Sequence[str], since: datetime | None, until: datetime | None) -> list[Piece]:
    """The pieces a report of `group_by` over [since, until) reads; ValueError for a group
    that is not one."""
    for name in group_by:
        if name != "day" and name not in GROUPS:
            raise ValueError(f"cannot group usage by {name!r}")
    if "run_id" not in group_by:
        # by day: days at least; by tenant alone (or nothing), `tenant_rollup`'s days have a
        # row per tenant where a week of `usage_weekly` has one per tenant, agent, model...
        return pieces(since, until, weeks="day" not in group_by and not set(group_by) <= {"tenant_id"})
    if set(group_by) <= RUN_GROUPS:
        return pieces(since, until, hours=False)  # whole days from run_rollup
    return [("raw", 1, since, until)] if since is None or until is None or since < until else []


#: Sums by group key: [calls, input, output, cache read, cost, unpriced, errors].
Sums = dict[tuple[Any, ...], list[Any]]


def summed(conn: Connection, project: str, group_by: Sequence[str], parts: list[Piece],
           tenant_id: str | None) -> Sums:
    """The pieces' signed sums by group key (in one statement), groups whose calls add up to 0
    left out (only in pieces taken off)."""
    n = len(group_by)
    dialect = conn.dialect.name
    rows = conn.execute(_union(dialect, project, group_by, parts, tenant_id)).all() if parts else []
    merged = {}
    if dialect == "postgresql":  # the cost, then the counts as text (see `_union`)
        for row in rows:
            c0, c1, c2, c3, c4, c5 = row[n + 1:]
            merged[row[:n]] = [int(c0), int(c1), int(c2), int(c3), row[n], int(c4), int(c5)]
        return merged
    for row in rows:
        counts = [int(v) if v else 0 for v in row[n + 2:]]
        if dialect == "sqlite":  # high and low parts (below)
            counts = [high * _LOW + low for high, low in zip(counts[::2], counts[1::2])]
        plus, minus = row[n], row[n + 1]
        cost = (_money(plus) if plus is not None else _ZERO) - (_money(minus) if minus is not None else _ZERO)
        merged[tuple(row[:n])] = [*counts[:4], cost, *counts[4:]]
    return merged


def added(*parts: Sums) -> Sums:
    """The sums of pieces read apart, added up as one statement would have (new lists: the
    parts are left as they were)."""
    out: Sums = {}
    for part in parts:
        for key, values in part.items():
            into = out.get(key)
            out[key] = list(values) if into is None else [a + b for a, b in zip(into, values)]
    return {key: values for key, values in out.items() if values[0] or not key}


def ordered(merged: Sums, group_by: Sequence[str], dialect: str) -> list[dict[str, Any]]:
    """A report's rows from its sums, sorted by their keys (None last on PostgreSQL)."""
    n = len(group_by)
    if not group_by and not merged:
        merged = {(): [0, 0, 0, 0, _ZERO, 0, 0]}
    nulls_last = dialect == "postgresql"
    if n == 1:  # (a report by run has thousands of rows): the keys of text sorted as they are
        keys = sorted(key for key in merged if key[0] is not None)
        if (None,) in merged:
            keys.insert(len(keys) if nulls_last else 0, (None,))
    elif any(None in key for key in merged):
        keys = sorted(merged, key=_order(n, nulls_last))
    else:  # no None to place: the keys' own order
        keys = sorted(merged)
    out = []
    for key in keys:
        row = {group_by[0]: key[0]} if n == 1 else dict(zip(group_by, key))
        # schema.ROLLUP_MEASURES, set one by one: a third of the time of dict(zip(...)) a row
        (row["calls"], row["input_tokens"], row["output_tokens"], row["cache_read_tokens"], row["cost_usd"],
         row["unpriced"], row["errors"]) = merged[key]
        out.append(row)
    return out


def cut(parts: list[Piece], at: datetime) -> tuple[list[Piece], list[Piece]]:
    """The pieces before the UTC midnight `at` and those after it, a piece across it cut in
    two there (every source covers whole days: a midnight is a bound of each)."""
    before: list[Piece] = []
    after: list[Piece] = []
    for source, sign, lo, hi in parts:
        if hi is not None and hi <= at:
            before.append((source, sign, lo, hi))
        elif lo is not None and lo >= at:
            after.append((source, sign, lo, hi))
        elif source == "weekly" and at != week_of(at):  # inside a week: its days on each side
            monday = week_of(at)
            before += _nonempty([("weekly", sign, lo, monday), ("daily", sign, monday, at)])
            after += _nonempty([("daily", sign, at, monday + _WEEK), ("weekly", sign, monday + _WEEK, hi)])
        else:
            before.append((source, sign, lo, at))
            after.append((source, sign, at, hi))
    return before, after


def _nonempty(parts: list[Piece]) -> list[Piece]:
    return [p for p in parts if p[2] is None or p[3] is None or p[2] < p[3]]


def _order(width: int, nulls_last: bool) -> Any:
    """A sort key for group keys of `width` values (text or None)."""
    if width == 1:
        return lambda key: ((key[0] is None) == nulls_last, key[0] or "")
    return lambda key: tuple(((v is None) == nulls_last, v or "") for v in key)


def pieces(since: datetime | None, until: datetime | None, hours: bool = True, weeks: bool = False) -> list[Piece]:
    """[since, until) as pieces whose signed sum is exactly that range: raw events for the
    minutes outside a whole hour at each end (added after the end, or taken off before it,
    whichever is shorter), hours outside a whole day, whole days between (`hours=False`: raw
    events for everything outside a whole day, again from the nearer midnight), and with
    `weeks`, whole ISO weeks between those days (`_by_weeks`). Where a range takes most of a
    day's hours, the day is read whole and the hours it leaves out taken off: fewer rollup
    rows than the hours it keeps."""
    if since is not None and until is not None and until <= since:
        return []
    unit = _HOUR if hours else _DAY
    out: list[Piece] = []
    first = _nearer(since, unit) if since is not None else None  # where the rollups start
    last = _nearer(until, unit) if until is not None else None  # and end
    if first is not None and last is not None and (
            first >= last or abs(since - first) + abs(until - last) >= until - since):
        return [("raw", 1, since, until)]  # the range's own events are fewer
    if since is not None and since != first:
        out.append(("raw", 1, since, first) if since < first else ("raw", -1, first, since))
    if until is not None and until != last:
        out.append(("raw", 1, last, until) if last < until else ("raw", -1, until, last))
    if not hours:
        out.append(("rundays", 1, first, last))
        return out
    d1 = _ceil(first, _DAY) if first is not None else None
    d2 = _floor(last, _DAY) if last is not None else None
    if first is not None and last is not None and d1 >= d2:  # no whole day inside: hours alone
        out.append(("hourly", 1, first, last))
        return out
    if first is not None and first != d1:
        if d1 - first > _DAY / 2:  # most of the day: the whole day less its first hours
            out += [("daily", 1, d1 - _DAY, d1), ("hourly", -1, d1 - _DAY, first)]
        else:
            out.append(("hourly", 1, first, d1))
    out += _by_weeks(d1, d2) if weeks else [("daily", 1, d1, d2)]
    if last is not None and last != d2:
        if last - d2 > _DAY / 2:  # most of the day: the whole day less its last hours
            out += [("daily", 1, d2, d2 + _DAY), ("hourly", -1, last, d2 + _DAY)]
        else:
            out.append(("hourly", 1, d2, last))
    return [p for p in out if p[2] is None or p[3] is None or p[2] < p[3]]


def _by_weeks(lo: datetime | None, hi: datetime | None) -> list[Piece]:
    """The whole days [lo, hi) as whole ISO weeks and the days outside one at each end; a week
    the range takes most of (`_MOST_OF_A_WEEK`) is read whole and its other days taken off."""
    start = end = None
    if lo is not None:
        monday = week_of(lo)
        start = lo if lo == monday else monday if monday + _WEEK - lo >= _MOST_OF_A_WEEK else monday + _WEEK
    if hi is not None:
        monday = week_of(hi)
        end = hi if hi == monday else monday + _WEEK if hi - monday >= _MOST_OF_A_WEEK else monday
    if start is not None and end is not None and start >= end:  # no week to read
        return [("daily", 1, lo, hi)]
    out: list[Piece] = [("weekly", 1, start, end)]
    if lo is not None and lo != start:
        out.append(("daily", 1, lo, start) if lo < start else ("daily", -1, start, lo))
    if hi is not None and hi != end:
        out.append(("daily", 1, end, hi) if end < hi else ("daily", -1, hi, end))
    return out


#: A day, or a UTC midnight.
Day = TypeVar("Day", bound=date)


def week_of(day: Day) -> Day:
    """The Monday of `day`'s ISO week (`usage_weekly`'s key for it), or its midnight."""
    return day - timedelta(days=day.weekday())


def whole_weeks(first: date, end: date) -> tuple[date, date] | None:
    """The whole ISO weeks inside the days [first, end): (the first's Monday, the Monday after
    the last), or None for none."""
    monday = week_of(first + timedelta(days=6))
    last_monday = week_of(end)
    return (monday, last_monday) if monday < last_monday else None


def week_sql(dialect: str, day: Any) -> Any:
    """`week_of` in SQL, of a date column."""
    if dialect == "sqlite":
        return func.date(day, "-6 days", "weekday 1")  # back six days, then on to a Monday
    return cast(func.date_trunc("week", cast(day, DateTime)), Date)


def raw_measures() -> list[Any]:
    """The measures of raw events, summed."""
    e = schema.events
    return [
        func.count().label("calls"),
        func.coalesce(schema.count_sum(e.c.input_tokens), 0).label("input_tokens"),
        func.coalesce(schema.count_sum(e.c.output_tokens), 0).label("output_tokens"),
        func.coalesce(schema.count_sum(e.c.cache_read_tokens), 0).label("cache_read_tokens"),
        schema.money_sum(e.c.cost_usd).label("cost_usd"),
        func.sum(cast(~e.c.priced, schema.Integer)).label("unpriced"),
        func.sum(cast(e.c.error.is_not(None), schema.Integer)).label("errors"),
    ]


def period_text(dialect: str, column: Any, unit: str) -> Any:
    """A time or day column as text: "YYYY-MM-DD" (unit "day") or "YYYY-MM-DD HH" ("hour")."""
    if dialect == "sqlite":
        return func.substr(func.cast(column, schema.String), 1, 10 if unit == "day" else 13)
    return func.to_char(column, "YYYY-MM-DD" if unit == "day" else "YYYY-MM-DD HH24")


def _union(dialect: str, project: str, group_by: Sequence[str], parts: list[Piece], tenant_id: str | None) -> Select:
    """One statement: every piece, signed, added up by the groups of `group_by`. Grouped by
    a key with as many values as rows (tenant, run), the pieces' rows go to one aggregation
    as they are (grouping each piece first, then the union again, hashed most rows twice);
    by keys of few values (model, day, agent...), each piece is grouped first, which leaves
    the union a few rows. A group whose calls add up to 0 was only in pieces taken off
    (every row of a rollup is a call)."""
    grouped = not {"tenant_id", "run_id"} & set(group_by)
    selects = []
    for source, sign, lo, hi in parts:
        if source == "rundays":  # runs' rows, plus the events of no run: all events less the runs'
            selects += [_piece(dialect, project, "runs", 1, group_by, lo, hi, tenant_id, grouped),
                        _piece(dialect, project, "days", 1, group_by, lo, hi, tenant_id, grouped),
                        _piece(dialect, project, "run_days", -1, group_by, lo, hi, tenant_id, grouped)]
        else:
            selects.append(_piece(dialect, project, source, sign, group_by, lo, hi, tenant_id, grouped))
    u = (union_all(*selects) if len(selects) > 1 else selects[0]).subquery("pieces")
    keys = [u.c[f"k{i}"] for i in range(len(group_by))]
    counts = [c.name for c in u.c if c.name.startswith("n_")]
    if dialect == "postgresql":
        # the cost as one NUMERIC (a Decimal), and each count's NUMERIC sum as text: the driver
        # makes a Decimal of a NUMERIC at about 0.35 µs a value, text at about 0.05, and
        # `summed`'s int() of text costs less than of a Decimal (a report by run has thousands
        # of rows); exact at any size, where a BIGINT would overflow past 2^63 - 1
        measures = [type_coerce(func.coalesce(func.sum(u.c.cost_plus), _ZERO)
                                - func.coalesce(func.sum(u.c.cost_minus), _ZERO), NullType()),
                    *(type_coerce(cast(func.coalesce(func.sum(u.c[name]), 0), Text), NullType())
                      for name in counts)]
    else:
        # as the database gives them (SQLite's decimal text; counts as numbers): made Decimals
        # and ints once, in `summed`
        measures = [type_coerce(schema.money_sum(u.c.cost_plus), NullType()),
                    type_coerce(schema.money_sum(u.c.cost_minus), NullType()),
                    *(type_coerce(func.sum(u.c[name]), NullType()) for name in counts)]
    query = select(*keys, *measures)
    if keys:
        calls = func.sum(u.c.n_0) * _LOW + func.sum(u.c.n_1) if dialect == "sqlite" else func.sum(u.c.n_0)
        query = query.group_by(*keys).having(calls != 0)
    return query


def _piece(dialect: str, project: str, source: str, sign: int, group_by: Sequence[str], lo: datetime | None,
           hi: datetime | None, tenant_id: str | None, grouped: bool) -> Select:
    """The usage of one source over [lo, hi), grouped (or its rows, when not `grouped`), its
    measures signed, its cost in `cost_plus` or `cost_minus` (money is summed apart: SQLite's
    is decimal text), its keys k0, k1, ... with a rollup's "" (none) as NULL, as in the raw
    events."""
    raw = source == "raw"
    if raw:
        t = schema.events
        period, low, high = t.c.timestamp, lo, hi
        cost = schema.money_sum(t.c.cost_usd) if grouped else t.c.cost_usd
        counts = [literal_column("1"), *(func.coalesce(t.c[m], 0) for m in ("input_tokens", "output_tokens",
                                                                   "cache_read_tokens")),
                  cast(~t.c.priced, schema.Integer), cast(t.c.error.is_not(None), schema.Integer)]
    else:
        t = {"hourly": schema.usage_hourly, "daily": schema.usage_daily, "weekly": schema.usage_weekly,
             "runs": schema.run_rollup, "days": schema.usage_rollup, "run_days": schema.run_usage_rollup}[source]
        if source == "daily" and set(group_by) <= {"tenant_id", "day"}:
            t = schema.tenant_rollup  # the same sums, a row per tenant and day
        period = t.c.hour if source == "hourly" else t.c.week if source == "weekly" else t.c.day
        low = lo if source == "hourly" or lo is None else lo.date()
        high = hi if source == "hourly" or hi is None else hi.date()
        cost = schema.money_sum(t.c.cost_usd) if grouped else t.c.cost_usd
        counts = [t.c[m] for m in _COUNTS]
    keys: list[Any] = []  # every key, labelled in the select
    kept: list[Any] = []  # those grouped by (not the NULLs)
    for name in group_by:
        if name not in t.c and name != "day":  # run_id of the rollups without runs: the events of no run
            keys.append(null())
            continue
        if name == "day":
            keys.append(period_text(dialect, period, "day"))
        else:
            keys.append(t.c[name] if raw else func.nullif(t.c[name], schema.NONE_KEY))
        kept.append(keys[-1])
    nothing = cast(null(), schema.Money)
    plus, minus = (cost, nothing) if sign > 0 else (nothing, cost)
    query = select(*(k.label(f"k{i}") for i, k in enumerate(keys)), plus.label("cost_plus"),
                   minus.label("cost_minus"), *_counts(dialect, counts, sign, grouped)).where(
        t.c.project_id == project)
    if low is not None:
        query = query.where(period >= low)
    if high is not None:
        query = query.where(period < high)
    if tenant_id is not None:
        query = query.where(t.c.tenant_id == (tenant_id if raw else tenant_id or schema.NONE_KEY))
    return query.group_by(*kept) if grouped and kept else query


def _counts(dialect: str, counts: list[Any], sign: int, grouped: bool) -> list[Any]:
    """The count columns (in `_COUNTS` order), summed when `grouped` (else the outer query
    sums them), negated when `sign` is -1, labelled n_0, n_1, ... PostgreSQL's SUM of
    integers is NUMERIC: exact at any size. SQLite's sum() raises past 2^63 - 1, so there each
    count is summed as its high and its low 24 bits, each sum far inside 64 bits, and `report`
    puts them together in Python: exact at any size."""
    if dialect == "sqlite":
        parts = [part for c in counts for part in (c.op(">>")(24), c.op("&")(_LOW - 1))]
    else:
        parts = counts
    if grouped:
        parts = [func.sum(p) for p in parts]
    return [(p if sign > 0 else -p).label(f"n_{i}") for i, p in enumerate(parts)]


def _money(value: Any) -> Decimal:
    return value if value.__class__ is Decimal else Decimal(str(value))


def _nearer(moment: datetime, unit: timedelta) -> datetime:
    """The boundary of `unit` (hour or day) nearer to `moment` (the earlier one on a tie)."""
    floor = _floor(moment, unit)
    return floor if moment - floor <= unit / 2 else floor + unit


def _floor(moment: datetime, unit: timedelta) -> datetime:
    moment = moment.replace(minute=0, second=0, microsecond=0)
    return moment if unit == _HOUR else moment.replace(hour=0)


def _ceil(moment: datetime, unit: timedelta) -> datetime:
    floor = _floor(moment, unit)
    return floor if floor == moment else floor + unit

