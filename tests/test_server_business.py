"""Customers, run resolutions, margin and leaks on a real server (SQLite and PostgreSQL):
/v1/customers, /v1/runs/{run_id}/resolve, /v1/margin and /v1/leaks in JSON and CSV, the
resolutions of an ingest batch, the 4xx answers to bad input (with their reasons), and an agent
whose resolutions travel in its batches and whose margin, leaks and customers come from the
server through RemoteLedger."""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tollmeter import DeliveryError, Meter, MeterConfig, Plan, PlanError
from tollmeter.business.leaks import Leak, LeakSettings
from tollmeter.business.margin import MarginReport
from tollmeter.business.remote import LedgerUnavailable, RemoteLedger
from tollmeter.business.wire import MARGIN_MEASURES
from tollmeter.server.models import CustomersOut, LeaksOut, MarginOut, UsageOut
from tollmeter.store.ledger import Customer, RunAlreadyResolved

from .server_support import EVENT_COST, event, free_port

#: The fixtures (backend, server, api): a real server per database, and a project on it.
pytest_plugins = ["tests.server_harness"]

COST = Decimal(EVENT_COST)  # 1,000 input and 100 output tokens of the server's test model


def today() -> date:
    return datetime.now(timezone.utc).date()


def month_start() -> str:
    return today().replace(day=1).isoformat()


def put_customer(api, tenant: str, **body) -> httpx.Response:
    return api.http.put(f"/v1/customers/{tenant}", json=body)


def ingest(api, events: list[dict], resolutions: list | None = None) -> httpx.Response:
    payload: dict = {"events": events}
    if resolutions is not None:
        payload["resolutions"] = resolutions
    return api.http.post("/v1/ingest", content=gzip.compress(json.dumps(payload).encode()),
                         headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})


