"""Streams keep their exact type (issue 9): the caller gets the SDK's own stream object, observed
in place, so that `type(patched) is type(unpatched)` for every stream, stream manager, raw
response and Bedrock event stream, on both SDK majors.

Each test runs one scenario twice against the same mocked response: once on the bare SDK (the
recorder's meter unpatched), then patched. A scenario notes the exact `type()` of everything the
caller reaches (the stream, the manager and what entering it gives, `stream.response`, what a raw
response's `parse()` returns, each chunk while iterating) and what it reads. The types must be
the very same classes (`is`: no proxy, no subclass), the chunks equal, the unpatched run not
metered and the patched run metered exactly once, with its usage.
"""

from __future__ import annotations

import inspect
import json
import re
from typing import Any, Awaitable, Callable

import httpx
import pytest

from tollmeter import LLMEvent, Usage

from .bodies import anthropic_bodies as A
from .bodies import cohere_bodies as C
from .bodies import google_bodies as G
from .bodies import groq_bodies as Q
from .bodies import mistral_bodies as M
from .bodies import openai_bodies as O
from .conftest import observe

pytestmark = pytest.mark.sdk

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


# -- what the caller reached, and the bare-then-patched runner --------------------------------


class Seen:
    """What one run of a scenario reached: the exact type of each object (in order, by label)
    and what the caller read (in comparable form)."""

    def __init__(self) -> None:
        self.types: list[tuple[str, type]] = []
        self.values: list[tuple[str, Any]] = []

    def of(self, label: str, obj: Any) -> Any:
        self.types.append((label, type(obj)))
        return obj

    def chunk(self, label: str, chunk: Any) -> Any:
        """One chunk while iterating: its type, and its content."""
        self.types.append((label, type(chunk)))
        self.values.append((label, observe(chunk)))
        return chunk

    def value(self, label: str, value: Any) -> Any:
        self.values.append((label, observe(value)))
        return value

    def each(self, label: str, iterable: Any) -> list:
        return [self.chunk(f"{label}[{i}]", chunk) for i, chunk in enumerate(iterable)]

    async def each_async(self, label: str, iterable: Any) -> list:
        chunks = []
        async for chunk in iterable:
            chunks.append(self.chunk(f"{label}[{len(chunks)}]", chunk))
        return chunks


def assert_same(bare: Seen, patched: Seen) -> None:
    differ = [
        f"{label}: unpatched {b.__module__}.{b.__qualname__}, patched {p.__module__}.{p.__qualname__}"
        for (label, b), (_, p) in zip(bare.types, patched.types)
        if p is not b
    ]
    assert not differ, "types differ:\n  " + "\n  ".join(differ)
    assert [label for label, _ in patched.types] == [label for label, _ in bare.types]
    assert patched.values == bare.values


def bare_then_patched(recorder, scenario: Callable[[Seen], Any]) -> LLMEvent:
    """Run `scenario` unpatched, then patched: the same types and chunks, one event (returned)."""
    bare, patched = Seen(), Seen()
    recorder.meter.unpatch_all()
    try:
        scenario(bare)
    finally:
        recorder.meter.patch_all()
    assert recorder.recorded() == [], "the unpatched run was metered"
    scenario(patched)
    assert bare.types, "the scenario saw nothing"
    assert_same(bare, patched)
    return recorder.one()


async def bare_then_patched_async(recorder, scenario: Callable[[Seen], Awaitable[Any]]) -> LLMEvent:
    bare, patched = Seen(), Seen()
    recorder.meter.unpatch_all()
    try:
        await scenario(bare)
    finally:
        recorder.meter.patch_all()
    assert recorder.recorded() == [], "the unpatched run was metered"
    await scenario(patched)
    assert bare.types, "the scenario saw nothing"
    assert_same(bare, patched)
    return recorder.one()


def metered(event: LLMEvent, usage: Usage, *, stream: bool = True) -> None:
    assert event.usage == usage
    assert (event.stream, event.partial, event.error) == (stream, False, None)


# -- openai -----------------------------------------------------------------------------------

import openai  # noqa: E402

