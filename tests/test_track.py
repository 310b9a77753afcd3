"""`@meter.track` and `track_manually`: calls tollmeter cannot patch, and non-LLM costs."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import openai
import pytest

from tollmeter import LimitExceededException, Meter, MeterConfig, Usage

from .bodies import openai_bodies as O
from .conftest import Recorder


@pytest.fixture
def rec():
    r = Recorder(store=":memory:")
    yield r
    r.meter.shutdown()


def vllm_usage(result):
    return {"input_tokens": result["usage"]["prompt_tokens"], "output_tokens": result["usage"]["completion_tokens"],
            "model": result["model"]}


def test_sync_function(rec):
    @rec.meter.track(provider="self-hosted", model="llama-3.1-70b", extract_usage=vllm_usage)
    def generate(prompt):
        return {"model": "llama-3.1-70b-instruct", "usage": {"prompt_tokens": 12, "completion_tokens": 30}}

    with rec.meter.for_tenant("acme"):
        assert generate("hi")["model"] == "llama-3.1-70b-instruct"
    event = rec.one()
    assert (event.provider, event.endpoint, event.model, event.request_model, event.tenant_id) == (
        "self-hosted", "generate", "llama-3.1-70b-instruct", "llama-3.1-70b", "acme")
    assert event.usage == Usage(input_tokens=12, output_tokens=30)
    assert not event.priced  # a self-hosted model needs a rate card


async def test_async_function_priced_by_the_bundled_data(rec):
    @rec.meter.track(provider="openai", model="gpt-4o", endpoint="gateway.chat",
                     extract_usage=lambda r: Usage(input_tokens=1000, output_tokens=100))
    async def via_gateway():
        await asyncio.sleep(0)
        return "ok"

    assert await via_gateway() == "ok"
    event = rec.one()
    assert event.endpoint == "gateway.chat" and event.cost_usd == Decimal("0.0035")  # 1,000 x $2.50 + 100 x $10 per M


def test_generator_takes_the_last_reported_usage_and_records_early_stops(rec):
    @rec.meter.track(provider="self-hosted", model="m",
                     extract_usage=lambda item: item.get("usage"))
    def stream():
        yield {"text": "a"}
        yield {"text": "b"}
        yield {"text": "", "usage": {"input_tokens": 5, "output_tokens": 2}}

    assert [i["text"] for i in stream()] == ["a", "b", ""]
    for _ in stream():
        break
    full, early = rec.recorded()
    assert full.stream and not full.partial and full.usage == Usage(input_tokens=5, output_tokens=2)
    assert early.partial and early.time_to_first_token_ms is not None


async def test_async_generator(rec):
    @rec.meter.track(provider="self-hosted", model="m", extract_usage=lambda item: item if isinstance(item, dict) else None)
    async def stream():
        yield "tok"
        yield {"input_tokens": 3, "output_tokens": 1, "cost_usd": "0.0001"}

    assert [x async for x in stream()][0] == "tok"
    event = rec.one()
    assert event.usage == Usage(input_tokens=3, output_tokens=1)
    assert (event.cost_usd, event.price_source) == (Decimal("0.0001"), "provider")


def test_exception_reaches_the_caller_and_is_recorded(rec):
    @rec.meter.track(provider="self-hosted", model="m")
    def broken():
        raise TimeoutError("upstream timed out")

    with pytest.raises(TimeoutError):
        broken()
    assert rec.one().error == "TimeoutError"


@pytest.mark.sdk
def test_sdk_calls_inside_a_tracked_function_are_not_counted_twice(rec, http_mock):
    http_mock.post("https://api.openai.com/v1/chat/completions").respond(json=O.CHAT_PLAIN)
    rec.meter.patch("openai")
    client = openai.OpenAI(api_key="k", max_retries=0)

    @rec.meter.track(provider="openai", model="gpt-4o", endpoint="agent.step",
                     extract_usage=lambda r: {"input_tokens": r.usage.prompt_tokens, "output_tokens": r.usage.completion_tokens})
    def step():
        return client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])

    @rec.meter.track(provider="openai", model="gpt-4o", endpoint="agent.stream")
    def streaming_step():
        yield client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])

    step()
    list(streaming_step())
    assert [e.endpoint for e in rec.recorded()] == ["agent.step", "agent.stream"]


def test_tracked_calls_are_limited(rec):
    rec.meter.set_limit("acme", Decimal("0.01"), frequency="per_day")

    @rec.meter.track(provider="openai", model="gpt-4o", extract_usage=lambda r: Usage(input_tokens=10, output_tokens=10))
    def generate(prompt, max_tokens=100_000):
        return "ok"

    with rec.meter.for_tenant("acme"), pytest.raises(LimitExceededException):
        generate("hello", max_tokens=100_000)  # up to 100k output tokens at $10/M: $1 > $0.01


def test_track_manually_non_llm_costs_count_against_limits():
    meter = Meter(MeterConfig(store=":memory:", flush_interval=0.02))
    meter.set_limit("acme", Decimal("1"), frequency="per_day")
    with meter.for_tenant("acme"):
        meter.track_manually(provider="e2b", endpoint="sandbox", cost_usd="0.40", units={"seconds": 120})
        meter.track_manually(provider="serpapi", endpoint="search", cost_usd="0.01")
    assert meter.flush(5)
    assert meter.spend("acme")[0].spent_usd == Decimal("0.41")
    meter.shutdown()
