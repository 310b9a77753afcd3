"""Margin reports, leaks and customers as CSV and as plain-text tables: what `GET /v1/margin`
and `GET /v1/leaks` answer to `Accept: text/csv`, and what `tollmeter margin | leaks |
customers` print. CSV keeps every amount at full precision (decimal strings, as the JSON
does); tables round money to the cent for reading."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from ..money import decimal_text, usd_text
from ..tables import format_table
from .wire import MARGIN_MEASURES

if TYPE_CHECKING:
    from ..store.ledger import Customer
    from .leaks import Leak
    from .margin import MarginReport
    from .plans import Plan

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
#: The numbers leaks carry, as CSV columns (a leak has some of them).
LEAK_NUMBERS = ("cost_usd", "revenue_usd", "margin_usd", "margin_pct", "floor_pct", "projected_cost_usd",
                "projected_revenue_usd", "crosses_on", "baseline_usd", "factor", "runs", "outcome")
LEAK_COLUMNS = ("rule", "subject", "subject_id", "tenant_id", "since", "message", *LEAK_NUMBERS)
_CENT = Decimal("0.01")


# -- CSV -------------------------------------------------------------------------------------------


def margin_csv(report: MarginReport) -> str:
    """One header row (the group columns, then the measures), a row per group, and a final row
    with TOTAL in the first group column: the sums over every row."""
    out, writer = _writer()
    groups = list(report.group_by)
    writer.writerow([*groups, *MARGIN_MEASURES])
    for row in report.rows:
        data = row.to_dict()
        writer.writerow([_cell(data[g]) for g in groups] + [_cell(data[m]) for m in MARGIN_MEASURES])
    total = report.total.to_dict()
    label = ["TOTAL"] + [""] * (len(groups) - 1) if groups else []
    writer.writerow(label + [_cell(total[m]) for m in MARGIN_MEASURES])
    return out.getvalue()


def leaks_csv(leaks: Iterable[Leak]) -> str:
    """One header row, one row per leak: what it is, then its numbers (empty where a rule has none)."""
    out, writer = _writer()
    writer.writerow(LEAK_COLUMNS)
    for leak in leaks:
        data = leak.to_dict()
        numbers = data["numbers"]
        extra = sorted(set(numbers) - set(LEAK_NUMBERS))
        writer.writerow([_cell(data[c]) for c in LEAK_COLUMNS[:6]] + [_cell(numbers.get(n)) for n in LEAK_NUMBERS]
                        + [f"{k}={_cell(numbers[k])}" for k in extra])
    return out.getvalue()


def _writer() -> tuple[io.StringIO, Any]:
    out = io.StringIO()
    return out, csv.writer(out, lineterminator="\r\n")


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


# -- tables ----------------------------------------------------------------------------------------


def margin_table(report: MarginReport) -> str:
    """The groups, revenue, cost, margin (to the cent), margin %, calls and runs, and a TOTAL row."""
    groups = list(report.group_by)
    unpriced = report.total.unpriced > 0
    headers = [*groups, "revenue", "cost", "margin", "margin %", "calls", "runs", "resolved %", "cost / resolved run"]
    if unpriced:
        headers.append("unpriced calls")
    rows: list[list[Any]] = []
    for row in [*report.rows, report.total] if groups else [report.total]:
        if not groups:
            label = []
        elif row is report.total:
            label = ["TOTAL"] + [""] * (len(groups) - 1)
        else:
            label = [_key(row.key.get(g)) for g in groups]
        cells = [*label, money(row.revenue_usd), money(row.cost_usd), money(row.margin_usd), percent(row.margin_pct),
                 row.calls, row.runs, percent(row.resolution_rate * 100 if row.resolution_rate is not None else None),
                 money(row.cost_per_resolved_run)]
        if unpriced:
            cells.append(row.unpriced or "")
        rows.append(cells)
    right = range(len(groups), len(headers))
    return _with_total_rule(format_table(headers, rows, right=right))


def leaks_table(leaks: Sequence[Leak]) -> str:
    rows = [(leak.rule, f"{leak.subject} {leak.subject_id or '(none)'}", leak.since.isoformat() if leak.since else "-",
             leak.message) for leak in leaks]
    return format_table(["rule", "who", "since", "what"], rows)


def customers_table(customers: Sequence[Customer]) -> str:
    rows = []
    for c in customers:
        since = _current_since(c)
        rows.append((c.tenant_id, c.name or "", c.plan.name if c.plan else "-", c.plan.pricing_model if c.plan else "-",
                     describe_plan(c.plan, c.seats) if c.plan else "-", c.seats, since or "-"))
    return format_table(["tenant", "name", "plan", "model", "price", "seats", "since"], rows, right=(5,))


def customer_text(customer: Customer) -> str:
    """A customer, and the history of its plans."""
    lines = [f"tenant:  {customer.tenant_id}", f"name:    {customer.name or '-'}"]
    if customer.plan is not None:
        lines.append(f"plan:    {customer.plan.name} ({customer.plan.pricing_model}): "
                     f"{describe_plan(customer.plan, customer.seats)}")
    else:
        lines.append("plan:    none in force today")
    if customer.seats is not None:
        lines.append(f"seats:   {customer.seats}")
    if customer.history:
        rows = [(span.effective_from.isoformat(), span.plan.name, span.plan.pricing_model,
                 describe_plan(span.plan, span.seats), span.seats) for span in customer.history]
        lines += ["", format_table(["from", "plan", "model", "price", "seats"], rows, right=(4,))]
    return "\n".join(lines)


def describe_plan(plan: Plan, seats: int | None = None) -> str:
    """`$2 per run`, `$300 per month, 100 runs included, then $2 per run`, ..."""
    model = plan.pricing_model
    if model == "per_unit":
        return f"{_price(plan.unit_revenue_usd)} per run"
    if model == "per_resolution":
        return f"{_price(plan.unit_revenue_usd)} per resolved run"
    if model == "per_seat":
        text = f"{_price(plan.seat_revenue_usd)} per seat per month"
        if seats is not None and plan.seat_revenue_usd is not None:
            text += f" x {seats} = {_price(plan.seat_revenue_usd * seats)}"
        return text
    if model == "flat":
        return f"{_price(plan.base_revenue_usd)} per month"
    if model == "hybrid":
        return (f"{_price(plan.base_revenue_usd)} per month, {plan.included_units or 0:,} runs included, "
                f"then {_price(plan.unit_revenue_usd)} per run")
    parts = []  # usage_based
    if plan.markup is not None:
        parts.append(f"cost {'+' if plan.markup >= 0 else '-'} {decimal_text(abs(plan.markup) * 100)}%")
    if plan.input_rate_mtok is not None:
        parts.append(f"{_price(plan.input_rate_mtok)} per million input tokens")
    if plan.output_rate_mtok is not None:
        parts.append(f"{_price(plan.output_rate_mtok)} per million output tokens")
    if plan.unit_revenue_usd is not None:
        parts.append(f"{_price(plan.unit_revenue_usd)} per run")
    return ", ".join(parts)


def money(amount: Decimal | None) -> str:
    """`$1,234.57`, `-$0.40`, `$0.000226` (see money.usd_text); `-` for none."""
    return usd_text(amount)


def percent(value: Decimal | None) -> str:
    if value is None:
        return "-"
    return f"{value.quantize(Decimal('0.1'), rounding=ROUND_HALF_EVEN)}%"


def _price(amount: Decimal | None) -> str:
    """A price as it was set (exact: `$0.015`), at least to the cent."""
    if amount is None:
        return "-"
    exact = amount.normalize()
    shown = exact if exact.as_tuple().exponent < -2 else amount.quantize(_CENT)  # type: ignore[operator]
    return f"${shown:,f}"


def _key(value: Any) -> str:
    return "(none)" if value is None else str(value)


def _current_since(customer: Customer) -> str | None:
    """Since when the plan in force today is (None: no plan today)."""
    if customer.plan is None:
        return None
    today = datetime.now(timezone.utc).date()
    started = [span.effective_from for span in customer.history if span.effective_from <= today]
    return started[-1].isoformat() if started else None


def _with_total_rule(table: str) -> str:
    """A rule above the last row (the TOTAL)."""
    lines = table.split("\n")
    return "\n".join([*lines[:-1], lines[1], lines[-1]]) if len(lines) > 3 else table
