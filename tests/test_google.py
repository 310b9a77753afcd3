"""The google-genai SDK, on Gemini API and Vertex AI bodies shaped as the APIs send them
(tests/bodies/google_bodies.py).

Expected usage is written out by hand from the bodies, in tollmeter's inclusive convention:
input = promptTokenCount (cache hits included) + toolUsePromptTokenCount;
output = candidatesTokenCount + thoughtsTokenCount; reasoning = thoughtsTokenCount.
"""

from __future__ import annotations

import asyncio
import json
import re
from decimal import Decimal

import httpx
import pytest
from google import genai
from google.genai import errors, types
from google.oauth2.credentials import Credentials

from tollmeter import Meter, MeterConfig, Usage

from .bodies import google_bodies as B
from .conftest import collect, observe, run_bare_then_patched

pytestmark = pytest.mark.sdk

CONTENTS = "What is the capital of France?"
M = Decimal(1_000_000)


# A genai.Client closes its HTTP clients when it is garbage collected, even while `client.models`
# is still in use: `genai.Client(...).models.generate_content(...)` fails with "the client has been
# closed". Tests keep the clients they make alive until the test ends.
_alive: list[genai.Client] = []


@pytest.fixture(autouse=True)
def _sdk_test_setup(monkeypatch):
    # Where aiohttp is installed the SDK sends async requests through it, which `http_mock` does
    # not mock: keep them on httpx / httpx2, as without aiohttp.
    from google.genai import _api_client

    monkeypatch.setattr(_api_client, "has_aiohttp", False)
    yield
    _alive.clear()


def _kept(made: genai.Client) -> genai.Client:
    _alive.append(made)
    return made


def client(**kw) -> genai.Client:
    return _kept(genai.Client(api_key="test-key", vertexai=False, **kw))


def vertex() -> genai.Client:
    return _kept(genai.Client(vertexai=True, project="tollmeter-test", location="us-central1",
                              credentials=Credentials(token="ya29.test-token")))


def vertex_express() -> genai.Client:
    return _kept(genai.Client(vertexai=True, api_key="test-key"))


def route(router, model: str, method: str = "generateContent", base: str = B.GEMINI_URL):
    """A POST route for `model`'s `method`, whatever the API version and resource prefix."""
    pattern = rf"{re.escape(base)}/v1[a-z0-9]*/(.*/)?models/{re.escape(model)}:{method}(\?.*)?$"
    return router.post(url__regex=pattern)


def json_response(body, status=200):
    return httpx.Response(status, json=body, headers=B.HEADERS)


def sse_response(body):
    return httpx.Response(200, text=body, headers=B.SSE_HEADERS)


# -- generate_content ----------------------------------------------------------------------------

PLAIN = Usage(input_tokens=8, output_tokens=12)
THINKING = Usage(input_tokens=25, output_tokens=1_201, reasoning_tokens=1_021)
CACHED = Usage(input_tokens=12_500, output_tokens=485, cache_read_tokens=11_800, reasoning_tokens=400)
TOOL_CALLS = Usage(input_tokens=96, output_tokens=90, reasoning_tokens=54)
GROUNDED = Usage(input_tokens=322, output_tokens=184, tool_use_prompt_tokens=310, reasoning_tokens=120)
GROUNDED_3 = Usage(input_tokens=292, output_tokens=268, tool_use_prompt_tokens=280, reasoning_tokens=210)
NOT_GROUNDED = Usage(input_tokens=14, output_tokens=39, reasoning_tokens=30)
AUDIO_CACHED = Usage(input_tokens=1_000, output_tokens=40, cache_read_tokens=600, input_audio_tokens=800)
VISION = Usage(input_tokens=2_163, output_tokens=31, input_image_tokens=258, input_video_tokens=1_898)
IMAGE_OUT = Usage(input_tokens=9, output_tokens=1_302, output_image_tokens=1_290)
MAX_TOKENS_THINKING = Usage(input_tokens=18, output_tokens=1_000, reasoning_tokens=1_000)
BLOCKED = Usage(input_tokens=11)


