"""The ingest server's row of a validated event (store/rows.py valid_event_row) is the row
event_row makes of it, column for column, on generated wire events."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from tollmeter.server.validation import Invalid, validate_event
from tollmeter.store import schema
from tollmeter.store.rows import event_row, valid_event_row

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
