"""The ingest server: events stored per second, in one worker and in two replicas.

    .venv/bin/python benchmarks/ingest.py [--events 20000] [--clients 4] [--runs 1] [--breakdown-only]
    TOLLMETER_TEST_POSTGRES=postgresql://user@127.0.0.1:5432/db .venv/bin/python benchmarks/ingest.py
    TOLLMETER_TEST_POSTGRES=... .venv/bin/python benchmarks/ingest.py --replicas 2 [--clients 4]

A real server (`python -m tollmeter.server serve`, one worker process) on 127.0.0.1, over a
SQLite file and, when a PostgreSQL DSN is given (`--postgres` or TOLLMETER_TEST_POSTGRES), over
PostgreSQL (in a schema of its own, dropped afterwards). The clients run on the same machine.

1. Ingest: gzip batches of 100 and of 1,000 events (as the agent sends them: unpriced, so the
   server prices each one), posted by `--clients` threads at once; events stored per second,
   end to end (HTTP, gunzip, validation, pricing, one transaction per batch), and the server
   process's CPU per event (from /proc: steadier than events/s on a shared machine).
2. The breakdown: the same batches of 1,000 (gzip) through the server's own `store_batch` in
   this process, one after another: server CPU per event in each phase (parse = gunzip and
   JSON, validate, price, write = the database transaction, the database server's own CPU not
   included) and the events per second of one worker without HTTP.
3. `--replicas N` (PostgreSQL only): N server processes on one database, the `--clients`
   threads spread over them as behind a load balancer, batches of 1,000 (gzip), a tenth of them
   sent again to another replica at the same time (an agent's retry); events stored per second,
   and a check that every event was stored exactly once (answers and the table agree).

Lease grants are measured by benchmarks/leases.py.
"""

from __future__ import annotations

import argparse
import gc
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

from tollmeter import heap
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
    def __init__(self, url: str, key: str | None = None) -> None:
        self.url = url
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLMETER_")}
        # No start-up pass over the reports (business/warm.py): what is measured here is the
        # server at work, not in its first second; queries.py times that pass apart.
        env["TOLLMETER_WARM_REPORTS"] = "0"
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
        if key is None:
            store = open_store(url)
            try:
                key = create_key(store, f"bench-{secrets.token_hex(3)}")[1]
            finally:
                store.close()
        self.key = key

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {self.key}"}, timeout=60)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(20)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process so far (Linux /proc; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def database_cpu(url: str) -> dict[int, float] | None:
    """PostgreSQL: CPU seconds so far of each backend serving `url`'s connections (found by the
    application_name `postgres_database` gives them; /proc, so the database must run on this
    machine). None on SQLite or when they cannot be read."""
    if not url.startswith("postgresql") or "application_name=" not in url:
        return None
    import psycopg

    name = url.split("application_name=", 1)[1].split("&", 1)[0]
    try:
        with psycopg.connect(url, application_name="tollmeter-bench-probe") as conn:
            pids = [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                                               (name,))]
    except psycopg.Error:
        return None
    seconds = {pid: cpu_seconds(pid) for pid in pids}
    return None if None in seconds.values() else seconds  # type: ignore[return-value]


def ingest(server: Server, batch: int, total: int, clients: int
           ) -> tuple[float, int, float | None, float | None]:
    """Events stored per second; (rate, events stored, the server process's CPU µs per event:
    HTTP included, the database's own not; PostgreSQL's backends' CPU µs per event)."""
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
    elapsed, cpu, db = run_clients([threading.Thread(target=work) for _ in range(clients)], [server])
    per_event = (lambda seconds: None if seconds is None else seconds * 1e6 / sum(stored))
    return sum(stored) / elapsed, sum(stored), per_event(cpu), per_event(db)


def run_clients(threads: list[threading.Thread], servers: list[Server]
                ) -> tuple[float, float | None, float | None]:
    """Run the client threads to their end: (seconds, CPU seconds the servers used meanwhile,
    and the database's backends (PostgreSQL on this machine; None otherwise))."""
    before = [cpu_seconds(server.process.pid) for server in servers]
    db_before = database_cpu(servers[0].url)
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    after = [cpu_seconds(server.process.pid) for server in servers]
    db_after = database_cpu(servers[0].url)
    db = None
    if db_before is not None and db_after is not None:  # a backend started meanwhile counts from 0
        db = sum(seconds - db_before.get(pid, 0.0) for pid, seconds in db_after.items())
    if None in before + after:
        return elapsed, None, db
    return elapsed, sum(a - b for a, b in zip(after, before)), db


#: Runs the events of one batch belong to (`--runs`): 1, every event of every batch in "run-1".
RUNS_PER_BATCH = 1


