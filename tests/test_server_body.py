"""The ingest server's pieces on their own: bodies read within limits, gzip bombs refused
without inflating them, and one event validated field by field."""

from __future__ import annotations

import asyncio
import gzip
import tracemalloc
import zlib
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tollmeter.server.body import (
    PayloadError,
    PayloadTooLarge,
    UnsupportedEncoding,
    content_encoding,
    decode,
    gunzip_limited,
    parse_json,
    read_limited,
)
from tollmeter.server.validation import CONTENT_FIELDS, Invalid, needs_pricing, validate_event

MiB = 1024 * 1024
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def bomb(decompressed: int) -> bytes:
    """`decompressed` zero bytes, gzipped (about 1,000 to 1)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(MiB)
    parts = [packer.compress(chunk) for _ in range(decompressed // MiB)]
    return b"".join(parts) + packer.flush()


# -- bodies ----------------------------------------------------------------------------------------


def test_gzip_round_trip_and_several_members():
    assert gunzip_limited(gzip.compress(b'{"events": []}'), 100) == b'{"events": []}'
    assert gunzip_limited(gzip.compress(b"ab") + gzip.compress(b"cd"), 100) == b"abcd"
    assert gunzip_limited(gzip.compress(b"ab") + b"\0\0\0", 100) == b"ab"


def test_exactly_the_limit_passes_and_one_byte_more_does_not():
    data = gzip.compress(b"x" * 1000)
    assert len(gunzip_limited(data, 1000)) == 1000
    with pytest.raises(PayloadTooLarge):
        gunzip_limited(data, 999)


def test_a_gzip_bomb_is_refused_without_inflating_it():
    data = bomb(64 * MiB)  # 64 MiB of zeros in about 64 KB
    assert len(data) < MiB
    limit = 4 * MiB
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge, match="decompressed body is over the limit"):
            gunzip_limited(data, limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # At most the limit's worth (and its buffer's slack), never the 64 MiB.
    assert peak < 2 * limit + MiB, f"peak {peak / MiB:.1f} MiB"


@pytest.mark.parametrize("data, message", [
    (b"not gzip at all", "invalid gzip data"),
    (gzip.compress(b"x" * 1000)[:-12], "truncated"),
    (gzip.compress(b"ab") + b"garbage", "invalid gzip data"),
], ids=["not gzip", "truncated", "trailing garbage"])  # not the bodies: gzip's header has the time in it
def test_broken_gzip_is_a_400(data, message):
    with pytest.raises(PayloadError, match=message) as caught:
        gunzip_limited(data, MiB)
    assert caught.value.status == 400


def test_identity_bodies_have_the_decompressed_limit_too():
    assert decode(b"abc", "identity", 3) == b"abc"
    with pytest.raises(PayloadTooLarge):
        decode(b"abcd", "identity", 3)


def test_content_encodings():
    assert content_encoding(None) == "identity"
    assert content_encoding(" GZIP ") == "gzip"
    assert content_encoding("x-gzip") == "gzip"
    with pytest.raises(UnsupportedEncoding) as caught:
        content_encoding("br")
    assert caught.value.status == 415


def _chunks(*parts):
    async def gen():
        for part in parts:
            yield part
    return gen()


def test_reading_stops_at_the_limit():
    assert asyncio.run(read_limited(_chunks(b"ab", b"cd"), 4)) == b"abcd"
    with pytest.raises(PayloadTooLarge):
        asyncio.run(read_limited(_chunks(b"ab", b"cd", b"e"), 4))
    with pytest.raises(PayloadTooLarge):  # refused on the declared length, before reading
        asyncio.run(read_limited(_chunks(), 4, declared_length="5"))
    with pytest.raises(PayloadError):
        asyncio.run(read_limited(_chunks(), 4, declared_length="five"))


@pytest.mark.parametrize("data", [b"{", b"\xff\xfe", b'{"a": NaN}', b"[" * 100_000])
def test_bad_json_is_a_400(data):
    with pytest.raises(PayloadError) as caught:
        parse_json(data)
    assert caught.value.status == 400


# -- one event -------------------------------------------------------------------------------------


def good(**fields):
    event = {"event_id": "0b4f0f52-7c1e-4c39-9d36-0d5e4e4b2a10", "timestamp": "2026-11-26T11:59:00+00:00",
             "tenant_id": "acme", "provider": "openai", "model": "gpt-4o", "usage": {"input_tokens": 10}}
    event.update(fields)
    return event


def reason(**fields) -> str:
    with pytest.raises(Invalid) as caught:
        validate_event(good(**fields), NOW)
    return str(caught.value)


def test_a_good_event_comes_back_clean():
    clean = validate_event(good(cost_usd="0.0123", priced=True, tags={"plan": "pro"}, duration_ms=12,
                                units={"seconds": 1.5}, lease_id="abc", unknown_field={"x": 1}), NOW)
    assert clean["cost_usd"] == Decimal("0.0123") and clean["priced"] is True
    assert clean["timestamp"] == datetime(2026, 11, 26, 11, 59, tzinfo=timezone.utc)
    assert clean["duration_ms"] == 12.0 and clean["tags"] == {"plan": "pro"} and clean["lease_id"] == "abc"
    assert "unknown_field" not in clean
    assert not needs_pricing(clean) and needs_pricing({**clean, "cost_usd": None})


def test_timestamps():
    assert validate_event(good(timestamp="2026-11-26T11:00:00Z"), NOW)["timestamp"].hour == 11
    naive = validate_event(good(timestamp="2026-11-26T11:00:00"), NOW)["timestamp"]
    assert naive.tzinfo is not None and naive.hour == 11
    offset = validate_event(good(timestamp="2026-11-26T12:00:00+02:00"), NOW)["timestamp"]
    assert offset == datetime(2026, 11, 26, 10, tzinfo=timezone.utc)
    assert "timestamp" in reason(timestamp=None)
    assert "timestamp" in reason(timestamp="yesterday")
    assert "timestamp" in reason(timestamp=1764158400)
    assert "future" in reason(timestamp=(NOW + timedelta(days=2)).isoformat())
    assert "before 2000" in reason(timestamp="1999-12-31T00:00:00Z")


def test_money_is_an_exact_decimal_string():
    assert validate_event(good(cost_usd="1E-7"), NOW)["cost_usd"] == Decimal("0.0000001")
    rounded = validate_event(good(cost_usd="0.12345678901234567890"), NOW)["cost_usd"]
    assert rounded == Decimal("0.123456789012346")  # the columns keep 15 places
    assert "decimal string" in reason(cost_usd=0.5)
    assert "decimal string" in reason(cost_usd="five")
    assert ">= 0" in reason(provider_cost_usd="-1")
    assert ">= 0" in reason(cost_usd="NaN")
    assert "10^15" in reason(computed_cost_usd="1e15")


@pytest.mark.parametrize("fields, expected", [
    ({"event_id": None}, "event_id: required"),
    ({"event_id": "x" * 65}, "event_id"),
    ({"event_id": "a b"}, "event_id"),
    ({"tenant_id": 7}, "tenant_id: must be a string"),
    ({"tenant_id": "t" * 256}, "tenant_id: longer than 255"),
    ({"model": "gpt\x00"}, "model: contains a NUL"),
    ({"run_id": "\ud800"}, "run_id: contains a NUL or an unpaired surrogate"),
    ({"stream": "yes"}, "stream: must be true or false"),
    ({"usage": {"input_tokens": -1}}, "usage.input_tokens: must be a non-negative integer"),
    ({"usage": {"input_tokens": 1.0}}, "usage.input_tokens"),
    ({"usage": {"input_tokens": True}}, "usage.input_tokens"),
    ({"usage": {"input_tokens": "10"}}, "usage.input_tokens"),
    ({"usage": [1, 2]}, "usage: must be an object"),
    ({"usage": {"bad name!": 1}}, "usage: count names"),
    ({"tool_calls": -2}, "tool_calls"),
    ({"status_code": 42}, "status_code"),
    ({"duration_ms": -1}, "duration_ms"),
    ({"duration_ms": "fast"}, "duration_ms"),
    ({"tags": {"plan": 3}}, "tags.plan: must be a string"),
    ({"tags": ["a"]}, "tags: must be an object"),
    ({"tags": {f"t{i}": "x" for i in range(65)}}, "more than 64 tags"),
    ({"units": {"seconds": -1}}, "units.seconds"),
    ({"schema_version": 99}, "schema_version"),
])
def test_bad_fields_are_named(fields, expected):
    assert expected in reason(**fields)


def test_not_an_object():
    with pytest.raises(Invalid, match="a JSON object"):
        validate_event(["event"], NOW)


@pytest.mark.parametrize("fields, where", [
    ({"prompt": "Summarise this"}, "prompt"),
    ({"messages": [{"role": "user"}]}, "messages"),
    ({"Content": None}, "Content"),  # any case, even empty
    ({"completion": "..."}, "completion"),
    ({"tags": {"input": "the user's question"}}, "tags.input"),
    ({"extra": {"request": {"output": "text"}}}, "extra.request.output"),
    ({"extra": [{"deep": [{"instructions": "x"}]}]}, "extra.0.deep.0.instructions"),
    ({"usage": {"input_tokens": 1, "completions": 1}}, "usage.completions"),
])
def test_content_fields_are_refused_at_any_depth(fields, where):
    text = reason(**fields)
    assert text.startswith(f"{where}: content fields are not accepted")


def test_the_content_fields():
    assert {"prompt", "messages", "content", "input", "output", "completion"} <= CONTENT_FIELDS
    # Token counts named after them are not content.
    assert validate_event(good(usage={"input_tokens": 1, "output_tokens": 2}), NOW)["usage"] == {
        "input_tokens": 1, "output_tokens": 2}


def test_nesting_is_bounded():
    deep: dict = {}
    node = deep
    for _ in range(40):
        node["x"] = {}
        node = node["x"]
    assert "nested deeper" in reason(extra=deep)