@pytest.mark.parametrize(
    "body, usage, tool_calls, web_searches, finish",
    [
        (B.PLAIN, PLAIN, 0, None, "STOP"),
        (B.THINKING, THINKING, 0, None, "STOP"),
        (B.CACHED, CACHED, 0, None, "STOP"),
        (B.TOOL_CALLS, TOOL_CALLS, 2, None, "STOP"),
        (B.GROUNDED, GROUNDED, 0, 1, "STOP"),  # Gemini 2.5: one grounded prompt, however many queries
        (B.GROUNDED_3, GROUNDED_3, 0, 2, "STOP"),  # Gemini 3: unique non-empty queries
        (B.NOT_GROUNDED, NOT_GROUNDED, 0, None, "STOP"),
        (B.AUDIO_CACHED, AUDIO_CACHED, 0, None, "STOP"),
        (B.VISION, VISION, 0, None, "STOP"),
        (B.IMAGE_OUT, IMAGE_OUT, 0, None, "STOP"),
        (B.MAX_TOKENS_THINKING, MAX_TOKENS_THINKING, 0, None, "MAX_TOKENS"),
        (B.BLOCKED, BLOCKED, 0, None, "PROHIBITED_CONTENT"),
    ],
    ids=["plain", "thinking", "cached", "tool_calls", "grounded_2_5", "grounded_3", "not_grounded",
         "audio_cached", "vision", "image_out", "max_tokens_thinking", "blocked"],
)
def test_generate_content(recorder, http_mock, body, usage, tool_calls, web_searches, finish):
    model = body["modelVersion"]
    route(http_mock, model).mock(return_value=json_response(body))
    response = client().models.generate_content(model=model, contents=CONTENTS)
    assert isinstance(response, types.GenerateContentResponse)
    event = recorder.one()
    assert event.usage == usage
    assert (event.tool_calls, event.web_search_requests, event.finish_reason) == (tool_calls, web_searches, finish)
    assert (event.provider, event.endpoint, event.stream, event.partial, event.error) == (
        "google", "generate_content", False, False, None)
    assert event.model == model and event.request_model == model
    assert event.request_id == B.RESPONSE_ID
    assert event.time_to_first_token_ms is None and event.duration_ms > 0


def test_cached_audio_is_a_unit_for_pricing(recorder, http_mock):
    route(http_mock, "gemini-2.5-flash").mock(return_value=json_response(B.AUDIO_CACHED))
    client().models.generate_content(model="gemini-2.5-flash", contents=CONTENTS)
    event = recorder.one()
    # 500 of the 600 cached tokens are audio, which Gemini prices apart from cached text
    assert event.units == {"cache_audio_read_tokens": 500.0}


async def test_async_generate_content(recorder, http_mock):
    route(http_mock, "gemini-2.5-flash").mock(return_value=json_response(B.CACHED))
    response = await client().aio.models.generate_content(model="gemini-2.5-flash", contents=CONTENTS)
    assert response.usage_metadata.cached_content_token_count == 11_800
    event = recorder.one()
    assert event.usage == CACHED and event.provider == "google" and not event.stream


@pytest.mark.parametrize("model", ["models/gemini-2.5-flash", "gemini-2.5-flash"])
def test_model_resource_name_is_the_model_id(recorder, http_mock, model):
    route(http_mock, "gemini-2.5-flash").mock(return_value=json_response(B.CACHED))
    client().models.generate_content(model=model, contents=CONTENTS)
    assert recorder.one().request_model == "gemini-2.5-flash"


@pytest.mark.parametrize("body, usage", [(B.ODD_USAGE, Usage(output_tokens=7)), (B.NO_USAGE, Usage())],
                         ids=["odd", "missing"])
def test_odd_or_missing_usage_never_raises(recorder, http_mock, body, usage):
    route(http_mock, "gemini-2.5-flash").mock(return_value=json_response(body))
    client().models.generate_content(model="gemini-2.5-flash", contents=CONTENTS)
    event = recorder.one()  # the recorder fails the test on any instrumentation fault
    assert event.usage == usage
    assert event.model == "gemini-2.5-flash"  # modelVersion, or the model asked for when it is missing


def test_raw_http_response_is_read_from_its_body(recorder, http_mock):
    if "should_return_http_response" not in types.GenerateContentConfig.model_fields:
        pytest.skip("this google-genai has no should_return_http_response")
    route(http_mock, "gemini-2.5-flash").mock(return_value=json_response(B.GROUNDED))
    response = client().models.generate_content(
        model="gemini-2.5-flash", contents=CONTENTS,
        config=types.GenerateContentConfig(should_return_http_response=True))
    assert response.usage_metadata is None and json.loads(response.sdk_http_response.body) == B.GROUNDED
    event = recorder.one()
    assert event.usage == GROUNDED and event.web_search_requests == 1 and event.request_id == B.RESPONSE_ID


def test_chat_send_message(recorder, http_mock):
    route(http_mock, "gemini-2.5-pro").mock(return_value=json_response(B.THINKING))
    chat = client().chats.create(model="gemini-2.5-pro")
    assert chat.send_message("Train or plane?").text
    assert recorder.one().usage == THINKING


# -- Vertex AI -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [
    "gemini-2.5-flash",
    "publishers/google/models/gemini-2.5-flash",
    "projects/tollmeter-test/locations/us-central1/publishers/google/models/gemini-2.5-flash",
])
def test_vertex_generate_content(recorder, http_mock, model):
    route(http_mock, "gemini-2.5-flash", base=B.VERTEX_URL).mock(return_value=json_response(B.VERTEX))
    vertex().models.generate_content(model=model, contents=CONTENTS)
    event = recorder.one()
    assert event.provider == "google-vertex" and event.request_model == "gemini-2.5-flash"
    assert event.usage == Usage(input_tokens=9, output_tokens=219, reasoning_tokens=212)
    assert event.service_tier == "standard" and event.request_id == B.VERTEX["responseId"]


