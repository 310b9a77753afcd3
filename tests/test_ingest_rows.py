"""The ingest server's row of a validated event (store/rows.py valid_event_row) is the row
event_row makes of it, column for column; SQLite stores it as SQLAlchemy's own insert would,
and PostgreSQL's COPY stores every value of it, on generated wire events."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqlalchemy import insert, select, text

from tollmeter.server.retry import out_of_range
from tollmeter.server.validation import Invalid, validate_event
from tollmeter.store import schema
from tollmeter.store.rows import event_row, valid_event_row
from tollmeter.store.store import Store, _json_text

from .server_support import database_for

NOW = datetime(2026, 12, 5, 12, tzinfo=timezone.utc)
texts = st.one_of(st.none(), st.text(max_size=20))
counts = st.one_of(st.none(), st.integers(0, 10**12))
money = st.one_of(st.none(), st.decimals(0, 10**6, places=18, allow_nan=False).map(str), st.just("1E-7"))
moments = st.datetimes(datetime(2001, 1, 1), datetime(2026, 12, 5), timezones=st.sampled_from(
    [timezone.utc, timezone(timedelta(hours=-5, minutes=-30)), None]))

wire = st.fixed_dictionaries({
    "event_id": st.from_regex(r"\A[A-Za-z0-9._:-]{1,64}\Z"),
    "timestamp": moments.map(lambda m: m.isoformat()),
}, optional={
    "tenant_id": texts, "run_id": texts, "agent_id": texts, "provider": texts, "model": texts, "error": texts,
    "stream": st.booleans(), "partial": st.booleans(), "priced": st.booleans(),
    "usage": st.dictionaries(st.sampled_from(["input_tokens", "output_tokens", "cache_read_tokens",
                                              "cache_write_tokens", "reasoning_tokens", "input_audio_tokens"]),
                             counts),
    "tags": st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=3),
    "units": st.one_of(st.none(), st.dictionaries(st.sampled_from(["seconds", "images"]),
                                                  st.floats(0, 1e6) | st.integers(0, 10**6), max_size=2)),
    "tool_calls": st.one_of(st.none(), st.integers(0, 2**31 - 1)), "status_code": st.one_of(st.none(),
                                                                                        st.integers(100, 599)),
    "duration_ms": st.one_of(st.none(), st.floats(0, 1e9), st.integers(0, 10**9)),
    "cost_usd": money, "provider_cost_usd": money, "computed_cost_usd": money,
    "lease_id": texts, "schema_version": st.just(1),
})


@settings(max_examples=300, deadline=None)
@given(wire)
def test_the_row_of_a_validated_event_is_event_rows(raw):
    try:
        event = validate_event(raw, NOW)
    except Invalid:
        return
    fast, slow = valid_event_row(event), event_row(event)
    for column in schema.events.columns:
        if column.name in ("project_id", "received_at"):
            continue
        assert column.name in fast
        assert fast[column.name] == slow.get(column.name), column.name
        assert type(fast[column.name]) is type(slow.get(column.name)), column.name
        if column.name.endswith("_usd") and fast[column.name] is not None:
            assert str(fast[column.name]) == str(slow[column.name])


_STORES: list[Store] = []


def _valid_rows(batch: list[dict]) -> list[dict]:
    """The rows of the events of `batch` that validation accepts."""
    rows = []
    for raw in batch:
        try:
            rows.append(valid_event_row(validate_event(raw, NOW)))
        except Invalid:
            pass
    return rows


@settings(max_examples=60, deadline=None)
@given(st.lists(wire, min_size=1, max_size=5, unique_by=lambda raw: raw["event_id"]))
def test_sqlite_stores_a_batch_as_the_columns_own_binding_does(batch):
    """add_events binds SQLite's values itself (store.py _sqlite_event_insert): the stored
    text is what SQLAlchemy's insert of the same rows stores, each value bound by its column's
    own processor (and a missing JSON value stored as NULL, not as JSON null), byte for byte."""
    rows = _valid_rows(batch)
    if not rows:
        return
    if not _STORES:
        _STORES.append(Store(":memory:"))
    project = uuid.uuid4().hex
    ours, theirs = _STORES[0].for_project(project), _STORES[0].for_project(project + "-sqlalchemy")
    assert len(ours.add_events(rows)) == len(rows)
    e = schema.events
    read = text("SELECT * FROM events WHERE project_id = :p ORDER BY event_id")
    with ours.transaction() as conn:
        stored = conn.execute(read, {"p": project}).all()
        received = conn.execute(select(e.c.received_at).where(e.c.project_id == project).limit(1)).scalar()
    json_at = [i for i, c in enumerate(e.columns) if isinstance(c.type, schema.JSON)]
    with theirs.transaction() as conn:  # the JSON columns left NULL here, compared below
        conn.execute(insert(e), [
            {**{c.name: None for i, c in enumerate(e.columns) if i not in json_at},
             **{k: v for k, v in row.items() if k in e.c and e.columns.keys().index(k) not in json_at},
             "project_id": theirs.project, "received_at": received} for row in rows])
        expected = conn.execute(read, {"p": theirs.project}).all()
    for ours_row, their_row, row in zip(stored, expected, sorted(rows, key=lambda r: r["event_id"])):
        for i, (mine, sqlalchemys) in enumerate(zip(ours_row, their_row)):
            if i == 0:
                continue  # the project
            if i in json_at:  # as the store always wrote JSON: compact (_json_text), None as NULL
                value = row.get(e.columns[i].name)
                assert mine == (None if value is None else _json_text(value))
            else:
                assert mine == sqlalchemys and type(mine) is type(sqlalchemys), e.columns[i].name


@pytest.fixture(scope="module")
def postgres_store():
    url, drop = database_for("postgres")
    store = Store(url)
    try:
        yield store
    finally:
        store.close()
        drop()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(wire, min_size=1, max_size=5, unique_by=lambda raw: raw["event_id"]))
def test_postgres_copy_stores_every_value_of_the_rows(postgres_store, batch):
    """On PostgreSQL the events go in by binary COPY (store.py _copy_events): read back, every
    column holds the row's value (money to the column's 15 places, times in UTC)."""
    rows = _valid_rows(batch)
    view = postgres_store.for_project(uuid.uuid4().hex)
    assert sorted(view.add_events(rows)) == sorted(row["event_id"] for row in rows)
    assert view.add_events(rows) == []  # idempotent: the ids are claimed
    e = schema.events
    with view.transaction() as conn:
        stored = {r.event_id: r._mapping for r in conn.execute(select(e).where(e.c.project_id == view.project))}
    for row in rows:
        back = stored[row["event_id"]]
        for column in e.columns:
            if column.name in ("project_id", "received_at"):
                continue
            value, read = row.get(column.name), back[column.name]
            if isinstance(value, Decimal):
                value = value.quantize(Decimal(1).scaleb(-15))
            elif column.name in ("duration_ms", "time_to_first_token_ms") and value is not None:
                value = float(value)
            assert read == value, column.name


@pytest.mark.parametrize("extra", [{"tool_calls": 2**31}, {"status_code": -2**31 - 1},
                                   {"usage": {"input_tokens": 2**63}}, {"cost_usd": Decimal("1E+20")}])
def test_postgres_copy_refuses_a_value_past_its_column(postgres_store, extra):
    """A value its column cannot hold is an overflow (the server then stores the batch in halves
    and refuses that event), never wrapped around (psycopg's binary int4 would) nor half stored."""
    view = postgres_store.for_project(uuid.uuid4().hex)
    good = valid_event_row(validate_event({"event_id": "good", "timestamp": NOW.isoformat()}, NOW))
    bad = {**good, "event_id": "bad", **extra}
    if "usage" in extra:
        bad["input_tokens"] = extra["usage"]["input_tokens"]
    with pytest.raises(Exception) as raised:
        view.add_events([good, bad])
    assert out_of_range(raised.value)
    assert view.count_events() == 0
    assert view.add_events([good]) == ["good"]  # the failed batch claimed no id
