"""One bad value never costs the batch (issue 12).

- Values from the application are checked at the API boundary by the rules the server holds
  events to (tollmeter/rules.py): a TypeError or ValueError naming the argument, and nothing
  recorded. What the agent accepts, the server's validation accepts.
- What a provider reports is bounded as it becomes an event: an absurd token count is recorded
  as unreported and reported, the rest of the event kept.
- A batch the embedded store refuses is written again event by event; the bad event is set
  aside (counted in `rejected`, reported with its reason), the rest stored, its spend counted.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import httpx
import openai
import pytest

from tollmeter import LLMEvent, Meter, MeterConfig, RejectedEvent, Usage, rules

from .bodies import openai_bodies as O

UTC = timezone.utc


@pytest.fixture
def meter():
    errors: list[BaseException] = []
    m = Meter(MeterConfig(store=":memory:", flush_interval=0.05, on_error=errors.append))
    m.errors = errors
    yield m
    m.shutdown()


def _many_tags(n):
    return {f"t{i}": "v" for i in range(n)}


BAD_CALLS = [
    # (what, call, exception, words of the message)
    ("lone surrogate tenant", lambda m: m.for_tenant("acme\ud800"), ValueError, "tenant_id"),
    ("NUL in tenant", lambda m: m.for_tenant("ac\x00me"), ValueError, "tenant_id"),
    ("tenant over 255", lambda m: m.for_tenant("x" * 256), ValueError, "at most 255"),
    ("empty tenant", lambda m: m.for_tenant(""), ValueError, "tenant_id must not be empty"),
    ("bytes tenant", lambda m: m.for_tenant(b"acme"), TypeError, "tenant_id"),
    ("int run_id", lambda m: m.for_tenant("acme", run_id=5), TypeError, "run_id"),
    ("bytes agent_id", lambda m: m.for_tenant("acme", agent_id=b"bot"), TypeError, "agent_id"),
    ("reserved tag", lambda m: m.for_tenant("acme", tags={"Prompt": "x"}), ValueError, "reserved"),
    ("65 tags", lambda m: m.for_tenant("acme", tags=_many_tags(65)), ValueError, "at most 64"),
    ("long tag value", lambda m: m.for_tenant("acme", tags={"k": "v" * 1025}), ValueError, "at most 1024"),
    ("long tag name", lambda m: m.for_tenant("acme", tags={"k" * 129: "v"}), ValueError, "at most 128"),
    ("object tag value", lambda m: m.for_tenant("acme", tags={"k": object()}), TypeError, "tags['k']"),
    ("int tag name", lambda m: m.for_tenant("acme", tags={5: "v"}), TypeError, "tags name"),
    ("set_tenant surrogate", lambda m: m.set_tenant("\udfff"), ValueError, "tenant_id"),
    ("set_tenant int", lambda m: m.set_tenant(7), TypeError, "tenant_id"),
    ("run id", lambda m: m.run(5), TypeError, "run_id"),
    ("cost abc", lambda m: m.track_manually(provider="p", cost_usd="abc"), ValueError, "cost_usd"),
    ("cost bool", lambda m: m.track_manually(provider="p", cost_usd=True), TypeError, "cost_usd"),
    ("cost huge", lambda m: m.track_manually(provider="p", cost_usd=10**15), ValueError, "cost_usd"),
    ("negative tokens", lambda m: m.track_manually(provider="p", input_tokens=-1), ValueError, "input_tokens"),
    ("string tokens", lambda m: m.track_manually(provider="p", input_tokens="12"), TypeError, "input_tokens"),
    ("float tokens", lambda m: m.track_manually(provider="p", output_tokens=1.5), TypeError, "output_tokens"),
    ("bool tokens", lambda m: m.track_manually(provider="p", output_tokens=True), TypeError, "output_tokens"),
    ("huge tokens", lambda m: m.track_manually(provider="p", input_tokens=10**20), ValueError, "10^12"),
    ("usage mapping", lambda m: m.track_manually(provider="p", usage={"cache_read_tokens": -3}), ValueError,
     "cache_read_tokens"),
    ("usage object", lambda m: m.track_manually(provider="p", usage=Usage(input_tokens=2**63)), ValueError,
     "input_tokens"),
    ("usage type", lambda m: m.track_manually(provider="p", usage=[1, 2]), TypeError, "usage"),
    ("manual tenant", lambda m: m.track_manually(provider="p", tenant_id="a\x00"), ValueError, "tenant_id"),
    ("manual run_id", lambda m: m.track_manually(provider="p", run_id=5), TypeError, "run_id"),
    ("manual tags", lambda m: m.track_manually(provider="p", tags={"messages": "x"}), ValueError, "reserved"),
    ("no provider", lambda m: m.track_manually(provider=None), TypeError, "provider"),
    ("long provider", lambda m: m.track_manually(provider="p" * 65), ValueError, "provider"),
    ("long model", lambda m: m.track_manually(provider="p", model="m" * 256), ValueError, "model"),
    ("unit name", lambda m: m.track_manually(provider="p", units={"bad name": 1}), ValueError, "units"),
    ("unit NaN", lambda m: m.track_manually(provider="p", units={"images": float("nan")}), ValueError, "units"),
    ("negative duration", lambda m: m.track_manually(provider="p", duration_ms=-1), ValueError, "duration_ms"),
    ("old timestamp", lambda m: m.track_manually(provider="p", timestamp=datetime(1999, 1, 1, tzinfo=UTC)),
     ValueError, "timestamp"),
    ("future timestamp", lambda m: m.track_manually(
        provider="p", timestamp=datetime.now(UTC) + timedelta(days=3)), ValueError, "timestamp"),
    ("naive timestamp", lambda m: m.track_manually(provider="p", timestamp=datetime(2026, 1, 1)), ValueError,
     "timestamp"),
    ("idempotency surrogate", lambda m: m.track_manually(provider="p", idempotency_key="k\ud800"), ValueError,
     "idempotency_key"),
    ("limit None tenant", lambda m: m.set_limit(None, 5), TypeError, "tenant_id"),
    ("limit bytes tenant", lambda m: m.set_limit(b"acme", 5), TypeError, "tenant_id"),
    ("limit surrogate", lambda m: m.set_limit("a\ud800", 5), ValueError, "tenant_id"),
    ("limit huge", lambda m: m.set_limit("acme", 10**20), ValueError, "limit_usd"),
    ("limit abc", lambda m: m.set_limit("acme", "abc"), ValueError, "limit_usd"),
    ("rate None tenant", lambda m: m.set_rate_limit(None, requests_per_minute=5), TypeError, "tenant_id"),
    ("rate 2**80", lambda m: m.set_rate_limit("acme", requests_per_minute=2**80), ValueError,
     "requests_per_minute"),
    ("tokens 2**80", lambda m: m.set_rate_limit("acme", tokens_per_minute=2**80), ValueError, "tokens_per_minute"),
    ("rate float", lambda m: m.set_rate_limit("acme", requests_per_minute=1.5), TypeError, "requests_per_minute"),
    ("get_limits bytes", lambda m: m.get_limits(b"acme"), TypeError, "tenant_id"),
    ("spend bytes", lambda m: m.spend(b"acme"), TypeError, "tenant_id"),
    ("remove_limit None", lambda m: m.remove_limit(None), TypeError, "tenant_id"),
]


@pytest.mark.parametrize("call, error, words", [b[1:] for b in BAD_CALLS], ids=[b[0] for b in BAD_CALLS])
def test_bad_values_are_refused_at_the_api_boundary(meter, call, error, words):
    with pytest.raises(error, match=words.replace("[", r"\[").replace("^", r"\^")):
        call(meter)
    assert meter.flush(5)
    assert meter.stats()["recorded"] == 0 and meter.stats()["faults"] == 0 and not meter.errors


def test_what_the_agent_takes_the_server_takes(meter):
    """Values at every bound the agent accepts make an event the server's validation accepts."""
    validation = pytest.importorskip("tollmeter.server.validation")
    tags = {f"{i:03d}" + "k" * 125: "v" * 1024 for i in range(64)}
    event = meter.track_manually(
        provider="p" * 64, model="m" * 255, endpoint="e" * 64, input_tokens=10**12, output_tokens=0,
        usage={"cache_read_tokens": 10**12}, cost_usd=Decimal("999999999999999.999999999999999"),
        tenant_id="t" * 255, run_id="r" * 255, agent_id="a" * 255, tags=tags, duration_ms=1e9,
        units={"images": 3, "audio_seconds": 1.5}, request_id="q" * 255, error="E" * 255,
        timestamp=datetime.now(UTC) + timedelta(hours=23))
    checked = validation.validate_event(event.to_dict(), datetime.now(UTC))
    assert checked["usage"]["input_tokens"] == 10**12 and len(checked["tags"]) == 64
    with meter.for_tenant("acme", tags={"n": 5, "ok": True, "rate": 0.5}) as scope:  # numbers taken as text
        assert dict(scope.tags) == {"n": "5", "ok": "True", "rate": "0.5"}


