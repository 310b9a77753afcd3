"""The with-a-limit hot path never reserves less than the estimate it stands in for.

Two shortcuts stand in for the walk of a chat request before a call of a tenant with a limit:
the format's quick reader (`quick_chat`: exactly what the walk counts) and, while the tenant's
lease is ample, a table bound (`upper_bound`, which `Guard.admit_plain` reserves: at
least the estimate, priced by the model's rates in whole picodollars). Property tests compare them with the walk on
generated requests; the guard's tests run real SDK calls on the real embedded store.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tollmeter import LimitExceededException, Meter, MeterConfig
from tollmeter.formats.openai_chat import CHAT, quick_chat, sized_chat, walk_chat
from tollmeter.limits.estimate import (RequestFormat, estimate_request, text_bytes, text_tokens,
                                       upper_bound)
from tollmeter.limits.guard import AMPLE_BOUNDS

from .bodies import openai_bodies as O

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: The chat format without its shortcuts: the walk alone.
WALKED = RequestFormat("chat, walked", walk_chat)

#: Any code point, lone surrogates included (the text rule counts them as 3 bytes).
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=120)
TEXT = st.one_of(ANY_TEXT, st.text(st.sampled_from("abc 0123456789{}\t\n.é中😀"), max_size=200))
MODELS = st.sampled_from(["gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3", "claude-sonnet-4-5", "claude-opus-4-7",
                          "claude-3-haiku", "gemini-2.5-pro", "deepseek-chat", "llama-3.3-70b", "mystery"])
CAPS = st.one_of(st.none(), st.integers(-5, 200_000), st.booleans(), st.just("100"), st.just(openai.NOT_GIVEN))
MESSAGE = st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant", "developer"]),
                                 "content": TEXT})
#: Messages that are not plain (the shortcuts step aside for them): more keys, parts, None.
ODD_MESSAGE = st.one_of(
    st.fixed_dictionaries({"role": st.just("user"), "content": TEXT, "name": TEXT}),
    st.fixed_dictionaries({"role": st.just("user"),
                           "content": st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}),
                                               max_size=3)}),
    st.fixed_dictionaries({"role": st.just("assistant"), "content": st.none()}),
    st.fixed_dictionaries({"content": TEXT}),
    TEXT,
)


@st.composite
def chat_requests(draw, odd: bool = False) -> dict:
    message = st.one_of(MESSAGE, ODD_MESSAGE) if odd else MESSAGE
    request = {"model": draw(MODELS), "messages": draw(st.lists(message, max_size=6))}
    for key in ("max_tokens", "max_completion_tokens", "n"):
        if draw(st.booleans()):
            request[key] = draw(CAPS)
    if draw(st.booleans()):
        request["temperature"] = draw(st.floats(0, 2))
    if odd and draw(st.booleans()):
        extra = draw(st.sampled_from(["tools", "response_format", "prediction", "web_search_options",
                                      "functions", "tool_choice"]))
        request[extra] = draw(st.sampled_from([None, [], {"type": "json_object"}, "auto",
                                               [{"type": "function", "function": {"name": "f"}}],
                                               {"type": "content", "content": "predicted"}]))
    return request


@PROPERTY
@given(st.one_of(ANY_TEXT, TEXT))
def test_text_bytes_is_at_least_the_text_rule(s: str) -> None:
    assert text_bytes(s) >= text_tokens(s)


def test_text_bytes_on_the_shortest_strings() -> None:
    """Every one- and two-character string of the rule's kinds of characters (ASCII letters and
    digits, 2-, 3- and 4-byte UTF-8, a lone surrogate): where `4 * len` has least room."""
    samples = ["a", " ", "7", "é", "中", "😀", "\ud800", "\udfff", "\x00", "\x7f", "\u0080", "\uffff"]
    for first in samples:
        assert text_bytes(first) >= text_tokens(first), first
        for second in samples:
            assert text_bytes(first + second) >= text_tokens(first + second), first + second


@PROPERTY
@given(chat_requests(odd=True), st.one_of(st.none(), MODELS))
def test_quick_reader_counts_exactly_what_the_walk_counts(request: dict, model: str | None) -> None:
    assert estimate_request(CHAT, request, model) == estimate_request(WALKED, request, model)


@PROPERTY
@given(chat_requests())
def test_quick_reader_takes_every_plain_request(request: dict) -> None:
    assert quick_chat(request) is not None and sized_chat(request) is not None


@PROPERTY
@given(chat_requests(odd=True))
def test_size_reader_counts_at_least_the_quick_reader(request: dict) -> None:
    """The same requests; text at least the text rule's; frame, cap and choices the same."""
    quick, sized = quick_chat(request), sized_chat(request)
    assert (quick is None) == (sized is None)
    if quick is not None:
        assert sized[0] >= quick[0] and sized[1:] == quick[1:]


