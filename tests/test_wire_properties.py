"""Property tests: provider responses and stream chunk sequences generated from the wire formats,
malformed ones included, through the real SDKs over a mocked HTTP transport.

For each generated exchange the caller's view is taken twice, on the bare SDK and patched (the
SDK's own objects, compared chunk for chunk with the fields that were set, and the same
exception if the SDK raises), and must be equal. Then the meter must still work: the call was
recorded once, its usage read when the provider reported a believable one (bounded at 10^12:
rules.MAX_TOKENS), and a normal call made after it is recorded with its usage.

The mocked servers answer like the real ones: OpenAI adds `"usage": null` to every chunk and a
last chunk of usage only when asked (`stream_options.include_usage`); other servers send usage
unasked, or refuse `stream_options` with a 400. Formats: OpenAI chat completions (responses and
chunks, sync and async), OpenAI Responses stream events, Anthropic message stream events and
messages.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable

import anthropic
import httpx
import openai
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tollmeter import LLMEvent, Meter, MeterConfig

from .conftest import mock_http, observe

pytestmark = pytest.mark.sdk

OPENAI = "https://api.openai.com/v1"
#: An OpenAI-compatible server tollmeter knows nothing about (attributed `openai-compatible`).
COMPATIBLE = "https://llm.example.com/v1"
ANTHROPIC = "https://api.anthropic.com"
MESSAGES = [{"role": "user", "content": "hi"}]
SSE = {"content-type": "text/event-stream", "x-request-id": "req_1", "request-id": "req_1"}
#: The model of the normal call made after each generated one ("the meter still works").
PROBE = "probe-model"
MAX_TOKENS = 10**12

PROPERTY = settings(max_examples=50, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- the meter, patched and unpatched in turn ------------------------------------------------


class Harness:
    def __init__(self) -> None:
        self.events: list[LLMEvent] = []
        self.errors: list[BaseException] = []
        self.meter = Meter(MeterConfig(on_event=self.events.append, on_error=self.errors.append,
                                       flush_interval=0.05))

    def bare_then_patched(self, scenario: Callable[[], Any], provider: str) -> tuple[Any, Any, list[LLMEvent]]:
        """What the caller sees of `scenario` unpatched, then patched, and the events recorded."""
        self.meter.unpatch_all()
        bare = scenario()
        self.meter.patch(provider)
        self.events.clear()
        patched = scenario()
        assert self.meter.flush(10)
        return bare, patched, list(self.events)

    def still_works(self, probe: Callable[[], Any], input_tokens: int) -> None:
        """A normal call made after the generated one is recorded, with its usage."""
        self.events.clear()
        probe()
        assert self.meter.flush(10)
        assert [(e.model, e.usage.input_tokens) for e in self.events] == [(PROBE, input_tokens)]


@pytest.fixture(scope="module")
def harness():
    h = Harness()
    yield h
    h.meter.shutdown()


def seen(run: Callable[[], Any]) -> Any:
    """What the caller sees of a call: the result's observed form, or what it got before the
    exception and the exception (type and message)."""
    try:
        result = run()
    except _Raised as stop:
        return ("raised", stop.got, stop.kind, stop.message)
    except Exception as exc:
        return ("raised", [], type(exc).__name__, str(exc))
    return ("returned", result if isinstance(result, list) else _observe(result))


class _Raised(Exception):
    def __init__(self, got: list[Any], exc: BaseException) -> None:
        self.got, self.kind, self.message = got, type(exc).__name__, str(exc)


def iterate(stream: Any) -> list[Any]:
    """Each chunk's observed form as it arrives; an exception mid-stream keeps what came before."""
    got: list[Any] = []
    try:
        for chunk in stream:
            got.append(_observe(chunk))
    except Exception as exc:
        raise _Raised(got, exc) from exc
    return got


async def aiterate(stream: Any) -> list[Any]:
    got: list[Any] = []
    try:
        async for chunk in stream:
            got.append(_observe(chunk))
    except Exception as exc:
        raise _Raised(got, exc) from exc
    return got


def _observe(value: Any) -> Any:
    try:
        return observe(value)
    except Exception as exc:  # a model too malformed to dump: the same on both sides
        return ("unobservable", type(value).__name__, type(exc).__name__)


