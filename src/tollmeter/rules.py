"""The rules every value of an event obeys: one set, shared by the agent and the ingest server.

What the server refuses, the agent must refuse first, where the value enters and with a clear
error, rather than let it cost a batch later. So both sides read their limits and checks here:

- the agent checks what the application gives it at the API boundary (`for_tenant`,
  `set_tenant`, `track_manually`, `set_limit`, ...): a `TypeError` for a value of the wrong
  type, a `ValueError` for one out of bounds, the message naming the argument;
- the agent bounds what providers report as it becomes an event (`repair_event`): a value out
  of bounds is dropped (a count becomes unreported, a text is clipped) and reported, never
  stored as it came;
- the server validates every event that arrives (server/validation.py) by the same checks,
  turning their `TypeError` / `ValueError` into its per-event rejection.

The bounds: ids and other text fields as long as their columns (events.py) and free of NUL and
unpaired surrogates (no database stores them); at most 64 tags, named 1-128 characters, never
like prompt or completion content (`CONTENT_FIELDS`), valued at most 1,024 characters; token
counts whole numbers from 0 to 10^12 (`MAX_TOKENS`: a sum of 9 million of them still fits a
64-bit column); other counts up to 2^31 - 1 (INTEGER columns); money finite, from 0 to below
10^15 USD; timestamps from 2000 to a day ahead.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Mapping

from .events import EVENT_FIELDS, USAGE_FIELDS, Kind

if TYPE_CHECKING:
    from .events import LLMEvent

#: The longest tenant, run and agent id (their columns' length).
MAX_ID = next(f.max_length for f in EVENT_FIELDS if f.name == "tenant_id") or 255
#: The longest value of each text field of an event.
TEXT_LIMITS: Mapping[str, int] = {f.name: f.max_length or 0 for f in EVENT_FIELDS if f.kind is Kind.TEXT}
MAX_TAGS = 64
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 1024
#: Most usage counts or units one event carries.
MAX_ENTRIES = 32
#: The largest token count taken (of one call); beyond it a count is not believed.
MAX_TOKENS = 10**12
#: The largest other count (tool calls, web searches, requests per minute): INTEGER columns.
MAX_COUNT = 2**31 - 1
#: Amounts of money are below this (USD), with at most `MONEY_PLACES` decimals.
MAX_MONEY = Decimal(10) ** 15
MONEY_PLACES = 15
#: Timestamps are taken from EARLIEST to FUTURE_SKEW ahead of now.
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
FUTURE_SKEW = timedelta(days=1)

#: Keys that name prompt or completion content: never a tag name, refused anywhere in an event
#: by the server (case-insensitive).
CONTENT_FIELDS = frozenset({
    "prompt", "prompts", "messages", "message", "content", "contents", "input", "inputs", "output",
    "outputs", "completion", "completions", "instructions", "system_prompt", "choices",
})

#: Names of usage counts and units.
NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
#: What no database stores in text: NUL and unpaired surrogates.
BAD_TEXT = re.compile("[\x00\ud800-\udfff]")

_TOKENS = tuple(f.name for f in USAGE_FIELDS)


# -- checks at the API boundary (and in the server's validation) ----------------------------


def check_text(value: Any, name: str, longest: int, *, empty: bool = True) -> str:
    """A string of at most `longest` characters without NUL or unpaired surrogates (non-empty
    unless `empty`); TypeError / ValueError otherwise."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, not {type(value).__name__}")
    if len(value) > longest:
        raise ValueError(f"{name} must be at most {longest} characters, got {len(value)}")
    if not value and not empty:
        raise ValueError(f"{name} must not be empty")
    if BAD_TEXT.search(value):
        raise ValueError(f"{name} must not contain NUL or unpaired surrogate characters")
    return value


def check_id(value: Any, name: str) -> str:
    """A tenant, run or agent id: a non-empty string of at most 255 characters, without NUL or
    unpaired surrogates."""
    if type(value) is str:
        if value in _GOOD_IDS:  # the common case: an id seen before, at a set look-up
            return value
        if 0 < len(value) <= MAX_ID and not BAD_TEXT.search(value):
            if len(_GOOD_IDS) >= 4096:
                _GOOD_IDS.clear()
            _GOOD_IDS.add(value)
            return value
    return check_text(value, name, MAX_ID, empty=False)


