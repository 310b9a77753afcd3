"""The server answers 4xx, never 5xx, and stays usable, on SQLite and PostgreSQL.

- A schemathesis run over the server's OpenAPI schema (a short profile: 25 examples an
  operation, derandomized, so every run sends the same requests; `TOLLMETER_FUZZ_EXAMPLES=500`
  runs a longer, random one), checked with `not_a_server_error`, against the real server of
  the harness, authenticated with a project key.
- Text in every path and query parameter, generated (schemathesis sends no NUL there).
- A hand-written case for each 5xx found: by that run, by the adversarial pass of issue 12, and
  by hand: times past the calendar, NaN and Infinity, counts and costs that overflowed a column
  or a sum, NUL and unpaired surrogates, 422 answers that could not be encoded.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from urllib.parse import quote

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from sqlalchemy import update

from tollmeter.server.app import create_app
from tollmeter.server.ingest import OVERFLOW_REASON
from tollmeter.server.settings import ServerSettings
from tollmeter.server.validation import MAX_COUNT, MAX_TOKENS, Invalid, check_priced
from tollmeter.store import schema as tables
from tollmeter.store.rows import event_row

from .server_support import EVENT_COST, event

#: The fixtures (backend, server, api): a real server per database, and a project on it.
pytest_plugins = ["tests.server_harness"]

_LONG = os.environ.get("TOLLMETER_FUZZ_EXAMPLES")

#: The schema as the app serves it at /openapi.json (made without a database).
schema = schemathesis.openapi.from_dict(create_app(ServerSettings(database_url="sqlite://")).openapi())


@schema.parametrize()
@settings(max_examples=int(_LONG or 25), deadline=None, derandomize=not _LONG,
          suppress_health_check=list(HealthCheck))
def test_no_request_makes_the_server_fail(case, api):
    case.call_and_validate(base_url=api.server.base, headers={"Authorization": f"Bearer {api.key}"},
                           checks=[not_a_server_error])


def usable(api) -> None:
    """The project still answers: usage, margin, leaks, limits, a lease, a new event."""
    assert api.ingest([event(tenant_id="after")]).json()["accepted"] == 1
    for path in ("/v1/usage", "/v1/margin", "/v1/leaks", "/v1/limits", "/v1/tenants/after/spend"):
        response = api.http.get(path)
        assert response.status_code == 200, (path, response.text)
    assert api.http.post("/v1/leases", json={"tenant_id": "after", "want_usd": "1"}).status_code == 200


# -- text in paths and queries -----------------------------------------------------------------

#: Every path and query parameter that takes text, with what a route does with it.
_TEXT_ROUTES = [
    ("GET", "/v1/limits/{}", None), ("PUT", "/v1/limits/{}", {"limit_usd": "5"}), ("DELETE", "/v1/limits/{}", None),
    ("GET", "/v1/rate-limits/{}", None), ("PUT", "/v1/rate-limits/{}", {"requests_per_minute": 5}),
    ("GET", "/v1/tenants/{}/spend", None), ("GET", "/v1/customers/{}", None),
    ("PUT", "/v1/customers/{}", {"name": "x"}), ("POST", "/v1/runs/{}/resolve", {"outcome": "resolved"}),
    ("DELETE", "/v1/leases/{}", None), ("GET", "/v1/usage?tenant_id={}", None),
    ("GET", "/v1/margin?tenant_id={}", None), ("DELETE", "/v1/limits/x?frequency={}", None),
    ("GET", "/v1/usage?since={}", None), ("GET", "/v1/margin?since={}", None),
    ("GET", "/v1/usage?group_by={}", None), ("GET", "/v1/leaks?spike_factor={}", None),
]


@pytest.mark.parametrize("method,path,body", _TEXT_ROUTES)
@pytest.mark.parametrize("text", ["a\x00b", "\x00", "a%ED%A0%80b"])
def test_nul_and_unpaired_surrogates_in_paths_and_queries_are_refused(api, method, path, body, text):
    # PostgreSQL refused NUL in a query parameter: a 500 on every route that looks a tenant up.
    encoded = text if "%" in text else quote(text, safe="")
    response = api.http.request(method, path.format(encoded), json=body)
    assert response.status_code in (404, 422) if "\x00" in text else response.status_code < 500, response.text
    usable(api)


#: Any text, each with one of what URLs and databases treat apart (NUL, controls, separators, escapes).
_PARAM_TEXT = st.builds(lambda before, special, after: before + special + after, st.text(max_size=20),
                        st.sampled_from(["\x00", "\x01", "\n", "%", "%00", "/", "..", "?", "#", "&", "*", "'", '"',
                                         "\\", " ", "\ufffd", "\U0001F600", "9" * 30, "-1", "1e999", "NaN", ""]),
                        st.text(max_size=20))


@given(text=_PARAM_TEXT)
@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_any_text_in_any_path_or_query_is_answered(api, text):
    for method, path, body in _TEXT_ROUTES:
        response = api.http.request(method, path.format(quote(text, safe="")), json=body)
        assert response.status_code < 500, (method, path, text, response.text)


@pytest.mark.parametrize("method,path,field", [
    ("POST", "/v1/leases", "tenant_id"), ("POST", "/v1/leases", "holder"), ("POST", "/v1/leases", "lease_id"),
    ("POST", "/v1/runs/r/resolve", "tenant_id"), ("POST", "/v1/runs/r/resolve", "idempotency_key"),
    ("PUT", "/v1/customers/c", "name"), ("PUT", "/v1/limits/t", "frequency"),
])
@pytest.mark.parametrize("text", ["a\\u0000b", "a\\ud800b"])
def test_nul_and_unpaired_surrogates_in_bodies_are_refused(api, method, path, field, text):
    assert api.http.put("/v1/limits/t", json={"limit_usd": "100"}).status_code == 200  # a lease is granted
    base = {"/v1/leases": {"tenant_id": "t", "want_usd": "1"}, "/v1/runs/r/resolve": {"outcome": "resolved"},
            "/v1/customers/c": {}, "/v1/limits/t": {"limit_usd": "5"}}[path]
    body = json.dumps(base)[:-1] + (", " if base else "") + f'"{field}": "{text}"}}'
    response = api.http.request(method, path, content=body, headers={"Content-Type": "application/json"})
    # An unpaired surrogate echoed in the 422 could not be encoded: the answer was a 500.
    assert response.status_code == 422, response.text
    assert "detail" in response.json()
    usable(api)


def test_a_content_key_under_a_key_with_a_surrogate_is_refused_with_its_path(api):
    raw = json.dumps({"events": [event(), {**event(), "extra": {"x": {"prompt": "hi"}}}]})
    raw = raw.replace('"x":', '"x\\ud800":')
    response = api.http.post("/v1/ingest", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    [rejected] = response.json()["rejected"]
    assert rejected == {"index": 1, "reason": "extra.x\\ud800.prompt: content fields are not accepted (events never "
                                              "carry prompt or completion content)"}
    usable(api)


# -- times past the calendar ---------------------------------------------------------------------


def test_an_event_whose_utc_time_is_past_the_calendar_is_refused_alone(api):
    batch = [event(), event(timestamp="9999-12-31T23:59:59-01:00"), event(timestamp="0001-01-01T00:00:00+01:00"),
             event(timestamp="9999-12-31T23:59:59+00:00")]
    response = api.ingest(batch)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["accepted"] == 1
    assert [(r["index"], r["reason"].split(":")[0]) for r in answer["rejected"]] == [
        (1, "timestamp"), (2, "timestamp"), (3, "timestamp")]
    assert "out of range" in answer["rejected"][0]["reason"]
    usable(api)


@pytest.mark.parametrize("route", ["/v1/usage", "/v1/margin"])
@pytest.mark.parametrize("params", [
    {"since": "99999999999d"}, {"until": "99999999999d"}, {"since": "99999999999999999999999h"},
    {"since": "0001-01-01T00:00:00+01:00"}, {"until": "9999-12-31T23:59:59-01:00"},
    {"since": "10000-01-01"}, {"since": "0000-01-01"},
])
def test_times_past_the_calendar_are_422(api, route, params):
    response = api.http.get(route, params=params)
    assert response.status_code == 422, response.text
    usable(api)


def test_the_whole_calendar_is_a_range(api):
    api.ingest([event()])
    whole = {"since": "0001-01-01", "until": "9999-12-31"}
    [row] = api.usage(**whole, group_by="")
    assert row["calls"] == 1
    # A margin report covers ten years at most: a range of the whole calendar is refused.
    response = api.http.get("/v1/margin", params=whole)
    assert response.status_code == 422 and "days" in response.json()["detail"]


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "99999-01-01"])
def test_a_resolution_time_past_the_calendar_is_refused(api, when):
    response = api.http.post("/v1/runs/r1/resolve", json={"outcome": "resolved", "resolved_at": when})
    assert response.status_code == 422, response.text
    batch = {"events": [], "resolutions": [{"run_id": "r2", "outcome": "resolved", "resolved_at": when}]}
    answer = api.http.post("/v1/ingest", json=batch).json()
    assert answer["resolutions_accepted"] == 0 and answer["rejected_resolutions"][0]["index"] == 0
    usable(api)


# -- NaN and Infinity ------------------------------------------------------------------------------


@pytest.mark.parametrize("method,path,body", [
    ("PUT", "/v1/limits/acme", '{"limit_usd": NaN}'),
    ("PUT", "/v1/limits/acme", '{"limit_usd": "5", "frequency": "per_day", "extra": Infinity}'),
    ("POST", "/v1/leases", '{"tenant_id": "acme", "want_usd": NaN}'),
    ("POST", "/v1/leases", '{"tenant_id": "acme", "want_usd": "1", "ttl_seconds": Infinity}'),
    ("POST", "/v1/leases", '{"tenant_id": "acme", "want_usd": "1", "ttl_seconds": 1e999}'),
    ("POST", "/v1/leases", '{"tenant_id": "acme", "want_usd": "1", "ttl_seconds": -Infinity}'),
    ("POST", "/v1/leases", '{"tenant_id": "acme", "want_usd": "1", "newer_field": NaN}'),
    ("PUT", "/v1/rate-limits/acme", '{"requests_per_minute": NaN}'),
    ("PUT", "/v1/customers/acme", '{"seats": NaN}'),
    ("PUT", "/v1/customers/acme", '{"plan": {"name": "p", "pricing_model": "per_unit", "unit_revenue_usd": Infinity}}'),
    ("POST", "/v1/runs/r1/resolve", '{"outcome": "resolved", "revenue_usd": NaN}'),
])
def test_nan_and_infinity_anywhere_in_a_body_are_422(api, method, path, body):
    response = api.http.request(method, path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    usable(api)


def test_nan_in_an_ingest_body_is_400_and_an_infinite_number_refuses_its_event(api):
    # The marker is a key only this field has: a timestamp's seconds may hold any digits.
    raw = json.dumps({"events": [event(duration_ms=1.5)]}).replace('"duration_ms": 1.5', '"duration_ms": NaN')
    response = api.http.post("/v1/ingest", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "NaN" in response.json()["detail"]
    raw = json.dumps({"events": [event(), event(duration_ms=1.5)]}).replace('"duration_ms": 1.5',
                                                                            '"duration_ms": 1e999')
    answer = api.http.post("/v1/ingest", content=raw, headers={"Content-Type": "application/json"}).json()
    assert answer["accepted"] == 1 and answer["rejected"][0]["index"] == 1
    usable(api)


# -- counts and costs: bounded where they enter, sums that cannot overflow ------------------------


def test_counts_past_their_bounds_are_refused_with_a_reason(api):
    batch = [
        event(usage={"input_tokens": 2**63 - 1, "output_tokens": 1}),  # two of these broke /v1/usage for good
        event(usage={"input_tokens": 2**63 - 1, "output_tokens": 1}),
        event(usage={"input_tokens": MAX_TOKENS + 1}),
        event(usage={"input_tokens": 1, "some_new_count": MAX_TOKENS + 1}),
        event(tool_calls=MAX_COUNT + 1),  # an INTEGER column on PostgreSQL: the batch was a 500
        event(web_search_requests=2**40),
        event(usage={"input_tokens": MAX_TOKENS, "output_tokens": MAX_TOKENS}, tool_calls=MAX_COUNT,
              web_search_requests=0),
        event(),
    ]
    response = api.ingest(batch)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["accepted"] == 2
    reasons = {r["index"]: r["reason"] for r in answer["rejected"]}
    assert sorted(reasons) == [0, 1, 2, 3, 4, 5]
    assert reasons[0] == f"usage.input_tokens: at most 10^12, got {2**63 - 1}"
    assert reasons[3] == f"usage.some_new_count: at most 10^12, got {MAX_TOKENS + 1}"
    assert reasons[4] == f"tool_calls: at most 2^31 - 1, got {MAX_COUNT + 1}"
    [row] = api.usage(group_by="")
    assert row["input_tokens"] == MAX_TOKENS + 1000 and row["output_tokens"] == MAX_TOKENS + 100
    usable(api)


def _stored_row(**fields):
    """An event row as the store keeps it, made without the server's bounds (an older server)."""
    row = event_row({**event(**fields), "timestamp": datetime.now(timezone.utc)})
    for name, value in fields.get("usage", {}).items():
        row[name] = value
    return row


