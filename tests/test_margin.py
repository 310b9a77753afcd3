"""Margin: golden tests with the arithmetic written out, for each pricing model, plan changes,
runs and their outcomes, idempotency, groupings, exactness, bad input and the leak rules; and a
property test that every grouping adds up to the total. Every store-level test runs on SQLite
and on PostgreSQL (`TOLLMETER_TEST_POSTGRES`).

Recurring fees are spread over the month's days in steps of 10^-15 USD: a fee of F over a month
of N days is S = F x 10^15 steps, each day gets S // N steps, and the first S % N days one step
more (business/revenue.py). The numbers below are worked out by hand from that rule.
"""

from __future__ import annotations

import csv
import io
import itertools
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, localcontext

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tollmeter.money import EXACT, decimal_text
from tollmeter import Meter, MeterConfig, Plan, PlanError
from tollmeter.business.leaks import LeakSettings
from tollmeter.business.margin import GROUPS, MarginRow, period_label
from tollmeter.store.ledger import Ledger, RunAlreadyResolved
from tollmeter.store.store import Store

from .margin_support import D, UTC, add, at, event, fresh, ledger, store  # noqa: F401 (fixtures)

APR = date(2025, 4, 1)  # April 2025: 30 days
MAY = date(2025, 5, 1)


def day(n: int, month: int = 4, year: int = 2025) -> date:
    return date(year, month, n)


def by(report, *names):
    """The report's rows by their key values."""
    out = {}
    for row in report.rows:
        key = tuple(row.key[n] for n in names)
        assert key not in out
        out[key if len(key) > 1 else key[0]] = row
    return out


def plan(model: str, **amounts) -> dict:
    return {"name": model.replace("_", "-"), "pricing_model": model, **amounts}


def sums(report):
    """(revenue, cost) of the rows added up, exactly (amounts can have more digits than the
    default decimal context keeps): must be the total."""
    with localcontext(EXACT):
        revenue = sum((row.revenue_usd for row in report.rows), D(0))
        cost = sum((row.cost_usd for row in report.rows), D(0))
    return revenue, cost


# The runs of the per_unit / per_resolution goldens: four runs and one call outside any run.
#   r1 (bot-a)  0.40 on Apr 2, resolved  on Apr 2
#   r2 (bot-a)  0.35 on Apr 3, escalated on Apr 3
#   r3 (bot-b)  0.05 on Apr 3, failed    on Apr 3
#   r4 (bot-b)  1.20 on Apr 4, open
#   no run      0.10 on Apr 4
# cost = 0.40 + 0.35 + 0.05 + 1.20 + 0.10 = 2.10
def _four_runs(store, ledger, chosen: dict) -> None:
    ledger.upsert_customer("acme", name="Acme", plan=chosen, effective_from=APR)
    add(store, event(day(2), "0.40", run="r1", agent="bot-a"), event(day(3), "0.35", run="r2", agent="bot-a"),
        event(day(3), "0.05", run="r3", agent="bot-b"), event(day(4), "1.20", run="r4", agent="bot-b"),
        event(day(4), "0.10"))
    ledger.resolve("r1", "resolved", at=at(day(2), 15))
    ledger.resolve("r2", "escalated", at=at(day(3), 15))
    ledger.resolve("r3", "failed", at=at(day(3), 16))


# -- the six pricing models ----------------------------------------------------------------------


def test_per_unit_earns_for_every_resolved_run_whatever_its_outcome(store, ledger):
    _four_runs(store, ledger, plan("per_unit", unit_revenue_usd="2.50"))
    report = ledger.margin("run", since=APR, until=MAY)
    runs = by(report, "run")
    # r1, r2, r3 are resolved (resolved, escalated, failed): 2.50 each; r4 is open: nothing yet
    assert (runs["r1"].revenue_usd, runs["r1"].cost_usd) == (D("2.50"), D("0.40"))
    assert (runs["r2"].revenue_usd, runs["r2"].cost_usd) == (D("2.50"), D("0.35"))
    assert (runs["r3"].revenue_usd, runs["r3"].cost_usd) == (D("2.50"), D("0.05"))
    assert (runs["r4"].revenue_usd, runs["r4"].cost_usd, runs["r4"].runs) == (D(0), D("1.20"), 0)
    assert (runs[None].revenue_usd, runs[None].cost_usd) == (D(0), D("0.10"))
    total = report.total
    # revenue = 3 x 2.50 = 7.50; margin = 7.50 - 2.10 = 5.40 = 72% of 7.50
    assert (total.revenue_usd, total.cost_usd, total.margin_usd, total.margin_pct) == (
        D("7.50"), D("2.10"), D("5.40"), D("72.00"))
    assert (total.runs, total.resolved, total.escalated, total.failed) == (3, 1, 1, 1)
    assert total.resolution_rate == D("0.3333")  # 1 of 3
    assert total.cost_per_resolved_run == D("2.10")  # all the cost / 1 resolved run
    # over 9 resolved runs the quotient repeats: given at the store's precision, 15 decimals
    assert MarginRow({}, cost_usd=D("2.10"), resolved=9).to_dict()["cost_per_resolved_run_usd"] == "0.233333333333333"
    # by day: the revenue of a run is on the day it was resolved
    days = by(ledger.margin("day", since=APR, until=MAY), "day")
    assert {d: (r.revenue_usd, r.cost_usd) for d, r in days.items()} == {
        "2025-04-02": (D("2.50"), D("0.40")), "2025-04-03": (D("5.00"), D("0.40")),
        "2025-04-04": (D(0), D("1.30"))}


def test_per_resolution_earns_only_for_resolved_outcomes(store, ledger):
    _four_runs(store, ledger, plan("per_resolution", unit_revenue_usd="4.00"))
    report = ledger.margin(("agent", "run"), since=APR, until=MAY)
    rows = by(report, "agent", "run")
    assert rows[("bot-a", "r1")].revenue_usd == D("4.00")  # resolved
    assert rows[("bot-a", "r2")].revenue_usd == D(0)  # escalated: nothing, its 0.35 still counts
    assert rows[("bot-a", "r2")].cost_usd == D("0.35")
    assert rows[("bot-b", "r3")].revenue_usd == D(0)  # failed: nothing, its 0.05 still counts
    assert rows[("bot-b", "r4")].revenue_usd == D(0)  # open
    # revenue 4.00, cost 2.10, margin 1.90 = 47.5% of 4.00
    assert (report.total.revenue_usd, report.total.cost_usd, report.total.margin_pct) == (
        D("4.00"), D("2.10"), D("47.50"))
    agents = by(ledger.margin("agent", since=APR, until=MAY), "agent")
    # bot-a: 4.00 - (0.40 + 0.35) = 3.25; bot-b: 0 - (0.05 + 1.20) = -1.25; no agent: -0.10
    assert agents["bot-a"].margin_usd == D("3.25")
    assert agents["bot-b"].margin_usd == D("-1.25") and agents["bot-b"].margin_pct is None
    assert agents[None].margin_usd == D("-0.10")


def test_resolve_time_revenue_overrides_the_plan(store, ledger):
    ledger.upsert_customer("acme", plan=plan("per_resolution", unit_revenue_usd="4"), effective_from=APR)
    add(store, event(day(2), "0.10", run="x"), event(day(2), "0.10", run="y"))
    ledger.resolve("x", "escalated", revenue_usd="1.5", at=at(day(2)))  # escalated, but sold for 1.50
    ledger.resolve("y", "resolved", revenue_usd="0", at=at(day(2)))  # resolved, given away
    runs = by(ledger.margin("run", since=APR, until=MAY), "run")
    assert (runs["x"].revenue_usd, runs["y"].revenue_usd) == (D("1.5"), D(0))


def test_usage_based_markup_on_cost(store, ledger):
    ledger.upsert_customer("acme", plan=plan("usage_based", markup="0.3"), effective_from=APR)
    add(store, event(day(2), "1.10", model="m1"), event(day(2), "0.25", model="m2"),
        event(day(3), "0.000000000000001", model="m1"),
        event(day(3), None, model="unknown", input_tokens=500))  # unpriced: cost 0 for now, flagged
    report = ledger.margin(("day", "model"), since=APR, until=MAY)
    rows = by(report, "day", "model")
    assert rows[("2025-04-02", "m1")].revenue_usd == D("1.430")  # 1.10 x 1.3
    assert rows[("2025-04-02", "m2")].revenue_usd == D("0.325")  # 0.25 x 1.3
    assert rows[("2025-04-03", "m1")].revenue_usd == D("0.0000000000000013")  # 10^-15 x 1.3
    unknown = rows[("2025-04-03", "unknown")]
    assert (unknown.revenue_usd, unknown.cost_usd, unknown.unpriced, unknown.calls) == (D(0), D(0), 1, 1)
    # (1.10 + 0.25 + 0.000000000000001) x 1.3 = 1.350000000000001 x 1.3 = 1.7550000000000013
    assert report.total.revenue_usd == D("1.7550000000000013")
    assert report.total.cost_usd == D("1.350000000000001")
    assert report.total.margin_usd == D("0.4050000000000003")  # = cost x 0.3
    assert report.total.unpriced == 1


def test_usage_based_token_rates(store, ledger):
    ledger.upsert_customer("acme", plan=plan("usage_based", input_rate_mtok="2", output_rate_mtok="8"),
                           effective_from=APR)
    add(store, event(day(2), "0.001", input_tokens=1000, output_tokens=500),
        event(day(2), "0.3", input_tokens=250_000, output_tokens=10_000),
        event(day(3), None, model="unknown", input_tokens=100_000, output_tokens=0))
    rows = by(ledger.margin("day", since=APR, until=MAY), "day")
    # Apr 2: (1,000 x 2 + 500 x 8) / 10^6 = 0.006 and (250,000 x 2 + 10,000 x 8) / 10^6 = 0.58
    assert rows["2025-04-02"].revenue_usd == D("0.586")
    assert rows["2025-04-02"].cost_usd == D("0.301")
    assert (rows["2025-04-02"].input_tokens, rows["2025-04-02"].output_tokens) == (251_000, 10_500)
    # Apr 3: an unpriced call still earns its tokens: 100,000 x 2 / 10^6 = 0.2, at no known cost
    assert (rows["2025-04-03"].revenue_usd, rows["2025-04-03"].cost_usd) == (D("0.2"), D(0))


