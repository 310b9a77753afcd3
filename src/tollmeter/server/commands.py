"""`tollmeter serve | keys | db (upgrade, current, check-rollups, retention, partitions,
prune-notifications) | reprice`: the server's commands.

`register(subparsers)` adds them to the `tollmeter` parser (cli.py); `python -m tollmeter.server`
runs them on their own. Each command's `run` returns the exit status; a failure prints
`tollmeter <command>: <why>` on stderr and returns 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
import tempfile
from typing import Any, Callable, Sequence

from .settings import ENVIRONMENT, ServerSettings, parse_size

DATABASE_HELP = ("a SQLAlchemy URL (postgresql://user:pass@host/db) or a SQLite file "
                 "(default: $TOLLMETER_DATABASE_URL, else the embedded store's file)")


class CommandFailed(Exception):
    pass


def _command(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except CommandFailed as exc:
            print(f"tollmeter {args.command}: {exc}", file=sys.stderr)
            return 2
    return run


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `serve`, `keys`, `db` and `reprice` to a `tollmeter` argument parser."""
    _serve_parser(subparsers)
    _keys_parser(subparsers)
    _db_parser(subparsers)
    _reprice_parser(subparsers)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tollmeter", description="The tollmeter ingest server.")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.run(args)


def _database_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--database-url", "--db", dest="database_url", metavar="URL",
                   default=os.environ.get("TOLLMETER_DATABASE_URL"), help=DATABASE_HELP)


def _open(args: argparse.Namespace, *, migrate: bool = True) -> Any:
    """The store at --database-url, migrated to the newest schema."""
    from ..store import migrations
    from .state import open_store

    try:
        store = open_store(args.database_url)
        if migrate:
            migrations.upgrade(store.engine)
    except Exception as exc:
        raise CommandFailed(f"cannot open the database: {_reason(exc)}") from None
    return store


