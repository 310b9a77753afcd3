"""Transparency: what the caller gets is the same with and without tollmeter, chunk for chunk.
Wrappers are `wrapt` proxies: `isinstance()` and `__class__` hold, `type()` names the proxy, so
the checks below look at `__class__` as SDK and application code do.

Each scenario runs twice against the same mocked API (which, like the real one, adds a usage
chunk only when asked): once on the bare SDK and once patched. What the caller can observe
(types, dumps including which fields were set, helper results, exceptions) must be equal.
"""

from __future__ import annotations

import asyncio
import json

import anthropic
import httpx
import openai
import pytest


from .bodies import anthropic_bodies as A
from .bodies import openai_bodies as O
from .conftest import observe, run_bare_then_patched

pytestmark = pytest.mark.sdk

MSGS = [{"role": "user", "content": "What is the capital of France?"}]
ANTHROPIC_ARGS = dict(model=A.MODEL, max_tokens=256, messages=MSGS)




def mock_apis(router):
    def chat(request):
        options = json.loads(request.content).get("stream_options") or {}
        if not json.loads(request.content).get("stream"):
            return httpx.Response(200, json=O.CHAT_TOOL_CALLS, headers=O.HEADERS)
        body = O.CHAT_STREAM_WITH_USAGE if options.get("include_usage") else O.CHAT_STREAM_NO_USAGE
        return httpx.Response(200, text=body, headers=O.SSE_HEADERS)

    def responses(request):
        if json.loads(request.content).get("stream"):
            return httpx.Response(200, text=O.RESPONSES_STREAM, headers=O.SSE_HEADERS)
        return httpx.Response(200, json=O.RESPONSES_REASONING, headers=O.HEADERS)

    def messages(request):
        if json.loads(request.content).get("stream"):
            return httpx.Response(200, text=A.STREAM_TOOL_USE, headers=A.STREAM_HEADERS)
        return httpx.Response(200, json=A.MESSAGE_CACHED, headers=A.HEADERS)

    router.post("https://api.openai.com/v1/chat/completions").mock(side_effect=chat)
    router.post("https://api.openai.com/v1/responses").mock(side_effect=responses)
    router.post("https://api.anthropic.com/v1/messages").mock(side_effect=messages)
    router.post("https://api.openai.com/v1/embeddings").respond(429, json=O.ERROR_429, headers=O.HEADERS)


def oai():
    return openai.OpenAI(api_key="k", max_retries=0)


def ant():
    return anthropic.Anthropic(api_key="k", max_retries=0)


def chat_create():
    return observe(oai().chat.completions.create(model="gpt-4o", messages=MSGS))


def chat_stream():
    return observe(list(oai().chat.completions.create(model="gpt-4o", messages=MSGS, stream=True)))


def chat_stream_asking_usage():
    return observe(list(oai().chat.completions.create(
        model="gpt-4o", messages=MSGS, stream=True, stream_options={"include_usage": True})))


def chat_stream_helper():
    with oai().chat.completions.stream(model="gpt-4o", messages=MSGS) as stream:
        events = [observe(e) for e in stream]
        return events, observe(stream.get_final_completion())


def chat_raw():
    raw = oai().chat.completions.with_raw_response.create(model="gpt-4o", messages=MSGS)
    return raw.__class__.__qualname__, dict(raw.headers), observe(raw.parse())


def chat_raw_stream():
    raw = oai().chat.completions.with_raw_response.create(model="gpt-4o", messages=MSGS, stream=True)
    stream = raw.parse()
    return raw.__class__.__qualname__, stream.__class__.__qualname__, observe(list(stream))


def responses_create():
    return observe(oai().responses.create(model="o4-mini", input="hi"))


def responses_stream_helper():
    with oai().responses.stream(model="gpt-4.1", input="hi") as stream:
        return [observe(e) for e in stream], observe(stream.get_final_response())


def error():
    try:
        oai().embeddings.create(model="text-embedding-3-small", input="x")
    except openai.RateLimitError as exc:
        return type(exc).__qualname__, str(exc), exc.status_code, exc.body, exc.request_id


def messages_create():
    return observe(ant().messages.create(**ANTHROPIC_ARGS))


def messages_stream():
    return observe(list(ant().messages.create(**ANTHROPIC_ARGS, stream=True)))


def messages_stream_manager():
    with ant().messages.stream(**ANTHROPIC_ARGS) as stream:
        events = [observe(e) for e in stream]
        return events, observe(stream.get_final_message()), stream.request_id


def messages_text_stream():
    with ant().messages.stream(**ANTHROPIC_ARGS) as stream:
        return list(stream.text_stream), observe(stream.get_final_message())


def messages_raw():
    raw = ant().messages.with_raw_response.create(**ANTHROPIC_ARGS)
    return raw.__class__.__qualname__, dict(raw.headers), observe(raw.parse())


async def _async_both():
    client = openai.AsyncOpenAI(api_key="k", max_retries=0)
    chunks = [c async for c in await client.chat.completions.create(model="gpt-4o", messages=MSGS, stream=True)]
    async with anthropic.AsyncAnthropic(api_key="k", max_retries=0).messages.stream(**ANTHROPIC_ARGS) as stream:
        events = [e async for e in stream]
        final = await stream.get_final_message()
    return observe(chunks), observe(events), observe(final)


def async_streams():
    return asyncio.run(_async_both())


SCENARIOS = [chat_create, chat_stream, chat_stream_asking_usage, chat_stream_helper, chat_raw, chat_raw_stream,
             responses_create, responses_stream_helper, error, messages_create, messages_stream,
             messages_stream_manager, messages_text_stream, messages_raw, async_streams]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_patched_result_equals_unpatched(http_mock, scenario):
    mock_apis(http_mock)
    bare, patched, events = run_bare_then_patched(scenario)
    assert patched == bare
    assert events, "the patched run was not metered"
