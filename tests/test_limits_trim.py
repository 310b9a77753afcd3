"""A short lease's finished calls cut to what they used (`Guard.trim_finished`).

The call that leaves its tenant's lease short cuts, as it ends and on its own thread, the
reservations of the tenant's finished plain calls to their input and output tokens priced at
the model's highest token rates: at least what each is settled at, so the lease has its room
back whatever the settling thread and the worker are doing. Settlement then replaces the cut
reservations by what the calls cost, exactly as before.
"""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion

from tollmeter import Meter, MeterConfig
from tollmeter.call_hooks import used_tokens as call_used_tokens
from tollmeter.formats.openai_chat import CHAT, read_usage, usage_of, used_tokens
from tollmeter.limits import picos
from tollmeter.limits.estimate import upper_bound
from tollmeter.limits.guard import AMPLE_BOUNDS, LEASE_CALLS, WAKE_CALLS
from tollmeter.pricing.pricer import Pricer
from tollmeter.pricing.rates import usage_counts

from .bodies import openai_bodies as O
from .test_limits_hot_path import CHAT_URL, MESSAGES, call, first_looks, settlements

PRICER = Pricer()


def cut_of(usage, model: str, tier: str | None = None) -> int:
    """What `trim_finished` cuts a call of `model` with `usage` (an SDK usage object) to."""
    rates = PRICER.match("openai", model, service_tier=tier).sheet.most_per_token()
    tokens = used_tokens(read_usage, usage)
    assert rates is not None and tokens is not None
    return sum(picos.up(rate) * n for rate, n in zip(rates, (*tokens, 1)))


def exact_cost(usage, model: str, tier: str | None = None) -> int:
    """What the call is settled at: its usage as the worker reads it, priced exactly."""
    sheet = PRICER.match("openai", model, service_tier=tier).sheet
    return picos.up(sheet.cost(usage_counts(usage_of(usage))))


@pytest.mark.parametrize("body", ["CHAT_PLAIN", "CHAT_CACHED", "CHAT_REASONING", "CHAT_AUDIO", "CHAT_PREDICTION",
                                  "CHAT_TOOL_CALLS", "CHAT_FLEX"])
def test_a_cut_is_at_least_what_the_call_is_settled_at(body: str) -> None:
    """The cut (input and output tokens at the model's highest token rates) is never below the
    call's exact cost, for each realistic response body: cache reads, reasoning, audio,
    predictions, tools, the flex tier."""
    response = ChatCompletion.model_validate(getattr(O, body))
    model, tier = response.model, response.service_tier
    tier = None if tier in (None, "default") else tier
    if body == "CHAT_AUDIO":  # audio rates may come from the supplement: not cut
        assert used_tokens(read_usage, response.usage) is None
        return
    assert cut_of(response.usage, model, tier) >= exact_cost(response.usage, model, tier) > 0


MODELS = ["gpt-4o", "gpt-4o-mini", "o3", "gpt-4o-audio-preview", "gpt-4.1", "o4-mini"]


@st.composite
def chat_usages(draw) -> dict:
    """An OpenAI chat `usage` as the API sends it (details inside their totals), sometimes with
    reasoning left out of the completion count but in the total (Gemini's compatible endpoint)."""
    prompt = draw(st.integers(0, 2_000_000))
    completion = draw(st.integers(0, 200_000))
    cached = draw(st.integers(0, prompt))
    audio_in = draw(st.integers(0, prompt - cached))
    reasoning = draw(st.integers(0, completion))
    audio_out = draw(st.integers(0, completion - reasoning))
    usage: dict = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": audio_in},
        "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": audio_out,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }
    if draw(st.booleans()) and reasoning:  # reasoning reported apart from the completion count
        usage["completion_tokens"] = completion - reasoning
    return usage


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(usage=chat_usages(), model=st.sampled_from(MODELS), as_object=st.booleans())
def test_no_usage_is_cut_below_its_exact_cost(usage: dict, model: str, as_object: bool) -> None:
    from openai.types import CompletionUsage

    value = CompletionUsage.model_validate(usage) if as_object else usage
    details = usage["prompt_tokens_details"], usage["completion_tokens_details"]
    if any(part["audio_tokens"] for part in details):  # audio: not cut at all
        assert used_tokens(read_usage, value) is None
    else:
        assert cut_of(value, model) >= exact_cost(value, model)