OPENAI_CHAT = "https://api.openai.com/v1/chat/completions"
OPENAI_RESPONSES = "https://api.openai.com/v1/responses"
# The usage chunk tollmeter asks for (and hides) when the caller did not.
OPENAI_STREAM_USAGE = Usage(input_tokens=14, output_tokens=7, cache_read_tokens=0, input_audio_tokens=0,
                            reasoning_tokens=0, output_audio_tokens=0, accepted_prediction_tokens=0,
                            rejected_prediction_tokens=0)
OPENAI_CACHED_USAGE = Usage(input_tokens=2006, output_tokens=300, cache_read_tokens=1920, input_audio_tokens=0,
                            reasoning_tokens=0, output_audio_tokens=0, accepted_prediction_tokens=0,
                            rejected_prediction_tokens=0)
RESPONSES_STREAM_USAGE = Usage(input_tokens=14, output_tokens=7, cache_read_tokens=0, cache_write_tokens=0,
                               reasoning_tokens=0)


@pytest.fixture
def openai_api(http_mock):
    """Answers like the API: a stream when asked, with its usage chunk only when asked for."""

    def chat(request):
        sent = json.loads(request.content)
        if not sent.get("stream"):
            return httpx.Response(200, json=O.CHAT_CACHED, headers=O.HEADERS)
        options = sent.get("stream_options") or {}
        body = O.CHAT_STREAM_WITH_USAGE if options.get("include_usage") else O.CHAT_STREAM_NO_USAGE
        return httpx.Response(200, text=body, headers=O.SSE_HEADERS)

    http_mock.post(OPENAI_CHAT).mock(side_effect=chat)
    http_mock.post(OPENAI_RESPONSES).respond(text=O.RESPONSES_STREAM, headers=O.SSE_HEADERS)
    return http_mock


def oai() -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test", max_retries=0)


def aoai() -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="sk-test", max_retries=0)


