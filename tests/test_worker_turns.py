"""The background worker gets its turn under a busy caller (`BatchWorker._make_way`).

A caller that runs in the interpreter without waiting for I/O and lets its lock go only for
moments (the openai SDK does, for its request ids) keeps a waiting thread from the interpreter
lock: CPython passes the waiting thread over each time the holder lets go and takes it back.
The worker then fell behind until its queue was full and events were dropped (with the default
queue, 9,500 of 20,000 calls of such a loop). Now a caller that finds a second full batch queued
behind the one the worker was woken for waits, holding nothing, until the worker has handled
one, at most a bound.
"""

from __future__ import annotations

import os
import threading

import openai

from tollmeter import Meter, MeterConfig
from tollmeter.transport.worker import BatchWorker

from .bodies import openai_bodies as O

CHAT_URL = "https://api.openai.com/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Hi"}]


def busy(units: int) -> int:
    """Interpreter work with no wait in it."""
    total = 0
    for n in range(units):
        total += n * n
    return total


def test_a_busy_caller_gives_the_worker_its_turn_and_nothing_is_dropped() -> None:
    handled: list[int] = []

    def handle(batch: list[int]) -> None:
        for item in batch:
            busy(300)
            handled.append(item)

    worker = BatchWorker(handle, max_batch_size=50, flush_interval=60, max_queue_size=200, make_way_wait=10)
    try:
        for item in range(4_000):
            busy(300)
            os.urandom(16)  # lets the interpreter lock go for a moment, as the SDK does
            assert worker.submit(item)
        assert worker.flush(30)
        assert worker.dropped == 0 and handled == list(range(4_000))
    finally:
        worker.shutdown(10)


def test_a_held_up_worker_costs_each_caller_at_most_the_bound_once_per_batch_queued() -> None:
    """The worker is held in its first batch (a write to a locked store, a hung server): the
    callers behind it wait at most `make_way_wait` each time another full batch is queued
    (batches of 10 here, so every 50 items: never more often), then go on; what the queue
    cannot hold is dropped and counted, as before."""
    release, entered = threading.Event(), threading.Event()
    handled: list[int] = []

    def handle(batch: list[int]) -> None:
        entered.set()
        release.wait(30)
        handled.extend(batch)

    worker = BatchWorker(handle, max_batch_size=10, flush_interval=60, max_queue_size=100, make_way_wait=0.01)
    try:
        for item in range(10):
            worker.submit(item)
        assert entered.wait(10)  # the worker holds the first 10
        accepted = sum(worker.submit(item) for item in range(10, 130))
        assert accepted == 100 and worker.dropped == 20
        assert worker.ways_made == 2  # at 50 and 100 queued
        release.set()
        assert worker.flush(10)
        assert sorted(handled) == list(range(110))
    finally:
        release.set()
        worker.shutdown(10)


def test_a_loop_of_sdk_calls_with_the_default_settings_loses_no_event(http_mock) -> None:
    """The real SDK in a loop with no I/O wait (a transport mock): the worker keeps up."""
    http_mock.post(CHAT_URL).respond(json=O.CHAT_PLAIN)
    # A queue of ten batches: a caller gives the worker eight turns of 0.1 s before one drop,
    # enough on a loaded machine. (Without the turns this loop loses events on a quiet machine
    # only: 2,600 of 3,000 with a 400-event queue; under load the scheduler lets the worker in.
    # The two tests above fail without them either way.)
    meter = Meter(MeterConfig(store=":memory:", max_batch_size=100, max_queue_size=1_000))
    meter.patch_all()
    client = openai.OpenAI(api_key="k", max_retries=0)
    try:
        with meter.for_tenant("acme"):
            for _ in range(3_000):
                client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert meter.flush(30)
        stats = meter.stats()
        assert stats["dropped"] == 0 and stats["recorded"] == 3_000
        with meter._limits.store.report() as conn:
            stored = conn.exec_driver_sql("SELECT count(*) FROM events WHERE tenant_id = 'acme'").scalar()
        assert stored == 3_000
    finally:
        meter.shutdown()
