"""Per-tenant limits on one process: the guard refuses before sending, settles real costs,
and reports spend, on the real embedded store and real SDK clients.

Cost arithmetic: gpt-4o is $2.50/M input and $10/M output; CHAT_PLAIN bills 19 input and
10 output tokens = (19 x 2.50 + 10 x 10) / 1e6 = $0.0001475 per call.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest

from tollmeter import LimitExceededException, Meter, MeterConfig
from tollmeter.limits import RateLimitExceededException
from tollmeter.limits.picos import PER_USD

from .bodies import anthropic_bodies as A
from .bodies import openai_bodies as O

pytestmark = pytest.mark.sdk

CHAT = "https://api.openai.com/v1/chat/completions"
#: These tests are about what limits decide, not about waiting: they wait for the store's
#: answer (a loaded machine can take longer than the default limits_wait, past which
#: limits_unreachable would decide instead). The wait's bound is tests/test_waits.py's.
WAIT_FOR_THE_STORE = {"limits_wait": 30}
PLAIN_COST = (19 * Decimal("2.50") + 10 * Decimal(10)) / 1_000_000  # $0.0001475
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def limited(http_mock):
    """A patched meter on an in-memory store, and a counted provider route."""
    events, alerts = [], []
    meter = Meter(MeterConfig(store=":memory:", flush_interval=0.05, on_event=events.append, **WAIT_FOR_THE_STORE,
                              on_threshold=lambda tenant, limit, fraction: alerts.append((tenant, limit, fraction))))
    meter.patch_all()
    route = http_mock.post(CHAT).respond(json=O.CHAT_PLAIN, headers=O.HEADERS)
    meter.events, meter.alerts, meter.route = events, alerts, route
    yield meter
    meter.shutdown()


def ask(client, **kw):
    return client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=kw.pop("max_tokens", 50), **kw)


def client():
    return openai.OpenAI(api_key="k", max_retries=0)


def spent(meter, tenant, frequency="per_day"):
    return next(s for s in meter.spend(tenant) if s.frequency == frequency).spent_usd


def test_calls_run_until_the_limit_then_are_refused_before_sending(limited):
    limited.set_limit("acme", Decimal("0.002"), frequency="per_day")
    c = client()
    sent = 0
    with limited.for_tenant("acme"):
        with pytest.raises(LimitExceededException) as refused:
            for _ in range(100):
                ask(c)
                sent += 1
    assert limited.route.call_count == sent  # the refused call never reached the provider
    assert limited.flush(5)
    assert spent(limited, "acme") == sent * PLAIN_COST <= Decimal("0.002")
    assert sent >= 5  # the limit was used, not refused from the start
    exc = refused.value
    assert (exc.tenant_id, exc.limit, exc.period, exc.limit_usd) == ("acme", "per_day", "per_day", Decimal("0.002"))
    assert exc.estimated_cost_usd > 0 and exc.spent_usd is not None
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert exc.resets_at == tomorrow
    assert "acme" in str(exc) and "per_day" in str(exc)


def test_other_tenants_and_calls_without_tenant_are_not_limited(limited):
    limited.set_limit("acme", Decimal("0"), frequency="total")
    c = client()
    with limited.for_tenant("globex"):
        ask(c)
    ask(c)
    with limited.for_tenant("acme"), pytest.raises(LimitExceededException):
        ask(c)
    assert limited.route.call_count == 2


def test_the_binding_limit_of_several_is_reported(limited):
    limited.set_limit("acme", Decimal("100"), frequency="per_month")
    limited.set_limit("acme", Decimal("0.0001"), frequency="per_hour")
    assert [lim.frequency for lim in limited.get_limits("acme")] == ["per_hour", "per_month"]
    with limited.for_tenant("acme"), pytest.raises(LimitExceededException) as refused:
        ask(client())
    assert refused.value.limit == "per_hour"


def test_default_limit_for_tenants_without_their_own(limited):
    limited.set_default_limit(Decimal("0"), frequency="per_day")
    limited.set_limit("vip", Decimal("10"), frequency="per_day")
    c = client()
    with limited.for_tenant("vip"):
        ask(c)
    with limited.for_tenant("anyone"), pytest.raises(LimitExceededException):
        ask(c)
    assert limited.get_limits("anyone")[0].default and not limited.get_limits("vip")[0].default
    limited.remove_default_limit()
    with limited.for_tenant("anyone"):
        ask(c)


def test_a_changed_or_removed_limit_applies_to_the_very_next_call(limited):
    c = client()
    limited.set_limit("acme", Decimal("5"), frequency="per_day")
    with limited.for_tenant("acme"):
        ask(c)
        limited.set_limit("acme", Decimal("0.0001"), frequency="per_day")
        with pytest.raises(LimitExceededException):
            ask(c)
        limited.remove_limit("acme")
        ask(c)
    assert limited.route.call_count == 2


def test_spend_reports_spent_reserved_limit_remaining_and_reset(limited):
    limited.set_limit("acme", Decimal("1"), frequency="per_day")
    limited.set_limit("acme", Decimal("20"), frequency="total")
    with limited.for_tenant("acme"):
        for _ in range(3):
            ask(client())
    assert limited.flush(5)
    daily, total = limited.spend("acme")
    assert (daily.frequency, daily.limit_usd, daily.spent_usd) == ("per_day", Decimal("1"), 3 * PLAIN_COST)
    assert daily.reserved_usd == 0 and daily.remaining_usd == Decimal("1") - 3 * PLAIN_COST
    assert daily.resets_at > datetime.now(timezone.utc) and total.resets_at is None
    assert total.spent_usd == 3 * PLAIN_COST


def test_reservation_is_held_while_the_call_runs(limited, http_mock):
    limited.set_limit("acme", Decimal("1"), frequency="per_day")
    seen = []

    def respond(request):
        seen.append(limited.spend("acme")[0].reserved_usd)
        return httpx.Response(200, json=O.CHAT_PLAIN)

    http_mock.post(CHAT).mock(side_effect=respond)
    with limited.for_tenant("acme"):
        ask(client(), max_tokens=1000)
    # 1,000 output tokens at $10/M reserved (plus the input estimate) while the call ran
    assert seen[0] >= Decimal("0.01")
    assert limited.flush(5) and limited.spend("acme")[0].reserved_usd == 0


def test_failed_call_settles_at_what_was_billed(limited, http_mock):
    limited.set_limit("acme", Decimal("0.02"), frequency="per_day")
    http_mock.post(CHAT).respond(429, json=O.ERROR_429)
    with limited.for_tenant("acme"):
        for _ in range(5):  # each reserves ~$0.0005 and is released at $0
            with pytest.raises(openai.RateLimitError):
                ask(client())
    assert limited.flush(5)
    status = limited.spend("acme")[0]
    assert status.spent_usd == 0 and status.reserved_usd == 0


def test_stream_ended_early_settles_at_its_partial_usage(limited, http_mock):
    limited.set_limit("acme", Decimal("1"), frequency="per_day")
    http_mock.post("https://api.anthropic.com/v1/messages").respond(text=A.STREAM_PLAIN, headers=A.STREAM_HEADERS)
    with limited.for_tenant("acme"):
        with anthropic.Anthropic(api_key="k", max_retries=0).messages.stream(
                model=A.MODEL, max_tokens=1024, messages=MESSAGES) as stream:
            for _ in stream.text_stream:
                break
    assert limited.flush(5)
    # message_start reported 25 input and 1 output token at $3/M and $15/M
    assert limited.spend("acme")[0].spent_usd == (25 * 3 + 1 * 15) / Decimal(1_000_000)
    assert limited.spend("acme")[0].reserved_usd == 0


def test_stream_manager_never_entered_gives_its_reservation_back(limited):
    import gc

    limited.set_limit("acme", Decimal("1"), frequency="per_day")
    with limited.for_tenant("acme"):
        manager = anthropic.Anthropic(api_key="k").messages.stream(model=A.MODEL, max_tokens=4096, messages=MESSAGES)
        assert limited.spend("acme")[0].reserved_usd > 0
        del manager
        gc.collect()
    assert limited.spend("acme")[0].reserved_usd == 0


# -- a limit smaller than one call's worst case -------------------------------------------------

#: A gpt-4o answer of 2,000 output tokens: (19 x 2.50 + 2000 x 10) / 1e6 = $0.0200475.
LONG_ANSWER = {**O.CHAT_PLAIN, "usage": {"prompt_tokens": 19, "completion_tokens": 2000, "total_tokens": 2019}}
LONG_COST = (19 * Decimal("2.50") + 2000 * Decimal(10)) / 1_000_000


def free_plan(http_mock, reservation):
    """A $0.05 daily plan, and gpt-4o calls without max_tokens: each call's worst case is 16,384
    output tokens (about $0.16), more than the whole limit."""
    route = http_mock.post(CHAT).respond(json=LONG_ANSWER, headers=O.HEADERS)
    meter = Meter(MeterConfig(store=":memory:", flush_interval=0.05, reservation=reservation, **WAIT_FOR_THE_STORE))
    meter.patch("openai")
    meter.set_limit("free-tier", Decimal("0.05"), frequency="per_day")
    return meter, route


def test_worst_case_policy_refuses_a_call_whose_worst_case_exceeds_the_limit(http_mock):
    meter, route = free_plan(http_mock, "worst_case")
    try:
        with meter.for_tenant("free-tier"), pytest.raises(LimitExceededException) as refused:
            client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert route.call_count == 0 and refused.value.estimated_cost_usd > Decimal("0.05")
    finally:
        meter.shutdown()


def test_adaptive_policy_lets_a_small_limit_work_with_a_bounded_overshoot(http_mock):
    meter, route = free_plan(http_mock, "adaptive")
    sent = 0
    try:
        with meter.for_tenant("free-tier"):
            for _ in range(10):
                try:
                    client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
                except LimitExceededException:
                    break
                sent += 1
        assert meter.flush(5)
        spend = spent(meter, "free-tier")
    finally:
        meter.shutdown()
    assert route.call_count == sent >= 2  # calls do go through
    assert spend == sent * LONG_COST
    # Refused once the observed cost no longer fits; the overshoot is below one call's worst
    # case minus what it reserved (here: less than one answer).
    assert Decimal("0.05") - LONG_COST < spend <= Decimal("0.05") + LONG_COST


def test_adaptive_policy_reserves_the_worst_case_while_it_fits(limited, http_mock):
    """With room for the worst case, adaptive reserves it (the strict bound holds)."""
    limited.set_limit("acme", Decimal("100"), frequency="per_day")
    gate, release = threading.Event(), threading.Event()

    def slow(request):
        gate.set()
        release.wait(5)
        return httpx.Response(200, json=O.CHAT_PLAIN)

    http_mock.post(CHAT).mock(side_effect=slow)
    worker = threading.Thread(target=limited.for_tenant("acme")(lambda: ask(client(), max_tokens=1000)))
    worker.start()
    try:
        assert gate.wait(5)
        reserved = next(s for s in limited.spend("acme") if s.frequency == "per_day").reserved_usd
        assert reserved >= Decimal(1000) * 10 / 1_000_000  # all of max_tokens at the output price
    finally:
        release.set()
        worker.join(5)


def test_rate_limit_requests_per_minute(limited):
    limited.set_rate_limit("acme", requests_per_minute=3)
    c = client()
    with limited.for_tenant("acme"):
        for _ in range(3):
            ask(c)
        with pytest.raises(RateLimitExceededException) as refused:
            ask(c)
    assert isinstance(refused.value, LimitExceededException) and "3 requests per minute" in str(refused.value)
    assert limited.route.call_count == 3


def test_rate_limit_tokens_per_minute(limited):
    limited.set_rate_limit("acme", tokens_per_minute=500)
    c = client()
    with limited.for_tenant("acme"):
        ask(c, max_tokens=100)  # reserves its input estimate + 100 output tokens
        with pytest.raises(RateLimitExceededException, match="500 tokens per minute"):
            ask(c, max_tokens=450)


def test_threshold_alerts_fire_once_per_period(limited):
    limited.set_limit("acme", PLAIN_COST * 4, frequency="per_day")
    with limited.for_tenant("acme"):
        for _ in range(3):
            ask(client(), max_tokens=1)
            assert limited.flush(5)
        assert limited.alerts == []  # 3/4 of the limit: below 0.8
        ask(client(), max_tokens=1)
        assert limited.flush(5)
    assert [(t, lim.frequency, f) for t, lim, f in limited.alerts] == [("acme", "per_day", 0.8), ("acme", "per_day", 1.0)]


def test_unpriced_model_policies(http_mock):
    http_mock.post(CHAT).respond(json={**O.CHAT_PLAIN, "model": "mystery-model"})
    for policy, refused in (("estimate", False), ("block", True), ("allow", False)):
        meter = Meter(MeterConfig(store=":memory:", unpriced_calls=policy, flush_interval=0.05, **WAIT_FOR_THE_STORE))
        meter.patch("openai")
        meter.set_limit("acme", Decimal("1"), frequency="per_day")
        try:
            with meter.for_tenant("acme"):
                if refused:
                    with pytest.raises(LimitExceededException, match="no price is known"):
                        client().chat.completions.create(model="mystery-model", messages=MESSAGES, max_tokens=10)
                else:
                    client().chat.completions.create(model="mystery-model", messages=MESSAGES, max_tokens=10)
            assert meter.flush(5)
            if policy == "estimate":  # settled at the fallback $15/M input and $75/M output
                assert meter.spend("acme")[0].spent_usd == (19 * 15 + 10 * 75) / Decimal(1_000_000)
            if policy == "allow":
                assert meter.spend("acme")[0].spent_usd == 0
        finally:
            meter.shutdown()


async def test_async_calls_are_limited_and_refills_leave_the_event_loop(limited, monkeypatch):
    from tollmeter.limits.guard import Guard

    threads = []
    original = Guard.refill

    def recording_refill(self, call, *args):
        threads.append(threading.current_thread())
        return original(self, call, *args)

    monkeypatch.setattr(Guard, "refill", recording_refill)
    limited.set_limit("acme", Decimal("0.001"), frequency="per_day")
    c = openai.AsyncOpenAI(api_key="k", max_retries=0)
    with pytest.raises(LimitExceededException):
        async with limited.for_tenant("acme"):
            for _ in range(100):
                await c.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=50)
    assert threads and all(t is not threading.main_thread() for t in threads)
    assert limited.flush(5)
    assert spent(limited, "acme") <= Decimal("0.001")


def test_bad_limit_values_are_rejected(limited):
    with pytest.raises(ValueError, match="frequency"):
        limited.set_limit("acme", 5, frequency="weekly")
    with pytest.raises(ValueError, match="limit_usd"):
        limited.set_limit("acme", "five dollars")
    with pytest.raises(ValueError, match="limit_usd"):
        limited.set_limit("acme", -1)
    with pytest.raises(ValueError, match="requests_per_minute"):
        limited.set_rate_limit("acme", requests_per_minute=0)


def test_events_are_kept_in_the_embedded_store(tmp_path, http_mock):
    http_mock.post(CHAT).respond(json=O.CHAT_PLAIN)
    db = tmp_path / "tollmeter.db"
    meter = Meter(MeterConfig(store=str(db), flush_interval=0.05))
    meter.patch("openai")
    with meter.for_tenant("acme"):
        ask(client())
    meter.shutdown()
    from tollmeter.store.store import Store

    store = Store(db)
    rows = store.usage(group_by=["tenant_id"])
    assert [(r["tenant_id"], r["calls"], r["cost_usd"]) for r in rows] == [("acme", 1, PLAIN_COST)]
    store.close()


def test_a_forked_child_keeps_enforcing_limits_on_the_shared_store(tmp_path, http_mock):
    import json
    import os

    http_mock.post(CHAT).respond(json=O.CHAT_PLAIN)
    db = tmp_path / "limits.db"
    meter = Meter(MeterConfig(store=str(db), flush_interval=0.05, **WAIT_FOR_THE_STORE))
    meter.patch("openai")
    meter.set_limit("acme", PLAIN_COST * 6, frequency="per_day")
    # max_tokens covers the mock's 10 output tokens: each reservation bounds its call's cost, so
    # the only way for the child to stop in time is to see the parent's spend in the store.
    with meter.for_tenant("acme"):
        for _ in range(2):
            ask(client(), max_tokens=10)
    assert meter.flush(5)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the same meter, its own connections and leases
        try:
            sent = refused = 0
            with meter.for_tenant("acme"):
                for _ in range(10):
                    try:
                        ask(client(), max_tokens=10)
                        sent += 1
                    except LimitExceededException:
                        refused += 1
            meter.flush(5)
            os.write(write_fd, json.dumps([sent, refused]).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        sent, refused = json.loads(pipe.read() or "[0, 0]")
    os.waitpid(pid, 0)
    assert refused > 0 and 1 <= sent <= 4  # the child saw the parent's spend of 2 calls
    assert spent(meter, "acme") <= PLAIN_COST * 6
    meter.shutdown()


def test_no_limit_answers_are_refreshed_in_the_background(limited):
    """A tenant without a limit is not asked about on the caller's thread at every recheck; the
    worker asks, and a limit set meanwhile (here directly in the store, as another process
    would) applies once it has."""
    from decimal import Decimal

    guard = limited._limits.guard
    with limited.for_tenant("acme"):
        ask(client())  # first call: "acme" has no limit
    budget = guard._budgets["acme"]
    assert budget.unlimited
    asked = []
    original = guard.store.grant
    guard.store.grant = lambda *a, **kw: asked.append(threading.current_thread()) or original(*a, **kw)
    budget.checked_until = time.monotonic() - 1  # the answer is due for a recheck, not stale
    with limited.for_tenant("acme"):
        ask(client())
    assert threading.current_thread() not in asked  # not asked on the caller's thread
    guard.store.set_limit("acme", "per_day", Decimal("0"))
    budget.checked_until = time.monotonic() - 1
    deadline = time.monotonic() + 5
    while budget.unlimited and time.monotonic() < deadline:  # the worker's upkeep asks again
        time.sleep(0.01)
    assert not budget.unlimited and asked
    with limited.for_tenant("acme"), pytest.raises(LimitExceededException):
        ask(client())


def test_idle_leases_are_given_back(http_mock):
    """A process that stops calling for a tenant returns its unspent budget to the store."""
    from decimal import Decimal

    http_mock.post(CHAT).respond(json=O.CHAT_PLAIN)
    meter = Meter(MeterConfig(store=":memory:", flush_interval=0.05, **WAIT_FOR_THE_STORE))  # leases live 30 s
    meter.patch("openai")
    try:
        meter.set_limit("acme", Decimal("1"), frequency="per_day")
        with meter.for_tenant("acme"):
            ask(client())
        assert meter.spend("acme")[0].leased_usd > 0  # this process holds a lease
        meter._limits.guard._budgets["acme"].last_used -= 60  # unused for a minute
        deadline = time.monotonic() + 5
        while meter.spend("acme")[0].leased_usd > 0 and time.monotonic() < deadline:
            time.sleep(0.05)  # the worker's upkeep returns it after half a lease's life unused
        assert meter.spend("acme")[0].leased_usd == 0
    finally:
        meter.shutdown()


def test_a_first_lease_is_sized_by_the_limits_not_by_the_first_call(limited):
    """The agent knows no limits before its first grant; the store sizes that lease at
    lease_fraction (5%) of the smallest limit, so calls do not each wait on the store (or on
    settling the previous call) while the lease is a call or two wide."""
    limited.set_limit("acme", Decimal("100"), frequency="per_month")
    with limited.for_tenant("acme"):
        ask(client())
    assert limited._limits.guard._budgets["acme"].remaining == 5 * PER_USD  # picodollars
