"""The background work pauses every slice of work (`pacing.give_way`), so that a thread whose
wait is over gets the interpreter lock during the worker's batch instead of after it.

CPython hands the lock from a holder that never lets it go to a waiting thread only after the
switch interval. The tests set that interval to ten seconds, far longer than the work: a thread whose
sleep ends during the work can then run during it only if the work gives way. (The worker's own
batch is no control for this: the event ids' `os.urandom` lets the lock go for a moment per
event, which hands it over now and then.)
"""

from __future__ import annotations

import os
import sys
import threading
import time

import openai
import pytest

from tollmeter import Meter, MeterConfig
from tollmeter import pacing, pipeline
from tollmeter.limits import keeper
from tollmeter.store import store
from tollmeter.store.store import Store
from tollmeter.transport.worker import BatchWorker

from .bodies import openai_bodies as O

CHAT_URL = "https://api.openai.com/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def long_switch_interval():
    before = sys.getswitchinterval()
    sys.setswitchinterval(10.0)
    yield
    sys.setswitchinterval(before)


def flushed_calls(config: MeterConfig, count: int) -> Meter:
    """`count` openai calls for one tenant through a meter with `config`, then a `flush` (in
    time, or the test fails); the meter shut down."""
    meter = Meter(config)
    client = openai.OpenAI(api_key="sk-test", max_retries=0)
    meter.patch_all()
    try:
        with meter.for_tenant("acme"):
            for _ in range(count):
                client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert meter.flush(30)
    finally:
        meter.unpatch_all()
        meter.shutdown()
    return meter


def wakes_during(work) -> int:
    """How many times a thread sleeping a millisecond at a time ran on while `work` ran."""
    running, stop = threading.Event(), threading.Event()
    wakes = 0

    def sleeper() -> None:
        nonlocal wakes
        while not stop.is_set():
            time.sleep(0.001)
            if running.is_set():
                wakes += 1

    thread = threading.Thread(target=sleeper)
    thread.start()
    time.sleep(0.01)
    running.set()
    work()
    running.clear()
    stop.set()
    thread.join(10)
    return wakes


def pure_python_work(step) -> None:
    """About 100 ms of interpreter work that lets the lock go nowhere but in `step`."""
    for _ in range(2_000):
        total = 0
        for n in range(2_000):
            total += n
        step()


def test_a_thread_whose_wait_is_over_runs_while_the_work_gives_way(long_switch_interval) -> None:
    pacing._due = 0.0
    assert wakes_during(lambda: pure_python_work(pacing.give_way)) >= 3


def test_without_giving_way_the_thread_waits_for_the_end_of_the_work(long_switch_interval) -> None:
    """The control: the same work, nothing in it lets the lock go."""
    assert wakes_during(lambda: pure_python_work(lambda: None)) == 0


def test_each_per_event_loop_of_a_batch_gives_way(http_mock, tmp_path, monkeypatch) -> None:
    """Building and pricing (the pipeline), the rows and settlements (the keeper), binding and
    tallying the rows (the store): each gives way once per event."""
    http_mock.post(CHAT_URL).respond(200, json=O.CHAT_PLAIN)
    calls = {"pipeline": 0, "keeper": 0, "store": 0}
    for name, module in (("pipeline", pipeline), ("keeper", keeper), ("store", store)):
        def counted(name=name) -> None:
            calls[name] += 1
            pacing.give_way()
        monkeypatch.setattr(module, "give_way", counted)
    flushed_calls(MeterConfig(store=str(tmp_path / "events.db"), flush_interval=3600), 300)
    assert calls == {"pipeline": 300, "keeper": 300, "store": 600}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clocked(monkeypatch):
    """`give_way` on a clock the test moves, its pauses counted instead of slept."""
    clock = FakeClock()
    pauses: list[float] = []
    monkeypatch.setattr(pacing, "perf_counter", clock)
    monkeypatch.setattr(pacing, "sleep", pauses.append)
    monkeypatch.setattr(pacing, "_due", 0.0)
    other = threading.Event()
    thread = threading.Thread(target=other.wait)  # another thread that could take the turn
    thread.start()
    yield clock, pauses
    other.set()
    thread.join()


def test_one_pause_per_slice_of_work(clocked) -> None:
    clock, pauses = clocked
    for _ in range(20):  # 20 steps of 50 µs: 1 ms of work
        pacing.give_way()
        clock.now += 0.00005
    assert pauses == [pacing.PAUSE] * 5  # at 0, 200, 400, 600 and 800 µs


def test_no_pause_while_somebody_waits_for_the_work(clocked) -> None:
    clock, pauses = clocked
    with pacing.hurried():
        for _ in range(20):
            pacing.give_way()
            clock.now += 0.00005
    assert pauses == []
    pacing.give_way()
    assert pauses == [pacing.PAUSE]


