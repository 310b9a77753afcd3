"""Revenue recognition: which revenue belongs to which UTC day, tenant, run, agent and model.

Three kinds, each an exact `Decimal`:

- **recurring** (`per_seat`, `flat`, the base of `hybrid`): the month's fee is spread over the
  month's days, each day in force getting its share: the fee in steps of 10^-15 USD divided
  evenly, the remainder one step each to the first days, so the days of a month add up to the
  fee exactly. A plan changed mid-month gives each day the share of the plan in force that day.
  Recurring revenue belongs to the tenant and the day, to no run, agent or model.
- **usage** (`usage_based`): on each day's usage under the plan in force that day: cost x
  (1 + markup), plus tokens at `input_rate_mtok` / `output_rate_mtok` (USD per million).
- **per run** (`per_unit`, `per_resolution`, `usage_based` with `unit_revenue_usd`, the overage
  of `hybrid`): recognised on the day the run is resolved, under the plan in force that day; a
  revenue given at resolve time replaces it.
"""

from __future__ import annotations

import bisect
import calendar
import functools
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, localcontext
from typing import Callable, Iterable, Iterator, Mapping, NamedTuple, Sequence

from ..money import EXACT
from .plans import Plan

_ZERO = Decimal(0)
QUANTUM = Decimal(1).scaleb(-15)
_MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class PlanSpan:
    """A customer's plan and seats from `effective_from` until the next span."""

    effective_from: date
    plan: Plan
    seats: int | None


class PlanBook:
    """Every customer's plans over time: which plan was in force on a day."""

    def __init__(self, spans: Mapping[str, Sequence[PlanSpan]]) -> None:
        self._spans = {tenant: sorted(s, key=lambda span: span.effective_from) for tenant, s in spans.items()}
        self._starts = {tenant: [span.effective_from for span in s] for tenant, s in self._spans.items()}
        #: The tenants in order, and those that had each pricing model: made once (a book is
        #: not changed once made, and a report asks for them several times over 1,000 customers).
        self._tenants = tuple(sorted(self._spans))
        self._by_model: dict[str, frozenset[str]] = {}

    @property
    def tenants(self) -> tuple[str, ...]:
        return self._tenants

    def tenants_with(self, pricing_model: str) -> frozenset[str]:
        """The tenants that had a plan of `pricing_model` at any time."""
        found = self._by_model.get(pricing_model)
        if found is None:
            found = self._by_model[pricing_model] = frozenset(
                t for t, spans in self._spans.items() if any(s.plan.pricing_model == pricing_model for s in spans))
        return found

    def on(self, tenant: str | None, day: date) -> PlanSpan | None:
        if tenant is None:
            return None
        starts = self._starts.get(tenant)
        if not starts:
            return None
        at = bisect.bisect_right(starts, day) - 1
        return self._spans[tenant][at] if at >= 0 else None

    def spans(self, tenant: str) -> Sequence[PlanSpan]:
        return self._spans.get(tenant, ())

    def on_until(self, tenant: str, day: date) -> tuple[PlanSpan | None, date]:
        """The plan in force on `day` (as `on`), and the first day another one may be."""
        starts = self._starts.get(tenant)
        if not starts:
            return None, date.max
        at = bisect.bisect_right(starts, day)
        return (self._spans[tenant][at - 1] if at else None), (starts[at] if at < len(starts) else date.max)


def monthly_fee(span: PlanSpan) -> Decimal:
    plan = span.plan
    if plan.pricing_model == "per_seat":
        return (plan.seat_revenue_usd or _ZERO) * (span.seats or 0)
    if plan.pricing_model in ("flat", "hybrid"):
        return plan.base_revenue_usd or _ZERO
    return _ZERO


@functools.lru_cache(maxsize=4096)
def _shares(fee: Decimal, year: int, month: int) -> tuple[Decimal, ...]:
    """The share of a monthly `fee` that each day of a month recognises: they add up to `fee`
    exactly (a report asks for the same few fees every day)."""
    days = calendar.monthrange(year, month)[1]
    with localcontext(EXACT):  # cached: made exact whatever the context of its first caller
        steps = int(fee.scaleb(15))  # fees have at most 15 decimals: exact
        whole, rest = divmod(steps, days)
        return tuple((whole + (1 if n <= rest else 0)) * QUANTUM for n in range(1, days + 1))