def batch_bodies(batch: int, total: int, tenants: int = 50) -> list[bytes]:
    bodies = []
    for i in range(total // batch):
        events = [wire_event(f"tenant-{(i * batch + j) % tenants}") for j in range(batch)]
        if RUNS_PER_BATCH > 1:
            for j, event in enumerate(events):
                event["run_id"] = f"run-{i}-{j % RUNS_PER_BATCH}"
        bodies.append(gzip.compress(json.dumps({"events": events}, separators=(",", ":")).encode(), 6))
    return bodies


def breakdown(url: str, batch: int, total: int) -> tuple[dict[str, float], float, int]:
    """µs of CPU per event in each phase of store_batch, events/s in-process, events stored."""
    from tollmeter.server import app
    from tollmeter.server.ingest import Phases, store_batch
    from tollmeter.server.settings import ServerSettings
    from tollmeter.server.state import ServerState

    state = ServerState.open(ServerSettings(database_url=url))
    try:
        store = state.store.for_project(f"breakdown-{secrets.token_hex(3)}")
        warm = batch_bodies(batch, batch)
        store_batch(state, store, warm[0], "gzip")
        bodies = batch_bodies(batch, total)
        # As `tollmeter serve` does once started (TOLLMETER_FREEZE_HEAP): its start-up heap
        # frozen, its GC thresholds (a tree from before `heap.for_serving`: as that tree did).
        if hasattr(heap, "for_serving"):
            heap.for_serving()
        else:
            heap.freeze()
            if hasattr(app, "SERVING_GC_THRESHOLDS"):
                gc.set_threshold(*app.SERVING_GC_THRESHOLDS)
        phases = Phases()
        stored = 0
        db_before = database_cpu(url)
        start = time.perf_counter()
        for body in bodies:
            stored += store_batch(state, store, body, "gzip", phases)["accepted"]
        elapsed = time.perf_counter() - start
        db_after = database_cpu(url)
    finally:
        state.close()
    per_event = {name: seconds * 1e6 / phases.events for name, seconds in phases.cpu.items()}
    if db_before is not None and db_after is not None:
        per_event["database"] = sum(s - db_before.get(pid, 0.0) for pid, s in db_after.items()) * 1e6 / phases.events
    return per_event, stored / elapsed, stored


def replicas(url: str, count: int, total: int, clients: int) -> tuple[float, int, int, dict[str, int]]:
    """`count` servers on one PostgreSQL database, `clients` threads spread over them, batches
    of 1,000 and a tenth of them again to another replica at once. (events/s, events stored as
    the answers say, events sent, the table's count and distinct ids)."""
    from sqlalchemy import text

    servers = [Server(url)]
    servers += [Server(url, servers[0].key) for _ in range(count - 1)]
    try:
        batch = 1000
        bodies = batch_bodies(batch, total)
        sends = [(body, i % count) for i, body in enumerate(bodies)]
        sends += [(body, (i + 1) % count) for i, body in enumerate(bodies) if i % 10 == 0]  # retries elsewhere
        random.shuffle(sends)
        sends_made = list(sends)
        lock = threading.Lock()
        accepted, duplicates = [], []
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}

        def work(me: int) -> None:
            https = [server.client() for server in servers]
            try:
                while True:
                    with lock:
                        if not sends:
                            return
                        body, which = sends.pop()
                    which = (which + me) % count  # each client's own spread over the replicas
                    response = https[which].post("/v1/ingest", content=body, headers=headers)
                    response.raise_for_status()
                    answer = response.json()
                    with lock:
                        accepted.append(answer["accepted"])
                        duplicates.append(answer["duplicates"])
            finally:
                for http in https:
                    http.close()

        elapsed, cpu, db = run_clients([threading.Thread(target=work, args=(i,)) for i in range(clients)], servers)
        sent = len(bodies) * batch
        store = open_store(url)
        try:
            with store.transaction() as conn:
                stored, distinct = conn.execute(text(
                    "SELECT count(*), count(DISTINCT event_id) FROM events WHERE project_id LIKE 'bench-%'")).one()
                claimed = conn.execute(text("SELECT count(*) FROM event_ids WHERE project_id LIKE 'bench-%'")).scalar()
        finally:
            store.close()
        table = {"rows": stored, "distinct ids": distinct, "event_ids": claimed, "duplicates answered": sum(duplicates)}
        if cpu is not None:
            table["servers' CPU µs per event posted"] = round(cpu * 1e6 / (len(sends_made) * batch), 1)
        if db is not None:
            table["database's CPU µs per event posted"] = round(db * 1e6 / (len(sends_made) * batch), 1)
        return sum(accepted) / elapsed, sum(accepted), sent, table
    finally:
        for server in servers:
            server.stop()


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile (0 to 1) of `values`, nearest rank (benchmarks/leases.py, queries.py)."""
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

    # The application name: how database_cpu finds the backends of the benchmark's servers.
    return f"{dsn}{'&' if '?' in dsn else '?'}options=-csearch_path%3D{schema}&application_name={schema}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per ingest case")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--breakdown-only", action="store_true", help="only the in-process breakdown")
    parser.add_argument("--replicas", type=int, default=0,
                        help="only the replica run: this many servers on one PostgreSQL database")
    parser.add_argument("--runs", type=int, default=1,
                        help="runs the events of a batch belong to (default: one run for every event)")
    parser.add_argument("--only", choices=("sqlite", "postgresql"), help="one database only")
    parser.add_argument("--batch", type=int, action="append", help="end-to-end batch sizes (default: 100 and 1,000)")
    parser.add_argument("--no-breakdown", action="store_true", help="end to end only")
    parser.add_argument("--postgres", default=os.environ.get("TOLLMETER_TEST_POSTGRES"), help="a PostgreSQL DSN")
    args = parser.parse_args()
    global RUNS_PER_BATCH
    RUNS_PER_BATCH = args.runs
    cpus = os.cpu_count()

    if args.replicas:
        if not args.postgres:
            raise SystemExit("--replicas needs PostgreSQL: give --postgres DSN or set TOLLMETER_TEST_POSTGRES")
        url, drop = postgres_database(args.postgres)
        try:
            rate, stored, sent, table = replicas(url, args.replicas, args.events, args.clients)
        finally:
            drop()
        print(f"tollmeter ingest server, {args.replicas} replicas (one worker process each) on one PostgreSQL; "
              f"{args.clients} clients on the same {cpus}-core machine")
        print("batches of 1,000, gzip; a tenth of them sent again to another replica at once")
        print(f"{'replicas':>8} {'clients':>8} {'sent':>8} {'stored':>8} {'events/s':>10}")
        print(f"{args.replicas:>8} {args.clients:>8} {sent:>8} {stored:>8} {rate:>10,.0f}")
        print("table: " + ", ".join(f"{k} {v}" for k, v in table.items()))
        once = stored == sent == table["rows"] == table["distinct ids"] == table["event_ids"]
        print("every event stored exactly once" if once else "MISMATCH: events lost or stored twice")
        if not once:
            raise SystemExit(1)
        return

    databases = []
    work = Path(tempfile.mkdtemp(prefix="tollmeter-bench-"))
    if args.only != "postgresql":
        databases.append(("sqlite", str(work / "bench.db"), lambda: None))
    if args.postgres and args.only != "sqlite":
        url, drop = postgres_database(args.postgres)
        databases.append(("postgresql", url, drop))
    else:
        print("(no PostgreSQL: give --postgres DSN or set TOLLMETER_TEST_POSTGRES)\n")

    ingest_rows, breakdown_rows = [], []
    for name, url, drop in databases:
        if not args.no_breakdown:
            per_event, rate, stored = breakdown(url, 1000, args.events)
            breakdown_rows.append((name, per_event, rate, stored))
        if args.breakdown_only:
            drop()
            continue
        server = Server(url)
        try:
            for batch in args.batch or (100, 1000):
                for clients in (1, args.clients):
                    rate, stored, cpu, db = ingest(server, batch, args.events, clients)
                    ingest_rows.append((name, batch, clients, stored, rate, cpu, db))
        finally:
            server.stop()
            drop()

    shutil.rmtree(work, ignore_errors=True)
    print(f"tollmeter ingest server, one worker process; clients on the same {cpus}-core machine")
    print("server CPU per event (µs), batches of 1,000, gzip, in-process (no HTTP); "
          "db: PostgreSQL's backend's CPU per event meanwhile")
    names = ("parse", "validate", "price", "write")
    print(f"{'database':<11} " + " ".join(f"{n:>9}" for n in names) + f" {'total':>9} {'events/s':>10} {'db':>6}")
    for name, per_event, rate, stored in breakdown_rows:
        db = per_event.get("database")
        print(f"{name:<11} " + " ".join(f"{per_event[n]:>9.1f}" for n in names)
              + f" {sum(per_event[n] for n in names):>9.1f} {rate:>10,.0f} {'-' if db is None else f'{db:.1f}':>6}")
    print()
    if args.breakdown_only:
        return
    print("end to end over HTTP; CPU per event (µs): the server process's, PostgreSQL's backends'")
    print(f"{'database':<11} {'batch':>6} {'clients':>8} {'events':>8} {'events/s':>10} {'server CPU':>11} "
          f"{'db CPU':>8}")
    for name, batch, clients, stored, rate, cpu, db in ingest_rows:
        shown = "-" if cpu is None else f"{cpu:.1f}"
        db_shown = "-" if db is None else f"{db:.1f}"
        print(f"{name:<11} {batch:>6} {clients:>8} {stored:>8} {rate:>10,.0f} {shown:>11} {db_shown:>8}")


if __name__ == "__main__":
    main()
