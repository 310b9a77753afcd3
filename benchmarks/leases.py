"""Budget lease grants on a real server: POST /v1/leases round trips with one client, then with
8 concurrent clients each on its own tenant; and what one grant costs inside the server.

    PYTHONPATH=src .venv/bin/python benchmarks/leases.py [--grants 400] [--clients 8] [--rate 25] [--rounds 2]
    TOLLMETER_TEST_POSTGRES=postgresql://user@127.0.0.1:5432/db PYTHONPATH=src \\
        .venv/bin/python benchmarks/leases.py [--before OLD/src] [--only postgresql] [--profile]

1. A real server (`python -m tollmeter.server serve`, one worker process, started as
   benchmarks/ingest.py starts it) on 127.0.0.1 over a SQLite file and, when a PostgreSQL DSN
   is given (`--postgres` or TOLLMETER_TEST_POSTGRES), over PostgreSQL in a schema of its own
   (dropped afterwards). Tenants `lease-0` ... `lease-N` each have a daily and a monthly limit,
   a rate limit, 200 priced events stored (spend in every period) and 4 leases of other
   holders, so each grant reads real state.
2. Each client is a process of its own (an agent) on one kept-alive connection: it asks for a
   lease, then extends it (`lease_id`) as the agent's guard does, `--grants` times, after 20
   unmeasured grants. Cases: one client; `--clients` at once, each on its own tenant, each
   asking again as soon as it has its answer (the server saturated); the same clients paced
   at `--rate` grants a second each. p50, p95, p99 and the longest round trip in ms, grants
   per second, and CPU ms per grant of the server process and of the clients (which run on
   the same machine as the server and the database: every figure includes them).
3. `--before SRC`: a second server runs the code at SRC (e.g. a `git archive` of an older
   commit's `src`), over a database of its own, and every case is measured on both servers in
   alternation, `--rounds` times, so that before and after are taken in the same minutes.
4. `--profile`: one grant's cost inside the server (for each server's code, in a process of
   its own): the app over the same database called as uvicorn calls it (ASGI) but without a
   socket, `--grants` grants; ms in the API key's project (a look-up per request before, a
   dictionary of the keys found valid now, their revocation checked by the grant's read), the
   grant's transaction, the rate limit's read (a transaction of its own before) and the rest
   (FastAPI, validation, worker threads), and the database round trips per grant (connection
   checks, BEGIN, statements, COMMIT) with the time spent in them.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

sys.path.insert(0, str(Path(__file__).parent))

from ingest import Server, percentile, postgres_database, wire_event  # noqa: E402

EVENTS_PER_TENANT = 200
OTHER_LEASES = 4
WARM_UP = 20


def lease_body(tenant: str, lease_id: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"tenant_id": tenant, "holder": f"bench-{tenant}", "want_usd": "0.05",
                            "need_usd": "0.01", "ttl_seconds": 60}
    if lease_id is not None:
        body["lease_id"] = lease_id
    return body


def prepare(server: Server, tenants: int) -> None:
    """Limits, a rate limit, stored spend and other holders' leases for every tenant."""
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    with server.client() as http:
        for n in range(tenants):
            tenant = f"lease-{n}"
            http.put(f"/v1/limits/{tenant}", json={"limit_usd": "100000", "frequency": "per_day"}).raise_for_status()
            http.put(f"/v1/limits/{tenant}", json={"limit_usd": "1000000", "frequency": "per_month"}
                     ).raise_for_status()
            http.put(f"/v1/rate-limits/{tenant}", json={"requests_per_minute": 6000}).raise_for_status()
            events = [wire_event(tenant) for _ in range(EVENTS_PER_TENANT)]
            body = gzip.compress(json.dumps({"events": events}).encode())
            stored = http.post("/v1/ingest", content=body, headers=headers)
            stored.raise_for_status()
            assert stored.json()["accepted"] == EVENTS_PER_TENANT, stored.text
            for i in range(OTHER_LEASES):
                http.post("/v1/leases", json={"tenant_id": tenant, "holder": f"other-{i}", "want_usd": "1",
                                              "ttl_seconds": 300}).raise_for_status()


