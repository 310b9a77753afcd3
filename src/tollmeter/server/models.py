"""Request and response models: they validate the small JSON bodies (limits, leases) and
describe every body in the OpenAPI schema. Money is a decimal string both ways (a JSON number
is refused for money in requests: a float cannot be trusted to be exact)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, create_model

from ..business.plans import OUTCOMES, PRICING_MODELS
from ..events import EVENT_FIELDS, SCHEMA_VERSION, USAGE_FIELDS, EventField, Kind
from ..limits.periods import FREQUENCIES
from ..limits.periods import frequency as check_frequency
from .validation import BAD_TEXT, COUNT_LIMITS


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


def _text_in(value: Any) -> Any:
    """Text a database can store: no NUL (PostgreSQL refuses it) and no unpaired surrogate."""
    if isinstance(value, str) and BAD_TEXT.search(value):
        raise ValueError("contains a NUL or an unpaired surrogate")
    return value


#: For path and query parameters: text a database can store (422 otherwise).
StorableText = BeforeValidator(_text_in)

#: A tenant id, a lease holder, a lease id: non-empty text of at most 255 (64) characters.
Tenant = Annotated[str, Field(min_length=1, max_length=255), BeforeValidator(_text_in)]
Holder = Annotated[str, Field(min_length=1, max_length=255), BeforeValidator(_text_in)]
LeaseId = Annotated[str, Field(min_length=1, max_length=64), BeforeValidator(_text_in)]


def _amount_in(value: Any) -> Any:
    """An exact amount: a decimal string or a JSON integer (the business rules check its range)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or (isinstance(value, str) and len(value) > 64):
        raise ValueError("an amount is a decimal string, like \"49.99\"")
    try:
        amount = Decimal(str(value).strip())
    except Exception:
        raise ValueError("an amount is a decimal string, like \"49.99\"") from None
    if not amount.is_finite():
        raise ValueError("an amount must be finite")
    if amount and not -40 < amount.adjusted() < 20:
        raise ValueError("an amount must be below 10^12, with at most 15 decimal places")
    return amount


def _day_in(value: Any) -> Any:
    from datetime import date

    if not isinstance(value, str) or len(value) != 10:
        raise ValueError("a day is YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not a day: {value!r} (YYYY-MM-DD)") from None


_AMOUNT_SCHEMA = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "examples": ["49.99", "2"]}
Amount = Annotated[Decimal, BeforeValidator(_amount_in), WithJsonSchema(_AMOUNT_SCHEMA)]
Text = Annotated[str, Field(min_length=1, max_length=255), BeforeValidator(_text_in)]
Day = Annotated[Any, BeforeValidator(_day_in), WithJsonSchema({"type": "string", "format": "date",
                                                               "examples": ["2026-12-01"]})]
PricingModel = Literal[PRICING_MODELS]  # type: ignore[valid-type]
Outcome = Literal[OUTCOMES]  # type: ignore[valid-type]


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
    holder: Holder = "api"
    want_usd: MoneyIn
    need_usd: MoneyIn = Decimal(0)
    ttl_seconds: Annotated[float, Field(gt=0, description="cut to the server's longest lease (300 s by default)")] = (
        30.0)
    lease_id: LeaseId | None = Field(
        default=None, description="a lease of yours to extend")
    want_fraction: Annotated[Decimal, BeforeValidator(_money_in), WithJsonSchema(_MONEY_SCHEMA)] | None = Field(
        default=None, description="ask for this fraction of the tenant's smallest limit if it is more than "
                                  "want_usd (an agent that does not know the limits yet), e.g. \"0.05\"")


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
    resolutions_accepted: int | None = Field(
        None, description="run resolutions stored by this request (only when the batch has `resolutions`)")
    resolutions_duplicates: int | None = Field(
        None, description="resolutions of runs already resolved the same way (or with the same idempotency key)")
    rejected_resolutions: list[Rejected] | None = Field(
        None, description="resolutions refused: invalid, or contradicting the run's resolution (index in `resolutions`)")


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
        return Annotated[int, Field(ge=0, le=COUNT_LIMITS[kind])] | None, Field(None, **doc)
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


class WireResolution(BaseModel):
    """A run's resolution as `RunResolution.to_dict()` makes it (the agent's `meter.resolve()`).
    Unknown fields are ignored."""

    model_config = ConfigDict(extra="allow")
    run_id: Annotated[str, Field(min_length=1, max_length=255)]
    outcome: Outcome
    revenue_usd: MoneyOut | None = Field(None, description="replaces the revenue the plan gives the run")
    tenant_id: Tenant | None = None
    agent_id: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    resolved_at: str | None = Field(None, description="ISO 8601 (UTC without an offset); now when left out")
    idempotency_key: Annotated[str, Field(min_length=1, max_length=255)] | None = None


