"""Request and response models: they validate the small JSON bodies (limits, leases) and
describe every body in the OpenAPI schema. Money is a decimal string both ways (a JSON number
is refused for money in requests: a float cannot be trusted to be exact)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, create_model

from ..events import EVENT_FIELDS, SCHEMA_VERSION, USAGE_FIELDS, EventField, Kind
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


def _wire_field(f: EventField) -> tuple[Any, Any]:
    """The annotation and default of one field of the wire form (as `create_model` takes them),
    documented with its line of the description; the bounds are those validation.py checks."""
    doc = {"description": f.doc}
    kind = f.kind
    if kind == Kind.VERSION:
        return int | None, Field(SCHEMA_VERSION, **doc)
    if kind == Kind.ID:
        return str, Field(max_length=f.max_length, **doc)
    if kind == Kind.TIMESTAMP:
        return str, Field(description=f"ISO 8601: {f.doc}")
    if kind == Kind.TEXT:
        return Annotated[str, Field(max_length=f.max_length)] | None, Field(None, **doc)
    if kind == Kind.FLAG:
        return bool, Field(False, **doc)
    if kind in (Kind.COUNT, Kind.TOKENS):
        return Annotated[int, Field(ge=0)] | None, Field(None, **doc)
    if kind == Kind.STATUS:
        return Annotated[int, Field(ge=100, le=599)] | None, Field(None, **doc)
    if kind == Kind.DURATION:
        return Annotated[float, Field(ge=0)] | None, Field(None, **doc)
    if kind == Kind.MONEY:
        return MoneyOut | None, Field(None, **doc)
    if kind == Kind.TAGS:
        return dict[str, str] | None, Field(None, **doc)
    if kind == Kind.UNITS:
        return dict[str, Annotated[float, Field(ge=0)]] | None, Field(None, **doc)
    if kind == Kind.USAGE:
        return WireUsage | None, Field(None, **doc)
    raise TypeError(f"{f.name}: no wire model for fields of kind {kind}")  # a new kind: at import


#: An event's usage as the wire form has it (unknown counts are accepted and stored too).
WireUsage = create_model(
    "WireUsage",
    __config__=ConfigDict(extra="allow"),
    __doc__="The token counts that were reported (docs/events.md); more counts are accepted.",
    __module__=__name__,
    **{f.name: _wire_field(f) for f in USAGE_FIELDS},  # type: ignore[call-overload]
)

#: One event as the wire form has it, documented for the OpenAPI schema. The server reads
#: events with validation.py, not with this model; unknown fields are ignored.
WireEvent = create_model(
    "WireEvent",
    __config__=ConfigDict(extra="allow"),
    __doc__="One event as `LLMEvent.to_dict()` makes it (docs/events.md).",
    __module__=__name__,
    **{f.name: _wire_field(f) for f in EVENT_FIELDS},  # type: ignore[call-overload]
)


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
