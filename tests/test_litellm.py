"""The LiteLLM SDK as a provider: one event per call, with the provider LiteLLM routed it to,
LiteLLM's own cost beside tollmeter's, and no double counting with the SDKs LiteLLM calls.

Provider HTTP is mocked at the transport (respx), on the bodies the OpenAI and Anthropic APIs
send (tests/bodies). LiteLLM calls OpenAI through the `openai` SDK and Anthropic over HTTP
itself. Its async calls use an aiohttp transport by default, which respx does not reach: the
tests switch LiteLLM to its httpx transport (`litellm.disable_aiohttp_transport`), except one
that serves the bodies from a real HTTP server on 127.0.0.1 with LiteLLM's defaults.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch of LiteLLM's price map
litellm = pytest.importorskip("litellm")

from tollmeter import LimitExceededException, Meter, MeterConfig, Usage  # noqa: E402
from tollmeter.instrument.litellm import litellm_cost, provider_name  # noqa: E402

from .bodies import anthropic_bodies as A  # noqa: E402
from .bodies import openai_bodies as O  # noqa: E402
from .conftest import observe  # noqa: E402

pytestmark = pytest.mark.sdk

OPENAI_CHAT = "https://api.openai.com/v1/chat/completions"
OPENAI_EMBEDDINGS = "https://api.openai.com/v1/embeddings"
ANTHROPIC = "https://api.anthropic.com/v1/messages"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
M = Decimal(1_000_000)


@pytest.fixture(autouse=True)
def httpx_transport():
    """LiteLLM on httpx (what respx mocks), quiet, and with fresh SDK clients: LiteLLM caches
    the `openai` clients it makes, and a client keeps the `with_raw_response` methods it bound
    first, so a cached one would not meet this test's patch of the openai SDK."""
    saved = litellm.disable_aiohttp_transport, litellm.suppress_debug_info
    litellm.disable_aiohttp_transport, litellm.suppress_debug_info = True, True
    litellm.in_memory_llm_clients_cache.flush_cache()
    yield
    litellm.disable_aiohttp_transport, litellm.suppress_debug_info = saved


def ask(model: str, **kw):
    return litellm.completion(model=model, messages=MESSAGES, api_key="sk-test", num_retries=0, **kw)


async def aask(model: str, **kw):
    return await litellm.acompletion(model=model, messages=MESSAGES, api_key="sk-test", num_retries=0, **kw)


def counts(usage: Usage) -> dict[str, int]:
    """The counts of a usage that are not zero: LiteLLM reports some counts a provider did not
    send as 0, and which ones varies with its release."""
    return {name: value for name, value in usage.to_dict().items() if value}


def litellms_cost(response) -> Decimal:
    return litellm_cost(response._hidden_params["response_cost"])


# -- complete responses --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, usage, tool_calls, finish, ours",
    [
        (O.CHAT_PLAIN, Usage(input_tokens=19, output_tokens=10, cache_read_tokens=0, input_audio_tokens=0,
                             reasoning_tokens=0, output_audio_tokens=0, accepted_prediction_tokens=0,
                             rejected_prediction_tokens=0), 0, "stop",
         (19 * Decimal("2.5") + 10 * 10) / M),
        (O.CHAT_CACHED, Usage(input_tokens=2006, output_tokens=300, cache_read_tokens=1920, input_audio_tokens=0,
                              reasoning_tokens=0, output_audio_tokens=0, accepted_prediction_tokens=0,
                              rejected_prediction_tokens=0), 0, "stop",
         (86 * Decimal("2.5") + 1920 * Decimal("1.25") + 300 * 10) / M),
        (O.CHAT_TOOL_CALLS, Usage(input_tokens=82, output_tokens=51, cache_read_tokens=0, input_audio_tokens=0,
                                  reasoning_tokens=0, output_audio_tokens=0, accepted_prediction_tokens=0,
                                  rejected_prediction_tokens=0), 2, "tool_calls",
         (82 * Decimal("2.5") + 51 * 10) / M),
    ],
    ids=["plain", "cached", "tool_calls"],
)
def test_openai_completion(recorder, http_mock, body, usage, tool_calls, finish, ours):
    route = http_mock.post(OPENAI_CHAT).respond(json=body, headers=O.HEADERS)
    with recorder.meter.for_tenant("acme", run_id="r1"):
        response = ask("gpt-4o")
    assert isinstance(response, litellm.ModelResponse) and response.id == body["id"]
    assert route.call_count == 1
    event = recorder.one()  # the openai SDK LiteLLM called inside is patched too: still one event
    assert (event.provider, event.model, event.request_model) == ("openai", "gpt-4o-2024-08-06", "gpt-4o")
    assert (event.endpoint, event.stream, event.partial, event.error) == ("chat.completions", False, False, None)
    assert (event.tenant_id, event.run_id) == ("acme", "r1")
    assert counts(event.usage) == counts(usage)
    assert (event.tool_calls, event.finish_reason, event.service_tier) == (tool_calls, finish, "default")
    assert event.request_id == O.HEADERS["x-request-id"]
    # LiteLLM's cost is the provider-reported cost; tollmeter's own price stays beside it.
    assert event.provider_cost_usd == event.cost_usd == litellms_cost(response)
    assert (event.priced, event.price_source) == (True, "litellm")
    assert event.computed_cost_usd == ours
    assert event.cost_usd == ours  # both price lists agree on gpt-4o