def test_openai_chat_stream(recorder, openai_api):
    def scenario(seen):
        stream = seen.of("stream", oai().chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
        seen.of("stream.response", stream.response)
        seen.of("iter(stream)", iter(stream))
        seen.each("chunk", stream)

    event = bare_then_patched(recorder, scenario)
    metered(event, OPENAI_STREAM_USAGE)


async def test_openai_async_chat_stream(recorder, openai_api):
    async def scenario(seen):
        stream = seen.of("stream", await aoai().chat.completions.create(model="gpt-4o", messages=MESSAGES,
                                                                         stream=True))
        seen.of("stream.response", stream.response)
        seen.of("aiter(stream)", stream.__aiter__())
        await seen.each_async("chunk", stream)

    event = await bare_then_patched_async(recorder, scenario)
    metered(event, OPENAI_STREAM_USAGE)


def test_openai_chat_stream_manager(recorder, openai_api):
    def scenario(seen):
        manager = seen.of("manager", oai().chat.completions.stream(model="gpt-4o", messages=MESSAGES))
        with manager as stream:
            seen.of("entered", stream)
            seen.each("event", stream)
            seen.value("final", seen.of("final", stream.get_final_completion()))

    event = bare_then_patched(recorder, scenario)
    metered(event, OPENAI_STREAM_USAGE)


async def test_openai_async_chat_stream_manager(recorder, openai_api):
    async def scenario(seen):
        manager = seen.of("manager", aoai().chat.completions.stream(model="gpt-4o", messages=MESSAGES))
        async with manager as stream:
            seen.of("entered", stream)
            await seen.each_async("event", stream)
            seen.value("final", seen.of("final", await stream.get_final_completion()))

    event = await bare_then_patched_async(recorder, scenario)
    metered(event, OPENAI_STREAM_USAGE)


def test_openai_responses_stream(recorder, openai_api):
    def scenario(seen):
        stream = seen.of("stream", oai().responses.create(model="gpt-4.1", input="hi", stream=True))
        seen.of("stream.response", stream.response)
        seen.each("event", stream)

    event = bare_then_patched(recorder, scenario)
    metered(event, RESPONSES_STREAM_USAGE)


async def test_openai_async_responses_stream(recorder, openai_api):
    async def scenario(seen):
        stream = seen.of("stream", await aoai().responses.create(model="gpt-4.1", input="hi", stream=True))
        seen.of("stream.response", stream.response)
        await seen.each_async("event", stream)

    event = await bare_then_patched_async(recorder, scenario)
    metered(event, RESPONSES_STREAM_USAGE)


def test_openai_responses_stream_manager(recorder, openai_api):
    def scenario(seen):
        manager = seen.of("manager", oai().responses.stream(model="gpt-4.1", input="hi"))
        with manager as stream:
            seen.of("entered", stream)
            seen.each("event", stream)
            seen.value("final", seen.of("final", stream.get_final_response()))

    event = bare_then_patched(recorder, scenario)
    metered(event, RESPONSES_STREAM_USAGE)


async def test_openai_async_responses_stream_manager(recorder, openai_api):
    async def scenario(seen):
        manager = seen.of("manager", aoai().responses.stream(model="gpt-4.1", input="hi"))
        async with manager as stream:
            seen.of("entered", stream)
            await seen.each_async("event", stream)
            seen.value("final", seen.of("final", await stream.get_final_response()))

    event = await bare_then_patched_async(recorder, scenario)
    metered(event, RESPONSES_STREAM_USAGE)


# Raw responses of the Stainless SDKs (openai, anthropic): the same scenarios for both.


def raw_scenario(create: Callable[..., Any], stream: bool) -> Callable[[Seen], None]:
    """`with_raw_response.create(...)`: the raw response, its http response, what `parse()` gives."""

    def scenario(seen):
        raw = seen.of("raw", create(stream=stream))
        seen.of("raw.http_response", raw.http_response)
        parsed = seen.of("parse()", raw.parse())
        if stream:
            seen.each("chunk", parsed)
        else:
            seen.value("parsed", parsed)

    return scenario


def async_raw_scenario(create: Callable[..., Any], stream: bool) -> Callable[[Seen], Awaitable[None]]:
    async def scenario(seen):
        raw = seen.of("raw", await create(stream=stream))
        seen.of("raw.http_response", raw.http_response)
        # openai's async raw response (LegacyAPIResponse) parses synchronously, anthropic's
        # (AsyncAPIResponse) returns a coroutine
        parsed = seen.of("parse()", raw.parse())
        if inspect.isawaitable(parsed):
            parsed = seen.of("await parse()", await parsed)
        if stream:
            await seen.each_async("chunk", parsed)
        else:
            seen.value("parsed", parsed)

    return scenario


def streaming_scenario(create: Callable[..., Any], stream: bool) -> Callable[[Seen], None]:
    """`with_streaming_response.create(...)`: the context manager, the response it enters, `parse()`."""

    def scenario(seen):
        manager = seen.of("manager", create(stream=stream))
        with manager as response:
            seen.of("entered", response)
            seen.of("entered.http_response", response.http_response)
            parsed = seen.of("parse()", response.parse())
            if stream:
                seen.each("chunk", parsed)
            else:
                seen.value("parsed", parsed)

    return scenario


def async_streaming_scenario(create: Callable[..., Any], stream: bool) -> Callable[[Seen], Awaitable[None]]:
    async def scenario(seen):
        manager = seen.of("manager", create(stream=stream))
        async with manager as response:
            seen.of("entered", response)
            seen.of("entered.http_response", response.http_response)
            parsed = seen.of("parse()", await response.parse())
            if stream:
                await seen.each_async("chunk", parsed)
            else:
                seen.value("parsed", parsed)

    return scenario


STREAM_FLAG = pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])


@STREAM_FLAG
def test_openai_with_raw_response(recorder, openai_api, stream):
    def create(**kw):
        return oai().chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES, **kw)

    event = bare_then_patched(recorder, raw_scenario(create, stream))
    metered(event, OPENAI_STREAM_USAGE if stream else OPENAI_CACHED_USAGE, stream=stream)