def recurring(book: PlanBook, tenant: str, days: Iterable[date]) -> Iterable[tuple[date, Decimal]]:
    """(day, revenue) of a tenant's recurring fees on each of `days` (days without one left out).
    The plan and the month's shares are looked up again only when a day leaves them (a report
    asks for every day of every customer)."""
    start = until = date.max  # the days [start, until) share the plan of `fee`
    fee, month, shares = _ZERO, (0, 0), ()
    for day in days:
        if not start <= day < until:
            span, until = book.on_until(tenant, day)
            start = span.effective_from if span is not None else date.min
            fee = monthly_fee(span) if span is not None and span.plan.recurring else _ZERO
            month = (0, 0)
        if not fee:
            continue
        if (day.year, day.month) != month:
            month = (day.year, day.month)
            shares = _shares(fee, *month)
        share = shares[day.day - 1]
        if share:
            yield day, share


def recurring_total(book: PlanBook, tenant: str, first: date, end: date) -> Decimal:
    """A tenant's recurring fees on the days first <= day < end, added up: exactly the sum of
    what `recurring` gives each of those days, by whole stretches of one plan and month."""
    total = _ZERO
    day = first
    while day < end:
        span, until = book.on_until(tenant, day)
        month_end = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
        stop = min(until, month_end, end)
        fee = monthly_fee(span) if span is not None and span.plan.recurring else _ZERO
        if fee:
            total += _shares_of(fee, day.year, day.month, day.day, (stop - timedelta(days=1)).day)
        day = stop
    return total


def recurring_shares(book: PlanBook, tenant: str, first: date, end: date) -> Sequence[Decimal]:
    """A tenant's recurring revenue on each day first <= day < end, zero where none: what
    `recurring` gives those days, with their zeros. Under one plan within one month (a
    projection to the month's end, for every customer) a slice of the month's cached shares."""
    if first >= end:
        return ()
    span, until = book.on_until(tenant, first)
    last = end - timedelta(days=1)
    if until > last and (first.year, first.month) == (last.year, last.month):
        fee = monthly_fee(span) if span is not None and span.plan.recurring else _ZERO
        return _shares(fee, first.year, first.month)[first.day - 1:last.day] if fee else (_ZERO,) * (end - first).days
    given = dict(recurring(book, tenant, days(first, end)))
    return [given.get(day, _ZERO) for day in days(first, end)]


@functools.lru_cache(maxsize=4096)
def _shares_of(fee: Decimal, year: int, month: int, first: int, last: int) -> Decimal:
    """The shares of a monthly `fee` of the days first..last of a month, added up (customers
    on one plan ask for the same few), exactly whatever the caller's decimal context."""
    with localcontext(EXACT):
        return sum(_shares(fee, year, month)[first - 1:last], _ZERO)


def changes_within(book: PlanBook, tenant: str, first: date, end: date) -> bool:
    """Whether another plan (or none) may be in force on some day first < day < end than on `first`."""
    return any(first < span.effective_from < end for span in book.spans(tenant))


def usage_revenue(plan: Plan | None, cost: Decimal, input_tokens: int, output_tokens: int) -> Decimal:
    """What a usage_based plan earns on usage (0 for the other models)."""
    if plan is None or plan.pricing_model != "usage_based":
        return _ZERO
    revenue = _ZERO
    if plan.markup is not None:
        revenue += cost * (1 + plan.markup)
    if plan.input_rate_mtok is not None:
        revenue += plan.input_rate_mtok * input_tokens / _MILLION
    if plan.output_rate_mtok is not None:
        revenue += plan.output_rate_mtok * output_tokens / _MILLION
    return revenue


class ResolvedRun(NamedTuple):  # a tuple: months of runs are made of them
    run_id: str
    tenant_id: str | None
    agent_id: str | None
    outcome: str
    day: date
    #: Sorts the runs of a month in the order they were resolved (for hybrid plans).
    order: tuple
    revenue_override: Decimal | None


