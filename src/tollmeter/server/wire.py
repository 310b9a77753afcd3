"""Answers as JSON: money as decimal strings (exact, never floats), times in ISO 8601 UTC."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import msgspec
from fastapi import Response

from ..money import decimal_text

if TYPE_CHECKING:
    from ..store.store import Grant, Limit, LimitState, RateLimit

_ZERO = Decimal(0)
_ENCODER = msgspec.json.Encoder()


class Answer(Response):
    """A report's JSON answer, encoded by msgspec as the route made it (plain dicts, lists,
    strings and numbers; money already decimal strings). What a route returns otherwise goes
    through FastAPI's `jsonable_encoder` (and its response model): about 30 µs a row of a
    margin report, where msgspec takes 0.4. The routes that answer many rows (usage, margin,
    leaks, customers, every limit) answer with this and keep their response model for the
    OpenAPI schema; tests/test_server_business.py checks that each answer is what that model
    makes of it."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _ENCODER.encode(content)


def when(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def limit(lim: Limit) -> dict[str, Any]:
    return {"frequency": lim.frequency, "limit_usd": decimal_text(lim.limit_usd), "default": lim.default}


def state(st: LimitState, *, remaining: bool = True) -> dict[str, Any]:
    out = {
        "frequency": st.limit.frequency, "limit_usd": decimal_text(st.limit.limit_usd), "spent_usd": decimal_text(st.spent_usd),
        "leased_usd": decimal_text(st.leased_usd),
    }
    if remaining:
        out["remaining_usd"] = decimal_text(max(_ZERO, st.available_usd))
    out["resets_at"] = when(st.resets_at)
    out["default"] = st.limit.default
    return out


def rate_limit(tenant_id: str, rate: RateLimit | None) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "requests_per_minute": rate.requests_per_minute if rate else None,
            "tokens_per_minute": rate.tokens_per_minute if rate else None}


def grant(g: Grant, rate: RateLimit | None, *, want: Decimal) -> dict[str, Any]:
    return {
        "lease_id": g.lease_id,
        "granted_usd": decimal_text(g.granted_usd),
        "remaining_usd": decimal_text(g.remaining_usd),
        "expires_at": when(g.expires_at),
        "unlimited": g.unlimited,
        "refused": not g.unlimited and not g.granted_usd and want > 0,
        "limits": [state(s, remaining=False) for s in g.states],
        "rate_limit": (None if rate is None else
                       {"requests_per_minute": rate.requests_per_minute, "tokens_per_minute": rate.tokens_per_minute}),
    }
