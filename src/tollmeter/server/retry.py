"""One store transaction again when PostgreSQL aborted it for a deadlock or a serialization
conflict (the store's writes are idempotent, so a retry is safe); which writes failed because a
number overflowed its column."""

from __future__ import annotations

import random
import time
from typing import Callable, TypeVar

from sqlalchemy.exc import DBAPIError

T = TypeVar("T")

_RETRYABLE = {"40P01", "40001"}  # deadlock_detected, serialization_failure


def out_of_range(exc: BaseException) -> bool:
    """A write refused because a number is past what its column holds: PostgreSQL's
    numeric_value_out_of_range (a BIGINT or NUMERIC(30, 15) total overflowing), or the Python
    int SQLite's driver cannot bind (a total past 2^63 - 1)."""
    if isinstance(exc, OverflowError):
        return True
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        return (getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)) == _OUT_OF_RANGE
    return False


_OUT_OF_RANGE = "22003"


def with_retries(fn: Callable[[], T], attempts: int = 4) -> T:
    for attempt in range(attempts):
        try:
            return fn()
        except DBAPIError as exc:
            code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
            if code not in _RETRYABLE or attempt == attempts - 1:
                raise
            time.sleep(random.uniform(0.005, 0.05) * (attempt + 1))
    raise AssertionError("unreachable")
