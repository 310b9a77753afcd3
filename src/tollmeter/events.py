"""The event schema: one `LLMEvent` per provider call, with its normalised `Usage`.

Usage follows the inclusive convention (the OpenTelemetry GenAI rule): `input_tokens` counts
every input token billed (cache reads and writes, audio, images included) and `output_tokens`
every output token billed (reasoning and audio included); the other counts are subsets of one
of those two. A count the provider did not report is `None`, never 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Mapping

SCHEMA_VERSION = 1

@dataclass(slots=True)
class Usage:
    """Token counts of one call, inclusive totals with subsets as details."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    cache_write_1h_tokens: int | None = None
    input_audio_tokens: int | None = None
    input_image_tokens: int | None = None
    input_video_tokens: int | None = None
    tool_use_prompt_tokens: int | None = None
    reasoning_tokens: int | None = None
    output_audio_tokens: int | None = None
    output_image_tokens: int | None = None
    accepted_prediction_tokens: int | None = None
    rejected_prediction_tokens: int | None = None

    @property
    def total_tokens(self) -> int | None:
        if self.input_tokens is None and self.output_tokens is None:
            return None
        return (self.input_tokens or 0) + (self.output_tokens or 0)

    @property
    def uncached_input_tokens(self) -> int | None:
        """Input tokens billed at the plain input rate (neither read from nor written to a cache)."""
        if self.input_tokens is None:
            return None
        return self.input_tokens - (self.cache_read_tokens or 0) - (self.cache_write_tokens or 0)

    def is_empty(self) -> bool:
        return all(getattr(self, f) is None for f in _USAGE_FIELDS)

    def to_dict(self) -> dict[str, int]:
        """The reported counts only; a count that is `None` is left out."""
        out = {}
        for name in _USAGE_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Usage":
        return cls(**{k: data[k] for k in _USAGE_FIELDS if data.get(k) is not None})


_USAGE_FIELDS = tuple(f.name for f in fields(Usage))


def new_event_id() -> str:
    """A random (version 4) UUID as text; `str(uuid.uuid4())` costs several times more."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(slots=True)
class LLMEvent:
    """One metered call. Never holds prompt or completion content."""

    provider: str | None = None
    model: str | None = None
    request_model: str | None = None
    endpoint: str | None = None
    stream: bool = False
    usage: Usage = field(default_factory=Usage)
    tenant_id: str | None = None
    run_id: str | None = None
    agent_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    event_id: str = field(default_factory=new_event_id)
    timestamp: datetime = field(default_factory=_now)
    duration_ms: float | None = None
    time_to_first_token_ms: float | None = None
    request_id: str | None = None
    tool_calls: int | None = None
    web_search_requests: int | None = None
    service_tier: str | None = None
    finish_reason: str | None = None
    error: str | None = None
    status_code: int | None = None
    partial: bool = False
    #: What the call cost: the provider-reported cost when there is one, else the computed
    #: price; `None` while unpriced (an unknown model is never $0).
    cost_usd: Decimal | None = None
    priced: bool = False
    #: Where `cost_usd` came from: "genai-prices 0.2.3", "rate card rates.yaml:12", "provider", ...
    price_source: str | None = None
    #: The price entry that matched, e.g. "openai/gpt-4o".
    price_model: str | None = None
    #: Cost the provider or gateway reported itself (OpenRouter `usage.cost`), or the caller gave.
    provider_cost_usd: Decimal | None = None
    #: tollmeter's own price of the usage, kept beside a provider-reported cost.
    computed_cost_usd: Decimal | None = None
    #: Non-token quantities (seconds of audio, images, characters) for media endpoints.
    units: Mapping[str, float] | None = None
    #: The budget lease the call was reserved against (the server takes its cost off it).
    lease_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The wire form: JSON-safe, money as decimal strings, timestamps in ISO 8601 UTC."""
        return {
            "schema_version": SCHEMA_VERSION,
            "event_id": self.event_id,
            "timestamp": self.timestamp.isoformat(),
            "tenant_id": self.tenant_id,
            "run_id": self.run_id,
            "agent_id": self.agent_id,
            "tags": dict(self.tags),
            "provider": self.provider,
            "model": self.model,
            "request_model": self.request_model,
            "endpoint": self.endpoint,
            "stream": self.stream,
            "usage": self.usage.to_dict(),
            "tool_calls": self.tool_calls,
            "web_search_requests": self.web_search_requests,
            "service_tier": self.service_tier,
            "finish_reason": self.finish_reason,
            "duration_ms": self.duration_ms,
            "time_to_first_token_ms": self.time_to_first_token_ms,
            "request_id": self.request_id,
            "error": self.error,
            "status_code": self.status_code,
            "partial": self.partial,
            "cost_usd": _money(self.cost_usd),
            "priced": self.priced,
            "price_source": self.price_source,
            "price_model": self.price_model,
            "provider_cost_usd": _money(self.provider_cost_usd),
            "computed_cost_usd": _money(self.computed_cost_usd),
            "units": dict(self.units) if self.units else None,
            "lease_id": self.lease_id,
        }


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
