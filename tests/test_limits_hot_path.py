"""The first look-up of a call with a limit (`Guard.admit_plain`), the guard's picodollars, and
leases sized for limits only a few worst cases large.

The guard runs on a real embedded store, its leases granted by the store; SDK calls go through
respx at the transport.
"""

from __future__ import annotations

import time
from decimal import Decimal

import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tollmeter import Meter, MeterConfig
from tollmeter.formats.openai_chat import CHAT
from tollmeter.limits import picos
from tollmeter.limits.estimate import estimate_request, upper_bound
from tollmeter.limits.guard import AMPLE_BOUNDS, LEASE_CALLS, NEEDS_CHECK, URGENT_CALLS

from .bodies import openai_bodies as O
from .test_limits_bound import WALKED, chat_requests

CHAT_URL = "https://api.openai.com/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def meter(http_mock):
    meter = Meter(MeterConfig(store=":memory:", flush_interval=0.05, limits_wait=30))
    meter.patch_all()
    http_mock.post(CHAT_URL).respond(json=O.CHAT_PLAIN)
    yield meter
    meter.shutdown()


def call(tenant: str, meter: Meter, **request) -> None:
    with meter.for_tenant(tenant):
        openai.OpenAI(api_key="k", max_retries=0).chat.completions.create(model="gpt-4o", **request)


# -- picodollars -----------------------------------------------------------------------------

AMOUNTS = st.decimals(min_value=Decimal("-1e15"), max_value=Decimal("1e15"), allow_nan=False, allow_infinity=False,
                      places=None)


@settings(max_examples=500, deadline=None)
@given(AMOUNTS)
def test_picodollars_round_to_the_safe_side(usd: Decimal) -> None:
    up, down = picos.up(usd), picos.down(usd)
    assert type(up) is int and type(down) is int
    assert picos.usd(down) <= usd <= picos.usd(up) and up - down in (0, 1)
    if usd == usd.quantize(Decimal("1e-12")):  # a whole number of picodollars: exact both ways
        assert up == down and picos.usd(up) == usd


def test_picodollars_of_listed_prices_are_exact() -> None:
    # $2.50 and $10 per million tokens (gpt-4o), $0.075 (gemini flash lite): whole picodollars
    for per_million in ("2.50", "10", "0.075", "0.000001"):
        per_token = Decimal(per_million) / 1_000_000
        cost = per_token * 16_384
        assert picos.up(cost) == picos.down(cost) and picos.usd(picos.up(cost)) == cost
    assert str(picos.usd(5 * picos.PER_USD)) == "5" and str(picos.usd(0)) == "0"


# -- the first look-up -----------------------------------------------------------------------


def test_a_tenant_without_a_limit_is_decided_at_the_first_look(meter) -> None:
    call("free", meter, messages=MESSAGES)  # the store is asked once
    guard = meter._limits.guard
    request = {"model": "gpt-4o", "messages": MESSAGES}
    assert guard.admit_plain("free", "openai", "gpt-4o", request, CHAT) is None
    assert guard.admit_plain("unknown", "openai", "gpt-4o", request, CHAT) is NEEDS_CHECK  # never asked


def test_a_rate_limited_tenant_always_goes_the_full_way(meter) -> None:
    meter.set_rate_limit("paced", requests_per_minute=100, tokens_per_minute=None)
    call("paced", meter, messages=MESSAGES)
    request = {"model": "gpt-4o", "messages": MESSAGES}
    assert meter._limits.guard.admit_plain("paced", "openai", "gpt-4o", request, CHAT) is NEEDS_CHECK


def test_the_first_look_reserves_the_table_bound_of_every_plain_request(meter) -> None:
    """Against `estimate.upper_bound` (the same bound, written out) and the walk's estimate,
    on generated requests; what is not plain (or has no model) goes the full way."""
    meter.set_limit("big", 1_000_000, frequency="per_month")
    call("big", meter, messages=MESSAGES)  # the first call asks for the lease
    guard = meter._limits.guard

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.one_of(chat_requests(), chat_requests(odd=True)))
    def check(request: dict) -> None:
        model = request["model"]
        reservation = guard.admit_plain("big", "openai", model, request, CHAT)
        bound = upper_bound(CHAT, request, model)
        if bound is None:
            assert reservation is NEEDS_CHECK
            return
        sheet = guard._sheet("openai", model, None)
        amount = picos.up(sheet.worst_case(*bound))
        if reservation is NEEDS_CHECK:  # too large for the lease to be ample: estimated instead
            assert amount * AMPLE_BOUNDS > guard._budgets["big"].free
            return
        try:
            assert reservation.amount == amount
            estimate = estimate_request(WALKED, request, model)
            assert reservation.amount >= picos.up(sheet.worst_case(estimate.input_tokens, estimate.output_tokens))
            assert reservation.model == ("openai", model)
        finally:
            guard.release(reservation)

    check()
    assert guard.reserved("big") == 0


