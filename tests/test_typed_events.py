"""The typed decoding of an ingest batch (server/typed_events.py) answers every event as
`validate_event` does - the same row for a good one, the same reason for a bad one - on
generated batches of events near and past every bound (outside input: any JSON a sender may
post), and falls back to `parse_json` exactly when the body is not for it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tollmeter.rules import CONTENT_FIELDS
from tollmeter.server.body import PayloadError, parse_json
from tollmeter.server.typed_events import decode_batch
from tollmeter.server.validation import Invalid, validate_event
from tollmeter.store.rows import valid_event_row

NOW = datetime(2026, 12, 5, 12, tzinfo=timezone.utc)

#: Any JSON value (what a field may hold when a sender gets it wrong).
anything = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6)
edgy_text = st.one_of(st.text(max_size=8), st.text(max_size=3).map(lambda t: t + "\x00"),
                      st.integers(0, 300).map(lambda n: "é" * n), st.sampled_from(["a\n", "", " "]))
#: Keys of usage, tags and units: names, content names in any case, odd text.
keys = st.one_of(st.sampled_from(["input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens",
                                  "input_audio_tokens", "seconds", "plan", "Prompt", "MESSAGES", "content",
                                  "a b", "x" * 65, "y" * 129, "ok\n"]),
                 st.text(max_size=6), st.sampled_from(sorted(CONTENT_FIELDS)))
counts = st.one_of(st.none(), st.integers(-1, 10), st.integers(10**12 - 1, 10**12 + 1),
                   st.integers(2**31 - 2, 2**31), st.booleans(), st.floats(0, 10), st.just(10**30))
numbers = st.one_of(st.none(), st.floats(-1, 1e9, allow_nan=False), st.integers(-1, 10**6),
                    st.just(10**400), st.just(-0.0), st.just(1.7e308), st.booleans(), st.text(max_size=2))
money = st.one_of(st.none(), st.decimals(0, 10**6, places=18, allow_nan=False).map(str),
                  st.sampled_from(["1E-7", " 1.5 ", "-1", "1e15", "999999999999999.9", "NaN", "abc", "0.0",
                                   "1" * 65]),
                  st.integers(0, 3), st.floats(0, 1))
moments = st.datetimes(datetime(1999, 12, 31), datetime(2026, 12, 7), timezones=st.sampled_from(
    [timezone.utc, timezone(timedelta(hours=-5, minutes=-30)), None]))
timestamps = st.one_of(moments.map(lambda m: m.isoformat()), moments.map(lambda m: m.isoformat(" ")),
                       moments.map(lambda m: m.strftime("%Y-%m-%dT%H:%M:%SZ")), moments.map(lambda m: m.strftime(
                           "%Y-%m-%dT%H:%M:%S.%f123z")), st.sampled_from(["", "yesterday", "9999-12-31T23:59:59-01:00",
                                                                          " 2026-12-05T10:00:00Z ", "x" * 65]),
                       st.integers(0, 2), st.none())

good_text = st.one_of(st.none(), st.text(max_size=8).filter(lambda t: "\x00" not in t),
                      st.integers(250, 255).map(lambda n: "é" * n))
good_counts = st.one_of(st.none(), st.integers(0, 10), st.integers(2**31 - 2, 2**31 - 1))
good_numbers = st.one_of(st.none(), st.floats(0, 1e9), st.integers(0, 10**6), st.just(-0.0), st.just(10**300))
#: Events validation takes (edges inside every bound) ...
good_event = st.fixed_dictionaries({
    "event_id": st.from_regex(r"\A[A-Za-z0-9._:-]{1,64}\Z"),
    "timestamp": st.one_of(moments.map(lambda m: m.isoformat()),
                           moments.map(lambda m: m.strftime("%Y-%m-%dT%H:%M:%SZ"))),
}, optional={
    "schema_version": st.sampled_from([1, None]),
    "tenant_id": good_text, "run_id": good_text, "agent_id": good_text,
    "provider": st.sampled_from(["openai", "anthropic", None]),
    "model": st.sampled_from(["gpt-4o", "gpt-4o-2024-08-06", "claude-3-5-sonnet-20241022", None]),
    "request_model": st.sampled_from(["gpt-4o", None]), "endpoint": good_text, "service_tier": good_text,
    "error": good_text, "lease_id": good_text, "request_id": good_text, "finish_reason": good_text,
    "price_source": good_text, "price_model": good_text,
    "stream": st.sampled_from([True, False, None]), "partial": st.sampled_from([True, False, None]),
    "priced": st.sampled_from([True, False, None]),
    "usage": st.one_of(st.none(), st.dictionaries(st.sampled_from(["input_tokens", "output_tokens",
                                                                   "cache_read_tokens", "reasoning_tokens",
                                                                   "cache_write_tokens", "audio.x", "n:1"]),
                                                  st.none() | st.integers(0, 10**12), max_size=4)),
    "tags": st.one_of(st.none(), st.dictionaries(st.text(min_size=1, max_size=6).filter(lambda t: "\x00" not in t),
                                                 good_text.filter(lambda t: t is not None), max_size=3)),
    "units": st.one_of(st.none(), st.dictionaries(st.sampled_from(["seconds", "images", "chars"]), good_numbers
                                                  .filter(lambda n: n is not None), max_size=3)),
    "tool_calls": good_counts, "web_search_requests": good_counts, "status_code": st.none() | st.integers(100, 599),
    "duration_ms": good_numbers, "time_to_first_token_ms": good_numbers,
    "cost_usd": st.none() | st.decimals(0, 10**6, places=18, allow_nan=False).map(str),
    "provider_cost_usd": st.sampled_from([None, "1E-7", " 1.5 ", "0.0", "999999999999999.9"]),
    "computed_cost_usd": st.none() | st.just("0.000000000000000001"),
})
#: ... and the same with one field given a value from anywhere, or an unknown field added.
bad_values = {
    "event_id": st.sampled_from(["", "a b", "x" * 65, "id\n", 5, None]),
    "timestamp": timestamps,
    "schema_version": st.sampled_from([2, 0, True, 1.0, "1"]),
    "tenant_id": st.one_of(edgy_text, st.integers()), "agent_id": edgy_text, "provider": st.just("p" * 65),
    "stream": st.sampled_from([1, "true"]), "partial": st.just(0),
    "usage": st.one_of(st.dictionaries(keys, counts, max_size=4), st.dictionaries(keys, st.integers(0, 5), min_size=1),
                       st.dictionaries(st.from_regex(r"\At[0-9]{1,3}\Z"), st.integers(0, 5), min_size=30, max_size=34),
                       st.dictionaries(st.sampled_from(sorted(CONTENT_FIELDS)), st.integers(0, 5), min_size=1,
                                       max_size=2),
                       anything),
    "tags": st.one_of(st.dictionaries(keys, edgy_text, max_size=3),
                      st.dictionaries(st.from_regex(r"\Ak[0-9]{1,3}\Z"), st.just("v"), min_size=63, max_size=66),
                      st.dictionaries(keys, st.integers(), max_size=2), anything),
    "units": st.one_of(st.dictionaries(keys, numbers, max_size=3), anything,
                       st.dictionaries(st.sampled_from(sorted(CONTENT_FIELDS)) | keys, st.floats(0, 10), min_size=1,
                                       max_size=2),
                       st.dictionaries(st.just("seconds"), st.sampled_from([10**400, 10**300, -1]), min_size=1)),
    "tool_calls": counts, "status_code": st.one_of(counts, st.integers(99, 600)),
    "duration_ms": numbers, "cost_usd": money, "provider_cost_usd": money,
    "newer_field": anything, "extra": st.dictionaries(keys, anything, max_size=2),
    "prompt": st.none() | st.text(max_size=3), "Messages": st.none(),
}
bad_event = st.sampled_from(sorted(bad_values)).flatmap(
    lambda name: st.tuples(good_event, bad_values[name]).map(lambda t: {**t[0], name: t[1]}))
event = st.one_of(good_event, bad_event)
events = st.lists(st.one_of(good_event, good_event, bad_event, anything), max_size=5)


def _expected(raw: object) -> tuple[str, object]:
    try:
        return "row", valid_event_row(validate_event(raw, NOW))
    except Invalid as exc:
        return "reason", str(exc)


def _same_row(mine: dict, theirs: dict) -> None:
    for name in set(mine) | set(theirs):
        a, b = mine.get(name), theirs.get(name)
        assert a == b and type(a) is type(b), name
        if isinstance(a, Decimal):
            assert str(a) == str(b), name
        if isinstance(a, dict):
            assert [(k, type(v)) for k, v in a.items()] == [(k, type(v)) for k, v in b.items()], name


def _check(body: bytes) -> None:
    batch = decode_batch(body)
    try:
        payload = parse_json(body)
    except PayloadError:
        assert batch is None  # what the old way refuses, this way leaves to it
        return
    if batch is None:
        return  # the old way reads it (not an object with a list of events, 1e999 in a resolution, ...)
    assert isinstance(payload, dict) and isinstance(payload.get("events"), list)
    assert batch.events == len(payload["events"])
    assert batch.resolutions == payload.get("resolutions")
    checked, rejected = batch.rows(NOW)
    answers = {index: ("row", row) for index, row in checked}
    answers.update({item["index"]: ("reason", item["reason"]) for item in rejected})
    assert sorted(answers) == list(range(len(payload["events"])))
    assert [i for i, _ in checked] == sorted(i for i, _ in checked)
    assert [item["index"] for item in rejected] == sorted(item["index"] for item in rejected)
    for index, raw in enumerate(payload["events"]):
        kind, value = _expected(raw)
        assert answers[index][0] == kind, (raw, answers[index], value)
        if kind == "reason":
            assert answers[index][1] == value
        else:
            _same_row(answers[index][1], value)


@settings(max_examples=1500, deadline=None)
@given(events, st.booleans(), st.one_of(st.none(), st.lists(anything, max_size=2), anything))
def test_every_event_is_answered_as_validate_event_answers_it(batch, ascii_only, resolutions):
    payload: dict = {"events": batch}
    if resolutions is not None:
        payload["resolutions"] = resolutions
    _check(json.dumps(payload, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass"))


@settings(max_examples=300, deadline=None)
@given(st.lists(event, min_size=1, max_size=4), st.sampled_from([
    b'"\\ud800"', b'"\\udfff x"', b'"a\\u0000"', b'1e999', b'NaN', b'-Infinity', b'"\\ud83d\\ude00"', b'1E400',
    b'123456789012345678901234567890', b'[1, {"prompt": 1}]', b'{"Content": null}']), st.integers(0, 3))
def test_a_raw_value_anywhere_in_a_batch(batch, value, where):
    """Values json.dumps cannot write (an unpaired surrogate escape, 1e999, NaN) put in place of
    a field of one event, or of the resolutions."""
    marker = "\x01marker\x01"
    target = batch[where % len(batch)]
    target[["tenant_id", "duration_ms", "tags", "newer_field"][where]] = marker
    body = json.dumps({"events": batch}).encode().replace(json.dumps(marker).encode(), value)
    _check(body)


def test_a_good_batch_takes_one_decoder_call_and_a_bad_event_is_refused_alone():
    good = {"event_id": "e1", "timestamp": "2026-12-05T10:00:00Z", "tenant_id": "t", "usage": {"input_tokens": 3},
            "tags": {"plan": "pro"}, "duration_ms": 5, "cost_usd": "0.10", "priced": True}
    bad = dict(good, event_id="e2", tags={"Prompt": "hello"})
    checked, rejected = decode_batch(json.dumps({"events": [good, bad, dict(good, event_id="e3")]}).encode()).rows(NOW)
    assert [index for index, _ in checked] == [0, 2]
    assert rejected == [{"index": 1, "reason": "tags.Prompt: content fields are not accepted "
                                                 "(events never carry prompt or completion content)"}]
    row = checked[0][1]
    assert row["duration_ms"] == 5.0 and type(row["duration_ms"]) is float
    assert row["cost_usd"] == Decimal("0.10") and row["input_tokens"] == 3 and row["stream"] is False
    assert decode_batch(b'{"events": {}}') is None and decode_batch(b"[]") is None
