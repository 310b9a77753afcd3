"""Pricing: golden cases computed by hand from the providers' published per-million rates.

Each expected cost is written with its arithmetic: (tokens x USD per million) / 1,000,000.
Rates are those of the bundled genai-prices data, which follows the providers' price pages.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from decimal import Decimal

import openai
import pytest

from tollmeter import LLMEvent, Meter, MeterConfig, Usage
from tollmeter.pricing.pricer import Pricer
from tollmeter.pricing.ratecard import RateCard, RateCardError

from .bodies import anthropic_bodies as A
from .bodies import openai_bodies as O
from .conftest import Recorder

NOON = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
M = Decimal(1_000_000)


def priced(provider, model, usage, **fields) -> LLMEvent:
    event = LLMEvent(provider=provider, model=model, request_model=model, usage=usage, timestamp=NOON, **fields)
    Pricer().price(event)
    return event


def test_gpt_4o_with_cached_input():
    # $2.50/M input, $1.25/M cached input, $10.00/M output; 2,006 prompt tokens of which 1,920 cached
    event = priced("openai", "gpt-4o-2024-08-06", Usage(input_tokens=2006, cache_read_tokens=1920, output_tokens=300))
    expected = (Decimal(86) * Decimal("2.50") + Decimal(1920) * Decimal("1.25") + Decimal(300) * Decimal("10")) / M
    assert expected == Decimal("0.005615")
    assert event.cost_usd == expected and event.priced
    assert event.price_model == "openai/gpt-4o" and event.price_source.startswith("genai-prices ")


def test_o3_mini_reasoning_is_output_and_not_counted_twice():
    # $1.10/M input, $4.40/M output; 1,484 completion tokens include the 1,344 reasoning tokens
    event = priced("openai", "o3-mini-2025-01-31",
                   Usage(input_tokens=26, output_tokens=1484, reasoning_tokens=1344))
    assert event.cost_usd == (26 * Decimal("1.10") + 1484 * Decimal("4.40")) / M == Decimal("0.0065582")


def test_claude_cache_reads_and_5_minute_and_1_hour_writes():
    # claude-sonnet-4-6: $3/M input, $0.30/M cache read, $3.75/M 5-min write, $6/M 1-h write, $15/M output.
    # 12 uncached + 48,213 read + 3,070 written (254 for 5 minutes, 2,816 for an hour) = 51,295 input
    usage = Usage(input_tokens=51_295, cache_read_tokens=48_213, cache_write_tokens=3_070,
                  cache_write_1h_tokens=2_816, output_tokens=318)
    event = priced("anthropic", "claude-sonnet-4-6", usage)
    expected = (12 * Decimal(3) + 48_213 * Decimal("0.30") + 254 * Decimal("3.75") + 2_816 * Decimal(6)
                + 318 * Decimal(15)) / M
    assert event.cost_usd == expected == Decimal("0.0371184")


@pytest.mark.parametrize("input_tokens, expected", [
    # at most 200k input tokens: $1.25/M input, $10/M output
    (10_000, (10_000 * Decimal("1.25") + 1_000 * Decimal(10)) / M),
    # above 200k input tokens the whole call is priced at $2.50/M input, $15/M output
    (250_000, (250_000 * Decimal("2.50") + 1_000 * Decimal(15)) / M),
])
def test_gemini_2_5_pro_long_context_tiers(input_tokens, expected):
    event = priced("google", "gemini-2.5-pro", Usage(input_tokens=input_tokens, output_tokens=1_000))
    assert event.cost_usd == expected
    assert expected in (Decimal("0.0225"), Decimal("0.64"))


def test_bedrock_cross_region_model_id():
    # us.anthropic.claude-3-5-sonnet-20241022-v2:0 on Bedrock: $3/M input, $15/M output
    event = priced("aws", "us.anthropic.claude-3-5-sonnet-20241022-v2:0", Usage(input_tokens=1000, output_tokens=500))
    assert event.cost_usd == (1000 * Decimal(3) + 500 * Decimal(15)) / M == Decimal("0.0105")
    assert event.price_model.startswith("aws/")


# OpenRouter's anthropic/claude-sonnet-4: $3/M input, $0.30/M cache read, $15/M output
OPENROUTER_COMPUTED = ((1450 - 1024) * Decimal(3) + 1024 * Decimal("0.30") + 312 * Decimal(15)) / M


def test_openrouter_id_priced_from_its_rates_without_usage_cost():
    event = priced("openrouter", "anthropic/claude-sonnet-4",
                   Usage(input_tokens=1450, cache_read_tokens=1024, output_tokens=312))
    assert event.cost_usd == OPENROUTER_COMPUTED == Decimal("0.0062652")
    assert event.provider_cost_usd is None and event.price_model == "openrouter/anthropic/claude-sonnet-4"


def test_openrouter_usage_cost_wins_and_the_computed_price_stays_beside_it():
    event = priced("openrouter", "anthropic/claude-sonnet-4",
                   Usage(input_tokens=1450, cache_read_tokens=1024, output_tokens=312),
                   provider_cost_usd=Decimal("0.0059"))
    assert (event.cost_usd, event.price_source) == (Decimal("0.0059"), "provider")
    assert event.computed_cost_usd == OPENROUTER_COMPUTED


def test_deepseek_cache_hits():
    # deepseek-chat: $0.27/M cache miss, $0.07/M cache hit, $1.10/M output; 1,216 hits and 73 misses
    event = priced("deepseek", "deepseek-chat", Usage(input_tokens=1289, cache_read_tokens=1216, output_tokens=187))
    assert event.cost_usd == (73 * Decimal("0.27") + 1216 * Decimal("0.07") + 187 * Decimal("1.10")) / M
    assert event.cost_usd == Decimal("0.00031053")


def test_openai_flex_tier_read_from_the_response():
    # o4-mini: $1.10/M input and $4.40/M output; flex is half: $0.55/M and $2.20/M
    usage = Usage(input_tokens=1130, output_tokens=845, reasoning_tokens=576)
    flex = priced("openai", "o4-mini-2025-04-16", usage, service_tier="flex")
    default = priced("openai", "o4-mini-2025-04-16", usage, service_tier="default")
    assert flex.cost_usd == (1130 * Decimal("0.55") + 845 * Decimal("2.20")) / M == Decimal("0.0024805")
    assert default.cost_usd == (1130 * Decimal("1.10") + 845 * Decimal("4.40")) / M == Decimal("0.004961")


def test_web_search_request_fees():
    # claude-sonnet-4-6: $3/M input, $15/M output, and $10 per 1,000 web searches
    event = priced("anthropic", "claude-sonnet-4-6", Usage(input_tokens=18_734, output_tokens=642),
                   web_search_requests=2)
    assert event.cost_usd == (18_734 * Decimal(3) + 642 * Decimal(15)) / M + 2 * Decimal(10) / 1000
    assert event.cost_usd == Decimal("0.085832")


def test_unknown_model_is_unpriced_not_free(caplog):
    pricer = Pricer()
    events = [LLMEvent(provider="openai", model="gpt-9-ultra", usage=Usage(input_tokens=10, output_tokens=5))
              for _ in range(3)]
    with caplog.at_level(logging.WARNING, logger="tollmeter"):
        for event in events:
            pricer.price(event)
    assert all(e.priced is False and e.cost_usd is None for e in events)
    assert events[0].usage.input_tokens == 10  # kept, so that a server can price it later
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "gpt-9-ultra" in warnings[0] and "rate card" in warnings[0]
    assert pricer.unpriced == 3


def test_a_unit_genai_prices_does_not_know_is_unpriced_not_a_fault():
    """`units` are the event's own names: one the price data has never heard of prices nothing
    (no rate covers it), beside tokens that are priced as usual."""
    alone = priced("openai", "gpt-4o", Usage(), units={"characters": 1200})
    assert (alone.priced, alone.cost_usd) == (False, None)
    beside = priced("openai", "gpt-4o", Usage(input_tokens=1000, output_tokens=100), units={"characters": 1200})
    assert beside.priced and beside.cost_usd == (1000 * Decimal("2.50") + 100 * Decimal("10")) / M


def test_self_hosted_models_are_priced_by_a_rate_card_first():
    usage = Usage(input_tokens=1000, output_tokens=100)
    # A server on your network naming a vendor's model (a LiteLLM proxy on localhost:4000) is
    # priced as that model, inferred from its id; an open model it serves is not priced at all.
    bare = priced("self-hosted", "gpt-4o", usage)
    assert bare.priced and bare.price_source.endswith("inferred from the model id")
    assert not priced("self-hosted", "llama-3.1-70b-instruct", usage).priced
    card = RateCard.load({"models": [{"model": "gpt-4o", "provider": "self-hosted",
                                      "input_mtok": "0.10", "output_mtok": "0.40"}]})
    event = LLMEvent(provider="self-hosted", model="gpt-4o", usage=usage)
    Pricer(card).price(event)
    assert event.cost_usd == (1000 * Decimal("0.10") + 100 * Decimal("0.40")) / M


def test_a_call_refused_before_any_usage_billed_nothing():
    event = priced("openai", "gpt-4o", Usage(), error="RateLimitError", status_code=429)
    assert (event.priced, event.cost_usd, event.price_source) == (True, Decimal(0), "nothing billed")


def test_inconsistent_usage_is_unpriced_not_raised():
    event = priced("openai", "gpt-4o", Usage(input_tokens=10, cache_read_tokens=50, output_tokens=1))
    assert not event.priced


# -- rate cards ----------------------------------------------------------------------------------

RATES_YAML = """\
# negotiated with our account team
models:
  - model: gpt-4o*
    provider: openai
    input_mtok: 2.25
    output_mtok: 9.00
    cache_read_mtok: 1.125
  - model: "*"
    provider: anthropic
    discount: 0.15
  - model: ft:gpt-4o-mini:acme:*
    input_mtok: "0.30"
    output_mtok: "1.20"
