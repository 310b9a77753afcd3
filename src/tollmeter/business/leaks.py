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

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any, Callable, Collection

from ..money import EXACT, at_places, decimal_text, usd_text
from . import closed_days
from .margin import MarginReport, margin, margin_percent, regrouped
from .plans import UNPAID_OUTCOMES, PlanError, money
from .revenue import PlanBook, days, month_start, recurring_shares, recurring_total, unit_revenue

if TYPE_CHECKING:
    from ..store.ledger import Ledger

_ZERO = Decimal(0)
_HUNDRED = Decimal(100)
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
                "numbers": {k: (decimal_text(v) if isinstance(v, Decimal) else v.isoformat() if isinstance(v, date) else v)
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
    """The UTC days [first, end) a margin report by tenant and day must cover for the rules to
    read it (`daily`): the month to date and the spike window before it."""
    settings = settings or LeakSettings()
    today = today or datetime.now(timezone.utc).date()
    return month_start(today) - timedelta(days=settings.spike_window_days), today + timedelta(days=1)


def _leaks(ledger: Ledger, settings: LeakSettings, today: date | None, tenant_id: str | None,
           daily: MarginReport | None, book: PlanBook | None, subjects: Collection[str]) -> list[Leak]:
    today = today or datetime.now(timezone.utc).date()
    first, end = month_start(today), today + timedelta(days=1)
    if book is None:
        book = ledger.plan_book([tenant_id] if tenant_id is not None else None)
    # The rules read the store apart (each read its own transaction): run together, a report
    # takes the time of the longest, not of all added up (most of it is the database's). The
    # customer rules run on this thread and hand two reads of theirs to the pool: at most 4
    # tasks, so none waits for a worker.
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="tollmeter-leaks") as pool:
        others = [pool.submit(_exact, rule) for subject, rule in (
            ("agent", lambda: _agents(ledger, book, first, end, today, settings, tenant_id)),
            ("run", lambda: _runs(ledger, book, first, end, today, tenant_id))) if subject in subjects]
        found = _customers(ledger, book, settings, today, tenant_id, daily, pool) if "customer" in subjects else []
        for other in others:
            found += other.result()
    return found


def _exact(rule: Callable[[], list[Leak]]) -> list[Leak]:
    """A rule on another thread, in the exact decimal context (a thread starts with the default)."""
    with localcontext(EXACT):
        return rule()


@dataclass
class _Month:
    """What the customer rules read of one customer: its cost and revenue this month and on
    the recent days a projection extends, the day its running cost passed its running revenue
    (when it did), and its latest spike (day, cost, baseline)."""

    cost: Decimal = _ZERO
    revenue: Decimal = _ZERO
    recent_cost: Decimal = _ZERO
    recent_revenue: Decimal = _ZERO
    crossed: date | None = None
    spike: tuple[date, Decimal, Decimal] | None = None


