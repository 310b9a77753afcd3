"""One store transaction again when PostgreSQL aborted it for a deadlock or a serialization
conflict (the store's writes are idempotent, so a retry is safe)."""

from __future__ import annotations

import random
import time
from typing import Callable, TypeVar

from sqlalchemy.exc import DBAPIError

T = TypeVar("T")

_RETRYABLE = {"40P01", "40001"}  # deadlock_detected, serialization_failure


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