def sse_data(payloads: list[Any]) -> str:
    return "".join(f"data: {json.dumps(p)}\n\n" for p in payloads) + "data: [DONE]\n\n"


def sse_events(events: list[tuple[str, Any]]) -> str:
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)


def expected_tokens(value: Any) -> int | None:
    """What a reported count is recorded as: a whole number from 0 to 10^12 (a float or a
    numeric string that is one included), anything else unreported."""
    if value is None or isinstance(value, bool):
        return None
    if not isinstance(value, int):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        if number != number or number in (float("inf"), float("-inf")) or not number.is_integer():
            return None
        value = int(number)
    return value if 0 <= value <= MAX_TOKENS else None


# -- wire values, sane and not -----------------------------------------------------------------

text = st.text(st.characters(codec="utf-8"), max_size=6)
#: A value where an object, a list or a string belongs: the malformed part of a payload.
weird = st.one_of(st.none(), st.integers(-3, 10**20), st.floats(allow_nan=False, allow_infinity=False),
                  st.booleans(), text, st.just([]), st.just({}), st.just([None]))
token_count = st.one_of(st.integers(0, 5000), st.integers(-10, 10**20), st.just(10**12), st.just(10**12 + 1),
                        st.floats(0, 1e21, allow_nan=False), st.none(), text)


# -- OpenAI chat completions -------------------------------------------------------------------

chat_usage = st.one_of(
    st.fixed_dictionaries(
        {"prompt_tokens": token_count, "completion_tokens": token_count, "total_tokens": token_count},
        optional={"prompt_tokens_details": st.one_of(st.fixed_dictionaries({"cached_tokens": token_count}), weird),
                  "completion_tokens_details": st.one_of(
                      st.fixed_dictionaries({"reasoning_tokens": token_count}), weird)}),
    weird,
)
tool_delta = st.one_of(
    st.fixed_dictionaries({"index": st.integers(0, 2), "type": st.just("function"),
                           "function": st.fixed_dictionaries({"name": text, "arguments": text})},
                          optional={"id": st.one_of(st.just("call_1"), st.none(), weird)}),
    weird,
)
delta = st.one_of(
    st.fixed_dictionaries({}, optional={"role": st.just("assistant"), "content": st.one_of(text, st.none()),
                                        "tool_calls": st.one_of(st.lists(tool_delta, max_size=3), weird),
                                        "refusal": st.none()}),
    weird,
)
finish_reason = st.one_of(st.none(), st.sampled_from(["stop", "length", "tool_calls", "function_call"]), weird)
choice = st.one_of(
    st.fixed_dictionaries({"index": st.integers(0, 2), "delta": delta, "finish_reason": finish_reason},
                          optional={"logprobs": st.none()}),
    weird,
)
chat_chunk = st.one_of(
    st.fixed_dictionaries(
        {"id": st.just("chatcmpl-1"), "object": st.just("chat.completion.chunk"), "created": st.just(1)},
        optional={"model": st.one_of(st.just("gpt-4o"), weird),
                  "choices": st.one_of(st.lists(choice, max_size=3), weird),
                  "service_tier": st.one_of(st.just("default"), weird), "system_fingerprint": st.none()}),
    weird,
    st.just({"error": {"message": "the server had an error"}}),
)
#: Mostly well-formed streams with a malformed chunk or a few among them.
chat_chunks = st.lists(st.one_of(chat_chunk, st.builds(
    lambda content, reason: {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
                             "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": reason}]},
    text, st.sampled_from([None, None, "stop"]))), max_size=8)