async def test_vertex_express_mode_async(recorder, http_mock):
    route(http_mock, "gemini-2.5-flash", base=B.VERTEX_EXPRESS_URL).mock(
        return_value=json_response(B.VERTEX_FLEX_CACHED))
    await vertex_express().aio.models.generate_content(model="gemini-2.5-flash", contents=CONTENTS)
    event = recorder.one()
    assert event.provider == "google-vertex" and event.service_tier == "flex"
    assert event.usage == Usage(input_tokens=4_100, output_tokens=20, cache_read_tokens=4_000)


def test_provider_override_by_base_url(http_mock):
    events = []
    meter = Meter(MeterConfig(on_event=events.append, flush_interval=0.05,
                              provider_overrides={"https://llm-gateway.internal/": "my-gateway"}))
    meter.patch_all()
    try:
        http_mock.post(url__regex=r"https://llm-gateway\.internal/.*gemini-2\.0-flash:generateContent").mock(
            return_value=json_response(B.PLAIN))
        client(http_options={"base_url": "https://llm-gateway.internal/"}).models.generate_content(
            model="gemini-2.0-flash", contents=CONTENTS)
        assert meter.flush(5)
    finally:
        meter.shutdown()
    assert [e.provider for e in events] == ["my-gateway"]


# -- automatic function calling: one event per request -------------------------------------------


def get_weather(city: str) -> dict:
    """Returns the current weather in a city."""
    return {"temperature_c": 24, "sky": "sunny"}


def get_time(city: str) -> dict:
    """Returns the local time in a city."""
    return {"time": "14:05"}


AFC_CONFIG = types.GenerateContentConfig(tools=[get_weather, get_time])
AFC_USAGES = {
    "afc-1": Usage(input_tokens=60, output_tokens=52, reasoning_tokens=40),
    "afc-2": Usage(input_tokens=95, output_tokens=35, reasoning_tokens=25),
    "afc-3": Usage(input_tokens=120, output_tokens=18),
}


def check_afc_events(events, ids, stream=False):
    assert [e.request_id for e in events] == ids
    for event in events:
        assert event.usage == AFC_USAGES[event.request_id], event.request_id
        assert (event.provider, event.endpoint, event.stream, event.partial) == (
            "google", "generate_content", stream, False)
    assert [e.tool_calls for e in events] == [1] * (len(ids) - 1) + [0]


@pytest.mark.parametrize("bodies, ids", [
    ((B.AFC_CALL, B.AFC_FINAL), ["afc-1", "afc-3"]),
    ((B.AFC_CALL, B.AFC_CALL_2, B.AFC_FINAL), ["afc-1", "afc-2", "afc-3"]),
], ids=["two_requests", "three_requests"])
def test_automatic_function_calling_meters_every_request(recorder, http_mock, bodies, ids):
    r = route(http_mock, "gemini-2.5-flash").mock(side_effect=[json_response(b) for b in bodies])
    response = client().models.generate_content(model="gemini-2.5-flash", contents="Weather and time in Paris?",
                                                 config=AFC_CONFIG)
    assert r.call_count == len(bodies)
    assert response.text.startswith("It is 24°C") and response.automatic_function_calling_history
    check_afc_events(recorder.recorded(), ids)


async def test_async_automatic_function_calling(recorder, http_mock):
    route(http_mock, "gemini-2.5-flash").mock(
        side_effect=[json_response(B.AFC_CALL), json_response(B.AFC_CALL_2), json_response(B.AFC_FINAL)])
    response = await client().aio.models.generate_content(model="gemini-2.5-flash", contents="Weather?",
                                                          config=AFC_CONFIG)
    assert response.text.startswith("It is 24°C")
    check_afc_events(recorder.recorded(), ["afc-1", "afc-2", "afc-3"])


def test_chat_automatic_function_calling(recorder, http_mock):
    route(http_mock, "gemini-2.5-flash").mock(side_effect=[json_response(B.AFC_CALL), json_response(B.AFC_FINAL)])
    chat = client().chats.create(model="gemini-2.5-flash", config=AFC_CONFIG)
    assert chat.send_message("Weather in Paris?").text.startswith("It is 24°C")
    check_afc_events(recorder.recorded(), ["afc-1", "afc-3"])


