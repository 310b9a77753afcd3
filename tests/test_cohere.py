"""The cohere SDK (API v2), on bodies shaped as the API sends them (tests/bodies/cohere_bodies.py).

Expected usage is written out by hand from each body. Events carry Cohere's billed counts
(`usage.billed_units`), not the processed ones (`usage.tokens`), which add Cohere's own prompt
template and special tokens; `cached_tokens` is not a subset of the billed input and is left out.
"""

from __future__ import annotations

import asyncio
import inspect
from decimal import Decimal

import cohere
import httpx
import pytest

from tollmeter import Usage
from tollmeter.instrument.hooks import InstrumentSettings

from .bodies import cohere_bodies as B
from .conftest import collect, observe, run_bare_then_patched

pytestmark = pytest.mark.sdk

BASE = "https://api.cohere.com/v2"
CHAT, EMBED, RERANK = f"{BASE}/chat", f"{BASE}/embed", f"{BASE}/rerank"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}]
DOCS = ["Carson City is the capital of Nevada.", "Washington, D.C. is the capital of the US.",
        "Capital punishment has existed in the US since before it was a country.",
        "The Commonwealth of the Northern Mariana Islands' capital is Saipan.",
        "Capitalization in English grammar is the use of a capital letter."]


# cohere 7 takes max_retries (default 2, with backoff); cohere 6 does not retry.
_RETRIES = "max_retries" in inspect.signature(cohere.ClientV2.__init__).parameters


def client(**kw) -> cohere.ClientV2:
    if _RETRIES:
        kw.setdefault("max_retries", 0)
    return cohere.ClientV2(api_key="co-test", **kw)


def aclient(**kw) -> cohere.AsyncClientV2:
    if _RETRIES:
        kw.setdefault("max_retries", 0)
    return cohere.AsyncClientV2(api_key="co-test", **kw)


def serve_chat(router, body=None, stream=None):
    """The chat endpoint, answering a stream when the request asks for one."""
    import json

    def respond(request):
        if json.loads(request.content).get("stream"):
            return httpx.Response(200, text=stream, headers=B.SSE_HEADERS)
        return httpx.Response(200, json=body, headers=B.HEADERS)

    router.post(CHAT).mock(side_effect=respond)


# -- chat ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, usage, tool_calls, finish",
    [
        (B.CHAT_PLAIN, Usage(input_tokens=17, output_tokens=12), 0, "COMPLETE"),
        # 1792 cached tokens of the 2043 processed: not a subset of the 1450 billed, not recorded.
        (B.CHAT_CACHED, Usage(input_tokens=1450, output_tokens=96), 0, "COMPLETE"),
        # thinking is billed inside the output; Cohere reports no separate count.
        (B.CHAT_THINKING, Usage(input_tokens=24, output_tokens=1187), 0, "COMPLETE"),
        (B.CHAT_TOOL_CALLS, Usage(input_tokens=41, output_tokens=58), 2, "TOOL_CALL"),
        (B.CHAT_MAX_TOKENS, Usage(input_tokens=12, output_tokens=5), 0, "MAX_TOKENS"),
        (B.CHAT_TOKENS_ONLY, Usage(input_tokens=215, output_tokens=14), 0, "COMPLETE"),
        (B.CHAT_NO_USAGE, Usage(), 0, "COMPLETE"),
    ],
    ids=["plain", "cached", "thinking", "tool_calls", "max_tokens", "tokens_only", "no_usage"],
)
def test_chat(recorder, http_mock, body, usage, tool_calls, finish):
    http_mock.post(CHAT).respond(json=body, headers=B.HEADERS)
    response = client().chat(model=B.MODEL, messages=MESSAGES, tools=TOOLS)
    assert response.id == body["id"]
    event = recorder.one()
    assert event.usage == usage
    assert (event.tool_calls, event.finish_reason) == (tool_calls, finish)
    assert (event.provider, event.endpoint, event.stream, event.partial) == ("cohere", "chat", False, False)
    assert (event.model, event.request_model) == (B.MODEL, B.MODEL)  # Cohere names no model back
    assert event.request_id == body["id"] and event.error is None
    assert event.duration_ms > 0 and event.time_to_first_token_ms is None


