"""The event schema: the wire form, usage helpers, manual tracking."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from tollmeter import LLMEvent, Meter, MeterConfig, Usage
from tollmeter.events import new_event_id


def test_to_dict_is_json_safe_with_exact_money():
    event = LLMEvent(
        provider="openrouter", model="anthropic/claude-sonnet-4", endpoint="chat.completions",
        usage=Usage(input_tokens=1450, output_tokens=312, cache_read_tokens=1024),
        tenant_id="acme", tags={"plan": "pro"}, timestamp=datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc),
        provider_cost_usd=Decimal("0.0062652"), cost_usd=Decimal("0.00612"),
    )
    wire = json.loads(json.dumps(event.to_dict()))
    assert wire["usage"] == {"input_tokens": 1450, "output_tokens": 312, "cache_read_tokens": 1024}
    assert wire["provider_cost_usd"] == "0.0062652" and wire["cost_usd"] == "0.00612"
    assert wire["timestamp"] == "2026-11-26T12:00:00+00:00"
    assert wire["tags"] == {"plan": "pro"} and wire["schema_version"] == 1
    assert wire["computed_cost_usd"] is None
    assert not any(key in wire for key in ("prompt", "messages", "content", "completion", "input", "output"))


def test_unreported_counts_are_none_and_left_out():
    usage = Usage(input_tokens=10, output_tokens=0)
    assert usage.to_dict() == {"input_tokens": 10, "output_tokens": 0}
    assert usage.reasoning_tokens is None and usage.total_tokens == 10
    assert Usage().total_tokens is None and Usage().is_empty()
    assert Usage(input_tokens=100, cache_read_tokens=60, cache_write_tokens=30).uncached_input_tokens == 10
    assert Usage.from_dict({"input_tokens": 5, "cache_read_tokens": None, "bogus": 1}) == Usage(input_tokens=5)


def test_event_ids_are_unique_v4_uuids():
    ids = {new_event_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(uuid.UUID(i).version == 4 for i in list(ids)[:100])


def test_track_manually_uses_the_scope_and_takes_the_cost_as_billed():
    events = []
    meter = Meter(MeterConfig(on_event=events.append, flush_interval=0.01))
    with meter.for_tenant("acme", run_id="r1"):
        event = meter.track_manually(provider="serpapi", endpoint="search", cost_usd="0.005",
                                     units={"searches": 1})
        meter.track_manually(provider="vllm", model="llama-3.1-70b", input_tokens=812, output_tokens=95,
                             tenant_id="globex")
    assert meter.flush(5)
    assert events[0] is event
    assert (event.tenant_id, event.run_id, event.provider_cost_usd) == ("acme", "r1", Decimal("0.005"))
    assert (event.cost_usd, event.priced, event.price_source) == (Decimal("0.005"), True, "manual")
    assert (events[1].tenant_id, events[1].run_id, events[1].usage.input_tokens) == ("globex", None, 812)
    with pytest.raises(ValueError):
        meter.track_manually(provider="x", cost_usd="-1")
    meter.shutdown()