def test_sums_past_64_bits_are_answered(api):
    # Counts stored before the bounds (or as many events as it takes): three rows of 2^62 tokens
    # (each in a rollup row of its own: three tenants) add up past 2^63 - 1. SQLite's sum() raised
    # "integer overflow": /v1/usage and /v1/margin answered 503 for good.
    store = api.server.store.for_project(api.project)
    store.add_events([_stored_row(tenant_id=f"t{i}", model=f"m{i}", usage={"input_tokens": 2**62, "output_tokens": 1})
                      for i in range(3)])
    [row] = api.usage(group_by="")
    assert row["input_tokens"] == 3 * 2**62 and row["output_tokens"] == 3
    margin = api.http.get("/v1/margin", params={"group_by": ""})
    assert margin.status_code == 200, margin.text
    assert margin.json()["total"]["input_tokens"] == 3 * 2**62
    assert api.http.get("/v1/margin", params={"group_by": "day"}).status_code == 200
    usable(api)


def test_an_event_that_would_overflow_a_daily_total_is_refused_alone(api):
    # A day's usage of one tenant, agent and model is a BIGINT: past it, an event is refused
    # with its reason and the rest of its batch stored (it was a 500 for the whole batch).
    assert api.ingest([event(tenant_id="full")]).json()["accepted"] == 1
    store = api.server.store.for_project(api.project)
    rollup = tables.usage_rollup
    with store.transaction() as conn:
        conn.execute(update(rollup).where(rollup.c.project_id == api.project, rollup.c.tenant_id == "full")
                     .values(input_tokens=2**63 - 100))
    batch = [event(tenant_id="other"), event(tenant_id="full"), event(tenant_id="other", run_id="r1"),
             event(tenant_id="full", model="another-model")]
    response = api.ingest(batch)
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 3, "duplicates": 0, "unpriced": 0,
                               "rejected": [{"index": 1, "reason": OVERFLOW_REASON}]}
    assert api.ingest(batch).json()["duplicates"] == 3  # a retry: the same answer, nothing twice
    assert {r["tenant_id"]: r["calls"] for r in api.usage()} == {"full": 2, "other": 2}
    # A day's usage of one tenant (all its agents and models) is a BIGINT too (tenant_rollup).
    with store.transaction() as conn:
        conn.execute(update(tables.tenant_rollup).where(tables.tenant_rollup.c.project_id == api.project,
                                                        tables.tenant_rollup.c.tenant_id == "full")
                     .values(input_tokens=2**63 - 100))
    response = api.ingest([event(tenant_id="full", model="a-third-model"), event(tenant_id="other")])
    assert response.json()["rejected"] == [{"index": 0, "reason": OVERFLOW_REASON}]
    assert response.json()["accepted"] == 1
    usable(api)


