"""POST /v1/ingest on a real server, on SQLite and PostgreSQL: events stored and queried, once
each however often they arrive (retries, concurrent duplicates), bad events answered one by one
while the rest of the batch is kept, payload limits, gzip bombs, pricing on arrival."""

from __future__ import annotations

import gzip
import json
import os
import threading
import uuid
import zlib
from decimal import Decimal

import httpx

from .server_support import EVENT_COST, event

#: The fixtures (backend, server, api): a real server per database, and a project on it.
pytest_plugins = ["tests.server_harness"]

MiB = 1024 * 1024


def test_ingest_then_query_usage(api):
    events = [
        event(tenant_id="acme", run_id="r1", agent_id="support"),
        event(tenant_id="acme", run_id="r2", agent_id="support", usage={"input_tokens": 2000, "output_tokens": 50,
                                                                        "cache_read_tokens": 500}),
        event(tenant_id="globex", agent_id="search", error="RateLimitError", status_code=429, usage={}),
    ]
    response = api.ingest(events)
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 3, "duplicates": 0, "unpriced": 0, "rejected": []}
    plain = api.ingest([event(tenant_id="globex", model="tm-test-model")], gzip=False)
    assert plain.json()["accepted"] == 1

    rows = {r["tenant_id"]: r for r in api.usage(group_by="tenant_id")}
    assert rows["acme"] == {"tenant_id": "acme", "calls": 2, "input_tokens": 3000, "output_tokens": 150,
                            "cache_read_tokens": 500, "cost_usd": "0.0072", "unpriced": 0, "errors": 0}
    # 2,000 x $2 + 50 x $8 per million = 0.0044 (no cache price in the card: the input rate), + 0.0028
    assert rows["globex"]["calls"] == 2 and rows["globex"]["errors"] == 1
    assert rows["globex"]["cost_usd"] == EVENT_COST  # the refused call cost nothing

    by_agent = api.usage(group_by="tenant_id,agent_id,run_id", tenant_id="acme")
    assert [(r["agent_id"], r["run_id"], r["calls"]) for r in by_agent] == [("support", "r1", 1), ("support", "r2", 1)]
    [day] = api.usage(group_by="day,model")
    assert day["calls"] == 4 and day["model"] == "tm-test-model" and len(day["day"]) == 10
    assert api.usage(group_by="tenant_id", since="2099-01-01") == []
    assert sum(r["calls"] for r in api.usage(group_by="", since="1h", until="2099-01-01")) == 4
    assert api.http.get("/v1/usage", params={"group_by": "prompt"}).status_code == 422
    assert api.http.get("/v1/usage", params={"since": "last week"}).status_code == 422

    spend = api.spend("acme")
    assert spend["spent"] == {"per_hour": "0.0072", "per_day": "0.0072", "per_month": "0.0072", "total": "0.0072"}


def test_a_retried_batch_is_stored_once(api):
    batch = [event() for _ in range(5)]
    first = api.ingest(batch).json()
    again = api.ingest(batch).json()
    assert (first["accepted"], first["duplicates"]) == (5, 0)
    assert (again["accepted"], again["duplicates"]) == (0, 5)
    repeated = event()
    assert api.ingest([repeated, repeated]).json() == {"accepted": 1, "duplicates": 1, "unpriced": 0, "rejected": []}
    assert api.count() == 6
    assert api.spend("acme")["spent"]["total"] == str(Decimal(EVENT_COST) * 6)


def test_concurrent_retries_store_and_settle_each_event_once(api):
    """Eight clients post the same 150 events at once (overlapping, in different orders):
    each event is stored once, counted once in the spend and taken off its lease once."""
    assert api.http.put("/v1/limits/acme", json={"limit_usd": "100", "frequency": "per_day"}).status_code == 200
    lease = api.http.post("/v1/leases", json={"tenant_id": "acme", "holder": "test", "want_usd": "10",
                                              "ttl_seconds": 120}).json()
    assert lease["granted_usd"] == "10"
    batch = [event(lease_id=lease["lease_id"]) for _ in range(150)]
    results, errors = [], []
    start = threading.Barrier(8)

    def post(i):
        mine = batch[::-1] if i % 2 else batch  # opposite orders: no deadlock either
        try:
            with api.server.client(api.key) as http:
                start.wait()
                body = gzip.compress(json.dumps({"events": mine}).encode())
                results.append(http.post("/v1/ingest", content=body, headers={"Content-Encoding": "gzip",
                                                                               "Content-Type": "application/json"}))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and all(r.status_code == 200 for r in results), [r.text for r in results]
    bodies = [r.json() for r in results]
    assert sum(b["accepted"] for b in bodies) == 150
    assert all(b["accepted"] + b["duplicates"] == 150 for b in bodies)
    assert api.count() == 150
    total = Decimal(EVENT_COST) * 150
    spend = api.spend("acme")
    assert Decimal(spend["spent"]["total"]) == total
    [state] = spend["limits"]
    assert Decimal(state["leased_usd"]) == Decimal("10") - total  # settled once, not eight times


