"""The guard's settling thread (`limits.settler.Settler`): items handed over are settled on one
thread that starts with the first and leaves when idle, an item handed over as it leaves is not
lost, and a settler that cannot start a thread says so (the caller then wakes the worker)."""

from __future__ import annotations

import queue
import threading
import time

import openai

from tollmeter import Meter, MeterConfig
from tollmeter.limits import settler as settler_module
from tollmeter.limits.settler import Settler

from .bodies import openai_bodies as O

CHAT_URL = "https://api.openai.com/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_items_are_settled_in_order_on_one_thread_that_leaves_when_idle() -> None:
    seen: list[tuple[int, threading.Thread]] = []
    settler = Settler(lambda item: seen.append((item, threading.current_thread())), idle=0.1)
    assert all(settler.submit(n) for n in range(5))
    assert wait_for(lambda: len(seen) == 5)
    assert [n for n, _ in seen] == [0, 1, 2, 3, 4]
    first = seen[0][1]
    assert {thread for _, thread in seen} == {first} and first.name == "tollmeter-settle"
    assert first is not threading.current_thread()
    assert wait_for(lambda: not first.is_alive())  # idle: it left
    assert not settler._alive
    assert settler.submit(5)  # a new one starts
    assert wait_for(lambda: len(seen) == 6) and seen[-1][0] == 5 and seen[-1][1] is not first


def test_a_failing_item_does_not_stop_the_thread() -> None:
    seen: list[int] = []

    def settle(item: int) -> None:
        if item == 1:
            raise RuntimeError("boom")
        seen.append(item)

    settler = Settler(settle, idle=5)
    for n in range(3):
        settler.submit(n)
    assert wait_for(lambda: seen == [0, 2])


class _Racing:
    """A SimpleQueue stand-in that makes an item arrive at the worst moments of the thread's exit."""

    def __init__(self, on_empty) -> None:
        self.real: queue.SimpleQueue = queue.SimpleQueue()
        self.timeouts = 0
        self.on_empty = on_empty

    def put(self, item) -> None:
        self.real.put(item)

    def get(self, timeout: float):
        return self.real.get(timeout=timeout)

    def empty(self) -> bool:
        return self.on_empty(self)


def test_an_item_handed_over_just_before_the_thread_looks_is_taken() -> None:
    """An item put as the idle thread's wait ran out, before it looks at the queue: it takes
    the item and stays."""
    seen: list[str] = []
    settler = Settler(seen.append, idle=0.05)
    put: list[bool] = []

    def before_the_look(q: _Racing) -> bool:
        if not put:
            put.append(True)
            q.real.put("before")
        return q.real.empty()

    settler._items = _Racing(before_the_look)  # type: ignore[assignment]
    assert settler._start()
    assert wait_for(lambda: seen == ["before"])
    assert settler._alive or wait_for(lambda: not settler._alive)  # (it may have left since)


def test_an_item_handed_over_just_after_the_thread_looked_starts_another() -> None:
    """An item put once the leaving thread has looked (its lock still held): the hand-over
    finds no thread running and starts one, which settles it."""
    seen: list[tuple[str, threading.Thread]] = []
    settler = Settler(lambda item: seen.append((item, threading.current_thread())), idle=0.05)
    handing: list[threading.Thread] = []
    leaving: list[threading.Thread] = []

    def after_the_look(q: _Racing) -> bool:
        looked = q.real.empty()
        if looked and not handing:  # another thread hands an item over now: it waits for the lock
            leaving.append(threading.current_thread())
            handing.append(threading.Thread(target=settler.submit, args=("after",)))
            handing[0].start()
            handing[0].join(0.2)
        return looked

    settler._items = _Racing(after_the_look)  # type: ignore[assignment]
    assert settler._start()
    assert wait_for(lambda: [item for item, _ in seen] == ["after"])
    assert seen[0][1] is not leaving[0]  # a new thread
    handing[0].join(5)


def test_a_settler_that_cannot_start_a_thread_says_so(monkeypatch) -> None:
    class Unstartable(threading.Thread):
        def start(self) -> None:
            raise RuntimeError("can't start new thread")

    monkeypatch.setattr(settler_module.threading, "Thread", Unstartable)
    settler = Settler(lambda item: None)
    assert settler.submit(1) is False and not settler._alive


def test_the_worker_settles_when_the_settling_thread_cannot(http_mock) -> None:
    """$5 a month on gpt-4o without max_tokens: every call leaves its lease short. With no
    settling thread to be had, the call that ends wakes the worker instead (its own interval is
    a minute), which settles it; and the next short call tries the settling thread again."""
    meter = Meter(MeterConfig(store=":memory:", flush_interval=60, limits_wait=30))
    meter.patch_all()
    http_mock.post(CHAT_URL).respond(json=O.CHAT_PLAIN)
    try:
        meter.set_limit("small", 5, frequency="per_month")
        client = openai.OpenAI(api_key="k", max_retries=0)
        with meter.for_tenant("small"):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert meter.flush(10)
        guard = meter._limits.guard
        handed: list[object] = []

        def refuse(item: object) -> bool:
            handed.append(item)
            return False

        guard._settler.submit = refuse
        threads: list[threading.Thread] = []
        settle = guard._settle_record

        def settling(record: object) -> None:
            threads.append(threading.current_thread())
            settle(record)

        guard._settle_record = settling
        for made in range(1, 3):
            with meter.for_tenant("small"):
                client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            assert wait_for(lambda: guard.reserved("small") == 0, 20)
            assert len(threads) == made and len(handed) == made  # asked each time
        assert all(thread is meter._pipeline.worker._thread for thread in threads)
        assert not guard._budgets["small"].settle_due
    finally:
        meter.shutdown()