def test_no_pause_when_no_other_thread_could_take_the_turn(clocked, monkeypatch) -> None:
    clock, pauses = clocked
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    for _ in range(20):
        pacing.give_way()
        clock.now += 0.00005
    assert pauses == []


def test_flush_waits_without_pauses(http_mock, monkeypatch) -> None:
    """A caller waiting for the worker (`flush`; `shutdown` and the busy caller's turn alike)
    wants the batch done: the worker does not pause meanwhile."""
    http_mock.post(CHAT_URL).respond(200, json=O.CHAT_PLAIN)
    pauses: list[float] = []
    monkeypatch.setattr(pacing, "sleep", pauses.append)
    meter = flushed_calls(MeterConfig(store=False, flush_interval=3600, max_batch_size=5_000), 500)
    assert pauses == []
    assert meter.stats()["recorded"] == 500


def test_no_pause_while_a_caller_waits_for_its_lease(http_mock, monkeypatch) -> None:
    """A caller waiting for a lease waits for a store transaction the worker's pauses would
    lengthen: the lease request (on its own thread) runs while the work is hurried."""
    http_mock.post(CHAT_URL).respond(200, json=O.CHAT_PLAIN)
    seen: list[int] = []
    grant = Store.grant

    def watched_grant(self, *args, **kwargs):
        deadline = time.monotonic() + 2
        while not pacing._hurried and time.monotonic() < deadline:  # the caller gets to its wait
            time.sleep(0.001)
        seen.append(pacing._hurried)
        return grant(self, *args, **kwargs)

    monkeypatch.setattr(Store, "grant", watched_grant)
    meter = Meter(MeterConfig(store=":memory:", limits_wait=30))
    meter.set_limit("acme", 100, frequency="per_month")
    client = openai.OpenAI(api_key="sk-test", max_retries=0)
    meter.patch_all()
    try:
        with meter.for_tenant("acme"):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    finally:
        meter.unpatch_all()
        meter.shutdown()
    assert seen and seen[0] >= 1
    assert pacing._hurried == 0


def test_a_forked_child_does_not_inherit_the_parents_waits() -> None:
    """A parent thread waiting on the work when the process forks (its `flush`, say) is not the
    child's: the child's worker pauses, and its own waits count from zero."""
    inside, release = threading.Event(), threading.Event()

    def waiting() -> None:
        with pacing.hurried():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=waiting)
    thread.start()
    assert inside.wait(10)
    try:
        pid = os.fork()
        if pid == 0:  # the child: report by the exit status alone
            ok = pacing._hurried == 0
            with pacing.hurried():
                ok = ok and pacing._hurried == 1
            os._exit(0 if ok and pacing._hurried == 0 else 1)
        _, status = os.waitpid(pid, 0)
    finally:
        release.set()
        thread.join(10)
    assert os.waitstatus_to_exitcode(status) == 0
    assert pacing._hurried == 0


def busy_batch(batch: list[int]) -> None:
    """A batch handler of pure-Python work that gives way after each item, as the pipeline's."""
    for _ in batch:
        total = 0
        for n in range(300):
            total += n
        pacing.give_way()


def test_shutdown_waits_without_pauses(monkeypatch) -> None:
    """`shutdown` hands what is queued to the worker and waits for it: no pauses meanwhile.
    (The worker itself: a meter's `shutdown` flushes first.)"""
    pauses: list[float] = []
    monkeypatch.setattr(pacing, "sleep", pauses.append)
    worker = BatchWorker(busy_batch, max_batch_size=5_000, flush_interval=3600, max_queue_size=10_000)
    for item in range(2_000):
        assert worker.submit(item)
    assert worker.shutdown(30)
    assert pauses == []
    assert worker.queued == 0 and worker.submitted == 2_000


def test_a_caller_giving_the_worker_its_turn_waits_hurried() -> None:
    """A busy caller that gives the worker its turn (`_make_way`) waits for a batch: the work is
    hurried all the while it waits."""
    worker = BatchWorker(busy_batch, max_batch_size=50, flush_interval=60, max_queue_size=10_000, make_way_wait=10)
    seen: list[int] = []
    wait = worker._progress.wait

    def watched_wait(timeout=None):
        if threading.current_thread() is not worker._thread:
            seen.append(pacing._hurried)
        return wait(timeout)

    worker._progress.wait = watched_wait
    try:
        for item in range(3_000):
            total = 0
            for n in range(300):
                total += n
            os.urandom(16)  # lets the interpreter lock go for a moment, as the SDK does
            worker.submit(item)
        assert worker.flush(30)
    finally:
        worker.shutdown(10)
    assert worker.ways_made > 0
    assert seen and min(seen) >= 1
