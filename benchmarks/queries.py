"""Usage, spend, margin and leak queries over 10,000,000 stored events (PostgreSQL), and budget
lease latency with 1 and 8 concurrent clients on different tenants.

    TOLLMETER_TEST_POSTGRES=postgresql://user@127.0.0.1:5432/db .venv/bin/python benchmarks/queries.py
    .venv/bin/python benchmarks/queries.py --events 10000000 --postgres DSN [--keep SCHEMA]

1. Generation, in a schema of its own: `--events` priced events spread evenly over `--days`
   UTC days ending yesterday, for `--tenants` tenants (a plan each: per_unit, usage_based or
   flat), 20 agents, 6 models of 3 providers, 2 endpoints, one run per 20 events (80% resolved);
   written by PostgreSQL itself (INSERT ... SELECT generate_series: an ingest of ten million
   events through the server would take the better part of an hour on this machine), then the
   rollups, runs and spend filled by one GROUP BY each, and `check_rollups` run on the result
   (the same recomputation `tollmeter db check-rollups` makes). `--keep SCHEMA` keeps (and
   reuses) the generated schema.
2. Queries, each run `--repeat` times (p50 and p95 in ms), in this process through the same
   functions the API calls: `Store.usage` for a month's range (starting 7 minutes past a
   midnight, so the raw edges are read too) for every grouping GET /v1/usage offers, with and
   without a tenant, and some of them kept as the API keeps them (the last day read); `Store.limit_states` (a tenant's spend against its limit); `Ledger.margin`
   by tenant, day, tenant and model, agent (its settled days kept, and after a late event:
   the whole range read); `Ledger.leaks` a few days into the month and at the end of the
   month before (every day of a month read): a process's first report, the same after the
   warming a serving process makes at start (business/warm.py, on another engine), kept, and
   after a late event.
3. The same reports through the API (`--no-api` leaves them out): GET /v1/usage, /v1/margin and
   /v1/leaks from a real server (`tollmeter serve`, one worker process) on the same schema, the
   answers read whole: a process's first and then `--repeat` more.
4. Leases: a real server (one worker process) on the same database; POST /v1/leases for
   tenants with a limit, one client, then 8 clients at once, each on its own tenant.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).parent))

from ingest import Server, percentile  # noqa: E402

from tollmeter import heap  # noqa: E402
from tollmeter.business.closed_days import usage_kept  # noqa: E402
from tollmeter.business.warm import ReportWarmer  # noqa: E402
from tollmeter.server.auth import create_key  # noqa: E402
from tollmeter.store import migrations, outcomes, partitions, revisions  # noqa: E402
from tollmeter.store.ledger import Ledger  # noqa: E402
from tollmeter.store.store import Store, weekly_from_daily  # noqa: E402

UTC = timezone.utc
PROJECT = "bench"

GENERATE = """
INSERT INTO events (project_id, event_id, timestamp, received_at, tenant_id, run_id, agent_id, tags, provider, model,
                    request_model, endpoint, stream, input_tokens, output_tokens, cache_read_tokens, usage,
                    duration_ms, partial, cost_usd, priced, price_source, price_model)
SELECT :project, 'e' || g, ts, ts, 't' || (g % :tenants), 'r' || (g / 20), 'a' || (g % 20), '{}'::json,
       (ARRAY['openai', 'anthropic', 'google'])[1 + (g % 6) / 2],
       (ARRAY['gpt-4o', 'gpt-4o-mini', 'claude-sonnet-4', 'claude-haiku-4', 'gemini-2.5-pro', 'gemini-2.5-flash'])[1 + g % 6],
       (ARRAY['gpt-4o', 'gpt-4o-mini', 'claude-sonnet-4', 'claude-haiku-4', 'gemini-2.5-pro', 'gemini-2.5-flash'])[1 + g % 6],
       CASE WHEN g % 3 = 0 THEN 'responses' ELSE 'chat.completions' END, false, inp, outp, inp / 2,
       json_build_object('input_tokens', inp, 'output_tokens', outp, 'cache_read_tokens', inp / 2),
       500 + g % 1000, false, (inp * 2.5 + outp * 10) / 1000000.0, true, 'bench', 'bench'