def test_cached_tokens_are_not_counted_twice(recorder, http_mock):
    http_mock.post(CHAT).respond(json=B.CHAT_CACHED, headers=B.HEADERS)
    client().chat(model=B.MODEL, messages=MESSAGES)
    usage = recorder.one().usage
    assert usage.input_tokens == 1450 and usage.cache_read_tokens is None
    assert usage.total_tokens == 1546 and usage.uncached_input_tokens == 1450


async def test_async_chat(recorder, http_mock):
    http_mock.post(CHAT).respond(json=B.CHAT_TOOL_CALLS, headers=B.HEADERS)
    response = await aclient().chat(model=B.MODEL, messages=MESSAGES, tools=TOOLS)
    assert len(response.message.tool_calls) == 2
    event = recorder.one()
    assert event.usage == Usage(input_tokens=41, output_tokens=58) and event.tool_calls == 2


def test_v2_of_the_v1_client(recorder, http_mock):
    http_mock.post(CHAT).respond(json=B.CHAT_PLAIN, headers=B.HEADERS)
    cohere.Client(api_key="co-test").v2.chat(model=B.MODEL, messages=MESSAGES)
    assert recorder.one().usage.output_tokens == 12


def test_with_raw_response_is_one_event(recorder, http_mock):
    http_mock.post(CHAT).respond(json=B.CHAT_PLAIN, headers=B.HEADERS)
    raw = client().with_raw_response.chat(model=B.MODEL, messages=MESSAGES)
    assert raw.headers["x-debug-trace-id"] == B.HEADERS["x-debug-trace-id"]
    assert raw.data.usage.billed_units.input_tokens == 17
    assert recorder.one().usage == Usage(input_tokens=17, output_tokens=12)


def test_client_made_before_patching_is_covered(http_mock):
    from .conftest import Recorder

    made_before = client()
    rec = Recorder()
    rec.meter.patch("cohere")
    try:
        http_mock.post(CHAT).respond(json=B.CHAT_PLAIN, headers=B.HEADERS)
        made_before.chat(model=B.MODEL, messages=MESSAGES)
        assert rec.one().usage.input_tokens == 17
    finally:
        rec.meter.shutdown()
    assert not rec.errors


# -- chat streams --------------------------------------------------------------------------------


def test_chat_stream(recorder, http_mock):
    http_mock.post(CHAT).respond(text=B.CHAT_STREAM, headers=B.SSE_HEADERS)
    events = list(client().chat_stream(model=B.MODEL, messages=MESSAGES))
    assert events[0].type == "message-start" and events[-1].type == "message-end"
    event = recorder.one()
    assert event.usage == Usage(input_tokens=17, output_tokens=9)
    assert (event.stream, event.partial, event.finish_reason, event.tool_calls) == (True, False, "COMPLETE", 0)
    assert event.request_id == "29f14a5a-11de-4cae-9800-25e4747408ea"
    assert 0 <= event.time_to_first_token_ms <= event.duration_ms


def test_chat_stream_tool_calls(recorder, http_mock):
    http_mock.post(CHAT).respond(text=B.CHAT_STREAM_TOOL_CALLS, headers=B.SSE_HEADERS)
    list(client().chat_stream(model=B.MODEL, messages=MESSAGES, tools=TOOLS))
    event = recorder.one()
    # 176 cached tokens of the 793 processed: more than the 50 billed, not recorded.
    assert event.usage == Usage(input_tokens=50, output_tokens=26)
    assert (event.tool_calls, event.finish_reason) == (2, "TOOL_CALL")
    assert event.time_to_first_token_ms is not None


def test_chat_stream_error_on_message_end(recorder, http_mock):
    http_mock.post(CHAT).respond(text=B.CHAT_STREAM_ERROR_END, headers=B.SSE_HEADERS)
    list(client().chat_stream(model=B.MODEL, messages=MESSAGES))
    event = recorder.one()
    assert event.usage == Usage(input_tokens=17, output_tokens=3)
    assert (event.finish_reason, event.error, event.partial) == ("ERROR", "message-end error", False)


async def test_async_chat_stream(recorder, http_mock):
    http_mock.post(CHAT).respond(text=B.CHAT_STREAM_TOOL_CALLS, headers=B.SSE_HEADERS)
    events = [e async for e in aclient().chat_stream(model=B.MODEL, messages=MESSAGES, tools=TOOLS)]
    assert events[-1].delta.usage.billed_units.output_tokens == 26
    event = recorder.one()
    assert event.usage == Usage(input_tokens=50, output_tokens=26) and event.tool_calls == 2
    assert event.stream and not event.partial