def _customers(ledger: Ledger, book: PlanBook, settings: LeakSettings, today: date, tenant_id: str | None,
               daily: MarginReport | None, pool: ThreadPoolExecutor) -> list[Leak]:
    first, end = month_start(today), today + timedelta(days=1)
    month_days = list(days(first, end))
    recent_first = max(first, today - timedelta(days=settings.projection_days - 1))
    since, _ = days_read(settings, today)
    if daily is None and tenant_id is None:
        months = _kept_months(ledger, book, settings, today, since, end, recent_first)
    elif daily is not None and daily.group_by == ("tenant", "day") and daily.first <= since and daily.end >= end:
        running = _fold(daily.rows, list(days(since, end)), first, recent_first, settings, tenant_id, {})
        months = {tenant: figures.month for tenant, figures in running.items()}
    else:
        months = _from_sums(ledger, book, settings, first, end, recent_first, tenant_id, month_days, pool)
    chosen = set(months) | set(book.tenants if tenant_id is None else [tenant_id])
    next_month = (first + timedelta(days=32)).replace(day=1)
    rest = list(days(today + timedelta(days=1), next_month))  # the days a projection extends to
    found: list[Leak] = []
    for tenant in sorted(chosen, key=lambda t: (t is None, t or "")):
        figures = months.get(tenant) or _Month()
        cost, revenue = figures.cost, figures.revenue
        has_plan = tenant is not None and book.on(tenant, today) is not None  # a plan, once in force, stays
        label = tenant or "(no tenant)"
        if has_plan and cost > revenue:
            found.append(Leak("cost_over_revenue", "customer", tenant, tenant, figures.crossed,
                              f"{label} costs more than its plan brings in: -${_money(cost - revenue)} this month, "
                              f"since {_day_text(figures.crossed)}",
                              {"cost_usd": cost, "revenue_usd": revenue, "margin_usd": revenue - cost}))
        elif has_plan:
            projected = _projection(book, tenant, figures, recent_first, today, rest)
            if projected is not None:
                crosses_on, month_cost, month_revenue = projected
                found.append(Leak("projected_over_revenue", "customer", tenant, tenant, today,
                                  f"{label} will cost more than its plan brings in by {crosses_on} at its "
                                  f"current daily rate", {"cost_usd": cost, "revenue_usd": revenue,
                                                          "projected_cost_usd": at_places(month_cost),
                                                          "projected_revenue_usd": at_places(month_revenue),
                                                          "crosses_on": crosses_on}))
        # margin / revenue * 100 below the floor, compared without a division (revenue is never
        # negative: a plan's amounts are not, and a markup is at least -1)
        if revenue and cost <= revenue and (revenue - cost) * _HUNDRED < settings.margin_floor_pct * revenue:
            pct = margin_percent(revenue - cost, revenue)
            found.append(Leak("margin_below_floor", "customer", tenant, tenant, first,
                              f"{label}'s margin this month is {pct}%, below the floor of {settings.margin_floor_pct}%",
                              {"margin_pct": pct, "floor_pct": settings.margin_floor_pct, "cost_usd": cost,
                               "revenue_usd": revenue}))
        if figures.spike is not None:
            day, day_cost, baseline = figures.spike
            before = (f"{(day_cost / baseline).quantize(Decimal('0.1'))}x its daily mean of ${_money(baseline)}"
                      f" over the {settings.spike_window_days} days before")
            found.append(Leak("cost_spike", "customer", tenant, tenant, day,
                              f"{label} spent ${_money(day_cost)} on {day}, {before}",
                              {"cost_usd": day_cost, "baseline_usd": at_places(baseline), "factor": settings.spike_factor}))
    return found


def _kept_months(ledger: Ledger, book: PlanBook, settings: LeakSettings, today: date, since: date, end: date,
                 recent_first: date) -> dict[str | None, _Month]:
    """Every customer's figures, its running ones after the closed days kept from report to
    report (`closed_days.by_tenant`, from their margin rows by tenant and day, kept too: after
    a late event, only the customers whose rows changed are folded again), carried over the
    days since (today's) from a margin report of those."""
    first = month_start(today)

    def closed(rows: list[Any], split: date) -> dict[str | None, _Running]:
        return _fold(rows, list(days(since, split)), first, recent_first, settings, None, {})

    kept, split = closed_days.by_tenant(ledger, "customers", since, end, today, book, closed, inputs=(settings, today))
    start = since if kept is None else split
    rows = margin(ledger, ("tenant", "day"), since=start, until=end, book=book).rows if start < end else []
    running = _fold(rows, list(days(start, end)), first, recent_first, settings, None, kept or {})
    return {tenant: figures.month for tenant, figures in running.items()}


@dataclass(slots=True)
class _Running:
    """A customer's figures after some days: the month's so far, and the costs of the spike
    window's days before the next one (oldest first) with their sum."""

    month: _Month
    window: list[Decimal]
    before: Decimal


