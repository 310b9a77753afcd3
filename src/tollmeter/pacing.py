"""Background loops pause for a moment every 200 µs of work (`give_way`), so that a thread
whose wait is over gets the interpreter lock at once instead of after the switch interval.

A thread whose wait is over (an answer came from the network, a lock came free) must take the
interpreter lock back before it runs on. CPython hands the lock over when its holder lets it go
(I/O, a blocking call), or when the waiter has waited the switch interval
(`sys.getswitchinterval()`, 5 ms by default) and asks for it. The worker's batch is pure Python
for tens of milliseconds (building, pricing and storing 500 events), so an application thread
whose answer came during one waited up to those 5 ms. Letting the lock go without sleeping
(`os.sched_yield()`) does not hand it over: the releasing thread takes it back before the
waiter has woken, and each such take restarts the waiter's 5 ms (measured: a waiting thread
kept out for seconds). A short sleep does: the waiter wakes and runs; the background thread
carries on when the waiter lets the lock go.

Measured (`benchmarks/worker_pauses.py`; docs/benchmarks.md, "The worker's batches and a
waiting caller"): while the worker handled batches of 500 calls, a thread waking from a sleep
waited 1 ms or more for the lock 10-13% of the times without pauses, 0.3-0.8% with them; its
mean wait went from 580-710 to 130 µs. With nobody waiting, the pauses stretch the worker's
batch by 35-50% (a 20 µs sleep lasts 70-80 µs with Linux's timer slack; the processor is
free meanwhile). They are left out while somebody waits for the background work (`hurried`:
`flush`, `shutdown`, a caller giving the worker its turn, a caller waiting for its lease, whose
answer may wait for the worker's store write), and in a process with one thread (a command
rebuilding its rollups).

One deadline for every thread that calls `give_way` (the worker, the server's threads): a
thread may run up to one slice past its own turn when another paused for it.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from time import perf_counter, sleep
from typing import Iterator

#: Seconds of work between two pauses, and how long each pause is (Linux adds its timer
#: slack, 50 µs by default, to a sleep this short).
SLICE = 0.0002
PAUSE = 0.00002

_due = 0.0
#: Threads waiting for the background work to finish (`hurried`): no pauses meanwhile.
_hurried = 0
_hurried_lock = threading.Lock()


def give_way() -> None:
    """Pause for a moment if a slice of work has passed since the last pause (any thread's),
    unless somebody waits for the background work or no other thread could take the turn."""
    global _due
    if perf_counter() >= _due:
        if not _hurried and threading.active_count() > 1:
            sleep(PAUSE)
        _due = perf_counter() + SLICE


@contextmanager
def hurried() -> Iterator[None]:
    """While this thread waits for the background work: a pause would only make it wait longer."""
    global _hurried
    with _hurried_lock:
        _hurried += 1
    try:
        yield
    finally:
        with _hurried_lock:
            _hurried -= 1


def _after_fork_in_child() -> None:
    """The parent's waiting threads are not the child's (and a fork while one of them held the
    counter's lock would leave it held for good)."""
    global _hurried, _hurried_lock
    _hurried = 0
    _hurried_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