def test_streamed_automatic_function_calling(recorder, http_mock):
    route(http_mock, "gemini-2.5-flash", "streamGenerateContent").mock(
        side_effect=[sse_response(B.STREAM_AFC_CALL), sse_response(B.STREAM_AFC_FINAL)])
    chunks = list(client().models.generate_content_stream(model="gemini-2.5-flash", contents="Weather?",
                                                          config=AFC_CONFIG))
    # (google-genai 3.x also yields the function call chunk to the caller, 2.0 does not)
    assert chunks[-1].text == " and sunny in Paris."
    check_afc_events(recorder.recorded(), ["afc-1", "afc-3"], stream=True)


async def test_async_streamed_automatic_function_calling(recorder, http_mock):
    route(http_mock, "gemini-2.5-flash", "streamGenerateContent").mock(
        side_effect=[sse_response(B.STREAM_AFC_CALL), sse_response(B.STREAM_AFC_FINAL)])
    stream = await client().aio.models.generate_content_stream(model="gemini-2.5-flash", contents="Weather?",
                                                               config=AFC_CONFIG)
    chunks = [c async for c in stream]
    assert chunks[-1].text == " and sunny in Paris."
    check_afc_events(recorder.recorded(), ["afc-1", "afc-3"], stream=True)


def test_without_automatic_function_calling_one_request_is_one_event(recorder, http_mock):
    route(http_mock, "gemini-2.5-flash").mock(return_value=json_response(B.AFC_CALL))
    config = types.GenerateContentConfig(
        tools=[get_weather], automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    response = client().models.generate_content(model="gemini-2.5-flash", contents="Weather?", config=config)
    assert response.function_calls[0].name == "get_weather"
    event = recorder.one()
    assert event.tool_calls == 1 and event.usage == AFC_USAGES["afc-1"]


# -- automatic continuation: one event per hop --------------------------------------------------

needs_continuation = pytest.mark.skipif(
    not hasattr(types.FinishReason, "CONTINUATION"), reason="this google-genai has no automatic continuation")
HOP1 = Usage(input_tokens=120, output_tokens=80, cache_read_tokens=40, reasoning_tokens=30)
HOP2 = Usage(input_tokens=200, output_tokens=25)


@needs_continuation
def test_automatic_continuation_meters_every_hop(recorder, http_mock):
    route(http_mock, "gemini-3-flash-preview").mock(
        side_effect=[json_response(B.CONTINUATION_HOP1), json_response(B.CONTINUATION_HOP2)])
    response = client().models.generate_content(model="gemini-3-flash-preview", contents="Write a long book")
    # the caller gets one merged reply whose usage the SDK summed over the hops ...
    assert response.usage_metadata.prompt_token_count == 320
    events = recorder.recorded()
    # ... and each request is metered once, with its own usage: the sums match, nothing counted twice
    assert [(e.request_id, e.usage, e.finish_reason) for e in events] == [
        ("hop-1", HOP1, "CONTINUATION"), ("hop-2", HOP2, "STOP")]


@needs_continuation
async def test_async_streamed_continuation_meters_every_hop(recorder, http_mock):
    route(http_mock, "gemini-3-flash-preview", "streamGenerateContent").mock(
        side_effect=[sse_response(B.sse(B.CONTINUATION_HOP1)), sse_response(B.sse(B.CONTINUATION_HOP2))])
    stream = await client().aio.models.generate_content_stream(model="gemini-3-flash-preview", contents="A book")
    chunks = [c async for c in stream]
    assert chunks[-1].usage_metadata.prompt_token_count == 320  # the SDK's running sum across hops
    events = recorder.recorded()
    assert [(e.request_id, e.usage, e.stream, e.partial) for e in events] == [
        ("hop-1", HOP1, True, False), ("hop-2", HOP2, True, False)]


# -- streams -------------------------------------------------------------------------------------

STREAM_CASES = [
    (B.STREAM_PLAIN, "gemini-2.0-flash", Usage(input_tokens=8, output_tokens=12), 0, None),
    (B.STREAM_THINKING, "gemini-2.5-flash", Usage(input_tokens=9, output_tokens=611, reasoning_tokens=603), 0, None),
    (B.STREAM_CACHED, "gemini-2.5-flash", CACHED, 0, None),
    (B.STREAM_TOOL_CALL, "gemini-2.5-flash", Usage(input_tokens=96, output_tokens=75, reasoning_tokens=54), 1, None),
    (B.STREAM_GROUNDED, "gemini-2.5-flash", GROUNDED, 0, 1),
]
STREAM_IDS = ["plain", "thinking", "cached", "tool_call", "grounded"]


@pytest.mark.parametrize("body, model, usage, tool_calls, web_searches", STREAM_CASES, ids=STREAM_IDS)
def test_generate_content_stream(recorder, http_mock, body, model, usage, tool_calls, web_searches):
    route(http_mock, model, "streamGenerateContent").mock(return_value=sse_response(body))
    chunks = list(client().models.generate_content_stream(model=model, contents=CONTENTS))
    assert chunks and all(isinstance(c, types.GenerateContentResponse) for c in chunks)
    event = recorder.one()
    assert event.usage == usage
    assert (event.tool_calls, event.web_search_requests, event.finish_reason) == (tool_calls, web_searches, "STOP")
    assert (event.provider, event.endpoint, event.stream, event.partial, event.error) == (
        "google", "generate_content", True, False, None)
    assert event.model == model and event.request_id == B.RESPONSE_ID
    assert event.time_to_first_token_ms is not None and 0 <= event.time_to_first_token_ms <= event.duration_ms


@pytest.mark.parametrize("body, model, usage, tool_calls, web_searches", STREAM_CASES, ids=STREAM_IDS)
async def test_async_generate_content_stream(recorder, http_mock, body, model, usage, tool_calls, web_searches):
    route(http_mock, model, "streamGenerateContent").mock(return_value=sse_response(body))
    stream = await client().aio.models.generate_content_stream(model=model, contents=CONTENTS)
    async for _ in stream:
        pass
    event = recorder.one()
    assert event.usage == usage and event.stream and not event.partial
    assert (event.tool_calls, event.web_search_requests) == (tool_calls, web_searches)
    assert event.time_to_first_token_ms is not None


def test_vertex_stream(recorder, http_mock):
    route(http_mock, "gemini-2.5-flash", "streamGenerateContent", base=B.VERTEX_URL).mock(
        return_value=sse_response(B.STREAM_THINKING))
    for _ in vertex().models.generate_content_stream(model="gemini-2.5-flash", contents=CONTENTS):
        pass
    event = recorder.one()
    assert event.provider == "google-vertex" and event.usage.output_tokens == 611


def test_chat_send_message_stream(recorder, http_mock):
    route(http_mock, "gemini-2.5-flash", "streamGenerateContent").mock(return_value=sse_response(B.STREAM_CACHED))
    chat = client().chats.create(model="gemini-2.5-flash")
    text = "".join(c.text for c in chat.send_message_stream("Liability?"))
    assert text == "Section 4.2 limits liability to direct damages."
    assert recorder.one().usage == CACHED


def test_stream_left_early_is_partial_with_the_last_counts_seen(recorder, http_mock):
    route(http_mock, "gemini-2.0-flash", "streamGenerateContent").mock(return_value=sse_response(B.STREAM_PLAIN))
    stream = client().models.generate_content_stream(model="gemini-2.0-flash", contents=CONTENTS)
    first = next(stream)
    assert first.text == "The"
    stream.close()
    del stream
    collect()
    event = recorder.one()
    assert event.partial and event.usage == Usage(input_tokens=8, output_tokens=1)


async def test_async_stream_left_early_is_partial(recorder, http_mock):
    route(http_mock, "gemini-2.5-flash", "streamGenerateContent").mock(return_value=sse_response(B.STREAM_THINKING))
    stream = await client().aio.models.generate_content_stream(model="gemini-2.5-flash", contents=CONTENTS)
    async for _ in stream:
        break
    await stream.aclose()
    del stream
    # The SDK's inner async generators are finalized by the event loop (its asyncgen hooks schedule
    # their aclose()): the call is recorded once the loop has run those.
    for _ in range(5):
        collect()
        await asyncio.sleep(0)
    event = recorder.one()
    assert event.partial and event.usage == Usage(input_tokens=9, output_tokens=605, reasoning_tokens=603)


def test_error_event_in_stream(recorder, http_mock):
    route(http_mock, "gemini-2.5-flash", "streamGenerateContent").mock(return_value=sse_response(B.STREAM_ERROR))
    seen = []
    with pytest.raises(errors.ServerError) as raised:
        for chunk in client().models.generate_content_stream(model="gemini-2.5-flash", contents=CONTENTS):
            seen.append(chunk)
    assert len(seen) == 1 and raised.value.code == 503
    event = recorder.one()
    assert (event.error, event.status_code, event.partial) == ("ServerError", 503, True)
    assert event.usage == Usage(input_tokens=9, output_tokens=605, reasoning_tokens=603)


async def test_async_error_event_in_stream(recorder, http_mock):
    route(http_mock, "gemini-2.5-flash", "streamGenerateContent").mock(return_value=sse_response(B.STREAM_ERROR))
    stream = await client().aio.models.generate_content_stream(model="gemini-2.5-flash", contents=CONTENTS)
    with pytest.raises(errors.ServerError):
        async for _ in stream:
            pass
    event = recorder.one()
    assert (event.error, event.status_code, event.partial) == ("ServerError", 503, True)


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status, body, exc_type", [
    (429, B.ERROR_429, errors.ClientError),
    (400, B.ERROR_400, errors.ClientError),
    (503, B.ERROR_503, errors.ServerError),
], ids=["429", "400", "503"])
def test_http_error_reaches_caller_unchanged_and_is_recorded(recorder, http_mock, status, body, exc_type):
    route(http_mock, "gemini-2.5-pro").mock(return_value=json_response(body, status))
    with pytest.raises(exc_type) as raised:
        client().models.generate_content(model="gemini-2.5-pro", contents=CONTENTS)
    assert raised.value.code == status and raised.value.details == body
    event = recorder.one()
    assert (event.error, event.status_code, event.partial) == (exc_type.__name__, status, False)
    assert event.usage == Usage() and event.cost_usd == 0  # refused: nothing billed


