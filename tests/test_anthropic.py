"""The anthropic SDK, on Messages API bodies shaped as the API sends them (tests/bodies).

Expected usage is written out by hand from the bodies, in tollmeter's inclusive convention:
input = input_tokens + cache_read_input_tokens + cache_creation_input_tokens.
"""

from __future__ import annotations

import anthropic
import httpx
import pytest

from tollmeter import Usage

from .bodies import anthropic_bodies as B
from .conftest import collect

pytestmark = pytest.mark.sdk

URL = "https://api.anthropic.com/v1/messages"
ARGS = dict(model=B.MODEL, max_tokens=1024, messages=[{"role": "user", "content": "Weather in Paris?"}])
SSE = B.STREAM_HEADERS

PLAIN = Usage(input_tokens=25, output_tokens=96, cache_read_tokens=0, cache_write_tokens=0, cache_write_1h_tokens=0)
# 12 uncached + 48,213 read + 3,070 written (254 for 5 minutes, 2,816 for an hour)
CACHED = Usage(input_tokens=51_295, output_tokens=318, cache_read_tokens=48_213, cache_write_tokens=3_070,
               cache_write_1h_tokens=2_816)
THINKING = Usage(input_tokens=61, output_tokens=1_187, cache_read_tokens=0, cache_write_tokens=0,
                 cache_write_1h_tokens=0, reasoning_tokens=934)
TOOL_USE = Usage(input_tokens=611, output_tokens=143, cache_read_tokens=0, cache_write_tokens=0, cache_write_1h_tokens=0)
WEB_SEARCH = Usage(input_tokens=18_734, output_tokens=642, cache_read_tokens=0, cache_write_tokens=0,
                   cache_write_1h_tokens=0)
OLD = Usage(input_tokens=12, output_tokens=35)


def client(**kw) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="sk-ant-test", max_retries=0, **kw)


def aclient(**kw) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key="sk-ant-test", max_retries=0, **kw)


@pytest.mark.parametrize(
    "body, usage, tool_calls, web_searches, finish",
    [
        (B.MESSAGE_PLAIN, PLAIN, 0, None, "end_turn"),
        (B.MESSAGE_CACHED, CACHED, 0, None, "end_turn"),
        (B.MESSAGE_THINKING, THINKING, 0, None, "end_turn"),
        (B.MESSAGE_TOOL_USE, TOOL_USE, 2, None, "tool_use"),
        (B.MESSAGE_WEB_SEARCH, WEB_SEARCH, 0, 2, "end_turn"),
        (B.MESSAGE_OLD_USAGE, OLD, 0, None, "end_turn"),
    ],
    ids=["plain", "cached", "thinking", "tool_use", "web_search", "old_usage"],
)
def test_create(recorder, http_mock, body, usage, tool_calls, web_searches, finish):
    http_mock.post(URL).respond(json=body, headers=B.HEADERS)
    message = client().messages.create(**ARGS)
    assert isinstance(message, anthropic.types.Message)
    event = recorder.one()
    assert event.usage == usage
    assert (event.tool_calls, event.web_search_requests, event.finish_reason) == (tool_calls, web_searches, finish)
    assert (event.provider, event.endpoint, event.stream, event.partial, event.error) == (
        "anthropic", "messages", False, False, None)
    assert event.model == body["model"] and event.request_model == B.MODEL
    assert event.request_id == B.REQUEST_ID


async def test_async_create(recorder, http_mock):
    http_mock.post(URL).respond(json=B.MESSAGE_CACHED, headers=B.HEADERS)
    message = await aclient().messages.create(**ARGS)
    assert message.usage.cache_read_input_tokens == 48_213
    event = recorder.one()
    assert event.usage == CACHED and event.service_tier == "standard"


def test_beta_messages_create(recorder, http_mock):
    http_mock.post(URL).respond(json=B.MESSAGE_THINKING, headers=B.HEADERS)
    client().beta.messages.create(**ARGS)
    assert recorder.one().usage == THINKING