def test_usage_based_with_a_per_run_unit(store, ledger):
    ledger.upsert_customer("acme", plan=plan("usage_based", markup="0.5", unit_revenue_usd="0.75"),
                           effective_from=APR)
    add(store, event(day(2), "0.20", run="r1"), event(day(2), "0.10", run="r1"), event(day(2), "0.40", run="r2"))
    ledger.resolve("r1", "escalated", at=at(day(2), 18))  # a usage plan's unit is per run, any outcome
    runs = by(ledger.margin("run", since=APR, until=MAY), "run")
    # r1: (0.20 + 0.10) x 1.5 = 0.45, plus its unit 0.75 = 1.20; r2 is open: 0.40 x 1.5 = 0.60
    assert (runs["r1"].revenue_usd, runs["r1"].cost_usd) == (D("1.20"), D("0.30"))
    assert (runs["r2"].revenue_usd, runs["r2"].cost_usd) == (D("0.60"), D("0.40"))
    total = ledger.margin("tenant", since=APR, until=MAY).total
    assert (total.revenue_usd, total.cost_usd, total.margin_usd) == (D("1.80"), D("0.70"), D("1.10"))


def test_per_seat_spread_over_the_month_and_a_seat_change(store, ledger):
    # 7 seats x 10.00 = 70.00 for January (31 days): 70 x 10^15 steps = 31 x 2258064516129032 + 8,
    # so Jan 1..8 get 2.258064516129033 and Jan 9..31 get 2.258064516129032.
    ledger.upsert_customer("acme", plan=plan("per_seat", seat_revenue_usd="10"), seats=7,
                           effective_from=date(2025, 1, 1))
    days = by(ledger.margin("day", since=date(2025, 1, 1), until=date(2025, 2, 1)), "day")
    assert days["2025-01-01"].revenue_usd == days["2025-01-08"].revenue_usd == D("2.258064516129033")
    assert days["2025-01-09"].revenue_usd == days["2025-01-31"].revenue_usd == D("2.258064516129032")
    month = ledger.margin("month", since=date(2025, 1, 1), until=date(2025, 2, 1))
    assert by(month, "month")["2025-01"].revenue_usd == D("70")  # 8 x ..033 + 23 x ..032 = 70 exactly
    # by ISO week: 2025-W01 holds Jan 1..5: 5 x 2.258064516129033 = 11.290322580645165;
    # 2025-W02 holds Jan 6..12: 3 x 2.258064516129033 + 4 x 2.258064516129032 = 15.806451612903227
    weeks = by(ledger.margin("week", since=date(2025, 1, 1), until=date(2025, 2, 1)), "week")
    assert weeks["2025-W01"].revenue_usd == D("11.290322580645165")
    assert weeks["2025-W02"].revenue_usd == D("15.806451612903227")
    assert sum((w.revenue_usd for w in weeks.values()), D(0)) == D("70")
    # 10 seats from Jan 16 (the plan kept): 100 x 10^15 = 31 x 3225806451612903 + 7, and days 16..31
    # are past the 7th: 16 x 3.225806451612903 = 51.612903225806448. Days 1..15 keep 7 seats:
    # 8 x 2.258064516129033 + 7 x 2.258064516129032 = 18.064516129032264 + 15.806451612903224.
    customer = ledger.upsert_customer("acme", seats=10, effective_from=date(2025, 1, 16))
    assert [(s.effective_from, s.seats) for s in customer.history] == [(date(2025, 1, 1), 7), (date(2025, 1, 16), 10)]
    assert customer.history[1].plan.pricing_model == "per_seat"
    report = ledger.margin("tenant", since=date(2025, 1, 1), until=date(2025, 2, 1))
    assert report.total.revenue_usd == D("85.483870967741936")  # 33.870967741935488 + 51.612903225806448
    first_half = ledger.margin("tenant", since=date(2025, 1, 1), until=date(2025, 1, 16))
    assert first_half.total.revenue_usd == D("33.870967741935488")


def test_flat_fee_spread_over_february(store, ledger):
    # 300.00 for February 2025 (28 days): 300 x 10^15 = 28 x 10714285714285714 + 8:
    # Feb 1..8 get 10.714285714285715, Feb 9..28 get 10.714285714285714.
    ledger.upsert_customer("acme", plan=plan("flat", base_revenue_usd="300"), effective_from=date(2025, 2, 1))
    add(store, event(date(2025, 2, 3), "12.5"))
    week = ledger.margin("tenant", since=date(2025, 2, 1), until=date(2025, 2, 8)).total
    assert week.revenue_usd == D("75.000000000000005")  # 7 x 10.714285714285715
    assert week.margin_usd == D("62.500000000000005")  # - 12.50
    days = by(ledger.margin("day", since=date(2025, 2, 1), until=date(2025, 3, 1)), "day")
    assert days["2025-02-08"].revenue_usd == D("10.714285714285715")
    assert days["2025-02-09"].revenue_usd == D("10.714285714285714")
    # By month from Jan 15 to Mar 1 inclusive: nothing in January (no plan yet), exactly 300 in
    # February, and March 1 gets the first share of 300 / 31 days: 300 x 10^15 = 31 x
    # 9677419354838709 + 21, so day 1 gets 9.677419354838710.
    months = by(ledger.margin("month", since=date(2025, 1, 15), until=date(2025, 3, 2)), "month")
    assert set(months) == {"2025-02", "2025-03"}
    assert months["2025-02"].revenue_usd == D("300")
    assert months["2025-03"].revenue_usd == D("9.677419354838710")


def test_hybrid_base_fee_then_overage_after_the_included_runs(store, ledger):
    # base 100 / month with 2 runs included, then 5.00 a run. April (30 days): 100 x 10^15 =
    # 30 x 3333333333333333 + 10: Apr 1..10 get 3.333333333333334, Apr 11..30 get 3.333333333333333.
    ledger.upsert_customer("acme", plan=plan("hybrid", base_revenue_usd="100", included_units=2,
                                             unit_revenue_usd="5"), effective_from=APR)
    for run, n in (("a", 3), ("b", 5), ("c", 7), ("d", 9), ("e", 12), ("f", 20)):
        add(store, event(day(n), "0.5", run=run))
    ledger.resolve("a", "resolved", at=at(day(3)))  # 1st: included
    ledger.resolve("b", "failed", at=at(day(5)))  # 2nd: included (any outcome is a unit)
    ledger.resolve("c", "escalated", at=at(day(7)))  # 3rd: 5.00
    ledger.resolve("d", "resolved", at=at(day(9)))  # 4th: 5.00
    ledger.resolve("e", "resolved", revenue_usd="1.25", at=at(day(12)))  # 5th: its own 1.25
    ledger.resolve("f", "resolved", at=at(day(20)))  # 6th: 5.00
    runs = by(ledger.margin("run", since=APR, until=MAY), "run")
    assert {r: runs[r].revenue_usd for r in "abcdef"} == {
        "a": D(0), "b": D(0), "c": D(5), "d": D(5), "e": D("1.25"), "f": D(5)}
    assert runs[None].revenue_usd == D(100)  # the base fee belongs to no run
    month = ledger.margin("tenant", since=APR, until=MAY).total
    # 100 + 5 + 5 + 1.25 + 5 = 116.25; cost 6 x 0.5 = 3
    assert (month.revenue_usd, month.cost_usd, month.margin_usd) == (D("116.25"), D(3), D("113.25"))
    # From Apr 8 the runs before still rank: d is the 4th run of the month, not the 1st.
    # Base: Apr 8, 9, 10 = 3 x 3.333333333333334 = 10.000000000000002, Apr 11..30 = 20 x
    # 3.333333333333333 = 66.66666666666666; runs d, e, f = 11.25. 76.666666666666662 + 11.25:
    late = ledger.margin("tenant", since=day(8), until=MAY).total
    assert late.revenue_usd == D("87.916666666666662")
    # May: the count starts again, the first 2 runs are included.
    add(store, event(day(2, 5), "0.5", run="g"))
    ledger.resolve("g", "resolved", at=at(day(2, 5)))
    assert by(ledger.margin("run", since=MAY, until=day(3, 5)), "run")["g"].revenue_usd == D(0)


# -- plans over time -------------------------------------------------------------------------------


def test_mid_month_plan_change_keeps_the_old_plan_before(store, ledger):
    jan1, jan16, feb1 = date(2025, 1, 1), date(2025, 1, 16), date(2025, 2, 1)
    ledger.upsert_customer("acme", plan=plan("flat", base_revenue_usd="300"), effective_from=jan1)
    # 300 / 31 days: 300 x 10^15 = 31 x 9677419354838709 + 21: Jan 1..21 get 9.677419354838710.
    before = ledger.margin("day", since=jan1, until=jan16)
    assert before.total.revenue_usd == D("145.16129032258065")  # 15 x 9.677419354838710
    ledger.upsert_customer("acme", plan=plan("flat", base_revenue_usd="620"), effective_from=jan16)
    # the days before Jan 16 keep the old plan, to the last digit
    again = ledger.margin("day", since=jan1, until=jan16)
    assert [(r.key, r.revenue_usd) for r in again.rows] == [(r.key, r.revenue_usd) for r in before.rows]
    # Jan 16..31 under 620 / 31 = 20.00 a day: 16 x 20 = 320
    after = ledger.margin("tenant", since=jan16, until=feb1).total
    assert after.revenue_usd == D("320")
    # the month: the two plans' shares, 145.16129032258065 + 320
    assert ledger.margin("month", since=jan1, until=feb1).total.revenue_usd == D("465.16129032258065")