@STREAM_FLAG
async def test_openai_async_with_raw_response(recorder, openai_api, stream):
    def create(**kw):
        return aoai().chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES, **kw)

    event = await bare_then_patched_async(recorder, async_raw_scenario(create, stream))
    metered(event, OPENAI_STREAM_USAGE if stream else OPENAI_CACHED_USAGE, stream=stream)


@STREAM_FLAG
def test_openai_with_streaming_response(recorder, openai_api, stream):
    def create(**kw):
        return oai().chat.completions.with_streaming_response.create(model="gpt-4o", messages=MESSAGES, **kw)

    event = bare_then_patched(recorder, streaming_scenario(create, stream))
    metered(event, OPENAI_STREAM_USAGE if stream else OPENAI_CACHED_USAGE, stream=stream)


@STREAM_FLAG
async def test_openai_async_with_streaming_response(recorder, openai_api, stream):
    def create(**kw):
        return aoai().chat.completions.with_streaming_response.create(model="gpt-4o", messages=MESSAGES, **kw)

    event = await bare_then_patched_async(recorder, async_streaming_scenario(create, stream))
    metered(event, OPENAI_STREAM_USAGE if stream else OPENAI_CACHED_USAGE, stream=stream)


# -- anthropic --------------------------------------------------------------------------------

import anthropic  # noqa: E402

ANTHROPIC_URL = "https://api.anthropic.com/v1/messages"
ANTHROPIC_ARGS = dict(model=A.MODEL, max_tokens=1024, messages=MESSAGES)
ANTHROPIC_TOOL_USE = Usage(input_tokens=611, output_tokens=87, cache_read_tokens=0, cache_write_tokens=0,
                           cache_write_1h_tokens=0)
ANTHROPIC_CACHED = Usage(input_tokens=51_295, output_tokens=318, cache_read_tokens=48_213, cache_write_tokens=3_070,
                         cache_write_1h_tokens=2_816)


@pytest.fixture
def anthropic_api(http_mock):
    def messages(request):
        if json.loads(request.content).get("stream"):
            return httpx.Response(200, text=A.STREAM_TOOL_USE, headers=A.STREAM_HEADERS)
        return httpx.Response(200, json=A.MESSAGE_CACHED, headers=A.HEADERS)

    http_mock.post(ANTHROPIC_URL).mock(side_effect=messages)
    return http_mock


def ant() -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="sk-ant-test", max_retries=0)


def aant() -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key="sk-ant-test", max_retries=0)


def test_anthropic_stream(recorder, anthropic_api):
    def scenario(seen):
        stream = seen.of("stream", ant().messages.create(**ANTHROPIC_ARGS, stream=True))
        seen.of("stream.response", stream.response)
        seen.of("iter(stream)", iter(stream))
        seen.each("event", stream)

    event = bare_then_patched(recorder, scenario)
    metered(event, ANTHROPIC_TOOL_USE)
    assert event.tool_calls == 1


async def test_anthropic_async_stream(recorder, anthropic_api):
    async def scenario(seen):
        stream = seen.of("stream", await aant().messages.create(**ANTHROPIC_ARGS, stream=True))
        seen.of("stream.response", stream.response)
        await seen.each_async("event", stream)

    event = await bare_then_patched_async(recorder, scenario)
    metered(event, ANTHROPIC_TOOL_USE)


def message_stream_scenario(resource: Callable[[], Any]) -> Callable[[Seen], None]:
    def scenario(seen):
        manager = seen.of("manager", resource().stream(**ANTHROPIC_ARGS))
        with manager as stream:
            seen.of("entered", stream)
            seen.of("entered.response", stream.response)
            seen.value("request_id", stream.request_id)
            seen.of("entered.text_stream", stream.text_stream)
            seen.each("event", stream)
            seen.value("final", seen.of("final", stream.get_final_message()))

    return scenario


def test_anthropic_stream_manager(recorder, anthropic_api):
    event = bare_then_patched(recorder, message_stream_scenario(lambda: ant().messages))
    metered(event, ANTHROPIC_TOOL_USE)


def test_anthropic_beta_stream_manager(recorder, anthropic_api):
    event = bare_then_patched(recorder, message_stream_scenario(lambda: ant().beta.messages))
    metered(event, ANTHROPIC_TOOL_USE)