def test_chat_stream_broken_off_is_one_partial_event(recorder, http_mock):
    http_mock.post(CHAT).respond(text=B.CHAT_STREAM, headers=B.SSE_HEADERS)
    stream = client().chat_stream(model=B.MODEL, messages=MESSAGES)
    for event in stream:
        if event.type == "content-delta":
            break
    stream.close()
    event = recorder.one()
    assert event.partial and event.usage == Usage()


def test_chat_stream_dropped_is_recorded_when_collected(recorder, http_mock):
    http_mock.post(CHAT).respond(text=B.CHAT_STREAM, headers=B.SSE_HEADERS)
    stream = client().chat_stream(model=B.MODEL, messages=MESSAGES)
    next(stream)
    del stream
    collect()
    assert recorder.one().partial


def test_chat_stream_never_iterated_sends_nothing_and_records_nothing(recorder, http_mock):
    route = http_mock.post(CHAT).respond(text=B.CHAT_STREAM, headers=B.SSE_HEADERS)
    stream = client().chat_stream(model=B.MODEL, messages=MESSAGES)
    del stream
    collect()
    assert not route.called and recorder.recorded() == []


def test_raw_chat_stream(recorder, http_mock):
    http_mock.post(CHAT).respond(text=B.CHAT_STREAM, headers=B.SSE_HEADERS)
    with client().with_raw_response.chat_stream(model=B.MODEL, messages=MESSAGES) as response:
        assert response.headers["content-type"] == "text/event-stream"
        events = list(response.data)
    assert len(events) == 7
    event = recorder.one()
    assert event.usage == Usage(input_tokens=17, output_tokens=9) and not event.partial


async def test_async_raw_chat_stream_left_early(recorder, http_mock):
    http_mock.post(CHAT).respond(text=B.CHAT_STREAM, headers=B.SSE_HEADERS)
    async with aclient().with_raw_response.chat_stream(model=B.MODEL, messages=MESSAGES) as response:
        async for _ in response.data:
            break
    assert recorder.one().partial


# -- embed and rerank ----------------------------------------------------------------------------


def test_embed(recorder, http_mock):
    http_mock.post(EMBED).respond(json=B.EMBED, headers=B.HEADERS)
    response = client().embed(model="embed-v4.0", texts=["hello", "goodbye"], input_type="classification",
                              embedding_types=["float"])
    assert len(response.embeddings.float_) == 2
    event = recorder.one()
    assert event.usage == Usage(input_tokens=2)
    assert (event.provider, event.endpoint, event.model, event.request_id) == (
        "cohere", "embed", "embed-v4.0", B.EMBED["id"])
    assert event.units is None


def test_embed_image_tokens(recorder, http_mock):
    http_mock.post(EMBED).respond(json=B.EMBED_IMAGE, headers=B.HEADERS)
    client().embed(model="embed-v4.0", images=["data:image/png;base64,iVBORw0KGgo="], input_type="image",
                   embedding_types=["float"])
    assert recorder.one().usage == Usage(input_tokens=1610, input_image_tokens=1610)


async def test_async_embed(recorder, http_mock):
    http_mock.post(EMBED).respond(json=B.EMBED, headers=B.HEADERS)
    await aclient().embed(model="embed-v4.0", texts=["hello", "goodbye"], input_type="classification",
                          embedding_types=["float"])
    assert recorder.one().usage.input_tokens == 2


@pytest.mark.parametrize("body, searches", [(B.RERANK, 1), (B.RERANK_MANY, 3)], ids=["one", "three"])
def test_rerank_records_searches(recorder, http_mock, body, searches):
    http_mock.post(RERANK).respond(json=body, headers=B.HEADERS)
    response = client().rerank(model="rerank-v3.5", query="What is the capital of the United States?",
                               documents=DOCS, top_n=3)
    assert [r.index for r in response.results] == [3, 4, 0]
    event = recorder.one()
    assert event.units == {"rerank_searches": searches} and event.usage == Usage()
    assert (event.endpoint, event.model, event.request_id) == ("rerank", "rerank-v3.5", body["id"])