"""


def test_rate_card_override_wins_over_the_bundled_data(tmp_path):
    path = tmp_path / "rates.yaml"
    path.write_text(RATES_YAML)
    pricer = Pricer(RateCard.load(path))
    event = LLMEvent(provider="openai", model="gpt-4o-2024-08-06", usage=Usage(input_tokens=19, output_tokens=10))
    pricer.price(event)
    # negotiated $2.25/M input and $9.00/M output instead of $2.50 and $10
    assert event.cost_usd == (19 * Decimal("2.25") + 10 * Decimal("9.00")) / M == Decimal("0.00013275")
    assert event.price_source == "rate card rates.yaml:3" and event.price_model == "openai/gpt-4o*"


def test_rate_card_discount_and_fine_tunes(tmp_path):
    path = tmp_path / "rates.yaml"
    path.write_text(RATES_YAML)
    pricer = Pricer(RateCard.load(path))
    claude = LLMEvent(provider="anthropic", model="claude-sonnet-4-6", usage=Usage(input_tokens=1000, output_tokens=100))
    tuned = LLMEvent(provider="openai", model="ft:gpt-4o-mini:acme:support:9xYz", usage=Usage(input_tokens=1000,
                                                                                             output_tokens=100))
    pricer.price(claude)
    pricer.price(tuned)
    # 15% off $3/M input and $15/M output
    assert claude.cost_usd == (1000 * Decimal(3) + 100 * Decimal(15)) * Decimal("0.85") / M
    assert "15% discount" in claude.price_source and claude.price_model == "anthropic/claude-sonnet-4-6"
    assert tuned.cost_usd == (1000 * Decimal("0.30") + 100 * Decimal("1.20")) / M


def test_rate_card_as_json_and_as_a_dict(tmp_path):
    path = tmp_path / "rates.json"
    path.write_text('{"models": [{"model": "my-deployment", "provider": "azure", "input_mtok": 2, "output_mtok": 8}]}')
    for source in (path, {"models": [{"model": "my-deployment", "provider": "azure", "input_mtok": 2,
                                      "output_mtok": 8}]}):
        event = LLMEvent(provider="azure", model="my-deployment", usage=Usage(input_tokens=500, output_tokens=50))
        Pricer(RateCard.load(source)).price(event)
        assert event.cost_usd == (500 * 2 + 50 * 8) / M


def test_tiered_price_in_a_rate_card():
    card = RateCard.load([{"model": "big-ctx", "input_mtok": {"base": 1, "tiers": [{"start": 100_000, "price": 2}]},
                           "output_mtok": 4}])
    small, large = (LLMEvent(provider="x", model="big-ctx", usage=Usage(input_tokens=n, output_tokens=0))
                    for n in (1_000, 150_000))
    Pricer(card).price(small)
    Pricer(card).price(large)
    assert (small.cost_usd, large.cost_usd) == (Decimal(1_000) / M, Decimal(300_000) / M)


@pytest.mark.parametrize("text, message", [
    ("models:\n  - model: gpt-4o\n    input_mtok: cheap\n", r"rates.yaml:2: gpt-4o.input_mtok: expected a number"),
    ("models:\n  - model: gpt-4o\n    inptu_mtok: 2\n", r"rates.yaml:2: gpt-4o: unknown price key 'inptu_mtok'"),
    ("models:\n  - provider: openai\n    input_mtok: 2\n", r"rates.yaml:2: 'model' must be"),
    ("models:\n  - model: x\n    input_mtok: -1\n", r"rates.yaml:2: x.input_mtok: expected a number >= 0"),
    ("models:\n  - model: x\n    discount: 1.5\n", r"discount must be a fraction"),
    ("models:\n  - model: x\n", r"give prices"),
    ("models:\n  - model: x\n   input_mtok: 2\n", r"rates.yaml:3: invalid YAML"),
    ("prices:\n  - model: x\n", r"unknown top-level key 'prices'"),
])
def test_malformed_rate_card_names_the_line_and_key(tmp_path, text, message):
    path = tmp_path / "rates.yaml"
    path.write_text(text)
    with pytest.raises(RateCardError, match=message):
        RateCard.load(path)


def test_malformed_json_rate_card_names_the_line(tmp_path):
    path = tmp_path / "rates.json"
    path.write_text('{"models": [\n  {"model": "x", "input_mtok": 1,}\n]}')
    with pytest.raises(RateCardError, match=r"rates.json:2: invalid JSON"):
        RateCard.load(path)


def test_a_bad_rate_card_fails_at_start_up(tmp_path):
    path = tmp_path / "rates.yaml"
    path.write_text("models:\n  - model: gpt-4o\n    input_mtok: two dollars\n")
    with pytest.raises(RateCardError, match="rates.yaml:2"):
        Meter(MeterConfig(prices=str(path)))


# -- end to end ----------------------------------------------------------------------------------


@pytest.mark.sdk
def test_real_sdk_call_produces_the_right_cost(recorder, http_mock):
    http_mock.post("https://api.openai.com/v1/chat/completions").respond(json=O.CHAT_CACHED, headers=O.HEADERS)
    openai.OpenAI(api_key="k", max_retries=0).chat.completions.create(model="gpt-4o", messages=[
        {"role": "user", "content": "hi"}])
    event = recorder.one()
    assert event.cost_usd == Decimal("0.005615") and event.priced  # the gpt-4o golden case above
    assert recorder.meter.stats()["unpriced"] == 0


@pytest.mark.sdk
def test_real_sdk_call_priced_with_a_rate_card(http_mock):
    import anthropic

    http_mock.post("https://api.anthropic.com/v1/messages").respond(json=A.MESSAGE_CACHED, headers=A.HEADERS)
    rec = Recorder(prices={"models": [{"model": "claude-sonnet-4-6", "input_mtok": 2, "output_mtok": 10,
                                       "cache_read_mtok": "0.2", "cache_write_mtok": "2.5",
                                       "cache_write_1h_mtok": 4}]})
    rec.meter.patch("anthropic")
    try:
        anthropic.Anthropic(api_key="k", max_retries=0).messages.create(
            model=A.MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}])
        event = rec.one()
        # 12 x $2 + 48,213 x $0.20 + 254 x $2.50 + 2,816 x $4 + 318 x $10, per million
        assert event.cost_usd == (12 * 2 + 48_213 * Decimal("0.2") + 254 * Decimal("2.5") + 2_816 * 4 + 318 * 10) / M
        assert event.price_source.startswith("rate card")
    finally:
        rec.meter.shutdown()


def test_pricing_can_be_turned_off():
    events = []
    meter = Meter(MeterConfig(pricing=False, on_event=events.append, flush_interval=0.01))
    meter.track_manually(provider="openai", model="gpt-4o", input_tokens=10, output_tokens=1)
    assert meter.flush(5)
    assert events[0].priced is False and events[0].cost_usd is None
    meter.shutdown()


def test_unpriced_events_are_counted_in_stats():
    meter = Meter(MeterConfig(flush_interval=0.01))
    meter.track_manually(provider="openai", model="no-such-model-xyz", input_tokens=10, output_tokens=1)
    assert meter.flush(10)
    assert meter.stats()["unpriced"] == 1
    meter.shutdown()