async def test_anthropic_async_stream_manager(recorder, anthropic_api):
    async def scenario(seen):
        manager = seen.of("manager", aant().messages.stream(**ANTHROPIC_ARGS))
        async with manager as stream:
            seen.of("entered", stream)
            seen.of("entered.response", stream.response)
            seen.value("request_id", stream.request_id)
            seen.of("entered.text_stream", stream.text_stream)
            await seen.each_async("event", stream)
            seen.value("final", seen.of("final", await stream.get_final_message()))

    event = await bare_then_patched_async(recorder, scenario)
    metered(event, ANTHROPIC_TOOL_USE)


async def test_anthropic_async_beta_stream_manager(recorder, anthropic_api):
    async def scenario(seen):
        manager = seen.of("manager", aant().beta.messages.stream(**ANTHROPIC_ARGS))
        async with manager as stream:
            seen.of("entered", stream)
            seen.of("entered.response", stream.response)
            await seen.each_async("event", stream)
            seen.value("final", seen.of("final", await stream.get_final_message()))

    event = await bare_then_patched_async(recorder, scenario)
    metered(event, ANTHROPIC_TOOL_USE)


@STREAM_FLAG
def test_anthropic_with_raw_response(recorder, anthropic_api, stream):
    def create(**kw):
        return ant().messages.with_raw_response.create(**ANTHROPIC_ARGS, **kw)

    event = bare_then_patched(recorder, raw_scenario(create, stream))
    metered(event, ANTHROPIC_TOOL_USE if stream else ANTHROPIC_CACHED, stream=stream)


@STREAM_FLAG
async def test_anthropic_async_with_raw_response(recorder, anthropic_api, stream):
    def create(**kw):
        return aant().messages.with_raw_response.create(**ANTHROPIC_ARGS, **kw)

    event = await bare_then_patched_async(recorder, async_raw_scenario(create, stream))
    metered(event, ANTHROPIC_TOOL_USE if stream else ANTHROPIC_CACHED, stream=stream)


@STREAM_FLAG
def test_anthropic_with_streaming_response(recorder, anthropic_api, stream):
    def create(**kw):
        return ant().messages.with_streaming_response.create(**ANTHROPIC_ARGS, **kw)

    event = bare_then_patched(recorder, streaming_scenario(create, stream))
    metered(event, ANTHROPIC_TOOL_USE if stream else ANTHROPIC_CACHED, stream=stream)


@STREAM_FLAG
async def test_anthropic_async_with_streaming_response(recorder, anthropic_api, stream):
    def create(**kw):
        return aant().messages.with_streaming_response.create(**ANTHROPIC_ARGS, **kw)

    event = await bare_then_patched_async(recorder, async_streaming_scenario(create, stream))
    metered(event, ANTHROPIC_TOOL_USE if stream else ANTHROPIC_CACHED, stream=stream)


# -- groq -------------------------------------------------------------------------------------

GROQ_CHAT = "https://api.groq.com/openai/v1/chat/completions"


def test_groq_stream(recorder, http_mock):
    groq = pytest.importorskip("groq")
    http_mock.post(GROQ_CHAT).respond(text=Q.STREAM_PLAIN, headers=Q.SSE_HEADERS)

    def scenario(seen):
        client = groq.Groq(api_key="gsk-test", max_retries=0)
        stream = seen.of("stream", client.chat.completions.create(
            model="llama-3.3-70b-versatile", messages=MESSAGES, stream=True))
        seen.of("stream.response", stream.response)
        seen.of("iter(stream)", iter(stream))
        seen.each("chunk", stream)

    event = bare_then_patched(recorder, scenario)
    metered(event, Usage(input_tokens=38, output_tokens=7))