async def test_async_rerank(recorder, http_mock):
    http_mock.post(RERANK).respond(json=B.RERANK, headers=B.HEADERS)
    await aclient().rerank(model="rerank-v3.5", query="capital?", documents=DOCS)
    assert recorder.one().units == {"rerank_searches": 1}


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status, body, exc_type", [
    (429, B.ERROR_429, cohere.TooManyRequestsError),
    (400, B.ERROR_400, cohere.BadRequestError),
])
def test_http_error_reaches_the_caller_unchanged(recorder, http_mock, status, body, exc_type):
    http_mock.post(CHAT).respond(status, json=body, headers=B.HEADERS)
    with pytest.raises(exc_type) as raised:
        client().chat(model=B.MODEL, messages=MESSAGES)
    assert raised.value.status_code == status and raised.value.body == body
    event = recorder.one()
    assert (event.error, event.status_code) == (exc_type.__name__, status)
    assert event.request_id == B.HEADERS["x-debug-trace-id"]
    assert event.usage == Usage() and event.cost_usd == Decimal(0)  # refused: nothing billed


def test_stream_error_raised_on_the_first_event(recorder, http_mock):
    http_mock.post(CHAT).respond(429, json=B.ERROR_429, headers=B.HEADERS)
    stream = client().chat_stream(model=B.MODEL, messages=MESSAGES)
    with pytest.raises(cohere.TooManyRequestsError):
        next(stream)
    event = recorder.one()
    assert (event.error, event.status_code, event.stream) == ("TooManyRequestsError", 429, True)


@pytest.mark.skipif(not _RETRIES, reason="this cohere release does not retry")
async def test_async_error_after_retries_is_one_event(recorder, http_mock):
    route = http_mock.post(RERANK).respond(429, json=B.ERROR_429, headers={**B.HEADERS, "retry-after": "0"})
    caught = []
    try:
        await aclient(max_retries=1).rerank(model="rerank-v3.5", query="q", documents=DOCS)
    except cohere.TooManyRequestsError as exc:
        caught.append(exc)
    assert caught and caught[0].body == B.ERROR_429
    assert route.call_count == 2  # the SDK's retries happen inside the one metered call
    assert recorder.one().error == "TooManyRequestsError"


def test_network_error(recorder, http_mock):
    http_mock.post(CHAT).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(httpx.ConnectError):
        client().chat(model=B.MODEL, messages=MESSAGES)
    event = recorder.one()
    assert event.error == "ConnectError" and event.status_code is None


def test_odd_usage_values_never_raise(recorder, http_mock):
    odd = {**B.CHAT_PLAIN, "usage": {"billed_units": {"input_tokens": "17", "output_tokens": -3},
                                     "tokens": "not-an-object", "cached_tokens": None}}
    http_mock.post(CHAT).respond(json=odd, headers=B.HEADERS)
    response = client().chat(model=B.MODEL, messages=MESSAGES)
    assert response.id == odd["id"]
    assert recorder.one().usage == Usage(input_tokens=17)


def test_null_billed_units_never_raise(recorder, http_mock):
    odd = {**B.EMBED, "meta": {"billed_units": None, "tokens": None}}
    http_mock.post(EMBED).respond(json=odd, headers=B.HEADERS)
    client().embed(model="embed-v4.0", texts=["a"], input_type="classification", embedding_types=["float"])
    assert recorder.one().usage == Usage()


# -- attribution ---------------------------------------------------------------------------------


def test_gateway_base_url_is_attributed_by_host(recorder, http_mock):
    http_mock.post("http://localhost:8080/v2/chat").respond(json=B.CHAT_PLAIN, headers=B.HEADERS)
    client(base_url="http://localhost:8080").chat(model=B.MODEL, messages=MESSAGES)
    assert recorder.one().provider == "self-hosted"


def test_bedrock_client_is_attributed_to_aws():
    from tollmeter.instrument.cohere import _provider_of

    pytest.importorskip("boto3")
    bedrock = cohere.BedrockClientV2(aws_region="us-east-1", aws_access_key="a", aws_secret_key="b")
    sagemaker = cohere.SagemakerClientV2(aws_region="us-east-1", aws_access_key="a", aws_secret_key="b")

    class _Call:
        settings = InstrumentSettings()

    assert _provider_of(bedrock._raw_client._v2, _Call) == "aws"
    assert _provider_of(sagemaker._raw_client._v2, _Call) == "aws-sagemaker"
    assert _provider_of(client()._raw_client._v2, _Call) == "cohere"


# -- pricing -------------------------------------------------------------------------------------