async def test_async_http_error(recorder, http_mock):
    route(http_mock, "gemini-2.5-pro").mock(return_value=json_response(B.ERROR_429, 429))
    with pytest.raises(errors.ClientError):
        await client().aio.models.generate_content(model="gemini-2.5-pro", contents=CONTENTS)
    event = recorder.one()
    assert (event.error, event.status_code) == ("ClientError", 429)


def test_http_error_on_a_stream(recorder, http_mock):
    # The sync stream is a generator: the request goes out, and fails, at the first iteration.
    route(http_mock, "gemini-2.5-pro", "streamGenerateContent").mock(return_value=json_response(B.ERROR_429, 429))
    with pytest.raises(errors.ClientError) as raised:
        list(client().models.generate_content_stream(model="gemini-2.5-pro", contents=CONTENTS))
    assert raised.value.code == 429
    event = recorder.one()
    # refused before anything was streamed: not a partial stream, and nothing billed
    assert (event.error, event.status_code, event.stream, event.partial) == ("ClientError", 429, True, False)
    assert event.usage == Usage() and event.cost_usd == 0


async def test_async_http_error_on_a_stream(recorder, http_mock):
    route(http_mock, "gemini-2.5-pro", "streamGenerateContent").mock(return_value=json_response(B.ERROR_429, 429))
    with pytest.raises(errors.ClientError):
        stream = await client().aio.models.generate_content_stream(model="gemini-2.5-pro", contents=CONTENTS)
        async for _ in stream:
            pass
    event = recorder.one()
    assert (event.error, event.status_code, event.stream, event.partial) == ("ClientError", 429, True, False)
    assert event.cost_usd == 0


