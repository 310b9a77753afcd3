"""The JSON forms of customers, resolutions, margin reports and leaks, both ways: the server
answers with `*_to_dict`, and `RemoteLedger` (business/remote.py) reads the answers back into
the very objects the embedded `Ledger` returns. Money is a decimal string, exact both ways.
Also `parse_when`: the `since` / `until` of a report as the server and the command line take it."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Mapping

from ..money import decimal_text
from .leaks import Leak
from .margin import MarginReport, MarginRow
from .plans import Plan, PlanError
from .revenue import PlanSpan

if TYPE_CHECKING:
    from ..store.ledger import Customer, Resolution

#: The integer measures of a margin row (the rest are money or derived).
_COUNTS = ("calls", "input_tokens", "output_tokens", "unpriced", "resolved", "escalated", "failed")
#: The measures of a margin row's JSON form, in order (MarginRow.to_dict's keys after the group's).
MARGIN_MEASURES = ("revenue_usd", "cost_usd", "margin_usd", "margin_pct", "calls", "input_tokens", "output_tokens",
                   "unpriced", "runs", "resolved", "escalated", "failed", "resolution_rate",
                   "cost_per_resolved_run_usd")
#: Numbers of a leak that are days, and those that are text; every other string is a Decimal.
_LEAK_DAYS = ("crosses_on",)
_LEAK_TEXT = ("outcome",)
_RELATIVE = re.compile(r"^(\d{1,6})([mhd])$")


# -- customers -------------------------------------------------------------------------------------


def customer_to_dict(customer: Customer) -> dict[str, Any]:
    return {
        "tenant_id": customer.tenant_id,
        "name": customer.name,
        "plan": customer.plan.to_dict() if customer.plan is not None else None,
        "seats": customer.seats,
        "history": [{"effective_from": span.effective_from.isoformat(), "plan": span.plan.to_dict(),
                     "seats": span.seats} for span in customer.history],
    }


def customer_from_dict(data: Mapping[str, Any]) -> Customer:
    from ..store.ledger import Customer

    plan = data.get("plan")
    history = tuple(PlanSpan(date.fromisoformat(item["effective_from"]), Plan.of(item["plan"]), item.get("seats"))
                    for item in data.get("history") or ())
    return Customer(data["tenant_id"], data.get("name"), Plan.of(plan) if plan is not None else None,
                    data.get("seats"), history)


# -- resolutions -----------------------------------------------------------------------------------


def resolution_to_dict(resolution: Resolution) -> dict[str, Any]:
    return {"run_id": resolution.run_id, "tenant_id": resolution.tenant_id, "agent_id": resolution.agent_id,
            "outcome": resolution.outcome, "revenue_usd": decimal_text(resolution.revenue_usd),
            "resolved_at": resolution.resolved_at.isoformat().replace("+00:00", "Z"),
            "duplicate": resolution.duplicate}


def resolution_from_dict(data: Mapping[str, Any]) -> Resolution:
    from ..store.ledger import Resolution

    revenue = data.get("revenue_usd")
    return Resolution(data["run_id"], data.get("tenant_id"), data.get("agent_id"), data["outcome"],
                      Decimal(revenue) if revenue is not None else None,
                      datetime.fromisoformat(data["resolved_at"].replace("Z", "+00:00")), bool(data.get("duplicate")))


# -- margin ----------------------------------------------------------------------------------------


def margin_from_dict(data: Mapping[str, Any]) -> MarginReport:
    """A MarginReport from `MarginReport.to_dict()` (its rows' derived measures recomputed)."""
    groups = tuple(data["group_by"])
    report = MarginReport(groups, date.fromisoformat(data["since"]), date.fromisoformat(data["until"]))
    report.rows = [_margin_row(item, groups) for item in data.get("rows") or ()]
    report.total = _margin_row(data["total"], ())
    return report


def _margin_row(item: Mapping[str, Any], groups: tuple[str, ...]) -> MarginRow:
    return MarginRow({g: item.get(g) for g in groups}, revenue_usd=Decimal(item["revenue_usd"]),
                     cost_usd=Decimal(item["cost_usd"]), **{name: int(item.get(name) or 0) for name in _COUNTS})


# -- leaks -----------------------------------------------------------------------------------------


def leak_from_dict(data: Mapping[str, Any]) -> Leak:
    numbers: dict[str, Any] = {}
    for key, value in (data.get("numbers") or {}).items():
        if isinstance(value, str) and key in _LEAK_DAYS:
            value = date.fromisoformat(value)
        elif isinstance(value, str) and key not in _LEAK_TEXT:
            value = Decimal(value)
        numbers[key] = value
    since = data.get("since")
    return Leak(data["rule"], data["subject"], data.get("subject_id"), data.get("tenant_id"),
                date.fromisoformat(since) if since else None, data["message"], numbers)


# -- report ranges ---------------------------------------------------------------------------------


def parse_when(text: str | None, name: str) -> date | datetime | None:
    """A day (`2026-11-01`), a time (ISO 8601, UTC without an offset) or `90m` / `24h` / `7d`
    ago; None for nothing. A report starts at the first midnight at or after it. PlanError
    naming `name` otherwise."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    relative = _RELATIVE.match(text)
    try:
        if relative:
            unit = {"m": "minutes", "h": "hours", "d": "days"}[relative.group(2)]
            return datetime.now(timezone.utc) - timedelta(**{unit: int(relative.group(1))})
        if len(text) == 10:
            return date.fromisoformat(text)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    except OverflowError:
        raise PlanError(f"{name}: out of range: {text!r}") from None
    except ValueError:
        raise PlanError(f"{name}: expected a day (2026-11-01), an ISO 8601 time, or 90m / 24h / 7d, "
                        f"got {text!r}") from None