def test_parse_is_one_event(recorder, http_mock):
    http_mock.post(URL).respond(json=B.MESSAGE_PARSED, headers=B.HEADERS)
    parsed = client().messages.parse(**ARGS, output_format=B.WeatherReport)
    assert isinstance(parsed.parsed_output, B.WeatherReport)
    event = recorder.one()
    assert (event.usage.input_tokens, event.usage.output_tokens) == (214, 29)


# -- streams -------------------------------------------------------------------------------------

STREAM_CASES = [
    (B.STREAM_PLAIN, Usage(input_tokens=25, output_tokens=31, cache_read_tokens=0, cache_write_tokens=0,
                           cache_write_1h_tokens=0), 0, None),
    (B.STREAM_CACHED, Usage(input_tokens=51_295, output_tokens=97, cache_read_tokens=48_213,
                            cache_write_tokens=3_070, cache_write_1h_tokens=2_816), 0, None),
    (B.STREAM_THINKING, Usage(input_tokens=61, output_tokens=312, cache_read_tokens=0, cache_write_tokens=0,
                              cache_write_1h_tokens=0, reasoning_tokens=254), 0, None),
    (B.STREAM_TOOL_USE, Usage(input_tokens=611, output_tokens=87, cache_read_tokens=0, cache_write_tokens=0,
                              cache_write_1h_tokens=0), 1, None),
    # search results are input: message_delta's input (18,734) replaces message_start's (2,431)
    (B.STREAM_WEB_SEARCH, Usage(input_tokens=18_734, output_tokens=642, cache_read_tokens=0, cache_write_tokens=0,
                                cache_write_1h_tokens=0), 0, 2),
    (B.STREAM_OLD_USAGE, Usage(input_tokens=12, output_tokens=35), 0, None),
]
STREAM_IDS = ["plain", "cached", "thinking", "tool_use", "web_search", "old_usage"]


@pytest.mark.parametrize("body, usage, tool_calls, web_searches", STREAM_CASES, ids=STREAM_IDS)
def test_create_stream(recorder, http_mock, body, usage, tool_calls, web_searches):
    http_mock.post(URL).respond(text=body, headers=SSE)
    stream = client().messages.create(**ARGS, stream=True)
    assert isinstance(stream, anthropic.Stream)
    events = list(stream)
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    event = recorder.one()
    assert event.usage == usage
    assert (event.tool_calls, event.web_search_requests) == (tool_calls, web_searches)
    assert event.stream and not event.partial and event.error is None
    assert event.request_id == SSE["request-id"]
    assert event.time_to_first_token_ms is not None and 0 <= event.time_to_first_token_ms <= event.duration_ms


@pytest.mark.parametrize("body, usage, tool_calls, web_searches", STREAM_CASES, ids=STREAM_IDS)
async def test_async_create_stream(recorder, http_mock, body, usage, tool_calls, web_searches):
    http_mock.post(URL).respond(text=body, headers=SSE)
    stream = await aclient().messages.create(**ARGS, stream=True)
    assert isinstance(stream, anthropic.AsyncStream)
    async for _ in stream:
        pass
    assert recorder.one().usage == usage


def test_stream_manager_text_stream_and_final_message(recorder, http_mock):
    http_mock.post(URL).respond(text=B.STREAM_CACHED, headers=SSE)
    with client().messages.stream(**ARGS) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.usage.output_tokens == 97
    event = recorder.one()
    assert event.usage.input_tokens == 51_295 and event.usage.output_tokens == 97
    assert event.stream and not event.partial and event.request_id == SSE["request-id"]


def test_stream_manager_until_done(recorder, http_mock):
    http_mock.post(URL).respond(text=B.STREAM_THINKING, headers=SSE)
    with client().messages.stream(**ARGS) as stream:
        stream.until_done()
    assert recorder.one().usage.reasoning_tokens == 254


async def test_async_stream_manager(recorder, http_mock):
    http_mock.post(URL).respond(text=B.STREAM_TOOL_USE, headers=SSE)
    async with aclient().messages.stream(**ARGS) as stream:
        chunks = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use" and chunks is not None
    event = recorder.one()
    assert (event.usage.output_tokens, event.tool_calls, event.finish_reason) == (87, 1, "tool_use")