def test_connection_error_is_recorded(recorder, http_mock):
    route(http_mock, "gemini-2.5-flash").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(Exception) as raised:
        client().models.generate_content(model="gemini-2.5-flash", contents=CONTENTS)
    event = recorder.one()
    assert event.error == type(raised.value).__name__ and "ConnectError" in event.error
    assert event.status_code is None


# -- embed_content -------------------------------------------------------------------------------


@pytest.mark.parametrize("body, model, usage", [
    (B.EMBED, "gemini-embedding-001", Usage(input_tokens=9)),
    (B.EMBED_IMAGE, "gemini-embedding-2", Usage(input_tokens=258, input_image_tokens=258)),
    (B.EMBED_NO_USAGE, "gemini-embedding-001", Usage()),
], ids=["text", "image", "no_usage"])
def test_embed_content(recorder, http_mock, body, model, usage):
    route(http_mock, model, "batchEmbedContents").mock(return_value=json_response(body))
    response = client().models.embed_content(model=model, contents=["first text", "second text"])
    assert isinstance(response, types.EmbedContentResponse) and response.embeddings
    event = recorder.one()
    assert event.usage == usage
    assert (event.provider, event.endpoint, event.model, event.request_model, event.stream) == (
        "google", "embed_content", model, model, False)
    assert event.tool_calls is None and event.error is None


async def test_async_embed_content(recorder, http_mock):
    route(http_mock, "gemini-embedding-001", "batchEmbedContents").mock(return_value=json_response(B.EMBED))
    await client().aio.models.embed_content(model="gemini-embedding-001", contents=["a", "b"])
    assert recorder.one().usage == Usage(input_tokens=9)


def test_vertex_embed_content(recorder, http_mock):
    # google-genai 3.x sends gemini-embedding-001 to `embedContent` on Vertex, 2.x to `predict`.
    embed = route(http_mock, "gemini-embedding-001", "embedContent", base=B.VERTEX_URL).mock(
        return_value=json_response(B.EMBED_VERTEX))
    route(http_mock, "gemini-embedding-001", "predict", base=B.VERTEX_URL).mock(
        return_value=json_response(B.EMBED_VERTEX_PREDICT_ONE))
    vertex().models.embed_content(model="gemini-embedding-001", contents="hello")
    event = recorder.one()
    assert (event.provider, event.model, event.usage) == (
        "google-vertex", "gemini-embedding-001", Usage(input_tokens=4))
    if embed.called:  # embedContent reports the traffic type; predict reports billable characters
        assert event.service_tier == "standard" and event.units is None
    else:
        assert event.service_tier is None and event.units == {"input_characters": 5.0}