@settings(max_examples=300, deadline=None)
@given(usage=st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                          lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.sampled_from(["prompt_tokens", "completion_tokens", "total_tokens",
                                                             "cost", "x"]), inner, max_size=5),
                          max_leaves=12))
def test_what_a_call_used_is_read_from_any_usage_without_raising(usage) -> None:
    """Outside input: any JSON where the usage was gives two counts or None, never an error."""
    used = used_tokens(read_usage, usage)
    assert used is None or (len(used) == 2 and all(type(n) is int and n >= 0 for n in used))


def test_only_the_formats_own_usage_and_a_usage_without_a_cost_of_its_own_are_read() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    assert used_tokens(read_usage, usage) == (10, 5)
    assert used_tokens(lambda call, value: None, usage) is None  # another reader's usage
    assert used_tokens(read_usage, {**usage, "cost": 0.01}) is None  # OpenRouter: charged its cost
    from openai.types import CompletionUsage

    assert used_tokens(read_usage, CompletionUsage.model_validate({**usage, "cost": 0.01})) is None
    assert used_tokens(read_usage, {**usage, "total_tokens": 40}) == (10, 30)  # reasoning outside
    assert used_tokens(read_usage, {"prompt_tokens": 10}) is None
    audio = {**usage, "prompt_tokens_details": {"audio_tokens": 4, "cached_tokens": 0}}
    assert used_tokens(read_usage, audio) is None  # audio rates may come from the supplement
    assert used_tokens(read_usage, {**usage, "completion_tokens_details": {"audio_tokens": 2}}) is None
    assert used_tokens(read_usage, {**audio, "prompt_tokens_details": {"audio_tokens": 0}}) == (10, 5)


def short_meter(http_mock, body: dict = O.CHAT_PLAIN) -> Meter:
    """A $4 limit whose worker waits a minute between batches, and whose settling thread is
    held up (as a busy caller holds it up: the interpreter lock passes it over): only the
    cuts can give the lease its room back."""
    meter = Meter(MeterConfig(store=":memory:", flush_interval=60, limits_wait=30))
    meter.patch_all()
    http_mock.post(CHAT_URL).respond(json=body)
    meter.set_limit("t", 4, frequency="per_month")
    call("t", meter, messages=MESSAGES, max_tokens=1000)  # asks for the lease
    assert meter.flush(10)
    meter._limits.guard._settler.submit = lambda budget: True  # handed over, never run
    return meter


def test_the_short_calls_cut_keeps_the_lease_ample_while_nothing_settles(http_mock) -> None:
    """Three leases' worth of calls, nothing settled meanwhile: every call that leaves the lease
    short cuts the finished calls before it, so each call reserves its table bound at the
    first look (the lease never falls below AMPLE_BOUNDS of them) and none goes the full way.
    Settled, the cut reservations give the exact spend."""
    meter = short_meter(http_mock)
    try:
        guard = meter._limits.guard
        budget = guard._budgets["t"]
        request = {"model": "gpt-4o", "messages": MESSAGES, "max_tokens": 1000}
        amount = picos.up(guard._sheet("openai", "gpt-4o", None).worst_case(*upper_bound(CHAT, request, "gpt-4o")))
        cut = cut_of(ChatCompletion.model_validate(O.CHAT_PLAIN).usage, "gpt-4o")
        assert cut < amount
        threads, checked = settlements(meter)
        looks = first_looks(meter)
        remaining = budget.remaining
        trims = []
        trim = guard.trim_finished

        def trimming(*args):
            trims.append(trim(*args))
            return trims[-1]

        guard.trim_finished = trimming
        calls = 3 * LEASE_CALLS
        for _ in range(calls):
            call("t", meter, messages=MESSAGES, max_tokens=1000)
            assert budget.free >= AMPLE_BOUNDS * amount
        assert not checked and not threads  # all at the first look; nothing settled
        assert [look.amount for look in looks] == [amount] * calls  # the table bound every time
        assert len(trims) >= 2 and all(trims)
        assert calls - sum(trims) < WAKE_CALLS  # only the calls after the last cut hold their bounds
        assert budget.reserved == sum(trims) * cut + (calls - sum(trims)) * amount
        assert budget.remaining == remaining  # nothing spent yet: only reserved less
        assert meter.flush(10)
        assert guard.reserved("t") == 0
        spent = remaining - budget.remaining
        assert spent == calls * exact_cost(ChatCompletion.model_validate(O.CHAT_PLAIN).usage, "gpt-4o")
    finally:
        meter.shutdown()


