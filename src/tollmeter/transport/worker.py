"""BatchWorker: a bounded in-memory queue drained in batches by one background thread.

The caller's side (`submit`) appends to a deque (atomic in CPython) and returns: no lock, no
I/O, no allocation beyond the queue slot; it takes the lock only to start or wake the thread,
and, when a second full batch is queued behind the one the worker was woken for, to give the
worker its turn at the interpreter lock (`_make_way`).
The thread starts on the first submit (or `start()`) and hands batches of up to
`max_batch_size` items to `handle_batch` every `flush_interval` seconds, or as soon as a full
batch is queued.
After `fork()` the child gets an empty queue and a fresh thread: the parent's items stay the
parent's to deliver.

The lock is re-entrant because a garbage collection can run a `submit` on a thread that holds
it: a stream dropped by the application is collected whenever an allocation sets a collection
off, and its finalizer records its call (`instrument/streams.py`). Under a plain lock, one set off
by the batch's list on the worker's own thread deadlocked it, and every `flush` after.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from typing import Any, Callable

from ..pacing import hurried

logger = logging.getLogger("tollmeter")


class BatchWorker:
    def __init__(
        self,
        handle_batch: Callable[[list[Any]], None],
        *,
        max_batch_size: int,
        flush_interval: float,
        max_queue_size: int,
        name: str = "tollmeter-worker",
        on_wake: Callable[[], None] | None = None,
        on_fault: Callable[[BaseException, str], None] | None = None,
        make_way_wait: float = 0.1,
    ) -> None:
        self._handle_batch = handle_batch
        self._on_wake = on_wake
        self._on_fault = on_fault
        self._max_batch_size = max_batch_size
        self._flush_interval = flush_interval
        self._max_queue_size = max_queue_size
        #: Queued items at which the worker is behind (`_make_way`), every how many more a
        #: caller gives it its turn (a batch, and never more often than every 50 items: a
        #: worker held up by a slow server costs a caller at most `make_way_wait` per 50 calls),
        #: and how long that turn lasts at most.
        self._behind = 2 * max_batch_size
        self._make_way_every = max(max_batch_size, 50)
        self._make_way_wait = make_way_wait
        self._name = name
        self._init_state()
        _register_fork_handler(self)

    def _init_state(self) -> None:
        self._lock = threading.RLock()  # see the module's docstring
        self._has_work = threading.Condition(self._lock)
        self._progress = threading.Condition(self._lock)
        self._queue: deque[Any] = deque()
        self._thread: threading.Thread | None = None
        #: Items handled, and popped but not handled yet (both changed under the lock).
        self._handled = 0
        self._in_flight = 0
        self._dropped = 0
        self._flush_wanted = False
        self._stopping = False
        #: A thread being started (under the lock): a `submit` that a collection runs meanwhile
        #: on the same thread does not start another.
        self._starting = False
        self.start_failures = 0
        #: Times a caller waited for the worker to catch up (`_make_way`).
        self.ways_made = 0

    # -- caller side -------------------------------------------------------------------------

    def submit(self, item: Any, urgent: bool = False) -> bool:
        """Queue `item`; False (and counted as dropped) when the queue is full or shut down.
        An `urgent` item wakes the worker now instead of at the next interval."""
        queue = self._queue
        if self._stopping or len(queue) >= self._max_queue_size:
            with self._lock:
                self._dropped += 1
            return False
        queue.append(item)
        # A full batch wakes the worker once: as it finishes a batch it takes the next one at
        # once if there is a full one waiting (waking it on every submit past that costs each
        # caller a lock the worker is holding).
        queued = len(queue)
        if urgent or self._thread is None or queued == self._max_batch_size:
            self._wake(urgent)
        elif queued >= self._behind and not queued % self._make_way_every:
            self._make_way()
        return True

    def _make_way(self) -> None:
        """Another full batch queued while the one the worker was woken for still waits: the
        worker is behind, most likely kept from the interpreter lock by a busy caller (one that
        lets it go only for moments, as the openai SDK does for its idempotency keys: CPython
        passes a waiting thread over each time, so the worker can wait seconds for its turn
        while the queue fills and drops events). The caller gives it that turn: it waits,
        holding nothing, until the worker has handled a batch, at most `make_way_wait` seconds (a worker
        waiting on a slow server costs a caller that bound once per batch queued, and at most
        once per 50 items: `_make_way_every`)."""
        if threading.current_thread() is self._thread:
            return  # a collection's submit on the worker's own thread
        with self._lock:
            if self._thread is None or self._stopping or not self._thread.is_alive():
                return
            handled = self._handled
            self._has_work.notify()
            deadline = time.monotonic() + self._make_way_wait
            self.ways_made += 1
            with hurried():
                while self._handled == handled:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return
                    self._progress.wait(remaining)

    def _wake(self, urgent: bool) -> None:
        fault = None
        with self._lock:
            if self._thread is None:
                if not self._stopping:
                    fault = self._start()
            else:
                if urgent:
                    self._flush_wanted = True
                self._has_work.notify()
        if fault is not None:
            self._fault(fault, "starting the background worker")

    def start(self) -> None:
        """Start the thread now, and have it run its upkeep (`on_wake`) at once, instead of
        with the first item (a process that has spooled batches to send records nothing yet)."""
        fault = None
        with self._lock:
            if self._thread is None and not self._stopping:
                self._flush_wanted = True
                fault = self._start()
        if fault is not None:
            self._fault(fault, "starting the background worker")

    def _fault(self, exc: BaseException, what: str) -> None:
        if self._on_fault is not None:
            try:
                self._on_fault(exc, what)
                return
            except Exception:
                pass
        logger.warning("tollmeter: %s failed: %r", what, exc)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far has been handled. True if it was in time."""
        if threading.current_thread() is self._thread:
            return False  # called from inside handle_batch: waiting would deadlock
        deadline = None if timeout is None else time.monotonic() + timeout
        fault = None
        with self._lock:
            target = self._handled + self._in_flight + len(self._queue)
            if self._handled >= target:
                return True
            if self._thread is None and not self._stopping:
                fault = self._start()  # it could not start before: try again
        if fault is not None:
            self._fault(fault, "starting the background worker")
            return False
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                return False
            self._flush_wanted = True
            self._has_work.notify()
            with hurried():
                while self._handled < target:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._progress.wait(remaining)
        return True

    def shutdown(self, timeout: float | None = None) -> bool:
        """Handle what is queued, then stop the thread. True if it finished in time."""
        with self._lock:
            self._stopping = True
            self._has_work.notify()
            thread = self._thread
        if thread is None:
            # The thread never started (or could not): what is queued is handled here.
            with hurried():
                self._drain_here()
            return not self._queue
        if thread is threading.current_thread():
            return not self._queue
        with hurried():
            thread.join(timeout)
            if thread.is_alive():
                return False
            self._drain_here()  # anything a caller appended as the thread was stopping
        return True

    def _drain_here(self) -> None:
        while True:
            with self._lock:
                count = min(len(self._queue), self._max_batch_size)
                batch = [self._queue.popleft() for _ in range(count)]
                self._in_flight = count
            if not batch:
                return
            try:
                self._handle_batch(batch)
            except Exception as exc:
                self._fault(exc, f"handling a batch of {count} events")
            with self._lock:
                self._handled += count
                self._in_flight = 0
                self._progress.notify_all()

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def submitted(self) -> int:
        """Items taken so far (handled, being handled, or queued)."""
        return self._handled + self._in_flight + len(self._queue)

    @property
    def stopping(self) -> bool:
        return self._stopping

    # -- background side ---------------------------------------------------------------------

    def _start(self) -> BaseException | None:
        """Start the thread (under the lock); the exception if it could not start."""
        if self._starting:  # re-entered by a collection's `submit`: the thread is on its way
            return None
        self._starting = True
        try:
            thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            thread.start()
        except Exception as exc:  # RuntimeError: can't start new thread / at interpreter shutdown
            self.start_failures += 1
            return exc
        finally:
            self._starting = False
        self._thread = thread
        return None

    def _run(self) -> None:
        while True:
            with self._lock:
                deadline = time.monotonic() + self._flush_interval
                while (
                    not self._stopping
                    and not self._flush_wanted
                    and len(self._queue) < self._max_batch_size
                ):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._has_work.wait(remaining)
                count = min(len(self._queue), self._max_batch_size)
                batch = [self._queue.popleft() for _ in range(count)]
                self._in_flight = count
                if not self._queue:
                    self._flush_wanted = False
                stopping = self._stopping
            if self._on_wake is not None:
                try:
                    self._on_wake()
                except Exception as exc:
                    self._fault(exc, "background upkeep")
            if batch:
                try:
                    self._handle_batch(batch)
                except Exception as exc:  # handle_batch reports its own faults; this is the last net
                    self._fault(exc, f"handling a batch of {count} events")
                with self._lock:
                    self._handled += count
                    self._in_flight = 0
                    self._progress.notify_all()
            elif stopping:
                return

    def _after_fork_in_child(self) -> None:
        # The parent's queue and thread belong to the parent; start clean (a worker the parent
        # had shut down stays shut down).
        stopping = self._stopping
        self._init_state()
        self._stopping = stopping


_workers: "weakref.WeakSet[BatchWorker]" = weakref.WeakSet()
_fork_hook_installed = False


def _register_fork_handler(worker: BatchWorker) -> None:
    global _fork_hook_installed
    _workers.add(worker)
    if not _fork_hook_installed and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_reset_workers_in_child)
        _fork_hook_installed = True


def _reset_workers_in_child() -> None:
    for worker in list(_workers):
        worker._after_fork_in_child()
