"""The ingest server: events stored per second, and how long a budget lease takes.

    .venv/bin/python benchmarks/ingest.py [--events 20000] [--clients 4] [--grants 400]
    TOLLMETER_TEST_POSTGRES=postgresql://user@127.0.0.1:5432/db .venv/bin/python benchmarks/ingest.py

A real server (`python -m tollmeter.server serve`, one worker process) on 127.0.0.1, over a
SQLite file and, when a PostgreSQL DSN is given (`--postgres` or TOLLMETER_TEST_POSTGRES), over
PostgreSQL (in a schema of its own, dropped afterwards). The clients run on the same machine.

1. Ingest: gzip batches of 100 and of 1,000 events (as the agent sends them: unpriced, so the
   server prices each one), posted by `--clients` threads at once; events stored per second,
   end to end (HTTP, gunzip, validation, pricing, one transaction per batch).
2. The breakdown: the same batches of 1,000 (gzip) through the server's own `store_batch` in
   this process, one after another: server CPU per event in each phase (parse = gunzip and
   JSON, validate, price, write = the database transaction, the database server's own CPU not
   included) and the events per second of one worker without HTTP.
3. Leases: POST /v1/leases for a tenant with a limit, one client after another, then
   `--clients` at once (each grant is a short transaction; grants of one tenant queue);
   latency p50 and p99 in milliseconds.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx

from tollmeter.server.auth import create_key
from tollmeter.server.state import open_store


def wire_event(tenant: str) -> dict:
    return {
        "schema_version": 1, "event_id": str(uuid.uuid4()), "timestamp": datetime.now(timezone.utc).isoformat(),
        "tenant_id": tenant, "run_id": "run-1", "agent_id": "support-bot", "tags": {"plan": "pro"},
        "provider": "openai", "model": "gpt-4o-2024-08-06", "request_model": "gpt-4o", "endpoint": "chat.completions",
        "stream": False, "usage": {"input_tokens": (n := random.randint(200, 20_000)), "output_tokens":
                                   random.randint(1, 2_000), "cache_read_tokens": random.randint(0, n)},
        "tool_calls": None, "web_search_requests": None, "service_tier": "default", "finish_reason": "stop",
        "duration_ms": 812.5, "time_to_first_token_ms": None, "request_id": "req_abc", "error": None,
        "status_code": None, "partial": False, "cost_usd": None, "priced": False, "price_source": None,
        "price_model": None, "provider_cost_usd": None, "computed_cost_usd": None, "units": None, "lease_id": None,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, url: str) -> None:
        self.url = url
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLMETER_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tollmeter.server", "serve", "--database-url", url, "--port", str(self.port),
             "--log-level", "warning", "--no-access-log"], env=env)
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(self.base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.1)
        store = open_store(url)
        try:
            self.key = create_key(store, f"bench-{secrets.token_hex(3)}")[1]
        finally:
            store.close()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {self.key}"}, timeout=60)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(20)


def ingest(server: Server, batch: int, total: int, clients: int) -> tuple[float, int]:
    """Events stored per second; (rate, events stored)."""
    bodies = batch_bodies(batch, total)
    queue = list(reversed(bodies))
    lock = threading.Lock()
    stored = []
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}

    def work():
        with server.client() as http:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                response = http.post("/v1/ingest", content=body, headers=headers)
                response.raise_for_status()
                stored.append(response.json()["accepted"])

    with server.client() as http:  # warm up: connections, the pricer's caches
        http.post("/v1/ingest", content=bodies[0], headers=headers).raise_for_status()
    queue.pop()
    threads = [threading.Thread(target=work) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return sum(stored) / elapsed, sum(stored)


def batch_bodies(batch: int, total: int, tenants: int = 50) -> list[bytes]:
    bodies = []
    for i in range(total // batch):
        events = [wire_event(f"tenant-{(i * batch + j) % tenants}") for j in range(batch)]
        bodies.append(gzip.compress(json.dumps({"events": events}, separators=(",", ":")).encode(), 6))
    return bodies


def breakdown(url: str, batch: int, total: int) -> tuple[dict[str, float], float, int]:
    """µs of CPU per event in each phase of store_batch, events/s in-process, events stored."""
    from tollmeter.server.ingest import Phases, store_batch
    from tollmeter.server.settings import ServerSettings
    from tollmeter.server.state import ServerState

    state = ServerState.open(ServerSettings(database_url=url))
    try:
        store = state.store.for_project(f"breakdown-{secrets.token_hex(3)}")
        warm = batch_bodies(batch, batch)
        store_batch(state, store, warm[0], "gzip")
        bodies = batch_bodies(batch, total)
        phases = Phases()
        stored = 0
        start = time.perf_counter()
        for body in bodies:
            stored += store_batch(state, store, body, "gzip", phases)["accepted"]
        elapsed = time.perf_counter() - start
    finally:
        state.close()
    per_event = {name: seconds * 1e6 / phases.events for name, seconds in phases.cpu.items()}
    return per_event, stored / elapsed, stored


def leases(server: Server, grants: int, clients: int) -> list[float]:
    """Milliseconds per POST /v1/leases."""
    with server.client() as http:
        http.put("/v1/limits/lease-tenant", json={"limit_usd": "1000000", "frequency": "per_month"}).raise_for_status()
    times: list[float] = []
    lock = threading.Lock()

    def work(count: int):
        with server.client() as http:
            for _ in range(count):
                start = time.perf_counter()
                response = http.post("/v1/leases", json={"tenant_id": "lease-tenant", "holder": "bench",
                                                         "want_usd": "0.01", "need_usd": "0.001", "ttl_seconds": 30})
                elapsed = (time.perf_counter() - start) * 1000
                response.raise_for_status()
                with lock:
                    times.append(elapsed)

    threads = [threading.Thread(target=work, args=(grants // clients,)) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def postgres_database(dsn: str) -> tuple[str, callable]:
    from sqlalchemy import create_engine, text

    schema = f"tm_bench_{secrets.token_hex(3)}"
    admin = create_engine(dsn.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))

    def drop():
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()

    return f"{dsn}{'&' if '?' in dsn else '?'}options=-csearch_path%3D{schema}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per ingest case")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--grants", type=int, default=400, help="lease requests per case")
    parser.add_argument("--breakdown-only", action="store_true", help="only the in-process breakdown")
    parser.add_argument("--postgres", default=os.environ.get("TOLLMETER_TEST_POSTGRES"), help="a PostgreSQL DSN")
    args = parser.parse_args()

    databases = []
    work = Path(tempfile.mkdtemp(prefix="tollmeter-bench-"))
    databases.append(("sqlite", str(work / "bench.db"), lambda: None))
    if args.postgres:
        url, drop = postgres_database(args.postgres)
        databases.append(("postgresql", url, drop))
    else:
        print("(no PostgreSQL: give --postgres DSN or set TOLLMETER_TEST_POSTGRES)\n")

    ingest_rows, lease_rows, breakdown_rows = [], [], []
    for name, url, drop in databases:
        per_event, rate, stored = breakdown(url, 1000, args.events)
        breakdown_rows.append((name, per_event, rate, stored))
        if args.breakdown_only:
            drop()
            continue
        server = Server(url)
        try:
            for batch in (100, 1000):
                for clients in (1, args.clients):
                    rate, stored = ingest(server, batch, args.events, clients)
                    ingest_rows.append((name, batch, clients, stored, rate))
            for clients in (1, args.clients):
                times = leases(server, args.grants, clients)
                lease_rows.append((name, clients, len(times), percentile(times, 0.5), percentile(times, 0.99)))
        finally:
            server.stop()
            drop()

    shutil.rmtree(work, ignore_errors=True)
    cpus = os.cpu_count()
    print(f"tollmeter ingest server, one worker process; clients on the same {cpus}-core machine")
    print("server CPU per event (µs), batches of 1,000, gzip, in-process (no HTTP)")
    names = ("parse", "validate", "price", "write")
    print(f"{'database':<11} " + " ".join(f"{n:>9}" for n in names) + f" {'total':>9} {'events/s':>10}")
    for name, per_event, rate, stored in breakdown_rows:
        print(f"{name:<11} " + " ".join(f"{per_event[n]:>9.1f}" for n in names)
              + f" {sum(per_event.values()):>9.1f} {rate:>10,.0f}")
    print()
    if args.breakdown_only:
        return
    print(f"{'database':<11} {'batch':>6} {'clients':>8} {'events':>8} {'events/s':>10}")
    for name, batch, clients, stored, rate in ingest_rows:
        print(f"{name:<11} {batch:>6} {clients:>8} {stored:>8} {rate:>10,.0f}")
    print()
    print(f"{'database':<11} {'clients':>8} {'grants':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for name, clients, count, p50, p99 in lease_rows:
        print(f"{name:<11} {clients:>8} {count:>7} {p50:>8.2f} {p99:>8.2f}")


if __name__ == "__main__":
    main()