@pytest.mark.parametrize(
    "body, usage, tool_calls, finish, searches, ours",
    [
        (A.MESSAGE_PLAIN, Usage(input_tokens=25, output_tokens=96, cache_read_tokens=0, cache_write_tokens=0, reasoning_tokens=0),
         0, "stop", None, (25 * 3 + 96 * 15) / M),
        # Anthropic's input_tokens excludes the cache: LiteLLM's prompt_tokens adds it back (inclusive).
        (A.MESSAGE_CACHED, Usage(input_tokens=12 + 48213 + 3070, output_tokens=318, cache_read_tokens=48213,
                                 cache_write_tokens=3070, cache_write_1h_tokens=2816, reasoning_tokens=0),
         0, "stop", None,
         (12 * 3 + 48213 * Decimal("0.3") + 254 * Decimal("3.75") + 2816 * 6 + 318 * 15) / M),
        (A.MESSAGE_TOOL_USE, Usage(input_tokens=611, output_tokens=143, cache_read_tokens=0, cache_write_tokens=0, reasoning_tokens=0),
         2, "tool_calls", None, (611 * 3 + 143 * 15) / M),
        (A.MESSAGE_WEB_SEARCH, Usage(input_tokens=18734, output_tokens=642, cache_read_tokens=0, cache_write_tokens=0, reasoning_tokens=0),
         0, "stop", 2, (18734 * 3 + 642 * 15) / M + 2 * Decimal("0.01")),
    ],
    ids=["plain", "cached", "tool_use", "web_search"],
)
def test_anthropic_completion(recorder, http_mock, body, usage, tool_calls, finish, searches, ours):
    http_mock.post(ANTHROPIC).respond(json=body, headers=A.HEADERS)
    with recorder.meter.for_tenant("acme"):
        response = ask("anthropic/claude-sonnet-4-6")
    event = recorder.one()
    assert (event.provider, event.model, event.request_model) == ("anthropic", A.MODEL, A.MODEL)
    assert counts(event.usage) == counts(usage)
    assert (event.tool_calls, event.finish_reason, event.web_search_requests) == (tool_calls, finish, searches)
    assert event.service_tier == "standard" and event.request_id == A.REQUEST_ID
    assert (event.cost_usd, event.price_source) == (litellms_cost(response), "litellm")
    assert event.computed_cost_usd == ours == event.cost_usd


async def test_async_completion_openai_and_anthropic(recorder, http_mock):
    http_mock.post(OPENAI_CHAT).respond(json=O.CHAT_CACHED, headers=O.HEADERS)
    http_mock.post(ANTHROPIC).respond(json=A.MESSAGE_CACHED, headers=A.HEADERS)
    async with recorder.meter.for_tenant("acme"):
        first = await aask("gpt-4o")
    async with recorder.meter.for_tenant("globex"):
        second = await aask("claude-sonnet-4-6")  # LiteLLM knows the model without a prefix too
    events = sorted(recorder.recorded(), key=lambda e: e.tenant_id)
    assert [(e.tenant_id, e.provider) for e in events] == [("acme", "openai"), ("globex", "anthropic")]
    assert events[0].usage.input_tokens == 2006 and events[0].cost_usd == litellms_cost(first)
    assert events[1].usage.input_tokens == 51295 and events[1].cost_usd == litellms_cost(second)


async def test_concurrent_tasks_keep_their_tenants(recorder, http_mock):
    http_mock.post(ANTHROPIC).respond(json=A.MESSAGE_PLAIN, headers=A.HEADERS)

    async def work(tenant):
        async with recorder.meter.for_tenant(tenant):
            await aask("anthropic/claude-sonnet-4-6")

    await asyncio.gather(*(work(f"t{i}") for i in range(6)))
    assert sorted(e.tenant_id for e in recorder.recorded()) == [f"t{i}" for i in range(6)]


