"""Closed days' figures kept between reports, so that a report of the month to date reads the
database for the days that can still change and not for the month again: margin rows per
closed day (`daily`), what the leak rules make of the closed days (`by_tenant`: the customers'
running figures; `revised`: the runs' flags), a margin report's closed days (`margin_kept`:
what `Ledger.margin` answers, for the API, CLI and dashboard), and a usage report's pieces over
the closed days (`usage_kept`: GET /v1/usage, the dashboard). After a late event, what was kept
is made again for what it touched: its day's rows (and its month's later days'), the customers
whose rows changed, the runs active that day, a margin report's last two settled days when it
fell on one of them (by period; a report without a period reads those days each time).

The leak rules read a margin by tenant and day over the month and the spike window before it,
and one by agent and day of the runs' part: at a month's end forty-odd days of a thousand
customers, the same rows report after report but for today's. A day's rows are kept once it
is settled (it ended `revisions.SETTLED_AFTER` ago) and before the report's own day, keyed by
the revisions of its month's days up to it (`day_revisions`: a write to a closed day marks it;
a day's revenue may depend on the runs resolved earlier in its month, so each earlier day's
mark counts too) and used while those and the plans are unchanged. Kept per database engine
(a store file opened again is another engine: nothing is carried over) and project, in this
process; each replica keeps its own.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

from ..store import revisions, usage
from ..store.ledger import Ledger
from .margin import MarginReport, MarginRow, joined, margin
from .revenue import PlanBook, days, month_start

if TYPE_CHECKING:
    from ..store.store import Store

T = TypeVar("T")
#: Kept days more than this many days before a report's first day are dropped.
_KEEP_BEFORE = 62
#: Projects kept per engine, the least recently asked forgotten first (at the end of a month of
#: 1,000 customers and half a million runs, a project's figures take about 24 MB).
PROJECTS = 8
#: Rows of margin and usage reports kept per project, the least recently asked reports forgotten
#: first; a larger report is not kept (a row takes about 0.64 KB, tracemalloc: 40,000 are 25 MB).
_REPORT_ROWS = 40_000
#: The last settled days a kept margin report keeps apart from the days before them, by period
#: (a late event on one of them makes only those again), or does not keep, as a kept usage
#: report (a late event on one of them makes nothing again).
_RECENT_DAYS = 2
#: Margin and usage reports known per project (asked once, or kept), the least recently asked
#: forgotten first.
_REPORTS = 256


@dataclass
class _Kept:
    """What is kept of one grouping (or one part) of one project: day -> (its key, its rows),
    or for its parts, by slot, each one's key and what it was (a margin report keeps two)."""

    book: PlanBook | None = None
    days: dict[date, tuple[tuple[Any, ...], list[MarginRow]]] = field(default_factory=dict)
    parts: dict[Any, tuple[tuple[Any, ...], Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Rows of the margin or usage reports kept in `parts`, by slot (none for anything else).
    sizes: dict[Any, int] = field(default_factory=dict)
    #: A report asked before: kept from its second time on (split in two, a report costs about
    #: half as much again as one made in one pass).
    asked: bool = False

    def same_book(self, book: PlanBook) -> None:
        """Forget everything kept under other plans (under the lock)."""
        if self.book is not book and (self.book is None or not _same_plans(self.book, book)):
            self.days.clear()
            self.parts.clear()
            self.sizes.clear()
        self.book = book

    @property
    def rows(self) -> int:
        return sum(self.sizes.values())


#: engine -> project -> what is kept of it, by name.
_kept: weakref.WeakKeyDictionary[Any, dict[str, dict[Any, _Kept]]] = weakref.WeakKeyDictionary()
_kept_lock = threading.Lock()


def daily(ledger: Ledger, groups: tuple[str, ...], first: date, end: date, today: date, book: PlanBook, *,
          runs_only: bool = False) -> MarginReport:
    """`margin(ledger, (*groups, "day"), first, end, runs_only=runs_only, book=book)`, its rows
    of the closed days before `today` from what was kept where it still holds."""
    found = daily_rows(ledger, groups, first, end, today, book, runs_only=runs_only)
    report = MarginReport((*groups, "day"), first, end)
    report.rows = [row for day in days(first, end) for row in found[day]]
    return report


def daily_rows(ledger: Ledger, groups: tuple[str, ...], first: date, end: date, today: date, book: PlanBook, *,
               runs_only: bool = False) -> dict[date, list[MarginRow]]:
    """`daily`'s rows, day by day (first <= day < end): a closed day's list is the very one kept
    while it holds (a list not seen before is a day read again)."""
    by = (*groups, "day")
    kept = _of(ledger, (by, runs_only))
    marks = ledger.day_revisions(month_start(first), end)  # read before any row: a later mark is seen next time
    keys = _keys(marks, first, end)
    closed_end = min(today, revisions.settled_before())
    found: dict[date, list[MarginRow]] = {}
    with kept.lock:
        kept.same_book(book)
        for day in [d for d in kept.days if d < first - timedelta(days=_KEEP_BEFORE)]:
            del kept.days[day]
        for day in days(first, min(end, closed_end)):
            held = kept.days.get(day)
            if held is not None and held[0] == keys[day]:
                found[day] = held[1]
    for since, until in spans([day for day in days(first, end) if day not in found]):
        made: dict[date, list[MarginRow]] = {day: [] for day in days(since, until)}
        for row in margin(ledger, by, since=since, until=until, runs_only=runs_only, book=book).rows:
            made[date.fromisoformat(row.key["day"])].append(row)
        found.update(made)
        with kept.lock:
            if kept.book is book:
                for day, rows in made.items():
                    if day < closed_end:
                        kept.days[day] = (keys[day], rows)
    return found


def split_day(first: date, end: date, today: date) -> date:
    """The first day of [first, end) that is not closed: not settled yet, or `today`."""
    return max(first, min(end, today, revisions.settled_before()))


def by_tenant(ledger: Ledger, name: Any, first: date, end: date, today: date, book: PlanBook,
              fold: Callable[[list[MarginRow], date], dict[Any, T]], *, inputs: Any = None
              ) -> tuple[dict[Any, T] | None, date]:
    """`fold(rows, split)` of the margin rows by tenant and day (`daily_rows`) of the closed days
    [first, split) of [first, end) (`split`: the first day not settled, or `today`), kept under `name` while the plans and
    `inputs` are the same: when some of those days' rows are read again (a day marked again),
    only the customers whose rows changed are folded again (a late event, a resolution: a few
    customers), the others' figures kept. So `fold` must make each customer's figures from its
    own rows alone, and give none for a customer without rows. (what it made or kept, split);
    None when no day of the range is closed yet."""
    split = split_day(first, end, today)
    if split == first:
        return None, split
    found = daily_rows(ledger, ("tenant",), first, split, today, book)
    kept = _of(ledger, name)
    key = (first, split, inputs)
    with kept.lock:
        kept.same_book(book)
        held = kept.parts.get(None)
    if held is not None and held[0][0] == key:
        was, figures = held[0][1], held[1]
        changed: set[Any] = set()
        for day, rows in found.items():
            if was.get(day) is not rows:
                changed |= _changed_tenants(was.get(day, []), rows)
        if changed:
            again = fold([row for rows in found.values() for row in rows if row.key["tenant"] in changed], split)
            figures = {tenant: value for tenant, value in figures.items() if tenant not in changed} | again
    else:
        figures = fold([row for rows in found.values() for row in rows], split)
    with kept.lock:
        if kept.book is book:
            kept.parts[None] = ((key, found), figures)
    return figures, split


def revised(ledger: Ledger, name: Any, first: date, end: date, today: date, book: PlanBook,
            make: Callable[[date, date], T], again: Callable[[T, date, list[date]], T]) -> tuple[T | None, date]:
    """`make(first, split)` for the closed days [first, split) of [first, end) (`split` as in
    `by_tenant`), for what reads any day, whichever its range (a run's cost to date): kept under
    `name` with the marks of every day, while the plans are unchanged. When some days were
    marked since (not every day at once), `again(kept, split, those days)` makes it anew from
    what was kept. (what it made or kept, split); None when no day of the range is closed yet."""
    split = split_day(first, end, today)
    if split == first:
        return None, split
    marks = ledger.day_revisions(revisions.EVERY_DAY, date.max)  # read before it is made: a later mark is seen next time
    kept = _of(ledger, name)
    with kept.lock:
        kept.same_book(book)
        held = kept.parts.get(None)
    if held is not None and held[0][:2] == (first, split):
        was = held[0][2]
        changed = sorted(day for day in was.keys() | marks.keys() if was.get(day) != marks.get(day))
        if not changed:
            return held[1], split
        made = (make(first, split) if revisions.EVERY_DAY in changed else again(held[1], split, changed))
    else:
        made = make(first, split)
    with kept.lock:
        if kept.book is book:
            kept.parts[None] = ((first, split, marks), made)
    return made, split


def _kept_part(ledger: Ledger, name: Any, key: tuple[Any, ...], make: Callable[[], T],
               size: Callable[[T], int] | None, book: PlanBook | None = None, slot: Any = None, *,
               budget: bool = True) -> T:
    """What is kept under `name` and `slot` while its `key` (and `book`, the plans, when given)
    is the same, else `make()`, kept: one part per name and slot; a report of `size` rows
    within `_REPORT_ROWS` per project (`budget=False`: the caller keeps it so once it has kept
    all of a report's parts: a report too large evicts no other on its way)."""
    kept = _of(ledger, name)
    with kept.lock:
        if book is not None:
            kept.same_book(book)
        held = kept.parts.get(slot)
        if held is not None and held[0] == key:
            return held[1]
    made = make()
    rows = size(made) if size is not None else 0
    with kept.lock:
        if kept.rows - kept.sizes.get(slot, 0) + rows > _REPORT_ROWS:  # a report larger than that keeps nothing
            kept.parts.clear()
            kept.sizes.clear()
            return made
        if book is None or kept.book is book:
            kept.parts[slot], kept.sizes[slot] = (key, made), rows
    if rows and budget:
        _within_budget(ledger)
    return made


def _asked_before(ledger: Ledger, name: Any) -> bool:
    """Whether a report named `name` was asked before (in this process): a report is kept from
    its second time on, the first made in one pass (a command's one report)."""
    kept = _of(ledger, name)
    asked, kept.asked = kept.asked, True
    return asked


def margin_kept(ledger: Ledger, groups: tuple[str, ...], first: date, end: date, tenant_id: str | None = None,
                book: PlanBook | None = None) -> MarginReport:
    """`margin(ledger, groups, first, end, tenant_id)`, its settled days kept between reports
    (`_kept_part`: each part while no day up to its end is marked again and the plans are
    unchanged), the days after them read each time: a report of the month to date, asked again,
    reads today. The first report of a grouping is made in one pass and keeps nothing (a
    command's one report)."""
    if book is None:
        book = ledger.plan_book([tenant_id] if tenant_id is not None else None)

    def made(since: date, until: date) -> MarginReport:
        return margin(ledger, groups, since=since, until=until, tenant_id=tenant_id, book=book)

    name = ("margin", groups, tenant_id)
    if not _asked_before(ledger, name):
        return made(first, end)
    split = max(first, min(end, revisions.settled_before()))
    if split == first:
        return made(first, end)
    size: Callable[[MarginReport], int] = lambda report: len(report.rows)
    recent = max(first, split - timedelta(days=_RECENT_DAYS))
    if not any(g in ("day", "week", "month") for g in groups):
        # A row per group, not per day: the last settled days are read with the open ones (as
        # many rows as the open days' alone; a few days more for the database to sum), and
        # only the days before them are kept, so a late event on one of those (the usual late
        # event: the day before) makes nothing again.
        if recent == first:
            return made(first, end)
        key = (first, recent, ledger.day_revisions_total(recent))  # read first: a later mark is seen next time
        older = _kept_part(ledger, name, key, lambda: made(first, recent), size, book, "older")
        return joined(groups, first, end, older, made(recent, end))
    # By period: the settled days in two kept parts, the last `_RECENT_DAYS` apart, so that a
    # late event on one of those (the usual late event: the day before) makes only them again;
    # and the two joined, kept too (a report joins it with the days after, as with one part).
    # read before they are made: a mark made meanwhile is seen next time
    spans = {"older": (first, recent), "recent": (recent, split)}
    keys = {slot: (since, until, ledger.day_revisions_total(until)) for slot, (since, until) in spans.items()
            if since < until}
    parts = [_kept_part(ledger, name, key, lambda key=key: made(key[0], key[1]), size, book, slot, budget=False)
             for slot, key in keys.items()]
    closed = parts[0] if len(parts) == 1 else _kept_part(
        ledger, name, tuple(keys.values()), lambda: joined(groups, first, split, *parts), size, book, "joined",
        budget=False)
    _within_budget(ledger)
    return joined(groups, first, end, closed, *([made(split, end)] if split < end else []))


def usage_kept(store: Store, group_by: Sequence[str], since: datetime | None, until: datetime | None,
               tenant_id: str | None = None) -> list[dict[str, Any]]:
    """`store.usage(...)`, the sums of its pieces before the last `_RECENT_DAYS` settled days
    kept between reports (while no day before them is marked again and no raw event is removed
    by retention), the pieces after read each time. As `margin_kept`, the first report of a
    grouping is made in one pass and keeps nothing."""
    name = ("usage", tuple(group_by), tenant_id)
    ledger = Ledger(store)
    if not _asked_before(ledger, name):
        return store.usage(group_by=group_by, since=since, until=until, tenant_id=tenant_id)
    # The last settled days are read with the open ones: a late event on one of them (the usual
    # one: the day before) makes nothing again.
    split = revisions.settled_before() - timedelta(days=_RECENT_DAYS)
    closed, after = usage.cut(usage.plan(group_by, since, until),
                              datetime(split.year, split.month, split.day, tzinfo=timezone.utc))
    if not closed:
        return store.usage(group_by=group_by, since=since, until=until, tenant_id=tenant_id)
    # read before the sums: a mark made meanwhile is seen next time
    key = (tuple(closed), ledger.day_revisions_total(split), store.retention_mark())
    with store.report() as conn:  # both parts on one connection (on SQLite one snapshot)
        found = _kept_part(ledger, name, key, lambda: usage.summed(conn, store.project, group_by, closed, tenant_id),
                           len)
        fresh = usage.summed(conn, store.project, group_by, after, tenant_id) if after else {}
        return usage.ordered(usage.added(found, fresh), group_by, conn.dialect.name)


def settled_before() -> date:
    """The first day that may still change (`revisions.settled_before`): a report of it or
    after is of the current day."""
    return revisions.settled_before()


def _of(ledger: Ledger, name: Any) -> _Kept:
    """What is kept under `name` for the ledger's project (the projects asked least recently
    are forgotten past `PROJECTS`)."""
    with _kept_lock:
        engine = ledger.store.engine
        projects = _kept.get(engine)
        if projects is None:
            projects = _kept[engine] = {}
        kept = projects.pop(ledger.project, None)
        if kept is None:
            kept = {}
        projects[ledger.project] = kept  # the most recently asked last
        while len(projects) > PROJECTS:
            del projects[next(iter(projects))]
        found = kept.pop(name, None)
        if found is None:
            found = _Kept()
        kept[name] = found  # the most recently asked last
        if _is_report(name):
            reports = [other for other in kept if _is_report(other)]
            for other in reports[:max(0, len(reports) - _REPORTS)]:
                del kept[other]
        return found


def _is_report(name: Any) -> bool:
    return isinstance(name, tuple) and name[0] in ("margin", "usage")


def _within_budget(ledger: Ledger) -> None:
    """The project's kept margin and usage reports within `_REPORT_ROWS` rows, the least
    recently asked forgotten first."""
    with _kept_lock:
        kept = _kept.get(ledger.store.engine, {}).get(ledger.project, {})
        reports = [(name, found) for name, found in kept.items() if found.rows]
        total = sum(found.rows for _, found in reports)
        for name, found in reports:
            if total <= _REPORT_ROWS:
                break
            total -= found.rows
            del kept[name]


def _keys(marks: dict[date, int], first: date, end: date) -> dict[date, tuple[Any, ...]]:
    """Each day's key: the mark of every day, and those of its month's days up to it."""
    every = marks.get(revisions.EVERY_DAY, 0)
    out = {}
    for day in days(first, end):
        start = month_start(day)
        out[day] = (every, tuple(sorted((d, n) for d, n in marks.items() if start <= d <= day)))
    return out


def _changed_tenants(was: list[MarginRow], now: list[MarginRow]) -> set[Any]:
    """The customers whose rows of a day differ between two readings of it."""
    before = {row.key["tenant"]: row for row in was}
    after = {row.key["tenant"]: row for row in now}
    return {tenant for tenant in before.keys() | after.keys() if before.get(tenant) != after.get(tenant)}


def spans(wanted: list[date]) -> list[tuple[date, date]]:
    """Consecutive days as [since, until) ranges."""
    out: list[tuple[date, date]] = []
    for day in wanted:
        if out and out[-1][1] == day:
            out[-1] = (out[-1][0], day + timedelta(days=1))
        else:
            out.append((day, day + timedelta(days=1)))
    return out


def _same_plans(a: PlanBook, b: PlanBook) -> bool:
    return a.tenants == b.tenants and all(tuple(a.spans(t)) == tuple(b.spans(t)) for t in a.tenants)
