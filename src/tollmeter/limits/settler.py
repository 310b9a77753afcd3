"""Settler: the guard's settling thread (`Guard.settle_soon`).

A caller whose call left its tenant's lease short hands the tenant's budget over here as the call
ends; one daemon thread settles that tenant's finished calls. It does no I/O, so, unlike the
worker (whose writes and deliveries may wait on a locked store, a slow server, or the
interpreter lock between SQLite statements), it needs the interpreter lock only once to start.
Even that can wait for seconds under a busy caller that lets the lock go only for moments (the
openai SDK does, on every call): CPython passes a waiting thread over each time. So the caller
first cuts the finished calls' reservations to what they used itself (`Guard.trim_finished`),
and the settling here only replaces those by the exact costs.

The hand-over is a `queue.SimpleQueue.put` (C code: no Future, no Condition), because it runs on
the caller's thread: `circuit.Asker.submit` cost 13.5 µs of the caller's CPU time there (a
Future and its Condition made, a lock, a notify), this about 1-2. The thread starts with the
first hand-over and leaves after `idle` seconds without one.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Callable

logger = logging.getLogger("tollmeter")


class Settler:
    def __init__(self, settle: Callable[[Any], None], idle: float = 30.0, name: str = "tollmeter-settle") -> None:
        #: Called on the thread with each item handed over; its exceptions are logged.
        self._settle = settle
        self._idle = idle
        self._name = name
        self._items: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        #: A thread is running (or starting): set under `_lock`, read without it by `submit`.
        self._alive = False

    def submit(self, item: Any) -> bool:
        """Hand `item` over (the caller's thread). False when no thread can be started (at
        interpreter shutdown): the item is then not settled here."""
        self._items.put(item)
        if self._alive:
            return True
        return self._start()

    def _start(self) -> bool:
        with self._lock:
            if self._alive:
                return True
            thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            try:
                thread.start()
            except Exception:  # RuntimeError: can't start new thread (at interpreter shutdown)
                logger.debug("tollmeter: could not start the settling thread", exc_info=True)
                return False
            self._alive = True
            return True

    def _run(self) -> None:
        items = self._items
        while True:
            try:
                item = items.get(timeout=self._idle)
            except queue.Empty:
                with self._lock:
                    # Unset before looking: an item put after this look finds it unset and
                    # starts a thread; one put before it is taken here.
                    self._alive = False
                    if items.empty():
                        return
                    self._alive = True
                continue
            try:
                self._settle(item)
            except Exception:  # the guard reports its own faults: this is the last net
                logger.debug("tollmeter: settling failed", exc_info=True)