def _fold(rows: list[Any], span: list[date], first: date, recent_first: date, settings: LeakSettings,
          tenant_id: str | None, after: dict[str | None, _Running]) -> dict[str | None, _Running]:
    """The customers' figures after the consecutive days `span`, from their margin rows by
    tenant and day (`rows`, any order; those of other days left out), carried on from `after`
    (their figures after the days before `span`; the spike window's days from before the month
    when `span` starts the reading). One pass over each customer's days: running sums for the
    crossing day, the spike window's sum slid along (exact: sums and differences). What is in
    `after` is not changed: a customer with rows in `span` gets new figures."""
    window = settings.spike_window_days
    at = {day.isoformat(): i for i, day in enumerate(span)}
    slots_of: dict[str | None, list[Any]] = {}
    for row in rows:
        key = row.key
        tenant = key["tenant"]
        if tenant_id is not None and tenant != tenant_id:
            continue
        i = at.get(key["day"])
        if i is None:
            continue
        slots = slots_of.get(tenant)
        if slots is None:
            slots = slots_of[tenant] = [None] * len(span)
        slots[i] = row
    # (day, on or after the month's first, on or after the recent days' first) for each slot
    marks = [(day, day >= first, day >= recent_first) for day in span]
    out = dict(after)
    for tenant, slots in slots_of.items():
        was = after.get(tenant)
        if was is None:
            costs, before = [_ZERO] * window, _ZERO
            cost = revenue = recent_cost = recent_revenue = _ZERO
            crossed = spike = None
        else:
            month = was.month
            costs, before = list(was.window), was.before
            cost, revenue, recent_cost, recent_revenue = (month.cost, month.revenue, month.recent_cost,
                                                          month.recent_revenue)
            crossed, spike = month.crossed, month.spike
        # The spike window's costs as a ring: `oldest` is the slot of the day leaving it next.
        oldest = 0
        for row, (day, in_month, recent) in zip(slots, marks):
            day_cost = _ZERO
            if row is not None:
                day_cost = row.cost_usd
                if in_month:
                    cost += day_cost
                    revenue += row.revenue_usd
                    if recent:
                        recent_cost += day_cost
                        recent_revenue += row.revenue_usd
                    if _is_spike(day_cost, before, settings):
                        spike = (day, day_cost, before / window)  # the latest one stays
            if crossed is None and in_month and cost > revenue:
                crossed = day
            before += day_cost - costs[oldest]
            costs[oldest] = day_cost
            oldest = oldest + 1 if oldest + 1 < window else 0
        out[tenant] = _Running(_Month(cost, revenue, recent_cost, recent_revenue, crossed, spike),
                               costs[oldest:] + costs[:oldest], before)
    return out


def _from_sums(ledger: Ledger, book: PlanBook, settings: LeakSettings, first: date, end: date, recent_first: date,
               tenant_id: str | None, month_days: list[date], pool: ThreadPoolExecutor) -> dict[str | None, _Month]:
    """The customers' figures from sums made by the database: a margin report by tenant for the
    month and one for its recent days; day by day only the customers over their revenue (since
    when) and the days that may be spikes (`Ledger.spike_days`). What a report by tenant and day
    would give, without a row per customer and day (tens of thousands at a month's end)."""
    window = settings.spike_window_days
    # the spikes, and the recent days' margin, read meanwhile
    spikes = pool.submit(ledger.spike_days, first, end, window=window, factor=settings.spike_factor,
                         least=settings.spike_min_usd, tenant_id=tenant_id)
    recent = pool.submit(lambda: margin(ledger, ("tenant",), since=recent_first, until=end, tenant_id=tenant_id,
                                        book=book).rows) if recent_first > first else None
    out = _from_margins(ledger, book, first, end, recent, tenant_id, month_days)
    for tenant, day, cost, before in sorted(spikes.result(), key=lambda spike: spike[1], reverse=True):
        figures = out.setdefault(tenant, _Month())
        if figures.spike is None and _is_spike(cost, before, settings):  # else a later day is one
            figures.spike = (day, cost, before / window)
    return out