def margin(api, **params) -> dict:
    response = api.http.get("/v1/margin", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def rows_by(report: dict, *keys: str) -> dict:
    return {tuple(row[k] for k in keys) if len(keys) > 1 else row[keys[0]]: row for row in report["rows"]}


def parse_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


# -- customers -------------------------------------------------------------------------------------


def test_customers_put_get_list_and_plan_history(api):
    first = put_customer(api, "acme", name="Acme", effective_from="2026-01-01",
                         plan={"name": "pro", "pricing_model": "per_unit", "unit_revenue_usd": "2.50"})
    assert first.status_code == 200, first.text
    assert first.json() == {
        "tenant_id": "acme", "name": "Acme", "seats": None,
        "plan": {"name": "pro", "pricing_model": "per_unit", "unit_revenue_usd": "2.50"},
        "history": [{"effective_from": "2026-01-01", "seats": None,
                     "plan": {"name": "pro", "pricing_model": "per_unit", "unit_revenue_usd": "2.50"}}]}
    # A change from a later day keeps the earlier one; a plan starting in the future is not in force
    # yet; seats carry over to a new plan unless given.
    later = put_customer(api, "acme", plan={"name": "team", "pricing_model": "per_seat", "seat_revenue_usd": "20"},
                         seats=5, effective_from="2026-02-01").json()
    future = (today() + timedelta(days=40)).isoformat()
    put_customer(api, "acme", plan={"name": "big", "pricing_model": "flat", "base_revenue_usd": "999"},
                 effective_from=future).raise_for_status()
    got = api.http.get("/v1/customers/acme").json()
    assert [(s["effective_from"], s["plan"]["name"], s["seats"]) for s in got["history"]] == [
        ("2026-01-01", "pro", None), ("2026-02-01", "team", 5), (future, "big", 5)]
    assert got["plan"] == later["plan"] == {"name": "team", "pricing_model": "per_seat", "seat_revenue_usd": "20"}
    assert got["seats"] == 5 and got["name"] == "Acme"
    # Seats alone keep the plan in force; the name alone changes nothing else.
    put_customer(api, "acme", seats=7, effective_from="2026-03-01").raise_for_status()
    renamed = put_customer(api, "acme", name="Acme Inc").json()
    assert renamed["name"] == "Acme Inc" and renamed["seats"] == 7 and renamed["plan"]["name"] == "team"
    # Ids with a slash, percent-encoded; a customer without a plan.
    assert put_customer(api, "org%2Fteam", name="Org").json()["tenant_id"] == "org/team"
    assert api.http.get("/v1/customers/org%2Fteam").json()["plan"] is None
    listed = api.http.get("/v1/customers").json()["customers"]
    assert [c["tenant_id"] for c in listed] == ["acme", "org/team"]
    missing = api.http.get("/v1/customers/globex")
    assert missing.status_code == 404 and "globex" in missing.json()["detail"]


def test_customers_are_per_project(api):
    put_customer(api, "acme", name="Acme").raise_for_status()
    other = api.server.project()
    try:
        assert other.http.get("/v1/customers").json() == {"customers": []}
        assert other.http.get("/v1/customers/acme").status_code == 404
    finally:
        other.http.close()


@pytest.mark.parametrize("body, field", [
    ({"plan": {"name": "p", "pricing_model": "per_unit"}}, "unit_revenue_usd"),  # a plan without its amounts
    ({"plan": {"name": "p", "pricing_model": "hybrid", "base_revenue_usd": "10"}}, "included_units"),
    ({"plan": {"name": "p", "pricing_model": "per_minute", "unit_revenue_usd": "1"}}, "pricing_model"),
    ({"plan": {"name": "p", "pricing_model": "per_unit", "unit_revenue_usd": "-1"}}, "unit_revenue_usd"),
    ({"plan": {"name": "p", "pricing_model": "per_unit", "unit_revenue_usd": "NaN"}}, "unit_revenue_usd"),
    ({"plan": {"name": "p", "pricing_model": "per_unit", "unit_revenue_usd": "Infinity"}}, "unit_revenue_usd"),
    ({"plan": {"name": "p", "pricing_model": "per_unit", "unit_revenue_usd": 2.5}}, "unit_revenue_usd"),  # a float
    ({"plan": {"name": "p", "pricing_model": "per_unit", "unit_revenue_usd": "1e999999999"}}, "unit_revenue_usd"),
    ({"plan": {"name": "p", "pricing_model": "per_unit", "unit_revenue_usd": "0.0000000000000001"}},
     "unit_revenue_usd"),
    ({"plan": {"name": "p", "pricing_model": "usage_based", "markup": "-1.5"}}, "markup"),
    ({"plan": {"name": "p", "pricing_model": "per_unit", "unit_revenue_usd": "1", "colour": "red"}}, "colour"),
    ({"plan": {"name": "", "pricing_model": "flat", "base_revenue_usd": "1"}}, "name"),
    ({"plan": {"name": "p", "pricing_model": "per_seat", "seat_revenue_usd": "10"}}, "seats"),  # no seats
    ({"seats": -1}, "seats"),
    ({"seats": 3}, "plan"),  # seats for a customer without a plan
    ({"effective_from": "2026-02-30"}, "effective_from"),
    ({"effective_from": "next week"}, "effective_from"),
    ({"name": "nul\x00"}, "name"),
    ({"nmae": "typo"}, "nmae"),
])
def test_bad_customers_are_422_naming_the_field_and_store_nothing(api, body, field):
    response = put_customer(api, "acme", **body)
    assert response.status_code == 422, response.text
    assert field in json.dumps(response.json()["detail"])
    assert api.http.get("/v1/customers/acme").status_code == 404


# -- runs ------------------------------------------------------------------------------------------


def test_resolve_is_idempotent_and_refuses_a_contradiction(api):
    first = api.http.post("/v1/runs/ticket-1/resolve", json={"outcome": "resolved", "tenant_id": "acme",
                                                              "agent_id": "bot", "revenue_usd": "4.5"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["run_id"] == "ticket-1" and body["tenant_id"] == "acme" and body["agent_id"] == "bot"
    assert body["outcome"] == "resolved" and body["revenue_usd"] == "4.5" and body["duplicate"] is False
    assert body["resolved_at"].endswith("Z")
    again = api.http.post("/v1/runs/ticket-1/resolve", json={"outcome": "resolved"}).json()
    assert again["duplicate"] is True and again["resolved_at"] == body["resolved_at"] and again["revenue_usd"] == "4.5"
    conflict = api.http.post("/v1/runs/ticket-1/resolve", json={"outcome": "failed"})
    assert conflict.status_code == 409 and "already resolved as 'resolved'" in conflict.json()["detail"]
    # The same idempotency key is the same resolution, whatever else it says.
    keyed = {"outcome": "escalated", "idempotency_key": "job-7#resolve"}
    assert api.http.post("/v1/runs/ticket-2/resolve", json=keyed).json()["duplicate"] is False
    retried = api.http.post("/v1/runs/ticket-2/resolve", json={**keyed, "outcome": "resolved"}).json()
    assert retried["duplicate"] is True and retried["outcome"] == "escalated"
    # A run id with a slash; a run nobody has seen (recorded; its events add up when they come).
    assert api.http.post("/v1/runs/batch%2F9/resolve", json={"outcome": "failed"}).json()["run_id"] == "batch/9"


@pytest.mark.parametrize("body, field", [
    ({"outcome": "done"}, "outcome"),
    ({}, "outcome"),
    ({"outcome": "resolved", "revenue_usd": "-1"}, "revenue_usd"),
    ({"outcome": "resolved", "revenue_usd": "NaN"}, "revenue_usd"),
    ({"outcome": "resolved", "revenue_usd": 1.5}, "revenue_usd"),
    ({"outcome": "resolved", "resolved_at": "2999-01-01T00:00:00Z"}, "resolved_at"),
    ({"outcome": "resolved", "resolved_at": "yesterday"}, "resolved_at"),
    ({"outcome": "resolved", "tenant_id": ""}, "tenant_id"),
    ({"outcome": "resolved", "tenant_id": "a\x00"}, "tenant_id"),
    ({"outcome": "resolved", "why": "because"}, "why"),
])
def test_bad_resolutions_are_422(api, body, field):
    response = api.http.post("/v1/runs/r-bad/resolve", json=body)
    assert response.status_code == 422, response.text
    assert field in json.dumps(response.json()["detail"])
    assert margin(api, group_by="run")["total"]["runs"] == 0  # nothing stored


# -- margin ----------------------------------------------------------------------------------------


def _acme_and_globex(api) -> None:
    """acme: $2 per run (any outcome); globex: per resolution, $5. Three runs of two events each,
    and an event outside any run."""
    for tenant, plan in (("acme", {"name": "pro", "pricing_model": "per_unit", "unit_revenue_usd": "2"}),
                         ("globex", {"name": "pay", "pricing_model": "per_resolution", "unit_revenue_usd": "5"})):
        put_customer(api, tenant, plan=plan, effective_from=month_start()).raise_for_status()
    events = [event(tenant_id=t, run_id=r, agent_id=a) for t, r, a in (
        ("acme", "a-1", "bot"), ("acme", "a-1", "bot"), ("acme", "a-2", "bot"), ("acme", "a-2", "bot"),
        ("globex", "g-1", "helper"), ("globex", "g-1", "helper"))]
    events.append(event(tenant_id="acme"))  # no run
    answer = ingest(api, events, [{"run_id": "a-1", "outcome": "resolved"}, {"run_id": "a-2", "outcome": "failed"},
                                  {"run_id": "g-1", "outcome": "escalated"}]).json()
    assert answer["accepted"] == 7 and answer["resolutions_accepted"] == 3, answer


def test_margin_by_tenant_and_run_exact(api):
    _acme_and_globex(api)
    report = margin(api, group_by="tenant,run")
    assert report["group_by"] == ["tenant", "run"]
    assert report["since"] == month_start() and report["until"] == (today() + timedelta(days=1)).isoformat()
    rows = rows_by(report, "tenant", "run")
    # acme: a-1 and a-2 earn $2 each (per_unit: whatever the outcome), each cost 2 x 0.0028.
    assert rows[("acme", "a-1")]["revenue_usd"] == "2" and rows[("acme", "a-1")]["cost_usd"] == str(2 * COST)
    assert rows[("acme", "a-1")]["margin_usd"] == str(2 - 2 * COST) and rows[("acme", "a-1")]["resolved"] == 1
    assert rows[("acme", "a-2")]["failed"] == 1 and rows[("acme", "a-2")]["revenue_usd"] == "2"
    assert rows[("acme", None)]["cost_usd"] == str(COST) and rows[("acme", None)]["revenue_usd"] == "0"
    # globex: escalated, so nothing under per_resolution; its cost counts.
    assert rows[("globex", "g-1")]["revenue_usd"] == "0" and rows[("globex", "g-1")]["margin_usd"] == str(-2 * COST)
    assert rows[("globex", "g-1")]["margin_pct"] is None and rows[("globex", "g-1")]["escalated"] == 1
    total = report["total"]
    assert total["revenue_usd"] == "4" and total["cost_usd"] == str(7 * COST) and total["margin_usd"] == str(4 - 7 * COST)
    assert total["runs"] == 3 and total["resolved"] == 1 and total["resolution_rate"] == "0.3333"
    assert total["cost_per_resolved_run_usd"] == str(7 * COST)
    assert total["calls"] == 7 and total["input_tokens"] == 7000 and total["output_tokens"] == 700
    # Any grouping adds up to the same total, exactly.
    for groups in (["tenant"], ["agent"], ["model", "day"], ["run", "agent", "week"], ["month"]):
        grouped = margin(api, group_by=groups)  # repeated group_by parameters
        assert grouped["group_by"] == groups and grouped["total"] == total
        for measure in ("revenue_usd", "cost_usd", "margin_usd"):
            assert sum(Decimal(r[measure]) for r in grouped["rows"]) == Decimal(total[measure])
    assert margin(api, group_by="")["rows"][0]["revenue_usd"] == "4"  # no groups: the total alone
    assert margin(api, tenant_id="globex")["total"]["revenue_usd"] == "0"
    assert margin(api, since="2099-01-01", until="2099-02-01")["total"]["calls"] == 0


def test_margin_as_csv(api):
    _acme_and_globex(api)
    report = margin(api, group_by="tenant,run")
    response = api.http.get("/v1/margin", params={"group_by": "tenant,run"}, headers={"Accept": "text/csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    table = parse_csv(response.text)
    assert table[0] == ["tenant", "run", *MARGIN_MEASURES]
    assert len(table) == 1 + len(report["rows"]) + 1
    for line, row in zip(table[1:-1], report["rows"]):
        assert line == [("" if row[k] is None else str(row[k])) for k in ("tenant", "run", *MARGIN_MEASURES)]
    assert table[-1][:2] == ["TOTAL", ""]
    assert table[-1][2:] == [("" if report["total"][m] is None else str(report["total"][m])) for m in MARGIN_MEASURES]
    assert sum(Decimal(line[2]) for line in table[1:-1]) == Decimal(table[-1][2]) == 4
    # Content negotiation: CSV only when preferred to JSON.
    for accept, is_csv in (("text/csv;q=0.9, application/json", False), ("application/json;q=0.5, text/csv", True),
                           ("*/*", False), ("text/csv, */*", True), ("application/json, text/csv", False)):
        got = api.http.get("/v1/margin", headers={"Accept": accept})
        assert got.headers["content-type"].startswith("text/csv" if is_csv else "application/json"), accept


@pytest.mark.parametrize("params, reason", [
    ({"group_by": "planet"}, "cannot group by 'planet'"),
    ({"group_by": "tenant,tenant"}, "named twice"),
    ({"since": "2026-13-01"}, "since"),
    ({"since": "last week"}, "since"),
    ({"until": "9999-12-31T23:00:00"}, "until"),
    ({"since": "999999d"}, "since"),
    ({"since": "2026-03-01", "until": "2026-02-01"}, "before since"),
    ({"since": "2000-01-01", "until": "2030-01-01"}, "3660"),
])
def test_bad_margin_queries_are_422(api, params, reason):
    for accept in ("application/json", "text/csv"):
        response = api.http.get("/v1/margin", params=params, headers={"Accept": accept})
        assert response.status_code == 422, response.text
        assert reason in response.json()["detail"]


# -- leaks -----------------------------------------------------------------------------------------


def _leaking(api) -> None:
    """hooli: $1 a month, and $2 of calls today; acme: $0.001 per run, and a run costing 0.0028."""
    put_customer(api, "hooli", plan={"name": "basic", "pricing_model": "flat", "base_revenue_usd": "1"},
                 effective_from=month_start()).raise_for_status()
    put_customer(api, "acme", plan={"name": "cheap", "pricing_model": "per_unit", "unit_revenue_usd": "0.001"},
                 effective_from=month_start()).raise_for_status()
    big = {"input_tokens": 1_000_000, "output_tokens": 0}  # $2
    answer = ingest(api, [event(tenant_id="hooli", usage=big), event(tenant_id="acme", run_id="t-1", agent_id="bot")],
                    [{"run_id": "t-1", "outcome": "resolved"}]).json()
    assert answer["accepted"] == 2 and answer["resolutions_accepted"] == 1


def test_leaks_json_and_csv(api):
    _leaking(api)
    response = api.http.get("/v1/leaks")
    assert response.status_code == 200, response.text
    leaks = response.json()["leaks"]
    by_rule = {(leak["rule"], leak["subject_id"]): leak for leak in leaks}
    over = by_rule[("cost_over_revenue", "hooli")]
    assert over["subject"] == "customer" and over["tenant_id"] == "hooli" and over["since"] == today().isoformat()
    numbers = over["numbers"]
    assert numbers["cost_usd"] == "2" and Decimal(numbers["revenue_usd"]) < 1
    assert Decimal(numbers["margin_usd"]) == Decimal(numbers["revenue_usd"]) - 2
    assert "hooli costs more than its plan brings in" in over["message"]
    run = by_rule[("run_over_unit_revenue", "t-1")]
    assert run["subject"] == "run" and run["tenant_id"] == "acme"
    assert run["numbers"] == {"cost_usd": EVENT_COST, "revenue_usd": "0.001", "outcome": "resolved"}
    assert ("cost_spike", "hooli") not in by_rule  # $2 on its first day: no baseline to be above yet

    csv_answer = api.http.get("/v1/leaks", headers={"Accept": "text/csv"})
    assert csv_answer.headers["content-type"].startswith("text/csv")
    table = parse_csv(csv_answer.text)
    header = table[0]
    assert header[:6] == ["rule", "subject", "subject_id", "tenant_id", "since", "message"]
    assert [line[0] for line in table[1:]] == [leak["rule"] for leak in leaks]
    line = next(line for line in table[1:] if line[0] == "run_over_unit_revenue")
    assert line[header.index("cost_usd")] == EVENT_COST and line[header.index("outcome")] == "resolved"

    # Settings are taken (and checked: see below).
    quieter = api.http.get("/v1/leaks", params={"spike_min_usd": "5", "margin_floor_pct": "50",
                                                "spike_window_days": 7, "projection_days": 3})
    assert quieter.status_code == 200 and ("cost_over_revenue", "hooli") in {
        (leak["rule"], leak["subject_id"]) for leak in quieter.json()["leaks"]}


def test_no_leaks_is_an_empty_list_and_a_csv_header(api):
    assert api.http.get("/v1/leaks").json() == {"leaks": []}
    assert parse_csv(api.http.get("/v1/leaks", headers={"Accept": "text/csv"}).text)[0][0] == "rule"


@pytest.mark.parametrize("params, field", [
    ({"margin_floor_pct": "-5"}, "margin_floor_pct"),
    ({"spike_factor": "NaN"}, "spike_factor"),
    ({"spike_factor": "lots"}, "spike_factor"),
    ({"spike_min_usd": "1e999999999"}, "spike_min_usd"),
    ({"spike_window_days": "0"}, "spike_window_days"),
    ({"projection_days": "400"}, "projection_days"),
])
def test_bad_leak_settings_are_422(api, params, field):
    response = api.http.get("/v1/leaks", params=params)
    assert response.status_code == 422, response.text
    assert field in json.dumps(response.json()["detail"])


# -- ingest ----------------------------------------------------------------------------------------


def test_ingest_resolutions_validated_one_by_one(api):
    put_customer(api, "acme", plan={"name": "pro", "pricing_model": "per_unit", "unit_revenue_usd": "3"},
                 effective_from=month_start()).raise_for_status()
    api.http.post("/v1/runs/old/resolve", json={"outcome": "resolved"}).raise_for_status()
    resolved_at = (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat()
    answer = ingest(api, [event(tenant_id="acme", run_id="r-1"), {"event_id": "bad"}], [
        {"run_id": "r-1", "outcome": "resolved", "tenant_id": "acme", "resolved_at": resolved_at,
         "revenue_usd": "7.25", "idempotency_key": "k-1", "agent_id": None, "newer_field": 1},
        {"run_id": "r-1", "outcome": "resolved"},  # the same again: a duplicate
        {"run_id": "old", "outcome": "failed"},  # contradicts the stored resolution
        {"run_id": "r-2", "outcome": "won"},
        {"run_id": "r-3", "outcome": "failed", "revenue_usd": 5},  # money is a decimal string
        {"run_id": "r-4", "outcome": "failed", "revenue_usd": "-5"},
        {"run_id": "r-5", "outcome": "failed", "resolved_at": "2999-01-01T00:00:00Z"},
        {"outcome": "failed"},
        "r-6",
    ]).json()
    assert answer["accepted"] == 1 and answer["duplicates"] == 0 and len(answer["rejected"]) == 1
    assert answer["resolutions_accepted"] == 1 and answer["resolutions_duplicates"] == 1
    reasons = {r["index"]: r["reason"] for r in answer["rejected_resolutions"]}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7, 8]
    assert "already resolved as 'resolved'" in reasons[2] and "outcome" in reasons[3]
    assert "revenue_usd" in reasons[4] and "revenue_usd" in reasons[5] and "resolved_at" in reasons[6]
    assert "run_id" in reasons[7] and "object" in reasons[8]
    row = rows_by(margin(api, group_by="run"), "run")["r-1"]
    assert row["revenue_usd"] == "7.25" and row["cost_usd"] == EVENT_COST  # the resolve-time revenue wins
    # Without `resolutions`, the answer is what it always was.
    assert ingest(api, [event()]).json() == {"accepted": 1, "duplicates": 0, "unpriced": 0, "rejected": []}
    bad = ingest(api, [], {"run_id": "x"})
    assert bad.status_code == 400 and "resolutions" in bad.json()["detail"]


def test_a_run_resolved_before_its_events_adds_up(api):
    put_customer(api, "acme", plan={"name": "pro", "pricing_model": "per_unit", "unit_revenue_usd": "1"},
                 effective_from=month_start()).raise_for_status()
    first = ingest(api, [], [{"run_id": "early", "outcome": "resolved", "tenant_id": "acme"}]).json()
    assert first["resolutions_accepted"] == 1
    assert ingest(api, [event(tenant_id="acme", run_id="early") for _ in range(3)]).json()["accepted"] == 3
    row = rows_by(margin(api, group_by="tenant,run"), "tenant", "run")[("acme", "early")]
    assert row["revenue_usd"] == "1" and row["cost_usd"] == str(3 * COST) and row["calls"] == 3 and row["resolved"] == 1


def test_batch_size_counts_resolutions(api):
    resolutions = [{"run_id": f"r{i}", "outcome": "resolved"} for i in range(10_001)]
    response = ingest(api, [], resolutions)
    assert response.status_code == 413 and "resolutions" in response.json()["detail"]


# -- keys, schema ----------------------------------------------------------------------------------


def test_report_answers_are_what_their_response_models_make(api):
    """The report routes encode their own dicts (server/wire.Answer) without FastAPI's pass
    through `jsonable_encoder` and the response model: each answer is JSON, and exactly what
    its documented model makes of it, in every grouping."""
    _leaking(api)
    unpriced = event(tenant_id="acme", model="tm-no-such-model", request_model="tm-no-such-model")
    ingest(api, [unpriced, event(tenant_id="acme", error="RateLimitError"), event(tenant_id=None, run_id="t-2")]
           ).raise_for_status()
    cases = [("/v1/usage", {"group_by": "tenant_id,model", "since": "1d"}, UsageOut, "rows"),
             ("/v1/usage", {"group_by": "run_id,day", "since": "1d"}, UsageOut, "rows"),
             ("/v1/usage", {"group_by": "", "since": "1d"}, UsageOut, "rows"),
             ("/v1/margin", {"group_by": "tenant,model"}, MarginOut, "rows"),
             ("/v1/margin", {"group_by": "run,agent,day"}, MarginOut, "rows"),
             ("/v1/leaks", {}, LeaksOut, "leaks"),
             ("/v1/customers", {}, CustomersOut, "customers")]
    for path, params, model, items in cases:
        response = api.http.get(path, params=params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body[items], (path, params, body)
        assert model.model_validate(body).model_dump(mode="json") == body, (path, params)
    usage = api.http.get("/v1/usage", params={"group_by": "tenant_id", "since": "1d"}).json()["rows"]
    assert [list(row) for row in usage][0] == ["tenant_id", "calls", "input_tokens", "output_tokens",
                                               "cache_read_tokens", "cost_usd", "unpriced", "errors"]
    assert {row["tenant_id"]: (row["calls"], row["errors"], row["unpriced"]) for row in usage} == {
        None: (1, 0, 0), "acme": (3, 1, 1), "hooli": (1, 0, 0)}


def test_business_routes_need_a_key(server):
    with server.client() as anonymous:
        for method, path in (("GET", "/v1/customers"), ("GET", "/v1/customers/acme"), ("PUT", "/v1/customers/acme"),
                             ("POST", "/v1/runs/r/resolve"), ("GET", "/v1/margin"), ("GET", "/v1/leaks")):
            assert anonymous.request(method, path, json={}).status_code == 401, path


def test_openapi_documents_the_business_routes(api):
    schema = api.http.get("/openapi.json").json()
    paths = schema["paths"]
    assert {"/v1/customers", "/v1/customers/{tenant_id}", "/v1/runs/{run_id}/resolve", "/v1/margin",
            "/v1/leaks"} <= set(paths)
    assert set(paths["/v1/margin"]["get"]["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    assert "text/csv" in paths["/v1/leaks"]["get"]["responses"]["200"]["content"]
    components = schema["components"]["schemas"]
    for name in ("CustomerIn", "PlanIn", "CustomerOut", "ResolveIn", "ResolutionOut", "MarginOut", "LeaksOut",
                 "WireResolution"):
        assert name in components, name
    assert components["PlanIn"]["properties"]["pricing_model"]["enum"] == [
        "per_unit", "per_resolution", "usage_based", "per_seat", "flat", "hybrid"]
    assert "rejected_resolutions" in components["IngestResult"]["properties"]


# -- an agent --------------------------------------------------------------------------------------


def test_an_agent_resolves_through_its_batches_and_reads_through_remote_ledger(api, tmp_path):
    errors: list[BaseException] = []
    meter = Meter(MeterConfig(url=f"{api.server.base}/v1/ingest", api_key=api.key, flush_interval=0.05,
                              spool_dir=str(tmp_path / "spool"), on_error=errors.append))
    try:
        customer = meter.upsert_customer("acme", name="Acme", effective_from=today().replace(day=1),
                                         plan=Plan("pro", "per_resolution", unit_revenue_usd=Decimal("4")))
        assert isinstance(customer, Customer) and customer.plan.unit_revenue_usd == Decimal("4")
        assert api.http.get("/v1/customers/acme").json()["plan"]["unit_revenue_usd"] == "4"
        with pytest.raises(PlanError, match="unit_revenue_usd"):  # checked before anything is sent
            meter.upsert_customer("acme", plan={"name": "x", "pricing_model": "per_unit"})
        with pytest.raises(PlanError, match="seats"):  # refused by the server
            meter.upsert_customer("globex", seats=3)

        for n, outcome in enumerate(("resolved", "escalated")):
            with meter.run(f"ticket-{n}", tenant="acme", agent="support-bot") as run:
                meter.track_manually(provider="acme-ai", model="tm-test-model", input_tokens=1000, output_tokens=100)
                meter.track_manually(provider="acme-ai", model="tm-test-model", input_tokens=1000, output_tokens=100,
                                     idempotency_key=f"ticket-{n}#step-2")
                run.resolve(outcome)
        meter.resolve("ticket-0", "resolved")  # again, the same way: one resolution
        assert meter.flush(30)
        meter.resolve("ticket-0", "failed")  # a contradiction: refused by the server, reported
        meter.track_manually(provider="acme-ai", model="tm-test-model", input_tokens=1000, output_tokens=100,
                             tenant_id="acme", run_id="ticket-1", idempotency_key="ticket-1#step-2")  # a retry
        assert meter.flush(30)

        report = meter.margin(("tenant", "run"))
        assert isinstance(report, MarginReport)
        rows = {(r.key["tenant"], r.key["run"]): r for r in report.rows}
        assert rows[("acme", "ticket-0")].revenue_usd == 4 and rows[("acme", "ticket-0")].resolved == 1
        assert rows[("acme", "ticket-1")].revenue_usd == 0 and rows[("acme", "ticket-1")].escalated == 1
        assert rows[("acme", "ticket-0")].cost_usd == rows[("acme", "ticket-1")].cost_usd == 2 * COST
        assert report.total.margin_usd == 4 - 4 * COST and report.total.cost_per_resolved_run == 4 * COST
        assert report.to_dict() == margin(api, group_by="tenant,run")  # the same report as the server's
        assert meter.margin("agent", since=today(), until=today() + timedelta(days=1)).total.runs == 2

        leaks = meter.leaks(LeakSettings(margin_floor_pct=Decimal("99.9")))
        assert leaks and all(isinstance(leak, Leak) for leak in leaks)
        floors = [leak for leak in leaks if leak.rule == "margin_below_floor"]
        assert {leak.subject for leak in floors} == {"customer", "agent"}
        assert all(isinstance(leak.numbers["cost_usd"], Decimal) for leak in floors)
        assert [leak.to_dict() for leak in leaks] == api.http.get(
            "/v1/leaks", params={"margin_floor_pct": "99.9"}).json()["leaks"]

        assert [c.tenant_id for c in meter.customers()] == ["acme"]
        assert meter.customer("acme").name == "Acme" and meter.customer("nobody") is None
        refused = [e for e in errors if isinstance(e, DeliveryError)]
        assert len(refused) == 1 and "already resolved as 'resolved'" in str(refused[0])
        assert meter.stats()["rejected"] == 1
    finally:
        meter.shutdown()


def test_remote_ledger_resolve_and_errors(api):
    with RemoteLedger(f"{api.server.base}/v1/ingest", api.key) as ledger:
        done = ledger.resolve("r-1", "resolved", revenue_usd="2", tenant_id="acme")
        assert done.outcome == "resolved" and done.revenue_usd == Decimal("2") and not done.duplicate
        assert ledger.resolve("r-1", "resolved").duplicate
        with pytest.raises(RunAlreadyResolved, match="already resolved"):
            ledger.resolve("r-1", "failed")
        with pytest.raises(PlanError, match="cannot group by"):
            ledger.margin(["planet"])
        with pytest.raises(ValueError, match="outcome"):
            ledger.resolve("r-2", "won")
    with RemoteLedger(f"{api.server.base}/v1/ingest", "tm_wrong_key") as stranger:
        with pytest.raises(PermissionError, match="API key"):
            stranger.customers()
    with RemoteLedger(f"http://127.0.0.1:{free_port()}/v1/ingest", api.key, timeout=2) as nowhere:
        with pytest.raises(LedgerUnavailable):
            nowhere.margin()


# -- never a 5xx -----------------------------------------------------------------------------------

_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)  # anything a URL can carry
_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                     max_leaves=6)
_AMOUNT = st.sampled_from(["1", "-1", "0", "1e999999999", "NaN", "-Infinity", "0.1234567890123456", "1E+3", " 2 ",
                           "", "9" * 70]) | _JSON
_PLAN = st.fixed_dictionaries({}, optional={
    "name": _TEXT | _JSON, "pricing_model": st.sampled_from(["per_unit", "per_resolution", "usage_based", "per_seat",
                                                             "flat", "hybrid"]) | _JSON,
    "unit_revenue_usd": _AMOUNT, "base_revenue_usd": _AMOUNT, "seat_revenue_usd": _AMOUNT, "markup": _AMOUNT,
    "included_units": st.integers() | _JSON, "input_rate_mtok": _AMOUNT, "output_rate_mtok": _AMOUNT})
_CUSTOMER = st.fixed_dictionaries({}, optional={
    "name": _TEXT | _JSON, "plan": _PLAN | _JSON, "seats": st.integers() | _JSON,
    "effective_from": st.sampled_from(["2026-12-01", "0001-01-01", "9999-12-31", "2026-02-29"]) | _JSON})
_RESOLUTION = st.fixed_dictionaries({}, optional={
    "outcome": st.sampled_from(["resolved", "escalated", "failed"]) | _JSON, "revenue_usd": _AMOUNT,
    "tenant_id": _TEXT | _JSON, "agent_id": _TEXT | _JSON, "idempotency_key": _TEXT | _JSON,
    "resolved_at": st.sampled_from(["2026-12-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                                    "2026-12-01"]) | _JSON, "run_id": _TEXT | _JSON})
_WHEN = st.sampled_from(["2026-12-01", "7d", "999999d", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59",
                         "2026-13-01", ""]) | _TEXT


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tenant=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12), customer=_CUSTOMER,
       resolution=_RESOLUTION, batch=st.lists(_RESOLUTION | _JSON, max_size=4), group_by=_TEXT, since=_WHEN,
       until=_WHEN, floor=_TEXT)
def test_no_input_makes_a_5xx(api, tenant, customer, resolution, batch, group_by, since, until, floor):
    segment = quote(tenant, safe="")
    answers = [
        api.http.put(f"/v1/customers/{segment}", content=json.dumps(customer),
                     headers={"Content-Type": "application/json"}),
        api.http.get(f"/v1/customers/{segment}"),
        api.http.post(f"/v1/runs/{segment}/resolve", content=json.dumps(resolution),
                      headers={"Content-Type": "application/json"}),
        ingest(api, [], batch),
        api.http.get("/v1/margin", params={"group_by": group_by, "since": since, "until": until,
                                           "tenant_id": tenant}),
        api.http.get("/v1/margin", params={"since": since}, headers={"Accept": "text/csv"}),
        api.http.get("/v1/leaks", params={"margin_floor_pct": floor, "spike_factor": floor}),
    ]
    for answer in answers:
        assert answer.status_code < 500, (answer.request.method, answer.request.url, answer.text)