async def test_groq_async_stream(recorder, http_mock):
    groq = pytest.importorskip("groq")
    http_mock.post(GROQ_CHAT).respond(text=Q.STREAM_REASONING, headers=Q.SSE_HEADERS)

    async def scenario(seen):
        client = groq.AsyncGroq(api_key="gsk-test", max_retries=0)
        stream = seen.of("stream", await client.chat.completions.create(
            model="openai/gpt-oss-120b", messages=MESSAGES, stream=True))
        seen.of("stream.response", stream.response)
        await seen.each_async("chunk", stream)

    event = await bare_then_patched_async(recorder, scenario)
    metered(event, Usage(input_tokens=1562, output_tokens=410, cache_read_tokens=1408, reasoning_tokens=320))


# -- mistral ----------------------------------------------------------------------------------

MISTRAL_CHAT = "https://api.mistral.ai/v1/chat/completions"


def mistral():
    # mistralai 2.x and 3.x keep the client under `mistralai.client` (1.x kept it under `mistralai`)
    return pytest.importorskip("mistralai.client", reason="mistralai without `mistralai.client` (1.x)").Mistral(
        api_key="test-key")


def test_mistral_stream(recorder, http_mock):
    http_mock.post(MISTRAL_CHAT).respond(text=M.STREAM_PLAIN, headers=M.SSE_HEADERS)

    def scenario(seen):
        stream = seen.of("stream", mistral().chat.stream(model="mistral-small-latest", messages=MESSAGES))
        seen.of("stream.response", stream.response)
        seen.of("iter(stream)", iter(stream))
        seen.each("event", stream)

    event = bare_then_patched(recorder, scenario)
    metered(event, Usage(input_tokens=19, output_tokens=8, cache_read_tokens=0))


async def test_mistral_stream_async(recorder, http_mock):
    http_mock.post(MISTRAL_CHAT).respond(text=M.STREAM_CACHED, headers=M.SSE_HEADERS)

    async def scenario(seen):
        stream = seen.of("stream", await mistral().chat.stream_async(model="mistral-medium-latest",
                                                                     messages=MESSAGES))
        seen.of("stream.response", stream.response)
        seen.of("aiter(stream)", stream.__aiter__())
        await seen.each_async("event", stream)

    event = await bare_then_patched_async(recorder, scenario)
    metered(event, Usage(input_tokens=1560, output_tokens=12, cache_read_tokens=1536))


def test_mistral_stream_generator_attribute(recorder, http_mock):
    """`EventStream.generator` is a public, annotated attribute of mistral's stream (the events
    come from it): the caller reaching it gets the SDK's generator, as unpatched."""
    http_mock.post(MISTRAL_CHAT).respond(text=M.STREAM_PLAIN, headers=M.SSE_HEADERS)

    def scenario(seen):
        stream = seen.of("stream", mistral().chat.stream(model="mistral-small-latest", messages=MESSAGES))
        seen.of("stream.generator", stream.generator)
        seen.each("event", stream)

    event = bare_then_patched(recorder, scenario)
    metered(event, Usage(input_tokens=19, output_tokens=8, cache_read_tokens=0))


async def test_mistral_stream_async_generator_attribute(recorder, http_mock):
    http_mock.post(MISTRAL_CHAT).respond(text=M.STREAM_CACHED, headers=M.SSE_HEADERS)

    async def scenario(seen):
        stream = seen.of("stream", await mistral().chat.stream_async(model="mistral-medium-latest",
                                                                     messages=MESSAGES))
        seen.of("stream.generator", stream.generator)
        await seen.each_async("event", stream)

    event = await bare_then_patched_async(recorder, scenario)
    metered(event, Usage(input_tokens=1560, output_tokens=12, cache_read_tokens=1536))


# -- cohere -----------------------------------------------------------------------------------

COHERE_CHAT = "https://api.cohere.com/v2/chat"
COHERE_STREAM_USAGE = Usage(input_tokens=17, output_tokens=9)


def _cohere_kw(cls) -> dict:
    # cohere 7 takes max_retries (default 2); cohere 6 does not retry.
    return {"max_retries": 0} if "max_retries" in inspect.signature(cls.__init__).parameters else {}


