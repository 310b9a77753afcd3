"""Property: the leak rules read from the database's sums (a margin report by tenant for the
month and its recent days, per day only the customers over their revenue, the days that may be
spikes) flag exactly what they flag read from a margin report by tenant and day (the dashboard
hands one over); and a run's flag says since when its events' running cost passed what it
earns, day by day, whether its events fell on one day or several. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings, strategies as st

from tollmeter.business.leaks import LeakSettings, days_read
from tollmeter.business.margin import margin
from tollmeter.store.ledger import Ledger

from .margin_support import D, at, event, fresh, store  # noqa: F401 (fixtures)
from .test_margin import TENANTS, amounts, plans

DAYS = [date(2025, 3, 27) + timedelta(days=n) for n in range(12)]  # across a month's end

leak_settings = st.builds(
    LeakSettings,
    margin_floor_pct=st.sampled_from((D(0), D(20), D(90))),
    spike_factor=st.sampled_from((D(1), D("1.5"), D(3))),
    spike_window_days=st.integers(1, 5),
    spike_min_usd=st.sampled_from((D(0), D("0.5"), D(2))),
    projection_days=st.integers(1, 4),
)

histories = st.fixed_dictionaries({}, optional={
    t: st.lists(st.tuples(st.sampled_from(DAYS), plans(), st.integers(0, 5)), min_size=1, max_size=2)
    for t in TENANTS})

generated_events = st.lists(st.fixed_dictionaries({
    "tenant": st.sampled_from((*TENANTS, None)),
    "run": st.sampled_from(("r1", "r2", "r3", "r4", None)),
    "agent": st.sampled_from(("a1", "a2", None)),
    "day": st.sampled_from(DAYS),
    "hour": st.integers(0, 23),
    "cost": st.one_of(st.none(), amounts(3)),
    "input_tokens": st.integers(0, 100_000),
}), max_size=30)

resolutions = st.dictionaries(
    st.sampled_from(("r1", "r2", "r3", "r4", "r5")),
    st.tuples(st.sampled_from(("resolved", "escalated", "failed")), st.sampled_from(DAYS), st.integers(0, 23),
              st.one_of(st.none(), st.none(), amounts(2)), st.sampled_from((*TENANTS, None))),
    max_size=5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(history=histories, generated=generated_events, resolved=resolutions, chosen=leak_settings,
       today=st.sampled_from(DAYS[3:]))
def test_leaks_from_sums_are_the_leaks_from_days(store, history, generated, resolved, chosen, today):
    view = fresh(store)
    ledger = Ledger(view)
    for tenant, spans in history.items():
        for start, plan, seats in spans:
            ledger.upsert_customer(tenant, plan=plan, seats=seats, effective_from=start)
    rows = [event(at(e["day"], e["hour"]), e["cost"], tenant=e["tenant"], run=e["run"], agent=e["agent"],
                  input_tokens=e["input_tokens"]) for e in generated]
    view.add_events(rows[:len(rows) // 2])
    for run_id, (outcome, when, hour, revenue, tenant) in sorted(resolved.items()):
        ledger.resolve(run_id, outcome, revenue_usd=revenue, tenant_id=tenant, at=at(when, hour))
    view.add_events(rows[len(rows) // 2:])

    since, end = days_read(chosen, today)
    daily = margin(ledger, ("tenant", "day"), since=since, until=end)
    from_sums = [leak.to_dict() for leak in ledger.leaks(chosen, today=today)]
    assert from_sums == [leak.to_dict() for leak in ledger.leaks(chosen, today=today, daily=daily)]
    for tenant in TENANTS:
        own = [leak.to_dict() for leak in ledger.leaks(chosen, today=today, tenant_id=tenant)]
        assert own == [leak.to_dict() for leak in ledger.leaks(chosen, today=today, tenant_id=tenant, daily=daily)]

    # Each run flagged passed what it earns on the day its events' running cost did.
    month = today.replace(day=1)
    for leak in ledger.leaks(chosen, today=today, subjects=("run",)):
        costs: dict[date, Decimal] = {}
        for e in generated:
            if e["run"] == leak.subject_id:
                costs[e["day"]] = costs.get(e["day"], D(0)) + (e["cost"] or D(0))
        running, passed = D(0), None
        for day in sorted(costs):
            running += costs[day]
            if passed is None and running > leak.numbers["revenue_usd"]:
                passed = day
        assert (leak.since, leak.numbers["cost_usd"]) == (passed, running), leak
        assert month <= max(costs) or leak.subject_id in resolved


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(series=st.dictionaries(st.sampled_from((*TENANTS, None)), st.lists(st.one_of(st.none(), amounts(4)),
                                                                         min_size=len(DAYS), max_size=len(DAYS)),
                              min_size=1, max_size=3),
       chosen=leak_settings, today=st.sampled_from(DAYS[3:]))
def test_spikes_from_sums_are_the_spikes_from_days(store, series, chosen, today):
    """A cost every day or most: several days of one customer may be spikes, the latest is the
    one flagged."""
    view = fresh(store)
    ledger = Ledger(view)
    view.add_events([event(at(day, 9), cost, tenant=tenant) for tenant, costs in series.items()
                     for day, cost in zip(DAYS, costs) if cost is not None])
    since, end = days_read(chosen, today)
    daily = margin(ledger, ("tenant", "day"), since=since, until=end)
    expected = [leak.to_dict() for leak in ledger.leaks(chosen, today=today, daily=daily)]
    assert [leak.to_dict() for leak in ledger.leaks(chosen, today=today)] == expected
