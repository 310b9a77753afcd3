"""Leaks: customers, runs and agents that lose money, each flag naming its rule, its numbers and
since when. Rules over the current month to date (UTC), with thresholds in `LeakSettings`:

- `cost_over_revenue`: a customer's cost this month exceeds what its plan brought in this
  month; `since` is the first day the running cost passed the running revenue.
- `projected_over_revenue`: not over yet, but at its recent daily rate (the mean of the last
  `projection_days` days) its cost passes its revenue before the month ends; `crosses_on` is
  that day. Revenue is projected the same way (recurring shares as scheduled, the rest at its
  recent daily rate).
- `run_over_unit_revenue`: a run (per_unit, per_resolution or hybrid plan) whose cost passed the
  revenue one run earns (its resolve-time revenue, or the plan's unit revenue); `since` is the
  day its running cost passed it.
- `margin_below_floor`: a customer, or an agent on its runs (their revenue against the cost of
  their events), whose margin this month is below `margin_floor_pct` of its revenue.
- `cost_spike`: a day whose cost is over `spike_factor` times the customer's mean daily cost of
  the `spike_window_days` days before it (which must have some spend), and at least
  `spike_min_usd`; the latest such day.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any, Collection

from ..money import EXACT, usd_text
from .margin import MarginReport, margin, regrouped
from .plans import PlanError, money
from .revenue import PlanBook, days, month_start, recurring, unit_revenue

if TYPE_CHECKING:
    from ..store.ledger import Ledger

_ZERO = Decimal(0)
#: What a flag can be about.
SUBJECTS = ("customer", "run", "agent")


@dataclass(frozen=True)
class LeakSettings:
    #: Margin below this percentage of revenue is flagged (customers and agents).
    margin_floor_pct: Decimal = Decimal(20)
    #: A day's cost over this many times the trailing mean is a spike...
    spike_factor: Decimal = Decimal(3)
    #: ...the mean of this many days before it...
    spike_window_days: int = 14
    #: ...when the day cost at least this much (no alarm over cents).
    spike_min_usd: Decimal = Decimal(1)
    #: Days whose mean daily cost and revenue a projection extends to the month's end.
    projection_days: int = 7

    def __post_init__(self) -> None:
        for name in ("margin_floor_pct", "spike_factor", "spike_min_usd"):
            value = money(getattr(self, name), name)  # finite, >= 0, below 10^12
            object.__setattr__(self, name, value)
        for name in ("spike_window_days", "projection_days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 366:
                raise PlanError(f"{name} must be a whole number of days from 1 to 366, got {value!r}")


@dataclass(frozen=True)
class Leak:
    rule: str
    #: "customer", "run" or "agent", and which one.
    subject: str
    subject_id: str | None
    tenant_id: str | None
    since: date | None
    message: str
    numbers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "subject": self.subject, "subject_id": self.subject_id,
                "tenant_id": self.tenant_id, "since": self.since.isoformat() if self.since else None,
                "message": self.message,
                "numbers": {k: (_text(v) if isinstance(v, Decimal) else v.isoformat() if isinstance(v, date) else v)
                            for k, v in self.numbers.items()}}


def leaks(ledger: Ledger, settings: LeakSettings | None = None, today: date | None = None,
          tenant_id: str | None = None, daily: MarginReport | None = None,
          book: PlanBook | None = None, subjects: Collection[str] = SUBJECTS) -> list[Leak]:
    """Every flag, or those of one customer (its own, its runs', and its agents' on its runs).
    `daily`: a margin report by tenant and day that covers the days the rules read (see
    `days_read`), made for something else already (the dashboard's overview): used, not
    made again; `book`: the plans, read already; `subjects`: the flags of these subjects only
    (the rules of the others are not run)."""
    with localcontext(EXACT):
        return _leaks(ledger, settings or LeakSettings(), today, tenant_id, daily, book, subjects)


def days_read(settings: LeakSettings | None = None, today: date | None = None) -> tuple[date, date]:
    """The UTC days [first, end) whose margin by tenant and day the rules read."""
    settings = settings or LeakSettings()
    today = today or datetime.now(timezone.utc).date()
    return month_start(today) - timedelta(days=settings.spike_window_days), today + timedelta(days=1)


def _leaks(ledger: Ledger, settings: LeakSettings, today: date | None, tenant_id: str | None,
           daily: MarginReport | None, book: PlanBook | None, subjects: Collection[str]) -> list[Leak]:
    today = today or datetime.now(timezone.utc).date()
    first, end = month_start(today), today + timedelta(days=1)
    found: list[Leak] = []
    since, _ = days_read(settings, today)
    if book is None:
        book = ledger.plan_book([tenant_id] if tenant_id is not None else None)
    if daily is not None and daily.group_by == ("tenant", "day") and daily.first <= since and daily.end >= end:
        daily = regrouped(daily, ("tenant", "day"), since, end)
        if tenant_id is not None:
            daily.rows = [row for row in daily.rows if row.key["tenant"] == tenant_id]
    else:
        daily = margin(ledger, ("tenant", "day"), since=since, until=end, tenant_id=tenant_id, book=book)
    by_tenant: dict[str | None, dict[date, Any]] = {}
    for row in daily.rows:
        by_tenant.setdefault(row.key["tenant"], {})[date.fromisoformat(row.key["day"])] = row
    month_days = list(days(first, end))
    next_month = (first + timedelta(days=32)).replace(day=1)
    for tenant in sorted(by_tenant.keys() | set(book.tenants), key=lambda t: (t is None, t or "")) \
            if "customer" in subjects else ():
        rows = by_tenant.get(tenant, {})
        cost = sum((rows[d].cost_usd for d in month_days if d in rows), _ZERO)
        revenue = sum((rows[d].revenue_usd for d in month_days if d in rows), _ZERO)
        has_plan = tenant is not None and any(book.on(tenant, d) for d in month_days)
        label = tenant or "(no tenant)"
        if has_plan and cost > revenue:
            found.append(Leak("cost_over_revenue", "customer", tenant, tenant, _crossed(rows, month_days),
                              f"{label} costs more than its plan brings in: -${_money(cost - revenue)} this month, "
                              f"since {_day_text(_crossed(rows, month_days))}",
                              {"cost_usd": cost, "revenue_usd": revenue, "margin_usd": revenue - cost}))
        elif has_plan:
            projected = _projection(book, tenant, rows, month_days, today, next_month, settings, cost, revenue)
            if projected is not None:
                crosses_on, month_cost, month_revenue = projected
                found.append(Leak("projected_over_revenue", "customer", tenant, tenant, today,
                                  f"{label} will cost more than its plan brings in by {crosses_on} at its "
                                  f"current daily rate", {"cost_usd": cost, "revenue_usd": revenue,
                                                          "projected_cost_usd": month_cost,
                                                          "projected_revenue_usd": month_revenue,
                                                          "crosses_on": crosses_on}))
        if revenue and (revenue - cost) / revenue * 100 < settings.margin_floor_pct and cost <= revenue:
            pct = ((revenue - cost) / revenue * 100).quantize(Decimal("0.01"))
            found.append(Leak("margin_below_floor", "customer", tenant, tenant, first,
                              f"{label}'s margin this month is {pct}%, below the floor of {settings.margin_floor_pct}%",
                              {"margin_pct": pct, "floor_pct": settings.margin_floor_pct, "cost_usd": cost,
                               "revenue_usd": revenue}))
        spike = _spike(rows, month_days, settings)
        if spike is not None:
            day, day_cost, baseline = spike
            before = (f"{(day_cost / baseline).quantize(Decimal('0.1'))}x its daily mean of ${_money(baseline)}"
                      f" over the {settings.spike_window_days} days before")
            found.append(Leak("cost_spike", "customer", tenant, tenant, day,
                              f"{label} spent ${_money(day_cost)} on {day}, {before}",
                              {"cost_usd": day_cost, "baseline_usd": baseline, "factor": settings.spike_factor}))
    if "agent" in subjects:
        found += _agents(ledger, book, first, end, settings, tenant_id)
    if "run" in subjects:
        found += _runs(ledger, book, first, end, tenant_id)
    return found


def _crossed(rows: dict[date, Any], month_days: list[date]) -> date | None:
    cost = revenue = _ZERO
    for day in month_days:
        row = rows.get(day)
        if row is not None:
            cost += row.cost_usd
            revenue += row.revenue_usd
        if cost > revenue:
            return day
    return None


def _projection(book: Any, tenant: str, rows: dict[date, Any], month_days: list[date], today: date,
                next_month: date, settings: LeakSettings, cost: Decimal,
                revenue: Decimal) -> tuple[date, Decimal, Decimal] | None:
    recent = [d for d in month_days if d > today - timedelta(days=settings.projection_days)]
    if not recent:
        return None
    shares = dict(recurring(book, tenant, recent))
    cost_rate = sum((rows[d].cost_usd for d in recent if d in rows), _ZERO) / len(recent)
    other_revenue = sum((rows[d].revenue_usd - shares.get(d, _ZERO) for d in recent if d in rows), _ZERO)
    revenue_rate = other_revenue / len(recent)
    if cost_rate <= revenue_rate:  # not over now (cost <= revenue), and revenue grows as fast: never
        return None
    shares.update(recurring(book, tenant, days(today + timedelta(days=1), next_month)))
    running_cost, running_revenue, crosses = cost, revenue, None
    for day in days(today + timedelta(days=1), next_month):
        running_cost += cost_rate
        running_revenue += revenue_rate + shares.get(day, _ZERO)
        if crosses is None and running_cost > running_revenue:
            crosses = day
    return (crosses, running_cost, running_revenue) if crosses is not None else None


def _spike(rows: dict[date, Any], month_days: list[date], settings: LeakSettings) -> tuple[date, Decimal, Decimal] | None:
    for day in reversed(month_days):
        row = rows.get(day)
        if row is None or row.cost_usd < settings.spike_min_usd:
            continue
        baseline = sum((rows[d].cost_usd for d in _window(day, settings.spike_window_days) if d in rows),
                       _ZERO) / settings.spike_window_days
        # Without spend before it there is no baseline to be far above: a new customer's first
        # day is not a spike.
        if baseline and row.cost_usd > settings.spike_factor * baseline:
            return day, row.cost_usd, baseline
    return None


@functools.lru_cache(maxsize=256)
def _window(day: date, length: int) -> tuple[date, ...]:
    """The `length` days before `day` (every customer's spike rule asks for the same few)."""
    return tuple(day - timedelta(days=n) for n in range(1, length + 1))


def _agents(ledger: Ledger, book: Any, first: date, end: date, settings: LeakSettings,
            tenant_id: str | None) -> list[Leak]:
    """An agent's margin is that of its runs: their revenue against the cost of their events."""
    per_agent = {row.key["agent"]: row for row in margin(ledger, ("agent",), since=first, until=end,
                                                          tenant_id=tenant_id, runs_only=True, book=book).rows}
    out = []
    for agent, row in sorted((a, r) for a, r in per_agent.items() if a is not None):
        if not row.revenue_usd or row.margin_pct is None or row.margin_pct >= settings.margin_floor_pct:
            continue
        out.append(Leak("margin_below_floor", "agent", agent, None, first,
                        f"agent {agent}'s margin on its runs this month is {row.margin_pct}%, below the floor of "
                        f"{settings.margin_floor_pct}%", {"margin_pct": row.margin_pct, "cost_usd": row.cost_usd,
                                                          "revenue_usd": row.revenue_usd, "runs": row.runs}))
    return out


def _runs(ledger: Ledger, book: Any, first: date, end: date, tenant_id: str | None) -> list[Leak]:
    """Only the runs that cost more than the least a run of theirs can earn are read (from the
    runs' costs to date); each of those is then decided exactly, day by day."""
    least: Decimal | None = None
    free: list[str] = []  # per_resolution customers: their escalated and failed runs earn nothing
    for tenant in book.tenants:
        for span in book.spans(tenant):  # every plan it had: a run's plan is that of its last day
            model = span.plan.pricing_model
            if model in ("per_unit", "per_resolution", "hybrid"):
                unit = span.plan.unit_revenue_usd or _ZERO
                least = unit if least is None else min(least, unit)
                if model == "per_resolution":
                    free.append(tenant)
    candidates = ledger.costly_runs(first, end, over=least, free=free, free_outcomes=("escalated", "failed"),
                                    tenant_id=tenant_id)
    over: list[tuple[dict[str, Any], Decimal]] = []
    for run in sorted(candidates, key=lambda r: r["run_id"]):
        if run["revenue_usd"] is not None:
            earns = run["revenue_usd"]
        else:
            moment = run["resolved_at"] or run["last_seen"] or datetime.now(timezone.utc)
            day = (moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)).date()
            span = book.on(run["tenant_id"], day)
            if span is None or span.plan.pricing_model not in ("per_unit", "per_resolution", "hybrid"):
                continue
            earns = span.plan.unit_revenue_usd or _ZERO
            if run["outcome"] is not None and span.plan.pricing_model == "per_resolution":
                earns = unit_revenue(span.plan, run["outcome"], 0)
        if run["cost_usd"] > earns:
            over.append((run, earns))
    # Since when: the day its running cost passed what it earns (costs are never negative, so
    # a run over now passed it on some day).
    costs = ledger.run_costs(run["run_id"] for run, _ in over)
    out = []
    for run, earns in over:
        running, since = _ZERO, None
        for day, cost in costs.get(run["run_id"], ()):
            running += cost
            if since is None and running > earns:
                since = day
        if since is None:
            continue
        out.append(Leak("run_over_unit_revenue", "run", run["run_id"], run["tenant_id"], since,
                        f"run {run['run_id']} ({run['tenant_id']}) cost ${_money(running)}, more than the "
                        f"${_money(earns)} it earns", {"cost_usd": running, "revenue_usd": earns,
                                                      "outcome": run["outcome"]}))
    return out


def _money(value: Decimal) -> str:
    return usd_text(value).lstrip("-$")


def _day_text(day: date | None) -> str:
    if day is None:
        return "the start of the month"
    suffix = "th" if 11 <= day.day <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day.day % 10, "th")
    return f"the {day.day}{suffix}"


def _text(value: Decimal) -> str:
    return "0" if not value else format(value.normalize(), "f")