def chat_bodies(chunks: list[Any], usage: Any, server: str) -> Callable[[httpx.Request], httpx.Response]:
    """A chat completions server of one behaviour: "asked" sends usage only when asked (OpenAI),
    "always" sends a last chunk of usage unasked (OpenRouter), "refuses" answers 400 to a
    request with `stream_options` (a server that does not know it)."""
    usage_chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
                   "choices": [], "usage": usage}

    def respond(request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content)
        if sent.get("model") == PROBE:
            return httpx.Response(200, json=probe_completion(), headers={"x-request-id": "req_probe"})
        asked = (sent.get("stream_options") or {}).get("include_usage") is True
        if "stream_options" in sent and server == "refuses":
            return httpx.Response(400, json={"error": {"message": "Unrecognized request argument supplied: "
                                                                  "stream_options", "type": "invalid_request_error"}})
        body = list(chunks)
        if asked and server in ("asked", "refuses"):
            body = [{**c, "usage": None} if isinstance(c, dict) and "usage" not in c else c for c in body]
        if asked or server == "always":
            body.append(usage_chunk)
        return httpx.Response(200, text=sse_data(body), headers=SSE)

    return respond


def probe_completion(input_tokens: int = 11) -> dict[str, Any]:
    return {"id": "chatcmpl-p", "object": "chat.completion", "created": 1, "model": PROBE,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": input_tokens, "completion_tokens": 2, "total_tokens": input_tokens + 2}}


def chat_stream(base_url: str, asynchronous: bool, caller_asks: bool) -> Callable[[], Any]:
    options = {"stream_options": {"include_usage": True}} if caller_asks else {}

    def run() -> Any:
        if asynchronous:
            async def go() -> Any:
                client = openai.AsyncOpenAI(api_key="k", max_retries=0, base_url=base_url)
                stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True, **options)
                return await aiterate(stream)

            return seen(lambda: asyncio.run(go()))
        client = openai.OpenAI(api_key="k", max_retries=0, base_url=base_url)
        return seen(lambda: iterate(client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, **options)))

    return run


def chat_probe(base_url: str) -> Callable[[], Any]:
    return lambda: openai.OpenAI(api_key="k", max_retries=0, base_url=base_url).chat.completions.create(
        model=PROBE, messages=MESSAGES)


@PROPERTY
@given(chunks=chat_chunks, usage=chat_usage, asynchronous=st.booleans(), caller_asks=st.booleans(),
       host=st.sampled_from([(OPENAI, "asked"), (COMPATIBLE, "asked"), (COMPATIBLE, "always"),
                             (COMPATIBLE, "refuses")]))
def test_chat_stream_caller_sees_the_same_and_the_meter_keeps_working(harness, chunks, usage, asynchronous,
                                                                       caller_asks, host):
    base_url, server = host
    # The one answer tollmeter cannot tell apart: a usage chunk asked for whose usage is null is
    # a chunk of no choices, like Azure's prompt filter results; it is shown (docs/providers.md).
    assume(not (usage is None and base_url == OPENAI and not caller_asks))
    with mock_http() as router:
        router.post(f"{base_url}/chat/completions").mock(side_effect=chat_bodies(chunks, usage, server))
        bare, patched, events = harness.bare_then_patched(chat_stream(base_url, asynchronous, caller_asks), "openai")
        assert patched == bare
        assert len(events) == 1, events
        outcome = patched[0]
        usage_sent = caller_asks or server == "always" or (base_url == OPENAI and server == "asked")
        if outcome == "returned" and isinstance(usage, dict) and usage_sent:
            # The usage after the malformed chunks is read, bounded at 10^12.
            assert events[0].usage.input_tokens == expected_tokens(usage.get("prompt_tokens"))
        harness.still_works(chat_probe(base_url), 11)


completion_message = st.one_of(
    st.fixed_dictionaries({"role": st.just("assistant"), "content": st.one_of(text, st.none())},
                          optional={"tool_calls": st.one_of(st.lists(st.one_of(st.fixed_dictionaries(
                              {"id": st.just("call_1"), "type": st.just("function"),
                               "function": st.fixed_dictionaries({"name": text, "arguments": text})}), weird),
                              max_size=2), weird)}),
    weird,
)
chat_completion = st.fixed_dictionaries(
    {"id": st.just("chatcmpl-1"), "object": st.just("chat.completion"), "created": st.just(1)},
    optional={"model": st.one_of(st.just("gpt-4o"), weird),
              "choices": st.one_of(st.lists(st.one_of(st.fixed_dictionaries(
                  {"index": st.just(0), "message": completion_message, "finish_reason": finish_reason}), weird),
                  max_size=2), weird),
              "usage": chat_usage, "service_tier": st.one_of(st.just("default"), weird)},
)