@PROPERTY
@given(chat_requests(odd=True), st.one_of(st.none(), MODELS))
def test_upper_bound_is_at_least_the_estimate(request: dict, model: str | None) -> None:
    bound = upper_bound(CHAT, request, model)
    if bound is None:
        return
    estimate = estimate_request(WALKED, request, model)
    input_tokens, output_tokens = bound
    assert input_tokens >= estimate.input_tokens and output_tokens >= estimate.output_tokens


def test_upper_bound_steps_aside_for_what_is_not_plain() -> None:
    plain = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    assert upper_bound(CHAT, plain, "gpt-4o") == (19, 16_384)  # 2 bytes + 5 + 12 tokens
    assert upper_bound(CHAT, plain, None) is None  # no model: estimated (it may name one)
    for odd in ({**plain, "tools": [{"type": "web_search_preview"}]},
                {**plain, "web_search_options": {}},
                {**plain, "prediction": {"type": "content", "content": "x"}},
                {**plain, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}]},
                {**plain, "messages": ({"role": "user", "content": "hi"},)}):
        assert upper_bound(CHAT, odd, "gpt-4o") is None, odd
    assert upper_bound(CHAT, {**plain, "n": 3, "max_tokens": 100}, "gpt-4o") == (19, 300)


# -- the guard, on real calls ----------------------------------------------------------------

CHAT_URL = "https://api.openai.com/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
PLAIN_COST = (19 * Decimal("2.50") + 10 * Decimal(10)) / 1_000_000  # O.CHAT_PLAIN's usage on gpt-4o


@pytest.fixture
def meter():
    # The store's lease answers are waited for (not the default 0.05 s): these tests are about
    # what a call reserves, and on a loaded machine a lease request can take longer than that
    # (the call then decides without the lease, and reserves otherwise).
    meter = Meter(MeterConfig(store=":memory:", flush_interval=0.05, limits_wait=5))
    meter.patch_all()
    yield meter
    meter.shutdown()


def reserved_during_a_call(meter: Meter, http_mock, tenant: str, **request) -> Decimal:
    """What `tenant` had reserved while one call was with the provider."""
    seen = []

    def respond(_):
        seen.append(sum(s.reserved_usd for s in meter.spend(tenant) if s.frequency == "per_month"))
        return httpx.Response(200, json=O.CHAT_PLAIN)

    http_mock.post(CHAT_URL).mock(side_effect=respond)
    with meter.for_tenant(tenant):
        openai.OpenAI(api_key="k", max_retries=0).chat.completions.create(model="gpt-4o", **request)
    assert len(seen) == 1
    assert meter.flush(5)  # settled: the next call reserves alone
    return seen[0]


def worst_case(meter: Meter, request: dict) -> Decimal:
    """The call's estimated worst case, priced as the guard prices it."""
    estimate = estimate_request(WALKED, request, "gpt-4o")
    sheet = meter._limits.guard._sheet("openai", "gpt-4o", None)
    return sheet.worst_case(estimate.input_tokens, estimate.output_tokens)


def test_an_ample_lease_reserves_the_table_bound(meter, http_mock) -> None:
    meter.set_limit("big", 100_000, frequency="per_month")  # a lease of 5%: ample
    request = {"messages": MESSAGES, "max_tokens": 1000}
    reserved_during_a_call(meter, http_mock, "big", **request)  # the first call asks for the lease
    reserved = reserved_during_a_call(meter, http_mock, "big", **request)
    bound_tokens = upper_bound(CHAT, {"model": "gpt-4o", **request}, "gpt-4o")
    assert bound_tokens == (47, 1000)  # 30 bytes + 5 + 12 tokens
    sheet = meter._limits.guard._sheet("openai", "gpt-4o", None)
    assert reserved == sheet.worst_case(*bound_tokens)
    assert reserved >= worst_case(meter, {"model": "gpt-4o", **request})
    assert meter.flush(5)
    status = next(s for s in meter.spend("big") if s.frequency == "per_month")
    assert status.reserved_usd == 0 and status.spent_usd == 2 * PLAIN_COST  # settled at the real cost


def test_a_lease_short_of_ample_reserves_the_estimate(meter, http_mock) -> None:
    # A $0.50 limit leases at most $0.50: fewer than AMPLE_BOUNDS bounds of a 16,384-token answer.
    meter.set_limit("small", Decimal("0.5"), frequency="per_month")
    request = {"messages": MESSAGES}
    for _ in range(2):
        reserved = reserved_during_a_call(meter, http_mock, "small", **request)
        assert reserved == worst_case(meter, {"model": "gpt-4o", **request})
    assert AMPLE_BOUNDS * worst_case(meter, {"model": "gpt-4o", **request}) > Decimal("0.5")


