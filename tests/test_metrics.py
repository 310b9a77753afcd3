"""GET /metrics: the server's Prometheus metrics, read with prometheus_client's own parsers.

A real server per backend (SQLite, PostgreSQL) with two uvicorn workers, PROMETHEUS_MULTIPROC_DIR
set by the operator (PostgreSQL) or made by `tollmeter serve` itself (SQLite): every scrape must
answer the sum over both workers, whichever of them answers it. Counts are read per project (a
project of each test's own) or as differences around what a test did."""

from __future__ import annotations

import gzip
import json
import os
import secrets
import subprocess
import sys
from collections import defaultdict
from datetime import datetime, timezone

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from tollmeter.server import metrics
from tollmeter.server.ingest import OVERFLOW_REASON
from tollmeter.server.validation import Invalid, validate_event

from .server_support import RATE_CARD, Api, Server, database_for, event, free_port, wait_ready, write_card

pytest_plugins = ["tests.server_harness"]

TOKEN = "metrics-" + secrets.token_urlsafe(16)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def metered(request, tmp_path_factory) -> Server:
    """A server with a metrics token, two workers and prometheus-client's multiprocess mode."""
    if request.param == "postgres" and not os.environ.get("TOLLMETER_TEST_POSTGRES"):
        pytest.skip("TOLLMETER_TEST_POSTGRES is not set: no PostgreSQL to test against")
    url, drop = database_for(request.param)
    work = tmp_path_factory.mktemp(f"metrics-{request.param}")
    (work / "prom").mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLMETER_")}
    env.update(TOLLMETER_METRICS_TOKEN=TOKEN)
    if request.param == "postgres":  # a directory of the operator's; on SQLite `serve` makes its own
        env.update(PROMETHEUS_MULTIPROC_DIR=str(work / "prom"))
    log = work / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tollmeter.server", "serve", "--database-url", url, "--port", str(port),
             "--workers", "2", "--log-level", "warning", "--no-access-log",
             "--prices", write_card(f"metrics-prices-{port}.json", RATE_CARD)],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    server = wait_ready(Server(request.param, url, f"http://127.0.0.1:{port}", process, log, [drop]))
    yield server
    server.stop()


@pytest.fixture
def project(metered) -> Api:
    api = metered.project("m")
    yield api
    api.http.close()


def scrape(server: Server, token: str | None = TOKEN) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics, keyed by (name, labels); on a new connection each time, so
    that either worker may answer."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(server.base + "/metrics", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    out: dict[tuple[str, frozenset], float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name, frozenset(sample.labels.items())] = sample.value
    return out


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


# -- who may read them -----------------------------------------------------------------------------