def test_the_worker_is_woken_once_as_the_lease_falls_below_two_ample_shares(meter) -> None:
    meter.set_limit("mid", 100, frequency="per_month")
    call("mid", meter, messages=MESSAGES, max_tokens=1000)
    assert meter.flush(5)
    guard = meter._limits.guard
    request = {"model": "gpt-4o", "messages": MESSAGES, "max_tokens": 1000}
    budget = guard._budgets["mid"]
    taken, urgent_at = [], []
    while True:
        free = budget.free
        reservation = guard.admit_plain("mid", "openai", "gpt-4o", request, CHAT)
        if reservation is NEEDS_CHECK:
            break
        ample = reservation.amount * AMPLE_BOUNDS
        assert free >= ample
        if reservation.urgent:
            urgent_at.append(free)
        taken.append(reservation)
    assert len(taken) > 2 * AMPLE_BOUNDS
    assert len(urgent_at) == 1 and urgent_at[0] - taken[0].amount < 2 * ample <= urgent_at[0]
    for reservation in taken:
        guard.release(reservation)
    assert guard.reserved("mid") == 0


# -- limits a few worst cases large ----------------------------------------------------------


def test_a_small_limit_leases_room_for_several_calls(meter) -> None:
    """$5 a month, gpt-4o without max_tokens (16,384 output tokens, $0.164 a call): the lease
    asks for LEASE_CALLS reservations and the store grants a quarter of what is left beyond the
    call's need, several calls' worth (it was two)."""
    meter.set_limit("small", 5, frequency="per_month")
    call("small", meter, messages=MESSAGES)
    guard = meter._limits.guard
    worst = guard.estimate(guard_request("small", {"model": "gpt-4o", "messages": MESSAGES}))[0]
    remaining = guard._budgets["small"].remaining
    assert LEASE_CALLS * worst > picos.up(Decimal(5) / 4)  # the store's quarter decides here
    assert 8 * worst <= remaining <= worst + picos.up((Decimal(5) - picos.usd(worst)) / 4)


def guard_request(tenant: str, request: dict):
    from tollmeter.limits.request import CallRequest

    return CallRequest(tenant, "openai", request["model"], request,
                       lambda kwargs, model: estimate_request(CHAT, kwargs, model))


def test_a_call_that_leaves_the_lease_short_is_settled_by_the_worker_at_once(http_mock) -> None:
    """The worker's interval is a minute here: a call reserved from a lease left with room for
    fewer than URGENT_CALLS more like it wakes the worker as it ends, which settles it and the
    calls before it, so that the next calls find their room without settling them themselves.
    $5 a month on gpt-4o without max_tokens: a lease of about 8 calls, the 5th leaves it short."""
    meter = Meter(MeterConfig(store=":memory:", flush_interval=60, limits_wait=30))
    meter.patch_all()
    http_mock.post(CHAT_URL).respond(json=O.CHAT_PLAIN)
    try:
        meter.set_limit("small", 5, frequency="per_month")
        guard = meter._limits.guard
        call("small", meter, messages=MESSAGES)
        budget = guard._budgets["small"]
        worst = guard.estimate(guard_request("small", {"model": "gpt-4o", "messages": MESSAGES}))[0]
        short_after = next(k for k in range(1, LEASE_CALLS) if budget.remaining - k * worst < URGENT_CALLS * worst)
        assert 2 < short_after < 8
        for _ in range(short_after - 1):  # the first call and these: the last one leaves it short
            call("small", meter, messages=MESSAGES)
        deadline = time.monotonic() + 30  # far less than the worker's interval
        while guard.reserved("small") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert guard.reserved("small") == 0  # no one else settles: the worker did, woken
    finally:
        meter.shutdown()
