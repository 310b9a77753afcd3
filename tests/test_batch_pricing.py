"""The server's batch pricing (server/pricing.py BatchPricing, pricing/fixedpoint.py) gives every
event the price fields `price_on_arrival` gives it (the Decimal way, one event at a time):
the same cost, exponent included, on generated usage, models and rate cards."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tollmeter.pricing.fixedpoint import FixedPointSheet
from tollmeter.pricing.pricer import Pricer
from tollmeter.pricing.ratecard import RateCard
from tollmeter.pricing.rates import RateSheet, usage_counts
from tollmeter.events import Usage
from tollmeter.server.pricing import BatchPricing, price_on_arrival

#: Prices with many digits, a discount, a per-request fee, a tier, a price of 0.
CARD = RateCard.load({"models": [
    {"model": "odd-digits", "provider": "self-hosted", "input_mtok": "0.123456789", "output_mtok": "7.77",
     "cache_read_mtok": "0.0125", "requests_kcount": "0.4"},
    {"model": "gpt-4o", "provider": "self-hosted", "discount": 0.15},
    {"model": "free-ish", "provider": "self-hosted", "input_mtok": "0", "output_mtok": "0.000000001"},
    {"model": "tiered", "provider": "self-hosted", "input_mtok": {"base": 1, "tiers": [{"start": 1000, "price": 2}]},
     "output_mtok": 3},
]})
PRICER = Pricer(CARD)
#: (provider, model, request model): bundled prices, a gateway, a rate card, unknown models.
MODELS = [
    ("openai", "gpt-4o-2024-08-06", "gpt-4o"), ("anthropic", "claude-sonnet-4-5", None),
    ("openai", "o3-mini", None), ("google", "gemini-2.5-pro", None), ("deepseek", "deepseek-chat", None),
    ("self-hosted", "odd-digits", None), ("self-hosted", "gpt-4o", None), ("self-hosted", "free-ish", None),
    ("self-hosted", "tiered", None), ("openai", "no-such-model", None), ("self-hosted", None, "odd-digits"),
    ("openai", "gpt-4o-audio-preview", None),
]
USAGE_NAMES = ["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
               "cache_write_1h_tokens", "reasoning_tokens", "tool_use_prompt_tokens", "input_audio_tokens",
               "accepted_prediction_tokens"]
counts = st.one_of(st.integers(0, 3_000), st.integers(0, 10**12), st.sampled_from([0, 10, 1000, 10**6, 10**12]))
START = datetime(2026, 12, 5, tzinfo=timezone.utc)

events = st.builds(
    lambda model, usage, minute, tier, error, cost, searches: {
        "event_id": "e", "timestamp": START + timedelta(seconds=minute), "provider": model[0], "model": model[1],
        "request_model": model[2], "usage": usage, "service_tier": tier, "error": error, "partial": False,
        "provider_cost_usd": cost, "web_search_requests": searches, "priced": False, "cost_usd": None},
    st.sampled_from(MODELS), st.dictionaries(st.sampled_from(USAGE_NAMES), counts, max_size=6),
    st.integers(0, 150), st.sampled_from([None, None, "flex"]), st.sampled_from([None, None, "rate_limited"]),
    st.sampled_from([None, None, None, Decimal("0.25")]), st.sampled_from([None, None, 0, 2]),
)

FIELDS = ("cost_usd", "priced", "price_source", "price_model", "computed_cost_usd")


def _fields(event):
    return {name: (event.get(name), event[name].as_tuple() if isinstance(event.get(name), Decimal) else None)
            for name in FIELDS}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events, min_size=1, max_size=12))
def test_a_batch_is_priced_as_each_event_alone(batch):
    pricing = BatchPricing(PRICER)
    for event in batch:
        alone, together = dict(event), dict(event)
        assert price_on_arrival(PRICER, alone) == pricing.price(together)
        assert _fields(together) == _fields(alone)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(MODELS[:9]), st.dictionaries(st.sampled_from(USAGE_NAMES[:7]), counts, min_size=1))
def test_fixed_point_cost_is_the_decimal_cost(model, usage):
    match, _ = PRICER.match_counts(model[0], model[1], {"requests": 1}, timestamp=START, service_tier=None,
                                   request_model=model[2])
    if match is None:
        return
    counts_ = usage_counts(Usage.from_dict(usage))
    fixed = FixedPointSheet(match.sheet).cost(usage)
    try:
        exact = match.sheet.cost(counts_)
    except ValueError:  # InconsistentUsage: the fixed-point sheet declines as well
        assert fixed is None
        return
    if fixed is not None:
        assert fixed == exact and fixed.as_tuple() == exact.as_tuple()


def test_the_common_case_is_priced_in_integers():
    """gpt-4o's token prices and the odd rate card's are exact in integers: the fast path
    answers, rather than handing every event back to the Decimal way."""
    usage = {"input_tokens": 12_345, "output_tokens": 678, "cache_read_tokens": 2_000}
    for provider, model in (("openai", "gpt-4o-2024-08-06"), ("self-hosted", "odd-digits")):
        match, _ = PRICER.match_counts(provider, model, usage_counts(Usage.from_dict(usage)), timestamp=START,
                                       service_tier=None)
        fixed = FixedPointSheet(match.sheet).cost(usage)
        assert fixed is not None and fixed == match.sheet.cost(usage_counts(Usage.from_dict(usage)))


def test_what_would_round_in_decimal_is_left_to_decimal():
    sheet = RateSheet({"input_mtok": Decimal("1.234567890123456789012345678"), "output_mtok": Decimal(1)})
    assert FixedPointSheet(sheet).cost({"input_tokens": 10**12 - 1}) is None
    assert FixedPointSheet(sheet).cost({"input_tokens": 3}) == sheet.cost({"input_tokens": 3, "requests": 1})
