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
from contextlib import contextmanager

import openai
import pytest

from tollmeter.events import Usage

from .bodies import openai_bodies as B
from .conftest import collect

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
