"""Limits, rate limits, spend and budget leases on a real server (SQLite and PostgreSQL),
including a lease refused when the limit is used, leases that never add up past a limit under
concurrency, and the agent's own client (limits/remote.py) against the server."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tollmeter.money import decimal_text

from .server_support import EVENT_COST, event

#: The fixtures (backend, server, api): a real server per database, and a project on it.
pytest_plugins = ["tests.server_harness"]


def test_limits_set_read_and_removed(api):
    http = api.http
    put = http.put("/v1/limits/acme", json={"limit_usd": "50", "frequency": "per_month"})
    assert put.status_code == 200
    assert put.json() == {"tenant_id": "acme", "limits": [{"frequency": "per_month", "limit_usd": "50",
                                                           "default": False}]}
    http.put("/v1/limits/acme", json={"limit_usd": "2.5", "frequency": "daily"}).raise_for_status()  # an alias
    http.put("/v1/limits/acme", json={"limit_usd": "60"}).raise_for_status()  # per_month by default: replaced
    assert http.get("/v1/limits/acme").json()["limits"] == [
        {"frequency": "per_day", "limit_usd": "2.5", "default": False},
        {"frequency": "per_month", "limit_usd": "60", "default": False},
    ]
    # The default limit, for tenants without their own ("*" as it is, or percent-encoded).
    http.put("/v1/limits/*", json={"limit_usd": "5", "frequency": "per_day"}).raise_for_status()
    assert http.get("/v1/limits/%2A").json()["limits"] == [{"frequency": "per_day", "limit_usd": "5", "default": False}]
    assert http.get("/v1/limits/globex").json() == {
        "tenant_id": "globex", "limits": [{"frequency": "per_day", "limit_usd": "5", "default": True}]}
    # Tenant ids with a slash, percent-encoded.
    http.put("/v1/limits/org%2Fteam", json={"limit_usd": "1"}).raise_for_status()
    assert http.get("/v1/limits/org%2Fteam").json()["tenant_id"] == "org/team"
    assert {(x["tenant_id"], x["frequency"]) for x in http.get("/v1/limits").json()["limits"]} == {
        ("*", "per_day"), ("acme", "per_day"), ("acme", "per_month"), ("org/team", "per_month")}

    assert http.delete("/v1/limits/acme", params={"frequency": "per_day"}).json() == {"removed": 1}
    assert http.delete("/v1/limits/acme").json() == {"removed": 1}
    assert http.get("/v1/limits/acme").json()["limits"][0]["default"] is True
    assert http.delete("/v1/limits/acme").json() == {"removed": 0}
    assert http.delete("/v1/limits/*", params={"frequency": "fortnightly"}).status_code == 422


@pytest.mark.parametrize("body", [
    {"limit_usd": 50.5},  # a float is not exact money
    {"limit_usd": "-1"},
    {"limit_usd": "NaN"},
    {"limit_usd": "lots"},
    {"limit_usd": "5", "frequency": "per_week"},
    {"limit_usd": "5", "limt": "typo"},
    {},
])
def test_bad_limits_are_422(api, body):
    assert api.http.put("/v1/limits/acme", json=body).status_code == 422


def test_an_integer_limit_is_exact_money(api):
    assert api.http.put("/v1/limits/acme", json={"limit_usd": 7}).json()["limits"][0]["limit_usd"] == "7"
    precise = api.http.put("/v1/limits/acme", json={"limit_usd": "0.000000001"}).json()
    assert precise["limits"][0]["limit_usd"] == "0.000000001"


def test_rate_limits(api):
    http = api.http
    assert http.get("/v1/rate-limits/acme").json() == {"tenant_id": "acme", "requests_per_minute": None,
                                                       "tokens_per_minute": None}
    put = http.put("/v1/rate-limits/acme", json={"requests_per_minute": 60, "tokens_per_minute": 200_000})
    assert put.json() == {"tenant_id": "acme", "requests_per_minute": 60, "tokens_per_minute": 200_000}
    assert http.get("/v1/rate-limits/acme").json()["tokens_per_minute"] == 200_000
    http.put("/v1/rate-limits/acme", json={"requests_per_minute": None, "tokens_per_minute": None}).raise_for_status()
    assert http.get("/v1/rate-limits/acme").json()["requests_per_minute"] is None
    assert http.put("/v1/rate-limits/acme", json={"requests_per_minute": -1}).status_code == 422
    assert http.put("/v1/rate-limits/*", json={"requests_per_minute": 1}).status_code == 422


def test_spend_follows_events_and_leases(api):
    http = api.http
    http.put("/v1/limits/acme", json={"limit_usd": "1", "frequency": "per_day"}).raise_for_status()
    http.put("/v1/limits/acme", json={"limit_usd": "20", "frequency": "total"}).raise_for_status()
    assert api.ingest([event() for _ in range(10)]).json()["accepted"] == 10
    spent = Decimal(EVENT_COST) * 10
    lease = http.post("/v1/leases", json={"tenant_id": "acme", "holder": "worker-1", "want_usd": "0.1",
                                          "need_usd": "0.01", "ttl_seconds": 30}).json()
    assert lease["granted_usd"] == "0.1"
    spend = api.spend("acme")
    day, total = spend["limits"]
    assert day == {"frequency": "per_day", "limit_usd": "1", "spent_usd": decimal_text(spent), "leased_usd": "0.1",
                   "remaining_usd": decimal_text(Decimal(1) - spent - Decimal("0.1")), "resets_at": day["resets_at"],
                   "default": False}
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).date().isoformat()
    assert day["resets_at"] == f"{tomorrow}T00:00:00Z"
    assert total["frequency"] == "total" and total["resets_at"] is None
    assert spend["spent"]["per_day"] == decimal_text(spent) == "0.028"


def test_leases_granted_extended_released_and_refused(api):
    http = api.http
    unlimited = http.post("/v1/leases", json={"tenant_id": "acme", "want_usd": "1"}).json()
    assert unlimited["unlimited"] is True and unlimited["lease_id"] is None and unlimited["limits"] == []
    assert unlimited["refused"] is False

    http.put("/v1/limits/acme", json={"limit_usd": "1", "frequency": "per_day"}).raise_for_status()
    http.put("/v1/rate-limits/acme", json={"requests_per_minute": 30}).raise_for_status()
    first = http.post("/v1/leases", json={"tenant_id": "acme", "holder": "w1", "want_usd": "0.1", "need_usd": "0.05",
                                          "ttl_seconds": 30}).json()
    assert (first["granted_usd"], first["remaining_usd"], first["unlimited"], first["refused"]) == (
        "0.1", "0.1", False, False)
    assert first["rate_limit"] == {"requests_per_minute": 30, "tokens_per_minute": None}
    assert first["limits"][0]["leased_usd"] == "0" and "remaining_usd" not in first["limits"][0]
    expires = datetime.fromisoformat(first["expires_at"].replace("Z", "+00:00"))
    assert timedelta(seconds=25) < expires - datetime.now(timezone.utc) <= timedelta(seconds=30)

    more = http.post("/v1/leases", json={"tenant_id": "acme", "holder": "w1", "want_usd": "0.1",
                                         "lease_id": first["lease_id"], "ttl_seconds": 3600}).json()
    assert more["lease_id"] == first["lease_id"] and more["remaining_usd"] == "0.2"
    capped = datetime.fromisoformat(more["expires_at"].replace("Z", "+00:00")) - datetime.now(timezone.utc)
    assert capped <= timedelta(seconds=300)  # ttl_seconds is cut to the longest lease

    # Events settle against the lease as they arrive.
    assert api.ingest([event(lease_id=first["lease_id"]) for _ in range(5)]).json()["accepted"] == 5
    [state] = api.spend("acme")["limits"]
    assert state["leased_usd"] == decimal_text(Decimal("0.2") - 5 * Decimal(EVENT_COST)) == "0.186"

    assert http.delete(f"/v1/leases/{first['lease_id']}").status_code == 204
    assert api.spend("acme")["limits"][0]["leased_usd"] == "0"
    assert http.delete(f"/v1/leases/{first['lease_id']}").status_code == 204  # again: nothing to do

    # The limit used up: a lease that needs budget is refused, with the limits as they stand.
    api.ingest([event(cost_usd="0.98", priced=True)])
    refused = http.post("/v1/leases", json={"tenant_id": "acme", "want_usd": "0.05", "need_usd": "0.03"}).json()
    assert refused["refused"] is True and refused["granted_usd"] == "0" and refused["lease_id"] is None
    [binding] = refused["limits"]
    assert Decimal(binding["spent_usd"]) == Decimal("0.98") + 5 * Decimal(EVENT_COST)
    small = http.post("/v1/leases", json={"tenant_id": "acme", "want_usd": "0.05", "need_usd": "0.001"}).json()
    assert small["refused"] is False and Decimal(small["granted_usd"]) >= Decimal("0.001")


@pytest.mark.parametrize("body", [
    {"tenant_id": "acme", "want_usd": "1", "need_usd": "2"},
    {"tenant_id": "*", "want_usd": "1"},
    {"tenant_id": "acme", "want_usd": 0.5},
    {"tenant_id": "acme", "want_usd": "1", "ttl_seconds": 0},
    {"want_usd": "1"},
])
def test_bad_lease_requests_are_422(api, body):
    assert api.http.post("/v1/leases", json=body).status_code == 422


def test_concurrent_leases_never_add_up_past_the_limit(api):
    """Twelve agents ask at once for 0.3 each of a $1 limit: three get it, the rest are refused
    (on PostgreSQL, grants of a tenant take a lock; on SQLite, BEGIN IMMEDIATE)."""
    api.http.put("/v1/limits/acme", json={"limit_usd": "1", "frequency": "per_day"}).raise_for_status()
    answers, start = [], threading.Barrier(12)

    def ask(i):
        with api.server.client(api.key) as http:
            start.wait()
            answers.append(http.post("/v1/leases", json={"tenant_id": "acme", "holder": f"agent-{i}",
                                                         "want_usd": "0.3", "need_usd": "0.3"}).json())

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    granted = [Decimal(a["granted_usd"]) for a in answers]
    assert len(answers) == 12 and sum(granted) <= 1
    assert sorted(granted, reverse=True)[:4] == [Decimal("0.3")] * 3 + [Decimal(0)]
    assert Decimal(api.spend("acme")["limits"][0]["leased_usd"]) == Decimal("0.9")


def test_the_agents_remote_budgets_against_the_server(api):
    """limits/remote.py (the agent's client of these endpoints) reads what the server says."""
    remote = pytest.importorskip("tollmeter.limits.remote")
    budgets = remote.RemoteBudgets(api.server.base + "/v1/ingest", api.key)
    try:
        budgets.set_limit("acme", "per_day", Decimal("2"))
        budgets.set_rate_limit("acme", 10, None)
        [limit] = budgets.limits_for("acme")
        assert (limit.frequency, limit.limit_usd, limit.default) == ("per_day", Decimal("2"), False)
        grant = budgets.grant("acme", "here", Decimal("0.5"), ttl=30.0, need=Decimal("0.1"))
        assert grant.lease_id and grant.granted_usd == Decimal("0.5") and not grant.unlimited
        assert budgets.rate_limit_for("acme").requests_per_minute == 10
        [state] = budgets.limit_states("acme")
        assert state.leased_usd == Decimal("0.5") and state.limit.limit_usd == Decimal("2")
        budgets.release(grant.lease_id)
        assert budgets.limit_states("acme")[0].leased_usd == 0
        assert budgets.remove_limit("acme") == 1
        assert budgets.grant("acme", "here", Decimal("1"), ttl=30.0).unlimited
    finally:
        budgets.close()


def test_a_lease_asked_by_fraction_of_the_limit(api):
    api.http.put("/v1/limits/acme", json={"limit_usd": "40", "frequency": "per_day"})
    answer = api.http.post("/v1/leases", json={"tenant_id": "acme", "want_usd": "0.01", "want_fraction": "0.05"})
    assert answer.status_code == 200 and answer.json()["granted_usd"] == "2"
    refused = api.http.post("/v1/leases", json={"tenant_id": "acme", "want_usd": "0.01", "want_fraction": "2"})
    assert refused.status_code == 422