def test_a_call_whose_usage_is_not_known_keeps_its_whole_reservation(http_mock) -> None:
    """A response without usage (and one that reports a cost of its own): nothing to cut by,
    so the short call's cut leaves the reservations whole; settlement still takes them."""
    meter = short_meter(http_mock, O.CHAT_NO_USAGE)
    try:
        guard = meter._limits.guard
        budget = guard._budgets["t"]
        request = {"model": "gpt-4o", "messages": MESSAGES, "max_tokens": 1000}
        amount = picos.up(guard._sheet("openai", "gpt-4o", None).worst_case(*upper_bound(CHAT, request, "gpt-4o")))
        short = next(k for k in range(1, LEASE_CALLS) if budget.free - k * amount < WAKE_CALLS * amount)
        for _ in range(short):
            call("t", meter, messages=MESSAGES, max_tokens=1000)
        assert budget.reserved == short * amount  # the short call's cut found nothing to read
        looked = []
        trim = guard.trim_finished
        guard.trim_finished = lambda *args: looked.append(trim(*args)) or looked[-1]
        for _ in range(3):  # the calls after it: not marked again until their tenant's are settled
            call("t", meter, messages=MESSAGES, max_tokens=1000)
        assert budget.waking is True and not looked
        assert budget.reserved == (short + 3) * amount
        assert meter.flush(10) and guard.reserved("t") == 0
        assert budget.waking is False and not budget.open  # settled: marked again, nothing held
    finally:
        meter.shutdown()


def test_a_failed_or_cut_short_call_is_not_read() -> None:
    """`call_hooks.used_tokens`: a call that failed or was cut short, or that reports web searches,
    other units or a cost of its own, keeps its reservation whole."""
    from tollmeter.events import Usage
    from tollmeter.instrument.call import Call
    from tollmeter.instrument.openai import ChatCompletions

    endpoint = ChatCompletions()

    class Hooks:
        settings = None

    def finished(**fields) -> Call:
        made = Call(Hooks(), endpoint, None)
        made.deferred = (read_usage, {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15})
        for name, value in fields.items():
            setattr(made, name, value)
        return made

    assert call_used_tokens(finished()) == (10, 5, None, None)
    assert call_used_tokens(finished(request_model="gpt-4o")) == (10, 5, "gpt-4o", None)
    answered = finished(request_model="gpt-4o", model="gpt-4o-2024-05-13", service_tier="priority")
    assert call_used_tokens(answered) == (10, 5, "gpt-4o-2024-05-13", "priority")  # what its event is priced by
    for fields in ({"error": "APITimeoutError"}, {"partial": True}, {"web_search_requests": 1},
                   {"units": {"seconds": 3.0}}, {"provider_cost_usd": Decimal("0.01")}):
        assert call_used_tokens(finished(**fields)) is None
    read = finished(deferred=None, usage=Usage(input_tokens=7, output_tokens=3))  # the worker read it
    assert call_used_tokens(read) == (7, 3, None, None)
    assert call_used_tokens(finished(deferred=None, usage=Usage(input_tokens=7, output_tokens=3,
                                                                 input_audio_tokens=2))) is None
    assert call_used_tokens(finished(deferred=None, usage=None)) is None  # being read right now