#: Ids that passed `check_id` (bounded): a scope entered per request checks its ids once.
_GOOD_IDS: set[str] = set()


def check_optional_id(value: Any, name: str) -> str | None:
    return None if value is None else check_id(value, name)


def check_tags(tags: Any, name: str = "tags") -> dict[str, str]:
    """Tags: a mapping of at most 64 names (1-128 characters, not named like content) to
    strings of at most 1,024 characters. Numbers and booleans are taken as their text."""
    if tags is None:
        return {}
    if type(tags) is not dict and not isinstance(tags, Mapping):
        raise TypeError(f"{name} must be a mapping, not {type(tags).__name__}")
    if len(tags) > MAX_TAGS:
        raise ValueError(f"{name}: at most {MAX_TAGS} tags, got {len(tags)}")
    out: dict[str, str] = {}
    for key, value in tags.items():
        if (type(key) is str and type(value) is str and 0 < len(key) <= MAX_TAG_KEY and len(value) <= MAX_TAG_VALUE
                and key.lower() not in CONTENT_FIELDS and not BAD_TEXT.search(key) and not BAD_TEXT.search(value)):
            out[key] = value  # the common case
            continue
        check_text(key, f"{name} name", MAX_TAG_KEY, empty=False)
        if key.lower() in CONTENT_FIELDS:
            raise ValueError(f"{name}: {key!r} is a reserved name (it names prompt or completion content)")
        if not isinstance(value, str):
            if isinstance(value, (int, float, Decimal)) or value is True or value is False:
                value = str(value)
            else:
                raise TypeError(f"{name}[{key!r}] must be a string, not {type(value).__name__}")
        out[key] = check_text(value, f"{name}[{key!r}]", MAX_TAG_VALUE)
    return out


def check_tokens(value: Any, name: str) -> int:
    """A token count: a whole number from 0 to 10^12 (an int, not a bool, float or string)."""
    if type(value) is not int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be a whole number of tokens, not {type(value).__name__}")
        value = int(value)
    if not 0 <= value <= MAX_TOKENS:
        raise ValueError(f"{name} must be from 0 to 10^12 tokens, got {value}")
    return value


def check_count(value: Any, name: str, *, least: int = 0, most: int = MAX_COUNT) -> int:
    """A whole number from `least` to `most` (an int, not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a whole number, not {type(value).__name__}")
    if not least <= value <= most:
        raise ValueError(f"{name} must be from {least} to {most}, got {value}")
    return int(value)


def check_number(value: Any, name: str) -> float:
    """A finite, non-negative number (a duration, a quantity)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


def check_money(value: Any, name: str) -> Decimal:
    """An amount of USD: a Decimal, int, float or decimal string; finite, from 0 to below 10^15.
    More than 15 decimal places are rounded to 15 (the columns' precision)."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, float, str)):
        raise TypeError(f"{name} must be an amount of USD (a Decimal, number or string), not {type(value).__name__}")
    if isinstance(value, str) and len(value) > 64:
        raise ValueError(f"{name} must be an amount of USD like \"0.0123\", got a string of {len(value)} characters")
    try:
        if isinstance(value, Decimal):
            amount = value
        else:
            amount = Decimal(value.strip() if isinstance(value, str) else str(value))
    except (InvalidOperation, ValueError):
        raise ValueError(f"{name} must be an amount of USD like \"0.0123\", got {value!r}") from None
    if not amount.is_finite() or amount < 0 or (amount and amount.adjusted() >= 15):
        raise ValueError(f"{name} must be a finite amount >= 0 and below 10^15, got {value!r}")
    if amount.as_tuple().exponent < -MONEY_PLACES:  # type: ignore[operator]
        amount = amount.quantize(Decimal(1).scaleb(-MONEY_PLACES))
    return amount


def check_units(units: Any, name: str = "units") -> dict[str, float]:
    """Non-token quantities: at most 32 names (1-64 of [A-Za-z0-9_.:-]) to finite numbers >= 0."""
    if not isinstance(units, Mapping):
        raise TypeError(f"{name} must be a mapping of names to quantities, not {type(units).__name__}")
    if len(units) > MAX_ENTRIES:
        raise ValueError(f"{name}: at most {MAX_ENTRIES} quantities, got {len(units)}")
    out = {}
    for key, quantity in units.items():
        if not isinstance(key, str) or not NAME.match(key):
            raise ValueError(f"{name}: a name is 1-64 letters, digits, '_', '.', ':' or '-', got {key!r}")
        out[key] = check_number(quantity, f"{name}[{key!r}]")
    return out


def check_timestamp(value: Any, name: str, now: datetime | None = None) -> datetime:
    """A timezone-aware datetime from 2000 to a day ahead of now, in UTC."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")
    try:
        moment = value.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        raise ValueError(f"{name} is out of range: {value!r}") from None
    if moment < EARLIEST or moment > (now or datetime.now(timezone.utc)) + FUTURE_SKEW:
        raise ValueError(f"{name} must be from 2000 to a day from now, got {value.isoformat()}")
    return moment