def _reason(exc: BaseException) -> str:
    """The first line of the driver's message (never the URL, so never a password)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- tollmeter serve -------------------------------------------------------------------------------


def _serve_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("serve", help="run the ingest server",
                            description="Run the ingest server (docs/server.md). Every flag has a TOLLMETER_* "
                                        "variable, read by every worker and by `uvicorn --factory "
                                        "tollmeter.server.app:create_app`.")
    _database_argument(p)
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000, help="default 8000")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--prices", metavar="FILE", default=os.environ.get("TOLLMETER_PRICES"),
                   help="rate card for pricing events that arrive unpriced (docs/pricing.md)")
    p.add_argument("--max-body", type=parse_size, default=None, metavar="SIZE",
                   help="largest request body as sent (default 5M)")
    p.add_argument("--max-decompressed", type=parse_size, default=None, metavar="SIZE",
                   help="largest body after gzip decompression (default 50M)")
    p.add_argument("--max-batch", type=int, default=None, metavar="N", help="most events in one batch (default 10000)")
    p.add_argument("--max-lease-ttl", type=float, default=None, metavar="SECONDS",
                   help="longest budget lease (default 300)")
    p.add_argument("--lease-concurrency", type=int, default=None, metavar="N",
                   help="lease grants a worker runs at once, the next ones in turn (default 2)")
    p.add_argument("--no-migrate", action="store_true",
                   help="do not apply migrations at start-up (refuse to start on an old schema)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--no-access-log", action="store_true", help="no line per request")
    p.set_defaults(run=_serve)


def serve_settings(args: argparse.Namespace) -> ServerSettings:
    base = ServerSettings.from_env()
    values = {
        "database_url": args.database_url or base.database_url,
        "prices": args.prices or base.prices,
        "max_body_bytes": args.max_body or base.max_body_bytes,
        "max_decompressed_bytes": args.max_decompressed or base.max_decompressed_bytes,
        "max_batch_events": args.max_batch or base.max_batch_events,
        "max_lease_ttl": args.max_lease_ttl or base.max_lease_ttl,
        "lease_concurrency": args.lease_concurrency or base.lease_concurrency,
        "migrate": base.migrate and not args.no_migrate,
        # a process that only serves: on unless the environment says off
        "freeze_heap": base.freeze_heap or os.environ.get(ENVIRONMENT["freeze_heap"], "") == "",
        "warm_reports": base.warm_reports or os.environ.get(ENVIRONMENT["warm_reports"], "") == "",
    }
    try:
        return dataclasses.replace(base, **values)  # the rest (metrics token, inference) as the environment says
    except ValueError as exc:
        raise CommandFailed(str(exc)) from None


@_command
def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        raise CommandFailed("the server needs its extra: pip install 'tollmeter[server]'") from None
    settings = serve_settings(args)
    if settings.prices:
        from ..pricing.ratecard import RateCard, RateCardError

        try:
            RateCard.load(settings.prices)
        except RateCardError as exc:
            raise CommandFailed(str(exc)) from None
    # The workers (and a reload) read the settings from the environment.
    os.environ.update(settings.to_env())
    if args.workers > 1 and settings.metrics_token and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # /metrics sums every worker's counts only through prometheus-client's multiprocess
        # directory: one of this run's own, gone when it ends.
        metrics_dir = tempfile.TemporaryDirectory(prefix="tollmeter-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir.name
    uvicorn.run("tollmeter.server.app:create_app", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level=args.log_level, access_log=not args.no_access_log,
                proxy_headers=True, server_header=False)
    return 0


# -- tollmeter keys --------------------------------------------------------------------------------


def _keys_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("keys", help="create, list and revoke the server's API keys",
                            description="API keys of the ingest server: each belongs to one project.")
    actions = p.add_subparsers(dest="action", required=True)
    c = actions.add_parser("create", help="create a key (printed once: store it now)")
    c.add_argument("--project", required=True, help="the key's project: 1-64 letters, digits, '.', '_', '-'")
    c.add_argument("--note", help="what the key is for")
    _database_argument(c)
    c.set_defaults(run=_keys_create)
    ls = actions.add_parser("list", help="list keys (never the keys themselves)")
    ls.add_argument("--project")
    _database_argument(ls)
    ls.set_defaults(run=_keys_list)
    r = actions.add_parser("revoke", help="revoke a key: by id, by its tm_<id>_... prefix, or the key itself")
    r.add_argument("key")
    _database_argument(r)
    r.set_defaults(run=_keys_revoke)


@_command
def _keys_create(args: argparse.Namespace) -> int:
    from .auth import check_project, create_key

    try:
        check_project(args.project)
    except ValueError as exc:
        raise CommandFailed(str(exc)) from None
    store = _open(args)
    try:
        record, key = create_key(store, args.project, args.note)
    finally:
        store.close()
    print(key)
    print(f"key {record.key_id} for project {record.project_id!r}: shown once, store it now", file=sys.stderr)
    return 0


@_command
def _keys_list(args: argparse.Namespace) -> int:
    from ..tables import format_table
    from .auth import list_keys

    store = _open(args)
    try:
        keys = list_keys(store, args.project)
    finally:
        store.close()
    if not keys:
        print("no keys" + (f" for project {args.project}" if args.project else ""))
        return 0
    rows = [(k.key_id, k.prefix, k.project_id, k.created_at.isoformat(timespec="seconds"),
             k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else "-", k.note or "") for k in keys]
    print(format_table(["key id", "key", "project", "created", "revoked", "note"], rows))
    return 0


@_command
def _keys_revoke(args: argparse.Namespace) -> int:
    from .auth import revoke_key

    store = _open(args)
    try:
        record = revoke_key(store, args.key)
    finally:
        store.close()
    if record is None:
        shown = "" if len(args.key) > 40 else f" {args.key!r}"  # never echo a whole key
        raise CommandFailed(f"no such key{shown}")
    print(f"revoked key {record.key_id} of project {record.project_id!r}")
    return 0


# -- tollmeter db ----------------------------------------------------------------------------------


def _db_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("db", help="database migrations of the server's store",
                            description="Migrations (Alembic) of the server's database.")
    actions = p.add_subparsers(dest="action", required=True)
    u = actions.add_parser("upgrade", help="migrate to the newest schema (the server does it at start-up too)")
    _database_argument(u)
    u.add_argument("--sql", action="store_true", help="print the SQL instead of running it")
    u.set_defaults(run=_db_upgrade)
    c = actions.add_parser("current", help="print the database's schema revision")
    _database_argument(c)
    c.set_defaults(run=_db_current)
    k = actions.add_parser("check-rollups", help="recompute the usage rollups from the raw events and compare",
                           description="Recompute every rollup (usage per hour and day, margin's per day and per "
                                       "run) from the raw events by SQL and compare (days from the retention mark "
                                       "on); exit 1 when they differ. --repair rebuilds the ones that differ.")
    _database_argument(k)
    k.add_argument("--project", help="only this project")
    k.add_argument("--repair", action="store_true", help="rebuild the rollups of the projects that differ")
    k.set_defaults(run=_db_check_rollups)
    r = actions.add_parser("retention", help="remove raw events older than some days (rollups kept)",
                           description="Remove the raw events older than --keep-days (from the UTC midnight "
                                       "before), in batches of short transactions; the rollups keep their sums, "
                                       "so usage, margin and leaks still cover those days.")
    _database_argument(r)
    r.add_argument("--keep-days", type=int, metavar="DAYS",
                   default=int(os.environ.get("TOLLMETER_RETENTION_DAYS") or 0) or None,
                   help="days of raw events to keep (default: $TOLLMETER_RETENTION_DAYS)")
    r.add_argument("--project", help="only this project")
    r.add_argument("--batch", type=int, default=10_000, help="events removed per transaction (10,000)")
    r.set_defaults(run=_db_retention)
    t = actions.add_parser("partitions",
                           help="PostgreSQL: list the monthly partitions of the events, creating those ahead",
                           description="PostgreSQL keeps the events in one partition per UTC month (created ahead "
                                       "and on demand; dropped by `db retention`). This creates the partitions of "
                                       "this month and the next --ahead ones that are missing, and lists them all.")
    _database_argument(t)
    t.add_argument("--ahead", type=int, default=None, metavar="MONTHS",
                   help="months to create ahead of the current one (default 3)")
    t.set_defaults(run=_db_partitions)
    n = actions.add_parser("prune-notifications", help="remove notifications and deliveries done long ago",
                           description="Remove the notification deliveries done (delivered or given up) and the "
                                       "notifications resolved more than --keep-days ago, in batches of short "
                                       "transactions (the server's notifier does it every hour too). A "
                                       "notification of a period not over, or still firing, is kept: it is what "
                                       "sends each threshold once per period. See docs/notifications.md.")
    _database_argument(n)
    n.add_argument("--keep-days", type=int, metavar="DAYS", default=None,
                   help="days to keep (default: $TOLLMETER_NOTIFY_KEEP_DAYS, else 30)")
    n.add_argument("--batch", type=int, default=1000, help="rows removed per transaction (1,000)")
    n.set_defaults(run=_db_prune_notifications)


@_command
def _db_upgrade(args: argparse.Namespace) -> int:
    from ..store import migrations

    if args.sql:
        from ..store.store import database_url, default_path

        migrations.upgrade_sql(database_url(args.database_url or default_path()))
        return 0
    store = _open(args, migrate=False)
    try:
        before, after = migrations.upgrade(store.engine)
    except Exception as exc:
        raise CommandFailed(f"migration failed: {_reason(exc)}") from None
    finally:
        store.close()
    print(f"database at revision {after}" + (f" (was {before or 'empty'})" if before != after else " (up to date)"))
    return 0


@_command
def _db_current(args: argparse.Namespace) -> int:
    from ..store import migrations

    store = _open(args, migrate=False)
    try:
        revision = migrations.current(store.engine)
    except Exception as exc:
        raise CommandFailed(f"cannot read the revision: {_reason(exc)}") from None
    finally:
        store.close()
    print(f"{revision or 'none'} (newest: {migrations.HEAD})")
    return 0 if revision == migrations.HEAD else 1


def _projects(store: Any, only: str | None) -> list[str]:
    from sqlalchemy import select, union

    from ..store import schema

    if only is not None:
        return [only]
    with store.transaction() as conn:
        query = union(select(schema.events.c.project_id), select(schema.usage_daily.c.project_id))
        return sorted(r[0] for r in conn.execute(query))


@_command
def _db_check_rollups(args: argparse.Namespace) -> int:
    from ..tables import format_table

    store = _open(args)
    differing = []
    rows = []
    try:
        for project in _projects(store, args.project):
            view = store.for_project(project)
            report = view.check_rollups()
            for table, counts in report.items():
                rows.append((project, table, counts["rows"], counts["missing"], counts["extra"], counts["different"]))
            if any(c["missing"] or c["extra"] or c["different"] for c in report.values()):
                differing.append(view)
        print(format_table(["project", "rollup", "rows", "missing", "extra", "different"], rows,
                           right=(2, 3, 4, 5)))
        if differing and args.repair:
            for view in differing:
                view.rebuild_rollups()
                print(f"rebuilt the rollups of {view.project}")
            return 0
    finally:
        store.close()
    print("the rollups agree with the raw events" if not differing else
          f"{len(differing)} project(s) differ: run with --repair to rebuild them")
    return 1 if differing else 0


@_command
def _db_retention(args: argparse.Namespace) -> int:
    from datetime import datetime, timedelta, timezone

    if args.keep_days is None or args.keep_days < 1:
        raise CommandFailed("--keep-days: give the days of raw events to keep (1 or more)")
    if args.batch < 1:
        raise CommandFailed("--batch must be 1 or more")
    from ..store import partitions

    before = datetime.now(timezone.utc) - timedelta(days=args.keep_days)
    store = _open(args)
    try:
        views = [store.for_project(project) for project in _projects(store, args.project)]
        with store.transaction() as conn:
            partitioned = partitions.is_partitioned(conn)
        if partitioned:  # every mark moved first: a month that all of them leave is dropped whole
            cutoffs = [view.mark_retention(before) for view in views]
            removed = partitions.remove_before(store.engine, store.transaction, [v.project for v in views],
                                               max(cutoffs, default=before), args.batch)
        else:
            removed = {view.project: view.remove_events_before(before, batch=args.batch) for view in views}
        for view in views:
            print(f"{view.project}: {removed[view.project]} raw events before {view.retention_mark():%Y-%m-%d} removed")
    finally:
        store.close()
    return 0


@_command
def _db_partitions(args: argparse.Namespace) -> int:
    from ..store import partitions
    from ..tables import format_table

    ahead = partitions.AHEAD if args.ahead is None else args.ahead
    if ahead < 0:
        raise CommandFailed("--ahead must be 0 or more")
    store = _open(args)
    try:
        with store.transaction() as conn:
            if not partitions.is_partitioned(conn):
                print("the events table is not partitioned (partitions are PostgreSQL's)")
                return 0
            created = partitions.create_ahead(conn, ahead)
        with store.transaction() as conn:
            found = partitions.list_partitions(conn)
    finally:
        store.close()
    rows = [(p.name, f"{p.lower:%Y-%m-%d}" if p.lower else "-", f"{p.upper:%Y-%m-%d}" if p.upper else "-",
             "?" if p.rows_estimate < 0 else f"{p.rows_estimate:,}", f"{p.bytes / 1e6:,.1f}",
             "detached" if p.detached else ("created" if p.name in created else "")) for p in found]
    print(format_table(["partition", "from", "to", "rows (est.)", "MB", "state"], rows, right=(3, 4)))
    return 0


@_command
def _db_prune_notifications(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from ..notifications.retention import prune
    from ..notifications.settings import NotifierSettings

    try:
        keep_days = args.keep_days if args.keep_days is not None else NotifierSettings.from_env().keep_days
    except ValueError as exc:
        raise CommandFailed(str(exc)) from None
    if keep_days < 1 or args.batch < 1:
        raise CommandFailed("--keep-days and --batch must be 1 or more")
    store = _open(args)
    try:
        pruned = prune(store, datetime.now(timezone.utc), keep_days, batch=args.batch)
    finally:
        store.close()
    print(f"removed {pruned.notifications} notifications and {pruned.deliveries} deliveries "
          f"({pruned.attempts} attempts) done more than {keep_days} days ago")
    return 0


# -- tollmeter reprice -----------------------------------------------------------------------------


def _reprice_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("reprice", help="price the stored events still unpriced",
                            description="Price the stored events that are still unpriced (say, after adding their "
                                        "model to a rate card) and add their cost to their tenant's spend.")
    _database_argument(p)
    p.add_argument("--prices", metavar="FILE", default=os.environ.get("TOLLMETER_PRICES"),
                   help="rate card (docs/pricing.md); the bundled prices otherwise")
    p.add_argument("--since", metavar="WHEN", help="only events since: 2026-11-01, 2026-11-26T09:00, 24h, 7d")
    p.add_argument("--project", help="only this project")
    p.add_argument("--no-infer", dest="infer_prices", action="store_false",
                   default=None,
                   help="leave gateway and proxy events unpriced rather than price them as the first-party "
                        "model their id names (default: as TOLLMETER_INFER_PRICES says, on)")
    p.set_defaults(run=_reprice)


@_command
def _reprice(args: argparse.Namespace) -> int:
    from ..pricing.ratecard import RateCardError
    from ..tables import format_table
    from .pricing import load_pricer, reprice
    from ..money import decimal_text

    since = None
    if args.since:
        from fastapi import HTTPException

        from .usage import parse_time

        try:
            since = parse_time(args.since, "--since")
        except HTTPException as exc:
            raise CommandFailed(str(exc.detail)) from None
    try:
        infer = ServerSettings.from_env().infer_prices if args.infer_prices is None else args.infer_prices
        pricer = load_pricer(args.prices, infer)
    except RateCardError as exc:
        raise CommandFailed(str(exc)) from None
    store = _open(args)
    try:
        result = reprice(store, pricer, since=since, project=args.project)
    finally:
        store.close()
    print(f"priced {result.priced} of {result.seen} unpriced events; ${decimal_text(result.added_usd)} added to the spend")
    if result.still_unpriced:
        print("\nstill unpriced (add these models to a rate card):\n")
        rows = sorted(((p or "-", m or "-", n) for (p, m), n in result.still_unpriced.items()), key=lambda r: -r[2])
        print(format_table(["provider", "model", "events"], rows, right=(2,)))
    return 0


