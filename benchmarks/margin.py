"""Margin and leak queries over a large store: seconds per query, SQLite and PostgreSQL.

    .venv/bin/python benchmarks/margin.py --events 1000000
    .venv/bin/python benchmarks/margin.py --events 1000000 --postgres postgresql://user@127.0.0.1:5432/db
    (--postgres defaults to $TOLLMETER_TEST_POSTGRES; --no-sqlite runs PostgreSQL alone)

1. Generation: `--events` priced events stored with `Store.add_events` in batches of `--batch`
   rows, in time order as an ingest would (over `--days` UTC days ending `--today`), for
   `--tenants` customers with plans of all six pricing models (a third of them changing plan
   mid-range), `--agents` agents (a few per tenant), `--models` models, `--runs` runs of which
   80% are resolved (resolved / escalated / failed). The rollups are kept by `add_events`
   itself, as at ingest. Progress is printed; generation takes minutes at a million events.
2. Queries, each timed `--repeat` times (the median is printed): `margin` over the whole range
   grouped by tenant, by day, by (tenant, model) and by run, and `leaks` (the current month
   to `--today`, pinned). Margin reads the rollups, never the raw events: the target is under
   1 s a query whatever the number of events.

`--sqlite PATH` keeps the SQLite file (and reuses it on the next run when it already holds the
events); by default it is a temporary file, removed at the end. PostgreSQL works in a schema of
its own, dropped at the end unless `--keep`.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import create_engine, text

from tollmeter.events import LLMEvent, Usage
from tollmeter.store.ledger import Ledger
from tollmeter.store.rows import event_row
from tollmeter.store.store import Store

UTC = timezone.utc
#: (model, USD per million input tokens, per million output tokens)
MODELS = [("gpt-4o", Decimal("2.5"), Decimal("10")), ("gpt-4o-mini", Decimal("0.15"), Decimal("0.6")),
          ("claude-sonnet-4", Decimal("3"), Decimal("15")), ("gemini-2.5-flash", Decimal("0.3"), Decimal("2.5"))]
MILLION = Decimal(1_000_000)


def plan_for(rng: random.Random, n: int) -> dict:
    model = ("per_unit", "per_resolution", "usage_based", "per_seat", "flat", "hybrid")[n % 6]
    amounts: dict[str, Any] = {
        "per_unit": {"unit_revenue_usd": str(rng.choice((0.5, 1, 2.5)))},
        "per_resolution": {"unit_revenue_usd": str(rng.choice((1, 3, 5)))},
        "usage_based": {"markup": str(rng.choice((0.2, 0.5, 1))), "unit_revenue_usd": "0.10"},
        "per_seat": {"seat_revenue_usd": str(rng.choice((20, 49, 99)))},
        "flat": {"base_revenue_usd": str(rng.choice((99, 499, 1999)))},
        "hybrid": {"base_revenue_usd": "299", "included_units": rng.choice((20, 100)), "unit_revenue_usd": "1.5"},
    }[model]
    return {"name": f"{model}-{n}", "pricing_model": model, **amounts}


def generate(store: Store, args: argparse.Namespace, first: date) -> None:
    rng = random.Random(args.seed)
    ledger = Ledger(store)
    tenants = [f"tenant-{n:04d}" for n in range(args.tenants)]
    started = time.perf_counter()
    # Plans: from the first day; a third of the customers change plan mid-range.
    for n, tenant in enumerate(tenants):
        ledger.upsert_customer(tenant, name=tenant.title(), plan=plan_for(rng, n), seats=rng.randint(1, 50),
                               effective_from=first)
        if n % 3 == 0:
            ledger.upsert_customer(tenant, plan=plan_for(rng, n + 1), seats=rng.randint(1, 50),
                                   effective_from=first + timedelta(days=rng.randint(10, args.days - 10)))
    # Agents: a few per tenant; runs: each belongs to one tenant and agent, and lives a few hours.
    agents = [f"agent-{n:03d}" for n in range(args.agents)]
    tenant_agents = {t: rng.sample(agents, k=min(3, len(agents))) for t in tenants}
    span = timedelta(days=args.days).total_seconds()
    runs = []
    for n in range(args.runs):
        tenant = rng.choice(tenants)
        runs.append((f"run-{n:06d}", tenant, rng.choice(tenant_agents[tenant]), rng.uniform(0, span - 6 * 3600)))
    runs.sort(key=lambda r: r[3])
    models = MODELS[:args.models]
    template = event_row(LLMEvent(provider="openai", model="m", request_model="m", endpoint="chat.completions",
                                  usage=Usage(input_tokens=1, output_tokens=1), cost_usd=Decimal(1), priced=True,
                                  price_source="benchmark").to_dict())
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    # Events in time order: 60% in runs (within a few hours of the run's start), the rest not.
    offsets = sorted(rng.uniform(0, span) for _ in range(args.events))
    in_run = 0.6
    made = 0
    for at in range(0, args.events, args.batch):
        rows = []
        for offset in offsets[at:at + args.batch]:
            if rng.random() < in_run:
                run_id, tenant, agent, begun = runs[min(int(offset / span * len(runs)), len(runs) - 1)]
            else:
                run_id, tenant = None, rng.choice(tenants)
                agent = rng.choice(tenant_agents[tenant])
            model, price_in, price_out = rng.choice(models)
            tokens_in, tokens_out = rng.randint(200, 20_000), rng.randint(20, 2_000)
            row = dict(template)
            row.update(event_id=str(uuid.uuid4()), timestamp=start + timedelta(seconds=offset), tenant_id=tenant,
                       run_id=run_id, agent_id=agent, model=model, request_model=model, input_tokens=tokens_in,
                       output_tokens=tokens_out, usage={"input_tokens": tokens_in, "output_tokens": tokens_out},
                       cost_usd=(tokens_in * price_in + tokens_out * price_out) / MILLION)
            rows.append(row)
        store.add_events(rows)
        made += len(rows)
        if made % (args.batch * 20) == 0 or made == args.events:
            elapsed = time.perf_counter() - started
            print(f"  {made:>9,} events stored  {elapsed:7.1f} s  ({made / elapsed:,.0f} events/s)", flush=True)
    # Resolutions: 80% of the runs, a few hours after they start.
    outcomes = ("resolved",) * 7 + ("escalated", "escalated", "failed")
    resolved = 0
    for run_id, tenant, agent, begun in runs:
        if rng.random() < 0.8:
            moment = start + timedelta(seconds=begun + rng.uniform(3600, 6 * 3600))
            revenue = "2.75" if rng.random() < 0.05 else None
            ledger.resolve(run_id, rng.choice(outcomes), revenue_usd=revenue, tenant_id=tenant, agent_id=agent,
                           at=moment)
            resolved += 1
    print(f"  {resolved:,} of {len(runs):,} runs resolved; generation took {time.perf_counter() - started:.1f} s",
          flush=True)


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    seconds, result = [], None
    for _ in range(repeat):
        begun = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - begun)
    return statistics.median(seconds), result


def bench(name: str, store: Store, args: argparse.Namespace, first: date, today: date) -> None:
    print(f"\n== {name}", flush=True)
    have = store.count_events()
    if have == 0:
        generate(store, args, first)
        have = store.count_events()
    else:
        print(f"  reusing the {have:,} events already stored")
    ledger = Ledger(store)
    until = today + timedelta(days=1)
    print(f"  {have:,} events stored; rollup rows: {rollup_rows(store)}")
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("margin by tenant", lambda: ledger.margin("tenant", since=first, until=until)),
        ("margin by day", lambda: ledger.margin("day", since=first, until=until)),
        ("margin by tenant, model", lambda: ledger.margin(("tenant", "model"), since=first, until=until)),
        ("margin by run", lambda: ledger.margin("run", since=first, until=until)),
        ("leaks", lambda: ledger.leaks(today=today)),
    ]
    total = None
    print(f"  {'query':<26}{'median s':>10}{'rows':>10}   (of {args.repeat})")
    for label, fn in cases:
        seconds, result = timed(fn, args.repeat)
        count = len(result) if isinstance(result, list) else len(result.rows)
        print(f"  {label:<26}{seconds:>10.3f}{count:>10,}{'   over 1 s' if seconds > 1 else ''}", flush=True)
        if label == "margin by tenant":
            total = result.total
    if total is not None:
        print(f"  total: revenue ${total.revenue_usd:,.2f}, cost ${total.cost_usd:,.2f}, margin "
              f"{total.margin_pct}%, {total.calls:,} calls, {total.runs:,} runs resolved")


def rollup_rows(store: Store) -> str:
    with store.transaction() as conn:
        usage = conn.execute(text("SELECT count(*) FROM usage_rollup WHERE project_id = :p"),
                             {"p": store.project}).scalar()
        runs = conn.execute(text("SELECT count(*) FROM run_rollup WHERE project_id = :p"),
                            {"p": store.project}).scalar()
    return f"usage {usage:,}, runs {runs:,}"


def postgres_database(dsn: str, keep: bool) -> tuple[str, Callable[[], None]]:
    """A schema of our own in the DSN's database, and a function that drops it."""
    schema = f"tm_bench_margin_{secrets.token_hex(3)}"
    admin = create_engine(dsn.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))

    def drop() -> None:
        if keep:
            print(f"  (kept PostgreSQL schema {schema})")
        else:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()

    return f"{dsn}{'&' if '?' in dsn else '?'}options=-csearch_path%3D{schema}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to store (default 1,000,000)")
    parser.add_argument("--batch", type=int, default=5_000, help="events per add_events call")
    parser.add_argument("--tenants", type=int, default=300)
    parser.add_argument("--agents", type=int, default=300)
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--models", type=int, default=4, choices=range(1, len(MODELS) + 1))
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--today", type=date.fromisoformat, default=datetime.now(UTC).date(),
                        help="the last day of the data and the day leaks are judged on (YYYY-MM-DD)")
    parser.add_argument("--repeat", type=int, default=3, help="timings per query (the median is printed)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sqlite", help="a SQLite file to keep (reused when it holds events)")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--postgres", default=os.environ.get("TOLLMETER_TEST_POSTGRES"), help="a PostgreSQL DSN")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL schema")
    args = parser.parse_args()
    if args.days < 21:
        parser.error("--days must be at least 21 (plans change mid-range)")
    first = args.today - timedelta(days=args.days - 1)
    print(f"margin benchmark: {args.events:,} events over {args.days} days ({first} .. {args.today}), "
          f"{args.tenants} tenants, {args.agents} agents, {args.runs:,} runs, {args.models} models; "
          f"Python {sys.version.split()[0]}")
    if not args.no_sqlite:
        work = None
        if args.sqlite:
            path = Path(args.sqlite)
        else:
            work = Path(tempfile.mkdtemp(prefix="tollmeter-bench-margin-"))
            path = work / "margin.db"
        store = Store(path)
        try:
            bench(f"SQLite ({path})", store, args, first, args.today)
        finally:
            store.close()
            if work is not None:
                shutil.rmtree(work, ignore_errors=True)
    if args.postgres:
        url, drop = postgres_database(args.postgres, args.keep)
        store = Store(url)
        try:
            bench("PostgreSQL", store, args, first, args.today)
        finally:
            store.close()
            drop()
    elif not args.no_sqlite:
        print("\n(no PostgreSQL: give --postgres DSN or set TOLLMETER_TEST_POSTGRES)")


if __name__ == "__main__":
    main()
