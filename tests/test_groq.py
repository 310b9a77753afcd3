"""The groq SDK, on bodies shaped as the API sends them (tests/bodies/groq_bodies.py).

Expected usage is written out by hand from each body. Groq's totals are inclusive: cached
tokens are inside prompt_tokens, reasoning tokens inside completion_tokens.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import groq
import httpx
import pytest

from tollmeter import Meter, MeterConfig, Usage

from .bodies import groq_bodies as B
from .conftest import collect, observe, run_bare_then_patched

pytestmark = pytest.mark.sdk

CHAT = "https://api.groq.com/openai/v1/chat/completions"
TRANSCRIPTIONS = "https://api.groq.com/openai/v1/audio/transcriptions"
TRANSLATIONS = "https://api.groq.com/openai/v1/audio/translations"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
M = Decimal(1_000_000)


def client(**kw) -> groq.Groq:
    return groq.Groq(api_key="gsk-test", max_retries=0, **kw)


def aclient(**kw) -> groq.AsyncGroq:
    return groq.AsyncGroq(api_key="gsk-test", max_retries=0, **kw)


# -- chat completions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, usage, tool_calls, finish",
    [
        (B.CHAT_PLAIN, Usage(input_tokens=18, output_tokens=8), 0, "stop"),
        (B.CHAT_CACHED, Usage(input_tokens=4641, output_tokens=187, cache_read_tokens=4608), 0, "stop"),
        (B.CHAT_REASONING,
         Usage(input_tokens=2061, output_tokens=1107, cache_read_tokens=1536, reasoning_tokens=963), 0, "stop"),
        (B.CHAT_TOOL_CALLS, Usage(input_tokens=210, output_tokens=33), 2, "tool_calls"),
        (B.CHAT_HARDWARE_CACHE_STATS, Usage(input_tokens=12, output_tokens=5), 0, "stop"),
        (B.CHAT_NO_USAGE, Usage(), 0, "stop"),
    ],
    ids=["plain", "cached", "reasoning", "tool_calls", "hardware_cache_stats", "no_usage"],
)
def test_chat_create(recorder, http_mock, body, usage, tool_calls, finish):
    http_mock.post(CHAT).respond(json=body, headers=B.HEADERS)
    completion = client().chat.completions.create(model=body["model"], messages=MESSAGES)
    assert completion.id == body["id"]
    event = recorder.one()
    assert event.usage == usage
    assert (event.tool_calls, event.finish_reason, event.service_tier) == (tool_calls, finish, "on_demand")
    assert (event.provider, event.endpoint, event.stream, event.partial) == ("groq", "chat.completions", False, False)
    assert event.model == event.request_model == body["model"]
    assert event.request_id == B.REQUEST_ID  # x_groq.id
    assert event.error is None and event.duration_ms > 0 and event.time_to_first_token_ms is None


async def test_async_chat_create(recorder, http_mock):
    http_mock.post(CHAT).respond(json=B.CHAT_CACHED, headers=B.HEADERS)
    completion = await aclient().chat.completions.create(model="moonshotai/kimi-k2-instruct-0905", messages=MESSAGES)
    assert completion.usage.prompt_tokens_details.cached_tokens == 4608
    assert recorder.one().usage == Usage(input_tokens=4641, output_tokens=187, cache_read_tokens=4608)


def test_odd_usage_values_never_raise(recorder, http_mock):
    odd = {**B.CHAT_PLAIN, "usage": {"prompt_tokens": "12", "completion_tokens": -3, "total_tokens": 9,
                                     "prompt_tokens_details": None, "completion_tokens_details": None}}
    http_mock.post(CHAT).respond(json=odd)
    completion = client().chat.completions.create(model="llama-3.3-70b-versatile", messages=MESSAGES)
    assert completion.id == odd["id"]
    event = recorder.one()
    assert event.usage == Usage(input_tokens=12)


# -- streams -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, usage, tool_calls, finish",
    [
        (B.STREAM_PLAIN, Usage(input_tokens=38, output_tokens=7), 0, "stop"),
        (B.STREAM_X_GROQ_USAGE_ONLY, Usage(input_tokens=23, output_tokens=19), 0, "stop"),
        (B.STREAM_TOOL_CALLS, Usage(input_tokens=210, output_tokens=15), 2, "tool_calls"),
        (B.STREAM_REASONING,
         Usage(input_tokens=1562, output_tokens=410, cache_read_tokens=1408, reasoning_tokens=320), 0, "stop"),
    ],
    ids=["plain", "x_groq_usage_only", "tool_calls", "reasoning"],
)
def test_chat_stream(recorder, http_mock, body, usage, tool_calls, finish):
    route = http_mock.post(CHAT).respond(text=body, headers=B.SSE_HEADERS)
    stream = client().chat.completions.create(model="llama-3.3-70b-versatile", messages=MESSAGES, stream=True)
    assert isinstance(stream, groq.Stream)
    chunks = list(stream)
    assert chunks[-1].x_groq.usage is not None  # the usage chunk is the caller's, untouched
    assert "stream_options" not in json.loads(route.calls.last.request.content)  # nothing asked for
    event = recorder.one()
    assert event.usage == usage  # usage and x_groq.usage are one count, read once
    assert (event.tool_calls, event.finish_reason) == (tool_calls, finish)
    assert event.stream and not event.partial and event.error is None
    assert event.request_id == B.STREAM_REQUEST_ID
    assert 0 <= event.time_to_first_token_ms <= event.duration_ms


async def test_async_chat_stream(recorder, http_mock):
    http_mock.post(CHAT).respond(text=B.STREAM_REASONING, headers=B.SSE_HEADERS)
    stream = await aclient().chat.completions.create(model="openai/gpt-oss-120b", messages=MESSAGES, stream=True)
    assert isinstance(stream, groq.AsyncStream)
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage.completion_tokens == 410
    event = recorder.one()
    assert event.usage == Usage(input_tokens=1562, output_tokens=410, cache_read_tokens=1408, reasoning_tokens=320)
    assert event.model == "openai/gpt-oss-120b" and not event.partial


def test_stream_x_groq_error_is_recorded(recorder, http_mock):
    http_mock.post(CHAT).respond(text=B.STREAM_X_GROQ_ERROR, headers=B.SSE_HEADERS)
    chunks = list(client().chat.completions.create(model="llama-3.3-70b-versatile", messages=MESSAGES, stream=True))
    assert chunks[-1].x_groq.error == "output_parse_failed"
    event = recorder.one()
    assert event.error == "x_groq.error: output_parse_failed"
    assert event.usage == Usage(input_tokens=38, output_tokens=2)


def test_mid_stream_error_reaches_the_caller_and_is_recorded(recorder, http_mock):
    http_mock.post(CHAT).respond(text=B.STREAM_ERROR_EVENT, headers=B.SSE_HEADERS)
    with pytest.raises(groq.APIError) as raised:
        for _ in client().chat.completions.create(model="llama-3.3-70b-versatile", messages=MESSAGES, stream=True):
            pass
    assert raised.value.message == "Service Unavailable"
    event = recorder.one()
    assert event.error == "APIError" and event.partial and event.usage == Usage()


def test_break_then_close_is_one_partial_event(recorder, http_mock):
    http_mock.post(CHAT).respond(text=B.STREAM_PLAIN, headers=B.SSE_HEADERS)
    stream = client().chat.completions.create(model="llama-3.3-70b-versatile", messages=MESSAGES, stream=True)
    for _ in stream:
        break
    stream.close()
    stream.close()
    event = recorder.one()
    assert event.partial and event.usage == Usage() and event.time_to_first_token_ms is not None


def test_with_block_read_to_the_end(recorder, http_mock):
    http_mock.post(CHAT).respond(text=B.STREAM_PLAIN, headers=B.SSE_HEADERS)
    with client().chat.completions.create(model="llama-3.3-70b-versatile", messages=MESSAGES, stream=True) as stream:
        for _ in stream:
            pass
    event = recorder.one()
    assert not event.partial and event.usage.output_tokens == 7


def test_abandoned_stream_is_recorded_when_collected(recorder, http_mock):
    http_mock.post(CHAT).respond(text=B.STREAM_PLAIN, headers=B.SSE_HEADERS)
    stream = client().chat.completions.create(model="llama-3.3-70b-versatile", messages=MESSAGES, stream=True)
    next(stream)
    del stream
    collect()
    assert recorder.one().partial


async def test_async_stream_closed_early(recorder, http_mock):
    http_mock.post(CHAT).respond(text=B.STREAM_PLAIN, headers=B.SSE_HEADERS)
    stream = await aclient().chat.completions.create(model="llama-3.3-70b-versatile", messages=MESSAGES, stream=True)
    async for _ in stream:
        break
    await stream.close()
    assert recorder.one().partial


# -- raw responses -------------------------------------------------------------------------------


def test_with_raw_response(recorder, http_mock):
    http_mock.post(CHAT).respond(json=B.CHAT_REASONING, headers=B.HEADERS)
    raw = client().chat.completions.with_raw_response.create(model="openai/gpt-oss-120b", messages=MESSAGES)
    assert raw.headers["x-request-id"] == B.REQUEST_ID
    event = recorder.one()
    assert event.usage == Usage(input_tokens=2061, output_tokens=1107, cache_read_tokens=1536, reasoning_tokens=963)
    assert raw.parse().usage.prompt_tokens == 2061


def test_with_raw_response_stream(recorder, http_mock):
    http_mock.post(CHAT).respond(text=B.STREAM_TOOL_CALLS, headers=B.SSE_HEADERS)
    raw = client().chat.completions.with_raw_response.create(
        model="llama-3.3-70b-versatile", messages=MESSAGES, stream=True)
    stream = raw.parse()
    assert raw.parse() is stream
    assert len(list(stream)) == 5
    event = recorder.one()
    assert event.usage == Usage(input_tokens=210, output_tokens=15) and event.tool_calls == 2


def test_with_streaming_response_read_as_json(recorder, http_mock):
    http_mock.post(CHAT).respond(json=B.CHAT_CACHED, headers=B.HEADERS)
    with client().chat.completions.with_streaming_response.create(
            model="moonshotai/kimi-k2-instruct-0905", messages=MESSAGES) as response:
        data = response.json()
    assert data["usage"]["prompt_tokens"] == 4641
    event = recorder.one()
    assert event.usage == Usage(input_tokens=4641, output_tokens=187, cache_read_tokens=4608)
    assert event.request_id == B.REQUEST_ID


async def test_async_with_streaming_response_stream(recorder, http_mock):
    http_mock.post(CHAT).respond(text=B.STREAM_PLAIN, headers=B.SSE_HEADERS)
    async with aclient().chat.completions.with_streaming_response.create(
            model="llama-3.3-70b-versatile", messages=MESSAGES, stream=True) as response:
        stream = await response.parse()
        chunks = [chunk async for chunk in stream]
    assert len(chunks) == 4
    assert recorder.one().usage == Usage(input_tokens=38, output_tokens=7)


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status, body, exc_type", [
    (429, B.ERROR_429, groq.RateLimitError),
    (400, B.ERROR_400, groq.BadRequestError),
])
def test_http_error_reaches_the_caller_unchanged(recorder, http_mock, status, body, exc_type):
    http_mock.post(CHAT).respond(status, json=body, headers=B.HEADERS)
    with pytest.raises(exc_type) as raised:
        client().chat.completions.create(model="llama-3.3-70b-versatile", messages=MESSAGES)
    assert raised.value.status_code == status and raised.value.body == body  # groq keeps the whole body
    event = recorder.one()
    assert (event.error, event.status_code, event.request_id) == (exc_type.__name__, status, B.REQUEST_ID)
    assert event.usage == Usage() and event.cost_usd == 0  # refused: nothing billed


async def test_async_error_is_the_same_object(recorder, http_mock):
    http_mock.post(CHAT).respond(429, json=B.ERROR_429)
    caught = []
    try:
        await aclient().chat.completions.create(model="llama-3.3-70b-versatile", messages=MESSAGES)
    except groq.RateLimitError as exc:
        caught.append(exc)
    assert caught
    event = recorder.one()
    assert (event.error, event.status_code, event.request_id) == ("RateLimitError", 429, None)


def test_connection_error_is_recorded(recorder, http_mock):
    http_mock.post(CHAT).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(groq.APIConnectionError):
        client().chat.completions.create(model="llama-3.3-70b-versatile", messages=MESSAGES)
    event = recorder.one()
    assert event.error == "APIConnectionError" and event.status_code is None


# -- audio ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, response_format, units",
    [
        (B.TRANSCRIPTION_VERBOSE, "verbose_json", {"audio_seconds": 36.712501248, "input_audio_seconds": 36.712501248}),
        (B.TRANSCRIPTION_SHORT, "verbose_json", {"audio_seconds": 10.0, "input_audio_seconds": 10.0}),  # minimum
        (B.TRANSCRIPTION_JSON, "json", None),  # no duration reported
    ],
    ids=["verbose", "under_the_minimum", "json"],
)
def test_transcription(recorder, http_mock, body, response_format, units):
    http_mock.post(TRANSCRIPTIONS).respond(json=body, headers=B.HEADERS)
    result = client().audio.transcriptions.create(
        model="whisper-large-v3", file=("a.mp3", b"ID3..."), response_format=response_format)
    assert result.text == body["text"]
    event = recorder.one()
    assert event.units == units and event.usage == Usage()
    assert (event.provider, event.endpoint, event.model, event.request_id) == (
        "groq", "audio.transcriptions", "whisper-large-v3", B.REQUEST_ID)


async def test_async_translation(recorder, http_mock):
    http_mock.post(TRANSLATIONS).respond(json=B.TRANSLATION_VERBOSE, headers=B.HEADERS)
    await aclient().audio.translations.create(
        model="whisper-large-v3", file=("a.mp3", b"ID3..."), response_format="verbose_json")
    event = recorder.one()
    assert event.endpoint == "audio.translations"
    assert event.units == {"audio_seconds": 12.5, "input_audio_seconds": 12.5}


def test_transcription_as_text(recorder, http_mock):
    http_mock.post(TRANSCRIPTIONS).respond(text=" Hello from the team.\n", headers={"content-type": "text/plain"})
    bare = client().audio.transcriptions
    result = bare.create(model="whisper-large-v3-turbo", file=("a.mp3", b"ID3..."), response_format="text")
    assert result is not None
    event = recorder.one()
    assert event.units is None and event.usage == Usage() and event.error is None


# -- pricing end to end --------------------------------------------------------------------------


def test_llama_3_3_70b_priced(recorder, http_mock):
    # llama-3.3-70b-versatile: $0.59/M input, $0.79/M output
    http_mock.post(CHAT).respond(json=B.CHAT_PLAIN, headers=B.HEADERS)
    client().chat.completions.create(model="llama-3.3-70b-versatile", messages=MESSAGES)
    event = recorder.one()
    assert event.cost_usd == (18 * Decimal("0.59") + 8 * Decimal("0.79")) / M == Decimal("0.00001694")
    assert event.priced and event.price_model == "groq/llama-3.3-70b-versatile"


def test_gpt_oss_120b_cached_and_reasoning_priced_once(recorder, http_mock):
    # openai/gpt-oss-120b: $0.15/M input, $0.075/M cached input, $0.60/M output.
    # 2,061 prompt = 525 uncached + 1,536 cached; 1,107 completion include the 963 reasoning tokens.
    http_mock.post(CHAT).respond(json=B.CHAT_REASONING, headers=B.HEADERS)
    client().chat.completions.create(model="openai/gpt-oss-120b", messages=MESSAGES)
    event = recorder.one()
    expected = (525 * Decimal("0.15") + 1536 * Decimal("0.075") + 1107 * Decimal("0.60")) / M
    assert event.cost_usd == expected == Decimal("0.00085815")


def test_gpt_oss_120b_stream_priced(recorder, http_mock):
    # 1,562 prompt = 154 uncached + 1,408 cached; 410 completion (320 reasoning inside)
    http_mock.post(CHAT).respond(text=B.STREAM_REASONING, headers=B.SSE_HEADERS)
    list(client().chat.completions.create(model="openai/gpt-oss-120b", messages=MESSAGES, stream=True))
    event = recorder.one()
    expected = (154 * Decimal("0.15") + 1408 * Decimal("0.075") + 410 * Decimal("0.60")) / M
    assert event.cost_usd == expected == Decimal("0.0003747")


def test_whisper_priced_per_second(recorder, http_mock):
    # whisper-large-v3: $0.111 per hour of audio; 36.712501248 s
    http_mock.post(TRANSCRIPTIONS).respond(json=B.TRANSCRIPTION_VERBOSE, headers=B.HEADERS)
    client().audio.transcriptions.create(model="whisper-large-v3", file=("a.mp3", b"ID3..."),
                                         response_format="verbose_json")
    event = recorder.one()
    # Units are floats and the pricer takes their exact binary value: equal to 15 places.
    expected = Decimal("36.712501248") * Decimal("0.111") / 3600
    assert abs(event.cost_usd - expected) < Decimal("1e-15") and event.priced


def test_whisper_turbo_minimum_billed(recorder, http_mock):
    # whisper-large-v3-turbo: $0.04 per hour; 4.2 s billed as the 10-second minimum
    http_mock.post(TRANSCRIPTIONS).respond(json={**B.TRANSCRIPTION_SHORT}, headers=B.HEADERS)
    client().audio.transcriptions.create(model="whisper-large-v3-turbo", file=("a.mp3", b"ID3..."),
                                         response_format="verbose_json")
    assert recorder.one().cost_usd == 10 * Decimal("0.04") / 3600


# -- one event per call, patching ---------------------------------------------------------------


def test_client_made_before_patching_is_metered(http_mock):
    from .conftest import Recorder

    early = client()
    rec = Recorder()
    rec.meter.patch("groq")
    try:
        http_mock.post(CHAT).respond(json=B.CHAT_PLAIN, headers=B.HEADERS)
        early.chat.completions.create(model="llama-3.3-70b-versatile", messages=MESSAGES)
        early.chat.completions.create(model="llama-3.3-70b-versatile", messages=MESSAGES)
        assert [e.usage.input_tokens for e in rec.recorded()] == [18, 18]
    finally:
        rec.meter.shutdown()
    assert not rec.errors


def test_unpatch_restores_the_sdk():
    from groq.resources.chat.completions import AsyncCompletions, Completions

    originals = (Completions.create, AsyncCompletions.create)
    meter = Meter(MeterConfig(on_event=lambda e: None))
    assert meter.patch("groq")
    assert Completions.create is not originals[0]
    meter.shutdown()
    assert (Completions.create, AsyncCompletions.create) == originals


# -- transparency --------------------------------------------------------------------------------




def _mock_groq(router):
    def chat(request):
        if json.loads(request.content).get("stream"):
            return httpx.Response(200, text=B.STREAM_TOOL_CALLS, headers=B.SSE_HEADERS)
        return httpx.Response(200, json=B.CHAT_REASONING, headers=B.HEADERS)

    router.post(CHAT).mock(side_effect=chat)
    router.post(TRANSCRIPTIONS).respond(json=B.TRANSCRIPTION_VERBOSE, headers=B.HEADERS)


def _create():
    return observe(client().chat.completions.create(model="openai/gpt-oss-120b", messages=MESSAGES))


def _stream():
    stream = client().chat.completions.create(model="llama-3.3-70b-versatile", messages=MESSAGES, stream=True)
    return stream.__class__.__qualname__, observe(list(stream))


def _raw():
    raw = client().chat.completions.with_raw_response.create(model="openai/gpt-oss-120b", messages=MESSAGES)
    return raw.__class__.__qualname__, dict(raw.headers), observe(raw.parse())


def _raw_stream():
    raw = client().chat.completions.with_raw_response.create(
        model="llama-3.3-70b-versatile", messages=MESSAGES, stream=True)
    return observe(list(raw.parse()))


def _transcription():
    return observe(client().audio.transcriptions.create(
        model="whisper-large-v3", file=("a.mp3", b"ID3..."), response_format="verbose_json"))


def _async():
    async def run():
        c = aclient()
        made = await c.chat.completions.create(model="openai/gpt-oss-120b", messages=MESSAGES)
        stream = await c.chat.completions.create(model="llama-3.3-70b-versatile", messages=MESSAGES, stream=True)
        return observe(made), observe([chunk async for chunk in stream])

    return asyncio.run(run())


SCENARIOS = [_create, _stream, _raw, _raw_stream, _transcription, _async]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__.strip("_") for s in SCENARIOS])
def test_patched_result_equals_unpatched(http_mock, scenario):
    _mock_groq(http_mock)
    bare, patched, events = run_bare_then_patched(scenario, "groq")
    assert patched == bare
    assert len(events) == (2 if scenario is _async else 1)


def test_error_is_unchanged(http_mock):
    http_mock.post(CHAT).respond(429, json=B.ERROR_429, headers=B.HEADERS)

    def scenario():
        try:
            client().chat.completions.create(model="llama-3.3-70b-versatile", messages=MESSAGES)
        except groq.RateLimitError as exc:
            return type(exc).__qualname__, str(exc), exc.status_code, exc.body

    bare, patched, events = run_bare_then_patched(scenario, "groq")
    assert patched == bare and bare[2] == 429 and len(events) == 1
