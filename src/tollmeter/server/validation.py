"""One event of a batch, checked on its own: a clean wire dict, or the reason it is refused.

What is checked (see docs/server.md):

- `event_id` (1-64 characters: letters, digits, `.`, `_`, `:`, `-`) and `timestamp` (ISO 8601;
  UTC when it has no offset; not before 2000 nor more than a day ahead) are required.
- Strings are strings of at most their column's length, without NUL or unpaired surrogates.
- Usage counts are JSON integers (not 1.0, not booleans) from 0 to 10^12 (`MAX_TOKENS`: no call
  bills more, and a sum of 9 million of them still fits a 64-bit column); `tool_calls` and
  `web_search_requests` from 0 to 2^31 - 1 (their columns are 32-bit); durations are
  non-negative numbers.
- Money (`cost_usd`, `provider_cost_usd`, `computed_cost_usd`) is a decimal *string*, finite,
  non-negative, below 10^15; more than 15 decimal places are rounded to 15 (the columns'
  precision). A cost the server computes on arrival is held to the same bound.
- `tags` maps strings to strings (64 at most), `units` names to non-negative numbers.
- Content is refused: a key named like prompt or completion content (`prompt`, `messages`,
  `content`, `input`, `output`, `completion`, ... see CONTENT_FIELDS), at any depth of the event,
  tags and unknown fields included, refuses the whole event. Other unknown fields are ignored
  (not stored), so newer agents can add fields.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from ..business.plans import PlanError
from ..business.runs import RunResolution
from ..events import EVENT_FIELDS, SCHEMA_VERSION, Kind, of_kind
from .. import rules
from ..rules import (BAD_TEXT, CONTENT_FIELDS, EARLIEST, FUTURE_SKEW, MAX_COUNT, MAX_ENTRIES, MAX_MONEY, MAX_TAG_KEY,
                     MAX_TAG_VALUE, MAX_TAGS, MAX_TOKENS, NAME)


#: The checks of each kind of field (events.py describes the fields): string fields and their
#: longest length (their columns'), flags, counts, durations, money.
STRINGS = {f.name: f.max_length for f in of_kind(Kind.TEXT)}
_STRING_ITEMS = tuple(STRINGS.items())
BOOLEANS = tuple(f.name for f in of_kind(Kind.FLAG))
COUNTS = tuple(f.name for f in of_kind(Kind.COUNT))
STATUSES = tuple(f.name for f in of_kind(Kind.STATUS))
DURATIONS = tuple(f.name for f in of_kind(Kind.DURATION))
MONEY = tuple(f.name for f in of_kind(Kind.MONEY))
#: The fields validate_event checks by name: the one field of each of these kinds.
SINGLE = {Kind.VERSION: "schema_version", Kind.ID: "event_id", Kind.TIMESTAMP: "timestamp",
          Kind.USAGE: "usage", Kind.TAGS: "tags", Kind.UNITS: "units"}
_BY_TABLE = {Kind.TEXT, Kind.FLAG, Kind.COUNT, Kind.STATUS, Kind.DURATION, Kind.MONEY}
if ({f.kind for f in EVENT_FIELDS} - _BY_TABLE - set(SINGLE)
        or any([f.name for f in of_kind(kind)] != [name] for kind, name in SINGLE.items())):
    # A field the server would silently drop: fail at import rather than lose it.
    raise RuntimeError("server/validation.py does not check every field of events.EVENT_FIELDS")

MAX_DEPTH = 32
#: The largest count of each kind of count field (tool_calls, web_search_requests: INTEGER
#: columns); usage counts (BIGINT columns) are at most MAX_TOKENS. The bounds are the agent's
#: too (rules.py): what the server refuses, the agent refuses first.
COUNT_LIMITS = {Kind.COUNT: MAX_COUNT, Kind.TOKENS: MAX_TOKENS}
MONEY_QUANTUM = Decimal(1).scaleb(-rules.MONEY_PLACES)

_EVENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_NAME = NAME


class Invalid(Exception):
    """Why an event is refused (the message is the reason sent back)."""


def validate_event(raw: Any, now: datetime) -> dict[str, Any]:
    """The event as a clean wire dict (timestamp a datetime, money Decimal); raises Invalid."""
    if not isinstance(raw, dict):
        raise Invalid("an event must be a JSON object")
    _refuse_content(raw, (), 0)
    out: dict[str, Any] = {}
    version = raw.get("schema_version")
    if version is not None and (not _is_int(version) or not 1 <= version <= SCHEMA_VERSION):
        raise Invalid(f"schema_version: this server reads versions 1 to {SCHEMA_VERSION}")
    event_id = raw.get("event_id")
    if not isinstance(event_id, str) or not _EVENT_ID.match(event_id):
        raise Invalid("event_id: required, 1-64 letters, digits, '.', '_', ':' or '-'")
    out["event_id"] = event_id
    out["timestamp"] = _timestamp(raw.get("timestamp"), now)
    texts = []
    for name, longest in _STRING_ITEMS:
        value = raw.get(name)
        if value is not None:
            if value.__class__ is not str or len(value) > longest:
                _text(value, name, longest)  # raises with the reason
            out[name] = value
            texts.append(value)
    if texts and BAD_TEXT.search("".join(texts)):  # one search for all (a NUL or surrogate is rare)
        for name, longest in _STRING_ITEMS:
            if name in out:
                _text(out[name], name, longest)
    for name in BOOLEANS:
        value = raw.get(name)
        if value is not None and not isinstance(value, bool):
            raise Invalid(f"{name}: must be true or false")
        out[name] = bool(value)
    for name in COUNTS:
        value = raw.get(name)
        if value is not None:
            out[name] = _count(value, name, MAX_COUNT)
    for name in STATUSES:
        status = raw.get(name)
        if status is not None:
            if not _is_int(status) or not 100 <= status <= 599:
                raise Invalid(f"{name}: must be an HTTP status (100-599)")
            out[name] = status
    for name in DURATIONS:
        value = raw.get(name)
        if value is not None:
            out[name] = _number(value, name)
    for name in MONEY:
        value = raw.get(name)
        if value is not None:
            out[name] = money(value, name)
    out["usage"] = _usage(raw.get("usage"))
    out["tags"] = _tags(raw.get("tags"))
    units = raw.get("units")
    if units is not None:
        out["units"] = _units(units)
    return out


def needs_pricing(event: dict[str, Any]) -> bool:
    """Unpriced on arrival: `priced` false or no cost."""
    return not event.get("priced") or event.get("cost_usd") is None


def money(value: Any, name: str) -> Decimal:
    """A decimal string as an exact Decimal (15 decimal places at most)."""
    if not isinstance(value, str) or len(value) > 64:
        raise Invalid(f"{name}: must be a decimal string, like \"0.0123\"")
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:
        raise Invalid(f"{name}: must be a decimal string, like \"0.0123\"") from None
    if not amount.is_finite() or amount < 0 or amount >= MAX_MONEY:
        raise Invalid(f"{name}: must be a finite amount >= 0 and below 10^15")
    if amount.as_tuple().exponent < -15:  # type: ignore[operator]
        amount = amount.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_EVEN)
    return amount if amount else Decimal(0)


#: Keys already seen not to name content (whatever their case): most events have the same
#: few dozen, and a set lookup is cheaper than lowering each. Bounded: never grown by a sender.
_CLEAN_KEYS: set[str] = set()
_CLEAN_KEYS_MAX = 4096


def _refuse_content(value: Any, parts: tuple[Any, ...], depth: int) -> None:
    """Invalid if a key at any depth names content; `parts`: the keys and indexes down to
    `value` (made into a path only for a reason)."""
    if depth > MAX_DEPTH:
        raise Invalid(f"{_path(parts) or 'event'}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        if _CLEAN_KEYS.issuperset(value):
            pass
        elif not CONTENT_FIELDS.isdisjoint([key.lower() for key in value]):
            key = next(k for k in value if k.lower() in CONTENT_FIELDS)
            raise Invalid(f"{_path(parts)}{key}: content fields are not accepted "
                          "(events never carry prompt or completion content)")
        elif len(_CLEAN_KEYS) + len(value) <= _CLEAN_KEYS_MAX:
            _CLEAN_KEYS.update(value)
        for key, item in value.items():
            if item.__class__ is dict or item.__class__ is list:
                _refuse_content(item, (*parts, key), depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if item.__class__ is dict or item.__class__ is list:
                _refuse_content(item, (*parts, i), depth + 1)


def _path(parts: tuple[Any, ...]) -> str:
    return "".join(f"{_shown(part[:64]) if isinstance(part, str) else part}." for part in parts)


def _shown(key: str) -> str:
    """A key of the event as a reason may show it (an answer is UTF-8: no unpaired surrogate)."""
    return BAD_TEXT.sub(lambda m: f"\\u{ord(m.group()):04x}", key) if BAD_TEXT.search(key) else key


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: Any, name: str, longest: int) -> str:
    if not isinstance(value, str):
        raise Invalid(f"{name}: must be a string")
    if len(value) > longest:
        raise Invalid(f"{name}: longer than {longest} characters")
    if BAD_TEXT.search(value):
        raise Invalid(f"{name}: contains a NUL or an unpaired surrogate")
    return value


def _count(value: Any, name: str, most: int) -> int:
    if not _is_int(value) or value < 0:
        raise Invalid(f"{name}: must be a non-negative integer")
    if value > most:
        raise Invalid(f"{name}: at most {_power(most)}, got {value}")
    return value


def _power(most: int) -> str:
    return "10^12" if most == MAX_TOKENS else "2^31 - 1" if most == MAX_COUNT else str(most)


def check_priced(event: dict[str, Any]) -> None:
    """A cost the server computed on arrival (a rate card's price of the usage and units) is
    held to the bounds of a cost the event carried: Invalid otherwise."""
    for name in ("cost_usd", "computed_cost_usd"):
        amount = event.get(name)
        if amount is not None and not (amount.is_finite() and 0 <= amount < MAX_MONEY):
            raise Invalid(f"{name}: its usage is priced at {amount:.6E} USD, not below 10^15")


def _timestamp(value: Any, now: datetime, name: str = "timestamp") -> datetime:
    if not isinstance(value, str) or len(value) > 64:
        raise Invalid(f"{name}: required, an ISO 8601 date and time")
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise Invalid(f"{name}: required, an ISO 8601 date and time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        moment = moment.astimezone(timezone.utc)
    except (ValueError, OverflowError):  # 9999-12-31T23:59:59-01:00 is past the year 9999 in UTC
        raise Invalid(f"{name}: out of range in UTC: {value!r}") from None
    if moment < EARLIEST or moment > now + FUTURE_SKEW:
        raise Invalid(f"{name}: before 2000 or more than a day in the future")
    return moment


def validate_resolution(raw: Any, now: datetime) -> RunResolution:
    """A run resolution of a batch (`RunResolution.to_dict()`'s form), checked; raises Invalid.
    `resolved_at` is now when left out; unknown fields are ignored."""
    if not isinstance(raw, dict):
        raise Invalid("a resolution must be a JSON object")
    for name in ("run_id", "tenant_id", "agent_id", "idempotency_key"):
        value = raw.get(name)
        if value is not None:
            _text(value, name, 255)
    revenue = raw.get("revenue_usd")
    if revenue is not None and (not isinstance(revenue, str) or len(revenue) > 64):
        raise Invalid("revenue_usd: must be a decimal string, like \"2.50\"")
    at = raw.get("resolved_at")
    moment = _timestamp(at, now, "resolved_at") if at is not None else now
    try:
        return RunResolution.checked(raw.get("run_id"), raw.get("outcome"), revenue, raw.get("tenant_id"),
                                     raw.get("agent_id"), raw.get("idempotency_key"), moment)
    except PlanError as exc:
        raise Invalid(str(exc)) from None


def _usage(value: Any) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid("usage: must be an object of token counts")
    if len(value) > MAX_ENTRIES:
        raise Invalid(f"usage: more than {MAX_ENTRIES} counts")
    out = {}
    for key, count in value.items():
        if key not in _USAGE_NAMES:
            if not _NAME.match(key):
                raise Invalid("usage: count names are 1-64 letters, digits, '_', '.', ':' or '-'")
            if len(_USAGE_NAMES) < _CLEAN_KEYS_MAX:
                _USAGE_NAMES.add(key)
        if count is None:
            continue
        if count.__class__ is int and 0 <= count <= MAX_TOKENS:
            out[key] = count
        else:
            out[key] = _count(count, f"usage.{key}", MAX_TOKENS)
    return out


#: Usage count names already checked (bounded, as _CLEAN_KEYS).
_USAGE_NAMES: set[str] = set()


def _tags(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid("tags: must be an object of strings")
    if len(value) > MAX_TAGS:
        raise Invalid(f"tags: more than {MAX_TAGS} tags")
    for key, item in value.items():
        if not key or len(key) > MAX_TAG_KEY or BAD_TEXT.search(key):
            raise Invalid(f"tags: a tag name is 1-{MAX_TAG_KEY} characters")
        if not isinstance(item, str):
            raise Invalid(f"tags.{key}: must be a string")
        _text(item, f"tags.{key}", MAX_TAG_VALUE)
    return dict(value)


def _units(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        raise Invalid("units: must be an object of quantities")
    if len(value) > MAX_ENTRIES:
        raise Invalid(f"units: more than {MAX_ENTRIES} quantities")
    for key, quantity in value.items():
        if not _NAME.match(key):
            raise Invalid("units: names are 1-64 letters, digits, '_', '.', ':' or '-'")
        _number(quantity, f"units.{key}")
    return dict(value)


def _number(value: Any, name: str) -> float:
    """A finite non-negative number, by the shared rule (an int too large for a float is one)."""
    try:
        return rules.check_number(value, name)
    except (TypeError, ValueError):
        raise Invalid(f"{name}: must be a finite non-negative number") from None
