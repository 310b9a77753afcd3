"""How the guard asks for budget without making the caller wait: lease requests run on a few
background threads (`Asker`), the caller waits for the answer at most `limits_wait`, and a
budget source that keeps failing opens a `Circuit`, so that calls decide at once by
`limits_unreachable` until a background probe finds it answering again.

The rules (docs/limits.md, "When the server does not answer"):
- a failure is a lease request that failed (network error, timeout, 5xx, a locked or broken
  store) or a caller whose wait for an answer ran out with neither an answer from the source
  nor another failure since it began waiting (so callers waiting together count once);
- `failures` of them in a row open the circuit; any answer closes it;
- while open, no call asks: each decides at once; a probe (one lease request, in the
  background) is due `probe_after` seconds after opening, then after each failed probe twice
  as long, at most `probe_max` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import Any, Callable

logger = logging.getLogger("tollmeter")


class Circuit:
    def __init__(self, failures: int = 3, probe_after: float = 1.0, probe_max: float = 30.0,
                 on_open: Callable[[BaseException], None] | None = None,
                 on_close: Callable[[], None] | None = None) -> None:
        self.threshold = max(1, failures)
        self.probe_after = probe_after
        self.probe_max = probe_max
        self._on_open = on_open
        self._on_close = on_close
        self._lock = threading.Lock()
        #: Failures in a row (reset by any answer).
        self.failures = 0
        #: Monotonic time it opened; None while closed.
        self.opened_at: float | None = None
        #: How many times it opened, and how many probes it let run.
        self.opened = 0
        self.probes = 0
        self._probe_at = 0.0
        self._backoff = probe_after
        self._probing = False
        self._answered_at = float("-inf")
        self._failed_at = float("-inf")

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    def success(self) -> None:
        """The source answered."""
        with self._lock:
            was_open = self.opened_at is not None
            self._answered_at = time.monotonic()
            self.failures = 0
            self.opened_at = None
            self._backoff = self.probe_after
            self._probing = False
        if was_open and self._on_close is not None:
            self._on_close()

    def failure(self, exc: BaseException, probe: bool = False, since: float | None = None) -> None:
        """A request failed (`probe`: the probe did), or a caller that began waiting at `since`
        stopped waiting for one: that counts only if nothing answered meanwhile (a process
        too busy to run the request in time is not a source that does not answer) and no other
        failure was counted meanwhile (32 threads waiting for one slow answer are one failure,
        not 32)."""
        now = time.monotonic()
        opened = False
        with self._lock:
            if since is not None and (self._answered_at >= since or self._failed_at >= since):
                return
            self._failed_at = now
            self.failures += 1
            if self.opened_at is None:
                if self.failures >= self.threshold:
                    self.opened_at = now
                    self.opened += 1
                    self._backoff = self.probe_after
                    self._probe_at = now + self._backoff
                    opened = True
            elif probe:
                self._backoff = min(self._backoff * 2, self.probe_max)
                self._probe_at = now + self._backoff
            if probe:
                self._probing = False
        if opened and self._on_open is not None:
            self._on_open(exc)

    def take_probe(self) -> bool:
        """True (once) when the circuit is open and a probe is due: the caller runs it and
        reports its outcome with `success` or `failure(probe=True)`."""
        with self._lock:
            if self.opened_at is None or self._probing or time.monotonic() < self._probe_at:
                return False
            self._probing = True
            self.probes += 1
            return True


class Asker:
    """Runs lease requests off the callers' threads: at most `threads` daemon threads, started
    when there is work and leaving after `idle` seconds without any. Daemon threads: a request
    still waiting on a hung server never holds up the interpreter's exit."""

    def __init__(self, threads: int = 4, idle: float = 30.0, name: str = "tollmeter-lease") -> None:
        self._max = threads
        self._idle_for = idle
        self._name = name
        self._jobs: deque[tuple[Future, Callable[..., Any], tuple]] = deque()
        self._cond = threading.Condition()
        self._threads = 0
        self._idle = 0

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        with self._cond:
            self._jobs.append((future, fn, args))
            if self._idle > len(self._jobs) - 1:
                self._cond.notify()
                return future
            if self._threads < self._max:
                thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                try:
                    thread.start()
                except Exception as exc:  # at interpreter shutdown: no new threads
                    self._jobs.pop()
                    future.set_exception(exc)
                    return future
                self._threads += 1
        return future

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._jobs:
                    self._idle += 1
                    self._cond.wait(self._idle_for)
                    self._idle -= 1
                    if not self._jobs:
                        self._threads -= 1
                        return
                future, fn, args = self._jobs.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
