"""The event schema: one `LLMEvent` per provider call, with its normalised `Usage`, and the one
description of their fields (`EVENT_FIELDS`, `USAGE_FIELDS`) that everything else derives from:
`LLMEvent.to_dict()` (the wire form), the stored row and the `events` table (store/rows.py,
store/schema.py), the server's validation and wire model (server/validation.py, models.py).
tests/test_event_schema.py checks that they, the migration and docs/events.md agree.

Usage follows the inclusive convention (the OpenTelemetry GenAI rule): `input_tokens` counts
every input token billed (cache reads and writes, audio, images included) and `output_tokens`
every output token billed (reasoning and audio included); the other counts are subsets of one
of those two. A count the provider did not report is `None`, never 0.

Adding a field: add it to the dataclass and to the description (in wire order); a field with a
column needs a new migration (store/migrations); document it in docs/events.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, Callable, Mapping

SCHEMA_VERSION = 1


class Kind(str, Enum):
    """What a field holds; each view (wire form, row, column, validation, wire model) has one
    rule per kind."""

    #: The wire schema's version, an int: in the wire form only (not an attribute, not stored).
    VERSION = "version"
    #: The event id: required text of at most `max_length` of [A-Za-z0-9._:-].
    ID = "id"
    #: A timezone-aware datetime; ISO 8601 on the wire, UTC in the store.
    TIMESTAMP = "timestamp"
    #: Text of at most `max_length` characters, or None.
    TEXT = "text"
    #: A bool, False by default (null on the wire reads as false).
    FLAG = "flag"
    #: A small non-negative count (an INTEGER column), or None.
    COUNT = "count"
    #: A token count of `Usage`: non-negative, 64-bit (a BIGINT column), or None (unreported).
    TOKENS = "tokens"
    #: An HTTP status code (100-599), or None.
    STATUS = "status"
    #: Milliseconds: a non-negative float, or None.
    DURATION = "duration"
    #: USD, exact: a Decimal, a decimal string on the wire, NUMERIC in a database; or None.
    MONEY = "money"
    #: Tags: a mapping of strings to strings, never None.
    TAGS = "tags"
    #: Non-token quantities: a mapping of names to non-negative numbers, or None (or empty).
    UNITS = "units"
    #: The `Usage`: an object of its reported `TOKENS` counts (`USAGE_FIELDS`).
    USAGE = "usage"


@dataclass(frozen=True, slots=True)
class EventField:
    """One field of an event (or of its usage)."""

    name: str
    kind: Kind
    #: One line for people: docs/events.md says exactly this, and so does the OpenAPI schema.
    doc: str
    #: TEXT and ID: the longest value, in characters (the length of its column).
    max_length: int | None = None
    #: Stored in a column of the events table of the same name. False: in the wire form only
    #: (`schema_version`, `lease_id`), or (usage counts) only inside the `usage` JSON column.
    column: bool = True

    def __post_init__(self) -> None:
        if (self.max_length is not None) != (self.kind in (Kind.TEXT, Kind.ID)):
            raise ValueError(f"{self.name}: max_length is for TEXT and ID fields, and they need one")


_F = EventField

#: The event's fields, in the order of the wire form (`LLMEvent.to_dict()`).
EVENT_FIELDS: tuple[EventField, ...] = (
    _F("schema_version", Kind.VERSION, f"the version of the wire schema, {SCHEMA_VERSION}", column=False),
    _F("event_id", Kind.ID, "random UUID; the idempotency key (retried batches carry the same ids)",
       max_length=64),
    _F("timestamp", Kind.TIMESTAMP, "when the call started (for stream managers: when entered)"),
    _F("tenant_id", Kind.TEXT, "the tenant the call was made for (the scope's)", max_length=255),
    _F("run_id", Kind.TEXT, "the run (one unit of work) the call belongs to (the scope's)", max_length=255),
    _F("agent_id", Kind.TEXT, "the agent that made the call (the scope's)", max_length=255),
    _F("tags", Kind.TAGS, "string tags of the scope"),
    _F("provider", Kind.TEXT, "`openai`, `anthropic`, `azure`, `deepseek`, `openrouter`, `groq`, `together`, "
       "`aws`, `google-vertex`, `self-hosted`, `openai-compatible`, ...", max_length=64),
    _F("model", Kind.TEXT, "the model the response names (falls back to the requested one)", max_length=255),
    _F("request_model", Kind.TEXT, "the model the request named", max_length=255),
    _F("endpoint", Kind.TEXT, "`chat.completions`, `responses`, `completions`, `embeddings`, `messages`, "
       "`generate_content`, `converse`, `manual`, ...", max_length=64),
    _F("stream", Kind.FLAG, "a streamed call"),
    _F("usage", Kind.USAGE, "the token counts that were reported (see Usage)"),
    _F("tool_calls", Kind.COUNT, "tool / function calls the model made"),
    _F("web_search_requests", Kind.COUNT, "billed server-side web searches"),
    _F("service_tier", Kind.TEXT, "as the response reports it (`default`, `flex`, `priority`, `standard`, ...)",
       max_length=32),
    _F("finish_reason", Kind.TEXT, "`stop`, `length`, `tool_calls`, `end_turn`, `max_output_tokens`, ...",
       max_length=64),
    _F("duration_ms", Kind.DURATION, "from the call to the end of the response (or stream)"),
    _F("time_to_first_token_ms", Kind.DURATION, "streams: until the first content chunk"),
    _F("request_id", Kind.TEXT, "the provider's request id", max_length=255),
    _F("error", Kind.TEXT, "exception class name (`RateLimitError`, ...) or a failed-response code; never its "
       "message", max_length=255),
    _F("status_code", Kind.STATUS, "HTTP status of a failed call"),
    _F("partial", Kind.FLAG, "a stream that was not read to its end (closed, left, dropped, or failed)"),
    _F("cost_usd", Kind.MONEY, "what the call cost: the provider-reported cost if any, else tollmeter's price; "
       "null while unpriced"),
    _F("priced", Kind.FLAG, "false for an unknown model: never priced as $0"),
    _F("price_source", Kind.TEXT, "`genai-prices 0.2.3`, `rate card rates.yaml:12`, `provider`, `manual`, "
       "`nothing billed`", max_length=255),
    _F("price_model", Kind.TEXT, "the price entry that matched, e.g. `openai/gpt-4o`", max_length=255),
    _F("provider_cost_usd", Kind.MONEY, "a cost the provider reported itself (OpenRouter `usage.cost`) or "
       "`track_manually(cost_usd=...)` gave; it wins"),
    _F("computed_cost_usd", Kind.MONEY, "tollmeter's own price of the usage, kept beside a reported cost"),
    _F("units", Kind.UNITS, "non-token quantities (for media endpoints and manual tracking)"),
    _F("lease_id", Kind.TEXT, "the budget lease the call was reserved against; a server takes the call's cost "
       "off it", max_length=64, column=False),
)

#: The usage counts, in the order of `Usage` and of its wire form. All are kept in the `usage`
#: JSON column; those with `column` have a column of their own too (for queries).
USAGE_FIELDS: tuple[EventField, ...] = (
    _F("input_tokens", Kind.TOKENS, "every input token billed: uncached, cache reads, cache writes, audio, images"),
    _F("output_tokens", Kind.TOKENS, "every output token billed: text, reasoning/thinking, audio"),
    _F("cache_read_tokens", Kind.TOKENS, "subset of input read from a prompt cache"),
    _F("cache_write_tokens", Kind.TOKENS, "subset of input written to a cache (all TTLs)"),
    _F("cache_write_1h_tokens", Kind.TOKENS, "subset of `cache_write_tokens` written with a 1-hour TTL "
       "(Anthropic)", column=False),
    _F("input_audio_tokens", Kind.TOKENS, "subset of input that is audio", column=False),
    _F("input_image_tokens", Kind.TOKENS, "subset of input that is images", column=False),
    _F("input_video_tokens", Kind.TOKENS, "subset of input that is video", column=False),
    _F("tool_use_prompt_tokens", Kind.TOKENS, "subset of input spent on tool-use prompts (Gemini)", column=False),
    _F("reasoning_tokens", Kind.TOKENS, "subset of output spent on reasoning / thinking"),
    _F("output_audio_tokens", Kind.TOKENS, "subset of output that is audio", column=False),
    _F("output_image_tokens", Kind.TOKENS, "subset of output that is images", column=False),
    _F("accepted_prediction_tokens", Kind.TOKENS, "subset of output: OpenAI predicted-output tokens accepted",
       column=False),
    _F("rejected_prediction_tokens", Kind.TOKENS, "subset of output: OpenAI predicted-output tokens rejected "
       "(billed all the same)", column=False),
)

del _F


def of_kind(kind: Kind, fields: tuple[EventField, ...] = EVENT_FIELDS) -> tuple[EventField, ...]:
    """The fields of one kind, in order."""
    return tuple(f for f in fields if f.kind == kind)


_USAGE_FIELDS = tuple(f.name for f in USAGE_FIELDS)

#: The wire value of each kind, as an expression of `{v}` (the attribute); the rest as they are.
_WIRE_VALUES = {
    Kind.VERSION: repr(SCHEMA_VERSION),
    Kind.TIMESTAMP: "{v}.isoformat()",
    Kind.TAGS: "dict({v})",
    Kind.USAGE: "{v}.to_dict()",
    Kind.MONEY: "None if {v} is None else str({v})",
    Kind.UNITS: "dict({v}) if {v} else None",
}


def compile_function(name: str, source: str, doc: str, *, module: str = __name__,
                     names: Mapping[str, Any] | None = None) -> Callable[..., Any]:
    """A function (or method) of `module` from its source, made once at import from the field
    descriptions (a dict display of attribute reads: as fast as writing it out, which it
    replaces); `names`: the globals its source reads."""
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<{module} {name}>", "exec"), dict(names or {}), namespace)  # noqa: S102 - our own source
    function = namespace[name.rpartition(".")[2]]
    function.__qualname__, function.__doc__, function.__module__ = name, doc, module
    function.__source__ = source
    return function  # type: ignore[no-any-return]


def _event_to_dict_source() -> str:
    items = "".join(
        f"        {f.name!r}: {_WIRE_VALUES.get(f.kind, '{v}').format(v='self.' + f.name)},\n" for f in EVENT_FIELDS)
    return f"def to_dict(self):\n    return {{\n{items}    }}\n"


def _usage_to_dict_source() -> str:
    lines = "".join(f"    if self.{name} is not None:\n        out[{name!r}] = self.{name}\n" for name in _USAGE_FIELDS)
    return f"def to_dict(self):\n    out = {{}}\n{lines}    return out\n"


def _usage_is_empty_source() -> str:
    tests = " and ".join(f"self.{name} is None" for name in _USAGE_FIELDS)
    return f"def is_empty(self):\n    return {tests}\n"


@dataclass(slots=True)
class Usage:
    """Token counts of one call, inclusive totals with subsets as details (`USAGE_FIELDS`)."""

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

    if TYPE_CHECKING:
        def is_empty(self) -> bool:
            """No count reported (every count `None`)."""
    else:
        is_empty = compile_function("Usage.is_empty", _usage_is_empty_source(), "No count reported (every count "
                                    "`None`); for every event priced, written out.")

    if TYPE_CHECKING:
        def to_dict(self) -> dict[str, int]:
            """The reported counts only; a count that is `None` is left out."""
    else:
        to_dict = compile_function("Usage.to_dict", _usage_to_dict_source(),
                                   "The reported counts only; a count that is `None` is left out.")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Usage":
        return cls(**{k: data[k] for k in _USAGE_FIELDS if data.get(k) is not None})


def new_event_id() -> str:
    """A random (version 4) UUID as text; `str(uuid.uuid4())` costs several times more."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(slots=True)
class LLMEvent:
    """One metered call. Never holds prompt or completion content. Its fields are described in
    `EVENT_FIELDS` (docs/events.md)."""

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

    if TYPE_CHECKING:
        def to_dict(self) -> dict[str, Any]:
            """The wire form: JSON-safe, money as decimal strings, timestamps in ISO 8601 UTC."""
    else:
        to_dict = compile_function("LLMEvent.to_dict", _event_to_dict_source(),
                                   "The wire form (`EVENT_FIELDS`, in order): JSON-safe, money as decimal strings, "
                                   "timestamps in ISO 8601.")
