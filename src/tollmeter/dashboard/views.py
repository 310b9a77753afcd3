"""What each page shows, read through the functions the API answers with (Ledger.margin and
Ledger.leaks as /v1/margin and /v1/leaks, Store.usage as /v1/usage, the store's limits and
spend as /v1/limits and /v1/tenants/{id}/spend), so that a page and the API agree on every
number for the same range. Nothing here reads a table itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, localcontext
from typing import Any, Iterable, Sequence

from ..business.closed_days import usage_kept
from ..business.leaks import SUBJECTS, Leak, days_read
from ..business.margin import MarginReport, MarginRow, period_label, regrouped
from ..business.report import describe_plan
from ..business.revenue import days
from ..limits.periods import FREQUENCIES
from ..limits.standing import limit_states_of
from ..limits.states import LimitState
from ..money import EXACT, decimal_text
from ..store.ledger import Customer, Ledger
from ..store.store import DEFAULT_TENANT_LIMITS, Store
from . import charts
from .ranges import Range

_ZERO = Decimal(0)
_HUNDRED = Decimal(100)
#: Customers in each "top" list of the overview.
TOP = 10
#: Runs listed on a customer's page (the costliest).
MOST_RUNS = 50
#: Leak flags listed on the overview (customers first, then agents, then runs).
MOST_LEAKS = 12
_SUBJECTS = {"customer": 0, "agent": 1, "run": 2}


def bucket_labels(rng: Range) -> list[str]:
    """Every bucket of the range, in order (empty ones too: a chart shows the gaps)."""
    seen: dict[str, None] = {}
    for day in days(rng.first, rng.end):
        seen.setdefault(period_label(rng.bucket, day))
    return list(seen)


def percent_of(part: Decimal, whole: Decimal) -> Decimal | None:
    if not whole:
        return None
    with localcontext(EXACT):
        return (part / whole * _HUNDRED).quantize(Decimal("0.1"))


def _sum_by(rows: Iterable[MarginRow], key: str) -> dict[Any, MarginRow]:
    out: dict[Any, MarginRow] = {}
    for row in rows:
        value = row.key.get(key)
        into = out.get(value)
        if into is None:
            into = out[value] = MarginRow({key: value})
        into.add(row)
    return out


# -- overview --------------------------------------------------------------------------------------


@dataclass
class Overview:
    range: Range
    total: MarginRow
    labels: list[str]
    buckets: list[MarginRow]
    top_cost: list[MarginRow]
    top_loss: list[MarginRow]
    leaks: list[Leak]
    unpriced: list[dict[str, Any]]
    leak_count: int = 0
    chart: str = ""
    cost_chart: str = ""


def _margin_and_leaks(ledger: Ledger, rng: Range, groups: tuple[str, ...],
                      subjects: Sequence[str] = SUBJECTS) -> tuple[MarginReport, list[Leak]]:
    """The margin report by `groups` over the range, and this month's leak flags (of
    `subjects`). The leak rules read a margin by tenant and day: one such report over both
    ranges serves both when they meet (the usual case: the last weeks), regrouped exactly."""
    lo, hi = days_read()
    book = ledger.plan_book()
    if rng.first <= hi and lo <= rng.end:
        daily = ledger.margin(["tenant", "day"], since=min(rng.first, lo), until=max(rng.end, hi), book=book)
        return (regrouped(daily, groups, rng.first, rng.end),
                ledger.leaks(daily=daily, book=book, subjects=subjects))
    return (ledger.margin(list(groups), since=rng.first, until=rng.end, book=book),
            ledger.leaks(book=book, subjects=subjects))


def overview(store: Store, rng: Range) -> Overview:
    """Revenue, cost and margin per bucket; the customers that cost most and lose most; this
    month's leak flags; the models left unpriced. One margin report (tenant x bucket) gives
    the buckets and the customers both: a report's groups add up exactly."""
    ledger = Ledger(store)
    report, found = _margin_and_leaks(ledger, rng, ("tenant", rng.bucket))
    per_bucket = _sum_by(report.rows, rng.bucket)
    labels = bucket_labels(rng)
    buckets = [per_bucket.get(label) or MarginRow({rng.bucket: label}) for label in labels]
    tenants = [row for tenant, row in _sum_by(report.rows, "tenant").items() if tenant is not None]
    top_cost = sorted((r for r in tenants if r.cost_usd > 0), key=lambda r: (-r.cost_usd, r.key["tenant"]))[:TOP]
    top_loss = sorted((r for r in tenants if r.margin_usd < 0), key=lambda r: (r.margin_usd, r.key["tenant"]))[:TOP]
    unpriced: dict[str, int] = {}
    for row in ledger.usage(rng.first, rng.end, ["model"], by_day=False) if report.total.unpriced else ():
        if row["unpriced"]:
            name = row["model"] or "(none)"
            unpriced[name] = unpriced.get(name, 0) + row["unpriced"]
    flags = sorted(found, key=lambda leak: _SUBJECTS.get(leak.subject, 3))
    view = Overview(rng, report.total, labels, buckets, top_cost, top_loss, flags[:MOST_LEAKS],
                    [{"model": m, "events": n} for m, n in sorted(unpriced.items(), key=lambda i: (-i[1], i[0]))],
                    len(flags))
    view.chart = charts.line(labels, {"Revenue": [b.revenue_usd for b in buckets],
                                      "Cost": [b.cost_usd for b in buckets],
                                      "Margin": [b.margin_usd for b in buckets]},
                             colors=("#16a34a", "#d97706", "#2f6fde"))
    view.cost_chart = charts.bars([(r.key["tenant"], r.cost_usd) for r in top_cost], "Cost", width=480)
    return view