class IngestBatch(BaseModel):
    events: list[WireEvent]
    resolutions: list[WireResolution] | None = Field(
        None, description="run resolutions, stored after the batch's events (docs/server.md)")


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


# -- customers, runs, margin and leaks -------------------------------------------------------------




class PlanIn(Strict):
    """A plan (docs/margin.md): the amounts its pricing model needs, as decimal strings."""

    name: Text
    pricing_model: PricingModel
    unit_revenue_usd: Amount | None = Field(None, description="per run (per_unit, per_resolution, hybrid overage, "
                                                              "usage_based)")
    base_revenue_usd: Amount | None = Field(None, description="per month (flat, hybrid)")
    seat_revenue_usd: Amount | None = Field(None, description="per seat per month (per_seat)")
    included_units: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = Field(None, description="runs included "
                                                                                              "(hybrid)")
    markup: Amount | None = Field(None, description="usage_based: revenue = cost x (1 + markup); 0.3 is +30%")
    input_rate_mtok: Amount | None = Field(None, description="usage_based: USD per million input tokens")
    output_rate_mtok: Amount | None = Field(None, description="usage_based: USD per million output tokens")


class CustomerIn(Strict):
    name: Annotated[str, Field(max_length=255), BeforeValidator(_text_in)] | None = None
    plan: PlanIn | None = None
    seats: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    effective_from: Day | None = Field(None, description="the UTC day the plan and seats take effect (today "
                                                         "by default); earlier days keep what they had")


class PlanOut(BaseModel):
    """Money as decimal strings; amounts the plan does not set are left out."""

    model_config = ConfigDict(extra="allow")
    name: str
    pricing_model: str


class PlanSpanOut(BaseModel):
    effective_from: str
    plan: PlanOut
    seats: int | None


class CustomerOut(BaseModel):
    tenant_id: str
    name: str | None
    plan: PlanOut | None = Field(description="the plan in force today (null: none yet)")
    seats: int | None
    history: list[PlanSpanOut] = Field(description="every plan the customer had, oldest first")


class CustomersOut(BaseModel):
    customers: list[CustomerOut]


class ResolveIn(Strict):
    outcome: Outcome
    revenue_usd: Amount | None = Field(None, description="replaces the revenue the plan gives the run")
    tenant_id: Text | None = Field(None, description="the run's tenant, if its events have not said it yet")
    agent_id: Text | None = None
    idempotency_key: Text | None = Field(None, description="the same key again is the same resolution")
    resolved_at: Annotated[str, Field(max_length=64)] | None = Field(
        None, description="ISO 8601 (UTC without an offset), now by default; not more than a day ahead")


class ResolutionOut(BaseModel):
    run_id: str
    tenant_id: str | None
    agent_id: str | None
    outcome: str
    revenue_usd: MoneyOut | None
    resolved_at: str
    duplicate: bool = Field(description="the run was already resolved this way: nothing changed")


class MarginRowOut(BaseModel):
    """The group's key values (by group name), then its measures."""

    model_config = ConfigDict(extra="allow")
    revenue_usd: MoneyOut
    cost_usd: MoneyOut
    margin_usd: Annotated[str, WithJsonSchema({"type": "string", "description": "USD, may be negative"})]
    margin_pct: str | None = Field(description="margin / revenue x 100, to the hundredth (null without revenue)")
    calls: int
    input_tokens: int
    output_tokens: int
    unpriced: int
    runs: int = Field(description="runs resolved in the range")
    resolved: int
    escalated: int
    failed: int
    resolution_rate: str | None = Field(description="resolved / runs (null without runs)")
    cost_per_resolved_run_usd: MoneyOut | None


class MarginOut(BaseModel):
    group_by: list[str]
    since: str = Field(description="first UTC day in the report")
    until: str = Field(description="the day after the last one")
    rows: list[MarginRowOut]
    total: MarginRowOut


class LeakOut(BaseModel):
    rule: str = Field(description="cost_over_revenue, projected_over_revenue, run_over_unit_revenue, "
                                  "margin_below_floor or cost_spike")
    subject: str = Field(description="customer, run or agent")
    subject_id: str | None
    tenant_id: str | None
    since: str | None
    message: str
    numbers: dict[str, Any] = Field(description="money as decimal strings, days as YYYY-MM-DD")


class LeaksOut(BaseModel):
    leaks: list[LeakOut]