def test_plan_starting_mid_month_then_changed_mid_month(store, ledger):
    # From Jan 16: 310 a month (31 days in January: 10.00 a day): January holds 16 x 10 = 160.
    # From Feb 15: 560 a month (28 days in February: 20.00 a day). Feb 1..14 keep the 310 plan:
    # 310 x 10^15 = 28 x 11071428571428571 + 12, so Feb 1..12 get 11.071428571428572 and
    # Feb 13, 14 get 11.071428571428571: 132.857142857142864 + 22.142857142857142 = 155.000000000000006
    # (the first days carry the remainder steps: the whole month adds up to 310 exactly).
    # Feb 15..28: 14 x 20 = 280. February: 435.000000000000006.
    ledger.upsert_customer("acme", plan=plan("flat", base_revenue_usd="310"), effective_from=date(2025, 1, 16))
    ledger.upsert_customer("acme", plan=plan("flat", base_revenue_usd="560"), effective_from=date(2025, 2, 15))
    months = by(ledger.margin("month", since=date(2025, 1, 1), until=date(2025, 3, 1)), "month")
    assert months["2025-01"].revenue_usd == D("160")
    assert months["2025-02"].revenue_usd == D("435.000000000000006")
    halves = ledger.margin("tenant", since=date(2025, 2, 1), until=date(2025, 2, 15)).total
    assert halves.revenue_usd == D("155.000000000000006")
    days = by(ledger.margin("day", since=date(2025, 1, 15), until=date(2025, 1, 17)), "day")
    assert set(days) == {"2025-01-16"}  # no plan on Jan 15: no revenue, no row


def test_plan_change_between_usage_and_per_unit(store, ledger):
    # usage_based (+100%) until Apr 15, per_unit 3.00 from Apr 16.
    ledger.upsert_customer("acme", plan=plan("usage_based", markup="1"), effective_from=APR)
    ledger.upsert_customer("acme", plan=plan("per_unit", unit_revenue_usd="3"), effective_from=day(16))
    add(store, event(day(10), "0.50", run="r"), event(day(20), "0.50", run="s"))
    ledger.resolve("r", "resolved", at=at(day(12)))  # under usage_based (no unit): 0
    ledger.resolve("s", "resolved", at=at(day(20)))  # under per_unit: 3.00
    runs = by(ledger.margin("run", since=APR, until=MAY), "run")
    assert runs["r"].revenue_usd == D("1.00")  # 0.50 x (1 + 1), on Apr 10
    assert runs["s"].revenue_usd == D("3")  # its usage on Apr 20 earns nothing under per_unit
    total = ledger.margin("tenant", since=APR, until=MAY).total
    assert (total.revenue_usd, total.cost_usd) == (D("4.00"), D("1.00"))


def test_the_same_plan_set_twice_on_a_day_is_one_span(store, ledger):
    chosen = Plan("pro", "flat", base_revenue_usd=D("30"))
    ledger.upsert_customer("acme", plan=chosen, effective_from=APR)
    customer = ledger.upsert_customer("acme", plan=chosen.to_dict(), effective_from=APR)
    assert len(customer.history) == 1 and customer.history[0].plan == chosen
    assert ledger.margin("tenant", since=APR, until=MAY).total.revenue_usd == D("30")


# -- runs: open, resolved, idempotent, late events ---------------------------------------------------


def test_an_open_run_earns_nothing_until_resolved_but_its_cost_counts(store, ledger):
    ledger.upsert_customer("acme", plan=plan("per_unit", unit_revenue_usd="2"), effective_from=APR)
    add(store, event(day(2), "0.7", run="t-1"))
    row = by(ledger.margin("run", since=APR, until=MAY), "run")["t-1"]
    assert (row.revenue_usd, row.cost_usd, row.margin_usd, row.runs) == (D(0), D("0.7"), D("-0.7"), 0)
    ledger.resolve("t-1", "resolved", at=at(day(5)))
    row = by(ledger.margin("run", since=APR, until=MAY), "run")["t-1"]
    assert (row.revenue_usd, row.cost_usd, row.margin_usd, row.runs) == (D(2), D("0.7"), D("1.3"), 1)
    # the revenue is on the day it was resolved, the cost on the days it was spent
    days = by(ledger.margin("day", since=APR, until=MAY), "day")
    assert (days["2025-04-02"].revenue_usd, days["2025-04-05"].revenue_usd) == (D(0), D(2))


def test_resolve_is_idempotent(store, ledger):
    ledger.upsert_customer("acme", plan=plan("per_unit", unit_revenue_usd="2"), effective_from=APR)
    add(store, event(day(2), "0.5", run="t-1"), event(day(2), "0.5", run="t-2"), event(day(2), "0.5", run="t-3"))
    first = ledger.resolve("t-1", "resolved", revenue_usd="2.5", at=at(day(3)))
    assert not first.duplicate and (first.outcome, first.revenue_usd) == ("resolved", D("2.5"))
    # the same again (a retry, later): one resolution, the first one's time
    again = ledger.resolve("t-1", "resolved", revenue_usd="2.5", at=at(day(4)))
    assert again.duplicate and again.resolved_at == at(day(3))
    assert ledger.resolve("t-1", "resolved", at=at(day(4))).duplicate  # no revenue given: the same
    # differently: refused, the first stands
    with pytest.raises(RunAlreadyResolved, match="t-1"):
        ledger.resolve("t-1", "failed", at=at(day(4)))
    with pytest.raises(RunAlreadyResolved):
        ledger.resolve("t-1", "resolved", revenue_usd="3", at=at(day(4)))
    assert isinstance(RunAlreadyResolved("x"), ValueError)
    # the same idempotency key: the retry of that resolution, whatever it says now
    ledger.resolve("t-2", "escalated", key="ticket-2#resolve", at=at(day(3)))
    retried = ledger.resolve("t-2", "resolved", key="ticket-2#resolve", at=at(day(4)))
    assert retried.duplicate and retried.outcome == "escalated"
    with pytest.raises(RunAlreadyResolved):
        ledger.resolve("t-2", "resolved", key="another-key", at=at(day(4)))
    runs = by(ledger.margin("run", since=APR, until=MAY), "run")
    assert (runs["t-1"].revenue_usd, runs["t-1"].resolved) == (D("2.5"), 1)  # booked once
    assert (runs["t-2"].revenue_usd, runs["t-2"].escalated, runs["t-2"].resolved) == (D(2), 1, 0)
    total = ledger.margin("tenant", since=APR, until=MAY).total
    assert (total.runs, total.revenue_usd) == (2, D("4.5"))
    stored = ledger.run("t-1")
    assert (stored["outcome"], stored["revenue_usd"]) == ("resolved", D("2.5"))


def test_a_run_resolved_before_its_events_arrive(store, ledger):
    ledger.upsert_customer("acme", plan=plan("per_unit", unit_revenue_usd="2"), effective_from=APR)
    ledger.resolve("late", "resolved", tenant_id="acme", agent_id="bot", at=at(day(5)))
    runs = by(ledger.margin(("agent", "run"), since=APR, until=MAY), "agent", "run")
    assert (runs[("bot", "late")].revenue_usd, runs[("bot", "late")].cost_usd) == (D(2), D(0))
    # its events arrive afterwards (one dated before the resolution, one after): they add up
    add(store, event(day(4), "0.3", run="late", agent="bot"), event(day(6), "0.2", run="late", agent="bot"))
    runs = by(ledger.margin(("agent", "run"), since=APR, until=MAY), "agent", "run")
    late = runs[("bot", "late")]
    assert (late.revenue_usd, late.cost_usd, late.margin_usd, late.runs) == (D(2), D("0.5"), D("1.5"), 1)
    # resolved without its tenant: known once its events say whose it is
    ledger.resolve("orphan", "resolved", at=at(day(7)))
    tenants = by(ledger.margin("tenant", since=APR, until=MAY), "tenant")
    assert None not in tenants or tenants[None].revenue_usd == D(0)  # no tenant: no plan, no revenue
    add(store, event(day(7), "0.1", run="orphan"))
    assert ledger.run("orphan")["tenant_id"] == "acme"
    runs = by(ledger.margin("run", since=APR, until=MAY), "run")
    assert (runs["orphan"].revenue_usd, runs["orphan"].cost_usd) == (D(2), D("0.1"))
    assert by(ledger.margin("tenant", since=APR, until=MAY), "tenant")["acme"].revenue_usd == D(4)


def test_resolving_an_unknown_run_is_recorded_not_a_crash(store, ledger):
    stored = ledger.resolve("never-seen", "resolved", revenue_usd="5", at=at(day(3)))
    assert (stored.tenant_id, stored.outcome, stored.revenue_usd) == (None, "resolved", D(5))
    report = ledger.margin(("tenant", "run"), since=APR, until=MAY)
    row = by(report, "tenant", "run")[(None, "never-seen")]
    assert (row.revenue_usd, row.cost_usd, row.resolved) == (D(5), D(0), 1)


def test_meter_manual_events_and_resolutions_are_idempotent(store):
    """Through the public API: the same idempotency key twice is stored once."""
    meter = Meter(MeterConfig(store=store.url, flush_interval=0.05))
    try:
        meter.upsert_customer("acme", name="Acme", plan={"name": "tickets", "pricing_model": "per_unit",
                                                        "unit_revenue_usd": "2"}, effective_from=date(2000, 1, 1))
        for _ in range(2):  # a retried job
            first = meter.track_manually(provider="acme-ai", model="m1", cost_usd="0.25", tenant_id="acme",
                                         run_id="ticket-4711", agent_id="bot", idempotency_key="ticket-4711#step-1")
            second = meter.track_manually(provider="acme-ai", model="m1", cost_usd="0.000000000000001",
                                          tenant_id="acme", run_id="ticket-4711", agent_id="bot",
                                          idempotency_key="ticket-4711#step-2")
            meter.resolve("ticket-4711", "resolved", tenant_id="acme", idempotency_key="ticket-4711#resolve")
            assert meter.flush(10)
        assert first.event_id != second.event_id
        assert store.count_events() == 2
        today = datetime.now(timezone.utc).date()
        around = dict(since=today - timedelta(days=1), until=today + timedelta(days=2))
        report = meter.margin("run", **around)
        row = by(report, "run")["ticket-4711"]
        # 0.25 + 0.000000000000001, booked once; revenue 2 once
        assert (row.cost_usd, row.revenue_usd, row.calls, row.runs) == (D("0.250000000000001"), D(2), 2, 1)
        assert meter.margin("tenant", **around).total.cost_usd == D("0.250000000000001")
        customer = meter.customer("acme")
        assert customer is not None and customer.plan.unit_revenue_usd == D(2) and customer.name == "Acme"
        # with meter.run(...) as run: the calls inside are the run's
        with meter.run("ticket-4712", tenant="acme", agent="bot") as run:
            meter.track_manually(provider="acme-ai", model="m1", cost_usd="0.5", idempotency_key="ticket-4712#1")
            run.resolve("failed")
        assert meter.flush(10)
        row = by(meter.margin("run", **around), "run")["ticket-4712"]
        assert (row.cost_usd, row.revenue_usd, row.failed) == (D("0.5"), D(2), 1)  # per_unit: any outcome
    finally:
        meter.shutdown()


