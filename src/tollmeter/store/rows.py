"""An event in its wire form (`LLMEvent.to_dict()`, or a JSON object the server received) as a
row of the events table: one value per column, made from the description of an event's fields
(events.py), as store/schema.py makes the columns. `event_row_of` makes the same row of an
`LLMEvent` itself (the embedded store's, on the background worker)."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Mapping

from ..events import EVENT_FIELDS, USAGE_FIELDS, Kind, Usage, compile_function

if TYPE_CHECKING:
    from ..events import LLMEvent

_STORED = tuple(f for f in EVENT_FIELDS if f.column)
#: Kinds whose wire value is the column's value.
_AS_IS = frozenset({Kind.ID, Kind.TEXT, Kind.COUNT, Kind.STATUS, Kind.DURATION, Kind.UNITS})
_HANDLED = _AS_IS | {Kind.TIMESTAMP, Kind.FLAG, Kind.MONEY, Kind.TAGS, Kind.USAGE}
_UNKNOWN = [f.name for f in _STORED if f.kind not in _HANDLED]
if _UNKNOWN:  # a new kind of field: say so at import, not in a query
    raise RuntimeError(f"store/rows.py does not know how to store {_UNKNOWN}")

_COPIED = tuple(f.name for f in _STORED if f.kind in _AS_IS)
_USAGE_COLUMNS = tuple(f.name for f in USAGE_FIELDS if f.column)
_MONEY = tuple(f.name for f in _STORED if f.kind == Kind.MONEY)
_FLAGS = tuple(f.name for f in _STORED if f.kind == Kind.FLAG)
[_TIMESTAMP] = [f.name for f in _STORED if f.kind == Kind.TIMESTAMP]
_TAGS = tuple(f.name for f in _STORED if f.kind == Kind.TAGS)
[_USAGE] = [f.name for f in _STORED if f.kind == Kind.USAGE]


def event_row(event: Mapping[str, Any]) -> dict[str, Any]:
    usage = event.get(_USAGE) or {}
    row = {name: event.get(name) for name in _COPIED}
    row.update({name: usage.get(name) for name in _USAGE_COLUMNS})
    row.update({name: _decimal(event.get(name)) for name in _MONEY})
    row[_TIMESTAMP] = _timestamp(event[_TIMESTAMP])
    row[_USAGE] = dict(usage)
    for name in _TAGS:
        row[name] = dict(event.get(name) or {})
    for name in _FLAGS:
        row[name] = bool(event.get(name))
    return row


def _event_row_of_source() -> str:
    """The source of `event_row_of`: the checks that the event's values are of the usual
    classes; the tags and units copied as `to_dict` copies them, in its order (an exception
    is the one it would raise); then the row's values in `event_row`'s order."""
    [tags] = _TAGS
    [units] = [f.name for f in _STORED if f.kind == Kind.UNITS]
    unusual = " or ".join([
        "type(timestamp) is not datetime", "timestamp.tzinfo is not utc", "timestamp.fold",
        "type(usage) is not Usage", *(f"({name} is not None and type({name}) is not Decimal)" for name in _MONEY)])
    values = {name: f"event.{name}" for name in _COPIED}
    values.update({name: f"usage.{name}" for name in _USAGE_COLUMNS})
    values.update({name: name for name in [*_MONEY, units]})
    values.update({_TIMESTAMP: "timestamp", _USAGE: "usage.to_dict()", tags: tags})
    values.update({name: f"bool(event.{name})" for name in _FLAGS})
    return "\n".join([
        "def event_row_of(event):",
        f"    timestamp, usage = event.{_TIMESTAMP}, event.{_USAGE}",
        *(f"    {name} = event.{name}" for name in _MONEY),
        f"    if {unusual}:",
        "        return event_row(event.to_dict())",
        f"    {tags} = dict(event.{tags})",
        f"    {units} = dict(event.{units}) if event.{units} else None",
        "    return {",
        *(f"        {name!r}: {value}," for name, value in values.items()),
        "    }",
        "",
    ])


if TYPE_CHECKING:
    def event_row_of(event: LLMEvent) -> dict[str, Any]:
        """`event_row(event.to_dict())`, without the wire form."""
else:
    event_row_of = compile_function(
        "event_row_of", _event_row_of_source(),
        "`event_row(event.to_dict())`, the same values, read from the event itself: without the wire form's "
        "round trips (the timestamp to ISO text and back, money to strings and back) and its dict. An event "
        "of unusual values (another timestamp's zone or class, money not Decimal, ...) goes by the wire form.",
        module=__name__, names={"datetime": datetime, "utc": timezone.utc, "Usage": Usage, "Decimal": Decimal,
                                "event_row": event_row})


#: Every key of a row, None: what a validated event leaves out.
_BLANK = dict.fromkeys([*_COPIED, *_USAGE_COLUMNS, *_MONEY, _TIMESTAMP, _USAGE, *_TAGS, *_FLAGS])


def valid_event_row(event: Mapping[str, Any]) -> dict[str, Any]:
    """`event_row` of an event that server/validation.py made (timestamp a UTC datetime,
    money Decimal, flags bool, fresh usage, tags and units dicts), without converting again
    what is converted already: the same values (and the event's other fields, which no column
    reads)."""
    row = {**_BLANK, **event}
    usage = event[_USAGE]
    for name in _USAGE_COLUMNS:
        row[name] = usage.get(name)
    return row


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)