def test_embedding(recorder, http_mock):
    http_mock.post(OPENAI_EMBEDDINGS).respond(json=O.EMBEDDINGS, headers=O.HEADERS)
    response = litellm.embedding(model="text-embedding-3-small", input=["a", "b"], api_key="sk-test")
    assert isinstance(response, litellm.EmbeddingResponse)
    event = recorder.one()
    assert (event.provider, event.model, event.endpoint) == ("openai", "text-embedding-3-small", "embeddings")
    assert event.usage.input_tokens == 9 and not event.usage.output_tokens
    assert event.cost_usd == litellms_cost(response) == 9 * Decimal("0.02") / M
    assert event.price_source == "litellm"


async def test_async_embedding(recorder, http_mock):
    http_mock.post(OPENAI_EMBEDDINGS).respond(json=O.EMBEDDINGS, headers=O.HEADERS)
    with recorder.meter.for_tenant("acme"):
        await litellm.aembedding(model="openai/text-embedding-3-small", input="a", api_key="sk-test")
    event = recorder.one()
    assert (event.tenant_id, event.provider, event.usage.input_tokens) == ("acme", "openai", 9)


# -- streams -------------------------------------------------------------------------------------


@pytest.mark.parametrize("include_usage", [False, True], ids=["no_stream_options", "include_usage"])
@pytest.mark.parametrize(
    "model, url, body, headers, usage, request_id, ours",
    [
        ("gpt-4o", OPENAI_CHAT, O.CHAT_STREAM_WITH_USAGE, O.SSE_HEADERS,
         Usage(input_tokens=14, output_tokens=7, cache_read_tokens=0, input_audio_tokens=0, reasoning_tokens=0,
               output_audio_tokens=0, accepted_prediction_tokens=0, rejected_prediction_tokens=0),
         O.SSE_HEADERS["x-request-id"], (14 * Decimal("2.5") + 7 * 10) / M),
        ("anthropic/claude-sonnet-4-6", ANTHROPIC, A.STREAM_CACHED, A.STREAM_HEADERS,
         Usage(input_tokens=51295, output_tokens=97, cache_read_tokens=48213, cache_write_tokens=3070,
               cache_write_1h_tokens=2816, reasoning_tokens=0),
         A.STREAM_HEADERS["request-id"],
         (12 * 3 + 48213 * Decimal("0.3") + 254 * Decimal("3.75") + 2816 * 6 + 97 * 15) / M),
    ],
    ids=["openai", "anthropic"],
)
def test_stream(recorder, http_mock, model, url, body, headers, usage, request_id, ours, include_usage):
    http_mock.post(url).respond(text=body, headers=headers)
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    with recorder.meter.for_tenant("acme"):
        stream = ask(model, stream=True, **options)
    assert type(stream) is litellm.CustomStreamWrapper  # LiteLLM's own object, observed in place
    assert recorder.recorded() == []  # nothing until the stream ends
    chunks = list(stream)
    assert chunks and all(type(c) is litellm.ModelResponseStream for c in chunks)
    event = recorder.one()
    assert (event.tenant_id, event.stream, event.partial, event.error) == ("acme", True, False, None)
    assert counts(event.usage) == counts(usage) and event.finish_reason == "stop"
    assert event.request_id == request_id
    assert 0 <= event.time_to_first_token_ms <= event.duration_ms
    assert (event.cost_usd, event.price_source) == (ours, "litellm")  # LiteLLM's bill, read from the stream
    assert event.computed_cost_usd == ours


async def test_async_streams(recorder, http_mock):
    http_mock.post(OPENAI_CHAT).respond(text=O.CHAT_STREAM_WITH_USAGE, headers=O.SSE_HEADERS)
    http_mock.post(ANTHROPIC).respond(text=A.STREAM_CACHED, headers=A.STREAM_HEADERS)
    async with recorder.meter.for_tenant("acme"):
        for model in ("gpt-4o", "anthropic/claude-sonnet-4-6"):
            stream = await aask(model, stream=True)
            assert type(stream) is litellm.CustomStreamWrapper
            assert [c async for c in stream]
    events = sorted(recorder.recorded(), key=lambda e: e.provider)
    assert [(e.provider, e.stream, e.partial, e.tenant_id) for e in events] == [
        ("anthropic", True, False, "acme"), ("openai", True, False, "acme")]
    assert [e.usage.input_tokens for e in events] == [51295, 14]
    assert all(e.price_source == "litellm" and e.cost_usd == e.computed_cost_usd for e in events)


