"""GET /v1/usage: calls, tokens and cost, grouped by tenant, day, model, provider, agent, run
or endpoint, over a time range."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from ..business.closed_days import usage_kept
from ..money import decimal_text
from . import wire
from .body import StrictJSONRoute
from .deps import ProjectStore
from .models import StorableText, UsageOut

router = APIRouter(tags=["usage"], route_class=StrictJSONRoute)

GROUPS = ("tenant_id", "day", "model", "provider", "agent_id", "run_id", "endpoint")
_RELATIVE = re.compile(r"^(\d+)([mhd])$")


def parse_time(text: str, name: str) -> datetime:
    """ISO 8601 (a date, or a date and time; UTC without an offset), or `90m`, `24h`, `7d` ago."""
    relative = _RELATIVE.match(text.strip())
    try:
        if relative:
            unit = {"m": "minutes", "h": "hours", "d": "days"}[relative.group(2)]
            return datetime.now(timezone.utc) - timedelta(**{unit: int(relative.group(1))})
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    except OverflowError:
        raise HTTPException(422, f"{name}: out of range: {text!r}") from None
    except ValueError:
        raise HTTPException(422, f"{name}: expected an ISO 8601 date or time, or 24h / 7d, got {text!r}") from None


@router.get("/v1/usage", response_model=UsageOut, summary="Calls, tokens and cost, grouped")
def usage(
    store: ProjectStore,
    tenant_id: Annotated[str | None, Query(max_length=255), StorableText] = None,
    since: Annotated[str | None, Query(description="from (inclusive): 2026-11-01, 2026-11-26T09:00Z, 24h, 7d")] = None,
    until: Annotated[str | None, Query(description="to (exclusive), same forms")] = None,
    group_by: Annotated[str, Query(description="comma-separated: " + ", ".join(GROUPS))] = "tenant_id",
) -> wire.Answer:
    groups = [g.strip() for g in group_by.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown or len(set(groups)) != len(groups):
        raise HTTPException(422, f"group_by: each of {', '.join(GROUPS)} at most once, got {group_by!r}")
    rows = usage_kept(store, groups, tenant_id=tenant_id, since=parse_time(since, "since") if since else None,
                      until=parse_time(until, "until") if until else None)
    for row in rows:  # the report's own rows (made for this answer): its keys, then its measures
        row["cost_usd"] = decimal_text(row["cost_usd"])
    return wire.Answer({"rows": rows})
