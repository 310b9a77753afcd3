"""One description of an event's fields (`tollmeter.events.EVENT_FIELDS`, `USAGE_FIELDS`), and
every place that must agree with it: the dataclasses, the wire form, the events table and its
migration, the server's wire model and validation, docs/events.md; and a round trip through all
of them (LLMEvent -> to_dict -> JSON -> validate_event -> event_row -> a stored row)."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import fields
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, Integer, String, create_engine, select

from tollmeter.events import EVENT_FIELDS, SCHEMA_VERSION, USAGE_FIELDS, EventField, Kind, LLMEvent, Usage
from tollmeter.server import validation
from tollmeter.server.models import WireEvent, WireUsage
from tollmeter.server.validation import CONTENT_FIELDS, Invalid, validate_event
from tollmeter.store import migrations, schema
from tollmeter.store.rows import event_row
from tollmeter.store.schema import Money
from tollmeter.store.store import Store

DOCS = Path(__file__).resolve().parent.parent / "docs" / "events.md"
NAMES = [f.name for f in EVENT_FIELDS]
USAGE_NAMES = [f.name for f in USAGE_FIELDS]
#: Fields that are attributes of LLMEvent (schema_version is a constant of the wire form).
ATTRIBUTES = [f for f in EVENT_FIELDS if f.kind != Kind.VERSION]
#: Columns of the events table that are not fields of an event.
STORE_ONLY = {"project_id", "received_at"}

# The rules per kind that each place follows (the fields themselves come from the description).
ANNOTATION = {
    Kind.ID: "str", Kind.TIMESTAMP: "datetime", Kind.TEXT: "str | None", Kind.FLAG: "bool",
    Kind.COUNT: "int | None", Kind.TOKENS: "int | None", Kind.STATUS: "int | None",
    Kind.DURATION: "float | None", Kind.MONEY: "Decimal | None", Kind.TAGS: "Mapping[str, str]",
    Kind.UNITS: "Mapping[str, float] | None", Kind.USAGE: "Usage",
}
#: (SQLAlchemy type, nullable) of each kind's column; TEXT and ID are String(max_length).
COLUMN = {
    Kind.ID: (String, False), Kind.TIMESTAMP: (DateTime, False), Kind.TEXT: (String, True),
    Kind.FLAG: (Boolean, False), Kind.COUNT: (Integer, True), Kind.TOKENS: (BigInteger, True),
    Kind.STATUS: (Integer, True), Kind.DURATION: (Float, True), Kind.MONEY: (Money, True),
    Kind.TAGS: (JSON, True), Kind.UNITS: (JSON, True), Kind.USAGE: (JSON, True),
}
DOC_TYPE = {
    Kind.VERSION: "int", Kind.ID: "str", Kind.TIMESTAMP: "ISO 8601 UTC", Kind.TEXT: "str or null",
    Kind.FLAG: "bool", Kind.COUNT: "int or null", Kind.STATUS: "int or null", Kind.DURATION: "float or null",
    Kind.MONEY: "decimal string or null", Kind.TAGS: "object", Kind.UNITS: "object or null", Kind.USAGE: "object",
}
NOW = datetime.now(timezone.utc)


def full_event() -> LLMEvent:
    """Every field set (none left at None or its default)."""
    return LLMEvent(
        provider="openrouter", model="anthropic/claude-sonnet-4", request_model="claude-sonnet-4",
        endpoint="chat.completions", stream=True,
        usage=Usage(**{name: 1000 + i for i, name in enumerate(USAGE_NAMES)}),
        tenant_id="acme", run_id="ticket-42", agent_id="triage", tags={"plan": "pro", "region": "eu"},
        event_id="0b7c3a56-5f55-4c1a-9d2b-7a3b1f2c4d5e",
        timestamp=datetime(2026, 11, 26, 12, 0, 1, 250000, tzinfo=timezone.utc),
        duration_ms=812.5, time_to_first_token_ms=95.25, request_id="req_123", tool_calls=2,
        web_search_requests=1, service_tier="default", finish_reason="tool_calls", error="RateLimitError",
        status_code=429, partial=True, cost_usd=Decimal("0.00612"), priced=True, price_source="provider",
        price_model="anthropic/claude-sonnet-4", provider_cost_usd=Decimal("0.006120"),
        computed_cost_usd=Decimal("0.0059800"), units={"searches": 1, "seconds": 2.5}, lease_id="lease-7",
    )


# -- the description ---------------------------------------------------------------------------


def test_the_description_is_well_formed():
    assert len(set(NAMES)) == len(NAMES) and len(set(USAGE_NAMES)) == len(USAGE_NAMES)
    assert all(isinstance(f, EventField) and f.doc and "|" not in f.doc for f in (*EVENT_FIELDS, *USAGE_FIELDS))
    assert {f.kind for f in USAGE_FIELDS} == {Kind.TOKENS}
    assert Kind.TOKENS not in {f.kind for f in EVENT_FIELDS}
    with pytest.raises(ValueError):
        EventField("x", Kind.TEXT, "no length")
    with pytest.raises(ValueError):
        EventField("x", Kind.COUNT, "a length", max_length=3)


def test_the_dataclasses_have_the_described_fields():
    declared = {f.name: f.type for f in fields(LLMEvent)}
    assert sorted(declared) == sorted(f.name for f in ATTRIBUTES)
    for f in ATTRIBUTES:
        assert declared[f.name] == ANNOTATION[f.kind], f.name
    assert [(f.name, f.type) for f in fields(Usage)] == [(u.name, ANNOTATION[u.kind]) for u in USAGE_FIELDS]
    empty = LLMEvent()
    for f in ATTRIBUTES:  # what an unset field is: None, False, {} or an empty Usage
        value = getattr(empty, f.name)
        if f.kind == Kind.FLAG:
            assert value is False, f.name
        elif f.kind == Kind.TAGS:
            assert value == {}, f.name
        elif f.kind == Kind.USAGE:
            assert value == Usage() and value.is_empty()
        elif f.kind not in (Kind.ID, Kind.TIMESTAMP):
            assert value is None, f.name


def test_the_wire_form_has_the_described_fields_in_order():
    event = full_event()
    assert all(getattr(event, f.name) not in (None, False, {}) for f in ATTRIBUTES)
    wire = event.to_dict()
    assert list(wire) == NAMES
    assert list(wire["usage"]) == USAGE_NAMES
    assert json.loads(json.dumps(wire)) == wire
    assert list(LLMEvent().to_dict()) == NAMES


def test_the_wire_form_of_a_full_event():
    """The exact output (key order and value formats), as the agents in the field send it."""
    wire = full_event().to_dict()
    assert list(wire.items()) == [
        ("schema_version", 1), ("event_id", "0b7c3a56-5f55-4c1a-9d2b-7a3b1f2c4d5e"),
        ("timestamp", "2026-11-26T12:00:01.250000+00:00"), ("tenant_id", "acme"), ("run_id", "ticket-42"),
        ("agent_id", "triage"), ("tags", {"plan": "pro", "region": "eu"}), ("provider", "openrouter"),
        ("model", "anthropic/claude-sonnet-4"), ("request_model", "claude-sonnet-4"),
        ("endpoint", "chat.completions"), ("stream", True),
        ("usage", {name: 1000 + i for i, name in enumerate(USAGE_NAMES)}), ("tool_calls", 2),
        ("web_search_requests", 1), ("service_tier", "default"), ("finish_reason", "tool_calls"),
        ("duration_ms", 812.5), ("time_to_first_token_ms", 95.25), ("request_id", "req_123"),
        ("error", "RateLimitError"), ("status_code", 429), ("partial", True), ("cost_usd", "0.00612"),
        ("priced", True), ("price_source", "provider"), ("price_model", "anthropic/claude-sonnet-4"),
        ("provider_cost_usd", "0.006120"), ("computed_cost_usd", "0.0059800"),
        ("units", {"searches": 1, "seconds": 2.5}), ("lease_id", "lease-7"),
    ]
    empty = LLMEvent(event_id="e", timestamp=datetime(2026, 1, 1, tzinfo=timezone.utc), units={}).to_dict()
    assert empty["usage"] == {} and empty["tags"] == {} and empty["units"] is None
    assert empty["cost_usd"] is None and empty["stream"] is False and empty["schema_version"] == SCHEMA_VERSION
    assert Usage(input_tokens=0, reasoning_tokens=5).to_dict() == {"input_tokens": 0, "reasoning_tokens": 5}


# -- the store ---------------------------------------------------------------------------------


def expected_columns() -> list[tuple[str, type, int | None, bool]]:
    """(name, type, length, nullable) of each column the description calls for, in table order."""
    out = [("project_id", String, 64, False)]
    for f in EVENT_FIELDS:
        if not f.column:
            continue
        if f.kind == Kind.USAGE:
            out += [(u.name, *column_of(u)) for u in USAGE_FIELDS if u.column]
        out.append((f.name, *column_of(f)))
        if f.kind == Kind.TIMESTAMP:
            out.append(("received_at", DateTime, None, False))
    return out


def column_of(f: EventField) -> tuple[type, int | None, bool]:
    type_, nullable = COLUMN[f.kind]
    return type_, f.max_length, nullable


def test_the_events_table_has_the_described_columns():
    actual = [(c.name, type(c.type), getattr(c.type, "length", None), c.nullable) for c in schema.events.columns]
    assert actual == expected_columns()
    assert [c.name for c in schema.events.primary_key] == ["project_id", "event_id"]
    assert {c.name for c in schema.events.columns if c.default is not None} == {
        f.name for f in EVENT_FIELDS if f.kind == Kind.FLAG}
    stored = {f.name for f in EVENT_FIELDS if f.column} | {u.name for u in USAGE_FIELDS if u.column}
    assert {c.name for c in schema.events.columns} == stored | STORE_ONLY
    assert not {f.name for f in EVENT_FIELDS if not f.column} & {c.name for c in schema.events.columns}


def test_the_migration_makes_exactly_the_described_table(tmp_path):
    migrated = create_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    assert migrations.upgrade(migrated) == (None, migrations.HEAD)
    with migrated.connect() as conn:
        assert migrations.differences(conn) == []
    migrated.dispose()
    created = create_engine(f"sqlite:///{tmp_path / 'created.db'}")
    schema.metadata.create_all(created)
    created.dispose()

    def ddl(name: str) -> list[str]:  # the CREATE statements of the events table and its indexes
        with sqlite3.connect(tmp_path / name) as db:
            return db.execute("SELECT sql FROM sqlite_master WHERE tbl_name = 'events' ORDER BY name").fetchall()

    assert ddl("migrated.db") == ddl("created.db")  # the same column order too


def test_a_row_has_a_value_for_every_column():
    row = event_row(full_event().to_dict())
    assert set(row) == {c.name for c in schema.events.columns} - STORE_ONLY


# -- the server --------------------------------------------------------------------------------


def test_the_wire_models_have_the_described_fields():
    assert list(WireEvent.model_fields) == NAMES
    assert list(WireUsage.model_fields) == USAGE_NAMES
    assert WireEvent.model_config["extra"] == WireUsage.model_config["extra"] == "allow"
    required = {name for name, info in WireEvent.model_fields.items() if info.is_required()}
    assert required == {f.name for f in EVENT_FIELDS if f.kind in (Kind.ID, Kind.TIMESTAMP)}
    assert not any(info.is_required() for info in WireUsage.model_fields.values())
    properties = WireEvent.model_json_schema()["properties"]
    for f in EVENT_FIELDS:
        assert f.doc in properties[f.name]["description"], f.name
        if f.max_length is not None:
            text = [properties[f.name], *properties[f.name].get("anyOf", [])]
            assert [t["maxLength"] for t in text if t.get("type") == "string"] == [f.max_length], f.name
    usage = WireUsage.model_json_schema()["properties"]
    assert [usage[u.name]["description"] for u in USAGE_FIELDS] == [u.doc for u in USAGE_FIELDS]
    # The model describes what the agent sends: a full event is valid as it is.
    assert WireEvent.model_validate(full_event().to_dict()).model_dump(mode="json") == full_event().to_dict()


def test_validation_checks_every_described_field():
    def names(kind: Kind) -> list[str]:
        return [f.name for f in EVENT_FIELDS if f.kind == kind]

    assert validation.STRINGS == {f.name: f.max_length for f in EVENT_FIELDS if f.kind == Kind.TEXT}
    assert list(validation.STRINGS) == names(Kind.TEXT)
    for name, longest in validation.STRINGS.items():  # as long as its column, where it has one
        if name in schema.events.c:
            assert schema.events.c[name].type.length == longest, name
    assert list(validation.BOOLEANS) == names(Kind.FLAG)
    assert list(validation.COUNTS) == names(Kind.COUNT)
    assert list(validation.STATUSES) == names(Kind.STATUS)
    assert list(validation.DURATIONS) == names(Kind.DURATION)
    assert list(validation.MONEY) == names(Kind.MONEY)
    checked = [*validation.STRINGS, *validation.BOOLEANS, *validation.COUNTS, *validation.STATUSES,
               *validation.DURATIONS, *validation.MONEY, *validation.SINGLE.values()]
    assert sorted(checked) == sorted(NAMES)  # each field once


#: A wrong value of each kind (validation must refuse it, naming the field).
WRONG = {
    Kind.VERSION: SCHEMA_VERSION + 1, Kind.ID: "", Kind.TIMESTAMP: "yesterday", Kind.FLAG: "yes",
    Kind.COUNT: -1, Kind.STATUS: 99, Kind.DURATION: -1.0, Kind.MONEY: 0.5, Kind.TAGS: {"plan": 1},
    Kind.UNITS: {"seconds": -1}, Kind.USAGE: [1, 2],
}


@pytest.mark.parametrize("f", [*EVENT_FIELDS, *USAGE_FIELDS], ids=lambda f: f.name)
def test_validation_refuses_a_wrong_value_of_each_field(f):
    wire = full_event().to_dict()
    wire["timestamp"] = NOW.isoformat()
    validate_event(json.loads(json.dumps(wire)), NOW)  # as it is: valid
    if f.kind == Kind.TOKENS:
        wire["usage"][f.name], path = -1, f"usage.{f.name}"
    else:
        wire[f.name], path = ("x" * (f.max_length + 1) if f.kind == Kind.TEXT else WRONG[f.kind]), f.name
    with pytest.raises(Invalid, match=f"^{re.escape(path)}"):
        validate_event(wire, NOW)


# -- docs/events.md ----------------------------------------------------------------------------


def doc_table(heading: str) -> list[list[str]]:
    """The rows (cells) of the first table under `heading` in docs/events.md, header left out."""
    lines = DOCS.read_text().split(f"\n{heading}\n", 1)[1].splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(first, len(lines)) if not lines[i].startswith("|")), len(lines))
    rows = lines[first + 2:end]  # past the header and its |---| line
    return [[cell.strip() for cell in row.strip().strip("|").split(" | ")] for row in rows]


def documented(rows: list[list[str]]) -> dict[str, list[str]]:
    out = {}
    for cells in rows:
        assert re.fullmatch(r"`[a-z0-9_]+`", cells[0]), f"one field per row: {cells[0]}"
        out[cells[0].strip("`")] = cells[1:]
    return out


def test_docs_describe_every_field_of_an_event():
    rows = documented(doc_table("## The event"))
    assert list(rows) == NAMES  # every field, no other, in wire order
    for f in EVENT_FIELDS:
        type_, meaning = rows[f.name]
        assert type_ == DOC_TYPE[f.kind], f.name
        assert meaning.startswith(f.doc), f"{f.name}: docs/events.md says {meaning!r}, events.py {f.doc!r}"


def test_docs_describe_every_usage_count():
    rows = documented(doc_table("## Usage: inclusive totals, details are subsets"))
    assert list(rows) == USAGE_NAMES
    for f in USAGE_FIELDS:
        [meaning] = rows[f.name]
        assert meaning.startswith(f.doc), f"{f.name}: docs/events.md says {meaning!r}, events.py {f.doc!r}"


# -- the round trip ----------------------------------------------------------------------------


def round_trip(event: LLMEvent) -> tuple[dict, dict]:
    """The event as the server validated it, and the row a real store keeps of it."""
    wire = json.loads(json.dumps(event.to_dict()))
    clean = validate_event(wire, datetime.now(timezone.utc))
    store = Store(":memory:")
    try:
        assert store.add_events([event_row(clean)]) == [event.event_id]
        with store.engine.connect() as conn:
            stored = dict(conn.execute(select(schema.events)).mappings().one())
    finally:
        store.close()
    return clean, stored


def assert_kept(event: LLMEvent, clean: dict, stored: dict) -> None:
    assert set(stored) == {c.name for c in schema.events.columns}
    assert stored["project_id"] == schema.DEFAULT_PROJECT
    for f in EVENT_FIELDS:
        if f.kind == Kind.VERSION:
            assert f.name not in clean and f.name not in stored
            continue
        value = getattr(event, f.name)
        if not f.column:  # wire only: the server reads it, does not keep it
            assert clean.get(f.name) == value and f.name not in stored, f.name
            continue
        kept = stored[f.name]
        if f.kind == Kind.TIMESTAMP:
            assert kept.tzinfo in (None, timezone.utc)  # UTC (SQLite gives it back without the offset)
            assert kept.replace(tzinfo=timezone.utc) == value
        elif f.kind == Kind.USAGE:
            assert kept == value.to_dict()
            for u in USAGE_FIELDS:
                if u.column:
                    assert stored[u.name] == getattr(value, u.name), u.name
        elif f.kind == Kind.TAGS:
            assert kept == dict(value)
        elif f.kind == Kind.UNITS:
            assert kept == (dict(value) if value else None)  # an empty mapping is sent as null
        elif f.kind == Kind.MONEY:
            assert kept == value and (kept is None) == (value is None), f.name  # Decimal, exactly
            assert kept is None or isinstance(kept, Decimal)
        else:
            assert kept == value and type(kept) is type(value), f.name


def test_a_full_event_round_trips():
    event = full_event()
    assert_kept(event, *round_trip(event))


def test_an_empty_event_round_trips():
    event = LLMEvent()
    assert_kept(event, *round_trip(event))


_TEXT = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
_NAME = st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True).filter(lambda k: k.lower() not in CONTENT_FIELDS)
_NUMBER = st.floats(min_value=0, allow_nan=False, allow_infinity=False) | st.integers(0, 2**53)


def _money() -> st.SearchStrategy[Decimal]:
    """Below 10^15 with at most 15 decimal places (the columns' precision)."""
    # Decimal(text) is exact; scaleb() would round to the context's 28 digits (up to 10^15).
    return st.integers(0, 15).flatmap(lambda places: st.integers(0, 10 ** (15 + places) - 1).map(
        lambda n: Decimal(f"{n}E-{places}")))


def _strategy(f: EventField) -> st.SearchStrategy:
    """Values of one field that the server accepts, from its kind."""
    kind = f.kind
    if kind == Kind.ID:
        return st.from_regex(rf"[A-Za-z0-9._:-]{{1,{f.max_length}}}", fullmatch=True)
    if kind == Kind.TIMESTAMP:
        offsets = st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m)))
        return st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime.now() - timedelta(days=1),
                            timezones=offsets)
    if kind == Kind.FLAG:
        return st.booleans()
    if kind == Kind.TAGS:
        return st.dictionaries(st.text(_TEXT, min_size=1, max_size=128).filter(
            lambda k: k.lower() not in CONTENT_FIELDS), st.text(_TEXT, max_size=1024), max_size=64)
    if kind == Kind.USAGE:
        return st.builds(Usage, **{u.name: _strategy(u) for u in USAGE_FIELDS})
    value = {
        Kind.TEXT: lambda: st.text(_TEXT, max_size=f.max_length),
        Kind.COUNT: lambda: st.integers(0, 2**31 - 1),  # the INTEGER column's range
        Kind.TOKENS: lambda: st.integers(0, validation.MAX_TOKENS),  # what the server takes (10^12)
        Kind.STATUS: lambda: st.integers(100, 599),
        Kind.DURATION: lambda: st.floats(min_value=0, allow_nan=False, allow_infinity=False),
        Kind.MONEY: _money,
        Kind.UNITS: lambda: st.dictionaries(_NAME, _NUMBER, max_size=32),
    }[kind]()
    return st.none() | value


events = st.builds(LLMEvent, **{f.name: _strategy(f) for f in ATTRIBUTES})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_any_event_round_trips(event):
    assert_kept(event, *round_trip(event))
