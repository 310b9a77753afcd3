"""Revisions of closed days: which UTC days were written to when they were not the current one
(`day_revisions`).

A report that keeps closed days' figures between calls (`business/closed_days.py`) must learn
when one of those days changes. Writes to the current day need no mark (no report keeps it);
a write to another day does: late events, repricing, a resolution dated in the past, a
resolved run's count moved to the tenant learnt for it; and one dated in the future (a clock
ahead), which a run's cost to date already holds. Each writer notes the days it touches
(`note`); the days other than the writer's current UTC day are marked once per transaction, as its
last write (`flush`, called by the store's transaction on its way to commit), so the mark's
row locks come after every other table's, in every writer: no new lock cycle. Rebuilding the
rollups marks every day at once (`EVERY_DAY`).

A day is kept by a report only once it ended `SETTLED_AFTER` ago: a transaction that began
before midnight and wrote the day as current (no mark) has committed by then.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from . import schema

#: The revision of every day at once.
EVERY_DAY = date(1, 1, 1)
#: How long after a day's end its figures may be kept (longer than any writing transaction,
#: and than the clocks of the replicas differ).
SETTLED_AFTER = timedelta(minutes=10)
#: `conn.info` key of the days noted in a transaction: {project: {day}}.
_NOTED = "tollmeter.noted_days"


def now() -> datetime:
    """The current UTC time (looked up here, so that a benchmark can play a given day)."""
    return datetime.now(timezone.utc)


def note(conn: Connection, project: str, days: Iterable[date], today: date | None = None) -> None:
    """Days this transaction writes to: those other than `today` (the current UTC day) are
    marked when it commits."""
    today = today or now().date()
    late = {day for day in days if day != today}
    if late:
        conn.info.setdefault(_NOTED, {}).setdefault(project, set()).update(late)


def note_every_day(conn: Connection, project: str) -> None:
    conn.info.setdefault(_NOTED, {}).setdefault(project, set()).add(EVERY_DAY)


def flush(conn: Connection, commit: bool) -> None:
    """Mark the noted days (when the transaction is to commit), and forget them (`conn.info`
    lives as long as the pooled connection)."""
    noted = conn.info.pop(_NOTED, None)
    if not noted or not commit:
        return
    from .store import accumulate  # (the store calls this module)

    for project, days in sorted(noted.items()):
        accumulate(conn, project, schema.day_revisions, ("day",), {(day,): (1,) for day in days}, ("revision",))


def read(conn: Connection, project: str, first: date, end: date) -> dict[date, int]:
    """The revisions of days first <= day < end that have one, and of `EVERY_DAY`."""
    t = schema.day_revisions
    rows = conn.execute(select(t.c.day, t.c.revision).where(
        t.c.project_id == project, ((t.c.day >= first) & (t.c.day < end)) | (t.c.day == EVERY_DAY))).all()
    return {as_date(day): revision for day, revision in rows}


def total(conn: Connection, project: str, before: date | None = None) -> int:
    """The marks of every day (before `before`, when given) added up: it grows with each new
    mark of one of them (what is kept of figures that read all of those days is keyed by it)."""
    t = schema.day_revisions
    where = [t.c.project_id == project, *([t.c.day < before] if before is not None else [])]
    return int(conn.execute(select(func.coalesce(func.sum(t.c.revision), 0)).where(*where)).scalar())


def settled_before(at: datetime | None = None) -> date:
    """The first UTC day not settled yet: the days before it ended `SETTLED_AFTER` ago."""
    return ((at or now()).astimezone(timezone.utc) - SETTLED_AFTER).date()


def as_date(value: Any) -> date:
    """A day as a database gives it back (a date; SQLite's ISO text)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])
