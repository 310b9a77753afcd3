"""An ingest batch decoded straight into typed events (msgspec Structs) and made into rows,
with the checks of validation.py done by the decoder where it can do them (types, lengths,
ranges) and the rest here: the same rows, for a fraction of the CPU.

`WireEvent` is made from events.EVENT_FIELDS with the bounds validation.py holds events to;
its unknown fields are refused (`forbid_unknown_fields`), so the content-key scan is left with
the keys of `usage`, `tags` and `units` (no field of an event names content, checked at
import). Only what is certainly valid comes out of this path: an event the decoder refuses, or
whose id, timestamp, money, keys or numbers fail a check here, goes to `validate_event` (its own
raw JSON, decoded as ever), which refuses it with its reason or takes it; a batch whose JSON
the decoder refuses goes the whole old way (`parse_json`). So every event gets the answer
`validate_event` gives it, and a good one the row `valid_event_row` makes of it
(tests/test_typed_events.py compares both on generated events, valid or not).

Three tiers, cheapest first:
1. the whole batch as `{"events": [WireEvent, ...]}` (one decoder call for every event);
2. if an event fails there: `{"events": [Raw, ...]}`, each event decoded and checked alone, a
   failing one by `validate_event`;
3. if the batch's JSON fails both: None (the caller parses it with `parse_json`).

A NUL in a string (`\\u0000`, the only way JSON carries one) is left to `validate_event`: the
decoder takes it, a column does not. An unpaired surrogate escape the decoder refuses itself."""

from __future__ import annotations

import string
from datetime import datetime
from typing import Annotated, Any, Optional, Union

import msgspec
from msgspec import Meta, Raw, Struct

from ..events import EVENT_FIELDS, SCHEMA_VERSION, USAGE_FIELDS, Kind
from ..rules import CONTENT_FIELDS, MAX_COUNT, MAX_ENTRIES, MAX_TAG_KEY, MAX_TAG_VALUE, MAX_TAGS, MAX_TOKENS, NAME
from ..store.rows import valid_event_row
from .body import parse_json
from .validation import Invalid, _timestamp, money, validate_event

_QUANTITY = Union[Annotated[int, Meta(ge=0)], Annotated[float, Meta(ge=0)]]
#: The decoder's type of each kind of field (None allowed wherever validation.py allows it).
_TYPES: dict[Kind, Any] = {
    Kind.VERSION: Optional[Annotated[int, Meta(ge=1, le=SCHEMA_VERSION)]],
    Kind.ID: Annotated[str, Meta(min_length=1, max_length=64)],  # its characters checked in _row
    Kind.TIMESTAMP: Annotated[str, Meta(max_length=64)],
    Kind.FLAG: Optional[bool],
    Kind.COUNT: Optional[Annotated[int, Meta(ge=0, le=MAX_COUNT)]],
    Kind.STATUS: Optional[Annotated[int, Meta(ge=100, le=599)]],
    Kind.DURATION: Optional[_QUANTITY],
    Kind.MONEY: Optional[Annotated[str, Meta(max_length=64)]],
    Kind.USAGE: Optional[Annotated[dict[str, Optional[Annotated[int, Meta(ge=0, le=MAX_TOKENS)]]],
                                   Meta(max_length=MAX_ENTRIES)]],
    Kind.TAGS: Optional[Annotated[dict[Annotated[str, Meta(min_length=1, max_length=MAX_TAG_KEY)],
                                       Annotated[str, Meta(max_length=MAX_TAG_VALUE)]], Meta(max_length=MAX_TAGS)]],
    Kind.UNITS: Optional[Annotated[dict[str, _QUANTITY], Meta(max_length=MAX_ENTRIES)]],
}


def _field(f: Any) -> tuple[Any, ...]:
    if f.kind is Kind.TEXT:
        return (f.name, Optional[Annotated[str, Meta(max_length=f.max_length)]], None)
    if f.kind in (Kind.ID, Kind.TIMESTAMP):
        return (f.name, _TYPES[f.kind])  # required
    return (f.name, _TYPES[f.kind], None)


_FIELDS = [_field(f) for f in EVENT_FIELDS]
if CONTENT_FIELDS.intersection(f.name.lower() for f in EVENT_FIELDS):
    raise RuntimeError("an event field names content: the typed path would take it unscanned")
# Required fields first, as a Struct wants them; the order of the others is the wire form's.
WireEvent = msgspec.defstruct("WireEvent", [f for f in _FIELDS if len(f) == 2] + [f for f in _FIELDS if len(f) == 3],
                              forbid_unknown_fields=True, gc=False)  # no cycle: JSON values


class _Batch(Struct):
    events: list[WireEvent]  # type: ignore[valid-type]
    resolutions: Any = None


class _RawBatch(Struct):
    events: list[Raw]
    resolutions: Any = None