FROM (SELECT g, :start + (g * :step) * interval '1 microsecond' AS ts,
             100 + (g * 7919) % 8000 AS inp, 10 + (g * 104729) % 1500 AS outp
      FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g) AS s
"""

MEASURES = """count(*), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), sum(cost_usd),
       sum(CASE WHEN priced THEN 0 ELSE 1 END), sum(CASE WHEN error IS NULL THEN 0 ELSE 1 END)"""
NONE = "coalesce({0}, '')"
FILL = [
    f"""INSERT INTO usage_hourly SELECT project_id, date_trunc('hour', timestamp), {NONE.format('tenant_id')},
        {NONE.format('agent_id')}, {NONE.format('model')}, {NONE.format('provider')}, {NONE.format('endpoint')},
        {MEASURES} FROM events WHERE project_id = :project GROUP BY 1, 2, 3, 4, 5, 6, 7""",
    f"""INSERT INTO usage_daily SELECT project_id, timestamp::date, {NONE.format('tenant_id')},
        {NONE.format('agent_id')}, {NONE.format('model')}, {NONE.format('provider')}, {NONE.format('endpoint')},
        {MEASURES} FROM events WHERE project_id = :project GROUP BY 1, 2, 3, 4, 5, 6, 7""",
    f"""INSERT INTO usage_rollup SELECT project_id, {NONE.format('tenant_id')}, timestamp::date,
        {NONE.format('agent_id')}, {NONE.format('model')}, {MEASURES}
        FROM events WHERE project_id = :project GROUP BY 1, 2, 3, 4, 5""",
    f"""INSERT INTO run_rollup SELECT project_id, run_id, {NONE.format('tenant_id')}, timestamp::date,
        {NONE.format('agent_id')}, {NONE.format('model')}, {MEASURES}
        FROM events WHERE project_id = :project AND run_id IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6""",
    f"""INSERT INTO run_usage_rollup SELECT project_id, {NONE.format('tenant_id')}, timestamp::date,
        {NONE.format('agent_id')}, {NONE.format('model')}, {MEASURES}
        FROM events WHERE project_id = :project AND run_id IS NOT NULL GROUP BY 1, 2, 3, 4, 5""",
    f"""INSERT INTO tenant_rollup SELECT project_id, {NONE.format('tenant_id')}, timestamp::date, {MEASURES}
        FROM events WHERE project_id = :project GROUP BY 1, 2, 3""",
    """INSERT INTO runs (project_id, run_id, tenant_id, agent_id, first_seen, last_seen, outcome, resolved_at,
                       cost_usd)
       SELECT project_id, run_id, min(tenant_id), min(agent_id), min(timestamp), max(timestamp),
              CASE WHEN hashtext(run_id) % 5 = 0 THEN NULL
                   WHEN hashtext(run_id) % 7 = 0 THEN 'escalated' ELSE 'resolved' END,
              CASE WHEN hashtext(run_id) % 5 = 0 THEN NULL ELSE max(timestamp) + interval '1 minute' END,
              sum(cost_usd)
       FROM events WHERE project_id = :project GROUP BY 1, 2""",
    """INSERT INTO spend SELECT project_id, tenant_id, 'per_month:' || to_char(timestamp, 'YYYY-MM'), sum(cost_usd)
       FROM events WHERE project_id = :project GROUP BY 1, 2, 3""",
    """INSERT INTO spend SELECT project_id, tenant_id, 'per_day:' || to_char(timestamp, 'YYYY-MM-DD'), sum(cost_usd)
       FROM events WHERE project_id = :project GROUP BY 1, 2, 3""",
    """INSERT INTO spend SELECT project_id, tenant_id, 'total', sum(cost_usd)
       FROM events WHERE project_id = :project GROUP BY 1, 2""",
]


def with_schema(dsn: str, schema: str) -> str:
    return f"{dsn}{'&' if '?' in dsn else '?'}options=-csearch_path%3D{schema}"


def generate(url: str, events: int, days: int, tenants: int) -> None:
    store = Store(url, create=False)
    migrations.upgrade(store.engine)
    end = datetime.combine(date.today(), datetime.min.time(), UTC)
    start = end - timedelta(days=days)
    step = int((end - start).total_seconds() * 1_000_000 // events)
    chunk = 500_000
    began = time.perf_counter()
    with store.transaction() as conn:  # the months before the current one (partitions are made ahead only)
        if partitions.is_partitioned(conn):
            months, month = [], partitions.month_of(start)
            while month <= partitions.month_of(end):
                months.append(month)
                month = partitions.next_month(month)
            partitions.create_months(conn, months)
    for first in range(0, events, chunk):
        last = min(events, first + chunk) - 1
        with store.transaction() as conn:
            conn.execute(text(GENERATE), {"project": PROJECT, "tenants": tenants, "start": start, "step": step,
                                          "first": first, "last": last})
        print(f"  {last + 1:>11,} events  {time.perf_counter() - began:6.0f} s", flush=True)
    for statement in FILL:
        with store.transaction() as conn:
            conn.execute(text(statement), {"project": PROJECT})
    with store.transaction() as conn:  # the weeks from the days, as migration 0011 fills them
        weekly_from_daily(conn, PROJECT)
    with store.transaction() as conn:  # the resolved runs counted per tenant, day, agent and outcome
        outcomes.from_runs(conn, PROJECT)
    with store.transaction() as conn:
        conn.execute(text("ANALYZE"))
    ledger = Ledger(store.for_project(PROJECT))
    kinds = ({"name": "per unit", "pricing_model": "per_unit", "unit_revenue_usd": "0.5"},
             {"name": "usage", "pricing_model": "usage_based", "markup": "0.3"},
             {"name": "flat", "pricing_model": "flat", "base_revenue_usd": "400"})
    for n in range(tenants):
        ledger.upsert_customer(f"t{n}", name=f"Tenant {n}", plan=kinds[n % 3], effective_from=start.date())
    print(f"  rollups, runs, spend and plans filled  {time.perf_counter() - began:6.0f} s", flush=True)
    report = store.for_project(PROJECT).check_rollups()
    bad = {k: v for k, v in report.items() if v["missing"] or v["extra"] or v["different"]}
    print(f"  check_rollups: {'agree' if not bad else bad}  {time.perf_counter() - began:6.0f} s", flush=True)
    store.close()


def timed(fn: Callable[[], Any], repeat: int, warm: bool = True) -> tuple[float, float, int]:
    if warm:
        fn()  # plans, caches
    times = []
    size = 0
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
        size = len(result) if hasattr(result, "__len__") else len(getattr(result, "rows", ()) or ())
    return statistics.median(times), percentile(times, 0.95), size


def mark(store: Store, day: date) -> None:
    """A late event's mark on `day`, as a write to it would leave (`day_revisions`)."""
    with store.transaction() as conn:
        revisions.note(conn, store.project, [day], today=day + timedelta(days=1))


