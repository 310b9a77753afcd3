"""Calls made inside an instrumented call are passed through, and only those: the sync wrapper's
mark is its thread's (`call.sync_calls`), the async wrapper's a ContextVar (`call.in_call`).
Real SDK calls over respx, real threads, a real event loop and a real fork."""

from __future__ import annotations

import asyncio
import os
import threading

import httpx
import openai
import pytest

from tollmeter.instrument import call as call_module

from .bodies import openai_bodies as B

CHAT = "https://api.openai.com/v1/chat/completions"
EMBEDDINGS = "https://api.openai.com/v1/embeddings"
MESSAGES = [{"role": "user", "content": "Hi"}]


def test_an_async_call_run_inside_a_sync_call_is_not_counted_twice(recorder, http_mock):
    """An event loop run inside a sync instrumented call (as a sync client over an async one
    does): its instrumented coroutine is part of the outer call."""
    inner = openai.AsyncOpenAI(api_key="k", max_retries=0)

    def respond(request):
        asyncio.run(inner.embeddings.create(model="text-embedding-3-small", input="x"))
        return httpx.Response(200, json=B.CHAT_PLAIN)

    http_mock.post(EMBEDDINGS).respond(json=B.EMBEDDINGS)
    http_mock.post(CHAT).mock(side_effect=respond)
    openai.OpenAI(api_key="k", max_retries=0).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert [e.endpoint for e in recorder.recorded()] == ["chat.completions"]


def test_a_call_on_another_thread_during_a_sync_call_is_counted(recorder, http_mock):
    """The flag is the calling thread's: another thread's call made while the first is under way
    is a call of its own."""
    entered, other_done = threading.Event(), threading.Event()

    def respond(request):
        entered.set()
        assert other_done.wait(10)
        return httpx.Response(200, json=B.CHAT_PLAIN)

    http_mock.post(EMBEDDINGS).respond(json=B.EMBEDDINGS)
    http_mock.post(CHAT).mock(side_effect=respond)
    client = openai.OpenAI(api_key="k", max_retries=0)

    def other():
        assert entered.wait(10)
        client.embeddings.create(model="text-embedding-3-small", input="x")
        other_done.set()

    thread = threading.Thread(target=other)
    thread.start()
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    thread.join(10)
    assert sorted(e.endpoint for e in recorder.recorded()) == ["chat.completions", "embeddings"]


def test_a_failed_sync_call_leaves_its_thread_outside_any_call(recorder, http_mock):
    http_mock.post(CHAT).mock(side_effect=[httpx.Response(500, json={"error": {"message": "boom"}}),
                                           httpx.Response(200, json=B.CHAT_PLAIN)])
    client = openai.OpenAI(api_key="k", max_retries=0)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    events = recorder.recorded()
    assert [(e.status_code, e.error) for e in events] == [(500, "InternalServerError"), (None, None)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_process_forked_during_a_sync_call_starts_outside_any_call(recorder, http_mock):
    """The forking thread is in a call in the parent, not in the child: a thread of the child
    that is given the same ident is not taken for one in a call (the mark is cleared at fork)."""
    seen = {}

    def respond(request):
        seen["parent"] = threading.get_ident() in call_module.sync_calls
        pid = os.fork()
        if pid == 0:  # the child: report and leave at once, nothing of the parent's run
            os._exit(0 if not call_module.sync_calls else 3)
        _, status = os.waitpid(pid, 0)
        seen["child status"] = os.waitstatus_to_exitcode(status)
        return httpx.Response(200, json=B.CHAT_PLAIN)

    http_mock.post(CHAT).mock(side_effect=respond)
    openai.OpenAI(api_key="k", max_retries=0).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert seen == {"parent": True, "child status": 0}
    assert not call_module.sync_calls
    assert len(recorder.recorded()) == 1


def test_concurrent_async_calls_on_one_loop_are_each_counted(recorder, http_mock):
    """Coroutines interleave on one thread: one task's call under way never hides another's."""
    http_mock.post(CHAT).respond(json=B.CHAT_PLAIN)
    client = openai.AsyncOpenAI(api_key="k", max_retries=0)

    async def main():
        await asyncio.gather(*(client.chat.completions.create(model="gpt-4o", messages=MESSAGES) for _ in range(5)))

    asyncio.run(main())
    assert len(recorder.recorded()) == 5
