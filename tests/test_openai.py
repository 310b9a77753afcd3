"""The openai SDK, on bodies shaped as the API sends them (tests/bodies/openai_bodies.py).

Expected usage is written out by hand from each body. OpenAI's totals are already inclusive:
cached tokens are inside prompt_tokens, reasoning tokens inside completion_tokens.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tollmeter import Usage

from .bodies import openai_bodies as B
from .conftest import collect

pytestmark = pytest.mark.sdk

BASE = "https://api.openai.com/v1"
CHAT = f"{BASE}/chat/completions"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def client(**kw) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test", max_retries=0, **kw)


def aclient(**kw) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="sk-test", max_retries=0, **kw)


def chat_usage(prompt, completion, *, cached=0, audio_in=0, reasoning=0, audio_out=0, accepted=0, rejected=0,
               image_in=None):
    """The Usage of a chat body whose prompt/completion details are all reported."""
    return Usage(input_tokens=prompt, output_tokens=completion, cache_read_tokens=cached, input_audio_tokens=audio_in,
                 input_image_tokens=image_in, reasoning_tokens=reasoning, output_audio_tokens=audio_out,
                 accepted_prediction_tokens=accepted, rejected_prediction_tokens=rejected)


def serve_stream(route, with_usage: str, without_usage: str):
    """Answer like the API: the usage chunk only when the request asked for it."""

    def respond(request):
        options = json.loads(request.content).get("stream_options") or {}
        body = with_usage if options.get("include_usage") else without_usage
        return httpx.Response(200, text=body, headers=B.SSE_HEADERS)

    route.side_effect = respond
    return route


# -- chat completions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, usage, tool_calls, finish, tier",
    [
        (B.CHAT_PLAIN, chat_usage(19, 10), 0, "stop", "default"),
        (B.CHAT_CACHED, chat_usage(2006, 300, cached=1920), 0, "stop", "default"),
        (B.CHAT_REASONING, chat_usage(26, 1484, reasoning=1344), 0, "stop", "default"),
        (B.CHAT_AUDIO, chat_usage(112, 187, audio_in=78, audio_out=146, image_in=0), 0, "stop", "default"),
        (B.CHAT_PREDICTION, chat_usage(341, 226, accepted=156, rejected=24), 0, "stop", "default"),
        (B.CHAT_TOOL_CALLS, chat_usage(82, 51), 2, "tool_calls", "default"),
        (B.CHAT_FLEX, chat_usage(1130, 845, reasoning=576), 0, "stop", "flex"),
        (B.CHAT_NO_USAGE, Usage(), 0, "stop", None),
        (B.CHAT_NULL_USAGE, Usage(), 0, "stop", None),
    ],
    ids=["plain", "cached", "reasoning", "audio", "prediction", "tool_calls", "flex", "no_usage", "null_usage"],
)
def test_chat_create(recorder, http_mock, body, usage, tool_calls, finish, tier):
    http_mock.post(CHAT).respond(json=body, headers=B.HEADERS)
    completion = client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert completion.id == body["id"]
    event = recorder.one()
    assert event.usage == usage
    assert (event.tool_calls, event.finish_reason, event.service_tier) == (tool_calls, finish, tier)
    assert (event.provider, event.endpoint, event.stream, event.partial) == ("openai", "chat.completions", False, False)
    assert (event.model, event.request_model) == (body["model"], "gpt-4o")
    assert event.request_id == B.HEADERS["x-request-id"]
    assert event.duration_ms > 0 and event.time_to_first_token_ms is None


async def test_async_chat_create(recorder, http_mock):
    http_mock.post(CHAT).respond(json=B.CHAT_CACHED, headers=B.HEADERS)
    completion = await aclient().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert completion.usage.prompt_tokens_details.cached_tokens == 1920
    assert recorder.one().usage == chat_usage(2006, 300, cached=1920)


def test_chat_parse_is_one_event(recorder, http_mock):
    http_mock.post(CHAT).respond(json=B.CHAT_PARSED, headers=B.HEADERS)
    parsed = client().chat.completions.parse(model="gpt-4o", messages=MESSAGES, response_format=B.CalendarEvent)
    assert isinstance(parsed.choices[0].message.parsed, B.CalendarEvent)
    assert recorder.one().usage == chat_usage(92, 13)


async def test_async_chat_parse(recorder, http_mock):
    http_mock.post(CHAT).respond(json=B.CHAT_PARSED, headers=B.HEADERS)
    await aclient().chat.completions.parse(model="gpt-4o", messages=MESSAGES, response_format=B.CalendarEvent)
    assert recorder.one().usage.output_tokens == 13


# -- chat streams --------------------------------------------------------------------------------


def test_chat_stream_asks_for_usage_and_hides_the_usage_chunk(recorder, http_mock):
    route = serve_stream(http_mock.post(CHAT), B.CHAT_STREAM_WITH_USAGE, B.CHAT_STREAM_NO_USAGE)
    stream = client().chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert isinstance(stream, openai.Stream)
    chunks = list(stream)
    assert all(chunk.choices for chunk in chunks)  # the usage-only chunk was not shown
    assert all("usage" not in chunk.model_fields_set for chunk in chunks)
    assert json.loads(route.calls.last.request.content)["stream_options"] == {"include_usage": True}
    event = recorder.one()
    assert event.usage == Usage(input_tokens=14, output_tokens=7, cache_read_tokens=0, input_audio_tokens=0,
                                reasoning_tokens=0, output_audio_tokens=0, accepted_prediction_tokens=0,
                                rejected_prediction_tokens=0)
    assert event.stream and not event.partial and event.finish_reason == "stop"
    assert event.request_id == B.SSE_HEADERS["x-request-id"]
    assert 0 <= event.time_to_first_token_ms <= event.duration_ms


def test_chat_stream_keeps_usage_chunk_the_caller_asked_for(recorder, http_mock):
    route = serve_stream(http_mock.post(CHAT), B.CHAT_STREAM_WITH_USAGE, B.CHAT_STREAM_NO_USAGE)
    chunks = list(client().chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 21
    assert json.loads(route.calls.last.request.content)["stream_options"] == {"include_usage": True}
    assert recorder.one().usage.input_tokens == 14


def test_chat_stream_merges_with_the_callers_stream_options(recorder, http_mock):
    route = serve_stream(http_mock.post(CHAT), B.CHAT_STREAM_WITH_USAGE, B.CHAT_STREAM_NO_USAGE)
    chunks = list(client().chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_obfuscation": False}))
    sent = json.loads(route.calls.last.request.content)["stream_options"]
    assert sent == {"include_obfuscation": False, "include_usage": True}
    assert all(chunk.choices for chunk in chunks) and recorder.one().usage.output_tokens == 7


def test_stream_usage_switch_off_sends_the_request_unchanged(http_mock):
    from .conftest import Recorder

    rec = Recorder(stream_usage=False)
    rec.meter.patch("openai")
    try:
        route = serve_stream(http_mock.post(CHAT), B.CHAT_STREAM_WITH_USAGE, B.CHAT_STREAM_NO_USAGE)
        list(client().chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
        assert "stream_options" not in json.loads(route.calls.last.request.content)
        event = rec.one()
        assert event.usage == Usage() and not event.partial  # no usage reported: None, not 0
    finally:
        rec.meter.shutdown()


@pytest.mark.parametrize(
    "body, usage, tool_calls",
    [
        (B.CHAT_STREAM_TOOL_CALLS, chat_usage(88, 56), 2),
        (B.CHAT_STREAM_REASONING, chat_usage(1562, 410, cached=1408, reasoning=320), 0),
    ],
    ids=["tool_calls", "reasoning"],
)
def test_chat_stream_details(recorder, http_mock, body, usage, tool_calls):
    http_mock.post(CHAT).respond(text=body, headers=B.SSE_HEADERS)
    list(client().chat.completions.create(model="o3-mini", messages=MESSAGES, stream=True))
    event = recorder.one()
    assert event.usage == usage and event.tool_calls == tool_calls


def test_usage_on_the_last_choice_chunk_is_read_and_the_chunk_shown(recorder, http_mock):
    http_mock.post("https://api.deepseek.com/v1/chat/completions").respond(
        text=B.CHAT_STREAM_USAGE_ON_LAST_CHOICE, headers=B.SSE_HEADERS)
    stream = client(base_url="https://api.deepseek.com/v1").chat.completions.create(
        model="deepseek-chat", messages=MESSAGES, stream=True)
    chunks = list(stream)
    assert chunks[-1].usage.total_tokens == 22  # it has a choice: the caller sees it, as unpatched
    event = recorder.one()
    assert event.provider == "deepseek"
    assert event.usage == Usage(input_tokens=13, output_tokens=9, cache_read_tokens=0)


async def test_async_chat_stream(recorder, http_mock):
    serve_stream(http_mock.post(CHAT), B.CHAT_STREAM_WITH_USAGE, B.CHAT_STREAM_NO_USAGE)
    stream = await aclient().chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert isinstance(stream, openai.AsyncStream)
    chunks = [chunk async for chunk in stream]
    assert all(chunk.choices for chunk in chunks)
    event = recorder.one()
    assert (event.usage.input_tokens, event.usage.output_tokens, event.partial) == (14, 7, False)


def test_chat_stream_helper(recorder, http_mock):
    serve_stream(http_mock.post(CHAT), B.CHAT_STREAM_WITH_USAGE, B.CHAT_STREAM_NO_USAGE)
    with client().chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "The capital of France is Paris."
    assert final.usage is None  # exactly as without tollmeter: the caller did not ask for usage
    event = recorder.one()
    assert (event.usage.input_tokens, event.usage.output_tokens) == (14, 7)


async def test_async_chat_stream_helper(recorder, http_mock):
    serve_stream(http_mock.post(CHAT), B.CHAT_STREAM_WITH_USAGE, B.CHAT_STREAM_NO_USAGE)
    async with aclient().chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        async for _ in stream:
            pass
    assert recorder.one().usage.output_tokens == 7


# -- how a stream ends ---------------------------------------------------------------------------


def _stream(http_mock):
    serve_stream(http_mock.post(CHAT), B.CHAT_STREAM_WITH_USAGE, B.CHAT_STREAM_NO_USAGE)
    return client().chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)


def test_break_then_close_is_one_partial_event(recorder, http_mock):
    stream = _stream(http_mock)
    for _ in stream:
        break
    stream.close()
    stream.close()
    event = recorder.one()
    assert event.partial and event.usage == Usage() and event.time_to_first_token_ms is not None


def test_with_block_left_early_is_one_partial_event(recorder, http_mock):
    with _stream(http_mock) as stream:
        next(iter(stream))
    assert recorder.one().partial


def test_with_block_read_to_the_end_is_complete(recorder, http_mock):
    with _stream(http_mock) as stream:
        for _ in stream:
            pass
    event = recorder.one()
    assert not event.partial and event.usage.output_tokens == 7


def test_abandoned_stream_is_recorded_when_collected(recorder, http_mock):
    stream = _stream(http_mock)
    next(stream)
    del stream
    collect()
    assert recorder.one().partial


def test_exception_in_the_callers_loop_is_recorded_partial(recorder, http_mock):
    with pytest.raises(KeyError):
        with _stream(http_mock) as stream:
            for _ in stream:
                raise KeyError("app bug")
    assert recorder.one().partial


def test_mid_stream_error_reaches_the_caller_and_is_recorded(recorder, http_mock):
    broken = ('data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o",'
              '"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}\n\n'
              'data: {"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}\n\n')
    http_mock.post(CHAT).respond(text=broken, headers=B.SSE_HEADERS)
    with pytest.raises(openai.APIError):
        for _ in client().chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
            pass
    event = recorder.one()
    assert event.error == "APIError" and event.partial


async def test_async_stream_closed_early(recorder, http_mock):
    serve_stream(http_mock.post(CHAT), B.CHAT_STREAM_WITH_USAGE, B.CHAT_STREAM_NO_USAGE)
    stream = await aclient().chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    async for _ in stream:
        break
    await stream.close()
    assert recorder.one().partial


async def test_async_with_block(recorder, http_mock):
    serve_stream(http_mock.post(CHAT), B.CHAT_STREAM_WITH_USAGE, B.CHAT_STREAM_NO_USAGE)
    async with await aclient().chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True) as stream:
        async for _ in stream:
            pass
    assert not recorder.one().partial


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status, body, exc_type", [
    (429, B.ERROR_429, openai.RateLimitError),
    (400, B.ERROR_400, openai.BadRequestError),
])
def test_http_error_reaches_the_caller_unchanged(recorder, http_mock, status, body, exc_type):
    http_mock.post(CHAT).respond(status, json=body, headers=B.HEADERS)
    with pytest.raises(exc_type) as raised:
        client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert raised.value.status_code == status and raised.value.body == body["error"]
    event = recorder.one()
    assert (event.error, event.status_code, event.request_id) == (exc_type.__name__, status, B.HEADERS["x-request-id"])
    assert event.usage == Usage()


async def test_async_error_is_the_same_object(recorder, http_mock):
    http_mock.post(CHAT).respond(429, json=B.ERROR_429)
    caught = []
    try:
        await aclient().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    except openai.RateLimitError as exc:
        caught.append(exc)
    assert caught and recorder.one().error == "RateLimitError"


def test_odd_usage_values_never_raise(recorder, http_mock):
    odd = {**B.CHAT_PLAIN, "usage": {"prompt_tokens": "12", "completion_tokens": -3, "total_tokens": None,
                                     "prompt_tokens_details": "not-an-object"}}
    http_mock.post(CHAT).respond(json=odd)
    completion = client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert completion.id == odd["id"]
    event = recorder.one()
    assert (event.usage.input_tokens, event.usage.output_tokens) == (12, None)


# -- raw responses -------------------------------------------------------------------------------


def test_with_raw_response(recorder, http_mock):
    http_mock.post(CHAT).respond(json=B.CHAT_CACHED, headers=B.HEADERS)
    raw = client().chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert raw.headers["x-request-id"] == B.HEADERS["x-request-id"]
    assert recorder.one().usage.cache_read_tokens == 1920
    assert raw.parse().usage.prompt_tokens == 2006


def test_with_raw_response_stream(recorder, http_mock):
    serve_stream(http_mock.post(CHAT), B.CHAT_STREAM_WITH_USAGE, B.CHAT_STREAM_NO_USAGE)
    raw = client().chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES, stream=True)
    stream = raw.parse()
    assert raw.parse() is stream  # the same object every time, as the SDK caches it
    assert all(chunk.choices for chunk in stream)
    assert recorder.one().usage.output_tokens == 7


def test_with_streaming_response_plain(recorder, http_mock):
    http_mock.post(CHAT).respond(json=B.CHAT_REASONING, headers=B.HEADERS)
    with client().chat.completions.with_streaming_response.create(model="o3-mini", messages=MESSAGES) as response:
        completion = response.parse()
    assert completion.usage.completion_tokens_details.reasoning_tokens == 1344
    assert recorder.one().usage.reasoning_tokens == 1344


def test_with_streaming_response_read_as_json(recorder, http_mock):
    http_mock.post(CHAT).respond(json=B.CHAT_REASONING, headers=B.HEADERS)
    with client().chat.completions.with_streaming_response.create(model="o3-mini", messages=MESSAGES) as response:
        data = response.json()
    assert data["usage"]["completion_tokens"] == 1484
    assert recorder.one().usage.reasoning_tokens == 1344  # read from the body the caller read


async def test_async_with_streaming_response_stream(recorder, http_mock):
    serve_stream(http_mock.post(CHAT), B.CHAT_STREAM_WITH_USAGE, B.CHAT_STREAM_NO_USAGE)
    async with aclient().chat.completions.with_streaming_response.create(
            model="gpt-4o", messages=MESSAGES, stream=True) as response:
        stream = await response.parse()
        chunks = [chunk async for chunk in stream]
    assert all(chunk.choices for chunk in chunks)
    assert recorder.one().usage.input_tokens == 14


# -- Responses API -------------------------------------------------------------------------------

RESPONSES = f"{BASE}/responses"


def responses_usage(input_, output, cached=0, reasoning=0):
    return Usage(input_tokens=input_, output_tokens=output, cache_read_tokens=cached, cache_write_tokens=0,
                 reasoning_tokens=reasoning)


@pytest.mark.parametrize(
    "body, usage, tool_calls, web_searches, tier",
    [
        (B.RESPONSES_PLAIN, responses_usage(36, 87), 0, 0, "default"),
        (B.RESPONSES_CACHED, responses_usage(3104, 112, cached=2944), 0, 0, "default"),
        (B.RESPONSES_REASONING, responses_usage(58, 1027, reasoning=896), 0, 0, "default"),
        (B.RESPONSES_TOOL_CALLS, responses_usage(291, 46), 2, 0, "default"),
        (B.RESPONSES_WEB_SEARCH, responses_usage(2918, 214), 0, 1, "default"),
        (B.RESPONSES_FLEX, responses_usage(1215, 1633, reasoning=1408), 0, 0, "flex"),
    ],
    ids=["plain", "cached", "reasoning", "tool_calls", "web_search", "flex"],
)
def test_responses_create(recorder, http_mock, body, usage, tool_calls, web_searches, tier):
    http_mock.post(RESPONSES).respond(json=body, headers=B.HEADERS)
    response = client().responses.create(model="gpt-4.1", input="hi")
    assert response.id == body["id"]
    event = recorder.one()
    assert event.usage == usage
    assert (event.tool_calls, event.web_search_requests, event.service_tier) == (tool_calls, web_searches, tier)
    assert (event.endpoint, event.finish_reason, event.model) == ("responses", "completed", body["model"])


async def test_async_responses_parse(recorder, http_mock):
    http_mock.post(RESPONSES).respond(json=B.RESPONSES_PARSED, headers=B.HEADERS)
    parsed = await aclient().responses.parse(model="gpt-4.1", input="hi", text_format=B.CalendarEvent)
    assert isinstance(parsed.output_parsed, B.CalendarEvent)
    assert recorder.one().usage == responses_usage(72, 14)


def test_responses_stream(recorder, http_mock):
    http_mock.post(RESPONSES).respond(text=B.RESPONSES_STREAM, headers=B.SSE_HEADERS)
    events = list(client().responses.create(model="gpt-4.1", input="hi", stream=True))
    assert events[-1].type == "response.completed"
    event = recorder.one()
    assert event.usage == responses_usage(14, 7) and not event.partial and event.time_to_first_token_ms is not None


def test_responses_stream_helper(recorder, http_mock):
    http_mock.post(RESPONSES).respond(text=B.RESPONSES_STREAM, headers=B.SSE_HEADERS)
    with client().responses.stream(model="gpt-4.1", input="hi") as stream:
        final = stream.get_final_response()
    assert final.usage.total_tokens == 21
    assert recorder.one().usage == responses_usage(14, 7)


async def test_async_responses_stream_helper(recorder, http_mock):
    http_mock.post(RESPONSES).respond(text=B.RESPONSES_STREAM, headers=B.SSE_HEADERS)
    async with aclient().responses.stream(model="gpt-4.1", input="hi") as stream:
        async for _ in stream:
            pass
    assert recorder.one().usage.output_tokens == 7


def test_responses_stream_incomplete(recorder, http_mock):
    http_mock.post(RESPONSES).respond(text=B.RESPONSES_STREAM_INCOMPLETE, headers=B.SSE_HEADERS)
    list(client().responses.create(model="gpt-4.1", input="hi", stream=True, max_output_tokens=16))
    event = recorder.one()
    assert event.usage == responses_usage(14, 16) and event.finish_reason == "max_output_tokens"


def test_responses_stream_failed(recorder, http_mock):
    http_mock.post(RESPONSES).respond(text=B.RESPONSES_STREAM_FAILED, headers=B.SSE_HEADERS)
    list(client().responses.create(model="gpt-4.1", input="hi", stream=True))
    event = recorder.one()
    assert event.error == "response.failed: server_error" and event.finish_reason == "failed"


def test_responses_stream_error_event(recorder, http_mock):
    http_mock.post(RESPONSES).respond(text=B.RESPONSES_STREAM_ERROR, headers=B.SSE_HEADERS)
    with pytest.raises(openai.APIError):
        list(client().responses.create(model="gpt-4.1", input="hi", stream=True))
    assert recorder.one().error == "APIError"


def test_responses_stream_flat_error_event(recorder, http_mock):
    http_mock.post(RESPONSES).respond(text=B.RESPONSES_STREAM_ERROR_FLAT, headers=B.SSE_HEADERS)
    list(client().responses.create(model="gpt-4.1", input="hi", stream=True))
    assert recorder.one().error == "error: rate_limit_exceeded"


# -- legacy completions and embeddings ----------------------------------------------------------


def test_legacy_completions(recorder, http_mock):
    http_mock.post(f"{BASE}/completions").respond(json=B.COMPLETIONS_PLAIN, headers=B.HEADERS)
    client().completions.create(model="gpt-3.5-turbo-instruct", prompt="Say this is a test")
    event = recorder.one()
    assert event.usage == Usage(input_tokens=5, output_tokens=7)
    assert (event.endpoint, event.model) == ("completions", "gpt-3.5-turbo-instruct:20230824-v2")


def test_legacy_completions_stream(recorder, http_mock):
    route = http_mock.post(f"{BASE}/completions").respond(text=B.COMPLETIONS_STREAM, headers=B.SSE_HEADERS)
    chunks = list(client().completions.create(model="gpt-3.5-turbo-instruct", prompt="x", stream=True))
    assert all(chunk.choices for chunk in chunks)
    assert json.loads(route.calls.last.request.content)["stream_options"] == {"include_usage": True}
    assert recorder.one().usage == Usage(input_tokens=8, output_tokens=11)


@pytest.mark.parametrize("body", [B.EMBEDDINGS, B.EMBEDDINGS_BASE64], ids=["float", "base64"])
def test_embeddings(recorder, http_mock, body):
    http_mock.post(f"{BASE}/embeddings").respond(json=body, headers=B.HEADERS)
    result = client().embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(result.data) == 2
    event = recorder.one()
    assert event.usage == Usage(input_tokens=9) and event.endpoint == "embeddings"


async def test_async_embeddings(recorder, http_mock):
    http_mock.post(f"{BASE}/embeddings").respond(json=B.EMBEDDINGS)
    await aclient().embeddings.create(model="text-embedding-3-small", input="a")
    assert recorder.one().usage.input_tokens == 9


# -- OpenAI-compatible providers through the openai client ---------------------------------------


@pytest.mark.parametrize("base_url, provider", [
    ("https://api.openai.com/v1", "openai"),
    ("https://my-resource.openai.azure.com/openai/deployments/gpt4o", "azure"),
    ("https://api.deepseek.com/v1", "deepseek"),
    ("https://openrouter.ai/api/v1", "openrouter"),
    ("https://api.groq.com/openai/v1", "groq"),
    ("https://api.together.xyz/v1", "together"),
    ("https://api.fireworks.ai/inference/v1", "fireworks"),
    ("http://localhost:8000/v1", "self-hosted"),
    ("http://10.0.3.7:8000/v1", "self-hosted"),
    ("https://llm-gateway.example.com/v1", "openai-compatible"),
])
def test_provider_from_base_url(recorder, http_mock, base_url, provider):
    http_mock.post(f"{base_url}/chat/completions").respond(json=B.CHAT_PLAIN)
    client(base_url=base_url).chat.completions.create(model="m", messages=MESSAGES)
    assert recorder.one().provider == provider


def test_azure_client_is_attributed_to_azure(recorder, http_mock):
    http_mock.post(url__regex=r"https://contoso\.openai\.azure\.com/.*").respond(json=B.CHAT_PLAIN)
    azure = openai.AzureOpenAI(api_key="k", api_version="2024-10-21", azure_endpoint="https://contoso.openai.azure.com",
                               max_retries=0)
    azure.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert recorder.one().provider == "azure"


def test_provider_override_by_base_url(http_mock):
    from .conftest import Recorder

    rec = Recorder(provider_overrides={"https://llm.internal.example.com": "vllm"})
    rec.meter.patch("openai")
    try:
        http_mock.post("https://llm.internal.example.com/v1/chat/completions").respond(json=B.CHAT_PLAIN)
        client(base_url="https://llm.internal.example.com/v1").chat.completions.create(model="m", messages=MESSAGES)
        assert rec.one().provider == "vllm"
    finally:
        rec.meter.shutdown()


def test_deepseek_cache_hits(recorder, http_mock):
    http_mock.post("https://api.deepseek.com/chat/completions").respond(json=B.DEEPSEEK_CHAT)
    client(base_url="https://api.deepseek.com").chat.completions.create(model="deepseek-chat", messages=MESSAGES)
    event = recorder.one()
    assert event.usage == Usage(input_tokens=1289, output_tokens=187, cache_read_tokens=1216)


def test_deepseek_reasoner(recorder, http_mock):
    http_mock.post("https://api.deepseek.com/chat/completions").respond(json=B.DEEPSEEK_REASONER)
    client(base_url="https://api.deepseek.com").chat.completions.create(model="deepseek-reasoner", messages=MESSAGES)
    assert recorder.one().usage == Usage(input_tokens=21, output_tokens=633, cache_read_tokens=0, reasoning_tokens=498)


def test_openrouter_reported_cost(recorder, http_mock):
    from decimal import Decimal

    http_mock.post("https://openrouter.ai/api/v1/chat/completions").respond(json=B.OPENROUTER_CHAT)
    client(base_url="https://openrouter.ai/api/v1").chat.completions.create(
        model="anthropic/claude-sonnet-4", messages=MESSAGES)
    event = recorder.one()
    assert event.provider == "openrouter" and event.provider_cost_usd == Decimal("0.0062652")
    assert event.usage == Usage(input_tokens=1450, output_tokens=312, cache_read_tokens=1024, cache_write_tokens=0,
                                input_audio_tokens=0, reasoning_tokens=0)


def test_openrouter_stream_with_comment_lines(recorder, http_mock):
    from decimal import Decimal

    http_mock.post("https://openrouter.ai/api/v1/chat/completions").respond(
        text=B.OPENROUTER_STREAM, headers=B.SSE_HEADERS)
    chunks = list(client(base_url="https://openrouter.ai/api/v1").chat.completions.create(
        model="anthropic/claude-sonnet-4", messages=MESSAGES, stream=True))
    assert chunks[-1].usage is not None  # OpenRouter's usage chunk has a choice: shown, as unpatched
    event = recorder.one()
    assert (event.usage.input_tokens, event.usage.output_tokens) == (58, 10)
    assert event.provider_cost_usd == Decimal("0.000324")