def test_costs_that_would_overflow_a_tenants_spend_are_refused_alone(api, backend):
    # Spend is NUMERIC(30, 15) on PostgreSQL: two costs just below 10^15 overflowed it (a 500).
    big = "999999999999999"
    response = api.ingest([event(tenant_id="rich", cost_usd=big, priced=True),
                           event(tenant_id="rich", cost_usd=big, priced=True), event(tenant_id="poor")])
    assert response.status_code == 200, response.text
    answer = response.json()
    if backend == "postgres":  # the first of the two stored (in event id order) stands
        assert answer["accepted"] == 2
        [rejected] = answer["rejected"]
        assert rejected["index"] in (0, 1) and rejected["reason"] == OVERFLOW_REASON
    else:  # SQLite keeps money as decimal text: nothing overflows
        assert answer["accepted"] == 3 and answer["rejected"] == []
    assert api.spend("poor")["spent"]["total"] == EVENT_COST
    usable(api)


def test_a_cost_priced_on_arrival_past_the_bound_is_refused(api):
    # The server priced units of 10^25 tokens at 8e19 USD: the insert overflowed (a 500).
    response = api.ingest([event(), event(units={"output_tokens": 10**25})])
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["accepted"] == 1
    [rejected] = answer["rejected"]
    assert rejected["index"] == 1 and rejected["reason"].startswith("cost_usd: its usage is priced at 8.000000E+19")
    usable(api)


def test_check_priced():
    from decimal import Decimal

    check_priced({"cost_usd": Decimal("999999999999999.999999999999999"), "computed_cost_usd": None})
    for name in ("cost_usd", "computed_cost_usd"):
        with pytest.raises(Invalid, match=name):
            check_priced({name: Decimal(10) ** 15})


def test_the_schema_states_the_bounds():
    components = create_app(ServerSettings(database_url="sqlite://")).openapi()["components"]["schemas"]
    usage = components["WireUsage"]["properties"]["input_tokens"]["anyOf"][0]
    assert usage == {"type": "integer", "minimum": 0, "maximum": MAX_TOKENS}
    tool_calls = components["WireEvent"]["properties"]["tool_calls"]["anyOf"][0]
    assert tool_calls == {"type": "integer", "minimum": 0, "maximum": MAX_COUNT}