class Connection:
    """HTTP/1.1 over one kept-alive socket, as light as a client can be (a few µs a request),
    so that on this shared machine the CPU goes to the server and the database: the figures
    are theirs, not the client's. The answer is read as sent (Content-Length, no chunks)."""

    def __init__(self, base: str, key: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.host, self.key = host, key
        self.sock = socket.create_connection((host, int(port)))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def request(self, body: dict[str, Any]) -> bytes:
        return self.send(self.encode(body))

    def encode(self, body: dict[str, Any]) -> bytes:
        data = json.dumps(body).encode()
        return (f"POST /v1/leases HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {self.key}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data

    def send(self, request: bytes) -> bytes:
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.receive()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1]
        length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
        while len(self.buffer) < length:
            self.buffer += self.receive()
        answer, self.buffer = self.buffer[:length], self.buffer[length:]
        if status != b"200":
            raise SystemExit(f"POST /v1/leases: {status.decode()} {answer[:300]!r}")
        return answer

    def receive(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise SystemExit("the server closed the connection")
        return chunk

    def close(self) -> None:
        self.sock.close()


def client(base: str, key: str, tenant: str, grants: int, rate: float, start: Any, out: Any) -> None:
    """One agent: a lease, then extended `grants` times (after WARM_UP unmeasured grants), one
    after another, or `rate` times a second (a request is sent at its time, or at once when
    the previous answer came later; each client starts at a random point of its interval)."""
    http = Connection(base, key)
    lease_id = None
    for _ in range(WARM_UP):
        lease_id = json.loads(http.request(lease_body(tenant, lease_id)))["lease_id"]
    request = http.encode(lease_body(tenant, lease_id))  # the same request every time: extend the lease
    times = []
    start.wait()
    cpu = time.process_time()
    due = time.perf_counter() + (random.random() / rate if rate else 0.0)
    for _ in range(grants):
        if rate:
            time.sleep(max(0.0, due - time.perf_counter()))
            due += 1 / rate
        began = time.perf_counter()
        answer = http.send(request)
        times.append((time.perf_counter() - began) * 1000)
        answer = json.loads(answer)
        if answer["refused"] or answer["lease_id"] != lease_id:
            raise SystemExit(f"unexpected answer: {answer}")
    cpu = time.process_time() - cpu
    http.close()
    out.put((times, cpu))


def measure(server: Server, clients: int, grants: int, rate: float = 0.0) -> dict[str, float]:
    """Round trips of `clients` agent processes at once, each on its own tenant, as fast as
    they can (`rate` 0) or `rate` grants a second each."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(clients + 1)
    out = context.Queue()
    processes = [context.Process(target=client, args=(server.base, server.key, f"lease-{n}", grants, rate, start, out))
                 for n in range(clients)]
    for p in processes:
        p.start()
    start.wait()
    began, server_cpu = time.perf_counter(), cpu_seconds(server.process.pid)
    times: list[float] = []
    client_cpu = 0.0
    for _ in processes:
        measured, cpu = out.get(timeout=600)
        times.extend(measured)
        client_cpu += cpu
    elapsed = time.perf_counter() - began
    server_cpu = cpu_seconds(server.process.pid) - server_cpu
    for p in processes:
        p.join(60)
        if p.exitcode != 0:
            raise SystemExit(f"a client failed (exit code {p.exitcode})")
    return {"grants": len(times), "p50": percentile(times, 0.5), "p95": percentile(times, 0.95),
            "p99": percentile(times, 0.99), "max": max(times), "per_s": len(times) / elapsed,
            "server_cpu": server_cpu * 1000 / len(times), "client_cpu": client_cpu * 1000 / len(times),
            "load": os.getloadavg()[0]}


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its threads so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def python_path(src: str | None) -> Iterator[None]:
    """Servers started in this block run the code at `src` (their environment is ours)."""
    if src is None:
        yield
        return
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.path.abspath(src)
    try:
        yield
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before


# -- the profile ----------------------------------------------------------------------------------


def profile(url: str, grants: int) -> dict[str, float]:
    """Per grant, in this process: ms in each part, and the database round trips. The app is
    called as uvicorn calls it (ASGI, its worker threads), without a socket or HTTP parsing."""
    import asyncio

    from sqlalchemy import event

    from tollmeter.server import auth, deps
    from tollmeter.server.app import create_app
    from tollmeter.server.auth import create_key
    from tollmeter.server.settings import ServerSettings
    from tollmeter.store.store import Store

    spent: dict[str, float] = {}
    counts: dict[str, int] = {}

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - began
        return wrapper

    def count(name: str, seconds: float = 0.0) -> None:
        counts[name] = counts.get(name, 0) + 1
        spent["db:" + name] = spent.get("db:" + name, 0.0) + seconds

    # What the lease route calls: Store.grant_with_rate_limit since it exists, Store.grant and
    # Store.rate_limit_for (a second transaction) before; the key's project from KnownKeys since
    # it exists (a look-up only for a key not seen yet), deps.project_for before.
    granting = "grant_with_rate_limit" if hasattr(Store, "grant_with_rate_limit") else "grant"
    originals = {name: getattr(Store, name) for name in (granting, "rate_limit_for")}
    project_for = deps.project_for
    known_keys = getattr(auth, "KnownKeys", None)
    if known_keys is not None:
        known_project = known_keys.project
        known_keys.project = timed("api key", known_project)
    deps.project_for = timed("api key", project_for)
    setattr(Store, granting, timed("grant transaction", originals[granting]))
    Store.rate_limit_for = timed("rate limit", originals["rate_limit_for"])

    async def call(app: Any, method: str, path: str, body: Any, key: str) -> bytes:
        data = json.dumps(body).encode()
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
                 "headers": [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {key}".encode()),
                             (b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
                 "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}
        messages = [{"type": "http.request", "body": data, "more_body": False}]
        answer: dict[str, Any] = {"body": b""}

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.Event().wait()  # the client stays connected
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body":
                answer["body"] += message.get("body", b"")

        await app(scope, receive, send)
        if answer["status"] != 200:
            raise SystemExit(f"{method} {path}: {answer['status']} {answer['body'][:300]!r}")
        return answer["body"]

    async def run() -> float:
        app = create_app(ServerSettings(database_url=url))
        async with app.router.lifespan_context(app):
            store = app.state.server.store
            engine = store.engine
            postgres = engine.dialect.name == "postgresql"
            key = create_key(store, f"profile-{secrets.token_hex(3)}")[1]
            for limit, frequency in (("100000", "per_day"), ("1000000", "per_month")):
                await call(app, "PUT", "/v1/limits/profiled", {"limit_usd": limit, "frequency": frequency}, key)
            await call(app, "PUT", "/v1/rate-limits/profiled", {"requests_per_minute": 6000}, key)
            await call(app, "POST", "/v1/ingest", {"events": [wire_event("profiled") for _ in range(EVENTS_PER_TENANT)]},
                       key)
            lease_id = None
            for _ in range(WARM_UP):
                lease_id = json.loads(await call(app, "POST", "/v1/leases", lease_body("profiled", lease_id), key)
                                      )["lease_id"]
            body = lease_body("profiled", lease_id)
            marks: dict[int, float] = {}

            def before(conn: Any, cursor: Any, *args: Any) -> None:
                marks[id(cursor)] = time.perf_counter()

            def after(conn: Any, cursor: Any, *args: Any) -> None:
                count("statement", time.perf_counter() - marks.pop(id(cursor)))

            def begin(conn: Any) -> None:
                if postgres:  # psycopg sends BEGIN before the transaction's first statement
                    count("begin")

            ping, commit = engine.dialect.do_ping, engine.dialect.do_commit

            def do_ping(dbapi_connection: Any) -> bool:
                began = time.perf_counter()
                try:
                    return ping(dbapi_connection)
                finally:
                    count("connection check", time.perf_counter() - began)

            def do_commit(dbapi_connection: Any) -> None:
                began = time.perf_counter()
                try:
                    commit(dbapi_connection)
                finally:
                    count("commit", time.perf_counter() - began)

            spent.clear()
            event.listen(engine, "before_cursor_execute", before)
            event.listen(engine, "after_cursor_execute", after)
            event.listen(engine, "begin", begin)
            engine.dialect.do_ping, engine.dialect.do_commit = do_ping, do_commit
            began, cpu = time.perf_counter(), time.process_time()
            try:
                for _ in range(grants):
                    await call(app, "POST", "/v1/leases", body, key)
            finally:
                total = time.perf_counter() - began
                spent["cpu"] = time.process_time() - cpu
                event.remove(engine, "before_cursor_execute", before)
                event.remove(engine, "after_cursor_execute", after)
                event.remove(engine, "begin", begin)
                del engine.dialect.do_ping, engine.dialect.do_commit
        return total

    try:
        total = asyncio.run(run())
    finally:
        deps.project_for = project_for
        if known_keys is not None:
            known_keys.project = known_project
        for name, fn in originals.items():
            setattr(Store, name, fn)
    result = {name: seconds * 1000 / grants for name, seconds in spent.items()}
    result["request"] = total * 1000 / grants
    result.update({f"n:{name}": n / grants for name, n in counts.items()})
    return result


def print_profile(name: str, result: dict[str, float]) -> None:
    print(f"one grant inside the server ({name}): ms per grant, the app called in-process (no socket, no HTTP"
          " parsing)")
    parts = ("api key", "grant transaction", "rate limit")
    total = result["request"]
    for part in parts:
        print(f"  {part:<40} {result.get(part, 0.0):7.3f}")
    print(f"  {'the rest (FastAPI, validation, threads)':<40} {total - sum(result.get(p, 0.0) for p in parts):7.3f}")
    print(f"  {'the request':<40} {total:7.3f}   (CPU of every thread: {result['cpu']:.3f})")
    trips = [k[2:] for k in result if k.startswith("n:")]
    waited = sum(result.get("db:" + k, 0.0) for k in trips)
    print(f"  database round trips per grant: {sum(result['n:' + k] for k in trips):.1f} ("
          + ", ".join(f"{k} {result['n:' + k]:.1f}" for k in sorted(trips)) + f"); {waited:.3f} ms in them")


# -- main -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grants", type=int, default=400, help="measured grants per client and case")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (each on its own tenant)")
    parser.add_argument("--rounds", type=int, default=1, help="times each case is measured")
    parser.add_argument("--rate", type=float, default=25.0,
                        help="grants a second of each client in the paced case (0: no paced case)")
    parser.add_argument("--before", metavar="SRC", help="also measure a server running the code at SRC")
    parser.add_argument("--only", choices=("sqlite", "postgresql"), help="one database only")
    parser.add_argument("--profile", action="store_true", help="also profile one grant in-process")
    parser.add_argument("--postgres", default=os.environ.get("TOLLMETER_TEST_POSTGRES"), help="a PostgreSQL DSN")
    parser.add_argument("--profile-url", help=argparse.SUPPRESS)  # one profile, printed as JSON (run by --profile)
    args = parser.parse_args()
    if args.profile_url:
        print(json.dumps(profile(args.profile_url, args.grants)))
        return

    work = Path(tempfile.mkdtemp(prefix="tollmeter-leases-"))
    labels = ["before", "after"] if args.before else ["after"]
    sources = {"before": args.before, "after": None}
    databases: list[tuple[str, dict[str, tuple[str, Any]]]] = []
    if args.only != "postgresql":
        databases.append(("sqlite", {label: (f"sqlite:///{work / label}.db", lambda: None) for label in labels}))
    if args.only != "sqlite":
        if args.postgres:
            databases.append(("postgresql", {label: postgres_database(args.postgres) for label in labels}))
        else:
            print("(no PostgreSQL: give --postgres DSN or set TOLLMETER_TEST_POSTGRES)\n")

    rows = []
    profiles = []
    try:
        for name, urls in databases:
            servers = {}
            try:
                for label in labels:
                    with python_path(sources[label]):
                        servers[label] = Server(urls[label][0])
                    prepare(servers[label], args.clients)
                cases = [(1, 0.0), (args.clients, 0.0)] + ([(args.clients, args.rate)] if args.rate else [])
                for _ in range(args.rounds):
                    for clients, rate in cases:
                        for label in labels:
                            result = measure(servers[label], clients, args.grants, rate)
                            case = f"{clients}" + (f" x {rate:g}/s" if rate else "")
                            rows.append((name, label, case, result))
                            print(f"{name:<11} {label:<7} {case:>10} clients  p50 {result['p50']:6.2f}  "
                                  f"p99 {result['p99']:6.2f}  load {result['load']:.2f}", flush=True)
            finally:
                for server in servers.values():
                    server.stop()
            for label in labels if args.profile else ():
                with python_path(sources[label]):  # a process of its own: the code at SRC for "before"
                    done = subprocess.run([sys.executable, __file__, "--grants", str(args.grants),
                                           "--profile-url", urls[label][0]], capture_output=True, text=True)
                if done.returncode:
                    raise SystemExit(f"the profile failed:\n{done.stderr}")
                profiles.append((name, label, json.loads(done.stdout.strip().splitlines()[-1])))
    finally:
        for _, urls in databases:
            for _, drop in urls.values():
                drop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nPOST /v1/leases round trips (ms), one server worker; clients on the same {os.cpu_count()}-core machine,"
          " each client a process on its own tenant")
    print(f"{'database':<11} {'code':<7} {'clients':>10} {'grants':>7} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}"
          f" {'grants/s':>9} {'server CPU':>10} {'client CPU':>10} {'load':>5}")
    for name, label, clients, r in rows:
        print(f"{name:<11} {label:<7} {clients:>10} {r['grants']:>7} {r['p50']:>7.2f} {r['p95']:>7.2f} {r['p99']:>7.2f}"
              f" {r['max']:>7.1f} {r['per_s']:>9,.0f} {r['server_cpu']:>10.2f} {r['client_cpu']:>10.2f}"
              f" {r['load']:>5.2f}")
    for name, label, result in profiles:
        print()
        print_profile(f"{name}, {label}", result)


if __name__ == "__main__":
    main()