def _from_margins(ledger: Ledger, book: PlanBook, first: date, end: date, recent: Future[list[Any]] | None,
                  tenant_id: str | None, month_days: list[date]) -> dict[str | None, _Month]:
    """The month's margin by tenant, the recent days' (`recent`, being made; None: they are
    the month's), and since when the customers over their revenue were."""
    out: dict[str | None, _Month] = {}
    for row in margin(ledger, ("tenant",), since=first, until=end, tenant_id=tenant_id, book=book).rows:
        out[row.key["tenant"]] = _Month(row.cost_usd, row.revenue_usd)
    for figures in out.values() if recent is None else ():  # the recent days are the month's
        figures.recent_cost, figures.recent_revenue = figures.cost, figures.revenue
    for row in recent.result() if recent is not None else ():
        figures = out.setdefault(row.key["tenant"], _Month())
        figures.recent_cost, figures.recent_revenue = row.cost_usd, row.revenue_usd
    over = [tenant for tenant, figures in out.items()
            if tenant is not None and figures.cost > figures.revenue and book.on(tenant, end - timedelta(days=1))]
    if over:
        by_tenant: dict[str | None, dict[date, Any]] = {}
        for row in margin(ledger, ("tenant", "day"), since=first, until=end, book=book, tenants=over).rows:
            by_tenant.setdefault(row.key["tenant"], {})[date.fromisoformat(row.key["day"])] = row
        for tenant in over:
            out[tenant].crossed = _crossed(by_tenant.get(tenant, {}), month_days)
    return out


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


def _projection(book: PlanBook, tenant: str, figures: _Month, recent_first: date, today: date,
                rest: list[date]) -> tuple[date, Decimal, Decimal] | None:
    """At the recent days' mean daily cost and revenue (recurring fees aside: those follow their
    schedule), the day this month its running cost passes its running revenue, and the month's
    projected cost and revenue; None when it does not. Carried on exactly: every running figure
    times the number of recent days (their sums are those days' means times it), divided once
    for the projected figures given."""
    length = (today - recent_first).days + 1
    cost_step = figures.recent_cost
    revenue_step = figures.recent_revenue - recurring_total(book, tenant, recent_first, today + timedelta(days=1))
    if cost_step <= revenue_step:  # not over now (cost <= revenue), and revenue grows as fast: never
        return None
    if not rest:
        return None
    shares = recurring_shares(book, tenant, rest[0], rest[-1] + timedelta(days=1))
    running_cost, running_revenue, crosses = figures.cost * length, figures.revenue * length, None
    for day, share in zip(rest, shares):
        running_cost += cost_step
        running_revenue += revenue_step + share * length
        if crosses is None and running_cost > running_revenue:
            crosses = day
    return (crosses, running_cost / length, running_revenue / length) if crosses is not None else None


def _is_spike(cost: Decimal, before: Decimal, settings: LeakSettings) -> bool:
    """Whether a day that cost `cost` is a spike over the mean daily cost of its window, whose
    days cost `before` in all: compared exactly, as `cost * window > factor * before` (the
    mean itself is a division, made only for a day flagged). Without spend before it there is
    no mean to be far above: a new customer's first day is not a spike."""
    return (cost >= settings.spike_min_usd and bool(before)
            and cost * settings.spike_window_days > settings.spike_factor * before)