def test_scopes_merged_past_64_tags_are_refused(meter):
    with meter.for_tenant("acme", tags=_many_tags(40)):
        with pytest.raises(ValueError, match="at most 64"):
            with meter.for_tenant("acme", tags={f"u{i}": "v" for i in range(30)}):
                pass


# -- what providers report --------------------------------------------------------------------


@pytest.mark.sdk
def test_an_absurd_token_count_is_dropped_and_reported_not_the_batch(http_mock):
    bodies = [O.CHAT_PLAIN] * 19 + [{**O.CHAT_PLAIN, "usage": {**O.CHAT_PLAIN["usage"], "prompt_tokens": 10**20}}]
    http_mock.post("https://api.openai.com/v1/chat/completions").mock(
        side_effect=[httpx.Response(200, json=b, headers=O.HEADERS) for b in bodies])
    events, errors = [], []
    meter = Meter(MeterConfig(store=":memory:", flush_interval=5, max_batch_size=100, on_event=events.append,
                              on_error=errors.append))
    meter.patch("openai")
    try:
        client = openai.OpenAI(api_key="k", max_retries=0)
        with meter.for_tenant("acme"):
            for _ in bodies:
                client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert meter.flush(10)
        assert meter._limits.store.count_events() == 20  # the whole batch is stored
        absurd = events[-1]
        assert absurd.usage.input_tokens is None and absurd.usage.output_tokens == O.CHAT_PLAIN["usage"][
            "completion_tokens"]
        assert all(e.usage.input_tokens == O.CHAT_PLAIN["usage"]["prompt_tokens"] for e in events[:-1])
        [error] = errors
        assert isinstance(error, ValueError) and "input_tokens=100000000000000000000" in str(error)
        assert meter.stats()["faults"] == 1 and meter.stats()["rejected"] == 0
    finally:
        meter.shutdown()


