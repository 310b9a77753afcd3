"""TokenLock: the guard's mutex, taken on a call's hot path by one `list.pop`.

`Guard.admit_plain` runs before every call of a tenant with a limit and reserves under the
guard's lock. A `threading.Lock` costs about 1.6 µs there (measured in place, the real call
flow, CPython 3.11: its `acquire` parses its arguments generically and calls into the
semaphore code, then `release` into the semaphore again, all of it cold after the SDK's own work),
where a list's `pop` and `append`, which everything uses and so stay warm, cost about 0.2.
"""

from __future__ import annotations

import threading
import time

#: `time.sleep`, this module's own (a test replaces it without touching other threads' sleeps).
_sleep = time.sleep


class TokenLock:
    """A mutex, not re-entrant. Free, `tokens` holds one item: whoever pops it holds the lock,
    and gives it back by appending it. `list.pop` and `list.append` are each one atomic step
    (one C call under the interpreter lock; under a per-object lock on free-threaded builds),
    so no two holders ever overlap.

    The hot path takes the lock with `tokens.pop()` alone and gives it back with
    `tokens.append(True)`; it never waits: when the token is taken (`IndexError`) it goes the
    slow way instead. Every other user takes it with `acquire` (or `with`), which waits:
    callers queue on a `threading.Lock` (`_turn`, held for the whole of their hold), and the
    first in line takes the token as soon as it is back. With `_turn` held, the token can
    only be out with a hot-path holder, which holds it for a few statements in memory (never
    I/O, never a wait), so the first in line polls for it, yielding the interpreter in between
    (a sleep of 0, then of 10 µs doubling to 1 ms while it is still out).
    """

    __slots__ = ("tokens", "_turn")

    def __init__(self) -> None:
        self.tokens = [True]
        self._turn = threading.Lock()

    def acquire(self) -> bool:
        self._turn.acquire()
        try:
            self.tokens.pop()
        except IndexError:  # a hot-path holder has it, for a few statements
            self._poll()
        return True

    __enter__ = acquire

    def _poll(self) -> None:
        """With `_turn` held: wait for the hot-path holder to give the token back."""
        tokens = self.tokens
        delay = 0.0
        try:
            while True:
                _sleep(delay)  # lets the holder run
                try:
                    tokens.pop()
                    return
                except IndexError:
                    delay = min(0.001, delay * 2 or 0.00001)
        except BaseException:  # interrupted while waiting (a signal's exception): not held
            self._turn.release()
            raise

    def release(self) -> None:
        """Give the lock back (after `acquire`: the hot path appends its token itself)."""
        self.tokens.append(True)
        self._turn.release()

    def __exit__(self, *exc: object) -> None:
        self.tokens.append(True)  # `release`, written out
        self._turn.release()

    def locked(self) -> bool:
        return not self.tokens