def _agents(ledger: Ledger, book: Any, first: date, end: date, today: date, settings: LeakSettings,
            tenant_id: str | None) -> list[Leak]:
    """An agent's margin is that of its runs: their revenue against the cost of their events."""
    if tenant_id is None:  # the closed days' rows kept from report to report
        report = regrouped(closed_days.daily(ledger, ("agent",), first, end, today, book, runs_only=True),
                           ("agent",), first, end)
    else:
        report = margin(ledger, ("agent",), since=first, until=end, tenant_id=tenant_id, runs_only=True, book=book)
    per_agent = {row.key["agent"]: row for row in report.rows}
    out = []
    for agent, row in sorted((a, r) for a, r in per_agent.items() if a is not None):
        if not row.revenue_usd or row.margin_pct is None or row.margin_pct >= settings.margin_floor_pct:
            continue
        out.append(Leak("margin_below_floor", "agent", agent, None, first,
                        f"agent {agent}'s margin on its runs this month is {row.margin_pct}%, below the floor of "
                        f"{settings.margin_floor_pct}%", {"margin_pct": row.margin_pct, "cost_usd": row.cost_usd,
                                                          "revenue_usd": row.revenue_usd, "runs": row.runs}))
    return out


def _runs(ledger: Ledger, book: Any, first: date, end: date, today: date, tenant_id: str | None) -> list[Leak]:
    """The runs' flags. Of all customers, on the current day: the flags of the closed days are
    kept from report to report (`closed_days.revised`: after a write to days other than the
    current one, the runs active on those days are decided again) and the runs active or
    resolved since are decided again (a kept flag they no longer earn dropped: an event today
    can move a run's last day into a plan that pays more), and so are the kept runs that were
    not resolved then and are now (a resolution can lower a run's cost against what it earns;
    its cost only grows). A
    report of a past day is made whole: a run's cost to date grows with the current day's
    events."""
    if tenant_id is not None or today < closed_days.settled_before():
        return _run_flags(ledger, book, first, end, tenant_id)

    def again(flags: list[Leak], split: date, marked: list[date]) -> list[Leak]:
        """The kept `flags` of [first, split) after writes to the days `marked`: a run's flag
        changes only with what was written on those days (its cost, which only grows; its last
        day, whose plan it earns; its resolution), so the runs active on those days are decided
        again (those of the range, for days outside it): their kept flags are replaced by what
        they are decided now, none if none. The kept runs resolved since are decided further
        down."""
        fresh: list[Leak] = []
        decided: set[str] = set()
        for since, until in closed_days.spans(marked):
            inside = [(max(since, first), min(until, split))] if since < split and until > first else []
            for lo, hi in inside:
                fresh += _run_flags(ledger, book, lo, hi, None, decided=decided)
            outside = [span for span in ((since, min(until, first)), (max(since, split), until)) if span[0] < span[1]]
            for lo, hi in outside:
                active: set[str] = set()
                _run_flags(ledger, book, lo, hi, None, decided=active)
                if active:
                    fresh += _run_flags(ledger, book, first, split, None, run_ids=sorted(active), decided=decided)
        now = {leak.subject_id: leak for leak in fresh}
        return sorted([leak for leak in flags if leak.subject_id not in decided] + list(now.values()),
                      key=lambda leak: leak.subject_id)

    kept, split = closed_days.revised(ledger, "runs", first, end, today, book,
                                      lambda since, until: _run_flags(ledger, book, since, until, None), again)
    if kept is None:
        return _run_flags(ledger, book, first, end, None)
    again_ids: set[str] = set()  # the runs active since: decided again (a kept flag they no longer earn dropped)
    fresh = _run_flags(ledger, book, split, end, None, decided=again_ids) if split < end else []
    resolved = ledger.resolved_among(leak.subject_id for leak in kept if leak.numbers["outcome"] is None) - again_ids
    if resolved:  # decided again over the whole range (resolved after `end`, a past report's day, too)
        fresh += _run_flags(ledger, book, first, end, None, run_ids=sorted(resolved))
        again_ids |= resolved
    return sorted([leak for leak in kept if leak.subject_id not in again_ids] + fresh, key=lambda leak: leak.subject_id)