def test_beta_stream_manager(recorder, http_mock):
    http_mock.post(URL).respond(text=B.STREAM_PLAIN, headers=SSE)
    with client().beta.messages.stream(**ARGS) as stream:
        stream.get_final_text()
    assert recorder.one().usage.output_tokens == 31


def test_stream_manager_left_early_is_partial_with_input_known(recorder, http_mock):
    http_mock.post(URL).respond(text=B.STREAM_PLAIN, headers=SSE)
    with client().messages.stream(**ARGS) as stream:
        for text in stream.text_stream:
            break
    event = recorder.one()
    assert event.partial and event.usage.input_tokens == 25
    assert event.usage.output_tokens == 1  # the last count reported before we left (message_start)


def test_stream_manager_never_entered_records_nothing(recorder, http_mock):
    route = http_mock.post(URL).respond(text=B.STREAM_PLAIN, headers=SSE)
    manager = client().messages.stream(**ARGS)
    del manager
    collect()
    assert recorder.recorded() == [] and not route.called


def test_error_event_in_stream(recorder, http_mock):
    http_mock.post(URL).respond(text=B.STREAM_ERROR, headers=SSE)
    stream = client().messages.create(**ARGS, stream=True)
    with pytest.raises(anthropic.APIStatusError) as raised:
        for _ in stream:
            pass
    event = recorder.one()
    assert event.error == type(raised.value).__name__ and event.partial
    assert (event.usage.input_tokens, event.usage.output_tokens) == (25, 1)


@pytest.mark.parametrize("status, body, headers, exc_type", [
    (429, B.ERROR_429, B.ERROR_429_HEADERS, anthropic.RateLimitError),
    (529, B.ERROR_529, B.ERROR_529_HEADERS, anthropic.APIStatusError),
])
def test_http_error_reaches_caller_unchanged_and_is_recorded(recorder, http_mock, status, body, headers, exc_type):
    http_mock.post(URL).respond(status, json=body, headers=headers)
    with pytest.raises(exc_type) as raised:
        client().messages.create(**ARGS)
    event = recorder.one()
    assert event.error == type(raised.value).__name__ and event.status_code == status
    assert event.request_id == headers["request-id"] and event.usage == Usage()


def test_connection_error_is_recorded(recorder, http_mock):
    http_mock.post(URL).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(anthropic.APIConnectionError):
        client().messages.create(**ARGS)
    assert recorder.one().error == "APIConnectionError"


# -- raw responses -------------------------------------------------------------------------------


def test_with_raw_response(recorder, http_mock):
    http_mock.post(URL).respond(json=B.MESSAGE_CACHED, headers=B.HEADERS)
    raw = client().messages.with_raw_response.create(**ARGS)
    assert raw.headers["request-id"] == B.REQUEST_ID
    assert recorder.one().usage == CACHED  # recorded without waiting for parse()
    assert raw.parse().usage.cache_read_input_tokens == 48_213


def test_with_streaming_response_stream(recorder, http_mock):
    http_mock.post(URL).respond(text=B.STREAM_WEB_SEARCH, headers=SSE)
    with client().messages.with_streaming_response.create(**ARGS, stream=True) as response:
        for _ in response.parse():
            pass
    event = recorder.one()
    assert event.web_search_requests == 2 and event.usage.input_tokens == 18_734 and not event.partial


async def test_async_with_streaming_response(recorder, http_mock):
    http_mock.post(URL).respond(json=B.MESSAGE_PLAIN, headers=B.HEADERS)
    async with aclient().messages.with_streaming_response.create(**ARGS) as response:
        message = await response.parse()
    assert message.usage.output_tokens == 96
    assert recorder.one().usage == PLAIN


# -- attribution ---------------------------------------------------------------------------------


def test_anthropic_compatible_base_url_is_attributed(recorder, http_mock):
    http_mock.post("https://api.deepseek.com/anthropic/v1/messages").respond(json=B.MESSAGE_PLAIN)
    client(base_url="https://api.deepseek.com/anthropic").messages.create(**ARGS)
    assert recorder.one().provider == "deepseek"
