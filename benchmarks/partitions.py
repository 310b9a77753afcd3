"""PostgreSQL's monthly partitions of the events: what they cost at ingest, on disk and to migrate.

    TOLLMETER_TEST_POSTGRES=postgresql://user@127.0.0.1:5432/db .venv/bin/python benchmarks/partitions.py \
        [--rounds 20] [--migrate 200000]

1. Write: `Store.add_events` of batches of 1,000 and of 100 priced events (50 tenants, one
   run, the rollups and spend written as at ingest) into two schemas of one PostgreSQL, one at
   the revision before 0006 (the plain events table, `ON CONFLICT (project_id, event_id)`) and
   one at the newest (partitioned, `event_ids`), the two interleaved batch by batch so that
   both see the same machine; median time per batch, database time included.
2. Migration 0006 of a plain table holding `--migrate` events spread over six months: its
   duration, and the bytes per event of the plain table, of the partitions and of `event_ids`
   (indexes included).

Each schema is dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import text

from tollmeter.events import LLMEvent, Usage
from tollmeter.server.state import open_store
from tollmeter.store import migrations
from tollmeter.store.rows import event_row

from ingest import postgres_database  # benchmarks/ingest.py: a schema of its own, dropped after


def plain_revision() -> str:
    """The revision before 0006: the events in one plain table."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(migrations.alembic_config()).get_revision("0006").down_revision


def rows(count: int, spread: timedelta) -> list[dict]:
    now = datetime.now(timezone.utc)
    return [event_row(LLMEvent(
        provider="openai", model="gpt-4o", request_model="gpt-4o", endpoint="chat.completions",
        usage=Usage(input_tokens=1000, output_tokens=100), tenant_id=f"t{random.randint(0, 49)}", run_id="run-1",
        agent_id="bot", timestamp=now - spread * random.random(), cost_usd=Decimal("0.001"), priced=True,
    ).to_dict()) for _ in range(count)]


def write(dsn: str, batch: int, rounds: int) -> dict[str, float]:
    """Median seconds per batch of add_events, per layout."""
    stores, drops = {}, []
    try:
        for name, revision in (("plain", plain_revision()), ("partitioned", "head")):
            url, drop = postgres_database(dsn)
            drops.append(drop)
            store = open_store(url)
            migrations.upgrade(store.engine, revision)
            stores[name] = store.for_project("bench")
        for store in stores.values():  # warm up
            store.add_events(rows(batch, timedelta(hours=1)))
        times: dict[str, list[float]] = {name: [] for name in stores}
        for r in range(rounds):
            for name in (list(stores) if r % 2 == 0 else list(reversed(list(stores)))):
                data = rows(batch, timedelta(hours=1))
                start = time.perf_counter()
                stores[name].add_events(data)
                times[name].append(time.perf_counter() - start)
    finally:
        for store in stores.values():
            store.close()
        for drop in drops:
            drop()
    return {name: sorted(ts)[len(ts) // 2] for name, ts in times.items()}


def migrate(dsn: str, count: int) -> tuple[float, float, float, float]:
    """(seconds, bytes per event of the plain table, of the partitions, of event_ids)."""
    url, drop = postgres_database(dsn)
    store = open_store(url)
    try:
        migrations.upgrade(store.engine, plain_revision())
        view = store.for_project("bench")
        for _ in range(count // 1000):
            view.add_events(rows(1000, timedelta(days=180)))

        def size(query: str) -> int:
            with store.engine.connect() as conn:
                return conn.execute(text(query)).scalar() or 0

        plain = size("SELECT pg_total_relation_size('events')")
        start = time.perf_counter()
        migrations.upgrade(store.engine)
        took = time.perf_counter() - start
        parts = size("SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits "
                     "WHERE inhparent = 'events'::regclass")
        ids = size("SELECT pg_total_relation_size('event_ids')")
    finally:
        store.close()
        drop()
    n = count // 1000 * 1000
    return took, plain / n, parts / n, ids / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default=os.environ.get("TOLLMETER_TEST_POSTGRES"), help="a PostgreSQL DSN")
    parser.add_argument("--rounds", type=int, default=20, help="batches per layout and batch size")
    parser.add_argument("--migrate", type=int, default=200_000, help="events in the migrated table (0: skip)")
    args = parser.parse_args()
    if not args.postgres:
        raise SystemExit("give --postgres DSN or set TOLLMETER_TEST_POSTGRES")
    print(f"add_events into PostgreSQL, plain vs partitioned events, interleaved, median of {args.rounds} batches")
    print(f"{'batch':>6} {'plain µs/event':>15} {'partitioned':>12} {'extra':>7}")
    for batch in (1000, 100):
        medians = write(args.postgres, batch, args.rounds if batch == 1000 else args.rounds * 3)
        plain, parted = (medians[k] * 1e6 / batch for k in ("plain", "partitioned"))
        print(f"{batch:>6} {plain:>15.1f} {parted:>12.1f} {parted - plain:>+7.1f}")
    if args.migrate:
        took, plain, parts, ids = migrate(args.postgres, args.migrate)
        print(f"\nmigration 0006 of {args.migrate:,} events: {took:.1f} s ({args.migrate / took:,.0f} events/s)")
        print(f"bytes per event: plain table {plain:.0f}, partitions {parts:.0f}, event_ids {ids:.0f}")


if __name__ == "__main__":
    main()
