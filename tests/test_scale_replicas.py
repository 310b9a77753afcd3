"""Two server processes (`python -m tollmeter.server serve`) on one PostgreSQL database, agents
spread over both, as behind a load balancer: every event stored once however the batches and
their retries are spread, a tenant's limit held across both (leases of one tenant granted one at
a time whatever the replica), spend and rollups exact. PostgreSQL only (`TOLLMETER_TEST_POSTGRES`):
SQLite is one machine's file, not a database replicas share."""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
import threading
import uuid
from decimal import Decimal

import httpx
import pytest

from tollmeter.server.auth import revoke_key

from .server_support import (POSTGRES_ENV, RATE_CARD, Server, _WORK, database_for, event, free_port, wait_ready,
                             write_card)

pytestmark = pytest.mark.skipif(not os.environ.get(POSTGRES_ENV), reason=f"{POSTGRES_ENV} is not set")


@pytest.fixture(scope="module")
def replicas():
    url, drop = database_for("postgres")
    card = write_card(f"replica-prices-{uuid.uuid4().hex[:6]}.json", RATE_CARD)
    servers = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLMETER_")}
    try:
        for _ in range(2):
            port = free_port()
            log = _WORK / f"replica-{port}.log"
            args = [sys.executable, "-m", "tollmeter.server", "serve", "--database-url", url, "--port", str(port),
                    "--log-level", "warning", "--no-access-log", "--prices", card]
            with open(log, "wb") as out:
                process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
            servers.append(Server("postgres", url, f"http://127.0.0.1:{port}", process, log))
        for server in servers:  # both started together: the migration runs once, under its lock
            wait_ready(server)
        yield servers
    finally:
        for server in servers:
            server.stop()
        drop()


def post(http: httpx.Client, events: list[dict]) -> dict:
    body = gzip.compress(json.dumps({"events": events}).encode())
    response = http.post("/v1/ingest", content=body, headers={"Content-Encoding": "gzip",
                                                               "Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    return response.json()


def test_events_spread_over_two_replicas_are_stored_once_and_rolled_up_exactly(replicas):
    key = replicas[0].key(project := f"rep-{uuid.uuid4().hex[:8]}")
    clients = [r.client(key) for r in replicas]
    tenants = [f"t{i}" for i in range(5)]
    events = [event(tenant_id=random.choice(tenants), agent_id=random.choice(("a1", "a2")),
                    run_id=random.choice(("r1", "r2", None)),
                    usage={"input_tokens": random.randint(1, 5000), "output_tokens": random.randint(1, 500)})
              for _ in range(1200)]
    batches = [events[i:i + 40] for i in range(0, len(events), 40)]
    # every batch sent to one replica, and a third of them again to the other at the same time
    sends = [(b, i % 2) for i, b in enumerate(batches)] + [(b, 1 - i % 2) for i, b in enumerate(batches) if i % 3 == 0]
    random.shuffle(sends)
    answers, errors = [], []
    lock = threading.Lock()

    def agent(jobs):
        try:
            for batch, which in jobs:
                answer = post(clients[which], batch)
                with lock:
                    answers.append(answer)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=agent, args=(sends[i::6],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(a["accepted"] for a in answers) == len(events)  # each stored by exactly one request
    assert sum(a["duplicates"] for a in answers) == sum(len(b) for b, _ in sends) - len(events)
    view = replicas[0].store.for_project(project)
    assert view.count_events() == len(events)

    # usage (rollups) equals what was sent, asked of either replica
    cost = {t: Decimal(0) for t in tenants}
    calls = {t: 0 for t in tenants}
    for e in events:
        cost[e["tenant_id"]] += (Decimal(e["usage"]["input_tokens"]) * 2 + Decimal(e["usage"]["output_tokens"]) * 8) \
            / Decimal(1_000_000)
        calls[e["tenant_id"]] += 1
    for http in clients:
        rows = http.get("/v1/usage", params={"group_by": "tenant_id"}).json()["rows"]
        assert {r["tenant_id"]: (r["calls"], Decimal(r["cost_usd"])) for r in rows} == \
            {t: (calls[t], cost[t]) for t in tenants if calls[t]}
    for t in tenants:  # spend (limits read it) as exact as the rollups
        spent = clients[1].get(f"/v1/tenants/{t}/spend").json()["spent"]["total"]
        assert Decimal(spent) == cost[t]
    report = view.check_rollups()
    assert all(r["missing"] == r["extra"] == r["different"] == 0 for r in report.values()), report
    for http in clients:
        http.close()


def test_a_limit_holds_across_two_replicas(replicas):
    key = replicas[0].key(f"rep-{uuid.uuid4().hex[:8]}")
    clients = [r.client(key) for r in replicas]
    assert clients[0].put("/v1/limits/acme", json={"limit_usd": "10", "frequency": "per_day"}).status_code == 200
    granted, errors = [], []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def agent(i):
        http = replicas[i % 2].client(key)
        try:
            start.wait()
            for _ in range(6):  # 48 requests of exactly $1 for a $10 limit
                response = http.post("/v1/leases", json={"tenant_id": "acme", "holder": f"agent-{i}",
                                                         "want_usd": "1", "need_usd": "1", "ttl_seconds": 60})
                assert response.status_code == 200, response.text
                with lock:
                    granted.append(Decimal(response.json()["granted_usd"]))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            http.close()

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(granted) == 10  # every dollar leased once, by one replica or the other
    assert granted.count(Decimal(1)) == 10 and granted.count(Decimal(0)) == 38
    for http in clients:
        http.close()


def test_a_key_revoked_is_refused_leases_by_both_replicas_at_once(replicas):
    """Each replica keeps the projects of the keys it found valid: a revocation (committed by
    a third process) must still be seen by the next grant on each."""
    project = f"rep-{uuid.uuid4().hex[:8]}"
    key, spare = replicas[0].key(project), replicas[0].key(project)
    clients = [r.client(key) for r in replicas]
    lease = {"tenant_id": "acme", "want_usd": "1", "ttl_seconds": 60}
    assert clients[0].put("/v1/limits/acme", json={"limit_usd": "10", "frequency": "per_day"}).status_code == 200
    for http in clients * 2:
        assert http.post("/v1/leases", json=lease).json()["granted_usd"] == "1"
    revoke_key(replicas[1].store, key)
    for http in clients:
        assert http.post("/v1/leases", json=lease).status_code == 401
    for replica in replicas:
        with replica.client(spare) as http:
            assert http.post("/v1/leases", json=lease).json()["granted_usd"] == "1"
    for http in clients:
        http.close()