@PROPERTY
@given(body=st.one_of(chat_completion, weird), raw=st.booleans())
def test_chat_response_caller_sees_the_same_and_the_meter_keeps_working(harness, body, raw):
    def respond(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content).get("model") == PROBE:
            return httpx.Response(200, json=probe_completion())
        return httpx.Response(200, json=body, headers={"x-request-id": "req_1"})

    def run() -> Any:
        client = openai.OpenAI(api_key="k", max_retries=0)
        if raw:
            return seen(lambda: client.chat.completions.with_raw_response.create(
                model="gpt-4o", messages=MESSAGES).parse())
        return seen(lambda: client.chat.completions.create(model="gpt-4o", messages=MESSAGES))

    with mock_http() as router:
        router.post(f"{OPENAI}/chat/completions").mock(side_effect=respond)
        bare, patched, events = harness.bare_then_patched(run, "openai")
        assert patched == bare
        assert len(events) == 1, events
        usage = body.get("usage") if isinstance(body, dict) else None
        if patched[0] == "returned" and isinstance(usage, dict):
            assert events[0].usage.input_tokens == expected_tokens(usage.get("prompt_tokens"))
        harness.still_works(chat_probe(OPENAI), 11)


# -- OpenAI Responses stream events ------------------------------------------------------------

responses_usage = st.one_of(
    st.fixed_dictionaries({"input_tokens": token_count, "output_tokens": token_count, "total_tokens": token_count},
                          optional={"input_tokens_details": st.one_of(
                              st.fixed_dictionaries({"cached_tokens": token_count}), weird),
                              "output_tokens_details": st.one_of(
                                  st.fixed_dictionaries({"reasoning_tokens": token_count}), weird)}),
    weird,
)


def _response(status: str, usage: Any, output: Any) -> dict[str, Any]:
    return {"id": "resp_1", "object": "response", "created_at": 1, "status": status, "model": "gpt-4.1",
            "output": output, "usage": usage}


responses_event = st.one_of(
    st.builds(lambda r: {"type": "response.created", "sequence_number": 0, "response": r},
              st.one_of(st.builds(_response, st.just("in_progress"), st.none(), st.just([])), weird)),
    st.builds(lambda d: {"type": "response.output_text.delta", "sequence_number": 1, "item_id": "msg_1",
                         "output_index": 0, "content_index": 0, "delta": d}, st.one_of(text, weird)),
    st.builds(lambda kind, r: {"type": kind, "sequence_number": 2, "response": r},
              st.sampled_from(["response.completed", "response.incomplete", "response.failed"]),
              st.one_of(st.builds(_response, st.sampled_from(["completed", "incomplete", "failed"]), responses_usage,
                                  st.one_of(st.just([]), st.lists(st.one_of(st.fixed_dictionaries(
                                      {"type": st.sampled_from(["message", "function_call", "web_search_call"])}),
                                      weird), max_size=2), weird)), weird)),
    st.fixed_dictionaries({"type": st.one_of(st.just("response.unknown_event"), weird)},
                          optional={"sequence_number": weird}),
    weird,
)


@PROPERTY
@given(events=st.lists(responses_event, max_size=6))
def test_responses_stream_caller_sees_the_same_and_the_meter_keeps_working(harness, events):
    def name(event: Any) -> str:
        kind = event.get("type") if isinstance(event, dict) else None
        return kind if isinstance(kind, str) and kind.isprintable() and kind else "response.unknown_event"

    body = "".join(f"event: {name(e)}\ndata: {json.dumps(e)}\n\n" for e in events)

    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=body, headers=SSE)

    def run() -> Any:
        client = openai.OpenAI(api_key="k", max_retries=0)
        return seen(lambda: iterate(client.responses.create(model="gpt-4.1", input="hi", stream=True)))

    with mock_http() as router:
        router.post(f"{OPENAI}/responses").mock(side_effect=respond)
        router.post(f"{OPENAI}/chat/completions").respond(200, json=probe_completion())
        bare, patched, recorded = harness.bare_then_patched(run, "openai")
        assert patched == bare
        assert len(recorded) == 1, recorded
        harness.still_works(chat_probe(OPENAI), 11)