def test_vertex_predict_embeddings(recorder, http_mock):
    route(http_mock, "text-embedding-005", "predict", base=B.VERTEX_URL).mock(
        return_value=json_response(B.EMBED_VERTEX_PREDICT))
    response = vertex().models.embed_content(model="text-embedding-005", contents=["first text", "second"])
    assert len(response.embeddings) == 2
    event = recorder.one()
    assert event.usage == Usage(input_tokens=9) and event.units == {"input_characters": 41.0}


def test_embed_http_error(recorder, http_mock):
    route(http_mock, "gemini-embedding-001", "batchEmbedContents").mock(
        return_value=json_response(B.ERROR_429, 429))
    with pytest.raises(errors.ClientError):
        client().models.embed_content(model="gemini-embedding-001", contents="a")
    event = recorder.one()
    assert (event.endpoint, event.error, event.status_code) == ("embed_content", "ClientError", 429)


def test_limits_see_what_an_embedding_request_sends(http_mock):
    from tollmeter import LimitExceededException

    route_ = route(http_mock, "gemini-embedding-001", "batchEmbedContents").mock(return_value=json_response(B.EMBED))
    meter = Meter(MeterConfig(on_event=lambda e: None, flush_interval=0.05))
    meter.patch_all()
    meter.set_limit("acme", "0.0001")  # about 666 tokens of gemini-embedding-001 (0.15 per million)
    try:
        with meter.for_tenant("acme"):
            client().models.embed_content(model="gemini-embedding-001", contents=["a short text"])
            assert route_.call_count == 1
            with pytest.raises(LimitExceededException):  # ~2,000 words: refused before it is sent
                client().models.embed_content(model="gemini-embedding-001", contents=["word " * 2_000])
            assert route_.call_count == 1
    finally:
        meter.shutdown()


def test_other_api_requests_are_not_metered(recorder, http_mock):
    route(http_mock, "gemini-2.5-flash", "countTokens").mock(
        return_value=json_response({"totalTokens": 8, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 8}]}))
    http_mock.get(url__regex=r".*/models/gemini-2\.5-flash$").mock(
        return_value=json_response({"name": "models/gemini-2.5-flash", "displayName": "Gemini 2.5 Flash"}))
    c = client()
    assert c.models.count_tokens(model="gemini-2.5-flash", contents=CONTENTS).total_tokens == 8
    assert c.models.get(model="gemini-2.5-flash").display_name == "Gemini 2.5 Flash"
    assert recorder.recorded() == []


# -- pricing, end to end (rates per million tokens as `tollmeter prices` shows them) ----------------


@pytest.mark.parametrize("make, body, model, cost", [
    # gemini-2.5-flash: input 0.30, cache read 0.03, output 2.50, web searches 35 per 1,000 grounded prompts
    (client, B.CACHED, "gemini-2.5-flash", (700 * Decimal("0.30") + 11_800 * Decimal("0.03") + 485 * Decimal("2.50")) / M),
    (client, B.GROUNDED, "gemini-2.5-flash", (322 * Decimal("0.30") + 184 * Decimal("2.50")) / M + Decimal(35) / 1000),
    # audio 1.00, cached audio 0.10: 500 cached audio, 100 cached text, 300 uncached audio, 100 uncached text
    (client, B.AUDIO_CACHED, "gemini-2.5-flash",
     (500 * Decimal("0.10") + 100 * Decimal("0.03") + 300 * Decimal("1.00") + 100 * Decimal("0.30")
      + 40 * Decimal("2.50")) / M),
    # gemini-3-flash-preview: input 0.50, output 3.00, web searches 14 per 1,000 queries (2 billed)
    (client, B.GROUNDED_3, "gemini-3-flash-preview", (292 * Decimal("0.50") + 268 * Decimal(3)) / M + 2 * Decimal(14) / 1000),
    # gemini-2.5-pro up to 200k input: input 1.25, output 10
    (client, B.THINKING, "gemini-2.5-pro", (25 * Decimal("1.25") + 1_201 * Decimal(10)) / M),
    # gemini-2.5-pro above 200k input: input 2.50, output 15
    (client, B.LONG_CONTEXT, "gemini-2.5-pro", (250_000 * Decimal("2.50") + 3_500 * Decimal(15)) / M),
    # gemini-2.5-flash-image: input 0.30, output 2.50, output image 30 (1,290 of the 1,302 output tokens)
    (client, B.IMAGE_OUT, "gemini-2.5-flash-image",
     (9 * Decimal("0.30") + 12 * Decimal("2.50") + 1_290 * Decimal(30)) / M),
    # gemini-2.0-flash: input 0.10, output 0.40
    (client, B.PLAIN, "gemini-2.0-flash", (8 * Decimal("0.10") + 12 * Decimal("0.40")) / M),
    # Vertex AI, gemini-2.5-flash: the same rates
    (vertex, B.VERTEX, "gemini-2.5-flash", (9 * Decimal("0.30") + 219 * Decimal("2.50")) / M),
], ids=["2.5-flash-cached", "2.5-flash-grounded", "2.5-flash-cached-audio", "3-flash-grounded",
        "2.5-pro", "2.5-pro-long", "2.5-flash-image", "2.0-flash", "vertex-2.5-flash"])