def stored_end(store: Store) -> date:
    """The day after the last day of the events stored: the day they were generated, which a
    schema kept from an earlier day (--keep) is queried as."""
    with store.report() as conn:
        last = conn.execute(text("SELECT max(day) FROM tenant_rollup WHERE project_id = :p"), {"p": PROJECT}).scalar()
    return revisions.as_date(last) + timedelta(days=1)


def queries(url: str, repeat: int, days: int, business: bool = True) -> list[tuple[str, float, float, int]]:
    store = Store(url, create=False).for_project(PROJECT)
    ledger = Ledger(store)
    end = datetime.combine(stored_end(store), datetime.min.time(), UTC)
    since = end - timedelta(days=min(days, 30)) + timedelta(minutes=7)
    until = end - timedelta(minutes=3)
    store.set_limit("t1", "per_month", 1_000_000)
    heap.for_serving()  # as `tollmeter serve` does once started: the start-up heap frozen, its GC thresholds
    print(f"load average {os.getloadavg()[0]:.1f} before the queries", flush=True)
    out = []
    for groups in (["tenant_id"], ["day"], ["model"], ["provider"], ["agent_id"], ["endpoint"],
                   ["tenant_id", "model"], ["day", "model"], ["tenant_id", "agent_id", "endpoint"], []):
        out.append((f"usage by {','.join(groups) or 'nothing'}", *timed(
            lambda g=groups: store.usage(group_by=g, since=since, until=until), repeat)))
    for groups in (["day"], ["model"], ["run_id"]):
        out.append((f"usage of one tenant by {','.join(groups)}", *timed(
            lambda g=groups: store.usage(group_by=g, since=since, until=until, tenant_id="t7"), repeat)))
    out.append(("spend: limit_states(t1)", *timed(lambda: store.limit_states("t1"), repeat)))
    first, last = since.date(), end.date()
    if business:
        # The same reports as GET /v1/usage makes them (closed_days.usage_kept), played as the
        # last day at 23:00: from the second on, the pieces before that day are kept, the day
        # read each time (a full day of events).
        clock = revisions.now
        current = last - timedelta(days=1)
        revisions.now = lambda: datetime.combine(current, datetime.min.time(), UTC) + timedelta(hours=23)
        try:
            for groups, tenant in ((["tenant_id"], None), (["day"], None), (["tenant_id", "model"], None),
                                   (["tenant_id", "agent_id", "endpoint"], None), (["run_id"], "t7")):
                report = lambda g=groups, t=tenant: usage_kept(store, g, since, until, t)
                report()  # the first: in one pass, nothing kept
                report()  # the second: the settled pieces kept
                who = f"of {tenant} " if tenant else ""
                out.append((f"usage {who}by {','.join(groups)}, kept", *timed(report, repeat, warm=False)))
        finally:
            revisions.now = clock
    if business:
        # Margin over the 30 days, played as the last day at 23:00 (`revisions.now`): the first
        # report is made in one pass; from the second on, its days before are settled and kept
        # from report to report (closed_days.margin_kept), its own read each time. Then with a
        # late event's mark on the day before, before each report: the kept part is made again.
        clock = revisions.now
        current = last - timedelta(days=1)
        revisions.now = lambda: datetime.combine(current, datetime.min.time(), UTC) + timedelta(hours=23)
        try:
            for groups in (("tenant",), ("day",), ("tenant", "model"), ("agent",)):
                report = lambda g=groups: ledger.margin(g, since=first, until=last)
                start = time.perf_counter()
                rows = len(report().rows)  # the first: made in one pass, nothing kept
                first_ms = (time.perf_counter() - start) * 1000
                out.append((f"margin by {','.join(groups)}, first", first_ms, first_ms, rows))
                report()  # the second: its settled days kept
                out.append((f"margin by {','.join(groups)}", *timed(report, repeat, warm=False)))
                times = []
                for _ in range(repeat):
                    mark(store, current - timedelta(days=1))  # not timed
                    start = time.perf_counter()
                    report()
                    times.append((time.perf_counter() - start) * 1000)
                out.append((f"margin by {','.join(groups)}, late events", statistics.median(times),
                            percentile(times, 0.95), out[-1][3]))
        finally:
            revisions.now = clock
    if business:
        # The current month to date (a few days in, as the month is when this runs), and the
        # whole of the month before, its worst case: every day of it read, its runs at their most.
        # Each played as the current day at 23:00 (`revisions.now`): its days before are closed
        # and kept from report to report (business/closed_days.py), its own read each time. The
        # first report of a process keeps nothing yet: timed alone. Then with a late event's
        # mark on the day before, before each report (a trickle of late events: what was kept
        # of the customers' running figures and the runs' flags is made again each time).
        today = last - timedelta(days=1)
        month_end = today.replace(day=1) - timedelta(days=1)
        cases = [(today, f"leaks, {today} (day {today.day} of its month)")]
        if (last - month_end.replace(day=1)).days <= days:  # the generated days cover that month
            cases.append((month_end, f"leaks, {month_end} (a month's end)"))
        clock = revisions.now
        try:
            for day, name in cases:
                revisions.now = lambda day=day: datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=23)
                # A serving process warms its kept reports at start (business/warm.py): another
                # engine (another process: nothing kept), its warming and then its first report.
                other = Store(url, create=False).for_project(PROJECT)
                try:
                    warmer = ReportWarmer(other)
                    start = time.perf_counter()
                    warmer.run()
                    warm_ms = (time.perf_counter() - start) * 1000
                    out.append((f"{name}, warming at start", warm_ms, warm_ms, len(warmer.warmed)))
                    start = time.perf_counter()
                    found = Ledger(other).leaks(today=day)
                    first_ms = (time.perf_counter() - start) * 1000
                    out.append((f"{name}, first after warming", first_ms, first_ms, len(found)))
                finally:
                    other.close()
                start = time.perf_counter()
                found = ledger.leaks(today=day)
                first_ms = (time.perf_counter() - start) * 1000
                out.append((f"{name}, first", first_ms, first_ms, len(found)))
                out.append((name, *timed(lambda day=day: ledger.leaks(today=day), repeat, warm=False)))
                late = day - timedelta(days=1)
                times = []
                for _ in range(repeat):
                    mark(store, late)  # not timed
                    start = time.perf_counter()
                    ledger.leaks(today=day)
                    times.append((time.perf_counter() - start) * 1000)
                out.append((f"{name}, late events", statistics.median(times), percentile(times, 0.95), len(found)))
        finally:
            revisions.now = clock
    for name, p50, p95, rows in out:
        print(f"  {name:<40} p50 {p50:8.1f} ms  p95 {p95:8.1f} ms  {rows} rows", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} after the queries", flush=True)
    store.close()
    return out


