"""The background worker's shorter ways to the same results (its CPU per event is the host
application's): each gives exactly what the longer way it replaces gives.

- the stored row read from the event itself (`event_row_of`) is the row of its wire form
  (`event_row(event.to_dict())`), value for value and class for class, or the same exception;
- a count is read as before its new first test, for an exact int;
- the pricer's remembered matches price as a pricer that remembers nothing, and are forgotten
  when the price data changes;
- the written-out `usage_counts` and `Usage.is_empty`, and the NUL search of ASCII texts in
  `repair_event`, decide as the general forms do.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from enum import IntEnum
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tollmeter import rules
from tollmeter.events import USAGE_FIELDS, LLMEvent, Usage
from tollmeter.instrument.fields import count
from tollmeter.pricing.pricer import Pricer
from tollmeter.pricing.rates import USAGE_KEYS, usage_counts
from tollmeter.store.rows import event_row, event_row_of

from .test_event_schema import events as valid_events

UTC = timezone.utc
_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- the stored row ---------------------------------------------------------------------------


def _outcome(make: Any, event: LLMEvent) -> Any:
    """What `make(event)` gives, strictly comparable: each value's class and repr, in order; or
    the exception's class and message."""
    try:
        row = make(event)
    except Exception as exc:  # noqa: BLE001 - the same exception is the point
        return ("raised", type(exc), str(exc))
    return [(key, type(value), repr(value)) for key, value in row.items()]


def _wire_row(event: LLMEvent) -> dict[str, Any]:
    return event_row(event.to_dict())


class _Money(Decimal):
    pass


_ODD_VALUES = {
    "timestamp": st.sampled_from([
        datetime(2026, 12, 5, 7, 8, 9, 123456), datetime(2026, 12, 5, 7, 8, 9, fold=1, tzinfo=UTC),
        datetime(2026, 12, 5, 7, 8, 9, tzinfo=timezone(timedelta(hours=-3))), "2026-12-05T07:08:09Z", None]),
    "cost_usd": st.sampled_from([0.1, "0.25", "abc", _Money("1.5"), Decimal("NaN"), Decimal("-0"), 3, None]),
    "computed_cost_usd": st.sampled_from([Decimal("1E-20"), 2.5, _Money("0"), None]),
    "provider_cost_usd": st.sampled_from([Decimal("0.000055"), "x", None]),
    "tags": st.sampled_from([MappingProxyType({"a": "b"}), None, {"k": "v"}, [("k", "v")], 5]),
    "units": st.sampled_from([MappingProxyType({"s": 1.5}), {}, None, {"n": 2}, [("s", 1)], 7]),
    "usage": st.sampled_from([Usage(input_tokens=3), None, {"input_tokens": 3}]),
    "stream": st.sampled_from([True, 0, 1, None, "yes"]),
    "priced": st.sampled_from([False, 1, None]),
}


@st.composite
def _utc_events(draw: st.DrawFn) -> LLMEvent:
    """A valid event, its time in UTC (the worker's events: `event_row_of` reads those itself)."""
    event = draw(valid_events)
    event.timestamp = event.timestamp.astimezone(UTC)
    return event


@st.composite
def _odd_events(draw: st.DrawFn) -> LLMEvent:
    """A valid event in UTC with some of its values replaced by values of other classes."""
    event = draw(_utc_events())
    for name in draw(st.lists(st.sampled_from(sorted(_ODD_VALUES)), unique=True, max_size=4)):
        setattr(event, name, draw(_ODD_VALUES[name]))
    return event


@_SETTINGS
@given(valid_events | _utc_events())
def test_the_row_of_an_event_is_the_row_of_its_wire_form(event):
    assert _outcome(event_row_of, event) == _outcome(_wire_row, event)


@_SETTINGS
@given(_odd_events())
def test_the_row_of_an_event_of_odd_values_is_the_row_of_its_wire_form_or_its_fault(event):
    assert _outcome(event_row_of, event) == _outcome(_wire_row, event)


def test_the_row_of_a_common_event_is_read_from_the_event_itself():
    event = LLMEvent(provider="openai", model="gpt-4o", tenant_id="acme", tags=MappingProxyType({"a": "b"}),
                     usage=Usage(input_tokens=14, output_tokens=2), cost_usd=Decimal("0.000055"), priced=True)
    row = event_row_of(event)
    assert row == _wire_row(event)
    assert row["timestamp"] is event.timestamp and row["cost_usd"] is event.cost_usd  # no round trip


# -- the usage --------------------------------------------------------------------------------


class _Kind(IntEnum):
    SOME = 3


@_SETTINGS
@given(st.integers(-5, 10**13))
def test_a_whole_number_is_a_count_unless_negative(value):
    assert count(value) == (value if value >= 0 else None)


@pytest.mark.parametrize("value, expected", [
    (None, None), (True, None), (False, None), (_Kind.SOME, _Kind.SOME), (2.0, 2), (2.5, None), ("7", 7),
    ("x", None), (float("nan"), None), (float("inf"), None), (-1.0, None), ([1], None)])
