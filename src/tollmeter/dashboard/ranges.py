"""The range picker: which UTC days a page covers, and in which buckets a chart groups them.

A page takes `since` (first day) and `until` (first day after the range), as `GET /v1/margin`
does, so a page's URL and the API query that answers the same numbers carry the same values.
The default is the month to date, as the API's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Mapping
from urllib.parse import urlencode

from ..business.margin import day_range
from ..business.plans import PlanError
from ..business.revenue import month_start

BUCKETS = ("day", "week", "month")
#: Longest range a page covers (as the API's reports).
MOST_DAYS = 3660


class BadRange(ValueError):
    pass


@dataclass(frozen=True)
class Range:
    first: date
    end: date
    bucket: str = "day"

    @property
    def last(self) -> date:
        return self.end - timedelta(days=1)

    def query(self, **extra: str) -> str:
        """This range as a query string (plus `extra`), for links that keep it."""
        return urlencode({"since": self.first.isoformat(), "until": self.end.isoformat(), "bucket": self.bucket,
                          **extra})

    def api(self) -> str:
        return f"since={self.first.isoformat()}&until={self.end.isoformat()}"

    def presets(self, today: date | None = None) -> list[tuple[str, str]]:
        """(label, query string) of the usual ranges, ending today."""
        today = today or _today()
        end = today + timedelta(days=1)
        choices = [("This month", month_start(today)), ("7 days", end - timedelta(days=7)),
                   ("30 days", end - timedelta(days=30)), ("90 days", end - timedelta(days=90)),
                   ("12 months", end - timedelta(days=365))]
        return [(label, Range(first, end, self.bucket).query()) for label, first in choices]


def parse_range(params: Mapping[str, str], today: date | None = None) -> Range:
    """The range of a page's query (`since`, `until`, `bucket`); BadRange says what is wrong."""
    bucket = params.get("bucket") or "day"
    if bucket not in BUCKETS:
        raise BadRange(f"bucket: one of {', '.join(BUCKETS)}, got {bucket!r}")
    try:
        since, until = (_day(params.get(name), name) for name in ("since", "until"))
        first, end = day_range(since, until, today=today or _today())
    except PlanError as exc:
        raise BadRange(str(exc)) from None
    if (end - first).days > MOST_DAYS:
        raise BadRange(f"since/until: {(end - first).days} days, more than the {MOST_DAYS} a page covers")
    return Range(first, end, bucket)


def _day(text: str | None, name: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise BadRange(f"{name}: a day as YYYY-MM-DD, got {text!r}") from None


def _today() -> date:
    return datetime.now(timezone.utc).date()