# -- customers ------------------------------------------------------------------------------------

#: Sortable columns of the customers table: name -> key of a CustomerRow.
CUSTOMER_SORTS = ("tenant", "name", "plan", "revenue", "cost", "margin", "margin_pct", "calls", "limit", "leak")


@dataclass
class CustomerRow:
    tenant_id: str
    name: str | None
    plan: str | None
    pricing_model: str | None
    margin: MarginRow
    #: Percent of each limit spent in its current period, by frequency.
    limits: dict[str, Decimal | None] = field(default_factory=dict)
    leaks: list[str] = field(default_factory=list)

    @property
    def fullest(self) -> Decimal | None:
        values = [v for v in self.limits.values() if v is not None]
        return max(values) if values else None

    def sort_key(self, column: str) -> Any:
        m = self.margin
        value = {"tenant": self.tenant_id, "name": (self.name or "").lower(), "plan": self.plan or "",
                 "revenue": m.revenue_usd, "cost": m.cost_usd, "margin": m.margin_usd, "margin_pct": m.margin_pct,
                 "calls": m.calls, "limit": self.fullest, "leak": len(self.leaks)}[column]
        return (value is None, value if value is not None else 0, self.tenant_id)


def customers(store: Store, rng: Range, *, query: str = "", sort: str = "cost", descending: bool = True,
              leaking: bool = False) -> list[CustomerRow]:
    """Every customer (and every tenant with usage in the range) with its plan today, its
    revenue, cost and margin over the range, how full each of its limits is now, and its open
    leak flags; filtered by `query` (tenant, name or plan, any case) and sorted."""
    ledger = Ledger(store)
    # A customer's flags: its own and its runs' (an agent's flag belongs to no one customer).
    report, found = _margin_and_leaks(ledger, rng, ("tenant",), subjects=("customer", "run"))
    known = {c.tenant_id: c for c in ledger.customers()}
    margins = {row.key["tenant"]: row for row in report.rows if row.key["tenant"] is not None}
    flags: dict[str, list[str]] = {}
    for leak in found:
        if leak.tenant_id is not None and leak.rule not in flags.setdefault(leak.tenant_id, []):
            flags[leak.tenant_id].append(leak.rule)
    tenants = sorted(set(known) | set(margins))
    standing = limit_states_of(store, tenants)
    rows = []
    for tenant in tenants:
        customer = known.get(tenant)
        plan = customer.plan if customer else None
        states = standing[tenant]
        rows.append(CustomerRow(tenant, customer.name if customer else None, plan.name if plan else None,
                                plan.pricing_model if plan else None, margins.get(tenant) or MarginRow({"tenant": tenant}),
                                limit_fill(states), flags.get(tenant, [])))
    needle = query.strip().lower()
    if needle:
        rows = [r for r in rows if any(needle in (text or "").lower()
                                       for text in (r.tenant_id, r.name, r.plan, r.pricing_model))]
    if leaking:
        rows = [r for r in rows if r.leaks]
    column = sort if sort in CUSTOMER_SORTS else "cost"
    present = [r for r in rows if r.sort_key(column)[0] is False]
    absent = [r for r in rows if r.sort_key(column)[0] is True]
    present.sort(key=lambda r: r.sort_key(column)[1:], reverse=descending)
    return present + sorted(absent, key=lambda r: r.tenant_id)


def limit_fill(states: Sequence[LimitState]) -> dict[str, Decimal | None]:
    return {s.limit.frequency: percent_of(s.spent_usd, s.limit.limit_usd) for s in states}


CUSTOMER_CSV_COLUMNS = ("tenant_id", "name", "plan", "pricing_model", "revenue_usd", "cost_usd", "margin_usd",
                        "margin_pct", "calls", "runs", "unpriced",
                        *(f"{f}_limit_used_pct" for f in FREQUENCIES), "leaks")


