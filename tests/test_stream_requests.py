"""The host sees exactly what it would without tollmeter (issue 12):

- a chunk the reader cannot read never lets the usage chunk tollmeter asked for through (the
  chunk filter is independent of the reader, and the reader reads malformed chunks as far as
  they go);
- a request is changed only where the provider's answer is known (OpenAI, Azure OpenAI at an
  API version that takes `stream_options`); elsewhere it goes out as written, so a server that
  always sends usage keeps its usage chunk and one that refuses `stream_options` keeps working.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest

from tollmeter import Meter, MeterConfig, Usage
from tollmeter.instrument import openai as openai_instrument

from .conftest import observe

pytestmark = pytest.mark.sdk

MESSAGES = [{"role": "user", "content": "hi"}]
SSE = {"content-type": "text/event-stream"}
USAGE = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}


def chunk(**fields):
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", **fields}


def content(text, reason=None):
    return chunk(choices=[{"index": 0, "delta": {"content": text}, "finish_reason": reason}])


#: One malformed chunk of each kind, between well-formed ones.
MALFORMED = {
    "delta null": chunk(choices=[{"index": 0, "delta": None, "finish_reason": None}]),
    "null tool call": chunk(choices=[{"index": 0, "delta": {"tool_calls": [None]}, "finish_reason": None}]),
    "tool calls not a list": chunk(choices=[{"index": 0, "delta": {"tool_calls": 7}, "finish_reason": None}]),
    "null choice": chunk(choices=[None]),
    "choices not a list": chunk(choices="abc"),
    "not an object": 5,
    "a list": [1, 2],
    "null": None,
    "missing fields": {"object": "chat.completion.chunk"},
    "finish reason not a string": chunk(choices=[{"index": 0, "delta": {}, "finish_reason": {"odd": 1}}]),
}


def openai_like(chunks, usage=USAGE):
    """Answer like OpenAI: `"usage": null` on every chunk and a last chunk of usage, only when asked."""

    def respond(request):
        asked = (json.loads(request.content).get("stream_options") or {}).get("include_usage") is True
        body = list(chunks)
        if asked:
            body = [{**c, "usage": None} if isinstance(c, dict) else c for c in body]
            body.append(chunk(choices=[], usage=usage))
        return httpx.Response(200, text="".join(f"data: {json.dumps(c)}\n\n" for c in body) + "data: [DONE]\n\n",
                              headers=SSE)

    return respond


def caller_view(base_url="https://api.openai.com/v1", **kwargs):
    client = openai.OpenAI(api_key="k", max_retries=0, base_url=base_url)
    try:
        return [observe(c) for c in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                                                   **kwargs)]
    except openai.APIStatusError as exc:
        return (type(exc).__name__, exc.status_code)


def meter(**options):
    events, errors = [], []
    m = Meter(MeterConfig(on_event=events.append, on_error=errors.append, flush_interval=0.05, **options))
    return m, events, errors


def bare_then_patched(scenario, **options):
    bare = scenario()
    m, events, errors = meter(**options)
    m.patch("openai")
    try:
        patched = scenario()
        assert m.flush(10)
    finally:
        m.shutdown()
    return bare, patched, events, errors


# -- a fault in reading never changes what the caller iterates ---------------------------------


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_a_malformed_chunk_never_shows_the_usage_chunk_asked_for(http_mock, kind):
    chunks = [content(""), MALFORMED[kind], content("hello"), content("", "stop")]
    http_mock.post("https://api.openai.com/v1/chat/completions").mock(side_effect=openai_like(chunks))
    bare, patched, events, errors = bare_then_patched(caller_view)
    assert patched == bare and len(patched) == 4
    [event] = events
    assert event.usage.input_tokens == 9 and event.usage.output_tokens == 3  # read past the bad chunk
    assert not errors  # read as far as it goes: no fault at all


def test_the_chunk_filter_stays_when_the_reader_faults(http_mock, monkeypatch):
    """Whatever makes the reader fault, the chunk filter alone decides what the caller sees."""

    def faulty_reader(self, call):
        def read(c):
            raise RuntimeError("a reader bug")
        return read

    monkeypatch.setattr(openai_instrument.ChatCompletions, "stream_reader", faulty_reader)
    chunks = [content(""), content("hello"), content("", "stop")]
    http_mock.post("https://api.openai.com/v1/chat/completions").mock(side_effect=openai_like(chunks))
    bare, patched, events, errors = bare_then_patched(caller_view)
    assert patched == bare and len(patched) == 3
    assert len(events) == 1 and [type(e) for e in errors] == [RuntimeError]  # reported once


def test_async_stream_with_malformed_chunks_is_unchanged(http_mock):
    chunks = [content(""), MALFORMED["delta null"], MALFORMED["not an object"], content("x", "stop")]
    http_mock.post("https://api.openai.com/v1/chat/completions").mock(side_effect=openai_like(chunks))

    async def scenario():
        client = openai.AsyncOpenAI(api_key="k", max_retries=0)
        return [observe(c) async for c in await client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True)]

    bare, patched, events, _ = bare_then_patched(lambda: asyncio.run(scenario()))
    assert patched == bare and len(patched) == 4
    assert events[0].usage.input_tokens == 9


# -- a request is changed only where the provider's answer is known ----------------------------


def record_requests(http_mock, url, respond):
    sent = []

    def recording(request):
        sent.append(json.loads(request.content))
        return respond(request)

    http_mock.post(url).mock(side_effect=recording)
    return sent


def test_a_server_that_refuses_stream_options_keeps_working(http_mock):
    """An unknown OpenAI-compatible server gets the request as written: no BadRequestError."""

    def refusing(request):
        if "stream_options" in json.loads(request.content):
            return httpx.Response(400, json={"error": {"message": "Unrecognized request argument supplied: "
                                                                  "stream_options"}})
        return httpx.Response(200, text="".join(f"data: {json.dumps(c)}\n\n" for c in
                                                [content("hi"), content("", "stop")]) + "data: [DONE]\n\n",
                              headers=SSE)

    base = "https://llm-gateway.example.com/v1"
    sent = record_requests(http_mock, f"{base}/chat/completions", refusing)
    bare, patched, events, _ = bare_then_patched(lambda: caller_view(base))
    assert patched == bare and len(patched) == 2
    assert all("stream_options" not in body for body in sent)
    assert events[0].provider == "openai-compatible" and events[0].usage == Usage()  # no usage was sent


@pytest.mark.parametrize("base", ["https://openrouter.ai/api/v1", "http://localhost:8000/v1",
                                  "https://api.deepseek.com/v1", "https://api.groq.com/openai/v1"])
def test_a_server_that_always_sends_usage_keeps_its_usage_chunk(http_mock, base):
    body = [content("hi"), content("", "stop"), chunk(choices=[], usage=USAGE)]

    def always(request):
        return httpx.Response(200, text="".join(f"data: {json.dumps(c)}\n\n" for c in body) + "data: [DONE]\n\n",
                              headers=SSE)

    sent = record_requests(http_mock, f"{base}/chat/completions", always)
    bare, patched, events, _ = bare_then_patched(lambda: caller_view(base))
    assert patched == bare and len(patched) == 3  # the usage chunk included, as unpatched
    assert all("stream_options" not in body for body in sent)
    assert events[0].usage.input_tokens == 9


def test_openai_is_asked_and_the_answer_hidden(http_mock):
    sent = record_requests(http_mock, "https://api.openai.com/v1/chat/completions",
                           openai_like([content("hi"), content("", "stop")]))
    bare, patched, events, _ = bare_then_patched(caller_view)
    assert patched == bare
    assert sent[-1]["stream_options"] == {"include_usage": True} and "stream_options" not in sent[0]
    assert events[0].usage.input_tokens == 9


@pytest.mark.parametrize("api_version, asks", [
    ("2024-10-21", True),
    ("2024-08-01-preview", True),
    ("2025-04-01-preview", True),
    ("preview", True),
    ("2024-06-01", False),
    ("2024-02-15-preview", False),
])
def test_azure_is_asked_only_at_api_versions_that_take_stream_options(http_mock, api_version, asks):
    sent = record_requests(http_mock, "https://contoso.openai.azure.com/openai/deployments/gpt-4o/chat/completions",
                           openai_like([content("hi"), content("", "stop")]))

    def scenario():
        azure = openai.AzureOpenAI(api_key="k", api_version=api_version, max_retries=0,
                                   azure_endpoint="https://contoso.openai.azure.com")
        return [observe(c) for c in azure.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)]

    bare, patched, events, _ = bare_then_patched(scenario)
    assert patched == bare
    assert ("stream_options" in sent[-1]) is asks
    assert events[0].provider == "azure" and (events[0].usage.input_tokens == 9) is asks


@pytest.mark.parametrize("setting, base, asks", [
    (True, "https://llm-gateway.example.com/v1", True),
    (False, "https://api.openai.com/v1", False),
    ({"openai-compatible": True}, "https://llm-gateway.example.com/v1", True),
    ({"self-hosted": True}, "https://llm-gateway.example.com/v1", False),
    ({"openai": False}, "https://api.openai.com/v1", False),
    ({"self-hosted": True}, "http://localhost:8000/v1", True),
])
def test_stream_usage_setting_overrides_the_default(http_mock, setting, base, asks):
    sent = record_requests(http_mock, f"{base}/chat/completions", openai_like([content("hi"), content("", "stop")]))
    bare, patched, events, _ = bare_then_patched(lambda: caller_view(base), stream_usage=setting)
    assert patched == bare
    assert ("stream_options" in sent[-1]) is asks
    assert (events[0].usage.input_tokens == 9) is asks


def test_the_callers_own_stream_options_are_kept(http_mock):
    sent = record_requests(http_mock, "https://llm-gateway.example.com/v1/chat/completions",
                           openai_like([content("hi"), content("", "stop")]))
    bare, patched, events, _ = bare_then_patched(
        lambda: caller_view("https://llm-gateway.example.com/v1", stream_options={"include_usage": True}))
    assert patched == bare and len(patched) == 3  # the caller asked: the caller sees it
    assert sent[-1]["stream_options"] == {"include_usage": True}
    assert events[0].usage.input_tokens == 9