def test_a_service_tier_given_as_a_str_enum_is_reserved_at_its_own_prices(meter, http_mock) -> None:
    """`service_tier=Tier.PRIORITY`, a `StrEnum` (a str, but not of type str): the call reserves
    at least its worst case at priority prices (1.7 times gpt-4o's default ones), not at the
    default tier's (the first look once took any tier that is not of type str for none)."""
    from enum import StrEnum

    class Tier(StrEnum):
        PRIORITY = "priority"

    meter.set_limit("big", 100_000, frequency="per_month")  # a lease of 5%: ample
    reserved_during_a_call(meter, http_mock, "big", messages=MESSAGES)  # the first call asks for the lease
    request = {"messages": MESSAGES, "max_tokens": 1000, "service_tier": Tier.PRIORITY}
    reserved = reserved_during_a_call(meter, http_mock, "big", **request)
    estimate = estimate_request(WALKED, {"model": "gpt-4o", **request}, "gpt-4o")
    guard = meter._limits.guard
    priority, default = guard._sheet("openai", "gpt-4o", "priority"), guard._sheet("openai", "gpt-4o", None)
    assert reserved >= priority.worst_case(estimate.input_tokens, estimate.output_tokens)
    assert priority.worst_case(1, 1) > default.worst_case(1, 1)


def test_requests_that_are_not_plain_reserve_their_estimate(meter, http_mock) -> None:
    meter.set_limit("big", 100_000, frequency="per_month")
    reserved_during_a_call(meter, http_mock, "big", messages=MESSAGES)
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    request = {"messages": MESSAGES, "tools": tools, "max_tokens": 10}
    reserved = reserved_during_a_call(meter, http_mock, "big", **request)
    assert reserved == worst_case(meter, {"model": "gpt-4o", **request})


def test_a_refusal_is_decided_on_the_estimate(http_mock) -> None:
    """A call that does not fit is refused on its estimate, never on a table bound."""
    meter = Meter(MeterConfig(store=":memory:", flush_interval=0.05, reservation="worst_case"))
    meter.patch_all()
    try:
        meter.set_limit("tiny", Decimal("0.01"), frequency="per_month")
        route = http_mock.post(CHAT_URL).respond(json=O.CHAT_PLAIN)
        with meter.for_tenant("tiny"), pytest.raises(LimitExceededException) as refused:
            openai.OpenAI(api_key="k", max_retries=0).chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert route.call_count == 0
        assert refused.value.estimated_cost_usd == worst_case(meter, {"model": "gpt-4o", "messages": MESSAGES})
    finally:
        meter.shutdown()


def test_threads_on_table_bounds_settle_every_call_exactly(meter, http_mock) -> None:
    meter.set_limit("big", 100_000, frequency="per_month")
    route = http_mock.post(CHAT_URL).respond(json=O.CHAT_PLAIN)
    c = openai.OpenAI(api_key="k", max_retries=0)
    errors = []

    def calls() -> None:
        try:
            with meter.for_tenant("big"):
                for _ in range(25):
                    c.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=100)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=calls) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and route.call_count == 200
    assert meter.flush(10)
    status = next(s for s in meter.spend("big") if s.frequency == "per_month")
    assert status.reserved_usd == 0 and status.spent_usd == 200 * PLAIN_COST


@PROPERTY
@given(st.decimals(min_value=0, max_value=200, places=7), st.decimals(min_value=0, max_value=800, places=7),
       st.one_of(st.none(), st.decimals(min_value=0, max_value=50, places=6)),
       st.integers(0, 2_000_000), st.integers(0, 200_000))
def test_the_table_bound_never_prices_below_the_worst_case(input_mtok, output_mtok, requests_kcount,
                                                            input_tokens, output_tokens) -> None:
    """`PlainBounds` holds a sheet's rates as whole picodollars per token, each rounded up: the
    amount `admit_plain` reserves is at least the sheet's own worst case, rounded up, and equal
    to it when every rate is a whole number of picodollars (prices in whole micro-dollars per
    million tokens, every listed one)."""
    from tollmeter.limits import picos
    from tollmeter.limits.guard import PlainBounds
    from tollmeter.pricing.rates import RateSheet

    prices = {"input_mtok": input_mtok, "output_mtok": output_mtok}
    if requests_kcount is not None:
        prices["requests_kcount"] = requests_kcount
    sheet = RateSheet(prices)
    bounds = PlainBounds((1, 1, 0, 4096), sheet.worst_case_rates, ("openai", "m"))
    amount = bounds.amount((input_tokens, output_tokens))
    exact = picos.up(sheet.worst_case(input_tokens, output_tokens))
    assert amount >= exact
    if all(picos.up(rate) == picos.down(rate) for rate in sheet.worst_case_rates):
        assert amount == exact