def test_other_values_are_counts_as_before(value, expected):
    assert count(value) == expected and type(count(value)) is type(expected)


# -- pricing ----------------------------------------------------------------------------------

_TOKENS = st.none() | st.integers(0, 5000)
_CALLS = st.tuples(
    st.sampled_from([("openai", "gpt-4o"), ("openai", "gpt-4o-audio-preview"), ("azure", "gpt-4o-mini"),
                     ("anthropic", "claude-sonnet-4-5"), ("self-hosted", "gpt-4o"), ("openai", "no-such-model"),
                     (None, "gpt-4o"), ("openai", None)]),
    st.sampled_from([None, "gpt-4o", "gpt-4o-mini"]),
    st.sampled_from([None, "flex", "priority"]),
)


@st.composite
def _priced_events(draw: st.DrawFn) -> LLMEvent:
    (provider, model), request_model, tier = draw(_CALLS)
    counts = {name: draw(_TOKENS) for name in ("output_tokens", "cache_read_tokens", "input_audio_tokens",
                                                "output_audio_tokens", "reasoning_tokens")}
    inputs = draw(_TOKENS)
    if inputs is not None:
        inputs += (counts["cache_read_tokens"] or 0) + (counts["input_audio_tokens"] or 0)
    return LLMEvent(provider=provider, model=model, request_model=request_model, service_tier=tier,
                    usage=Usage(input_tokens=inputs, **counts),
                    timestamp=datetime(2026, 12, 5, 7, draw(st.integers(0, 3)), draw(st.integers(0, 59)), tzinfo=UTC),
                    web_search_requests=draw(st.sampled_from([None, 0, 2])),
                    units=draw(st.sampled_from([None, {"input_characters": 100}, {"audio_seconds": 1.5},
                                                {"characters": 100}])),  # (not a genai-prices key)
                    error=draw(st.sampled_from([None, "RateLimitError"])))


def _priced(pricer: Pricer, event: LLMEvent) -> tuple[Any, ...]:
    try:
        pricer.price(event)
    except Exception as exc:  # noqa: BLE001 - the same exception is the point
        return ("raised", type(exc), str(exc))
    return event.cost_usd, event.computed_cost_usd, event.priced, event.price_source, event.price_model


_REMEMBERING = Pricer()


@_SETTINGS
@given(st.lists(_priced_events(), min_size=1, max_size=8))
def test_remembered_matches_price_as_a_pricer_that_remembers_nothing(events):
    for event in events:
        fresh = Pricer(bundled=_REMEMBERING.bundled)  # the same data, nothing remembered
        copy = LLMEvent(**{f.name: getattr(event, f.name) for f in fields(LLMEvent)})
        assert _priced(_REMEMBERING, event) == _priced(fresh, copy)


def test_remembered_matches_are_forgotten_when_the_price_data_changes(monkeypatch):
    pricer = Pricer()

    def event() -> LLMEvent:
        return LLMEvent(provider="openai", model="gpt-4o", usage=Usage(input_tokens=1000, output_tokens=10),
                        timestamp=datetime(2026, 12, 5, 7, 8, tzinfo=UTC))

    first = _priced(pricer, event())
    bundled = pricer.bundled
    sheet = bundled.sheet
    monkeypatch.setattr(bundled, "sheet", lambda *args: sheet(*args).scaled(Decimal(2)))
    assert _priced(pricer, event()) == first  # the same data: the same match, remembered
    monkeypatch.setattr(bundled, "source", "genai-prices data fetched 2026-12-05T07:00:00+00:00")
    again = _priced(pricer, event())
    assert again[0] == 2 * first[0] and again[3] == bundled.source


# -- written-out forms ------------------------------------------------------------------------

_USAGES = st.builds(Usage, **{f.name: st.none() | st.integers(0, 10**12) for f in USAGE_FIELDS})


@_SETTINGS
@given(_USAGES, st.none() | st.integers(0, 5), st.none() | st.dictionaries(st.sampled_from("abc"), st.floats(0, 9)))
def test_the_written_out_counts_are_the_general_ones(usage, web_searches, units):
    general: dict[str, Any] = {"requests": 1}
    general.update({key: getattr(usage, name) for name, key in USAGE_KEYS.items() if getattr(usage, name) is not None})
    if web_searches:
        general["web_searches"] = web_searches
    general.update({k: v for k, v in (units or {}).items() if v})
    counts = usage_counts(usage, web_searches=web_searches, units=units)
    assert list(counts.items()) == list(general.items())
    assert usage.is_empty() is all(getattr(usage, f.name) is None for f in USAGE_FIELDS)


@_SETTINGS
@given(st.text(max_size=80))
def test_a_text_is_repaired_as_the_search_for_nul_and_surrogates_says(text):
    event = LLMEvent(provider=text, timestamp=datetime(2026, 12, 5, tzinfo=UTC))
    problems = rules.repair_event(event)
    bad = len(text) > rules.TEXT_LIMITS["provider"] or rules.BAD_TEXT.search(text) is not None
    assert bool(problems) is bad
    assert event.provider == (rules.clip_text(text, rules.TEXT_LIMITS["provider"]) if bad else text)