def test_stream_chunks_are_what_the_unpatched_sdk_gives(http_mock):
    http_mock.post(ANTHROPIC).respond(text=A.STREAM_TOOL_USE, headers=A.STREAM_HEADERS)

    def scenario():
        chunks = list(ask("anthropic/claude-sonnet-4-6", stream=True))
        # ids and timestamps LiteLLM makes up per call aside
        return [observe(c)[1]["choices"] for c in chunks]

    bare = scenario()
    events = []
    meter = Meter(MeterConfig(on_event=events.append, flush_interval=0.05))
    meter.patch("litellm")
    try:
        patched = scenario()
        assert meter.flush(5)
    finally:
        meter.shutdown()
    assert patched == bare
    assert len(events) == 1 and events[0].tool_calls == 1 and events[0].finish_reason == "tool_calls"


def test_stream_closed_early_is_partial(recorder, http_mock):
    http_mock.post(ANTHROPIC).respond(text=A.STREAM_PLAIN, headers=A.STREAM_HEADERS)
    stream = ask("anthropic/claude-sonnet-4-6", stream=True)
    next(stream)
    stream.close()
    event = recorder.one()
    assert event.partial and event.stream and event.error is None
    assert event.usage.input_tokens is None  # the usage arrives with the stream's end


async def test_async_stream_closed_early_is_partial(recorder, http_mock):
    http_mock.post(OPENAI_CHAT).respond(text=O.CHAT_STREAM_WITH_USAGE, headers=O.SSE_HEADERS)
    stream = await aask("gpt-4o", stream=True)
    async for _ in stream:
        break
    await stream.aclose()
    assert recorder.one().partial


def test_dropped_stream_is_recorded_when_collected(recorder, http_mock):
    http_mock.post(OPENAI_CHAT).respond(text=O.CHAT_STREAM_WITH_USAGE, headers=O.SSE_HEADERS)
    stream = ask("gpt-4o", stream=True)
    next(stream)
    del stream
    # LiteLLM's logging thread lets go of it in its own time (seconds on a loaded machine): a
    # generous bound for "never", not a timing claim.
    deadline = time.monotonic() + 60
    while not recorder.meter.flush(1) or not recorder.events:
        gc.collect()
        time.sleep(0.05)
        assert time.monotonic() < deadline, "the dropped stream was never recorded"
    assert recorder.one().partial


# -- errors, limits, routing ---------------------------------------------------------------------


def test_provider_error_is_one_failed_event(recorder, http_mock):
    http_mock.post(OPENAI_CHAT).respond(429, json=O.ERROR_429, headers=O.HEADERS)
    with pytest.raises(litellm.RateLimitError):
        ask("gpt-4o", max_retries=0)
    event = recorder.one()
    assert (event.provider, event.error, event.status_code) == ("openai", "RateLimitError", 429)
    assert (event.cost_usd, event.price_source) == (Decimal(0), "nothing billed")


def test_limit_refuses_before_anything_is_sent(http_mock):
    route = http_mock.post(ANTHROPIC).respond(json=A.MESSAGE_PLAIN, headers=A.HEADERS)
    meter = Meter(MeterConfig(store=":memory:", flush_interval=0.05))
    meter.patch("litellm")
    try:
        meter.set_limit("acme", Decimal("0.0001"), frequency="per_day")
        with meter.for_tenant("acme"), pytest.raises(LimitExceededException) as refused:
            ask("anthropic/claude-sonnet-4-6", max_tokens=1000)
        assert route.call_count == 0
        assert refused.value.tenant_id == "acme"
    finally:
        meter.shutdown()


def test_router_calls_are_metered_once(recorder, http_mock):
    http_mock.post(OPENAI_CHAT).respond(json=O.CHAT_PLAIN, headers=O.HEADERS)
    router = litellm.Router(model_list=[
        {"model_name": "default", "litellm_params": {"model": "openai/gpt-4o", "api_key": "sk-test"}}])
    with recorder.meter.for_tenant("acme"):
        router.completion(model="default", messages=MESSAGES)
    event = recorder.one()
    assert (event.tenant_id, event.provider, event.request_model) == ("acme", "openai", "gpt-4o")


