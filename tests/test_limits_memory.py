"""What a call with a limit leaves behind once the worker has settled it: nothing for the cyclic
collector (its call, reservation and settlement are freed as the worker drops them), and the
first look's list of reservations (`Budget.fresh`) holds no settled ones beyond its pruning
bound, none after the worker's upkeep.

A real embedded store grants the leases; SDK calls go through respx at the transport.
"""

from __future__ import annotations

import gc
from collections import Counter

import openai

from tollmeter import Meter, MeterConfig
from tollmeter.events import LLMEvent
from tollmeter.instrument.call import Call
from tollmeter.limits.guard import FRESH_PRUNE, Reservation
from tollmeter.limits.keeper import Settled

from .bodies import openai_bodies as O
from .conftest import collect
from .test_limits_hot_path import CHAT_URL, MESSAGES, meter  # noqa: F401  (the fixture)


def calls(meter: Meter, tenant: str, count: int) -> None:
    client = openai.OpenAI(api_key="k", max_retries=0)
    with meter.for_tenant(tenant):
        for _ in range(count):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)


#: The tenant of the calls whose leftovers are looked for: only its own, not those of an earlier
#: test's meter whose last reference (a finishing thread's) may drop while this test runs.
TENANT = "memory-of-settled-calls"


def tenant_of(found: object) -> str | None:
    """The tenant of a call, reservation, settlement or event; None for anything else."""
    if isinstance(found, Call):
        return found.scope.tenant_id if found.scope is not None else None
    if isinstance(found, Reservation):
        return found.budget.tenant_id
    if isinstance(found, Settled):
        found = found.event
    return found.tenant_id if isinstance(found, LLMEvent) else None


def test_settled_calls_leave_nothing_for_the_cyclic_collector(meter) -> None:
    meter.set_limit(TENANT, 1_000_000, frequency="per_month")
    calls(meter, TENANT, 5)  # the lease, the price look-ups, the first settlements
    assert meter.flush(10)
    collect()  # the garbage of earlier tests gone (a bare gc.collect() is skipped while another thread collects)
    gc.disable()
    try:
        calls(meter, TENANT, 150)
        assert meter.flush(10)
        budget = meter._limits.guard._budgets[TENANT]
        assert budget.reserved == 0  # every call was settled
        assert sum(1 for r in budget.fresh if r.record is not None) == 0  # settled: its call let go
        gc.set_debug(gc.DEBUG_SAVEALL)
        collect()
        ours = Counter(type(o).__name__ for o in gc.garbage if tenant_of(o) == TENANT)
        left = Counter(type(o).__name__ for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert not ours, f"{ours} in reference cycles, among {left}"


def test_the_first_looks_reservations_are_pruned_once_settled(meter) -> None:
    meter.set_limit("big", 1_000_000, frequency="per_month")
    calls(meter, "big", 3 * FRESH_PRUNE)
    assert meter.flush(10)
    guard = meter._limits.guard
    budget = guard._budgets["big"]
    assert budget.reserved == 0
    assert len(budget.fresh) < budget.prune_at  # pruned as they reach the bound (twice the unsettled)
    assert all(r.settled for r in budget.fresh)
    guard.maintain()  # the worker's upkeep: an idle tenant's settled reservations go
    assert budget.fresh == []


def test_a_caller_short_of_budget_settles_the_first_looks_reservations(http_mock) -> None:
    """Calls the first look reserved, ended and waiting for the worker (its interval is a minute
    here), are found and settled by `settle_finished`, what a caller whose call does not fit
    runs before it asks for more."""
    meter = Meter(MeterConfig(store=":memory:", flush_interval=60, limits_wait=30))
    meter.patch_all()
    http_mock.post(CHAT_URL).respond(json=O.CHAT_PLAIN)
    try:
        meter.set_limit("big", 1_000_000, frequency="per_month")
        calls(meter, "big", 1)  # asks for the lease
        assert meter.flush(10)
        calls(meter, "big", 10)
        guard = meter._limits.guard
        budget = guard._budgets["big"]
        waiting = [r for r in budget.fresh if not r.settled]
        assert len(waiting) == 10 and all(r.record is not None for r in waiting) and budget.reserved > 0
        assert guard.settle_finished(budget)
        assert all(r.settled for r in waiting) and budget.reserved == 0
    finally:
        meter.shutdown()