def customer_csv_rows(rows: Sequence[CustomerRow]) -> Iterable[list[str]]:
    """The customers table as CSV rows: amounts exact (as the API's CSV), header first."""
    yield list(CUSTOMER_CSV_COLUMNS)
    for r in rows:
        d = r.margin.to_dict()
        yield [r.tenant_id, r.name or "", r.plan or "", r.pricing_model or "", d["revenue_usd"], d["cost_usd"],
               d["margin_usd"], d["margin_pct"] or "", str(r.margin.calls), str(r.margin.runs), str(r.margin.unpriced),
               *(_text(r.limits.get(f)) for f in FREQUENCIES), " ".join(r.leaks)]


# -- one customer ---------------------------------------------------------------------------------


@dataclass
class RunRow:
    run_id: str
    outcome: str
    margin: MarginRow


@dataclass
class CustomerView:
    tenant_id: str
    range: Range
    customer: Customer | None
    plan_text: str | None
    total: MarginRow
    labels: list[str]
    by_model: str
    by_agent: str
    models: list[MarginRow]
    agents: list[MarginRow]
    runs: list[RunRow]
    run_count: int
    limits: list[LimitState]
    refusals: dict[str, int] = field(default_factory=dict)
    #: This month's leak flags of the customer, its runs and its agents on its runs.
    leaks: list[Leak] = field(default_factory=list)

    @property
    def fill(self) -> dict[str, Decimal | None]:
        return limit_fill(self.limits)


def customer(store: Store, tenant_id: str, rng: Range) -> CustomerView:
    ledger = Ledger(store)
    found = ledger.customer(tenant_id)
    # One report by model, agent and bucket gives both charts: a report's groups add up exactly.
    detail = ledger.margin(["model", "agent", rng.bucket], since=rng.first, until=rng.end, tenant_id=tenant_id)
    by_model = _regroup(detail, ("model", rng.bucket))
    by_agent = _regroup(detail, ("agent", rng.bucket))
    per_run = ledger.margin(["run"], since=rng.first, until=rng.end, tenant_id=tenant_id)
    labels = bucket_labels(rng)
    runs = [RunRow(row.key["run"], _outcome(row), row) for row in per_run.rows if row.key["run"] is not None]
    runs.sort(key=lambda r: (-r.margin.cost_usd, r.run_id))
    plan_text = None
    if found is not None and found.plan is not None:
        plan_text = f"{found.plan.name} ({found.plan.pricing_model}): {describe_plan(found.plan, found.seats)}"
    return CustomerView(
        tenant_id, rng, found, plan_text, per_run.total, labels,
        charts.stacked_bars(labels, _cost_series(by_model, "model", rng.bucket, labels), width=480),
        charts.stacked_bars(labels, _cost_series(by_agent, "agent", rng.bucket, labels), width=480),
        _by_cost(_sum_by(by_model.rows, "model")), _by_cost(_sum_by(by_agent.rows, "agent")),
        runs[:MOST_RUNS], len(runs), store.limit_states(tenant_id), recent_refusals(store, tenant_id),
        sorted(ledger.leaks(tenant_id=tenant_id), key=lambda leak: _SUBJECTS.get(leak.subject, 3)))


def _regroup(report: MarginReport, groups: tuple[str, ...]) -> MarginReport:
    """`report` summed into fewer groups: what the same report grouped by `groups` holds."""
    rows: dict[tuple[Any, ...], MarginRow] = {}
    for row in report.rows:
        key = tuple(row.key[g] for g in groups)
        into = rows.get(key)
        if into is None:
            into = rows[key] = MarginRow(dict(zip(groups, key)))
        into.add(row)
    return MarginReport(groups, report.first, report.end, list(rows.values()), report.total)


def _outcome(row: MarginRow) -> str:
    for name in ("resolved", "escalated", "failed"):
        if getattr(row, name):
            return name
    return "open"