def test_bad_events_are_answered_and_the_rest_kept(api):
    good_ids = []

    def ok(**fields):
        e = event(**fields)
        good_ids.append(e["event_id"])
        return e

    batch = [
        ok(),
        event(event_id=None),
        "not an event",
        event(usage={"input_tokens": -5}),
        ok(tags={"plan": "pro"}),
        event(cost_usd=0.25, priced=True),
        event(messages=[{"role": "user", "content": "hi"}]),
        event(tags={"prompt": "hi"}),
        event(timestamp="not a time"),
        ok(),
    ]
    response = api.ingest(batch)
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 3
    reasons = {r["index"]: r["reason"] for r in body["rejected"]}
    assert sorted(reasons) == [1, 2, 3, 5, 6, 7, 8]
    assert reasons[1].startswith("event_id: required")
    assert reasons[2] == "an event must be a JSON object"
    assert reasons[3].startswith("usage.input_tokens")
    assert reasons[5].startswith("cost_usd: must be a decimal string")
    assert reasons[6].startswith("messages: content fields are not accepted")
    assert reasons[7].startswith("tags.prompt: content fields are not accepted")
    assert reasons[8].startswith("timestamp")
    assert "hi" not in json.dumps(body)  # never echoes what was sent
    assert api.count() == 3


def test_bodies_that_are_not_a_batch(api):
    post = api.http.post
    json_type = {"Content-Type": "application/json"}
    assert post("/v1/ingest", content=b"{nope", headers=json_type).status_code == 400
    assert post("/v1/ingest", content=b"[]", headers=json_type).status_code == 400
    assert post("/v1/ingest", content=b'{"events": {}}', headers=json_type).status_code == 400
    bad_gzip = post("/v1/ingest", content=b"\x1f\x8b not really", headers={**json_type, "Content-Encoding": "gzip"})
    assert bad_gzip.status_code == 400 and "gzip" in bad_gzip.json()["detail"]
    assert post("/v1/ingest", content=b"{}", headers={**json_type, "Content-Encoding": "br"}).status_code == 415
    empty = api.ingest([])
    assert empty.status_code == 200 and empty.json()["accepted"] == 0


def test_payload_limits(api):
    too_many = api.ingest([{}] * 10_001)
    assert too_many.status_code == 413 and "10001 events" in too_many.json()["detail"]

    noise = os.urandom(5 * MiB + 1)  # incompressible: over 5 MiB as sent
    big = api.http.post("/v1/ingest", content=noise, headers={"Content-Encoding": "gzip"})
    assert big.status_code == 413

    def chunked():  # no Content-Length: refused while reading
        for _ in range(6):
            yield os.urandom(MiB)

    assert api.http.post("/v1/ingest", content=chunked(), headers={"Content-Encoding": "gzip"}).status_code == 413
    assert api.count() == 0


def test_a_gzip_bomb_is_refused(api):
    packer = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = b"".join(packer.compress(bytes(MiB)) for _ in range(64)) + packer.flush()  # 64 MiB in < 1 MiB
    assert len(bomb) < MiB
    response = api.http.post("/v1/ingest", content=bomb, headers={"Content-Encoding": "gzip",
                                                                  "Content-Type": "application/json"})
    assert response.status_code == 413
    assert "decompressed body is over the limit" in response.json()["detail"]
    assert api.http.get("/healthz").status_code == 200