def test_no_double_counting_when_litellm_calls_the_openai_sdk(recorder, http_mock):
    """LiteLLM sends an embedding with an explicit `encoding_format` through the openai SDK's
    `embeddings.with_raw_response.create`, which tollmeter's openai patch instruments too (see
    the next test): inside the LiteLLM call it is passed through, so the call is one event."""
    http_mock.post(OPENAI_EMBEDDINGS).respond(json=O.EMBEDDINGS, headers=O.HEADERS)
    assert "openai" in recorder.meter.patched and "litellm" in recorder.meter.patched
    litellm.embedding(model="text-embedding-3-small", input=["a", "b"], api_key="sk-test", encoding_format="float")
    event = recorder.one()
    assert (event.provider, event.endpoint, event.price_source) == ("openai", "embeddings", "litellm")


def test_without_the_litellm_patch_only_sdk_backed_calls_are_seen(http_mock):
    """With `patch("openai")` alone, what LiteLLM sends through the openai SDK is metered by the
    openai patch (as a call of the openai SDK, priced by tollmeter), and what it sends over HTTP
    itself (Anthropic; OpenAI chat too in current LiteLLM releases) is not seen at all."""
    http_mock.post(OPENAI_EMBEDDINGS).respond(json=O.EMBEDDINGS, headers=O.HEADERS)
    http_mock.post(ANTHROPIC).respond(json=A.MESSAGE_PLAIN, headers=A.HEADERS)
    events = []
    meter = Meter(MeterConfig(on_event=events.append, flush_interval=0.05))
    meter.patch("openai")
    try:
        litellm.embedding(model="text-embedding-3-small", input=["a", "b"], api_key="sk-test",
                          encoding_format="float")
        ask("anthropic/claude-sonnet-4-6")
        assert meter.flush(5)
    finally:
        meter.shutdown()
    assert [(e.provider, e.endpoint) for e in events] == [("openai", "embeddings")]
    assert events[0].price_source != "litellm"


def test_litellms_mock_responses_are_not_metered(recorder):
    response = ask("gpt-4o", mock_response="Paris.")
    assert response.choices[0].message.content == "Paris."
    assert recorder.recorded() == []


def test_unpatch_restores_litellm(http_mock):
    originals = (litellm.completion, litellm.acompletion, litellm.embedding, litellm.aembedding,
                 litellm.CustomStreamWrapper.__dict__["__next__"])
    meter = Meter(MeterConfig(on_event=lambda e: None))
    meter.patch("litellm")
    assert litellm.completion is not originals[0]
    meter.unpatch("litellm")
    meter.shutdown()
    assert (litellm.completion, litellm.acompletion, litellm.embedding, litellm.aembedding,
            litellm.CustomStreamWrapper.__dict__["__next__"]) == originals


def test_provider_names():
    assert provider_name("bedrock") == "aws" and provider_name("vertex_ai") == "google-vertex"
    assert provider_name("gemini") == "google" and provider_name("anthropic") == "anthropic"
    assert provider_name("openai", "https://api.openai.com/v1") == "openai"
    assert provider_name("hosted_vllm") == "self-hosted"
    assert litellm_cost(0.037118399999999996) == Decimal("0.0371184")
    assert litellm_cost(None) is None and litellm_cost(True) is None and litellm_cost(-1.0) is None


# -- LiteLLM's defaults (aiohttp) against a real server on 127.0.0.1 -----------------------------


class _Bodies(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length") or 0))
        data = json.dumps(A.MESSAGE_CACHED).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("request-id", A.REQUEST_ID)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def local_anthropic():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Bodies)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_async_on_litellms_default_transport(recorder, local_anthropic):
    litellm.disable_aiohttp_transport = False
    async with recorder.meter.for_tenant("acme"):
        response = await litellm.acompletion(model="anthropic/claude-sonnet-4-6", messages=MESSAGES,
                                             api_key="sk-test", api_base=local_anthropic, num_retries=0)
    event = recorder.one()
    assert (event.tenant_id, event.provider, event.usage.input_tokens) == ("acme", "anthropic", 51295)
    assert event.cost_usd == litellms_cost(response)


def test_patch_all_does_not_import_litellm_but_patches_it_when_the_app_does():
    """LiteLLM takes seconds to import (and fetches its price map when it does): patch_all()
    never imports it; the application's own import gets it patched."""
    import subprocess
    import sys

    code = """
import os, sys
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
from tollmeter import Meter, MeterConfig
meter = Meter(MeterConfig(store=False))
assert "litellm" in meter.patch_all(), meter.patched
assert "litellm" not in sys.modules
import litellm, wrapt
assert isinstance(litellm.completion, wrapt.FunctionWrapper), "not patched on import"
meter.unpatch_all()
assert not isinstance(litellm.completion, wrapt.FunctionWrapper)
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