# -- Anthropic messages --------------------------------------------------------------------------

anthropic_usage = st.one_of(
    st.fixed_dictionaries({"input_tokens": token_count, "output_tokens": token_count},
                          optional={"cache_read_input_tokens": token_count,
                                    "cache_creation_input_tokens": token_count}),
    weird,
)
message_start = st.builds(
    lambda message: ("message_start", {"type": "message_start", "message": message}),
    st.one_of(st.fixed_dictionaries({"id": st.just("msg_1"), "type": st.just("message"), "role": st.just("assistant"),
                                     "content": st.just([]), "stop_reason": st.none(), "usage": anthropic_usage},
                                    optional={"model": st.one_of(st.just("claude-sonnet-4-6"), weird)}), weird))
block_start = st.builds(
    lambda block: ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}),
    st.one_of(st.just({"type": "text", "text": ""}),
              st.just({"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}), weird))
block_delta = st.builds(
    lambda d: ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": d}),
    st.one_of(st.builds(lambda t: {"type": "text_delta", "text": t}, text),
              st.builds(lambda t: {"type": "input_json_delta", "partial_json": t}, text), weird))
message_delta = st.builds(
    lambda d, usage: ("message_delta", {"type": "message_delta", "delta": d, "usage": usage}),
    st.one_of(st.fixed_dictionaries({"stop_reason": st.one_of(st.just("end_turn"), st.just("tool_use"), weird),
                                     "stop_sequence": st.none()}), weird),
    anthropic_usage)
anthropic_event = st.one_of(
    message_start, block_start, block_delta, message_delta,
    st.just(("content_block_stop", {"type": "content_block_stop", "index": 0})),
    st.just(("message_stop", {"type": "message_stop"})),
    st.just(("ping", {"type": "ping"})),
    st.builds(lambda name, data: (name, data), st.sampled_from(["message_start", "message_delta", "unknown_event"]),
              weird),
)


@PROPERTY
@given(events=st.lists(anthropic_event, max_size=7), manager=st.booleans())
def test_anthropic_stream_caller_sees_the_same_and_the_meter_keeps_working(harness, events, manager):
    body = sse_events(events)

    def respond(request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content)
        if sent.get("model") == PROBE:
            return httpx.Response(200, json={
                "id": "msg_p", "type": "message", "role": "assistant", "model": PROBE, "stop_reason": "end_turn",
                "content": [{"type": "text", "text": "ok"}], "usage": {"input_tokens": 7, "output_tokens": 2}})
        return httpx.Response(200, text=body, headers=SSE)

    args = dict(model="claude-sonnet-4-6", max_tokens=64, messages=MESSAGES)

    def run() -> Any:
        client = anthropic.Anthropic(api_key="k", max_retries=0)
        if manager:
            def managed() -> list[Any]:
                with client.messages.stream(**args) as stream:
                    return iterate(stream)

            return seen(managed)
        return seen(lambda: iterate(client.messages.create(**args, stream=True)))

    with mock_http() as router:
        router.post(f"{ANTHROPIC}/v1/messages").mock(side_effect=respond)
        bare, patched, recorded = harness.bare_then_patched(run, "anthropic")
        assert patched == bare
        assert len(recorded) == 1, recorded
        starts = [data for name, data in events if name == "message_start" and isinstance(data, dict)]
        later = [name for name, _ in events if name == "message_delta"]
        message = starts[-1].get("message") if starts else None
        usage = message.get("usage") if isinstance(message, dict) else None
        if patched[0] == "returned" and len(starts) == 1 and not later and isinstance(usage, dict):
            reported = [usage.get(k) for k in
                        ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")]
            if all(type(v) is int and 0 <= v <= 10**9 for v in reported if v is not None) and \
                    type(reported[0]) is int:
                assert recorded[0].usage.input_tokens == sum(v for v in reported if v is not None)
        harness.still_works(lambda: anthropic.Anthropic(api_key="k", max_retries=0).messages.create(
            model=PROBE, max_tokens=16, messages=MESSAGES), 7)