def cohere_v2(kind: str):
    cohere = pytest.importorskip("cohere")
    if kind == "ClientV2":
        return cohere.ClientV2(api_key="co-test", **_cohere_kw(cohere.ClientV2))
    if kind == "Client.v2":
        return cohere.Client(api_key="co-test", **_cohere_kw(cohere.Client)).v2
    return cohere.AsyncClientV2(api_key="co-test", **_cohere_kw(cohere.AsyncClientV2))


@pytest.mark.parametrize("kind", ["ClientV2", "Client.v2"])
def test_cohere_chat_stream(recorder, http_mock, kind):
    http_mock.post(COHERE_CHAT).respond(text=C.CHAT_STREAM, headers=C.SSE_HEADERS)

    def scenario(seen):
        events = seen.of("chat_stream()", cohere_v2(kind).chat_stream(model=C.MODEL, messages=MESSAGES))
        seen.each("event", events)

    event = bare_then_patched(recorder, scenario)
    metered(event, COHERE_STREAM_USAGE)


async def test_cohere_async_chat_stream(recorder, http_mock):
    http_mock.post(COHERE_CHAT).respond(text=C.CHAT_STREAM, headers=C.SSE_HEADERS)

    async def scenario(seen):
        events = seen.of("chat_stream()", cohere_v2("AsyncClientV2").chat_stream(model=C.MODEL, messages=MESSAGES))
        await seen.each_async("event", events)

    event = await bare_then_patched_async(recorder, scenario)
    metered(event, COHERE_STREAM_USAGE)


def test_cohere_raw_chat_stream(recorder, http_mock):
    http_mock.post(COHERE_CHAT).respond(text=C.CHAT_STREAM, headers=C.SSE_HEADERS)

    def scenario(seen):
        manager = seen.of("manager", cohere_v2("ClientV2").with_raw_response.chat_stream(
            model=C.MODEL, messages=MESSAGES))
        with manager as response:
            seen.of("entered", response)
            seen.value("content-type", response.headers["content-type"])
            seen.each("event", seen.of("entered.data", response.data))

    event = bare_then_patched(recorder, scenario)
    metered(event, COHERE_STREAM_USAGE)


async def test_cohere_async_raw_chat_stream(recorder, http_mock):
    http_mock.post(COHERE_CHAT).respond(text=C.CHAT_STREAM, headers=C.SSE_HEADERS)

    async def scenario(seen):
        manager = seen.of("manager", cohere_v2("AsyncClientV2").with_raw_response.chat_stream(
            model=C.MODEL, messages=MESSAGES))
        async with manager as response:
            seen.of("entered", response)
            await seen.each_async("event", seen.of("entered.data", response.data))

    event = await bare_then_patched_async(recorder, scenario)
    metered(event, COHERE_STREAM_USAGE)


# -- google-genai -----------------------------------------------------------------------------

GOOGLE_MODEL = "gemini-2.0-flash"


@pytest.fixture
def gemini(http_mock, monkeypatch):
    pytest.importorskip("google.genai")
    from google.genai import _api_client

    # Where aiohttp is installed the SDK sends async requests through it, which `http_mock` does
    # not mock: keep them on httpx / httpx2, as without aiohttp.
    monkeypatch.setattr(_api_client, "has_aiohttp", False)
    pattern = rf"{re.escape(G.GEMINI_URL)}/v1[a-z0-9]*/(.*/)?models/{GOOGLE_MODEL}:streamGenerateContent(\?.*)?$"
    http_mock.post(url__regex=pattern).mock(
        side_effect=lambda request: httpx.Response(200, text=G.STREAM_PLAIN, headers=G.SSE_HEADERS))
    return http_mock


def genai_client():
    from google import genai

    return genai.Client(api_key="test-key", vertexai=False)


def test_google_generate_content_stream(recorder, gemini):
    def scenario(seen):
        client = genai_client()  # kept alive while its stream is read (a collected client closes)
        seen.each("chunk", seen.of("stream", client.models.generate_content_stream(model=GOOGLE_MODEL,
                                                                                   contents="hi")))

    event = bare_then_patched(recorder, scenario)
    metered(event, Usage(input_tokens=8, output_tokens=12))


