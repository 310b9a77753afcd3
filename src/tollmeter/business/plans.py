"""Plans: what a customer pays, in one of six pricing models, validated.

A run is one unit of work (a ticket, a report); "units" below are runs.

| pricing_model    | amounts                                       | revenue                                              |
|------------------|-----------------------------------------------|------------------------------------------------------|
| `per_unit`       | `unit_revenue_usd`                            | per resolved run, whatever its outcome               |
| `per_resolution` | `unit_revenue_usd`                            | per run resolved with outcome "resolved" only        |
| `usage_based`    | `markup`, `input_rate_mtok` / `output_rate_mtok`, `unit_revenue_usd` (one or more) | cost x (1 + markup), tokens at the rates, per run |
| `per_seat`       | `seat_revenue_usd`                            | per seat per month                                   |
| `flat`           | `base_revenue_usd`                            | per month                                            |
| `hybrid`         | `base_revenue_usd`, `included_units`, `unit_revenue_usd` | per month, plus each run beyond the included ones |
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from ..rules import BAD_TEXT

PRICING_MODELS = ("per_unit", "per_resolution", "usage_based", "per_seat", "flat", "hybrid")
OUTCOMES = ("resolved", "escalated", "failed")
#: The outcomes but "resolved": under a per_resolution plan, a run of these earns nothing.
UNPAID_OUTCOMES = ("escalated", "failed")

#: The amounts each model needs (at least one of a tuple inside).
_REQUIRED: dict[str, tuple[Any, ...]] = {
    "per_unit": ("unit_revenue_usd",),
    "per_resolution": ("unit_revenue_usd",),
    "usage_based": (("markup", "input_rate_mtok", "output_rate_mtok", "unit_revenue_usd"),),
    "per_seat": ("seat_revenue_usd",),
    "flat": ("base_revenue_usd",),
    "hybrid": ("base_revenue_usd", "included_units", "unit_revenue_usd"),
}
#: Money below 10^12 USD with at most 15 decimals (the store's precision).
_MAX_MONEY = Decimal(10) ** 12
_PLACES = 15


class PlanError(ValueError):
    """A plan, customer or resolution value that cannot be taken; the message names the field."""


@dataclass(frozen=True)
class Plan:
    """What a customer pays. Amounts are exact `Decimal` USD; `markup` is a fraction (0.3 = +30%)."""

    name: str
    pricing_model: str
    unit_revenue_usd: Decimal | None = None
    base_revenue_usd: Decimal | None = None
    seat_revenue_usd: Decimal | None = None
    included_units: int | None = None
    markup: Decimal | None = None
    input_rate_mtok: Decimal | None = None
    output_rate_mtok: Decimal | None = None

    def __post_init__(self) -> None:
        check_text(self.name, "plan name")
        if not self.name.strip():
            raise PlanError(f"plan name must not be blank, got {self.name!r}")
        if self.pricing_model not in PRICING_MODELS:
            raise PlanError(f"pricing_model must be one of {', '.join(PRICING_MODELS)}, got {self.pricing_model!r}")
        for name in _MONEY_FIELDS:
            object.__setattr__(self, name, money(getattr(self, name), name))
        if self.markup is not None and self.markup < -1:
            raise PlanError(f"markup must be >= -1 (a fraction: 0.3 is +30%), got {self.markup}")
        units = self.included_units
        if units is not None and (isinstance(units, bool) or not isinstance(units, int) or units < 0):
            raise PlanError(f"included_units must be a whole number >= 0, got {units!r}")
        for need in _REQUIRED[self.pricing_model]:
            names = need if isinstance(need, tuple) else (need,)
            if all(getattr(self, n) is None for n in names):
                raise PlanError(f"a {self.pricing_model} plan needs {' or '.join(names)}")

    @classmethod
    def of(cls, value: Plan | Mapping[str, Any]) -> Plan:
        """A Plan from a Plan or a dict with the same keys (unknown keys are an error)."""
        if isinstance(value, Plan):
            return value
        if not isinstance(value, Mapping):
            raise PlanError(f"a plan is a tollmeter.Plan or a dict, not {type(value).__name__}")
        unknown = set(value) - _FIELD_NAMES
        if unknown:
            raise PlanError(f"unknown plan field(s): {', '.join(sorted(unknown))}")
        for required in ("name", "pricing_model"):
            if required not in value:
                raise PlanError(f"a plan needs {required}")
        return cls(**value)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: money as decimal strings, unset amounts left out."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            out[f.name] = format(value, "f") if isinstance(value, Decimal) else value
        return out

    @property
    def recurring(self) -> bool:
        """Whether the plan has a monthly fee (spread over the month's days)."""
        return self.pricing_model in ("per_seat", "flat", "hybrid")


_MONEY_FIELDS = ("unit_revenue_usd", "base_revenue_usd", "seat_revenue_usd", "markup", "input_rate_mtok",
                 "output_rate_mtok")
_FIELD_NAMES = {f.name for f in fields(Plan)}


def money(value: Any, name: str, *, required: bool = False, negative: bool = False) -> Decimal | None:
    """An exact amount from a Decimal, int or decimal string (a float only if it prints exactly
    as typed); a clear PlanError naming `name` otherwise."""
    if value is None:
        if required:
            raise PlanError(f"{name} is required")
        return None
    if isinstance(value, bool):
        raise PlanError(f"{name} must be an amount, got {value!r}")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError, TypeError):
        raise PlanError(f"{name} must be an amount like \"49.99\", got {value!r}") from None
    if not amount.is_finite():
        raise PlanError(f"{name} must be finite, got {value!r}")
    if amount < 0 and not (negative or name == "markup"):
        raise PlanError(f"{name} must be >= 0, got {value!r}")
    if amount and amount.adjusted() >= 12:  # abs(amount) >= 10^12, without overflowing on 1e999999999
        raise PlanError(f"{name} must be below 10^12, got {value!r}")
    if amount.as_tuple().exponent < -_PLACES:  # type: ignore[operator]
        raise PlanError(f"{name} has more than {_PLACES} decimal places: {value!r}")
    return amount


_BAD_TEXT = BAD_TEXT  # NUL and unpaired surrogates (rules.py, the rules shared with the server)


def check_text(value: Any, name: str, *, empty: bool = False, longest: int = 255) -> str:
    """A name or id: a string of at most `longest` characters, without NUL or unpaired
    surrogates (which no database stores); non-empty unless `empty`."""
    if not isinstance(value, str) or (not value and not empty) or len(value) > longest:
        raise PlanError(f"{name} must be a {'' if empty else 'non-empty '}string of at most {longest} characters, "
                        f"got {value!r}")
    if _BAD_TEXT.search(value):
        raise PlanError(f"{name} must not contain NUL or unpaired surrogate characters")
    return value


def outcome(value: Any) -> str:
    if value not in OUTCOMES:
        raise PlanError(f"outcome must be one of {', '.join(OUTCOMES)}, got {value!r}")
    return value


def seats(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise PlanError(f"seats must be a whole number >= 0, got {value!r}")
    return value