def test_meter_rejects_bad_manual_costs_and_resolutions_at_once(store):
    meter = Meter(MeterConfig(store=store.url, flush_interval=0.05))
    try:
        for bad in ("-0.01", "NaN", "Infinity", float("inf")):
            with pytest.raises(ValueError, match="cost_usd"):
                meter.track_manually(provider="acme-ai", model="m1", cost_usd=bad, tenant_id="acme")
        with pytest.raises(ValueError, match="outcome"):
            meter.resolve("t-1", "done")
        with pytest.raises(ValueError, match="revenue_usd"):
            meter.resolve("t-1", "resolved", revenue_usd="-5")
        assert meter.flush(10)
        assert store.count_events() == 0
        assert Ledger(store).run("t-1") is None
    finally:
        meter.shutdown()


def test_meter_a_cost_too_large_for_the_store_never_loses_the_batch(store):
    """Money is NUMERIC(30, 15) on PostgreSQL (below 10^15). track_manually must refuse a cost
    the store cannot hold (ValueError naming cost_usd), or store it: the other events queued
    with it must be stored either way."""
    faults = []
    meter = Meter(MeterConfig(store=store.url, flush_interval=30, on_error=faults.append))
    try:
        meter.track_manually(provider="acme-ai", model="m1", cost_usd="0.5", tenant_id="acme")
        try:
            meter.track_manually(provider="acme-ai", model="m1", cost_usd="1e15", tenant_id="acme")
            expected = 2
        except ValueError as refused:
            assert "cost_usd" in str(refused)
            expected = 1
        assert meter.flush(10)
        assert store.count_events() == expected, faults
    finally:
        meter.shutdown()


# -- groupings, days, exactness ------------------------------------------------------------------------


def test_groupings_by_week_and_month_across_a_year_end(store, ledger):
    # 310 a month in December and January (31 days each): 10.00 a day.
    # Dec 29 2024 is a Sunday (2024-W52); Dec 30 starts ISO week 2025-W01; Jan 6 starts 2025-W02.
    ledger.upsert_customer("acme", plan=plan("flat", base_revenue_usd="310"), effective_from=date(2024, 12, 1))
    add(store, event(date(2024, 12, 29), "1"), event(date(2024, 12, 30), "2"), event(date(2025, 1, 1), "3"),
        event(date(2025, 1, 6), "4"))
    since, until = date(2024, 12, 29), date(2025, 1, 7)  # 9 days: Dec 29..31, Jan 1..6
    weeks = by(ledger.margin("week", since=since, until=until), "week")
    assert {w: (r.revenue_usd, r.cost_usd) for w, r in weeks.items()} == {
        "2024-W52": (D(10), D(1)),  # Dec 29
        "2025-W01": (D(70), D(5)),  # Dec 30 .. Jan 5: 7 days; 2 + 3
        "2025-W02": (D(10), D(4)),  # Jan 6
    }
    months = by(ledger.margin("month", since=since, until=until), "month")
    assert {m: (r.revenue_usd, r.cost_usd) for m, r in months.items()} == {
        "2024-12": (D(30), D(3)), "2025-01": (D(60), D(7))}
    both = by(ledger.margin(("month", "week"), since=since, until=until), "month", "week")
    assert {k: (r.revenue_usd, r.cost_usd) for k, r in both.items()} == {
        ("2024-12", "2024-W52"): (D(10), D(1)), ("2024-12", "2025-W01"): (D(20), D(2)),
        ("2025-01", "2025-W01"): (D(50), D(3)), ("2025-01", "2025-W02"): (D(10), D(4))}
    for report in (ledger.margin(g, since=since, until=until) for g in ("week", "month", ("month", "week"))):
        assert (report.total.revenue_usd, report.total.cost_usd) == (D(90), D(10))


def test_days_are_utc_days(store, ledger):
    ledger.upsert_customer("acme", plan=plan("per_unit", unit_revenue_usd="1"), effective_from=date(2025, 1, 1))
    minus2, plus2 = timezone(timedelta(hours=-2)), timezone(timedelta(hours=2))
    add(store, event(datetime(2025, 1, 31, 23, 30, tzinfo=minus2), "1"),  # Feb 1, 01:30 UTC
        event(datetime(2025, 2, 1, 0, 30, tzinfo=plus2), "2"),  # Jan 31, 22:30 UTC
        event(datetime(2025, 2, 1, 0, 0, tzinfo=UTC), "4", run="edge"))  # midnight belongs to Feb 1
    ledger.resolve("edge", "resolved", at=datetime(2025, 1, 31, 20, 0, tzinfo=timezone(timedelta(hours=-5))))
    days = by(ledger.margin("day", since=date(2025, 1, 30), until=date(2025, 2, 3)), "day")
    assert {d: (r.cost_usd, r.revenue_usd) for d, r in days.items()} == {
        "2025-01-31": (D(2), D(0)), "2025-02-01": (D(5), D(1))}  # resolved Feb 1, 01:00 UTC
    # since/until: a day is in when its midnight is in [since, until)
    report = ledger.margin("day", since=datetime(2025, 1, 31, 6, tzinfo=UTC), until=date(2025, 2, 3))
    assert [r.key["day"] for r in report.rows] == ["2025-02-01"]
    report = ledger.margin("day", since=date(2025, 1, 30), until=datetime(2025, 2, 1, 0, 0, 1, tzinfo=UTC))
    assert [r.key["day"] for r in report.rows] == ["2025-01-31", "2025-02-01"]


def test_money_is_exact_decimal_never_float(store, ledger):
    ledger.upsert_customer("acme", plan=plan("usage_based", markup="0.1"), effective_from=APR)
    add(store, event(day(2), "0.1", model="a"), event(day(2), "0.2", model="b"),
        *(event(day(3), "0.000000000000001", model="a") for _ in range(3)),
        event(day(4), "999999.999999999999999", model="c"), event(day(4), "0.000000000000001", model="c"))
    report = ledger.margin(("day", "model"), since=APR, until=MAY)
    rows = by(report, "day", "model")
    assert 0.1 + 0.2 != 0.3  # what floats would have said
    assert rows[("2025-04-02", "a")].cost_usd + rows[("2025-04-02", "b")].cost_usd == D("0.3")
    assert rows[("2025-04-03", "a")].cost_usd == D("0.000000000000003")
    assert rows[("2025-04-04", "c")].cost_usd == D("1000000")  # 999999.999999999999999 + 10^-15
    for row in [*report.rows, report.total]:
        for value in (row.revenue_usd, row.cost_usd, row.margin_usd):
            assert type(value) is Decimal
    # revenue: 0.1 x 1.1 + 0.2 x 1.1 = 0.33; cost total 1000000.300000000000003
    assert report.total.cost_usd == D("1000000.300000000000003")
    assert report.total.revenue_usd == D("1100000.3300000000000033")
    # the CSV form: exact decimal text that adds up to the total's text
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(report.rows[0].to_dict()))
    writer.writeheader()
    for row in report.rows:
        writer.writerow(row.to_dict())
    parsed = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert parsed[0]["cost_usd"] == "0.1" and parsed[0]["revenue_usd"] == "0.11"
    assert sum((D(r["cost_usd"]) for r in parsed), D(0)) == D(report.total.to_dict()["cost_usd"])
    assert sum((D(r["margin_usd"]) for r in parsed), D(0)) == D(report.total.to_dict()["margin_usd"])
    assert report.total.to_dict()["cost_usd"] == "1000000.300000000000003"
    for r in parsed:  # plain decimal text: no exponent (1E-15), no float noise
        for name in ("revenue_usd", "cost_usd", "margin_usd"):
            assert "E" not in r[name].upper() and D(r[name]) == D(r[name]).quantize(D("1e-16"))


def test_counts_are_whole_numbers_on_every_database(store, ledger):
    """calls, tokens and unpriced are ints (JSON numbers like 2, not 2.0 or "2"), on PostgreSQL too."""
    ledger.upsert_customer("acme", plan=plan("per_unit", unit_revenue_usd="1"), effective_from=APR)
    add(store, event(day(2), "0.5", run="r", input_tokens=1200, output_tokens=300),
        event(day(2), None, model="unknown", input_tokens=10))
    ledger.resolve("r", "resolved", at=at(day(2)))
    for groups in ((), ("tenant",), ("run", "model"), ("agent", "day")):
        report = ledger.margin(groups, since=APR, until=MAY)
        for row in [*report.rows, report.total]:
            counts = {name: getattr(row, name) for name in ("calls", "input_tokens", "output_tokens", "unpriced",
                                                             "runs", "resolved")}
            assert {name: type(value) for name, value in counts.items()} == dict.fromkeys(counts, int), groups
    total = ledger.margin((), since=APR, until=MAY).total.to_dict()
    assert (total["calls"], total["input_tokens"], total["output_tokens"], total["unpriced"]) == (2, 1210, 300, 1)
    assert all(type(total[k]) is int for k in ("calls", "input_tokens", "output_tokens", "unpriced"))


