"""Fault reporting: an instrumentation fault is counted, logged and handed to `on_error`; it is
never raised into the application."""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

logger = logging.getLogger("tollmeter")


class RejectedEvent(Exception):
    """An event the embedded store refused, reported to `on_error`: the event in its wire form
    (`event`) and why (`reason`). The rest of its batch was stored (limits/keeper.py)."""

    def __init__(self, message: str, *, event: dict[str, Any], reason: str) -> None:
        super().__init__(message)
        self.event = event
        self.reason = reason


class Faults:
    def __init__(self, on_error: Callable[[BaseException], object] | None = None) -> None:
        self.on_error = on_error
        self.count = 0
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, exc: BaseException, what: str) -> None:
        """Report a fault; the first of each kind is a warning, later ones are debug lines."""
        with self._lock:
            self.count += 1
            first = what not in self._seen
            self._seen.add(what)
        if first:
            logger.warning("tollmeter: fault %s (the call itself is unaffected): %r", what, exc, exc_info=exc)
        else:
            logger.debug("tollmeter: fault %s: %r", what, exc)
        self.report(exc)

    def after_fork_in_child(self) -> None:
        """A forked child counts (and warns about) its own faults."""
        self.count = 0
        self._seen = set()
        self._lock = threading.Lock()

    def warn_once(self, key: str, message: str) -> None:
        """A condition worth one warning (a full queue, say), not a fault per occurrence."""
        with self._lock:
            first = key not in self._seen
            self._seen.add(key)
        if first:
            logger.warning(message)

    def delivery(self, exc: BaseException) -> None:
        """A delivery problem (counted by the sink itself): logged and reported."""
        logger.warning("tollmeter: %s", exc)
        self.report(exc)

    def report(self, exc: BaseException) -> None:
        on_error = self.on_error
        if on_error is None:
            return
        try:
            on_error(exc)
        except Exception:
            logger.exception("tollmeter: on_error raised")
