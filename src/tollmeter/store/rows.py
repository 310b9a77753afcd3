"""An event in its wire form (`LLMEvent.to_dict()`, or a JSON object the server received) as a
row of the events table."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Mapping

_COPIED = (
    "event_id", "tenant_id", "run_id", "agent_id", "provider", "model", "request_model", "endpoint",
    "tool_calls", "web_search_requests", "service_tier", "finish_reason", "duration_ms",
    "time_to_first_token_ms", "request_id", "error", "status_code", "price_source", "price_model",
)
_USAGE_COLUMNS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
_MONEY = ("cost_usd", "provider_cost_usd", "computed_cost_usd")


def event_row(event: Mapping[str, Any]) -> dict[str, Any]:
    usage = event.get("usage") or {}
    row = {name: event.get(name) for name in _COPIED}
    row.update({name: usage.get(name) for name in _USAGE_COLUMNS})
    row.update({name: _decimal(event.get(name)) for name in _MONEY})
    row["timestamp"] = _timestamp(event["timestamp"])
    row["usage"] = dict(usage)
    row["tags"] = dict(event.get("tags") or {})
    row["units"] = event.get("units")
    row["stream"] = bool(event.get("stream"))
    row["partial"] = bool(event.get("partial"))
    row["priced"] = bool(event.get("priced"))
    return row


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)
