"""Limit periods, aligned in UTC: per_hour, per_day, per_month (calendar), and total."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache

FREQUENCIES = ("per_hour", "per_day", "per_month", "total")
_ALIASES = {"hourly": "per_hour", "hour": "per_hour", "daily": "per_day", "day": "per_day",
            "monthly": "per_month", "month": "per_month", "lifetime": "total"}


def frequency(value: str) -> str:
    """Validate a frequency name (a few aliases accepted: daily, monthly, ...)."""
    name = _ALIASES.get(value, value) if isinstance(value, str) else value
    if name not in FREQUENCIES:
        raise ValueError(f"frequency must be one of {', '.join(FREQUENCIES)}, got {value!r}")
    return name


def period_start(freq: str, at: datetime) -> datetime | None:
    at = at.astimezone(timezone.utc)
    if freq == "per_hour":
        return at.replace(minute=0, second=0, microsecond=0)
    if freq == "per_day":
        return at.replace(hour=0, minute=0, second=0, microsecond=0)
    if freq == "per_month":
        return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return None


def period_end(freq: str, at: datetime) -> datetime | None:
    """When the period containing `at` resets (None for total)."""
    start = period_start(freq, at)
    if start is None:
        return None
    if freq == "per_hour":
        return start + timedelta(hours=1)
    if freq == "per_day":
        return start + timedelta(days=1)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


def period_key(freq: str, at: datetime) -> str:
    """The spend row of the period containing `at`: "per_day:2026-11-26", "total"."""
    start = period_start(freq, at)
    if start is None:
        return "total"
    if freq == "per_hour":
        return f"per_hour:{start:%Y-%m-%dT%H}"
    if freq == "per_day":
        return f"per_day:{start:%Y-%m-%d}"
    return f"per_month:{start:%Y-%m}"


def period_keys(at: datetime) -> list[str]:
    """The spend rows an amount spent at `at` adds to (one per frequency). Memoised per UTC
    hour: every event of a batch asks, and they mostly share the hour."""
    utc = at.astimezone(timezone.utc)
    return list(_keys_of_hour(utc.year, utc.month, utc.day, utc.hour))


@lru_cache(maxsize=64)
def _keys_of_hour(year: int, month: int, day: int, hour: int) -> tuple[str, ...]:
    at = datetime(year, month, day, hour, tzinfo=timezone.utc)
    return tuple(period_key(freq, at) for freq in FREQUENCIES)