def test_a_tiny_revenue_against_a_large_cost_still_reports(store, ledger):
    """A valid plan can earn a tiny amount: 10^-15 USD per million input tokens on 1 token is
    10^-21 USD. Against 50,000 USD of cost the margin is -5 x 10^24 % of revenue: the report must
    still be made and serialised (margin_pct has more digits than the default 28-digit context)."""
    ledger.upsert_customer("acme", plan=plan("usage_based", input_rate_mtok="0.000000000000001"),
                           effective_from=APR)
    add(store, event(day(2), "50000", input_tokens=1))
    report = ledger.margin("tenant", since=APR, until=MAY)
    assert report.total.revenue_usd == D("1e-21") and report.total.cost_usd == D(50000)
    assert report.total.margin_pct < 0
    assert report.to_dict()["total"]["cost_usd"] == "50000"


def test_margin_by_every_group_names_its_keys(store, ledger):
    ledger.upsert_customer("acme", plan=plan("per_unit", unit_revenue_usd="1"), effective_from=APR)
    add(store, event(day(2), "0.5", run="r", agent="bot", model="m1"))
    ledger.resolve("r", "resolved", at=at(day(2)))
    report = ledger.margin(GROUPS, since=APR, until=MAY)
    keys = [row.key for row in report.rows]
    assert {"tenant": "acme", "run": "r", "agent": "bot", "model": "m1", "day": "2025-04-02", "week": "2025-W14",
            "month": "2025-04"} in keys
    # the run's revenue belongs to the run and its agent, to no model
    assert {"tenant": "acme", "run": "r", "agent": "bot", "model": None, "day": "2025-04-02", "week": "2025-W14",
            "month": "2025-04"} in keys
    assert report.to_dict()["group_by"] == list(GROUPS)


def test_usage_revenue_is_the_same_whatever_the_grouping_with_a_fine_markup(store, ledger):
    """A markup with 15 decimals (a valid plan) on costs with 15 decimals: cost x (1 + markup)
    has 33 digits. However it is rounded, the total must not depend on the grouping."""
    ledger.upsert_customer("acme", plan=plan("usage_based", markup="0.333333333333333"), effective_from=APR)
    add(store, event(day(2), "82.030920993190389", model="m1"), event(day(2), "9.094652364241860", model="m2"))
    # exact: (82.030920993190389 + 9.094652364241860) x 1.333333333333333
    #      = 91.125573357432249 x 1.333333333333333 = 121.500764476576301624808880855917
    #      = 109.374561324253824656359668936537 (m1) + 12.126203152322476968449211919380 (m2)
    exact = D("121.500764476576301624808880855917")
    whole = ledger.margin((), since=APR, until=MAY).total.revenue_usd
    by_model = ledger.margin("model", since=APR, until=MAY)
    assert abs(whole - exact) < D("1e-15") and abs(by_model.total.revenue_usd - exact) < D("1e-15")
    assert sums(by_model)[0] == by_model.total.revenue_usd
    assert by_model.total.revenue_usd == whole  # the same total, grouped or not


@pytest.mark.parametrize("plan_cohorts", [8, 0])
def test_customers_summed_together_earn_what_each_earns_alone(store, ledger, monkeypatch, plan_cohorts):
    """A report without a tenant key sums customers together where what they earn follows one
    rule (the same recurring fees every day; the same usage_based plan all through the range)
    and per customer otherwise: it must hold what the per-customer report adds up to, day by
    day and agent by agent (`plan_cohorts` 0: every usage_based customer read per customer)."""
    import tollmeter.business.margin as margin_module

    monkeypatch.setattr(margin_module, "_PLAN_COHORTS", plan_cohorts)
    flat, seats = plan("flat", base_revenue_usd="30.000000000000001"), plan("per_seat", seat_revenue_usd="7")
    usage, other_usage = plan("usage_based", markup="0.25"), plan("usage_based", input_rate_mtok="3")
    for tenant, chosen, count in (("f1", flat, None), ("f2", flat, None), ("f3", flat, None), ("s1", seats, 3),
                                  ("s2", seats, 3), ("s3", seats, 4), ("u1", usage, None), ("u2", usage, None),
                                  ("u3", other_usage, None), ("c1", usage, None)):
        ledger.upsert_customer(tenant, plan=chosen, seats=count, effective_from=APR)
    ledger.upsert_customer("c1", plan=flat, effective_from=day(10))  # c1 leaves usage pricing mid-range
    ledger.upsert_customer("f3", plan=seats, seats=2, effective_from=day(12))
    ledger.upsert_customer("f4", plan=flat, effective_from=APR)  # f3's fees, changed on another day
    ledger.upsert_customer("f4", plan=seats, seats=2, effective_from=day(15))
    rows = []
    for n, tenant in enumerate(("f1", "s1", "u1", "u2", "u3", "c1", "c1", "nobody", None) * 3):
        rows.append(event(day(3 + 4 * (n % 5)), f"0.{n + 1:02d}3", tenant=tenant, agent=("a1", "a2", None)[n % 3],
                          input_tokens=1000 * (n + 1), output_tokens=10 * n))
    add(store, *rows)
    since, until = day(2), day(25)
    per_tenant = ledger.margin(("tenant", "day", "agent"), since=since, until=until)
    for groups in (("day",), ("agent",), ("day", "agent"), ("week",), ()):
        expected: dict[tuple, tuple] = {}
        for row in per_tenant.rows:
            key = tuple(row.key[g] if g != "week" else period_label("week", date.fromisoformat(row.key["day"]))
                        for g in groups)
            revenue, cost, calls = expected.get(key, (D(0), D(0), 0))
            expected[key] = (revenue + row.revenue_usd, cost + row.cost_usd, calls + row.calls)
        report = ledger.margin(groups, since=since, until=until)
        got = {tuple(row.key[g] for g in groups): (row.revenue_usd, row.cost_usd, row.calls) for row in report.rows}
        assert got == {k: v for k, v in expected.items() if k in got}, groups
        assert all(v == (D(0), D(0), 0) for k, v in expected.items() if k not in got), groups


def test_a_naive_resolve_time_is_utc_as_event_times_are(store, ledger, monkeypatch):
    """Event rows take a timestamp without an offset as UTC (store/rows.py); a resolution given
    one must not be read in the machine's local time zone (refusing it would do too)."""
    import time as clock

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    clock.tzset()
    try:
        try:
            stored = ledger.resolve("r", "resolved", at=datetime(2025, 4, 3, 20, 0))
        except PlanError as refused:
            assert "at" in str(refused) or "resolved_at" in str(refused)
            return
        assert stored.resolved_at == datetime(2025, 4, 3, 20, 0, tzinfo=UTC)
    finally:
        monkeypatch.delenv("TZ")
        clock.tzset()


def test_leaks_and_margin_use_utc_days_whatever_the_postgres_session_time_zone():
    """A PostgreSQL server (or role) whose TimeZone is not UTC returns timestamps in that zone:
    the days of margin and of the leak rules must still be UTC days."""
    from .server_support import database_for

    url, drop = database_for("postgres")
    tokyo = Store(url + "%20-ctimezone%3DAsia%2FTokyo")  # options=-csearch_path=... -ctimezone=Asia/Tokyo
    try:
        ledger = Ledger(tokyo)
        # 1.00 a run until Apr 3, 5.00 a run from Apr 4; run r costs 2.00 and is resolved on
        # Apr 3 at 20:00 UTC (Apr 4, 05:00 in Tokyo): it earns 1.00, its cost is over its revenue.
        ledger.upsert_customer("acme", plan=plan("per_unit", unit_revenue_usd="1"), effective_from=APR)
        ledger.upsert_customer("acme", plan=plan("per_unit", unit_revenue_usd="5"), effective_from=day(4))
        add(tokyo, event(at(day(3), 10), "2", run="r"))
        ledger.resolve("r", "resolved", at=at(day(3), 20))
        row = by(ledger.margin("run", since=APR, until=MAY), "run")["r"]
        assert (row.revenue_usd, row.cost_usd) == (D(1), D(2))
        found = flags(ledger.leaks(QUIET, today=TODAY), "run_over_unit_revenue")
        assert [(f.subject_id, f.numbers["revenue_usd"]) for f in found] == [("r", D(1))]
    finally:
        tokyo.close()
        drop()


def test_meter_same_idempotency_key_twice_in_one_batch_books_one_copy_everywhere(store):
    """A retried job that records the same step twice before a flush (with a cost that changed
    in between): one event is stored, and margin and spend must be that event's cost."""
    from sqlalchemy import select

    from tollmeter.store import schema

    meter = Meter(MeterConfig(store=store.url, flush_interval=30))
    try:
        meter.track_manually(provider="acme-ai", model="m1", cost_usd="0.25", tenant_id="acme",
                             idempotency_key="job-1#step-1")
        meter.track_manually(provider="acme-ai", model="m1", cost_usd="9.75", tenant_id="acme",
                             idempotency_key="job-1#step-1")
        assert meter.flush(10)
        with store.transaction() as conn:
            [kept] = conn.execute(select(schema.events.c.cost_usd)).scalars().all()
        today = datetime.now(timezone.utc).date()
        report = meter.margin("tenant", since=today - timedelta(days=1), until=today + timedelta(days=2))
        assert report.total.calls == 1
        assert report.total.cost_usd == kept
        assert store.spent("acme")["total"] == kept
    finally:
        meter.shutdown()


# -- bad input: a clear error naming the field, nothing stored -----------------------------------------