def test_pricing_on_arrival(api):
    plain = event()
    priced_elsewhere = event(cost_usd="0.5", priced=True, price_source="genai-prices 0.2.3")
    provider_cost = event(provider_cost_usd="0.042")
    unknown = event(model="tm-no-such-model", request_model="tm-no-such-model")
    no_usage_error = event(usage={}, error="BadRequestError", status_code=400)
    body = api.ingest([plain, priced_elsewhere, provider_cost, unknown, no_usage_error]).json()
    assert body == {"accepted": 5, "duplicates": 0, "unpriced": 1, "rejected": []}
    [priced_models, unpriced_models] = sorted(api.usage(group_by="model"), key=lambda r: r["unpriced"])
    assert priced_models["cost_usd"] == str(Decimal(EVENT_COST) + Decimal("0.5") + Decimal("0.042"))
    assert unpriced_models == {"model": "tm-no-such-model", "calls": 1, "input_tokens": 1000, "output_tokens": 100,
                               "cache_read_tokens": 0, "cost_usd": "0", "unpriced": 1, "errors": 0}
    from sqlalchemy import select

    from tollmeter.store import schema

    e = schema.events
    with api.server.store.transaction() as conn:
        rows = {r.event_id: r for r in conn.execute(select(e).where(e.c.project_id == api.project))}
    assert rows[provider_cost["event_id"]].cost_usd == Decimal("0.042")
    assert rows[provider_cost["event_id"]].computed_cost_usd == Decimal(EVENT_COST)
    assert rows[provider_cost["event_id"]].price_source == "provider"
    assert rows[priced_elsewhere["event_id"]].price_source == "genai-prices 0.2.3"
    ours = rows[plain["event_id"]]
    assert ours.cost_usd == Decimal(EVENT_COST) and ours.priced
    assert ours.price_source.startswith("rate card prices-") and ours.price_model == "acme-ai/tm-test-model"
    assert rows[no_usage_error["event_id"]].cost_usd == 0 and rows[no_usage_error["event_id"]].priced


def test_an_agent_batch_as_the_agent_sends_it(api):
    """The agent's own wire form (LLMEvent.to_dict, HttpSink.encode) goes in as it is."""
    from tollmeter.events import LLMEvent, Usage
    from tollmeter.transport.http import HttpSink

    events = [LLMEvent(provider="acme-ai", model="tm-test-model", endpoint="chat.completions", tenant_id="acme",
                       usage=Usage(input_tokens=1000, output_tokens=100, cache_read_tokens=0),
                       tags={"plan": "pro"}).to_dict() for _ in range(3)]
    response = api.http.post("/v1/ingest", content=HttpSink.encode(events),
                             headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert response.json() == {"accepted": 3, "duplicates": 0, "unpriced": 0, "rejected": []}


def test_the_openapi_schema_is_served(server):
    schema = httpx.get(server.base + "/openapi.json").json()
    assert schema["info"]["title"] == "tollmeter"
    for path in ("/v1/ingest", "/v1/limits/{tenant_id}", "/v1/rate-limits/{tenant_id}",
                 "/v1/tenants/{tenant_id}/spend", "/v1/leases", "/v1/leases/{lease_id}", "/v1/usage"):
        assert path in schema["paths"], path
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    ingest = schema["paths"]["/v1/ingest"]["post"]
    assert ingest["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/IngestBatch")
    assert "lease_id" in schema["components"]["schemas"]["WireEvent"]["properties"]
    assert schema["components"]["schemas"]["LimitIn"]["properties"]["limit_usd"]["type"] == "string"


def test_event_ids_are_per_project(server):
    one, two = server.project(), server.project()
    shared = event(event_id=str(uuid.uuid4()))
    assert one.ingest([shared]).json()["accepted"] == 1
    assert two.ingest([shared]).json()["accepted"] == 1  # another project's event, not a duplicate
    assert one.count() == two.count() == 1


def test_a_batch_of_many_tenants(api):
    """2,000 tenants in one batch: 8,000 spend rows written in one transaction."""
    batch = [event(tenant_id=f"tenant-{i}") for i in range(2000)]
    assert api.ingest(batch).json()["accepted"] == 2000
    assert api.spend("tenant-1999")["spent"] == {"per_hour": EVENT_COST, "per_day": EVENT_COST,
                                                 "per_month": EVENT_COST, "total": EVENT_COST}
    assert len(api.usage(group_by="tenant_id")) == 2000


def test_an_event_older_than_the_retention_window_is_refused_not_counted_twice(api):
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)
    old = event(tenant_id="acme", timestamp=(now - timedelta(days=10)).isoformat())
    recent = event(tenant_id="acme")
    assert api.ingest([old, recent]).json()["accepted"] == 2
    view = api.server.store.for_project(api.project)
    assert view.remove_events_before(now - timedelta(days=3)) == 1  # the old one's raw copy is gone
    [total] = api.usage(group_by="")
    assert total["calls"] == 2  # the rollups keep it

    answer = api.ingest([old, recent, event(tenant_id="acme")]).json()  # the agent's spool resends both
    assert answer["accepted"] == 1 and answer["duplicates"] == 1
    assert [r["index"] for r in answer["rejected"]] == [0]
    assert "retention window" in answer["rejected"][0]["reason"]
    [total] = api.usage(group_by="")
    assert total["calls"] == 3  # not 4: the resent old event is not counted again
    assert api.spend("acme")["spent"]["total"] == str(Decimal(EVENT_COST) * 3)
