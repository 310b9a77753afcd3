"""The mistralai SDK (3.x, and 2.x in the previous-major run), on bodies shaped as the API sends
them (tests/bodies/mistral_bodies.py).

Expected usage is written out by hand from each body. Mistral's totals are inclusive: cached
tokens are inside prompt_tokens, thinking tokens inside completion_tokens.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import httpx
import pydantic
import pytest

from tollmeter import Meter, MeterConfig, Usage

from .bodies import mistral_bodies as B

pytestmark = pytest.mark.sdk

pytest.importorskip("mistralai.client.chat")  # mistralai 2.x and 3.x (1.x kept its modules under `mistralai`)
from mistralai.client import Mistral, errors
from .conftest import collect, observe, run_bare_then_patched

BASE = "https://api.mistral.ai/v1"
CHAT = f"{BASE}/chat/completions"
FIM = f"{BASE}/fim/completions"
AGENTS = f"{BASE}/agents/completions"
EMBEDDINGS = f"{BASE}/embeddings"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
M = Decimal(1_000_000)


def client(**kw) -> Mistral:
    return Mistral(api_key="test-key", **kw)


def cached_usage(prompt, completion, cached=0, **kw):
    return Usage(input_tokens=prompt, output_tokens=completion, cache_read_tokens=cached, **kw)


# -- chat.complete -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, usage, tool_calls, finish, tier",
    [
        (B.CHAT_PLAIN, cached_usage(19, 11), 0, "stop", "standard"),
        (B.CHAT_CACHED, cached_usage(801, 42, cached=768), 0, "stop", "standard"),
        (B.CHAT_NUM_CACHED_TOKENS, cached_usage(1013, 30, cached=1008), 0, "stop", None),
        (B.CHAT_NO_DETAILS, Usage(input_tokens=124, output_tokens=22), 0, "stop", None),
        (B.CHAT_REASONING, Usage(input_tokens=10, output_tokens=46), 0, "stop", None),
        (B.CHAT_REASONING_SPLIT, cached_usage(26, 112, reasoning_tokens=96), 0, "stop", "standard"),
        (B.CHAT_TOOL_CALLS, cached_usage(124, 41), 2, "tool_calls", "standard"),
        (B.CHAT_EMPTY_USAGE, Usage(), 0, "stop", None),  # the SDK's default 0s are not reported counts
    ],
    ids=["plain", "cached", "num_cached_tokens", "no_details", "reasoning", "reasoning_split", "tool_calls",
         "empty_usage"],
)
def test_chat_complete(recorder, http_mock, body, usage, tool_calls, finish, tier):
    http_mock.post(CHAT).respond(json=body, headers=B.HEADERS)
    response = client().chat.complete(model=body["model"], messages=MESSAGES)
    assert response.id == body["id"]
    event = recorder.one()
    assert event.usage == usage
    assert (event.tool_calls, event.finish_reason, event.service_tier) == (tool_calls, finish, tier)
    assert (event.provider, event.endpoint, event.stream, event.partial) == ("mistral", "chat.completions", False, False)
    assert event.model == event.request_model == body["model"]
    assert event.request_id is None  # the parsed response keeps no headers
    assert event.error is None and event.duration_ms > 0 and event.time_to_first_token_ms is None


async def test_chat_complete_async(recorder, http_mock):
    http_mock.post(CHAT).respond(json=B.CHAT_CACHED, headers=B.HEADERS)
    response = await client().chat.complete_async(model="mistral-medium-latest", messages=MESSAGES)
    assert response.usage.prompt_tokens == 801
    assert recorder.one().usage == cached_usage(801, 42, cached=768)


def test_odd_usage_values_never_raise(recorder, http_mock):
    odd = {**B.CHAT_PLAIN, "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15,
                                     "prompt_tokens_details": "not-an-object", "num_cached_tokens": -4,
                                     "completion_tokens_details": {"reasoning_tokens": "many"}}}
    http_mock.post(CHAT).respond(json=odd)
    client().chat.complete(model="mistral-small-latest", messages=MESSAGES)
    assert recorder.one().usage == Usage(input_tokens=12, output_tokens=3)


def test_chat_parse_is_one_event(recorder, http_mock):
    class Answer(pydantic.BaseModel):
        city: str

    body = {**B.CHAT_PLAIN, "choices": [{**B.CHAT_PLAIN["choices"][0],
                                         "message": {"role": "assistant", "content": "{\"city\": \"Paris\"}"}}]}
    http_mock.post(CHAT).respond(json=body, headers=B.HEADERS)
    parsed = client().chat.parse(response_format=Answer, model="mistral-small-latest", messages=MESSAGES)
    assert parsed.choices[0].message.parsed == Answer(city="Paris")
    assert recorder.one().usage == cached_usage(19, 11)


# -- chat.stream ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, usage, tool_calls, finish, tier",
    [
        (B.STREAM_PLAIN, cached_usage(19, 8), 0, "stop", "standard"),
        (B.STREAM_CACHED, cached_usage(1560, 12, cached=1536), 0, "stop", "standard"),
        (B.STREAM_TOOL_CALL, Usage(input_tokens=124, output_tokens=22), 1, "tool_calls", None),
        (B.STREAM_REASONING, Usage(input_tokens=10, output_tokens=46), 0, "stop", None),
    ],
    ids=["plain", "cached", "tool_call", "reasoning"],
)
def test_chat_stream(recorder, http_mock, body, usage, tool_calls, finish, tier):
    http_mock.post(CHAT).respond(text=body, headers=B.SSE_HEADERS)
    stream = client().chat.stream(model="mistral-small-latest", messages=MESSAGES)
    events = list(stream)
    assert events[-1].data.usage is not None
    event = recorder.one()
    assert event.usage == usage
    assert (event.tool_calls, event.finish_reason, event.service_tier) == (tool_calls, finish, tier)
    assert event.stream and not event.partial and event.error is None
    assert event.request_id == B.CORRELATION_ID  # from the stream's response headers
    assert event.model == events[0].data.model and event.request_model == "mistral-small-latest"
    assert 0 <= event.time_to_first_token_ms <= event.duration_ms


async def test_chat_stream_async(recorder, http_mock):
    http_mock.post(CHAT).respond(text=B.STREAM_CACHED, headers=B.SSE_HEADERS)
    stream = await client().chat.stream_async(model="mistral-medium-latest", messages=MESSAGES)
    events = [event async for event in stream]
    assert events[-1].data.usage.prompt_tokens == 1560
    event = recorder.one()
    assert event.usage == cached_usage(1560, 12, cached=1536) and not event.partial


async def test_chat_stream_async_with_block(recorder, http_mock):
    http_mock.post(CHAT).respond(text=B.STREAM_PLAIN, headers=B.SSE_HEADERS)
    async with await client().chat.stream_async(model="mistral-small-latest", messages=MESSAGES) as stream:
        async for _ in stream:
            pass
    event = recorder.one()
    assert not event.partial and event.usage.output_tokens == 8


def test_stream_with_block_read_to_the_end(recorder, http_mock):
    http_mock.post(CHAT).respond(text=B.STREAM_PLAIN, headers=B.SSE_HEADERS)
    with client().chat.stream(model="mistral-small-latest", messages=MESSAGES) as stream:
        for _ in stream:
            pass
    event = recorder.one()
    assert not event.partial and event.usage == cached_usage(19, 8)


def test_stream_left_early_is_one_partial_event(recorder, http_mock):
    http_mock.post(CHAT).respond(text=B.STREAM_PLAIN, headers=B.SSE_HEADERS)
    stream = client().chat.stream(model="mistral-small-latest", messages=MESSAGES)
    assert next(stream).data.model == "mistral-small-latest"
    stream.close()
    stream.close()
    event = recorder.one()
    assert event.partial and event.usage == Usage() and event.time_to_first_token_ms is not None


def test_abandoned_stream_is_recorded_when_collected(recorder, http_mock):
    http_mock.post(CHAT).respond(text=B.STREAM_PLAIN, headers=B.SSE_HEADERS)
    stream = client().chat.stream(model="mistral-small-latest", messages=MESSAGES)
    for _ in stream:
        break
    del stream
    collect()
    assert recorder.one().partial


async def test_async_stream_closed_early(recorder, http_mock):
    http_mock.post(CHAT).respond(text=B.STREAM_PLAIN, headers=B.SSE_HEADERS)
    stream = await client().chat.stream_async(model="mistral-small-latest", messages=MESSAGES)
    async for _ in stream:
        break
    await stream.close()
    assert recorder.one().partial


def test_exception_in_the_callers_loop_is_recorded_partial(recorder, http_mock):
    http_mock.post(CHAT).respond(text=B.STREAM_PLAIN, headers=B.SSE_HEADERS)
    with pytest.raises(KeyError):
        with client().chat.stream(model="mistral-small-latest", messages=MESSAGES) as stream:
            for _ in stream:
                raise KeyError("app bug")
    assert recorder.one().partial


def test_parse_stream_is_one_event(recorder, http_mock):
    class Answer(pydantic.BaseModel):
        city: str

    http_mock.post(CHAT).respond(text=B.STREAM_PLAIN, headers=B.SSE_HEADERS)
    list(client().chat.parse_stream(response_format=Answer, model="mistral-small-latest", messages=MESSAGES))
    assert recorder.one().usage == cached_usage(19, 8)


# -- FIM, agents, embeddings ---------------------------------------------------------------------


def test_fim_complete(recorder, http_mock):
    http_mock.post(FIM).respond(json=B.FIM_PLAIN, headers=B.HEADERS)
    client().fim.complete(model="codestral-latest", prompt="def add(a, b):\n", suffix="\nprint(add(1, 2))")
    event = recorder.one()
    assert event.usage == cached_usage(35, 24)
    assert (event.endpoint, event.model, event.finish_reason) == ("fim.completions", "codestral-latest", "stop")


async def test_fim_stream_async(recorder, http_mock):
    http_mock.post(FIM).respond(text=B.FIM_STREAM, headers=B.SSE_HEADERS)
    stream = await client().fim.stream_async(model="codestral-latest", prompt="def add(a, b):\n")
    assert len([e async for e in stream]) == 3
    event = recorder.one()
    assert event.usage == cached_usage(35, 9) and event.stream and event.endpoint == "fim.completions"


def test_agents_complete(recorder, http_mock):
    http_mock.post(AGENTS).respond(json=B.AGENT_COMPLETION, headers=B.HEADERS)
    client().agents.complete(agent_id="ag_0198f3b2c4e17d2a9b5c", messages=MESSAGES)
    event = recorder.one()
    assert event.usage == cached_usage(312, 18, cached=256)
    assert (event.endpoint, event.request_model, event.model) == ("agents.completions", None, "mistral-medium-2508")


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_embeddings(recorder, http_mock, is_async):
    http_mock.post(EMBEDDINGS).respond(json=B.EMBEDDINGS, headers=B.HEADERS)
    embeddings = client().embeddings
    if is_async:
        result = asyncio.run(embeddings.create_async(model="mistral-embed", inputs=["a", "b"]))
    else:
        result = embeddings.create(model="mistral-embed", inputs=["a", "b"])
    assert len(result.data) == 2
    event = recorder.one()
    assert event.usage == Usage(input_tokens=16, output_tokens=0)  # a reported 0 stays 0
    assert (event.endpoint, event.model, event.stream) == ("embeddings", "mistral-embed", False)


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status, body, exc_name", [
    (429, B.ERROR_429, "SDKError"),
    (400, B.ERROR_400, "SDKError"),
    (422, B.ERROR_422, "HTTPValidationError"),
])
def test_http_error_reaches_the_caller_unchanged(recorder, http_mock, status, body, exc_name):
    http_mock.post(CHAT).respond(status, json=body, headers=B.HEADERS)
    with pytest.raises(getattr(errors, exc_name)) as raised:
        client().chat.complete(model="mistral-small-latest", messages=MESSAGES)
    assert raised.value.status_code == status and json.loads(raised.value.body) == body
    event = recorder.one()
    assert (event.error, event.status_code, event.request_id) == (exc_name, status, B.CORRELATION_ID)
    assert event.usage == Usage() and event.cost_usd == 0  # refused: nothing billed


async def test_stream_error_is_the_same_object(recorder, http_mock):
    http_mock.post(CHAT).respond(429, json=B.ERROR_429)
    caught = []
    try:
        await client().chat.stream_async(model="mistral-small-latest", messages=MESSAGES)
    except errors.SDKError as exc:
        caught.append(exc)
    assert caught and caught[0].status_code == 429
    event = recorder.one()
    assert (event.error, event.status_code, event.request_id, event.stream) == ("SDKError", 429, None, True)


def test_connection_error_is_recorded(recorder, http_mock):
    http_mock.post(CHAT).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(Exception) as raised:
        client().chat.complete(model="mistral-small-latest", messages=MESSAGES)
    event = recorder.one()
    assert event.error == type(raised.value).__name__ and event.status_code is None


# -- attribution ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, url, provider", [
    ({"server": "eu"}, "https://api.eu.mistral.ai/v1/chat/completions", "mistral"),
    ({"server_url": "https://api.us.mistral.ai"}, "https://api.us.mistral.ai/v1/chat/completions", "mistral"),
    ({"server_url": "http://localhost:8000"}, "http://localhost:8000/v1/chat/completions", "self-hosted"),
    ({"server_url": "https://llm-gateway.example.com"}, "https://llm-gateway.example.com/v1/chat/completions",
     "mistral-compatible"),
])
def test_provider_from_server(recorder, http_mock, kwargs, url, provider):
    http_mock.post(url).respond(json=B.CHAT_PLAIN)
    client(**kwargs).chat.complete(model="mistral-small-latest", messages=MESSAGES)
    assert recorder.one().provider == provider


def test_server_url_per_call(recorder, http_mock):
    http_mock.post("http://10.0.0.7:8000/v1/chat/completions").respond(json=B.CHAT_PLAIN)
    client().chat.complete(model="mistral-small-latest", messages=MESSAGES, server_url="http://10.0.0.7:8000")
    assert recorder.one().provider == "self-hosted"


def test_azure_client(recorder, http_mock):
    azure = pytest.importorskip("mistralai.azure.client")
    http_mock.post(url__regex=r"https://contoso\.services\.ai\.azure\.com/models/chat/completions.*").respond(
        json=B.CHAT_PLAIN, headers=B.HEADERS)
    azure.MistralAzure(api_key="k", server_url="https://contoso.services.ai.azure.com").chat.complete(
        model="mistral-small-2503", messages=MESSAGES)
    event = recorder.one()
    assert (event.provider, event.usage) == ("azure", cached_usage(19, 11))


def test_gcp_client_stream(recorder, http_mock):
    gcp = pytest.importorskip("mistralai.gcp.client")
    http_mock.post(url__regex=r"https://europe-west4-aiplatform\.googleapis\.com/.*").respond(
        text=B.STREAM_PLAIN, headers=B.SSE_HEADERS)
    list(gcp.MistralGCP(project_id="my-project", access_token="tok").chat.stream(
        model="mistral-small-2503", messages=MESSAGES))
    event = recorder.one()
    assert (event.provider, event.usage) == ("google-vertex", cached_usage(19, 8))


# -- pricing end to end --------------------------------------------------------------------------


def test_mistral_small_cached_priced(recorder, http_mock):
    # mistral-small-latest: $0.15/M input, $0.015/M cached input, $0.60/M output.
    # 1,560 prompt = 24 uncached + 1,536 cached; 12 completion.
    body = B.STREAM_CACHED.replace('"mistral-medium-latest"', '"mistral-small-latest"')
    http_mock.post(CHAT).respond(text=body, headers=B.SSE_HEADERS)
    list(client().chat.stream(model="mistral-small-latest", messages=MESSAGES))
    event = recorder.one()
    expected = (24 * Decimal("0.15") + 1536 * Decimal("0.015") + 12 * Decimal("0.60")) / M
    assert event.cost_usd == expected == Decimal("0.00003384")
    assert event.price_model == "mistral/mistral-small-latest"


def test_mistral_large_latest_priced(recorder, http_mock):
    # mistral-large-latest is priced as mistral-large: $2/M input, $6/M output (no cache rate:
    # the 1,008 cached tokens stay at the input rate)
    http_mock.post(CHAT).respond(json=B.CHAT_NUM_CACHED_TOKENS, headers=B.HEADERS)
    client().chat.complete(model="mistral-large-latest", messages=MESSAGES)
    event = recorder.one()
    assert event.cost_usd == (1013 * Decimal(2) + 30 * Decimal(6)) / M == Decimal("0.002206")
    assert event.price_model == "mistral/mistral-large"


def test_codestral_fim_priced(recorder, http_mock):
    # codestral-latest: $0.30/M input, $0.90/M output
    http_mock.post(FIM).respond(json=B.FIM_PLAIN, headers=B.HEADERS)
    client().fim.complete(model="codestral-latest", prompt="def add(a, b):\n")
    event = recorder.one()
    assert event.cost_usd == (35 * Decimal("0.30") + 24 * Decimal("0.90")) / M == Decimal("0.0000321")


def test_mistral_embed_priced(recorder, http_mock):
    # mistral-embed: $0.10/M input
    http_mock.post(EMBEDDINGS).respond(json=B.EMBEDDINGS, headers=B.HEADERS)
    client().embeddings.create(model="mistral-embed", inputs=["a", "b"])
    assert recorder.one().cost_usd == 16 * Decimal("0.10") / M == Decimal("0.0000016")


# -- one event per call, patching ---------------------------------------------------------------


def test_client_and_sub_sdk_made_before_patching_are_metered(http_mock):
    from .conftest import Recorder

    early = client()
    chat = early.chat  # the lazily created sub-SDK object, made before patching
    rec = Recorder()
    rec.meter.patch("mistral")
    try:
        http_mock.post(CHAT).respond(json=B.CHAT_PLAIN, headers=B.HEADERS)
        chat.complete(model="mistral-small-latest", messages=MESSAGES)
        early.chat.complete(model="mistral-small-latest", messages=MESSAGES)
        assert [e.usage.input_tokens for e in rec.recorded()] == [19, 19]
    finally:
        rec.meter.shutdown()
    assert not rec.errors


def test_unpatch_restores_the_sdk():
    from mistralai.client.chat import Chat

    originals = (Chat.complete, Chat.stream, Chat.complete_async, Chat.stream_async)
    meter = Meter(MeterConfig(on_event=lambda e: None))
    assert meter.patch("mistral")
    assert Chat.complete is not originals[0]
    meter.shutdown()
    assert (Chat.complete, Chat.stream, Chat.complete_async, Chat.stream_async) == originals


# -- transparency --------------------------------------------------------------------------------




def _mock_mistral(router):
    router.post(CHAT).mock(side_effect=lambda request: (
        httpx.Response(200, text=B.STREAM_TOOL_CALL, headers=B.SSE_HEADERS)
        if json.loads(request.content).get("stream")
        else httpx.Response(200, json=B.CHAT_CACHED, headers=B.HEADERS)))
    router.post(FIM).respond(json=B.FIM_PLAIN, headers=B.HEADERS)
    router.post(EMBEDDINGS).respond(json=B.EMBEDDINGS, headers=B.HEADERS)
    router.post(AGENTS).respond(422, json=B.ERROR_422, headers=B.HEADERS)


def _complete():
    return observe(client().chat.complete(model="mistral-medium-latest", messages=MESSAGES))


def _stream():
    stream = client().chat.stream(model="mistral-small-latest", messages=MESSAGES)
    with stream as events:
        return stream.__class__.__qualname__, observe(list(events))


def _fim_and_embeddings():
    c = client()
    return (observe(c.fim.complete(model="codestral-latest", prompt="def add(a, b):\n")),
            observe(c.embeddings.create(model="mistral-embed", inputs=["a", "b"])))


def _async():
    async def run():
        c = client()
        made = await c.chat.complete_async(model="mistral-medium-latest", messages=MESSAGES)
        stream = await c.chat.stream_async(model="mistral-small-latest", messages=MESSAGES)
        return observe(made), stream.__class__.__qualname__, observe([event async for event in stream])

    return asyncio.run(run())


def _error():
    try:
        client().agents.complete(agent_id="ag_1", messages=MESSAGES)
    except errors.HTTPValidationError as exc:
        return type(exc).__qualname__, str(exc), exc.status_code, exc.body, observe(exc.data)


SCENARIOS = [_complete, _stream, _fim_and_embeddings, _async, _error]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__.strip("_") for s in SCENARIOS])
def test_patched_result_equals_unpatched(http_mock, scenario):
    _mock_mistral(http_mock)
    bare, patched, events = run_bare_then_patched(scenario, "mistral")
    assert patched == bare and bare is not None
    assert len(events) == (2 if scenario in (_fim_and_embeddings, _async) else 1)