BAD_PLANS = [
    (plan("per_unit", unit_revenue_usd="-1"), "unit_revenue_usd"),
    (plan("per_unit", unit_revenue_usd="NaN"), "unit_revenue_usd"),
    (plan("per_unit", unit_revenue_usd=float("nan")), "unit_revenue_usd"),
    (plan("flat", base_revenue_usd="Infinity"), "base_revenue_usd"),
    (plan("flat", base_revenue_usd=float("-inf")), "base_revenue_usd"),
    (plan("flat", base_revenue_usd="12,50"), "base_revenue_usd"),
    (plan("flat", base_revenue_usd=True), "base_revenue_usd"),
    (plan("per_unit", unit_revenue_usd="0.0000000000000001"), "unit_revenue_usd"),  # 16 decimals
    (plan("per_unit", unit_revenue_usd="1e12"), "unit_revenue_usd"),
    (plan("per_seat", seat_revenue_usd="-10"), "seat_revenue_usd"),
    (plan("usage_based", markup="-1.5"), "markup"),
    (plan("usage_based", input_rate_mtok="-2"), "input_rate_mtok"),
    (plan("per_token", unit_revenue_usd="1"), "pricing_model"),
    (plan("per_unit"), "unit_revenue_usd"),  # a plan without its amount
    (plan("per_resolution", base_revenue_usd="10"), "unit_revenue_usd"),
    (plan("flat"), "base_revenue_usd"),
    (plan("per_seat"), "seat_revenue_usd"),
    (plan("usage_based"), "markup"),
    (plan("hybrid", base_revenue_usd="100", unit_revenue_usd="5"), "included_units"),
    (plan("hybrid", base_revenue_usd="100", included_units=2), "unit_revenue_usd"),
    (plan("hybrid", base_revenue_usd="100", included_units=-1, unit_revenue_usd="5"), "included_units"),
    (plan("hybrid", base_revenue_usd="100", included_units="2", unit_revenue_usd="5"), "included_units"),
    (plan("hybrid", base_revenue_usd="100", included_units=2.5, unit_revenue_usd="5"), "included_units"),
    (plan("per_unit", unit_revenue_usd="1", price_usd="2"), "price_usd"),  # unknown field
    ({"pricing_model": "flat", "base_revenue_usd": "1"}, "name"),
    ({"name": "x", "base_revenue_usd": "1"}, "pricing_model"),
    ({"name": "", "pricing_model": "flat", "base_revenue_usd": "1"}, "name"),
]


@pytest.mark.parametrize("bad,field", BAD_PLANS, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_PLANS)])
def test_a_bad_plan_is_refused_naming_the_field_and_nothing_is_stored(store, ledger, bad, field):
    with pytest.raises(PlanError, match=field) as caught:
        ledger.upsert_customer("acme", name="Acme", plan=bad, effective_from=APR)
    assert isinstance(caught.value, ValueError)
    assert ledger.customer("acme") is None  # not even the customer's name
    # an existing customer keeps its plan
    ledger.upsert_customer("acme", plan=plan("flat", base_revenue_usd="30"), effective_from=APR)
    with pytest.raises(PlanError, match=field):
        ledger.upsert_customer("acme", name="Renamed", plan=bad, effective_from=APR)
    customer = ledger.customer("acme")
    assert customer.name is None and [s.plan.base_revenue_usd for s in customer.history] == [D(30)]


@pytest.mark.parametrize("seats", [-1, 2.5, "3", True, 2**31])
def test_bad_seats_are_refused(store, ledger, seats):
    with pytest.raises(PlanError, match="seats"):
        ledger.upsert_customer("acme", plan=plan("per_seat", seat_revenue_usd="10"), seats=seats,
                               effective_from=APR)
    assert ledger.customer("acme") is None


def test_a_per_seat_plan_needs_seats_and_seats_need_a_plan(store, ledger):
    with pytest.raises(PlanError, match="seats"):
        ledger.upsert_customer("acme", plan=plan("per_seat", seat_revenue_usd="10"), effective_from=APR)
    with pytest.raises(PlanError, match="plan"):
        ledger.upsert_customer("acme", seats=3, effective_from=APR)
    assert ledger.customer("acme") is None
    assert ledger.customers() == []


def test_bad_resolutions_are_refused_and_nothing_is_stored(store, ledger):
    add(store, event(day(2), "0.5", run="t-1"))
    for kwargs, field in ((dict(outcome="done"), "outcome"), (dict(outcome=None), "outcome"),
                          (dict(outcome="resolved", revenue_usd="-1"), "revenue_usd"),
                          (dict(outcome="resolved", revenue_usd="NaN"), "revenue_usd"),
                          (dict(outcome="resolved", revenue_usd=float("inf")), "revenue_usd"),
                          (dict(outcome="resolved", revenue_usd="abc"), "revenue_usd"),
                          (dict(outcome="resolved", tenant_id=""), "tenant_id")):
        outcome = kwargs.pop("outcome")
        with pytest.raises(PlanError, match=field):
            ledger.resolve("t-1", outcome, at=at(day(3)), **kwargs)
        with pytest.raises(PlanError, match=field):
            ledger.resolve("t-new", outcome, at=at(day(3)), **kwargs)
    with pytest.raises(PlanError, match="run_id"):
        ledger.resolve("", "resolved")
    assert ledger.run("t-1")["outcome"] is None  # still open
    assert ledger.run("t-new") is None
    assert ledger.margin("run", since=APR, until=MAY).total.runs == 0


def test_bad_report_arguments_name_what_is_wrong(store, ledger):
    with pytest.raises(PlanError, match="'year'"):
        ledger.margin("year")
    with pytest.raises(PlanError, match="'tenant'"):
        ledger.margin(("tenant", "day", "tenant"))
    with pytest.raises(PlanError, match="until"):
        ledger.margin("tenant", since=MAY, until=APR)
    with pytest.raises(PlanError, match="since"):
        ledger.margin("tenant", since="2025-04-01")
    for name, value in (("margin_floor_pct", "-1"), ("spike_factor", "NaN"), ("spike_min_usd", "x"),
                        ("spike_window_days", 0), ("projection_days", 1.5)):
        with pytest.raises(PlanError, match=name):
            LeakSettings(**{name: value})


# -- leak rules (today pinned: Apr 10, 2025) -------------------------------------------------------------

TODAY = day(10)
QUIET = LeakSettings(spike_min_usd=D(10**6))  # no spikes: the rule under test alone


def flags(found, rule=None, subject_id=None):
    return [f for f in found if (rule is None or f.rule == rule) and (subject_id is None or f.subject_id == subject_id)]


def test_leak_cost_over_revenue(store, ledger):
    # hooli: 30.00 a month (1.00 a day in April), 2.00 a day of cost from Apr 3. Running cost
    # against running revenue: Apr 3: 2 vs 3; Apr 4: 4 vs 4 (not over); Apr 5: 6 vs 5, over since
    # the 5th. By Apr 10: cost 8 x 2 = 16, revenue 10: -6.00.
    for who in ("hooli", "initech"):
        ledger.upsert_customer(who, plan=plan("flat", base_revenue_usd="30"), effective_from=date(2025, 3, 1))
    add(store, *(event(day(n), "2", tenant="hooli") for n in range(3, 11)))
    # initech: 0.50 a day: 5.00 against 10.00, never over, and not projected to be
    add(store, *(event(day(n), "0.5", tenant="initech") for n in range(1, 11)))
    found = ledger.leaks(QUIET, today=TODAY)
    [leak] = flags(found, subject_id="hooli")
    assert (leak.rule, leak.subject, leak.tenant_id, leak.since) == ("cost_over_revenue", "customer", "hooli", day(5))
    assert leak.numbers == {"cost_usd": D(16), "revenue_usd": D(10), "margin_usd": D(-6)}
    assert leak.message == "hooli costs more than its plan brings in: -$6.00 this month, since the 5th"
    assert leak.to_dict()["numbers"] == {"cost_usd": "16", "revenue_usd": "10", "margin_usd": "-6"}
    assert flags(found, subject_id="initech") == []


def test_leak_projected_over_revenue(store, ledger):
    # globex: 30.00 a month (1.00 a day), 1.90 a day of cost from Apr 6: by Apr 10 cost 9.50,
    # revenue 10.00: not over yet. Its last 7 days (Apr 4..10) cost 9.50 / 7 = 1.357142857... a day
    # against 1.00 a day of revenue: Apr 11: 10.857... vs 11 (not yet); Apr 12: 12.214... vs 12.
    for who in ("globex", "initech"):
        ledger.upsert_customer(who, plan=plan("flat", base_revenue_usd="30"), effective_from=APR)
    add(store, *(event(day(n), "1.9", tenant="globex") for n in range(6, 11)))
    add(store, *(event(day(n), "0.5", tenant="initech") for n in range(1, 11)))  # 0.50 a day: never
    found = ledger.leaks(QUIET, today=TODAY)
    [leak] = flags(found, "projected_over_revenue")
    assert (leak.subject_id, leak.since, leak.numbers["crosses_on"]) == ("globex", TODAY, day(12))
    assert (leak.numbers["cost_usd"], leak.numbers["revenue_usd"]) == (D("9.5"), D(10))
    assert leak.numbers["projected_revenue_usd"] == D(30)  # 10 + 20 days x 1.00
    # 9.50 + 20 x 9.50 / 7, a mean carried on: given at the store's precision, 15 decimals
    assert leak.to_dict()["numbers"]["projected_cost_usd"] == "36.642857142857143"
    assert "2025-04-12" in leak.message
    assert flags(found, "cost_over_revenue") == []
    # margin 0.50 / 10.00 = 5% is below the default floor of 20% too
    assert [f.subject_id for f in flags(found, "margin_below_floor")] == ["globex"]
    assert flags(found, subject_id="initech") == []


