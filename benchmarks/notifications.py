"""Pruning the notifier's tables (notifications/retention.py): seconds to prune a backlog, and
what a pruning with nothing to remove costs (the hourly steady state), SQLite and PostgreSQL.

    .venv/bin/python benchmarks/notifications.py --rows 100000
    (--postgres defaults to $TOLLMETER_TEST_POSTGRES; --no-sqlite runs PostgreSQL alone)

Seeded directly (the rules would take hours to fire this many): `--rows` notifications resolved
in the 60 days before `--keep-days` ago, in 300 tenants' daily thresholds, and as many
deliveries done with two attempts each; plus a tenth as many of each that must stay (a `total`
limit's, resolved as long ago, whose period never ends; deliveries done within `--keep-days`). Then `prune` removes the
backlog in batches of `--batch` (timed), and prunes again with nothing left to remove (timed,
median of 5). The kept rows are counted after, as a check.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import func, insert, select

sys.path.insert(0, str(Path(__file__).parent))

import margin as seeding  # noqa: E402  (its PostgreSQL schema helper)

from tollmeter.notifications.retention import prune  # noqa: E402
from tollmeter.store import migrations, schema  # noqa: E402
from tollmeter.store.store import Store  # noqa: E402

UTC = timezone.utc


def seed(store: Store, rows: int, keep_days: int, now: datetime) -> None:
    old = now - timedelta(days=keep_days + 1)
    notifications, deliveries, attempts = [], [], []

    def add(i: int, period: str, resolved: datetime, kept: bool) -> None:
        notifications.append({"project_id": "bench", "rule": "limit", "tenant_id": f"t{i % 300:03d}",
                              "subject": ("total:80" if kept else "per_day:80") + f"#{i}", "period": period,
                              "state": "resolved", "fired_at": resolved - timedelta(hours=1), "resolved_at": resolved,
                              "detail": {"spent_usd": "8.1"}})
        delivery = secrets.token_hex(16)
        created = now - timedelta(hours=1) if kept else resolved
        deliveries.append({"delivery_id": delivery, "project_id": "bench", "endpoint_id": "e1",
                           "message_id": f"ntf_{i}", "event": "limit.threshold", "payload": {"id": f"ntf_{i}"},
                           "status": "delivered", "attempts": 2, "created_at": created, "delivered_at": created})
        for n in (1, 2):
            attempts.append({"delivery_id": delivery, "attempt": n, "project_id": "bench", "attempted_at": created,
                             "status_code": 503 if n == 1 else 200})

    for i in range(rows):
        resolved = old - timedelta(minutes=i * 60 * 24 * 60 // rows)
        add(i, f"per_day:{resolved:%Y-%m-%d}", resolved, kept=False)
    for i in range(rows, rows + rows // 10):
        add(i, "total", old, kept=True)
    for start in range(0, len(notifications), 5000):
        with store.transaction() as conn:
            conn.execute(insert(schema.notifications), notifications[start:start + 5000])
            conn.execute(insert(schema.notification_deliveries), deliveries[start:start + 5000])
            conn.execute(insert(schema.notification_attempts), attempts[2 * start:2 * start + 10000])


def bench(name: str, store: Store, args: argparse.Namespace) -> None:
    now = datetime.now(UTC)
    migrations.upgrade(store.engine)
    started = time.perf_counter()
    seed(store, args.rows, args.keep_days, now)
    print(f"{name}: seeded {args.rows:,} + {args.rows // 10:,} notifications and deliveries "
          f"in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    pruned = prune(store, now, args.keep_days, batch=args.batch)
    took = time.perf_counter() - started
    print(f"  backlog: {pruned.notifications:,} notifications, {pruned.deliveries:,} deliveries, "
          f"{pruned.attempts:,} attempts pruned in {took:.2f} s "
          f"({(pruned.notifications + pruned.deliveries) / took:,.0f} rows/s, batches of {args.batch:,})")
    idle = []
    for _ in range(5):
        started = time.perf_counter()
        prune(store, now, args.keep_days, batch=args.batch)
        idle.append(time.perf_counter() - started)
    with store.transaction() as conn:
        kept = [conn.execute(select(func.count()).select_from(t)).scalar()
                for t in (schema.notifications, schema.notification_deliveries)]
    print(f"  nothing to prune: {statistics.median(idle) * 1000:.1f} ms (median of 5); kept {kept[0]:,} "
          f"notifications and {kept[1]:,} deliveries (expected {args.rows // 10:,} each)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--keep-days", type=int, default=30)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--postgres", default=os.environ.get("TOLLMETER_TEST_POSTGRES"))
    args = parser.parse_args()
    print(f"notification pruning: Python {sys.version.split()[0]}")
    if not args.no_sqlite:
        work = Path(tempfile.mkdtemp(prefix="tollmeter-bench-notifications-"))
        store = Store(work / "notifications.db")
        try:
            bench("SQLite", store, args)
        finally:
            store.close()
            shutil.rmtree(work, ignore_errors=True)
    if args.postgres:
        url, drop = seeding.postgres_database(args.postgres, False)
        store = Store(url)
        try:
            bench("PostgreSQL", store, args)
        finally:
            store.close()
            drop()


if __name__ == "__main__":
    main()
