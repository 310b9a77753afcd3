"""Request and response models: they validate the small JSON bodies (limits, leases) and
describe every body in the OpenAPI schema. Money is a decimal string both ways (a JSON number
is refused for money in requests: a float cannot be trusted to be exact)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from ..limits.periods import FREQUENCIES
from ..limits.periods import frequency as check_frequency


def _money_in(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("money is a decimal string, like \"50\" or \"0.25\"")
    try:
        amount = Decimal(str(value).strip())
    except Exception:
        raise ValueError("money is a decimal string, like \"50\" or \"0.25\"") from None
    if not amount.is_finite() or amount < 0 or amount >= Decimal(10) ** 15:
        raise ValueError("must be a finite amount >= 0 and below 10^15")
    return amount


def _frequency_in(value: Any) -> Any:
    return check_frequency(value)


_MONEY_SCHEMA = {"type": "string", "pattern": r"^\d+(\.\d+)?$", "examples": ["50", "0.25"]}
MoneyIn = Annotated[Decimal, BeforeValidator(_money_in), WithJsonSchema(_MONEY_SCHEMA)]
MoneyOut = Annotated[str, WithJsonSchema({**_MONEY_SCHEMA, "description": "USD, a decimal string"})]
Frequency = Annotated[str, BeforeValidator(_frequency_in),
                      WithJsonSchema({"type": "string", "enum": list(FREQUENCIES), "default": "per_month"})]
Tenant = Annotated[str, Field(min_length=1, max_length=255)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- limits ----------------------------------------------------------------------------------------


class LimitIn(Strict):
    limit_usd: MoneyIn
    frequency: Frequency = "per_month"


class LimitOut(BaseModel):
    frequency: str
    limit_usd: MoneyOut
    #: True when this is the default limit (tenant "*"), applied because the tenant has none.
    default: bool


class TenantLimits(BaseModel):
    tenant_id: str
    limits: list[LimitOut]


class Removed(BaseModel):
    removed: int


class RateLimitIn(Strict):
    requests_per_minute: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    tokens_per_minute: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = None


class RateLimitOut(BaseModel):
    tenant_id: str
    requests_per_minute: int | None
    tokens_per_minute: int | None


class LimitStateOut(BaseModel):
    frequency: str
    limit_usd: MoneyOut
    spent_usd: MoneyOut
    leased_usd: MoneyOut
    remaining_usd: MoneyOut
    resets_at: str | None = Field(description="ISO 8601 UTC; null for total")
    default: bool


class TenantSpend(BaseModel):
    tenant_id: str
    limits: list[LimitStateOut]
    spent: dict[str, MoneyOut] = Field(description="settled spend in the current period of every frequency")


# -- leases ----------------------------------------------------------------------------------------


class LeaseIn(BaseModel):
    """Unknown fields are ignored: newer agents may send more."""

    tenant_id: Tenant
    holder: Annotated[str, Field(min_length=1, max_length=255)] = "api"
    want_usd: MoneyIn
    need_usd: MoneyIn = Decimal(0)
    ttl_seconds: Annotated[float, Field(gt=0, description="cut to the server's longest lease (300 s by default)")] = (
        30.0)
    lease_id: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="a lease of yours to extend")


class LeaseLimitOut(BaseModel):
    frequency: str
    limit_usd: MoneyOut
    spent_usd: MoneyOut
    leased_usd: MoneyOut
    resets_at: str | None
    default: bool


class RateOut(BaseModel):
    requests_per_minute: int | None
    tokens_per_minute: int | None


class LeaseOut(BaseModel):
    lease_id: str | None = Field(description="null when nothing was granted (or no limit applies)")
    granted_usd: MoneyOut
    remaining_usd: MoneyOut
    expires_at: str | None
    unlimited: bool = Field(description="the tenant has no limit: no lease is needed")
    refused: bool = Field(description="the limits leave less than need_usd (or nothing): nothing granted")
    limits: list[LeaseLimitOut]
    rate_limit: RateOut | None


# -- ingest and usage ------------------------------------------------------------------------------


class Rejected(BaseModel):
    index: int
    reason: str


class IngestResult(BaseModel):
    accepted: int = Field(description="events stored by this request")
    duplicates: int = Field(description="valid events already stored (or repeated in the batch)")
    unpriced: int = Field(description="of the accepted events, those stored without a price")
    rejected: list[Rejected]


class WireUsage(BaseModel):
    model_config = ConfigDict(extra="allow")
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None


class WireEvent(BaseModel):
    """One event as `LLMEvent.to_dict()` makes it (docs/events.md)."""

    model_config = ConfigDict(extra="allow")
    event_id: str = Field(max_length=64)
    timestamp: str = Field(description="ISO 8601")
    schema_version: int | None = 1
    tenant_id: str | None = None
    run_id: str | None = None
    agent_id: str | None = None
    tags: dict[str, str] | None = None
    provider: str | None = None
    model: str | None = None
    request_model: str | None = None
    endpoint: str | None = None
    stream: bool = False
    usage: WireUsage | None = None
    tool_calls: int | None = None
    web_search_requests: int | None = None
    service_tier: str | None = None
    finish_reason: str | None = None
    duration_ms: float | None = None
    time_to_first_token_ms: float | None = None
    request_id: str | None = None
    error: str | None = None
    status_code: int | None = None
    partial: bool = False
    cost_usd: MoneyOut | None = None
    priced: bool = False
    price_source: str | None = None
    price_model: str | None = None
    provider_cost_usd: MoneyOut | None = None
    computed_cost_usd: MoneyOut | None = None
    units: dict[str, float] | None = None
    lease_id: str | None = Field(default=None, description="the budget lease the call was reserved against")


class IngestBatch(BaseModel):
    events: list[WireEvent]


class UsageRow(BaseModel):
    model_config = ConfigDict(extra="allow")
    calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cost_usd: MoneyOut
    unpriced: int
    errors: int


class UsageOut(BaseModel):
    rows: list[UsageRow]