async def test_google_async_generate_content_stream(recorder, gemini):
    async def scenario(seen):
        client = genai_client()
        stream = seen.of("stream", await client.aio.models.generate_content_stream(model=GOOGLE_MODEL,
                                                                                   contents="hi"))
        await seen.each_async("chunk", stream)

    event = await bare_then_patched_async(recorder, scenario)
    metered(event, Usage(input_tokens=8, output_tokens=12))


# -- Bedrock (botocore) -----------------------------------------------------------------------

from .bodies import bedrock_bodies as B  # noqa: E402
from .test_bedrock import Endpoint, client as bedrock_client, invoke_body  # noqa: E402

BEDROCK_MESSAGES = [{"role": "user", "content": [{"text": "What is the capital of France?"}]}]
BEDROCK_PLAIN = Usage(input_tokens=25, output_tokens=96)


@pytest.fixture(scope="module")
def _bedrock_server():
    server = Endpoint()  # a local HTTP endpoint speaking bedrock-runtime, as tests/test_bedrock.py uses
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def aws(_bedrock_server):
    _bedrock_server.replies.clear()
    _bedrock_server.requests.clear()
    return _bedrock_server


def test_bedrock_converse_stream(recorder, aws):
    aws.converse_stream(B.STREAM_PLAIN)  # one reply, served to both runs

    def scenario(seen):
        response = seen.of("response", bedrock_client(aws).converse_stream(modelId=B.CLAUDE,
                                                                          messages=BEDROCK_MESSAGES))
        stream = seen.of('response["stream"]', response["stream"])
        seen.of('iter(response["stream"])', iter(stream))
        seen.each("event", stream)

    event = bare_then_patched(recorder, scenario)
    metered(event, BEDROCK_PLAIN)


def test_bedrock_invoke_model_with_response_stream(recorder, aws):
    aws.invoke_stream(B.ANTHROPIC_STREAM)

    def scenario(seen):
        response = seen.of("response", bedrock_client(aws).invoke_model_with_response_stream(
            modelId=B.CLAUDE, body=invoke_body()))
        stream = seen.of('response["body"]', response["body"])
        seen.of('iter(response["body"])', iter(stream))
        seen.each("event", stream)

    event = bare_then_patched(recorder, scenario)
    metered(event, BEDROCK_PLAIN)


def test_bedrock_invoke_model_body(recorder, aws):
    aws.invoke(B.ANTHROPIC, B.ANTHROPIC_HEADERS)

    def scenario(seen):
        response = seen.of("response", bedrock_client(aws).invoke_model(modelId=B.CLAUDE, body=invoke_body()))
        body = seen.of('response["body"]', response["body"])
        seen.of('response["body"].iter_chunks()', body.iter_chunks())
        seen.value("read()", seen.of("read()", body.read()))

    event = bare_then_patched(recorder, scenario)
    metered(event, BEDROCK_PLAIN, stream=False)


# -- @meter.track -----------------------------------------------------------------------------

TRACK_USAGE = Usage(input_tokens=5, output_tokens=2)


def _items():
    yield {"text": "a"}
    yield {"text": "b"}
    yield {"text": "", "usage": {"input_tokens": 5, "output_tokens": 2}}


def test_track_generator_function(recorder):
    def generate(prompt):
        yield from _items()

    tracked = recorder.meter.track(provider="self-hosted", model="m",
                                   extract_usage=lambda item: item.get("usage"))(generate)
    bare, patched = Seen(), Seen()
    patched.each("item", patched.of("result", tracked("hi")))
    bare.each("item", bare.of("result", generate("hi")))
    assert_same(bare, patched)
    metered(recorder.one(), TRACK_USAGE)


async def test_track_async_generator_function(recorder):
    async def generate(prompt):
        for item in _items():
            yield item

    tracked = recorder.meter.track(provider="self-hosted", model="m",
                                   extract_usage=lambda item: item.get("usage"))(generate)
    bare, patched = Seen(), Seen()
    await patched.each_async("item", patched.of("result", tracked("hi")))
    await bare.each_async("item", bare.of("result", generate("hi")))
    assert_same(bare, patched)
    metered(recorder.one(), TRACK_USAGE)
