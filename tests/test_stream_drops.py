"""A stream dropped before its end is recorded (partial) when it is collected (`streams._Observer`).

An SDK stream is in a reference cycle of its own (its chunk generator holds it: openai's
`self._iterator = self.__stream__()`, botocore's `_create_raw_event_generator`), so only the
cyclic collector frees it. A test that drops a stream waits for that with `conftest.collect`, not
a bare `gc.collect()`: CPython's returns 0 at once, collecting nothing, while another thread's
collection is under way, and that collection lets this thread run whenever it releases the GIL
(a socket closed by a finalizer). That is how a dropped stream came to have no event now and then
in full-suite runs.

Real openai SDK over respx."""

from __future__ import annotations

import gc
import threading
from collections import deque
from contextlib import contextmanager

import openai
import pytest

from tollmeter.events import Usage
from tollmeter.transport.worker import BatchWorker

from .bodies import openai_bodies as B
from .conftest import Recorder, collect

# The cycle is the SDK's own: run on the previous majors too.
pytestmark = pytest.mark.sdk

CHAT = "https://api.openai.com/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Hi"}]

#: How long the other thread's collection stays under way (it ends by itself: nothing waits for
#: it but `collect`; a shorter or longer hold changes only whether the skip is exercised).
HOLD = 0.5


class _Held:
    """Garbage in a cycle whose finalizer waits, releasing the GIL, as its collection runs."""

    def __init__(self, started: threading.Event) -> None:
        self.me = self
        self.started = started

    def __del__(self) -> None:
        self.started.set()
        threading.Event().wait(HOLD)


@contextmanager
def another_thread_collecting():
    started = threading.Event()

    def run() -> None:
        _Held(started)
        gc.collect()

    thread = threading.Thread(target=run, name="collecting", daemon=True)
    thread.start()
    assert started.wait(10), "the other thread's collection did not start"
    try:
        yield
    finally:
        thread.join()


def stream() -> openai.Stream:
    return openai.OpenAI(api_key="k", max_retries=0).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True)


def test_a_stream_dropped_while_another_thread_collects_is_recorded(recorder, http_mock):
    http_mock.post(CHAT).respond(text=B.CHAT_STREAM_WITH_USAGE, headers=B.SSE_HEADERS)
    s = stream()
    next(s)
    with another_thread_collecting():
        del s
        collect()
        event = recorder.one()
    assert event.partial and event.stream and event.usage == Usage()


def test_a_loop_broken_off_while_another_thread_collects_is_recorded(recorder, http_mock):
    http_mock.post(CHAT).respond(text=B.CHAT_STREAM_WITH_USAGE, headers=B.SSE_HEADERS)
    s = stream()
    for _ in s:
        break
    with another_thread_collecting():
        del s
        collect()
        event = recorder.one()
    assert event.partial and event.stream and event.usage == Usage()


class _CollectingOnce(deque):
    """The worker's queue, whose first pop on the worker's thread runs a full collection there,
    as an allocation under the worker's lock (the list of its batch) may set one off."""

    def __init__(self, items, worker) -> None:
        super().__init__(items)
        self.worker = worker
        self.armed = False

    def popleft(self):
        item = super().popleft()
        if self.armed and threading.current_thread() is self.worker._thread:
            self.armed = False
            gc.collect()
        return item


def test_a_stream_collected_on_the_workers_thread_under_its_lock_is_recorded(http_mock):
    """The dropped stream's finalizer submits its call on the worker's thread while the worker
    holds its lock, and wakes it (a batch of one is full): under a plain lock, the worker
    deadlocked there, and every flush after it waited forever."""
    http_mock.post(CHAT).respond(text=B.CHAT_STREAM_WITH_USAGE, headers=B.SSE_HEADERS)
    rec = Recorder(max_batch_size=1)
    rec.meter.patch_all()
    worker = rec.meter._pipeline.worker
    flushed: list[bool] = []
    try:
        list(stream())
        assert rec.meter.flush(10)  # the worker runs
        gc.disable()  # the dropped stream is collected where the queue says, not before
        try:
            queue = worker._queue = _CollectingOnce(worker._queue, worker)
            s = stream()
            next(s)
            del s  # in a cycle of its own: freed by the next collection
            queue.armed = True
            list(stream())  # its submit wakes the worker, whose pop collects
            flushing = threading.Thread(target=lambda: flushed.append(rec.meter.flush(10)), daemon=True)
            flushing.start()
            flushing.join(30)  # a bound for "forever", not a timing claim
        finally:
            gc.enable()
        assert not queue.armed, "the worker never popped"
        assert flushed == [True], "flush never returned: the worker is deadlocked"
        assert rec.meter.flush(10)  # the dropped stream's call was submitted during the pop
        assert sorted(event.partial for event in rec.events) == [False, False, True]
    finally:  # on a thread of its own: a deadlocked worker's lock is never free
        threading.Thread(target=rec.meter.shutdown, kwargs={"timeout": 1}, daemon=True).start()
    assert not rec.errors, f"instrumentation faults: {rec.errors!r}"


def test_a_submit_that_a_collection_runs_while_the_worker_starts_starts_no_second_thread(monkeypatch):
    """The worker's thread is made under its lock; a collection set off there may run a dropped
    stream's finalizer, whose `submit` finds no thread yet: it must not start another."""
    handled: list[str] = []
    worker = BatchWorker(handled.extend, max_batch_size=10, flush_interval=0.05, max_queue_size=100)
    started: list[threading.Thread] = []

    class Starting(threading.Thread):
        def start(self) -> None:
            started.append(self)
            if len(started) == 1:
                worker.submit("collected")  # what a finalizer run by a collection here does
            super().start()

    monkeypatch.setattr(threading, "Thread", Starting)
    try:
        assert worker.submit("first")
        monkeypatch.undo()
        assert worker.flush(10)
        assert len(started) == 1 and sorted(handled) == ["collected", "first"]
    finally:
        worker.shutdown(5)