def test_leak_run_over_unit_revenue(store, ledger):
    # umbrella, per_unit 0.50: u1 costs 0.30 on Apr 2 and 0.30 on Apr 3: over its 0.50 since Apr 3;
    # u2 costs 0.40: under; u3 costs 0.60 but was sold for 10.00 at resolve time: under.
    ledger.upsert_customer("umbrella", plan=plan("per_unit", unit_revenue_usd="0.50"), effective_from=APR)
    add(store, event(day(2), "0.30", tenant="umbrella", run="u1"), event(day(3), "0.30", tenant="umbrella", run="u1"),
        event(day(4), "0.40", tenant="umbrella", run="u2"), event(day(4), "0.60", tenant="umbrella", run="u3"))
    ledger.resolve("u1", "resolved", at=at(day(3)))
    ledger.resolve("u3", "resolved", revenue_usd="10", at=at(day(4)))
    # soylent, per_resolution 1.00: s1 escalated earns nothing, so its 0.01 is over; s2 open may
    # still earn 1.00 and costs 0.80: under; s3 resolved for its given 0.05 costs 0.10: over.
    ledger.upsert_customer("soylent", plan=plan("per_resolution", unit_revenue_usd="1"), effective_from=APR)
    add(store, event(day(5), "0.01", tenant="soylent", run="s1"), event(day(5), "0.80", tenant="soylent", run="s2"),
        event(day(6), "0.10", tenant="soylent", run="s3"))
    ledger.resolve("s1", "escalated", at=at(day(5)))
    ledger.resolve("s3", "resolved", revenue_usd="0.05", at=at(day(6)))
    # a usage_based customer's runs have no unit revenue: never flagged
    ledger.upsert_customer("cyberdyne", plan=plan("usage_based", markup="0.2"), effective_from=APR)
    add(store, event(day(5), "5", tenant="cyberdyne", run="c1"))
    found = flags(ledger.leaks(QUIET, today=TODAY), "run_over_unit_revenue")
    assert {f.subject_id: (f.tenant_id, f.since, f.numbers["cost_usd"], f.numbers["revenue_usd"]) for f in found} == {
        "u1": ("umbrella", day(3), D("0.60"), D("0.50")),
        "s1": ("soylent", day(5), D("0.01"), D(0)),
        "s3": ("soylent", day(6), D("0.10"), D("0.05")),
    }
    assert all(f.subject == "run" for f in found)


def test_leak_margin_below_floor_for_customers_and_agents(store, ledger):
    # acme: 30.00 a month, 0.90 a day: 10.00 against 9.00 by Apr 10: 10% < 20%.
    # initech: 0.50 a day: 5.00 against 10.00: 50%, above 20% (but below a floor of 60%).
    for who in ("acme", "initech"):
        ledger.upsert_customer(who, plan=plan("flat", base_revenue_usd="30"), effective_from=APR)
    add(store, *(event(day(n), "0.9", tenant="acme") for n in range(1, 11)))
    add(store, *(event(day(n), "0.5", tenant="initech") for n in range(1, 11)))
    # agents on per_unit runs (1.00 a run): bot-a's two runs cost 0.95 each: 2.00 against 1.90,
    # a margin of 5%; bot-b's two cost 0.10 each: 90%.
    ledger.upsert_customer("stark", plan=plan("per_unit", unit_revenue_usd="1"), effective_from=APR)
    for run, agent, cost in (("a1", "bot-a", "0.95"), ("a2", "bot-a", "0.95"), ("b1", "bot-b", "0.1"),
                             ("b2", "bot-b", "0.1")):
        add(store, event(day(4), cost, tenant="stark", run=run, agent=agent))
        ledger.resolve(run, "resolved", at=at(day(4)))
    found = flags(ledger.leaks(QUIET, today=TODAY), "margin_below_floor")
    customers = {f.subject_id: f for f in found if f.subject == "customer"}
    agents = {f.subject_id: f for f in found if f.subject == "agent"}
    # stark as a whole: 4.00 against 2.10: 47.5%
    assert set(customers) == {"acme"}
    assert customers["acme"].numbers["margin_pct"] == D("10.00") and customers["acme"].since == APR
    assert set(agents) == {"bot-a"}
    assert (agents["bot-a"].numbers["margin_pct"], agents["bot-a"].numbers["runs"]) == (D("5.00"), 2)
    assert (agents["bot-a"].numbers["revenue_usd"], agents["bot-a"].numbers["cost_usd"]) == (D(2), D("1.90"))
    # the floor is a setting
    higher = flags(ledger.leaks(LeakSettings(spike_min_usd=D(10**6), margin_floor_pct=D(60)), today=TODAY),
                   "margin_below_floor")
    assert {f.subject_id for f in higher if f.subject == "customer"} == {"acme", "initech", "stark"}
    assert {f.subject_id for f in higher if f.subject == "agent"} == {"bot-a"}  # bot-b: 90%
    # initech's 50% exactly: not below a floor of 50, below one of 50.01
    for floor, flagged in ((D(50), False), (D("50.01"), True)):
        at_floor = flags(ledger.leaks(LeakSettings(spike_min_usd=D(10**6), margin_floor_pct=floor), today=TODAY),
                         "margin_below_floor")
        assert ("initech" in {f.subject_id for f in at_floor if f.subject == "customer"}) is flagged


def test_leak_cost_spike(store, ledger):
    # spiky: 1.00 a day for the 14 days Mar 27..Apr 9, then 3.50 on Apr 10: 3.5 x its mean of 1.00.
    # steady: the same, then 2.90 on Apr 10: under 3 x. tiny: 0.01 a day, then 0.50 on Apr 10:
    # 50 x its mean, but under the 1.00 minimum. newbie: 5.00 on Apr 10 after no spend at all:
    # no baseline to be far above (a new customer's first day is not a spike).
    start = date(2025, 3, 27)
    for who, usual, last in (("spiky", "1", "3.5"), ("steady", "1", "2.9"), ("tiny", "0.01", "0.5")):
        add(store, *(event(start + timedelta(days=n), usual, tenant=who) for n in range(14)))
        add(store, event(TODAY, last, tenant=who))
    add(store, event(TODAY, "5", tenant="newbie"))
    found = flags(ledger.leaks(today=TODAY), "cost_spike")
    [leak] = found
    assert (leak.subject_id, leak.since) == ("spiky", TODAY)
    assert leak.numbers == {"cost_usd": D("3.5"), "baseline_usd": D(1), "factor": D(3)}
    assert leak.message == "spiky spent $3.50 on 2025-04-10, 3.5x its daily mean of $1.00 over the 14 days before"
    # the factor is a setting: at 2 x, steady's 2.90 is a spike too
    found = flags(ledger.leaks(LeakSettings(spike_factor=D(2)), today=TODAY), "cost_spike")
    assert {f.subject_id for f in found} == {"spiky", "steady"}
    # and so is the minimum: tiny's 0.50 against 0.14 / 14 = 0.01 a day
    found = flags(ledger.leaks(LeakSettings(spike_min_usd=D("0.25")), today=TODAY), "cost_spike")
    assert {f.subject_id: f.numbers["baseline_usd"] for f in found} == {"spiky": D(1), "tiny": D("0.01")}
    # the window is one too: over the 2 days before Apr 10, spiky's mean is 1.00 still
    found = flags(ledger.leaks(LeakSettings(spike_window_days=2), today=TODAY), "cost_spike")
    assert [f.subject_id for f in found] == ["spiky"]


def test_a_spike_baseline_is_given_at_the_stores_precision(store, ledger):
    # odd: 1.00, 1.00 and 2.00 on the 3 days before Apr 10, then 5.00: over 3 x its mean of
    # 4.00 / 3 = 1.333..., which the flag gives to 15 decimals (the rule compares it exactly)
    add(store, *(event(TODAY - timedelta(days=n), cost, tenant="odd") for n, cost in ((3, "1"), (2, "1"), (1, "2"))))
    add(store, event(TODAY, "5", tenant="odd"))
    [leak] = flags(ledger.leaks(LeakSettings(spike_window_days=3), today=TODAY), "cost_spike")
    assert leak.to_dict()["numbers"]["baseline_usd"] == "1.333333333333333"
    assert leak.message.endswith("3.8x its daily mean of $1.33 over the 3 days before")


def test_no_leaks_for_a_healthy_customer(store, ledger):
    ledger.upsert_customer("initech", plan=plan("flat", base_revenue_usd="30"), effective_from=APR)
    add(store, *(event(day(n), "0.5", tenant="initech") for n in range(1, 11)))
    assert ledger.leaks(today=TODAY) == []
    assert ledger.leaks(today=date(2025, 6, 10)) == []  # no cost in June


# -- property: every grouping adds up to the total --------------------------------------------------------

TENANTS = ("t1", "t2", "t3")
# Days across two months (March 28 .. April 5, 2025), with plan changes among them.
PROP_DAYS = [date(2025, 3, 28) + timedelta(days=n) for n in range(9)]
SUBSETS = [g for n in range(0, 4) for g in itertools.combinations(GROUPS, n)]

_decimals = st.integers(min_value=0, max_value=15)


@st.composite
def amounts(draw, top: int = 100) -> Decimal:
    """Up to 15 decimals."""
    places = draw(_decimals)
    return Decimal(draw(st.integers(min_value=0, max_value=top * 10**places))).scaleb(-places)


@st.composite
def plans(draw) -> dict:
    model = draw(st.sampled_from(("per_unit", "per_resolution", "usage_based", "per_seat", "flat", "hybrid")))
    if model in ("per_unit", "per_resolution"):
        return plan(model, unit_revenue_usd=draw(amounts(10)))
    if model == "usage_based":
        chosen = {}
        # a markup with up to 2 decimals: cost x (1 + markup) then has at most 17 decimals
        if draw(st.booleans()):
            chosen["markup"] = Decimal(draw(st.integers(-100, 300))).scaleb(-2)
        if draw(st.booleans()):
            chosen["input_rate_mtok"] = draw(amounts(20))
        if draw(st.booleans()):
            chosen["output_rate_mtok"] = draw(amounts(80))
        if draw(st.booleans()) or not chosen:
            chosen["unit_revenue_usd"] = draw(amounts(5))
        return plan(model, **chosen)
    if model == "per_seat":
        return plan(model, seat_revenue_usd=draw(amounts(50)))
    if model == "flat":
        return plan(model, base_revenue_usd=draw(amounts(1000)))
    return plan(model, base_revenue_usd=draw(amounts(500)), included_units=draw(st.integers(0, 3)),
                unit_revenue_usd=draw(amounts(10)))


histories = st.fixed_dictionaries({}, optional={
    t: st.lists(st.tuples(st.sampled_from(PROP_DAYS), plans(), st.integers(0, 20)), min_size=1, max_size=3)
    for t in TENANTS})