_BATCH = msgspec.json.Decoder(_Batch)
_RAW_BATCH = msgspec.json.Decoder(_RawBatch)
_EVENT = msgspec.json.Decoder(WireEvent)
_asdict = msgspec.structs.asdict
_FLAGS = tuple(f.name for f in EVENT_FIELDS if f.kind is Kind.FLAG)
_DURATIONS = tuple(f.name for f in EVENT_FIELDS if f.kind is Kind.DURATION)
_MONEY = tuple(f.name for f in EVENT_FIELDS if f.kind is Kind.MONEY)
_USAGE_COLUMNS = tuple(f.name for f in USAGE_FIELDS if f.column)
_NUL = b"\\u0000"
#: The characters of an event id (validation.py's pattern, but for the newline its `$` lets
#: end one: such an id goes to validate_event).
_ID_CHARACTERS = string.ascii_letters + string.digits + "._:-"
#: Keys of usage, tags and units seen not to name content, and names of usage counts and units
#: seen to be NAMEs (bounded, as validation.py's; a regular expression per key cost more than
#: the rest of the decoding of an event).
_CLEAN: set[str] = set()
_NAMES: set[str] = set()
_KEYS_MAX = 4096


class _Unsure(Exception):
    """This path cannot vouch for the event: validate_event decides."""


class Batch:
    """A decoded batch: `events` (their count), `resolutions` (the raw list or None), and
    `rows(now)`: ([(index, row) of the valid events], [{"index", "reason"} of the others])."""

    def __init__(self, data: bytes, typed: list[Any] | None, raws: list[Raw] | None, resolutions: Any) -> None:
        self._data, self._typed, self._raws, self.resolutions = data, typed, raws, resolutions
        self.events = len(typed if typed is not None else raws or ())

    def rows(self, now: datetime) -> tuple[list[tuple[int, dict[str, Any]]], list[dict[str, Any]]]:
        if self._typed is not None:
            try:
                return [(index, _row(event, now)) for index, event in enumerate(self._typed)], []
            except _Unsure:
                self._typed = None
                if self._raws is None:
                    self._raws = _RAW_BATCH.decode(self._data).events
        return _raw_rows(self._raws or [], now)


def decode_batch(data: bytes) -> Batch | None:
    """The batch decoded by types; None when its JSON is for `parse_json` to read (not an object
    with a list of events, NaN, an unpaired surrogate, invalid JSON, a number past a float
    outside the events)."""
    if _NUL not in data:
        try:
            batch = _BATCH.decode(data)
        except msgspec.DecodeError:  # ValidationError too: an event, or the batch's shape
            pass
        else:
            return Batch(data, batch.events, None, batch.resolutions)
    try:
        raw = _RAW_BATCH.decode(data)
    except msgspec.DecodeError:
        return None
    return Batch(data, None, raw.events, raw.resolutions)


def _raw_rows(raws: list[Raw], now: datetime) -> tuple[list[tuple[int, dict[str, Any]]], list[dict[str, Any]]]:
    checked: list[tuple[int, dict[str, Any]]] = []
    rejected: list[dict[str, Any]] = []
    for index, raw in enumerate(raws):
        data = bytes(raw)
        row = None
        if _NUL not in data:
            try:
                row = _row(_EVENT.decode(data), now)
            except (msgspec.DecodeError, _Unsure):
                pass
        if row is None:
            try:
                row = valid_event_row(validate_event(parse_json(data), now))
            except Invalid as exc:
                rejected.append({"index": index, "reason": str(exc)})
                continue
        checked.append((index, row))
    return checked, rejected


def _clean_keys(value: dict[str, Any]) -> None:
    if not _CLEAN.issuperset(value):
        if not CONTENT_FIELDS.isdisjoint([key.lower() for key in value]):
            raise _Unsure
        if len(_CLEAN) + len(value) <= _KEYS_MAX:
            _CLEAN.update(value)


def _named_keys(value: dict[str, Any]) -> None:
    if not _NAMES.issuperset(value):
        if not all(NAME.match(key) for key in value):
            raise _Unsure
        if len(_NAMES) + len(value) <= _KEYS_MAX:
            _NAMES.update(value)


def _row(event: Any, now: datetime) -> dict[str, Any]:
    """The row `valid_event_row(validate_event(...))` makes of a decoded event; _Unsure when
    a check fails (validate_event then gives the reason)."""
    if event.event_id.strip(_ID_CHARACTERS):
        raise _Unsure
    row = _asdict(event)
    del row["schema_version"]
    try:
        row["timestamp"] = _timestamp(event.timestamp, now)
        for name in _MONEY:
            value = row[name]
            if value is not None:
                row[name] = money(value, name)
    except Invalid:
        raise _Unsure from None
    for name in _FLAGS:
        if row[name] is None:
            row[name] = False
    for name in _DURATIONS:
        value = row[name]
        if value.__class__ is int:
            row[name] = _finite(value)
    usage = event.usage
    if usage is None:
        usage = row["usage"] = {}
    elif usage:
        _clean_keys(usage)
        _named_keys(usage)
        if None in usage.values():
            usage = row["usage"] = {key: count for key, count in usage.items() if count is not None}
    for name in _USAGE_COLUMNS:
        row[name] = usage.get(name)
    tags = event.tags
    if tags is None:
        row["tags"] = {}
    elif tags:
        _clean_keys(tags)
    units = event.units
    if units:
        _clean_keys(units)
        _named_keys(units)
        for value in units.values():
            if value.__class__ is int:
                _finite(value)
    return row


def _finite(value: int) -> float:
    """An int as validation.py takes a number: as a float, which it must fit."""
    try:
        return float(value)
    except OverflowError:
        raise _Unsure from None