def test_a_cut_reservation_is_not_read_again(http_mock) -> None:
    """Each finished call is read once: a cut reservation leaves the plain list for the open
    set, where settlement finds it as any other."""
    meter = short_meter(http_mock)
    try:
        guard = meter._limits.guard
        budget = guard._budgets["t"]
        seen: list[object] = []

        def used(record):
            seen.append(record)
            return call_used_tokens(record)

        for _ in range(3):
            call("t", meter, messages=MESSAGES, max_tokens=1000)
        assert guard.trim_finished(budget, used) == 3
        assert guard.trim_finished(budget, used) == 0
        assert len(seen) == 3 and len(set(map(id, seen))) == 3
        assert len(budget.open) == 3 and not budget.fresh
        assert meter.flush(10) and guard.reserved("t") == 0 and not budget.open
    finally:
        meter.shutdown()


@pytest.mark.parametrize("answered, tier", [("gpt-4o-2024-05-13", None), ("gpt-4o-2024-08-06", "priority")])
def test_a_call_answered_by_a_costlier_model_or_tier_is_cut_at_its_prices(http_mock, answered, tier) -> None:
    """Asked for gpt-4o (the bounds' $2.50 / $10 per million), answered by the May 2024 snapshot
    ($5 / $15) or at the priority tier: the cut prices its tokens as its event is priced, so it
    stays at least what the call is settled at, here more than the table bound it reserved at
    the asked model's prices: the reservation is raised to it."""
    body = {**O.CHAT_PLAIN, "model": answered, "service_tier": tier,
            "usage": {"prompt_tokens": 1_000, "completion_tokens": 900, "total_tokens": 1_900}}
    meter = short_meter(http_mock, body)
    try:
        guard = meter._limits.guard
        budget = guard._budgets["t"]
        usage = ChatCompletion.model_validate(body).usage
        request = {"model": "gpt-4o", "messages": MESSAGES, "max_tokens": 1000}
        amount = picos.up(guard._sheet("openai", "gpt-4o", None).worst_case(*upper_bound(CHAT, request, "gpt-4o")))
        short = next(k for k in range(1, LEASE_CALLS) if budget.free - k * amount < WAKE_CALLS * amount)
        for _ in range(short):
            call("t", meter, messages=MESSAGES, max_tokens=1000)
        exact = exact_cost(usage, answered, tier)
        at_request = cut_of(usage, "gpt-4o")
        assert at_request < exact  # the request's prices would understate it
        assert budget.reserved == short * cut_of(usage, answered, tier) >= short * exact
        assert cut_of(usage, answered, tier) > amount  # raised above the table bound
        remaining = budget.remaining
        assert meter.flush(10) and guard.reserved("t") == 0
        assert remaining - budget.remaining == short * exact
    finally:
        meter.shutdown()


def test_the_highest_token_rates_of_a_sheet() -> None:
    """Each side's highest token rate, whatever the kind (a cache write above the input rate,
    reasoning or audio output above the output rate), plus the per-request fee; None when a
    token or request price has tiers (a long-context tier can cost more per token)."""
    from genai_prices.types import Tier, TieredPrices

    from tollmeter.pricing.rates import RateSheet

    sheet = RateSheet({"input_mtok": Decimal("3"), "cache_read_mtok": Decimal("0.3"),
                       "cache_write_mtok": Decimal("3.75"), "output_mtok": Decimal("15"),
                       "output_audio_mtok": Decimal("80"), "requests_kcount": Decimal("2"),
                       "web_searches_kcount": Decimal("10")})
    assert sheet.most_per_token() == (Decimal("3.75") / 1_000_000, Decimal("80") / 1_000_000,
                                      Decimal("2") / 1_000)
    tiered = RateSheet({"input_mtok": TieredPrices(base=Decimal("1.25"), tiers=[Tier(start=200_000, price=Decimal("2.5"))]),
                        "output_mtok": Decimal("10")})
    assert tiered.most_per_token() is None