def test_cost_end_to_end(recorder, http_mock, make, body, model, cost):
    base = B.VERTEX_URL if make is vertex else B.GEMINI_URL
    route(http_mock, model, base=base).mock(return_value=json_response(body))
    make().models.generate_content(model=model, contents=CONTENTS)
    event = recorder.one()
    assert event.priced and event.cost_usd == cost, (event.cost_usd, cost)


@pytest.mark.parametrize("body, model, cost", [
    (B.EMBED, "gemini-embedding-001", 9 * Decimal("0.15") / M),  # input 0.15
    (B.EMBED_IMAGE, "gemini-embedding-2", 258 * Decimal("0.45") / M),  # image input 0.45
], ids=["gemini-embedding-001", "gemini-embedding-2-image"])
def test_embedding_cost_end_to_end(recorder, http_mock, body, model, cost):
    route(http_mock, model, "batchEmbedContents").mock(return_value=json_response(body))
    client().models.embed_content(model=model, contents=["first text", "second text"])
    event = recorder.one()
    assert event.priced and event.cost_usd == cost, (event.cost_usd, cost)


# -- transparency: the caller gets the same with and without tollmeter --------------------------




def mock_apis(router):
    def generate(request):
        if "tools" in json.loads(request.content):
            contents = json.loads(request.content)["contents"]
            return json_response(B.AFC_CALL if len(contents) == 1 else B.AFC_FINAL)
        return json_response(B.GROUNDED)

    def stream(request):
        return sse_response(B.STREAM_GROUNDED)

    route(router, "gemini-2.5-flash").mock(side_effect=generate)
    route(router, "gemini-2.5-flash", "streamGenerateContent").mock(side_effect=stream)
    route(router, "gemini-embedding-001", "batchEmbedContents").mock(return_value=json_response(B.EMBED))
    route(router, "gemini-2.5-pro").mock(return_value=json_response(B.ERROR_429, 429))


def generate():
    return observe(client().models.generate_content(model="gemini-2.5-flash", contents=CONTENTS))


def generate_afc():
    return observe(client().models.generate_content(model="gemini-2.5-flash", contents=CONTENTS, config=AFC_CONFIG))


def stream():
    return observe(list(client().models.generate_content_stream(model="gemini-2.5-flash", contents=CONTENTS)))


def chat():
    session = client().chats.create(model="gemini-2.5-flash")
    return observe(session.send_message("hi")), observe(session.get_history())


def embed():
    return observe(client().models.embed_content(model="gemini-embedding-001", contents=["a", "b"]))


def error():
    try:
        client().models.generate_content(model="gemini-2.5-pro", contents=CONTENTS)
    except errors.ClientError as exc:
        return type(exc).__qualname__, str(exc), exc.code, exc.status, exc.message, exc.details


def async_calls():
    async def run():
        aio = client().aio
        response = await aio.models.generate_content(model="gemini-2.5-flash", contents=CONTENTS)
        chunks = [c async for c in await aio.models.generate_content_stream(model="gemini-2.5-flash",
                                                                             contents=CONTENTS)]
        embedded = await aio.models.embed_content(model="gemini-embedding-001", contents=["a", "b"])
        return observe(response), observe(chunks), observe(embedded)

    return asyncio.run(run())


SCENARIOS = [generate, generate_afc, stream, chat, embed, error, async_calls]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_patched_result_equals_unpatched(http_mock, scenario):
    mock_apis(http_mock)
    bare, patched, events = run_bare_then_patched(scenario)
    assert patched == bare
    assert events, "the patched run was not metered"


def test_unpatch_restores_the_sdk():
    from google.genai import _api_client, models

    originals = [vars(models.Models)["_generate_content"], vars(models.AsyncModels)["_generate_content_stream"],
                 vars(_api_client.BaseApiClient)["request"]]
    meter = Meter(MeterConfig(on_event=lambda e: None))
    meter.patch("google")
    patched = [vars(models.Models)["_generate_content"], vars(models.AsyncModels)["_generate_content_stream"],
               vars(_api_client.BaseApiClient)["request"]]
    meter.unpatch_all()
    meter.shutdown()
    assert all(p is not o for p, o in zip(patched, originals))
    assert [vars(models.Models)["_generate_content"], vars(models.AsyncModels)["_generate_content_stream"],
            vars(_api_client.BaseApiClient)["request"]] == originals