events_strategy = st.lists(st.fixed_dictionaries({
    "tenant": st.sampled_from((*TENANTS, None)),
    "run": st.sampled_from(("r1", "r2", "r3", "r4", None)),
    "agent": st.sampled_from(("a1", "a2", None)),
    "model": st.sampled_from(("m1", "m2", None)),
    "day": st.sampled_from(PROP_DAYS),
    "hour": st.integers(0, 23),
    "cost": st.one_of(st.none(), amounts(3)),
    "input_tokens": st.integers(0, 200_000),
    "output_tokens": st.integers(0, 50_000),
}), max_size=25)

resolutions_strategy = st.dictionaries(
    st.sampled_from(("r1", "r2", "r3", "r4", "r5")),
    st.tuples(st.sampled_from(("resolved", "escalated", "failed")), st.sampled_from(PROP_DAYS), st.integers(0, 23),
              st.one_of(st.none(), amounts(10)), st.sampled_from((*TENANTS, None))),
    max_size=5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(history=histories, generated=events_strategy, resolutions=resolutions_strategy,
       window=st.tuples(st.integers(0, 8), st.integers(1, 9)))
def test_every_grouping_adds_up_to_the_total(store, history, generated, resolutions, window):
    view = fresh(store)
    ledger = Ledger(view)
    for tenant, spans in history.items():
        for start, chosen, seats in spans:
            ledger.upsert_customer(tenant, plan=chosen, seats=seats, effective_from=start)
    rows = [event(at(e["day"], e["hour"]), e["cost"], tenant=e["tenant"], run=e["run"], agent=e["agent"],
                  model=e["model"], input_tokens=e["input_tokens"], output_tokens=e["output_tokens"])
            for e in generated]
    half = len(rows) // 2
    view.add_events(rows[:half])
    for run_id, (outcome, when, hour, revenue, tenant) in sorted(resolutions.items()):
        ledger.resolve(run_id, outcome, revenue_usd=revenue, tenant_id=tenant, at=at(when, hour))
    view.add_events(rows[half:])  # some events arrive after their run was resolved
    first, length = window
    since = PROP_DAYS[0] + timedelta(days=first)
    until = since + timedelta(days=length)
    whole = ledger.margin((), since=since, until=until)
    assert len(whole.rows) <= 1
    expected = (whole.total.revenue_usd, whole.total.cost_usd, whole.total.calls, whole.total.runs)
    # the cost is that of the events on the days in range, whatever the grouping
    in_range = [e for e in generated if since <= e["day"] < until]
    assert whole.total.cost_usd == sum((e["cost"] or D(0) for e in in_range), D(0))
    assert whole.total.calls == len(in_range)
    for groups in SUBSETS:
        report = ledger.margin(groups, since=since, until=until)
        assert sums(report) == (report.total.revenue_usd, report.total.cost_usd), groups
        got = (report.total.revenue_usd, report.total.cost_usd, report.total.calls, report.total.runs)
        assert got == expected, groups
        assert len({tuple(row.key.values()) for row in report.rows}) == len(report.rows)


# -- property: the counted run revenue equals the run-by-run one ---------------------------------------

RUN_DAYS = [date(2025, 3, 30) + timedelta(days=n) for n in range(4)]  # across a month's end
REGROUPINGS = [(), ("tenant",), ("agent",), ("day",), ("tenant", "day"), ("agent", "week"), ("tenant", "month")]

run_plans = st.one_of(
    st.builds(lambda unit, included: plan("hybrid", base_revenue_usd="0", included_units=included,
                                          unit_revenue_usd=unit), amounts(5), st.integers(0, 6)),
    st.builds(lambda unit: plan("per_unit", unit_revenue_usd=unit), amounts(5)),
    st.builds(lambda unit: plan("per_resolution", unit_revenue_usd=unit), amounts(5)),
)
run_histories = st.dictionaries(st.sampled_from(("t1", "t2")),
                                st.lists(st.tuples(st.sampled_from(RUN_DAYS), run_plans), min_size=1, max_size=2),
                                max_size=2)
many_runs = st.lists(st.tuples(st.sampled_from(("t1", "t1", "t2", None)), st.sampled_from(("a1", "a2", None)),
                               st.sampled_from(("resolved", "escalated", "failed")), st.sampled_from(RUN_DAYS),
                               st.integers(0, 23), st.one_of(st.none(), st.none(), amounts(4))),
                     max_size=14)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(history=run_histories, t1=st.lists(st.tuples(st.sampled_from(RUN_DAYS), run_plans), min_size=1, max_size=2),
       runs=many_runs, window=st.tuples(st.integers(0, 3), st.integers(1, 4)))
def test_run_revenue_from_counts_equals_the_run_by_run_revenue(store, history, t1, runs, window):
    """Reports without a run key count the runs per day (a hybrid plan's included runs that run
    out in the middle of a day are decided run by run); grouped by run, each run is priced on
    its own. Regrouped, the two must agree exactly, whatever the plans, outcomes, given
    revenues and hours."""
    view = fresh(store)
    ledger = Ledger(view)
    for tenant, spans in {**history, "t1": t1}.items():
        for start, chosen in spans:
            ledger.upsert_customer(tenant, plan=chosen, effective_from=start)
    for n, (tenant, agent, outcome, when, hour, revenue) in enumerate(runs):
        view.add_events([event(at(when, hour), "0.25", tenant=tenant, run=f"r{n}", agent=agent)])
        ledger.resolve(f"r{n}", outcome, revenue_usd=revenue, at=at(when, hour, n % 60))
    first, length = window
    since, until = RUN_DAYS[first], RUN_DAYS[first] + timedelta(days=length)
    for groups in REGROUPINGS:
        counted = ledger.margin(groups, since=since, until=until)
        regrouped: dict = {}
        for row in ledger.margin((*groups, "run"), since=since, until=until).rows:
            key = tuple(row.key[g] for g in groups)
            regrouped[key] = [a + b for a, b in zip(regrouped.get(key, [D(0), D(0), 0, 0, 0]),
                                                     (row.revenue_usd, row.cost_usd, row.resolved, row.escalated,
                                                      row.failed))]
        got = {tuple(row.key[g] for g in groups): [row.revenue_usd, row.cost_usd, row.resolved, row.escalated,
                                                   row.failed] for row in counted.rows}
        assert got == regrouped, groups


def test_leaks_of_one_customer_are_its_share_of_all_the_leaks(store, ledger):
    """A customer's page asks for its own flags: the same as its part of every flag."""
    for who in ("acme", "initech"):
        ledger.upsert_customer(who, plan=plan("per_unit", unit_revenue_usd="0.50"), effective_from=APR)
        add(store, *(event(day(n), "0.9", tenant=who, run=f"{who}-{n}", agent=f"{who}-bot") for n in range(1, 6)))
        for n in range(1, 6):
            ledger.resolve(f"{who}-{n}", "resolved", at=at(day(n), 18))
    everything = ledger.leaks(QUIET, today=TODAY)
    assert {f.rule for f in everything} >= {"cost_over_revenue", "run_over_unit_revenue", "margin_below_floor"}
    for who in ("acme", "initech"):
        own = ledger.leaks(QUIET, today=TODAY, tenant_id=who)
        assert own and all(f.tenant_id in (who, None) for f in own)
        assert [f.to_dict() for f in own] == [f.to_dict() for f in everything
                                              if f.tenant_id == who or f.subject_id == f"{who}-bot"]


def test_hybrid_included_runs_running_out_in_the_middle_of_a_day(store, ledger):
    """Two runs included a month, 0.75 each after: the 2nd and 3rd runs of Apr 2 (after one on
    Apr 1) are the 2nd and 3rd of the month, so only the 3rd (bot-b's at 15:00) earns; bot-a's
    run at 16:00 earns its given 9.00. By agent, by day and in all: the same as run by run."""
    ledger.upsert_customer("acme", plan=plan("hybrid", base_revenue_usd="0", included_units=2,
                                             unit_revenue_usd="0.75"), effective_from=APR)
    for run_id, when, agent, given in (("r1", at(day(1), 9), "bot-a", None), ("r2", at(day(2), 9), "bot-a", None),
                                       ("r3", at(day(2), 15), "bot-b", None), ("r4", at(day(2), 16), "bot-a", "9"),
                                       ("r5", at(day(3), 10), "bot-b", None)):
        add(store, event(when, "0.10", run=run_id, agent=agent))
        ledger.resolve(run_id, "resolved", revenue_usd=given, at=when)
    assert {k: r.revenue_usd for k, r in by(ledger.margin("agent", since=APR, until=MAY), "agent").items()} == {
        "bot-a": D(9), "bot-b": D("1.50")}
    assert {k: r.revenue_usd for k, r in by(ledger.margin("day", since=APR, until=MAY), "day").items()} == {
        "2025-04-01": D(0), "2025-04-02": D("9.75"), "2025-04-03": D("0.75")}
    assert {k: r.revenue_usd for k, r in by(ledger.margin("run", since=APR, until=MAY), "run").items()} == {
        "r1": D(0), "r2": D(0), "r3": D("0.75"), "r4": D(9), "r5": D("0.75")}


@given(st.decimals(allow_nan=False, allow_infinity=False, places=15, min_value=Decimal(-10) ** 15,
                   max_value=Decimal(10) ** 15) | st.sampled_from([Decimal("50.000000000000000"), Decimal("1E-7"),
                                                                   Decimal("-0.000"), Decimal("5E+1"),
                                                                   Decimal("999999999999999.999999999999999")]))
def test_money_text_is_exact_and_plain(amount):
    """The money text of every answer and CSV: the amount exactly (30 digits of the store's
    NUMERIC(30, 15) too), no exponent, no trailing zeros."""
    text = decimal_text(amount)
    assert Decimal(text) == amount and "E" not in text.upper()
    assert text == "0" or not ("." in text and text.endswith("0"))
    assert text == ("0" if not amount else format(amount.normalize(EXACT), "f"))
    assert decimal_text(None) is None
