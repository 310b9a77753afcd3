"""The first look-up of a call with a limit (`Guard.admit_plain`), the guard's picodollars, and
leases sized for limits only a few worst cases large.

The guard runs on a real embedded store, its leases granted by the store; SDK calls go through
respx at the transport.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from decimal import Decimal

import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tollmeter import Meter, MeterConfig
from tollmeter.formats.openai_chat import CHAT
from tollmeter.limits import picos
from tollmeter.limits.estimate import estimate_request, upper_bound
from tollmeter.limits.guard import (AMPLE_BOUNDS, LEASE_CALLS, NEEDS_CHECK, WAKE_CALLS, Budget, PlainReservation,
                                   Reservation)

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


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["grant", "add", "reserve", "settle", "drop"]),
                          st.integers(min_value=0, max_value=10**18)), max_size=30))
def test_a_budgets_free_part_is_what_is_neither_spent_nor_reserved(steps) -> None:
    """`Budget.free` is the stored figure (the first look reads and writes only it); `remaining`
    and `reserved` are views that keep each other: a new lease keeps what is reserved, a
    settlement moves a reservation into what is spent."""
    budget = Budget("t")
    remaining = reserved = 0
    for step, amount in steps:
        if step == "grant":  # a new lease
            budget.remaining = remaining = amount
        elif step == "add":  # more granted on the same lease
            budget.remaining += amount
            remaining += amount
        elif step == "reserve":
            budget.free -= amount
            reserved += amount
        elif step == "settle" and reserved:  # a reservation replaced by its cost
            cost = amount % (reserved + 1)
            budget.reserved -= reserved
            budget.remaining -= cost
            remaining, reserved = remaining - cost, 0
        elif step == "drop":  # the lease given back
            budget.remaining = remaining = 0
        assert (budget.remaining, budget.reserved, budget.free) == (remaining, reserved, remaining - reserved)


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
    """Against `estimate.upper_bound` priced by the sheet, and the walk's estimate,
    on generated requests; what is not plain (or has no model) goes the full way. A request
    whose table bound the lease does not hold `AMPLE_BOUNDS` times reserves its estimate, to the
    picodollar what the full way (`Guard.estimate`) reserves."""
    meter.set_limit("big", 1_000_000, frequency="per_month")
    call("big", meter, messages=MESSAGES)  # the first call asks for the lease
    guard = meter._limits.guard

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.one_of(chat_requests(), chat_requests(odd=True)))
    def check(request: dict) -> None:
        model = request["model"]
        free = guard._budgets["big"].free
        reservation = guard.admit_plain("big", "openai", model, request, CHAT)
        bound = upper_bound(CHAT, request, model)
        if bound is None:
            assert reservation is NEEDS_CHECK
            return
        sheet = guard._sheet("openai", model, None)
        amount = picos.up(sheet.worst_case(*bound))
        if amount * AMPLE_BOUNDS > free:  # not ample for this bound: the estimate instead
            amount = guard.estimate(guard_request("big", request))[0]
            if reservation is NEEDS_CHECK:  # rates not whole picodollars, or not even that fits
                assert amount > free or any(picos.up(r) != picos.down(r) for r in sheet.worst_case_rates)
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


def test_the_first_look_makes_the_reservation_its_constructor_makes(meter) -> None:
    """`admit_plain` writes `Reservation.__init__` out: every field set, each as `__init__` sets it."""
    meter.set_limit("big", 1_000_000, frequency="per_month")
    call("big", meter, messages=MESSAGES)
    guard = meter._limits.guard
    before = guard.reserved("big")  # (the first call's, until the worker settles it)
    reservation = guard.admit_plain("big", "openai", "gpt-4o", {"model": "gpt-4o", "messages": MESSAGES}, CHAT)
    try:
        assert type(reservation) is PlainReservation and isinstance(reservation, Reservation)
        made = Reservation(reservation.budget, reservation.amount, reservation.lease_id, None, reservation.model)
        made.urgent = reservation.urgent  # the fields set after `__init__`: `wake_line`, and the bounds
        made.bounds = reservation.bounds
        assert made.bounds is guard._last_plain
        fields = {name: getattr(made, name) for name in Reservation.__slots__}
        assert {name: getattr(reservation, name) for name in Reservation.__slots__} == fields
        assert fields["budget"] is guard._budgets["big"] and fields["model"] == ("openai", "gpt-4o")
    finally:
        guard.release(reservation)
    assert guard.reserved("big") <= before


def test_a_lease_short_of_ample_has_the_first_look_reserve_the_estimate(meter) -> None:
    """A lease that does not hold AMPLE_BOUNDS table bounds of a plain request (a $4 limit
    leases about $1: six 16,384-token answers of gpt-4o): the first look reserves the request's
    estimate, to the picodollar what the full way reserves (`Guard.estimate`), with and without
    caps and choices, non-ASCII text and a model whose text counts 1.35 times; a request whose
    estimate does not fit goes the full way (which settles, refills or refuses)."""
    meter.set_limit("small", 4, frequency="per_month")
    call("small", meter, messages=MESSAGES)  # asks for the lease
    assert meter.flush(10)
    guard = meter._limits.guard
    budget = guard._budgets["small"]
    french = [{"role": "system", "content": "Réponds en français, en deux phrases ; 3 chiffres."}, *MESSAGES]
    requests = [{"model": "gpt-4o", "messages": MESSAGES},
                {"model": "gpt-4o", "messages": french, "max_tokens": 4_000, "n": 2},
                {"model": "gpt-4o", "messages": french, "max_completion_tokens": 40_000},
                {"model": "claude-sonnet-4-5", "messages": french, "max_tokens": 1_000}]
    for request in requests:
        model = request["model"]
        estimate = guard.estimate(guard_request("small", request))[0]
        bound = picos.up(guard._sheet("openai", model, None).worst_case(*upper_bound(CHAT, request, model)))
        assert bound * AMPLE_BOUNDS > budget.free >= estimate and bound > estimate  # not ample; it fits
        reservation = guard.admit_plain("small", "openai", model, request, CHAT)
        try:
            assert type(reservation) is PlainReservation and reservation.amount == estimate
            assert reservation.model == ("openai", model)
        finally:
            guard.release(reservation)
    huge = {"model": "gpt-4o", "messages": MESSAGES, "n": 20}
    assert guard.estimate(guard_request("small", huge))[0] > budget.free
    assert guard.admit_plain("small", "openai", "gpt-4o", huge, CHAT) is NEEDS_CHECK
    assert guard.reserved("small") == 0 and not guard._lock.locked()


def test_only_whole_picodollar_rates_are_estimated_at_the_first_look() -> None:
    """The first look prices an estimate itself only where its integer rates are the sheet's
    exactly (prices in whole micro-dollars per million tokens): otherwise a lease that is not
    ample leaves the call to the full way (`PlainBounds.quick` is None)."""
    from tollmeter.limits.estimate import token_rules
    from tollmeter.limits.guard import PlainBounds

    rules = token_rules("gpt-4o", False)
    exact = (Decimal("0.0000025"), Decimal("0.00001"), Decimal(0))
    inexact = (Decimal("0.0000025"), Decimal("0.00001"), Decimal("1e-13"))
    assert PlainBounds(rules, exact, ("openai", "gpt-4o"), None, CHAT, CHAT.sized).quick is CHAT.quick
    assert PlainBounds(rules, inexact, ("openai", "gpt-4o"), None, CHAT, CHAT.sized).quick is None
    assert PlainBounds.unbounded("openai", "gpt-4o", None, CHAT).quick is None


def test_the_first_look_leaves_requests_without_a_format_and_lapsed_leases_to_the_full_way(meter) -> None:
    """An endpoint whose requests have no format, a model that is not a string and a lease past
    its expiry are each the full check's (the first two by the bounds table, the expiry under
    the lock), and none of them is reported as a fault."""
    faults: list[BaseException] = []
    meter.set_limit("big", 1_000_000, frequency="per_month")
    call("big", meter, messages=MESSAGES)
    guard = meter._limits.guard
    guard._fault = lambda fault, where: faults.append(fault)
    request = {"model": "gpt-4o", "messages": MESSAGES}
    assert guard.admit_plain("big", "openai", "gpt-4o", request, None) is NEEDS_CHECK
    assert guard.admit_plain("big", "openai", None, request, CHAT) is NEEDS_CHECK
    reservation = guard.admit_plain("big", "openai", "gpt-4o", request, CHAT)  # the table bound
    assert type(reservation) is PlainReservation
    guard.release(reservation)
    budget = guard._budgets["big"]
    expires, budget.expires = budget.expires, 0.0
    try:
        assert guard.admit_plain("big", "openai", "gpt-4o", request, CHAT) is NEEDS_CHECK
    finally:
        budget.expires = expires
    assert faults == [] and not guard._lock.locked()


def test_the_first_look_steps_aside_while_the_guards_lock_is_held(meter) -> None:
    """`admit_plain` takes the guard's lock by popping its token and never waits for it: held
    elsewhere (here by this very thread, which would deadlock a waiting lock), the call goes
    the full way; given back, the first look reserves again."""
    meter.set_limit("big", 1_000_000, frequency="per_month")
    call("big", meter, messages=MESSAGES)
    guard = meter._limits.guard
    request = {"model": "gpt-4o", "messages": MESSAGES}
    with guard._lock:
        assert guard._lock.locked()
        assert guard.admit_plain("big", "openai", "gpt-4o", request, CHAT) is NEEDS_CHECK
    assert not guard._lock.locked()
    reservation = guard.admit_plain("big", "openai", "gpt-4o", request, CHAT)
    assert type(reservation) is PlainReservation
    guard.release(reservation)
    assert not guard._lock.locked()


def settlements(meter: Meter) -> tuple[list[threading.Thread], list[object]]:
    """Spies on the guard: the thread of every settlement, and every call that went the full way
    (`Guard.check`: the first look stepped aside). The real methods run."""
    guard = meter._limits.guard
    threads: list[threading.Thread] = []
    checked: list[object] = []
    settle, check = guard._settle_record, guard.check

    def settling(record: object) -> None:
        threads.append(threading.current_thread())
        settle(record)

    def checking(request: object) -> object:
        checked.append(request)
        return check(request)

    guard._settle_record, guard.check = settling, checking
    return threads, checked


def wait_until_settled(meter: Meter, tenant: str) -> None:
    deadline = time.monotonic() + 20  # far less than the worker's own interval (60 s)
    while meter._limits.guard.reserved(tenant) and time.monotonic() < deadline:
        time.sleep(0.01)


def on_the_settling_thread(meter: Meter, threads: list[threading.Thread]) -> bool:
    """Whether `threads` are all the guard's settling thread (`Guard.settle_soon`): one thread,
    neither the caller's nor the worker's."""
    return (len(set(threads)) == 1 and threads[0].name == "tollmeter-settle"
            and threads[0] is not threading.current_thread() and threads[0] is not meter._pipeline.worker._thread)


@dataclass
class Looked:
    reservation: Reservation
    amount: int


def first_looks(meter: Meter) -> list[object]:
    """Spies on the first look (`Guard.admit_plain`, as the keeper calls it): what it answered
    for each call, a reservation as what it reserved then (`Looked`: a call's reservation may
    be cut once it ended, `Guard.trim_finished`). The real method runs."""
    keeper = meter._limits
    admit_plain = keeper.admit_plain
    answers: list[object] = []

    def looking(*args: object) -> object:
        answer = admit_plain(*args)
        answers.append(Looked(answer, answer.amount) if isinstance(answer, Reservation) else answer)
        return answer

    keeper.admit_plain = looking
    return answers


@pytest.mark.parametrize("wake", [True, False], ids=["settled", "wake-removed"])
def test_the_calls_are_settled_before_the_lease_runs_short(http_mock, monkeypatch, wake) -> None:
    """A lease of about LEASE_CALLS table bounds; the worker's own interval is a minute. The
    call that leaves the lease room for fewer than WAKE_CALLS more has its tenant's finished
    calls settled as it ends, on the guard's settling thread (neither the caller's nor the
    worker's), while the lease still has room: the calls after them keep taking the table bound
    at the first look. With the wake removed (no call is ever short) the same calls run the
    lease short: once it holds fewer than AMPLE_BOUNDS table bounds the first look reserves
    their estimate instead (what the full way reserves), and once not even that fits a call
    goes the full way and settles the calls before it on its own thread."""
    from tollmeter.limits import guard as guard_module

    if not wake:
        monkeypatch.setattr(guard_module, "WAKE_CALLS", 0)
        monkeypatch.setattr(guard_module, "WAKE_BEFORE", 1)  # the same line, as the first look reads it
    meter = Meter(MeterConfig(store=":memory:", flush_interval=60, limits_wait=30))
    meter.patch_all()
    http_mock.post(CHAT_URL).respond(json=O.CHAT_PLAIN)
    try:
        meter.set_limit("t", 4, frequency="per_month")
        call("t", meter, messages=MESSAGES, max_tokens=1000)  # asks for the lease
        assert meter.flush(10)  # that call settled; the worker now sleeps for its interval
        guard = meter._limits.guard
        budget = guard._budgets["t"]
        request = {"model": "gpt-4o", "messages": MESSAGES, "max_tokens": 1000}
        amount = picos.up(guard._sheet("openai", "gpt-4o", None).worst_case(*upper_bound(CHAT, request, "gpt-4o")))
        estimate = guard.estimate(guard_request("t", request))[0]
        assert estimate < amount
        assert LEASE_CALLS - 2 <= budget.free // amount <= LEASE_CALLS  # what the store granted
        # Calls until one leaves the lease short, and until (unsettled) the first look steps aside.
        short = next(k for k in range(1, LEASE_CALLS) if budget.free - k * amount < WAKE_CALLS * amount)
        plain = next(k for k in range(1, LEASE_CALLS) if budget.free - k * amount < AMPLE_BOUNDS * amount)
        threads, checked = settlements(meter)
        looks = first_looks(meter)

        for _ in range(short):
            call("t", meter, messages=MESSAGES, max_tokens=1000)
        if wake:
            wait_until_settled(meter, "t")
            assert guard.reserved("t") == 0  # settled without anyone else's help
        else:
            assert budget.reserved == short * amount  # nothing settled them
        for _ in range(plain + 1 - short):  # the call that would find the lease short unsettled
            call("t", meter, messages=MESSAGES, max_tokens=1000)

        assert not checked  # every call was decided at the first look
        if wake:
            assert [look.amount for look in looks] == [amount] * len(looks)  # table bounds all along
            assert len(threads) >= short and on_the_settling_thread(meter, threads)
        else:
            assert [look.amount for look in looks] == [amount] * plain + [estimate]  # then the estimate
            assert not threads
            for _ in range(LEASE_CALLS):  # until a call does not fit what is left unsettled
                if threads:
                    break
                call("t", meter, messages=MESSAGES, max_tokens=1000)
            assert checked and looks[-1] is NEEDS_CHECK
            assert threads and all(thread is threading.main_thread() for thread in threads)
    finally:
        meter.shutdown()


def test_calls_are_settled_while_the_worker_is_held_up(http_mock) -> None:
    """The worker is stuck in a batch (a write waiting for a locked store, a slow delivery: here
    an event it waits on) with the lease's calls queued behind it: the call that leaves the
    lease short still has them settled at once, on the guard's settling thread, so that the
    calls after it keep the first look (without it, they ran the lease short and their
    callers settled on their own threads)."""
    meter = Meter(MeterConfig(store=":memory:", flush_interval=0.05, limits_wait=30))
    meter.patch_all()
    http_mock.post(CHAT_URL).respond(json=O.CHAT_PLAIN)
    held, entered = threading.Event(), threading.Event()
    worker = meter._pipeline.worker
    handle_batch = worker._handle_batch

    def stuck(items: list) -> None:
        entered.set()
        held.wait(60)
        handle_batch(items)

    try:
        meter.set_limit("t", 4, frequency="per_month")
        call("t", meter, messages=MESSAGES, max_tokens=1000)  # asks for the lease
        assert meter.flush(10)
        guard = meter._limits.guard
        request = {"model": "gpt-4o", "messages": MESSAGES, "max_tokens": 1000}
        amount = picos.up(guard._sheet("openai", "gpt-4o", None).worst_case(*upper_bound(CHAT, request, "gpt-4o")))
        worker._handle_batch = stuck
        call("free", meter, messages=MESSAGES)  # the worker takes it and is held
        assert entered.wait(10)
        threads, checked = settlements(meter)
        for _ in range(3 * LEASE_CALLS):  # three leases' worth: the lease runs short every round
            call("t", meter, messages=MESSAGES, max_tokens=1000)
            if guard._budgets["t"].free < WAKE_CALLS * amount:  # this call left the lease short
                wait_until_settled(meter, "t")  # only the settling thread can: the worker is held
                assert guard.reserved("t") == 0
        assert threads and on_the_settling_thread(meter, threads)
        assert not checked
    finally:
        held.set()
        meter.shutdown()


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


def test_every_call_of_a_lease_a_few_calls_large_is_settled_at_once(http_mock) -> None:
    """$5 a month on gpt-4o without max_tokens: a lease of about 8 calls, never ample, each
    of which leaves it short (fewer than WAKE_CALLS more). The worker's interval is a minute:
    each call reserves its estimate at the first look and, as it ends, is settled on the guard's
    settling thread, so that the next call finds its room without settling anything itself."""
    meter = Meter(MeterConfig(store=":memory:", flush_interval=60, limits_wait=30))
    meter.patch_all()
    http_mock.post(CHAT_URL).respond(json=O.CHAT_PLAIN)
    try:
        meter.set_limit("small", 5, frequency="per_month")
        call("small", meter, messages=MESSAGES)
        assert meter.flush(10)
        guard = meter._limits.guard
        worst = guard.estimate(guard_request("small", {"model": "gpt-4o", "messages": MESSAGES}))[0]
        assert guard._budgets["small"].free < WAKE_CALLS * worst
        threads, checked = settlements(meter)
        looks = first_looks(meter)
        for made in range(1, 4):
            call("small", meter, messages=MESSAGES)
            wait_until_settled(meter, "small")
            assert guard.reserved("small") == 0 and len(threads) == made
        assert on_the_settling_thread(meter, threads)
        assert not checked  # never ample: each call estimated at the first look, reserved from the lease
        assert [look.amount for look in looks] == [worst] * 3
    finally:
        meter.shutdown()


def test_the_hooks_look_an_endpoints_table_format_up_once(meter) -> None:
    """The request format the table bounds an endpoint's requests by is the endpoint's own, or
    None when the endpoint estimates its requests itself; worked out at an endpoint's first
    call and then looked up."""
    from tollmeter.instrument.endpoint import Endpoint
    from tollmeter.instrument.openai import ChatCompletions

    class OwnEstimate(Endpoint):
        request_format = CHAT

        def estimate(self, request, model):  # type: ignore[override]
            return super().estimate(request, model)

    hooks = meter._hooks
    chat, own = ChatCompletions(), OwnEstimate()
    assert hooks._table_format(chat) is CHAT and hooks._table_format(own) is None
    assert hooks._formats[chat] is CHAT and hooks._formats[own] is None
    hooks._formats.clear()
    call("free", meter, messages=MESSAGES)
    call("free", meter, messages=MESSAGES)
    assert list(hooks._formats.values()) == [CHAT]  # the chat endpoint's, once