def _cost_series(report: MarginReport, group: str, bucket: str, labels: list[str]) -> dict[str, list[Decimal]]:
    """Cost per bucket of each model (agent), costliest first; revenue-only rows left out."""
    series: dict[str, dict[str, Decimal]] = {}
    for row in report.rows:
        if row.cost_usd or row.calls:
            name = row.key[group] if row.key[group] is not None else "(none)"
            cell = series.setdefault(name, {})
            cell[row.key[bucket]] = cell.get(row.key[bucket], _ZERO) + row.cost_usd
    ordered = sorted(series.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    return {name: [values.get(label, _ZERO) for label in labels] for name, values in ordered}


def _by_cost(rows: dict[Any, MarginRow]) -> list[MarginRow]:
    return sorted((r for r in rows.values() if r.calls or r.cost_usd), key=lambda r: -r.cost_usd)


# -- models and providers ----------------------------------------------------------------------------


@dataclass
class ModelRow:
    provider: str | None
    model: str | None
    calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cost_usd: Decimal
    unpriced: int
    errors: int

    @property
    def cache_read_pct(self) -> Decimal | None:
        """Share of the input tokens read from a cache."""
        return percent_of(Decimal(self.cache_read_tokens), Decimal(self.input_tokens))

    @property
    def cost_per_call(self) -> Decimal | None:
        """Cost over the priced calls (an unpriced call has no cost yet)."""
        priced = self.calls - self.unpriced
        return EXACT.divide(self.cost_usd, priced) if priced > 0 else None


@dataclass
class ModelsView:
    range: Range
    models: list[ModelRow]
    providers: list[ModelRow]
    chart: str


def models(store: Store, rng: Range) -> ModelsView:
    """Calls, tokens and cost by provider and model over the range: `GET /v1/usage?group_by=
    provider,model` with the range's midnights."""
    rows = usage_kept(store, ["provider", "model"], since=_midnight(rng.first), until=_midnight(rng.end))
    found = [ModelRow(r["provider"], r["model"], *(int(r[k] or 0) for k in ("calls", "input_tokens", "output_tokens",
                                                                             "cache_read_tokens")),
                      r["cost_usd"], int(r["unpriced"] or 0), int(r["errors"] or 0)) for r in rows]
    found.sort(key=lambda r: (-r.cost_usd, -r.calls, r.provider or "", r.model or ""))
    providers: dict[str | None, ModelRow] = {}
    for r in found:
        p = providers.get(r.provider)
        if p is None:
            providers[r.provider] = ModelRow(r.provider, None, r.calls, r.input_tokens, r.output_tokens,
                                             r.cache_read_tokens, r.cost_usd, r.unpriced, r.errors)
        else:
            p.calls += r.calls
            p.input_tokens += r.input_tokens
            p.output_tokens += r.output_tokens
            p.cache_read_tokens += r.cache_read_tokens
            p.cost_usd = EXACT.add(p.cost_usd, r.cost_usd)
            p.unpriced += r.unpriced
            p.errors += r.errors
    chart = charts.bars([(f"{r.model or '(none)'}", r.cost_usd) for r in found[:15]], "Cost")
    return ModelsView(rng, found, sorted(providers.values(), key=lambda r: -r.cost_usd), chart)


# -- limits ---------------------------------------------------------------------------------------


@dataclass
class LimitRow:
    tenant_id: str
    frequency: str
    limit_usd: Decimal
    state: LimitState | None

    @property
    def used_pct(self) -> Decimal | None:
        return percent_of(self.state.spent_usd, self.limit_usd) if self.state else None


def limits(store: Store) -> list[LimitRow]:
    """Every limit of the project (the default `*` first), with where its tenant stands now."""
    out = []
    every = store.all_limits()
    standing = limit_states_of(store, [lim.tenant_id for lim in every if lim.tenant_id != DEFAULT_TENANT_LIMITS])
    for lim in every:
        states = {s.limit.frequency: s for s in standing.get(lim.tenant_id, [])}
        out.append(LimitRow(lim.tenant_id, lim.frequency, lim.limit_usd, states.get(lim.frequency)))
    out.sort(key=lambda r: (r.tenant_id != DEFAULT_TENANT_LIMITS, r.tenant_id, FREQUENCIES.index(r.frequency)))
    return out


# -- notifications ----------------------------------------------------------------------------------


@dataclass
class NotificationsView:
    endpoints: list[dict[str, Any]]
    deliveries: list[dict[str, Any]]


def notifications(store: Store) -> NotificationsView:
    """The project's webhook endpoints (secrets hidden) and its newest deliveries, as
    `GET /v1/notifications/...` answers them."""
    from ..notifications.log import list_endpoints, recent_deliveries

    return NotificationsView(list_endpoints(store), recent_deliveries(store, limit=100))


def recent_refusals(store: Store, tenant_id: str, now: datetime | None = None) -> dict[str, int]:
    """Leases the server refused the tenant in the last hour and the last 24 hours (what the
    refusal-burst notification counts; kept two days)."""
    from ..notifications.refusals import refusals_since

    now = now or datetime.now(timezone.utc)
    with store.transaction() as conn:
        hour = refusals_since(conn, store.project, now - timedelta(hours=1)).get(tenant_id, 0)
        day = refusals_since(conn, store.project, now - timedelta(hours=24)).get(tenant_id, 0)
    return {"hour": hour, "day": day}


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=timezone.utc)


def _text(value: Decimal | None) -> str:
    return decimal_text(value) or ""
