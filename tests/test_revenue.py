"""Revenue recognition's shortcuts equal the day-by-day rules they stand for (business/revenue.py):
a customer's recurring fees over a range added up by stretches of one plan and month are the
sum of each day's share, whatever the plans, seats and range."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal, localcontext

from hypothesis import given, settings, strategies as st

from tollmeter.business.plans import Plan
from tollmeter.business.revenue import (PlanBook, PlanSpan, changes_within, days, recurring, recurring_shares,
                                        recurring_total)
from tollmeter.money import EXACT

START = date(2025, 1, 20)  # spans and ranges over a year's end and February
DAY_ST = st.integers(0, 75).map(lambda n: START + timedelta(days=n))
FEE_ST = st.integers(0, 10**17).map(lambda n: Decimal(n).scaleb(-15))

AMOUNTS = {"per_seat": lambda fee: {"seat_revenue_usd": fee}, "flat": lambda fee: {"base_revenue_usd": fee},
           "hybrid": lambda fee: {"base_revenue_usd": fee, "included_units": 3, "unit_revenue_usd": fee},
           "per_unit": lambda fee: {"unit_revenue_usd": fee}}  # per_unit: no recurring fee
span_st = st.builds(
    lambda start, model, fee, seats: PlanSpan(start, Plan(name=model, pricing_model=model, **AMOUNTS[model](fee)),
                                              seats),
    DAY_ST, st.sampled_from(sorted(AMOUNTS)), FEE_ST, st.integers(0, 30))


@settings(max_examples=400, deadline=None)
@given(spans=st.lists(span_st, max_size=4, unique_by=lambda s: s.effective_from), first=DAY_ST,
       length=st.integers(0, 70))
def test_a_ranges_recurring_total_is_the_sum_of_its_days_shares(spans, first, length):
    book = PlanBook({"t": spans})
    end = first + timedelta(days=length)
    with localcontext(EXACT):
        by_day = sum((share for _, share in recurring(book, "t", days(first, end))), Decimal(0))
        assert recurring_total(book, "t", first, end) == by_day
    assert recurring_total(book, "nobody", first, end) == 0


@settings(max_examples=400, deadline=None)
@given(spans=st.lists(span_st, max_size=4, unique_by=lambda s: s.effective_from), first=DAY_ST,
       length=st.integers(0, 40))
def test_the_shares_of_a_run_of_days_are_each_days_share(spans, first, length):
    """`recurring_shares` (a slice of the month's shares under one plan in one month) gives each
    day what `recurring` does, zero where it gives none."""
    book = PlanBook({"t": spans})
    end = first + timedelta(days=length)
    given_days = dict(recurring(book, "t", days(first, end)))
    assert list(recurring_shares(book, "t", first, end)) == [given_days.get(d, Decimal(0)) for d in days(first, end)]
    assert list(recurring_shares(book, "nobody", first, end)) == [Decimal(0)] * length


@given(spans=st.lists(span_st, max_size=4, unique_by=lambda s: s.effective_from), first=DAY_ST,
       length=st.integers(0, 70))
def test_a_plan_changes_within_a_range_when_another_is_in_force_on_one_of_its_days(spans, first, length):
    book = PlanBook({"t": spans})
    end = first + timedelta(days=length)
    in_force = {book.on("t", day) for day in days(first, end)}
    if len(in_force) > 1:
        assert changes_within(book, "t", first, end)