def answers(url: str, repeat: int, days: int) -> list[tuple[str, float, float, float, int]]:
    """The reports as a client gets them: GET from a real server (`tollmeter serve`, one worker
    process, its heap frozen at start as `serve` does, no warming) on a kept-alive connection,
    the answer's bytes read whole. Each case's first request (nothing kept in that process),
    then `repeat` more. The leak report is the server's own month to date (its clock)."""
    store = Store(url, create=False)
    try:
        end = datetime.combine(stored_end(store.for_project(PROJECT)), datetime.min.time(), UTC)
        key = create_key(store, PROJECT, "queries.py")[1]
    finally:
        store.close()
    since = (end - timedelta(days=min(days, 30)) + timedelta(minutes=7)).strftime("%Y-%m-%dT%H:%MZ")
    until = (end - timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%MZ")
    first, last = (end - timedelta(days=min(days, 30))).date().isoformat(), end.date().isoformat()
    cases = [(f"GET /v1/usage by {groups}{' of t7' if tenant else ''}",
              f"/v1/usage?group_by={groups}&since={since}&until={until}" + (f"&tenant_id={tenant}" if tenant else ""))
             for groups, tenant in (("tenant_id", None), ("day,model", None), ("tenant_id,model", None),
                                    ("tenant_id,agent_id,endpoint", None), ("run_id", "t7"))]
    cases += [(f"GET /v1/margin by {groups}", f"/v1/margin?group_by={groups}&since={first}&until={last}")
              for groups in ("tenant", "day", "tenant,model", "agent")]
    cases.append(("GET /v1/leaks (the server's month to date)", "/v1/leaks"))
    server = Server(url, key)
    out = []
    try:
        with server.client() as http:
            for name, path in cases:
                times = []
                size = 0
                for _ in range(repeat + 1):
                    start = time.perf_counter()
                    response = http.get(path)
                    times.append((time.perf_counter() - start) * 1000)
                    response.raise_for_status()
                    size = len(response.content)
                out.append((name, times[0], statistics.median(times[1:]), percentile(times[1:], 0.95), size))
    finally:
        server.stop()
    for name, first_ms, p50, p95, size in out:
        print(f"  {name:<52} first {first_ms:7.1f} ms  p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  {size:,} bytes",
              flush=True)
    return out


def leases(url: str, grants: int) -> list[tuple[int, int, float, float]]:
    server = Server(url)
    rows = []
    try:
        with server.client() as http:
            for n in range(8):
                http.put(f"/v1/limits/lease-{n}", json={"limit_usd": "1000000", "frequency": "per_month"}
                         ).raise_for_status()
        for clients in (1, 8):
            times: list[float] = []
            lock = threading.Lock()

            def work(n: int, count: int) -> None:
                with server.client() as http:
                    for _ in range(count):
                        start = time.perf_counter()
                        response = http.post("/v1/leases", json={
                            "tenant_id": f"lease-{n}", "holder": f"bench-{n}", "want_usd": "0.01",
                            "need_usd": "0.001", "ttl_seconds": 30})
                        elapsed = (time.perf_counter() - start) * 1000
                        response.raise_for_status()
                        with lock:
                            times.append(elapsed)

            work(0, 20)  # warm up
            times.clear()
            threads = [threading.Thread(target=work, args=(n, grants // clients)) for n in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            rows.append((clients, len(times), percentile(times, 0.5), percentile(times, 0.99)))
    finally:
        server.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=35, help="days of history (the month queried is the last 30)")
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--grants", type=int, default=800, help="lease requests per case")
    parser.add_argument("--postgres", default=os.environ.get("TOLLMETER_TEST_POSTGRES"))
    parser.add_argument("--keep", metavar="SCHEMA", help="keep (and reuse) the generated schema")
    parser.add_argument("--no-business", action="store_true", help="usage and spend only (no margin, leaks)")
    parser.add_argument("--no-leases", action="store_true", help="no lease benchmark")
    parser.add_argument("--no-api", action="store_true", help="no reports through a real server")
    args = parser.parse_args()
    if not args.postgres:
        raise SystemExit("give --postgres DSN or set TOLLMETER_TEST_POSTGRES")
    schema = args.keep or f"tm_queries_{secrets.token_hex(3)}"
    admin = create_engine(args.postgres.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}).first()
        if not exists:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = with_schema(args.postgres, schema)
    try:
        if not exists:
            print(f"generating {args.events:,} events in schema {schema}", flush=True)
            generate(url, args.events, args.days, args.tenants)
        results = queries(url, args.repeat, args.days, not args.no_business)
        api_rows = [] if args.no_api or args.no_business else answers(url, args.repeat, args.days)
        lease_rows = [] if args.no_leases else leases(url, args.grants)
        with admin.connect() as conn:
            # The events' monthly partitions (a partitioned table has no storage of its own) and
            # event_ids, which keeps their ids unique.
            size = conn.execute(text("SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree(:t)"),
                                {"t": f"{schema}.events"}).scalar() or 0
            size += conn.execute(text("SELECT coalesce(pg_total_relation_size(to_regclass(:t)), 0)"),
                                 {"t": f"{schema}.event_ids"}).scalar()
            rollups = conn.execute(text("SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n "
                                        "ON n.oid = c.relnamespace WHERE n.nspname = :s AND c.relkind = 'r' AND "
                                        "c.relname IN ('usage_hourly', 'usage_daily', 'usage_rollup', 'run_rollup', "
                                        "'tenant_rollup', 'run_usage_rollup', 'run_outcomes')"),
                                   {"s": schema}).scalar()
    finally:
        if not args.keep:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
    size, rollups = float(size or 0), float(rollups or 0)  # numeric sums of sizes come back as Decimal
    print(f"\n{args.events:,} events over {args.days} days, {args.tenants} tenants (PostgreSQL); "
          f"events {size / 2**30:.2f} GiB ({size / args.events * 1e6 / 2**20:.0f} MiB per million events "
          f"with their indexes and event_ids), rollups {rollups / 2**20:.0f} MiB")
    print(f"{'query (a month)':<42} {'p50 ms':>8} {'p95 ms':>8} {'rows':>7}")
    for name, p50, p95, rows in results:
        print(f"{name:<42} {p50:>8.1f} {p95:>8.1f} {rows:>7}")
    if api_rows:
        print(f"\n{'through the API (a month)':<52} {'first ms':>9} {'p50 ms':>8} {'p95 ms':>8} {'bytes':>10}")
        for name, first_ms, p50, p95, size in api_rows:
            print(f"{name:<52} {first_ms:>9.1f} {p50:>8.1f} {p95:>8.1f} {size:>10,}")
    print(f"\n{'lease grants':<12} {'clients':>8} {'grants':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for clients, count, p50, p99 in lease_rows:
        print(f"{'postgresql':<12} {clients:>8} {count:>7} {p50:>8.2f} {p99:>8.2f}")


if __name__ == "__main__":
    main()
