"""Property: `Ledger.costly_runs` returns every run its docstring describes (events or a
resolution in the range, and a cost over its given revenue, over its tenant's threshold, or
over zero with an unpaid outcome under a free tenant), whichever part of the read finds it
(on PostgreSQL: events in the range, resolved in it after its events, resolved in it before
them, each through the runs' indexes). Checked against the runs' own rows, on SQLite and
PostgreSQL; runs resolved before or after their events, across a month's end."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import select

from tollmeter.business.plans import UNPAID_OUTCOMES
from tollmeter.store import schema
from tollmeter.store.ledger import Ledger

from .margin_support import D, at, event, fresh, store  # noqa: F401 (fixtures)
from .test_margin import TENANTS, amounts

DAYS = [date(2025, 3, 27) + timedelta(days=n) for n in range(12)]  # across a month's end
RUNS = ("r1", "r2", "r3", "r4", "r5", "r6")

generated_events = st.lists(st.fixed_dictionaries({
    "tenant": st.sampled_from((*TENANTS, None)),
    "run": st.sampled_from(RUNS),
    "day": st.sampled_from(DAYS),
    "hour": st.sampled_from((0, 12, 23)),  # the edges of days, often
    "cost": st.one_of(st.none(), amounts(3)),
}), max_size=25)

resolutions = st.dictionaries(
    st.sampled_from(RUNS),
    st.tuples(st.sampled_from(("resolved", *UNPAID_OUTCOMES)), st.sampled_from(DAYS), st.sampled_from((0, 12, 23)),
              st.one_of(st.none(), amounts(2)), st.sampled_from((*TENANTS, None))),
    max_size=6)

thresholds = st.dictionaries(st.sampled_from(TENANTS), st.one_of(st.just(D(0)), amounts(2)), max_size=len(TENANTS))


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(generated=generated_events, resolved=resolutions, over=thresholds,
       free=st.lists(st.sampled_from(TENANTS), unique=True, max_size=2),
       first=st.sampled_from(DAYS[:8]), length=st.integers(1, 6), before=st.booleans())
def test_every_costly_run_is_found(store, generated, resolved, over, free, first, length, before):
    view = fresh(store)
    ledger = Ledger(view)
    rows = [event(at(e["day"], e["hour"]), e["cost"], tenant=e["tenant"], run=e["run"]) for e in generated]
    if before:  # resolutions first: runs resolved before their events (or with none at all)
        for run_id, (outcome, when, hour, revenue, tenant) in sorted(resolved.items()):
            ledger.resolve(run_id, outcome, revenue_usd=revenue, tenant_id=tenant, at=at(when, hour))
    view.add_events(rows)
    if not before:
        for run_id, (outcome, when, hour, revenue, tenant) in sorted(resolved.items()):
            ledger.resolve(run_id, outcome, revenue_usd=revenue, tenant_id=tenant, at=at(when, hour))
    end = first + timedelta(days=length)
    start, stop = _midnight(first), _midnight(end)

    found = ledger.costly_runs(first, end, over=over, free=free, free_outcomes=UNPAID_OUTCOMES)
    r = schema.runs
    with view.transaction() as conn:
        stored = conn.execute(select(r).where(r.c.project_id == view.project)).mappings().all()
    expected = set()
    for run in stored:
        last, first_seen, resolved_at = _utc(run["last_seen"]), _utc(run["first_seen"]), _utc(run["resolved_at"])
        active = (last is not None and last >= start and first_seen < stop) or (
            resolved_at is not None and start <= resolved_at < stop)
        cost, given_revenue, tenant = run["cost_usd"], run["revenue_usd"], run["tenant_id"]
        costly = ((given_revenue is not None and cost > given_revenue)
                  or (given_revenue is None and tenant in over and cost > over[tenant])
                  or (tenant in free and run["outcome"] in UNPAID_OUTCOMES and cost > 0))
        if active and costly:
            expected.add(run["run_id"])
    got = [run["run_id"] for run in found]
    assert len(got) == len(set(got)), "a run read twice"
    if view.engine.dialect.name == "postgresql":
        assert set(got) == expected
    else:  # SQLite compares decimal text as floats, loosely: never fewer, and the caller decides
        assert expected <= set(got)
    by_id = {run["run_id"]: run for run in stored}
    for run in found:
        assert run["cost_usd"] == by_id[run["run_id"]]["cost_usd"]
        assert run["tenant_id"] == by_id[run["run_id"]]["tenant_id"]