# -- what providers report, bounded as it becomes an event -----------------------------------


def repair_event(event: LLMEvent) -> list[str]:
    """Bring what a provider (or an `extract_usage`) reported within the rules, in place: a token
    count that is not a whole number from 0 to 10^12 becomes unreported (None), a text field is
    clipped to its length with NUL and unpaired surrogates replaced, a unit or a provider cost
    out of bounds is dropped. Returns what was changed (empty: nothing), for the fault report.
    Runs on the background worker for every event: the common case is a few type checks (an
    ASCII text, no surrogate in it, searched for NUL alone: `isascii` reads a flag)."""
    problems: list[str] = []
    usage = event.usage
    for name in _TOKENS:
        value = getattr(usage, name)
        if value is not None and (type(value) is not int or not 0 <= value <= MAX_TOKENS):
            problems.append(f"{name}={_short(value)} is not a token count from 0 to 10^12: recorded as unreported")
            if usage is event.usage:  # a copy: the Usage may be the application's (`extract_usage`)
                usage = event.usage = replace(usage)
            setattr(usage, name, None)
    for name, longest in _CHECKED_TEXT:
        value = getattr(event, name)
        if value is not None and (type(value) is not str or len(value) > longest
                                  or ("\x00" in value if value.isascii() else BAD_TEXT.search(value))):
            problems.append(f"{name}={_short(value)} is not a text of at most {longest} characters: clipped")
            setattr(event, name, clip_text(value, longest))
    for name in ("tool_calls", "web_search_requests"):
        value = getattr(event, name)
        if value is not None and (type(value) is not int or not 0 <= value <= MAX_COUNT):
            problems.append(f"{name}={_short(value)} is out of range: recorded as unreported")
            setattr(event, name, None)
    status = event.status_code
    if status is not None and (type(status) is not int or not 100 <= status <= 599):
        problems.append(f"status_code={_short(status)} is not an HTTP status: recorded as unreported")
        event.status_code = None
    cost = event.provider_cost_usd
    if cost is not None and (not isinstance(cost, Decimal) or not cost.is_finite() or cost < 0
                             or (cost and cost.adjusted() >= 15)):
        problems.append(f"provider_cost_usd={_short(cost)} is not an amount from 0 to below 10^15: dropped")
        event.provider_cost_usd = None
    units = event.units
    if units:
        kept = {k: v for k, v in units.items() if _good_unit(k, v)}
        if len(kept) != len(units) or len(kept) > MAX_ENTRIES:
            problems.append(f"units {sorted(set(map(str, units)) - set(kept))[:5]} out of bounds: dropped")
            event.units = dict(list(kept.items())[:MAX_ENTRIES]) or None
    return problems


#: The text fields a provider or a request fills (ids and tags are checked where they enter).
_CHECKED_TEXT = tuple((name, TEXT_LIMITS[name]) for name in (
    "provider", "model", "request_model", "endpoint", "service_tier", "finish_reason", "request_id", "error"))


def clip_text(value: Any, longest: int) -> str:
    """`value` as text of at most `longest` characters, NUL and unpaired surrogates replaced."""
    text = value if isinstance(value, str) else str(value)
    return BAD_TEXT.sub("\ufffd", text[:longest])


def _good_unit(key: Any, value: Any) -> bool:
    if not isinstance(key, str) or NAME.match(key) is None or isinstance(value, bool):
        return False
    try:
        return isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
    except OverflowError:  # an int too large for a float
        return False


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