class RunCount(NamedTuple):
    """The runs of a tenant resolved on a day by one agent with one outcome: how many, and how
    many of them had a revenue given at resolve time (`given`), which add up to `given_usd`."""

    tenant_id: str | None
    day: date
    agent_id: str | None
    outcome: str
    runs: int
    given: int
    given_usd: Decimal


def run_revenues(book: PlanBook, runs: Sequence[ResolvedRun], before: int = 0) -> dict[str, Decimal]:
    """Revenue of each resolved run. `runs` must hold, for hybrid plans, every run of the
    tenant resolved earlier in the same month (their rank decides the overage), or the runs of
    one tenant's day with `before` the number of that tenant's runs resolved earlier that month."""
    out: dict[str, Decimal] = {}
    rank: dict[tuple[str | None, int, int], int] = {}
    for run in sorted(runs, key=lambda r: r.order):
        month = (run.tenant_id, run.day.year, run.day.month)
        position = rank.get(month, before)
        rank[month] = position + 1
        if run.revenue_override is not None:
            out[run.run_id] = run.revenue_override
            continue
        span = book.on(run.tenant_id, run.day)
        out[run.run_id] = unit_revenue(span.plan if span else None, run.outcome, position)
    return out


#: A day's revenue of runs per (agent, outcome), decided run by run: (tenant, day, runs of the
#: tenant resolved earlier that month) -> revenue.
ExactDay = Callable[[str | None, date, int], dict[tuple[str | None, str], Decimal]]


def counted_revenues(book: PlanBook, counts: Sequence[RunCount], first: date,
                     exact_day: ExactDay) -> Iterator[tuple[RunCount, Decimal]]:
    """(count, revenue) of each count of runs resolved on or after `first`: what `run_revenues`
    gives their runs, added up. `counts` must hold every count of their tenants' months before
    `first` too (the ranks of hybrid plans). Where a hybrid plan's included runs run out in the
    middle of a day, which of that day's runs earn depends on their order: `exact_day(tenant,
    day, runs before it that month)` gives that day's revenue per agent and outcome (its runs
    read one by one, keyed by (agent, outcome))."""
    by_day: dict[tuple[str | None, date], list[RunCount]] = {}
    for count in counts:
        found = by_day.get((count.tenant_id, count.day))
        if found is None:
            by_day[(count.tenant_id, count.day)] = [count]
        else:
            found.append(count)
    position: dict[tuple[str | None, int, int], int] = {}
    for tenant, day in sorted(by_day, key=_tenant_day):
        found = by_day[(tenant, day)]
        month = (tenant, day.year, day.month)
        before = position.get(month, 0)
        total = sum(c.runs for c in found)
        position[month] = before + total
        if day < first:
            continue
        span = book.on(tenant, day)
        plan = span.plan if span else None
        if plan is not None and plan.pricing_model == "hybrid" and before < (plan.included_units or 0) < before + total:
            exact = exact_day(tenant, day, before)
            for count in found:
                yield count, exact.get((count.agent_id, count.outcome), _ZERO)
            continue
        for count in found:
            yield count, count.given_usd + unit_revenue(plan, count.outcome, before) * (count.runs - count.given)


def _tenant_day(key: tuple[str | None, date]) -> tuple[bool, str, date]:
    return key[0] is None, key[0] or "", key[1]


def unit_revenue(plan: Plan | None, outcome: str, position_in_month: int) -> Decimal:
    """What one resolved run earns under `plan` (`position_in_month`: runs of the tenant
    resolved before it this month)."""
    if plan is None or plan.unit_revenue_usd is None:
        return _ZERO
    model = plan.pricing_model
    if model in ("per_unit", "usage_based"):
        return plan.unit_revenue_usd
    if model == "per_resolution":
        return plan.unit_revenue_usd if outcome == "resolved" else _ZERO
    if model == "hybrid":
        return plan.unit_revenue_usd if position_in_month >= (plan.included_units or 0) else _ZERO
    return _ZERO


def days(first: date, end: date) -> Iterable[date]:
    """first, first + 1, ... up to but not including `end`."""
    day = first
    while day < end:
        yield day
        day += timedelta(days=1)


def month_start(day: date) -> date:
    return day.replace(day=1)