def test_chat_is_priced_on_billed_tokens(recorder, http_mock):
    # cohere/command-a: $2.50 per million input tokens, $10 per million output tokens.
    http_mock.post(CHAT).respond(json=B.CHAT_PLAIN, headers=B.HEADERS)
    client().chat(model=B.MODEL, messages=MESSAGES)
    event = recorder.one()
    assert event.priced and event.price_model == "cohere/command-a"
    assert event.cost_usd == Decimal(17) * Decimal("2.5") / 10**6 + Decimal(12) * Decimal(10) / 10**6


def test_embed_is_priced(recorder, http_mock):
    # cohere/embed-v4.0: $0.12 per million input tokens.
    http_mock.post(EMBED).respond(json=B.EMBED, headers=B.HEADERS)
    client().embed(model="embed-v4.0", texts=["hello", "goodbye"], input_type="classification",
                   embedding_types=["float"])
    assert recorder.one().cost_usd == Decimal(2) * Decimal("0.12") / 10**6


def test_rerank_is_unpriced_not_free(recorder, http_mock):
    # genai-prices 0.2.3 has no rerank model: the searches are recorded, the cost is unknown.
    http_mock.post(RERANK).respond(json=B.RERANK, headers=B.HEADERS)
    client().rerank(model="rerank-v3.5", query="q", documents=DOCS)
    event = recorder.one()
    assert event.units == {"rerank_searches": 1} and not event.priced and event.cost_usd is None


# -- transparency and one event per call -----------------------------------------------------------




def _chat():
    return observe(client().chat(model=B.MODEL, messages=MESSAGES, tools=TOOLS))


def _chat_stream():
    return observe(list(client().chat_stream(model=B.MODEL, messages=MESSAGES, tools=TOOLS)))


def _raw_stream():
    with client().with_raw_response.chat_stream(model=B.MODEL, messages=MESSAGES) as response:
        return response.__class__.__qualname__, response.status_code, observe(list(response.data))


def _embed_rerank():
    c = client()
    return (observe(c.embed(model="embed-v4.0", texts=["hello", "goodbye"], input_type="classification",
                            embedding_types=["float"])),
            observe(c.rerank(model="rerank-v3.5", query="q", documents=DOCS)))


def _async_all():
    async def run():
        c = aclient()
        chat = await c.chat(model=B.MODEL, messages=MESSAGES)
        events = [e async for e in c.chat_stream(model=B.MODEL, messages=MESSAGES, tools=TOOLS)]
        return observe(chat), observe(events)

    return asyncio.run(run())


def _error():
    try:
        client().rerank(model="rerank-v3.5", query="q", documents=["x"], top_n=1, max_tokens_per_doc=0)
    except cohere.TooManyRequestsError as exc:
        return type(exc).__qualname__, exc.status_code, exc.body, str(exc)


SCENARIOS = [_chat, _chat_stream, _raw_stream, _embed_rerank, _async_all]


def _mock_all(router, rerank_fails=False):
    serve_chat(router, B.CHAT_TOOL_CALLS, B.CHAT_STREAM_TOOL_CALLS)
    router.post(EMBED).respond(json=B.EMBED, headers=B.HEADERS)
    if rerank_fails:
        router.post(RERANK).respond(429, json=B.ERROR_429, headers=B.HEADERS)
    else:
        router.post(RERANK).respond(json=B.RERANK, headers=B.HEADERS)


@pytest.mark.parametrize("scenario", SCENARIOS + [_error], ids=[s.__name__ for s in SCENARIOS + [_error]])
def test_patched_result_equals_unpatched(http_mock, scenario):
    _mock_all(http_mock, rerank_fails=scenario is _error)
    bare, patched, events = run_bare_then_patched(scenario, "cohere")
    assert patched == bare and bare is not None
    assert events, "the patched run was not metered"


@pytest.mark.parametrize("scenario, calls", [
    (_chat, 1), (_chat_stream, 1), (_raw_stream, 1), (_embed_rerank, 2), (_async_all, 2),
], ids=["chat", "chat_stream", "raw_stream", "embed_rerank", "async"])
def test_one_event_per_call(recorder, http_mock, scenario, calls):
    _mock_all(http_mock)
    scenario()
    events = recorder.recorded()
    assert len(events) == calls
    assert all(e.usage.input_tokens is not None or e.units for e in events)