def _run_flags(ledger: Ledger, book: Any, first: date, end: date, tenant_id: str | None,
               run_ids: list[str] | None = None, decided: set[str] | None = None) -> list[Leak]:
    """The flags of the runs with events or resolved on days first <= day < end. Only the runs
    that cost more than the least a run of their customer can earn are read (from the runs'
    costs to date); each of those is then decided exactly (their ids added to `decided`, when
    given: every run of those days flagged before is among them, its cost having only grown).
    In run id order."""
    least: dict[str, Decimal] = {}
    free: set[str] = set()  # per_resolution customers: their escalated and failed runs earn nothing
    for tenant in book.tenants:
        for span in book.spans(tenant):  # every plan it had: a run's plan is that of its last day
            model = span.plan.pricing_model
            if model in ("per_unit", "per_resolution", "hybrid"):
                unit = span.plan.unit_revenue_usd or _ZERO
                least[tenant] = min(least.get(tenant, unit), unit)
                if model == "per_resolution":
                    free.add(tenant)
    candidates = ledger.costly_runs(first, end, over=least, free=sorted(free),
                                    free_outcomes=UNPAID_OUTCOMES, tenant_id=tenant_id, run_ids=run_ids)
    if decided is not None:
        decided.update(run["run_id"] for run in candidates)
    over: list[tuple[dict[str, Any], Decimal]] = []
    for run in sorted(candidates, key=lambda r: r["run_id"]):
        if run["revenue_usd"] is not None:
            earns = run["revenue_usd"]
        else:
            moment = run["resolved_at"] or run["last_seen"] or datetime.now(timezone.utc)
            span = book.on(run["tenant_id"], _utc_day(moment))
            if span is None or span.plan.pricing_model not in ("per_unit", "per_resolution", "hybrid"):
                continue
            earns = span.plan.unit_revenue_usd or _ZERO
            if run["outcome"] is not None and span.plan.pricing_model == "per_resolution":
                earns = unit_revenue(span.plan, run["outcome"], 0)
        if run["cost_usd"] > earns:
            over.append((run, earns))
    # Since when: the day its running cost passed what it earns (costs are never negative, so
    # a run over now passed it on some day). A run whose events all fell on one UTC day (its
    # first and last seen times, which only ever widen) passed it that day; the others are
    # read day by day.
    one_day = {run["run_id"]: _one_day(run) for run, _ in over}
    costs = ledger.run_costs(run["run_id"] for run, _ in over if one_day[run["run_id"]] is None)
    out = []
    earnings: dict[Decimal, str] = {}  # what runs earn is a few plans' unit revenues: each shown once
    for run, earns in over:
        day = one_day[run["run_id"]]
        if day is not None:
            running, since = run["cost_usd"], day
        else:
            running, since = _ZERO, None
            for day, cost in costs.get(run["run_id"], ()):
                running += cost
                if since is None and running > earns:
                    since = day
        if since is None:
            continue
        out.append(Leak("run_over_unit_revenue", "run", run["run_id"], run["tenant_id"], since,
                        f"run {run['run_id']} ({run['tenant_id']}) cost ${_money(running)}, more than the "
                        f"${earnings.get(earns) or earnings.setdefault(earns, _money(earns))} it earns",
                        {"cost_usd": running, "revenue_usd": earns, "outcome": run["outcome"]}))
    return out


def _utc_day(moment: datetime) -> date:
    return (moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)).date()


def _one_day(run: dict[str, Any]) -> date | None:
    """The UTC day of all of a run's events, when they fell on one."""
    if run["first_seen"] is None or run["last_seen"] is None:
        return None
    day = _utc_day(run["first_seen"])
    return day if _utc_day(run["last_seen"]) == day else None


def _money(value: Decimal) -> str:
    return usd_text(value).lstrip("-$")


def _day_text(day: date | None) -> str:
    if day is None:
        return "the start of the month"
    suffix = "th" if 11 <= day.day <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day.day % 10, "th")
    return f"the {day.day}{suffix}"


