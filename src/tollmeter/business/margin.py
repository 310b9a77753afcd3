"""Margin: revenue, cost and margin grouped by any of tenant, run, agent, model, day, week and
month, over a range of UTC days, exact in Decimal.

Every amount of revenue and cost belongs to exactly one (tenant, day, run, agent, model) piece
(business/revenue.py says which); a report adds the pieces into its groups, so the groups of
any grouping add up to the total exactly. Cost comes from the rollups kept at ingest, never
from the raw events, so a report costs the same whatever the history holds.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, localcontext
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any, Callable, Collection, Iterable, Sequence

from ..money import EXACT, at_places, decimal_text
from .plans import PlanError
from .revenue import (PlanBook, changes_within, counted_revenues, days, month_start, monthly_fee, recurring,
                      recurring_total, run_revenues, usage_revenue)

if TYPE_CHECKING:
    from ..store.ledger import Ledger

GROUPS = ("tenant", "run", "agent", "model", "day", "week", "month")
_COLUMNS = {"agent": "agent_id", "model": "model"}
_ZERO = Decimal(0)
_HUNDRED = Decimal(100)
_CENT = Decimal("0.01")
_RATE_PLACES = Decimal("0.0001")


def margin_percent(margin: Decimal, revenue: Decimal) -> Decimal | None:
    """`margin` as a percentage of `revenue`, to the hundredth (None without revenue)."""
    if not revenue:
        return None
    return EXACT.quantize(EXACT.multiply(EXACT.divide(margin, revenue), _HUNDRED), _CENT)


def _resolution_rate(resolved: int, runs: int) -> Decimal | None:
    return (Decimal(resolved) / runs).quantize(_RATE_PLACES) if runs else None


def _per_resolved(cost: Decimal, resolved: int) -> Decimal | None:
    return at_places(EXACT.divide(cost, resolved)) if resolved else None


@dataclass(slots=True)
class MarginRow:
    """One group: its key values (by group name) and its sums."""

    key: dict[str, Any]
    revenue_usd: Decimal = _ZERO
    cost_usd: Decimal = _ZERO
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    unpriced: int = 0
    #: Runs resolved in the range, and how.
    resolved: int = 0
    escalated: int = 0
    failed: int = 0

    @property
    def margin_usd(self) -> Decimal:
        return EXACT.subtract(self.revenue_usd, self.cost_usd)

    @property
    def margin_pct(self) -> Decimal | None:
        """Margin as a percentage of revenue, to the hundredth (None without revenue)."""
        return margin_percent(self.margin_usd, self.revenue_usd)

    @property
    def runs(self) -> int:
        return self.resolved + self.escalated + self.failed

    @property
    def resolution_rate(self) -> Decimal | None:
        """Share of the runs resolved in the range whose outcome is "resolved" (None without runs)."""
        return _resolution_rate(self.resolved, self.runs)

    @property
    def cost_per_resolved_run(self) -> Decimal | None:
        """All of the group's cost divided by its successfully resolved runs: what one
        resolution costs, everything included (None without one), at the store's precision."""
        return _per_resolved(self.cost_usd, self.resolved)

    def copy(self) -> MarginRow:
        return MarginRow(dict(self.key), self.revenue_usd, self.cost_usd, self.calls, self.input_tokens,
                         self.output_tokens, self.unpriced, self.resolved, self.escalated, self.failed)

    def add(self, other: MarginRow) -> None:
        self.revenue_usd = EXACT.add(self.revenue_usd, other.revenue_usd)
        self.cost_usd = EXACT.add(self.cost_usd, other.cost_usd)
        self.calls += other.calls
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.unpriced += other.unpriced
        self.resolved += other.resolved
        self.escalated += other.escalated
        self.failed += other.failed

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: money as exact decimal strings. (The properties, each worked out once: a
        report's answer makes this for thousands of rows.)"""
        revenue, cost, resolved = self.revenue_usd, self.cost_usd, self.resolved
        margin = EXACT.subtract(revenue, cost)
        runs = resolved + self.escalated + self.failed
        return {
            **self.key,
            "revenue_usd": decimal_text(revenue), "cost_usd": decimal_text(cost),
            "margin_usd": decimal_text(margin), "margin_pct": decimal_text(margin_percent(margin, revenue)),
            "calls": self.calls, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
            "unpriced": self.unpriced, "runs": runs, "resolved": resolved, "escalated": self.escalated,
            "failed": self.failed,
            "resolution_rate": decimal_text(_resolution_rate(resolved, runs)),
            "cost_per_resolved_run_usd": decimal_text(_per_resolved(cost, resolved)),
        }


@dataclass
class MarginReport:
    group_by: tuple[str, ...]
    #: The UTC days first <= day < end that the report covers.
    first: date
    end: date
    rows: list[MarginRow] = field(default_factory=list)
    #: The rows added up: given, or made when first asked (many reports made to be regrouped
    #: never are).
    given_total: MarginRow | None = field(default=None, repr=False, compare=False)

    @property
    def total(self) -> MarginRow:
        if self.given_total is None:
            self.given_total = _summed(self.rows)
        return self.given_total

    @total.setter
    def total(self, value: MarginRow) -> None:
        self.given_total = value

    def to_dict(self) -> dict[str, Any]:
        return {"group_by": list(self.group_by), "since": self.first.isoformat(), "until": self.end.isoformat(),
                "rows": [row.to_dict() for row in self.rows], "total": self.total.to_dict()}


def day_range(since: datetime | date | None, until: datetime | date | None,
              today: date | None = None) -> tuple[date, date]:
    """UTC days [first, end): a day is in when its midnight is in [since, until). By default
    the current month to date (today included)."""
    today = today or datetime.now(timezone.utc).date()
    first = _ceil_day(since) if since is not None else month_start(today)
    end = _ceil_day(until) if until is not None else today + timedelta(days=1)
    if end < first:
        raise PlanError(f"until ({end}) is before since ({first})")
    return first, end


def check_groups(group_by: Iterable[str] | str) -> tuple[str, ...]:
    groups = (group_by,) if isinstance(group_by, str) else tuple(group_by)
    for name in groups:
        if name not in GROUPS:
            raise PlanError(f"cannot group by {name!r}; choose from {', '.join(GROUPS)}")
    if len(set(groups)) != len(groups):
        raise PlanError(f"a group is named twice in {groups!r}")
    return groups


def margin(ledger: Ledger, group_by: Iterable[str] | str = ("tenant",), since: Any = None, until: Any = None,
           tenant_id: str | None = None, *, runs_only: bool = False, book: PlanBook | None = None,
           tenants: Collection[str] | None = None) -> MarginReport:
    """`runs_only`: the runs' part alone (their revenue, the cost and usage revenue of their
    events; no recurring fees, no events outside runs). `book`: the plans, read already.
    `tenants`: these customers only (a report grouped by tenant)."""
    groups = check_groups(group_by)
    first, end = day_range(since, until)
    if tenants is not None and "tenant" not in groups:
        raise ValueError("a report of some tenants is grouped by tenant")
    with localcontext(EXACT):  # sums and products of 15-decimal amounts, exactly
        return _margin(ledger, groups, first, end, tenant_id, runs_only, book, tenants)


def _margin(ledger: Ledger, groups: tuple[str, ...], first: date, end: date, tenant_id: str | None,
            runs_only: bool = False, book: PlanBook | None = None,
            tenants: Collection[str] | None = None) -> MarginReport:
    report = MarginReport(groups, first, end)
    if book is None:
        book = ledger.plan_book([tenant_id] if tenant_id is not None else None)
    if tenants is not None:
        tenants = sorted(set(tenants))
        book = PlanBook({tenant: book.spans(tenant) for tenant in tenants if book.spans(tenant)})
    rows: dict[tuple[Any, ...], MarginRow] = {}
    periods = any(g in ("day", "week", "month") for g in groups)

    # A piece's key: picked from (tenant, run, agent, model, *the day's labels of the periods
    # grouped by), the labels made once per day.
    periods_of = [g for g in groups if g in ("day", "week", "month")]
    where = {"tenant": 0, "run": 1, "agent": 2, "model": 3}
    places = [where[g] if g in where else 4 + periods_of.index(g) for g in groups]
    pick = itemgetter(*places) if places else (lambda values: ())  # no groups: the total alone
    single = len(groups) == 1
    labels: dict[date | None, tuple[str, ...]] = {}

    def piece(tenant: str | None, day: date, run: str | None, agent: str | None, model: str | None) -> MarginRow:
        """The row of (tenant, day, run, agent, model)."""
        named = labels.get(day)
        if named is None:
            named = labels[day] = tuple(period_label(g, day) for g in periods_of) if periods_of else ()
        key = pick((tenant, run, agent, model, *named))
        if single:
            key = (key,)
        found = rows.get(key)
        if found is None:
            found = rows[key] = MarginRow(dict(zip(groups, key)))
        return found

    # Cost and usage revenue, from the rollups: per day only where a day matters (a period is
    # grouped by, or a usage_based plan in force on some of the days but not all: what usage
    # earns is linear in it, so under one plan the range's sums earn what its days do).
    priced_by_usage = book.tenants_with("usage_based")
    by_day = {t for t in priced_by_usage if changes_within(book, t, first, end)}
    if "tenant" in groups or "run" in groups or tenant_id is not None:
        cohorts = [(_EACH_DAY, _usage(ledger, groups, first, end, tenant_id, periods, by_day, runs_only, tenants))]
    else:
        cohorts = _cohorts(ledger, book, groups, first, end, periods, priced_by_usage, by_day, runs_only)
    for rule, usage in cohorts:
        for tenant, day, run, agent, model, calls, input_tokens, output_tokens, cost, unpriced in usage:
            row = piece(tenant, day, run, agent, model)
            if rule is _EACH_DAY:
                if tenant in priced_by_usage:
                    span = book.on(tenant, day if day is not None else first)
                    row.revenue_usd += usage_revenue(span.plan if span else None, cost, input_tokens, output_tokens)
            elif rule is not None:
                row.revenue_usd += usage_revenue(rule, cost, input_tokens, output_tokens)
            row.cost_usd += cost
            row.calls += calls
            row.input_tokens += input_tokens
            row.output_tokens += output_tokens
            row.unpriced += unpriced
    # Revenue of runs, on the day each was resolved (hybrid plans rank the month's runs): run
    # by run where the report has a row per run, else from their counts per day.
    if "run" in groups:
        resolved = ledger.resolved_runs(month_start(first), end, tenant_id=tenant_id)
        if tenants is not None:
            wanted = set(tenants)
            resolved = [run for run in resolved if run.tenant_id in wanted]
        revenues = run_revenues(book, resolved)
        for run in resolved:
            if run.day < first:
                continue
            row = piece(run.tenant_id, run.day, run.run_id, run.agent_id, None)
            row.revenue_usd += revenues[run.run_id]
            setattr(row, run.outcome, getattr(row, run.outcome) + 1)
    else:
        def exact_day(tenant: str | None, day: date, before: int) -> dict[tuple[str | None, str], Decimal]:
            runs = ledger.resolved_runs(day, day + timedelta(days=1), tenant_id=tenant)
            earned = run_revenues(book, runs, before)
            out: dict[tuple[str | None, str], Decimal] = {}
            for run in runs:
                key = (run.agent_id, run.outcome)
                out[key] = out.get(key, _ZERO) + earned[run.run_id]
            return out

        # The counts before `first` in its month rank the runs of hybrid plans alone (the
        # included runs go to the month's first): read for the customers that had one.
        counts = ledger.run_counts(first, end, tenant_id=tenant_id, tenants=tenants)
        ranked = sorted(t for t in book.tenants_with("hybrid") if tenant_id is None or t == tenant_id)
        if first > month_start(first) and ranked:
            counts = ledger.run_counts(month_start(first), first, tenants=ranked) + counts
        for count, revenue in counted_revenues(book, counts, first, exact_day):
            row = piece(count.tenant_id, count.day, None, count.agent_id, None)
            row.revenue_usd += revenue
            setattr(row, count.outcome, getattr(row, count.outcome) + count.runs)
    # Recurring fees, a share per day (added up per tenant where no period is grouped by);
    # without a tenant key, once per set of customers with the same fees on the same days.
    every_day = list(days(first, end))
    for tenant, alike in () if runs_only else _fee_payers(book, by_tenant="tenant" in groups).items():
        if not periods:
            total = recurring_total(book, tenant, first, end)
            if total:
                piece(tenant, first, None, None, None).revenue_usd += total * alike
            continue
        for day, share in recurring(book, tenant, every_day):
            piece(tenant, day, None, None, None).revenue_usd += share * alike
    report.rows = [rows[key] for key in _in_key_order(rows, len(groups))]
    return report


def _fee_payers(book: PlanBook, by_tenant: bool) -> dict[str, int]:
    """Customer -> how many customers it stands for in the recurring fees: each itself when
    the report has a tenant key, else the first of each set with the same fees from the same
    days (their recurring revenue is the same every day)."""
    if by_tenant:
        return dict.fromkeys(book.tenants, 1)
    first_of: dict[tuple[Any, ...], str] = {}
    out: dict[str, int] = {}
    for tenant in book.tenants:
        fees = tuple((s.effective_from, monthly_fee(s) if s.plan.recurring else _ZERO) for s in book.spans(tenant))
        chosen = first_of.setdefault(fees, tenant)
        out[chosen] = out.get(chosen, 0) + 1
    return out


#: A cohort's rule for what its usage earns: under the plan of each row's tenant and day.
_EACH_DAY = object()
#: At most this many usage_based plans are summed apart (one query each); past it, per customer.
_PLAN_COHORTS = 8


def _cohorts(ledger: Ledger, book: PlanBook, groups: Sequence[str], first: date, end: date, periods: bool,
             priced_by_usage: frozenset[str], by_day: set[str], runs_only: bool) -> list[tuple[Any, list[UsagePiece]]]:
    """Usage for a report without a tenant or run key, summed over customers by the database
    where what it earns is the same rule: the customers without a usage_based plan (it earns
    nothing), and those under one usage_based plan all through the range (what usage earns
    is linear in it); the others per customer and day. (rule, pieces): the rule is None
    (nothing), a Plan, or `_EACH_DAY`."""
    keys = [_COLUMNS[g] for g in groups if g in _COLUMNS]
    rows = functools.partial(ledger.usage_rows, first, end, keys, of_runs=runs_only, by_day=periods)
    under: dict[Any, list[str]] = {}
    for tenant in sorted(priced_by_usage - by_day):
        span = book.on(tenant, first)
        under.setdefault(span.plan if span is not None else None, []).append(tenant)
    out: list[tuple[Any, list[UsagePiece]]] = []
    each_day = sorted(by_day)
    if len(under) > _PLAN_COHORTS:
        each_day = sorted(priced_by_usage)
        under = {}
    if each_day:
        out.append((_EACH_DAY, _pieces(rows(tenants=each_day, by_day=True), keys)))
    if not under:
        out.append((None, _pieces(rows(exclude=sorted(priced_by_usage), by_tenant=False), keys)))
        return out
    # The plans' cohorts and the customers whose usage earns nothing: one read, a cohort each.
    rules = [*under, None]
    pieces: list[list[UsagePiece]] = [[] for _ in rules]
    for row in rows(exclude=each_day, by_tenant=False, cohorts=list(under.values())):
        pieces[row[0]].append(row[1:])
    return out + [(rule, _pieces(found, keys)) for rule, found in zip(rules, pieces)]


def _summed(rows: list[MarginRow]) -> MarginRow:
    """The rows added up: column by column (a third of the time of adding them row by row)."""
    total = MarginRow({})
    if rows:
        with localcontext(EXACT):  # sums of amounts, exactly
            total.revenue_usd = sum((row.revenue_usd for row in rows), _ZERO)
            total.cost_usd = sum((row.cost_usd for row in rows), _ZERO)
        for name in ("calls", "input_tokens", "output_tokens", "unpriced", "resolved", "escalated", "failed"):
            setattr(total, name, sum(map(attrgetter(name), rows)))
    return total


#: What `_usage` gives for each row of usage.
UsagePiece = tuple  # (tenant, day, run, agent, model, calls, input_tokens, output_tokens, cost_usd, unpriced)


def _usage(ledger: Ledger, groups: Sequence[str], first: date, end: date, tenant_id: str | None,
           periods: bool, by_day: set[str], runs_only: bool = False,
           tenants: Sequence[str] | None = None) -> list[UsagePiece]:
    """Usage per (tenant, the grouped-by columns), and per day for the tenants in `by_day` (or
    for all when `periods`). Grouped by run, the events of runs come from the run rollup and
    the rest (no run) is the usage rollup less the runs' part. `runs_only`: the events of
    runs alone; `tenants`: theirs alone."""
    from ..store.schema import ROLLUP_MEASURES  # (SQLAlchemy is imported with a store only)

    keys = [_COLUMNS[g] for g in groups if g in _COLUMNS]
    if periods or (tenant_id is not None and tenant_id in by_day):
        parts = [dict(by_day=True)]
    elif tenant_id is not None:
        parts = [dict(by_day=False)]
    else:
        parts = [dict(by_day=True, tenants=sorted(by_day)), dict(by_day=False, exclude=sorted(by_day))]
        if not by_day:
            parts = [dict(by_day=False)]
    if tenants is not None:
        wanted = set(tenants)
        for part in parts:
            part["tenants"] = [t for t in part.get("tenants", tenants) if t in wanted]
    out: list[UsagePiece] = []
    for part in parts:
        if part.get("tenants") == []:
            continue
        if "run" not in groups:
            out += _pieces(ledger.usage_rows(first, end, keys, of_runs=runs_only, tenant_id=tenant_id, **part), keys)
            continue
        per_run = ledger.usage_rows(first, end, ["run_id", *keys], runs=True, tenant_id=tenant_id, **part)
        out += _pieces(per_run, ["run_id", *keys])
        if runs_only:
            continue
        # The rest: each (tenant, day, keys) row of the usage rollup less its runs' rows.
        width = 2 + len(keys)
        rest = {row[:width]: list(row[width:]) for row in ledger.usage_rows(first, end, keys, tenant_id=tenant_id,
                                                                             **part)}
        for row in per_run:
            left = rest[(*row[:2], *row[3:width + 1])]
            for i, value in enumerate(row[width + 1:]):
                left[i] -= value
        calls, cost = ROLLUP_MEASURES.index("calls"), ROLLUP_MEASURES.index("cost_usd")
        out += _pieces([(*key, *left) for key, left in rest.items() if left[calls] or left[cost]], keys)
    return out


def _pieces(rows: list[tuple[Any, ...]], keys: Sequence[str]) -> list[UsagePiece]:
    """Rows of `Ledger.usage_rows` (tenant, day, *keys, *measures) as `UsagePiece`s."""
    from ..store.schema import ROLLUP_MEASURES

    width = 2 + len(keys)
    absent = width + len(ROLLUP_MEASURES)  # a None put at the end of each row
    at = {k: 2 + i for i, k in enumerate(keys)}
    measure = {m: width + i for i, m in enumerate(ROLLUP_MEASURES)}
    pick = itemgetter(0, 1, at.get("run_id", absent), at.get("agent_id", absent), at.get("model", absent),
                      *(measure[m] for m in ("calls", "input_tokens", "output_tokens", "cost_usd", "unpriced")))
    return [pick((*row, None)) for row in rows]


def period_label(group: str, day: date) -> str:
    """A day's key in a report grouped by `group`: "day" (2026-12-05), "week" (ISO: 2026-W49) or
    "month" (2026-12)."""
    if group == "day":
        return day.isoformat()
    if group == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{day:%Y-%m}"


def regrouped(report: MarginReport, groups: Sequence[str], first: date, end: date) -> MarginReport:
    """A report grouped by day (and maybe other keys) summed into `groups` (any of its other
    keys and day, week or month), over its days first <= day < end: exactly what a report
    grouped by `groups` over that range holds (a report's pieces belong to one day each)."""
    if "day" not in report.group_by or first < report.first or end > report.end:
        raise ValueError(f"a report by {report.group_by} from {report.first} to {report.end} cannot give {groups} "
                         f"from {first} to {end}")
    out = MarginReport(tuple(groups), first, end)
    low, high = first.isoformat(), end.isoformat()  # ISO days sort as the days do
    if tuple(groups) == report.group_by:  # the same groups: the rows of the days asked for
        out.rows = [row for row in report.rows if low <= row.key["day"] < high]
        return out
    rows: dict[tuple[Any, ...], MarginRow] = {}
    periods: dict[tuple[str, str], str] = {}
    for row in report.rows:
        text = row.key["day"]
        if not low <= text < high:
            continue
        parts = []
        for g in groups:
            if g in ("day", "week", "month"):
                label = periods.get((g, text))
                if label is None:
                    label = periods[(g, text)] = period_label(g, date.fromisoformat(text))
                parts.append(label)
            else:
                parts.append(row.key[g])
        key = tuple(parts)
        into = rows.get(key)
        if into is None:
            into = rows[key] = MarginRow(dict(zip(groups, key)))
        into.add(row)
    out.rows = [rows[key] for key in _in_key_order(rows, len(groups))]
    return out


def joined(groups: Sequence[str], first: date, end: date, *reports: MarginReport) -> MarginReport:
    """Reports of `groups` over adjacent ranges making up first <= day < end, added up: what
    one report over the whole range holds (every sum is over days, so a row of the whole range
    is its rows' sum in the parts). New rows: the parts' are left as they were."""
    rows: dict[tuple[Any, ...], MarginRow] = {}
    for report in reports:
        if report.group_by != tuple(groups):
            raise ValueError(f"a report by {report.group_by} is not one by {tuple(groups)}")
        for row in report.rows:
            key = tuple(row.key.values())
            into = rows.get(key)
            if into is None:
                rows[key] = row.copy()
            else:
                into.add(row)
    out = MarginReport(tuple(groups), first, end)
    out.rows = [rows[key] for key in _in_key_order(rows, len(groups))]
    return out


def _ceil_day(value: datetime | date) -> date:
    """The first UTC day whose midnight is at or after `value`."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        moment = moment.astimezone(timezone.utc)
        day = moment.date()
        return day if moment == datetime(day.year, day.month, day.day, tzinfo=timezone.utc) else day + timedelta(days=1)
    if isinstance(value, date):
        return value
    raise PlanError(f"since and until are dates or datetimes, got {value!r}")


def _in_key_order(keys: Collection[tuple[Any, ...]], width: int) -> list[tuple[Any, ...]]:
    """`keys` (of `width` values, text or None) sorted by each value in turn, None last: by the
    keys themselves where none holds a None (most reports; a third of the time)."""
    if any(None in key for key in keys):
        return sorted(keys, key=_order_key(width))
    return sorted(keys)


def _order_key(width: int) -> Callable[[tuple[Any, ...]], Any]:
    """Sorts keys of `width` values (text or None) by each value in turn, None last."""
    if width == 1:
        return lambda key: (key[0] is None, key[0] or "")
    if width == 2:
        return lambda key: (key[0] is None, key[0] or "", key[1] is None, key[1] or "")
    return lambda key: [(value is None, value or "") for value in key]