def test_metrics_open_to_the_metrics_token_only(metered, project):
    base = metered.base + "/metrics"
    assert httpx.get(base).status_code == 401
    assert httpx.get(base, headers={"Authorization": "Bearer wrong"}).status_code == 401
    # A project's API key is one project's: the metrics span all of them.
    assert httpx.get(base, headers={"Authorization": f"Bearer {project.key}"}).status_code == 401
    assert httpx.get(base, headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    assert httpx.get(base, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_metrics_off_without_a_token(server):
    response = httpx.get(server.base + "/metrics", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 404
    assert "TOLLMETER_METRICS_TOKEN" in response.json()["detail"]


def test_openmetrics_when_the_scraper_asks(metered, project):
    assert project.ingest([event()]).status_code == 200
    response = httpx.get(metered.base + "/metrics", headers={
        "Authorization": f"Bearer {TOKEN}", "Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    families = {f.name: f for f in openmetrics_families(response.text)}
    ingested = [s for s in families["tollmeter_events_ingested"].samples
                if s.name == "tollmeter_events_ingested_total" and s.labels == {"project": project.project}]
    assert [s.value for s in ingested] == [1.0]


# -- what they count -------------------------------------------------------------------------------


def test_ingest_counts_events_by_outcome_and_refusals_by_reason(metered, project):
    before = scrape(metered)
    good = [event() for _ in range(3)]
    unknown = event(model="tm-unknown-model", request_model="tm-unknown-model")
    content = event(messages=[{"role": "user", "content": "hi"}])
    late = event(timestamp="1999-01-01T00:00:00Z")
    batch = [*good, good[0], unknown, content, late]
    first = project.ingest(batch).json()
    again = project.ingest(batch).json()
    assert (first["accepted"], first["duplicates"], first["unpriced"], len(first["rejected"])) == (4, 1, 1, 2)
    assert (again["accepted"], again["duplicates"], len(again["rejected"])) == (0, 5, 2)
    assert project.http.post("/v1/ingest", content=b"{}", headers={"Content-Encoding": "br"}).status_code == 415
    assert httpx.post(metered.base + "/v1/ingest", json={"events": [event()]}).status_code == 401
    body = gzip.compress(json.dumps({"events": [event()]}).encode())[:-8]  # cut short
    assert project.http.post("/v1/ingest", content=body, headers={"Content-Encoding": "gzip"}).status_code == 400

    for _ in range(4):  # either worker answers with the sum of both
        after = scrape(metered)
        p = {"project": project.project}
        assert value(after, "tollmeter_events_ingested_total", **p) == 4
        assert value(after, "tollmeter_events_duplicate_total", **p) == 6
        assert value(after, "tollmeter_events_unpriced_total", **p) == 1
        assert value(after, "tollmeter_events_rejected_total", **p, reason="content") == 2
        assert value(after, "tollmeter_events_rejected_total", **p, reason="timestamp") == 2
        def grown(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        requests = "tollmeter_ingest_requests_total"
        assert {status: grown(requests, status=status) for status in ("200", "400", "401", "415")} == {
            "200": 2, "400": 1, "401": 1, "415": 1}
        assert grown("tollmeter_ingest_duration_seconds_count") == 5
        assert grown("tollmeter_ingest_duration_seconds_bucket", le="+Inf") == 5
        assert grown("tollmeter_ingest_duration_seconds_sum") > 0


def test_counts_add_up_over_the_workers(metered, project):
    """Batches on connections of their own land on either worker; each scrape, answered by
    either, counts them all."""
    sent = 0
    for _ in range(16):
        with httpx.Client(base_url=metered.base, headers={"Authorization": f"Bearer {project.key}"}) as fresh:
            answer = fresh.post("/v1/ingest", json={"events": [event(), event()]})
            assert answer.status_code == 200
            sent += answer.json()["accepted"]
    assert sent == 32
    seen = {value(scrape(metered), "tollmeter_events_ingested_total", project=project.project) for _ in range(8)}
    assert seen == {32.0}


def test_leases_granted_refused_and_released(metered, project):
    http = project.http
    http.put("/v1/limits/acme", json={"limit_usd": "0.01", "frequency": "per_day"}).raise_for_status()
    first = http.post("/v1/leases", json={"tenant_id": "acme", "holder": "w1", "want_usd": "0.01",
                                          "need_usd": "0.01"}).json()
    assert first["refused"] is False and first["granted_usd"] == "0.01"
    second = http.post("/v1/leases", json={"tenant_id": "acme", "holder": "w2", "want_usd": "0.005",
                                           "need_usd": "0.005"}).json()
    assert second["refused"] is True
    unlimited = http.post("/v1/leases", json={"tenant_id": "globex", "want_usd": "1"}).json()
    assert unlimited["unlimited"] is True and unlimited["refused"] is False
    assert http.delete(f"/v1/leases/{first['lease_id']}").status_code == 204

    found = scrape(metered)
    assert value(found, "tollmeter_leases_total", project=project.project, outcome="granted") == 2
    assert value(found, "tollmeter_leases_total", project=project.project, outcome="refused") == 1
    assert value(found, "tollmeter_leases_released_total", project=project.project) == 1


# -- in this process: deliveries and reasons -------------------------------------------------------


def test_record_delivery_counts_by_outcome():
    before = samples(generate_latest(metrics.REGISTRY).decode())
    metrics.record_delivery("delivered")
    metrics.record_delivery("delivered")
    metrics.record_delivery("failed")
    after = samples(generate_latest(metrics.REGISTRY).decode())
    for outcome, count in (("delivered", 2), ("failed", 1), ("retrying", 0)):
        name = "tollmeter_notification_deliveries_total"
        assert value(after, name, outcome=outcome) - value(before, name, outcome=outcome) == count


@pytest.mark.parametrize("outcome", ["", "Delivered", "failed: 500", "x" * 40, None, 3])
def test_record_delivery_refuses_an_outcome_that_is_not_a_label(outcome):
    with pytest.raises(ValueError):
        metrics.record_delivery(outcome)  # type: ignore[arg-type]


def _refusal(**fields) -> str:
    raw = event(**fields)
    with pytest.raises(Invalid) as refused:
        validate_event(raw, datetime.now(timezone.utc))
    return str(refused.value)


@pytest.mark.parametrize("fields, reason", [
    ({"messages": []}, "content"),
    ({"tags": {"customer_secret_key": {"prompt": "x"}}}, "content"),
    ({"timestamp": "yesterday"}, "timestamp"),
    ({"event_id": "bad id with spaces"}, "event_id"),
    ({"usage": {"input_tokens": -1}}, "usage"),
    ({"tags": {"a": 1}}, "tags"),
    ({"cost_usd": 0.5}, "cost_usd"),
    ({"stream": "yes"}, "stream"),
])
def test_rejection_reasons_are_a_closed_set(fields, reason):
    """The label is the field at fault or a kind of refusal, never a key the sender chose."""
    assert metrics.rejection_reason(_refusal(**fields)) == reason


def test_rejection_reason_of_an_unknown_message():
    assert metrics.rejection_reason("my_own_key: something") == "invalid"
    assert metrics.rejection_reason(OVERFLOW_REASON) == "overflow"