def test_provider_values_out_of_bounds_are_repaired():
    event = LLMEvent(provider="openai", model="m" * 300 + "\x00", finish_reason="stop\ud800",
                     usage=Usage(input_tokens=-1, output_tokens=10**12 + 1, cache_read_tokens=5, reasoning_tokens=2.5),
                     tool_calls=2**40, provider_cost_usd=Decimal("1e20"), units={"images": -1, "ok": 2})
    problems = rules.repair_event(event)
    assert event.usage == Usage(cache_read_tokens=5)
    assert len(event.model) == 255 and "\x00" not in event.model and event.finish_reason == "stop\ufffd"
    assert event.tool_calls is None and event.provider_cost_usd is None and event.units == {"ok": 2}
    assert len(problems) == 8  # three counts, two texts, the tool calls, the cost, the units
    assert rules.repair_event(LLMEvent(provider="openai", usage=Usage(input_tokens=10**12))) == []


# -- the embedded store: one bad event is set aside, the rest stored --------------------------


def test_a_batch_the_store_refuses_is_stored_event_by_event():
    errors: list[BaseException] = []
    meter = Meter(MeterConfig(store=":memory:", flush_interval=0.05, on_error=errors.append, pricing=False))
    try:
        _store_one_by_one(meter, errors)
    finally:
        meter.shutdown()


def _store_one_by_one(meter, errors):
    meter.set_limit("acme", 1000, frequency="total")
    now = datetime.now(UTC)

    def event(**fields):
        return LLMEvent(**{"provider": "openai", "model": "gpt-4o", "tenant_id": "acme",
                           "cost_usd": Decimal("0.01"), "priced": True, "timestamp": now, **fields})

    batch = [event() for _ in range(18)]
    # Values that no longer get past the API or the provider bounds, put straight into the batch.
    batch.insert(5, event(usage=Usage(input_tokens=10**20)))
    batch.insert(12, event(tenant_id="bad\ud800"))
    for item in batch:
        meter._pipeline.submit(item)
    assert meter.flush(10)
    store = meter._limits.store
    assert store.count_events() == 18
    assert meter.stats()["rejected"] == 2
    refused = [e for e in errors if isinstance(e, RejectedEvent)]
    assert {r.event["event_id"] for r in refused} == {batch[5].event_id, batch[12].event_id}
    assert all(r.reason for r in refused) and "OverflowError" in refused[0].reason
    # The set-aside event of acme still counts against its limit; the rest through their rows.
    [status] = meter.spend("acme")
    assert status.spent_usd == Decimal("0.19")
    # The meter goes on: the next batch is stored whole.
    meter.track_manually(provider="p", model="m", input_tokens=1, tenant_id="acme")
    assert meter.flush(10) and store.count_events() == 19
