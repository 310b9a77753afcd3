"""Reading provider payloads that may be SDK objects or plain dicts (a raw response's JSON).

The wire-format readers (`tollmeter.formats`) read usage through `field()` so that one reader
serves the parsed SDK model, a streamed chunk and the JSON body of a raw response alike, and
the few fields read on the caller's thread through `mapping()`. Values a provider sends oddly
(strings, floats, negatives, booleans) are coerced or dropped, never raised on.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Mapping


_MISSING = object()


def field(obj: Any, name: str) -> Any:
    """`obj.name` or `obj[name]`; None when absent.

    Pydantic models (what the SDKs return) are read from their `__dict__`, extras and private
    attributes directly: a missing attribute through `getattr` costs a formatted AttributeError,
    which is microseconds per field on the caller's thread.
    """
    if obj is None:
        return None
    if type(obj) is dict:
        return obj.get(name)
    values = getattr(obj, "__dict__", None)
    if values is None:
        return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
    value = values.get(name, _MISSING)
    if value is not _MISSING:
        return value
    extra = getattr(obj, "__pydantic_extra__", _MISSING)
    if extra is _MISSING:  # not a pydantic model: properties and the like
        return getattr(obj, name, None)
    if extra and name in extra:
        return extra[name]
    private = getattr(obj, "__pydantic_private__", None)
    if private:
        return private.get(name)
    return None


def mapping(obj: Any) -> Mapping[str, Any]:
    """The fields of an SDK object (a pydantic model's `__dict__`: its declared fields) or a dict
    itself, for reading several fields at a dict lookup each; {} for anything else.

    For the caller's thread, where `field()` per field costs too much: declared fields only (no
    extras, no private attributes), and a field the SDK left unset is absent.
    """
    if type(obj) is dict or isinstance(obj, dict):
        return obj
    values = getattr(obj, "__dict__", None)
    return values if type(values) is dict else _EMPTY


_EMPTY: Mapping[str, Any] = MappingProxyType({})


def count(value: Any) -> int | None:
    """A token count as a non-negative int, or None when missing or nonsensical (a count too
    large to believe is kept here and bounded where the event is made: rules.repair_event)."""
    if type(value) is int:  # the common case, first
        return value if value >= 0 else None
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number != number or number < 0 or number == float("inf") or not number.is_integer():
        return None  # NaN, negative, infinite, or a fraction of a token: not a count
    return int(number)


def money(value: Any) -> Decimal | None:
    """A provider-reported amount as an exact Decimal, or None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() and amount >= 0 else None


def text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def add(a: int | None, b: int | None) -> int | None:
    """Sum of two counts where None means unreported (None + None stays None)."""
    if a is None:
        return b
    if b is None:
        return a
    return a + b
