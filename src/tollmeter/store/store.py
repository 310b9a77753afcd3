"""Store: events, limits, spend and budget leases in SQLite or PostgreSQL (SQLAlchemy Core).

The embedded default is a SQLite file shared by the processes of one machine (WAL, writes
serialised with `BEGIN IMMEDIATE`); `:memory:` keeps everything in this process. The ingest
server uses the same class on SQLite or PostgreSQL. Every method is one short transaction.
"""

from __future__ import annotations

import json
import logging
import operator
import os
import secrets
import select as io_select  # `select` is SQLAlchemy's, below
import threading
import time
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_DOWN, Decimal, localcontext
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from sqlalchemy import (and_, bindparam, case, create_engine, delete, event, func, insert, inspect, or_, select,
                        text, update)
from sqlalchemy import Column, String, cast, literal_column, null
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import visitors

from ..money import EXACT
from ..limits.periods import FREQUENCIES, period_end, period_key, period_keys
from ..limits.states import Grant, Limit, LimitState, RateLimit
from ..pacing import give_way
from ..paths import default_store
from . import outcomes, partitions, revisions, schema
from .usage import period_text, raw_measures, report as usage_report, week_of, week_sql
from .schema import DEFAULT_PROJECT, Money, money_sum

logger = logging.getLogger("tollmeter")

DEFAULT_TENANT_LIMITS = "*"
_ZERO = Decimal(0)
_NANO = Decimal("0.000000001")


def default_path() -> Path:
    """`$TOLLMETER_DB`, else `$XDG_DATA_HOME/tollmeter/tollmeter.db` (~/.local/share/...)."""
    return default_store()


def database_url(target: str | os.PathLike | None) -> str:
    """A SQLAlchemy URL from a path, ':memory:', or a URL (postgresql://... is given as is)."""
    if target is None:
        target = default_path()
    text = os.fspath(target)
    if text == ":memory:":
        return "sqlite://"
    if "://" in text:
        if text.startswith("postgresql://"):
            return "postgresql+psycopg://" + text[len("postgresql://"):]
        return text
    path = Path(text).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


_int_overflow = threading.local()
_INT64 = range(-2**63, 2**63)
_INT32 = range(-2**31, 2**31)


def _int_add(a: Any, b: Any) -> Any:
    """SQLite's `int_add(a, b)`: a + b, or `a` unchanged with the overflow noted (`accumulate`
    raises it once the statement is done) when the sum is past what an INTEGER holds."""
    total = (a or 0) + (b or 0)
    if total not in _INT64:
        _int_overflow.hit = True
        return a
    return total


def _decimal_add(a: Any, b: Any) -> str | None:
    """SQLite's `decimal_add(a, b)`: exact sum of two decimal texts (NULL counts as 0), in
    whatever decimal context the thread that wrote the statement has."""
    if a is None and b is None:
        return None
    return format(EXACT.add(Decimal(str(a or 0)), Decimal(str(b or 0))), "f")


class _DecimalSum:
    """SQLite aggregate: exact sum of decimal text. A step keeps the value (SQLite calls it once
    per row: the less Python in it the better); every few thousand values, and at the end, they
    are made Decimals and added in C by `sum` (3x faster than a Decimal addition per row)."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.total: Decimal | None = None

    def step(self, value: Any) -> None:
        values = self.values
        values.append(value)  # NULLs too: left out when added
        if len(values) >= 4096:
            self._fold()

    def _fold(self) -> None:
        texts = [v if v.__class__ is str else str(v) for v in self.values if v is not None]
        self.values.clear()
        if texts:
            with localcontext(EXACT):
                self.total = sum(map(Decimal, texts), self.total if self.total is not None else _ZERO)

    def finalize(self) -> str | None:
        self._fold()
        return None if self.total is None else format(self.total, "f")


class KeyRevoked(Exception):
    """A grant asked with an API key (`key_hash`) that is revoked or unknown: nothing granted."""


class Store:
    def __init__(self, target: str | os.PathLike | None = None, *, project: str = DEFAULT_PROJECT,
                 create: bool = True) -> None:
        self.url = database_url(target)
        self.project = project
        self._engine = _engine(self.url)
        self._lock = threading.Lock() if self.url == "sqlite://" else None  # one shared connection
        #: A SQLite file: watched, so that one deleted or replaced while open is reopened.
        self._file = _WatchedFile.of(self.url, self._engine)
        if create:
            if self.url.startswith("postgresql"):  # events partitioned by month (partitions.py)
                with self.engine.begin() as conn:
                    partitions.create_partitioned_events(conn)
            schema.metadata.create_all(self.engine)
            _create_missing_indexes(self.engine)
            with self.transaction() as conn:  # a database from before the rollups: fill them once
                fill_missing_rollups(conn, quick=True)
        if self._file is not None:
            self._file.opened()

    @property
    def engine(self) -> Engine:
        return self._file.engine if self._file is not None else self._engine

    def for_project(self, project: str) -> Store:
        """The same database seen as another project (the server's per-API-key view)."""
        view = Store.__new__(Store)
        view.url, view.project, view._engine, view._lock = self.url, project, self._engine, self._lock
        view._file = self._file
        return view

    def close(self) -> None:
        if self._lock is None:
            self.engine.dispose()
            return
        # An in-memory database: its one connection may be in a transaction on another thread
        # (a lease request still under way at shutdown); closing it under that thread crashes
        # SQLite's driver, so wait for the transaction first.
        with self._lock:
            self.engine.dispose()

    @property
    def reopened(self) -> int:
        """How often the SQLite file was found deleted or replaced and reopened at its path."""
        return self._file.reopened if self._file is not None else 0

    def on_reopen(self, report: Callable[[StoreFileLost], object] | None) -> None:
        """Have `report` called with a `StoreFileLost` each time the file is reopened (also for
        the times before this call that were not reported yet)."""
        if self._file is not None:
            self._file.set_report(report)

    def transaction(self) -> Any:
        """`with store.transaction() as conn:` one transaction (a SQLAlchemy Connection), for
        the server's tables beside the store's own (API keys, repricing)."""
        if self._file is not None:
            self._file.check()  # deleted or replaced since the last transaction: reopened first
        return _Transaction(self._engine, self._lock, self._file)

    @contextmanager
    def report(self) -> Iterator[Connection]:
        """`with store.report() as conn:` a connection for a report's reads (they write nothing).

        On PostgreSQL, each statement on its own, in autocommit: at READ COMMITTED a statement
        sees what was committed when it began whether or not it is in a transaction, and a
        report's transaction cost three round trips more (BEGIN, the settings, COMMIT); under
        the leak rules' threads each round trip also waits for the interpreter lock. Its
        statements are not prepared: psycopg prepares a statement from its fifth run, and a
        prepared one may get a generic plan, made for no range in particular, which for a
        month's range was 10-40 times slower than its own (the leak rules after a few reports
        of other months: 2 s instead of 0.15); unprepared, each is planned for its own values.
        Groups are hashed in memory: the sessions' `work_mem` is set at connect (`_engine`).
        Elsewhere, a transaction (on SQLite, one snapshot for all of the report's reads)."""
        if self._engine.dialect.name != "postgresql":
            with self.transaction() as conn:
                yield conn
            return
        with self._engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")  # set back when it returns to the pool
            driver = conn.connection.dbapi_connection
            threshold = getattr(driver, "prepare_threshold", None)  # (psycopg's; None: never prepares)
            if threshold is not None:
                driver.prepare_threshold = None  # type: ignore[union-attr]
            try:
                yield conn
            finally:
                if threshold is not None:
                    driver.prepare_threshold = threshold  # type: ignore[union-attr]

    def after_fork(self) -> None:
        """In a forked child: the parent's connections are the parent's (never closed here)."""
        self.engine.dispose(close=False)
        if self._lock is not None:  # an in-memory store: its one connection is shared
            self._lock = threading.Lock()
        if self._file is not None:
            self._file.after_fork()

    # -- events ---------------------------------------------------------------------------------

    def add_events(self, rows: Sequence[Mapping[str, Any]],
                   settlements: Mapping[str, Decimal] | None = None, *,
                   extra_spend: Iterable[tuple[str, datetime, Decimal]] = (),
                   event_leases: Mapping[str, str] | None = None,
                   expired: list[str] | None = None, key_hash: str | None = None) -> list[str]:
        """Store events (those already stored are skipped: idempotent on event_id), add the
        priced ones to their tenant's spend, and take `settlements` (lease id -> USD) off the
        leases that covered them; `extra_spend` (tenant, time, USD) is spend without a stored
        priced event. `event_leases` (event id -> lease id): the cost of each event stored now
        is taken off its lease (a retried event settles nothing twice). One transaction.
        Returns the ids stored now.

        Events older than the retention mark are not stored: their raw copy may be gone, so a
        retry could not be told from a new event and would count twice in the rollups. Their
        ids are added to `expired` (logged when no list is given).

        `key_hash`: the API key the events came with (the server's), checked in the same read
        as the retention mark: KeyRevoked, nothing stored, when it is not an unrevoked key of
        this project."""
        now = _now()
        with self.transaction() as conn:
            mark, months_ready = self._batch_start(conn, rows, key_hash)
            if mark is not None:
                old = [row for row in rows if _hour(row["timestamp"]) < mark]
                if old:
                    rows = [row for row in rows if _hour(row["timestamp"]) >= mark]
                    if expired is not None:
                        expired.extend(dict.fromkeys(row["event_id"] for row in old))
                    else:
                        logger.warning("tollmeter: %d events older than the retention mark %s not stored",
                                       len(old), mark.date())
            by_id: dict[str, Mapping[str, Any]] = {}
            for row in rows:  # an id repeated in the batch: its first copy is the one stored
                by_id.setdefault(row["event_id"], row)
            inserted = self._insert_events(conn, list(by_id.values()), now, months_ready)
            stored = [by_id[event_id] for event_id in inserted]
            locks: list[str] = []
            if conn.dialect.name == "postgresql":
                # The tenants' grant locks: a grant must see this spend and these lease
                # settlements together or not at all (read committed could show it the lease
                # taken down but the spend not yet up, and lease the difference out twice).
                # Taken after the events are written (grants never read them), so that
                # concurrent batches write their events at once and queue only for the totals;
                # no deadlock: the ids' row locks are always taken before any tenant's lock, and
                # a transaction that holds tenant locks waits for no id. Taken by the first
                # part of the totals' one statement (`_one_upsert`), before any total.
                tenants = {row.get("tenant_id") for row in rows} | {t for t, _, _ in extra_spend}
                tenants.discard(None)
                locks = [self._lock_key(t) for t in sorted(tenants)]  # one order: no deadlocks
            fine, runs = _tally(stored)  # one pass over the rows for spend, rollups and runs
            # Summed per tenant and hour first (the periods of an hour are the same four), exactly.
            hourly: dict[tuple[str, datetime], Decimal] = {}
            for (hour, tenant, *_), sums in fine.items():
                if sums[_COSTED] and tenant is not None:
                    hourly[(tenant, hour)] = EXACT.add(hourly.get((tenant, hour), _ZERO), sums[_COST])
            for tenant, moment, cost in extra_spend:
                if cost is not None and tenant is not None:
                    key = (tenant, _hour(moment))
                    hourly[key] = EXACT.add(hourly.get(key, _ZERO), _decimal(cost))
            totals: dict[tuple[str, str], Decimal] = {}
            for (tenant, hour), cost in hourly.items():
                for period in period_keys(hour):
                    totals[(tenant, period)] = EXACT.add(totals.get((tenant, period), _ZERO), cost)
            run_costs: dict[tuple[Any, ...], list[Any]] = {}
            with _one_upsert(conn, locks):  # PostgreSQL: locks, spend and rollups in one round trip
                self.add_spend(conn, totals)
                _add_fine(conn, self.project, fine, run_costs=run_costs)
            _record_runs(conn, self.project, runs, run_costs)  # the runs' costs with their seen times
            settle = {lease_id: Decimal(amount) for lease_id, amount in (settlements or {}).items()}
            for event_id in inserted if event_leases else ():
                lease_id, cost = event_leases.get(event_id), by_id[event_id].get("cost_usd")
                if lease_id is not None and cost is not None:
                    settle[lease_id] = settle.get(lease_id, _ZERO) + Decimal(str(cost))
            for lease_id, amount in sorted(settle.items()):  # one lock order: no deadlocks
                self._take_from_lease(conn, lease_id, amount)
        if self._file is not None and self._file.moved():
            # The file was deleted as this batch was written (perhaps into it): write the batch
            # again into the file now at the path (idempotent there on event_id).
            self._file.reopen()
            return self.add_events(rows, settlements, extra_spend=extra_spend, event_leases=event_leases,
                                   expired=expired, key_hash=key_hash)
        return inserted

    def _batch_start(self, conn: Connection, rows: Sequence[Mapping[str, Any]],
                     key_hash: str | None) -> tuple[datetime | None, bool]:
        """`add_events`' first read, one statement: the retention mark; whether `key_hash` (if
        given) is an unrevoked key of this project (KeyRevoked if not); on PostgreSQL, whether
        the events are partitioned with the partitions of all the batch's months there."""
        marks, keys = schema.retention_marks.name, schema.api_keys.name
        sql = f"SELECT (SELECT removed_before FROM {marks} WHERE project_id = :project) AS removed_before"
        params: dict[str, Any] = {"project": self.project}
        if key_hash is not None:
            sql += (f", EXISTS (SELECT 1 FROM {keys} WHERE key_hash = :key AND project_id = :project "
                    "AND revoked_at IS NULL) AS valid")
            params["key"] = key_hash
        postgres = conn.dialect.name == "postgresql" and bool(rows)
        if postgres:
            sql += (", coalesce((SELECT relkind FROM pg_class WHERE oid = to_regclass(:events)) = 'p' "
                    "AND NOT EXISTS (SELECT 1 FROM unnest(CAST(:months AS text[])) AS n "
                    "WHERE to_regclass(n) IS NULL), false) AS ready")
            params["events"] = schema.events.name
            params["months"] = sorted({partitions.partition_name(partitions.month_of(row["timestamp"]))
                                       for row in rows})
        found = conn.execute(text(sql).columns(removed_before=schema.retention_marks.c.removed_before.type),
                             params).mappings().one()
        if key_hash is not None and not found["valid"]:
            raise KeyRevoked("invalid or revoked API key")
        return _utc(found["removed_before"]), bool(postgres and found["ready"])

    def _insert_events(self, conn: Connection, rows: Sequence[Mapping[str, Any]], now: datetime,
                       months_ready: bool = False) -> list[str]:
        """`months_ready`: the events are partitioned, the partitions of the rows' months there
        (PostgreSQL, `_batch_start`); else `partitions.ensure_months` finds out and makes them."""
        if not rows:
            return []
        if conn.dialect.name == "postgresql":
            if months_ready or partitions.ensure_months(conn, rows):  # unique ids kept by event_ids
                return self._copy_events(conn, rows, now)
            # A database not migrated to the partitioned events yet: the batch as one JSON
            # parameter (a VALUES list of every row's parameters would be parsed anew by the
            # driver on each batch); json, not jsonb: read once, its binary form would be wasted.
            values = [{**_EVENT_DEFAULTS, **row, "project_id": self.project, "received_at": now} for row in rows]
            stmt = text(f"INSERT INTO {schema.events.name} SELECT * FROM json_populate_recordset("
                        f"NULL::{schema.events.name}, CAST(:rows AS json)) "
                        "ON CONFLICT (project_id, event_id) DO NOTHING RETURNING event_id")
            return [r[0] for r in conn.execute(stmt, {"rows": _json_text(values)})]
        # SQLite: this transaction holds the write lock (BEGIN IMMEDIATE), so the ids already
        # stored can be read first and the others inserted with the driver's executemany, the
        # values bound here (_sqlite_event_insert: SQLAlchemy's per-row parameter handling, and
        # then its columns' processors, cost more than the insert).
        wanted = [row["event_id"] for row in rows]
        stored: set[str] = set()
        for at in range(0, len(wanted), 500):  # 500 parameters: within any SQLite's limit
            chunk = wanted[at:at + 500]
            stored.update(r[0] for r in conn.exec_driver_sql(
                f"SELECT event_id FROM {schema.events.name} WHERE project_id = ? "
                f"AND event_id IN ({', '.join('?' * len(chunk))})", (self.project, *chunk)))
        fresh = [row for row in rows if row["event_id"] not in stored]
        if not fresh:
            return []
        insert_sql, values_of, bind_all, received = _sqlite_event_insert(conn.dialect)
        head = [self.project, received(now)]
        params = []
        for row in fresh:
            give_way()
            try:
                values = head + list(values_of(row))
            except KeyError:  # a row that leaves columns out
                values = head + list(values_of({**_EVENT_DEFAULTS, **row}))
            bind_all(values)
            params.append(tuple(values))
        conn.exec_driver_sql(insert_sql, params)
        return [row["event_id"] for row in fresh]

    def _copy_events(self, conn: Connection, rows: Sequence[Mapping[str, Any]], now: datetime) -> list[str]:
        """PostgreSQL, partitioned events: the batch's ids claimed in `event_ids` (ON CONFLICT DO
        NOTHING RETURNING: an id another transaction is storing waits for it, then counts as
        stored), and the rows of the ids claimed now written by COPY (binary), which costs
        PostgreSQL less than half of what reading them from one JSON parameter did
        (benchmarks.md). One transaction, two round trips."""
        names, types, values_of, json_at = _copy_layout()
        int4_at = [i for i, name in enumerate(types) if name == "int4"]
        ids: Any = [row["event_id"] for row in rows]
        joined = ",".join(ids)
        if joined.count(",") == len(ids) - 1 and all(ids):
            statement, ids = partitions.CLAIM_JOINED_IDS, joined
        else:
            statement = partitions.CLAIM_IDS
        cursor = conn.connection.driver_connection.cursor()
        dbapi_error = conn.dialect.loaded_dbapi.Error
        try:
            claimed = cursor.execute(statement, {"project": self.project, "ids": ids}).fetchone()
            fresh = set(claimed[0] or ())
            if not fresh:
                return []
            # Binary: cheaper to make here and to read there than text (dates, numbers).
            statement = f"COPY {schema.events.name} ({', '.join(names)}) FROM STDIN (FORMAT BINARY)"
            with cursor.copy(statement) as copy:
                copy.set_types(types)
                head = [self.project, now]
                for row in rows:
                    if row["event_id"] in fresh:
                        try:
                            values = head + list(values_of(row))
                        except KeyError:  # a row that leaves columns out
                            values = head + list(values_of({**_EVENT_DEFAULTS, **row}))
                        for i in json_at:
                            if values[i] is not None:
                                values[i] = _json_text(values[i])
                        for i in int4_at:  # psycopg's binary int4 wraps a larger int around
                            if values[i] is not None and values[i] not in _INT32:
                                raise OverflowError(f"{names[i]} {values[i]} is past what its column holds")
                        copy.write_row(values)
        except dbapi_error as exc:
            # As SQLAlchemy raises the driver's errors everywhere else (DBAPIError: retries on a
            # deadlock, a batch stored in halves on an overflow, 503 when the database is gone).
            raise DBAPIError.instance(statement, None, exc, dbapi_error) from exc
        finally:
            cursor.close()
        return [row["event_id"] for row in rows if row["event_id"] in fresh]

    def add_spend(self, conn: Connection, totals: Mapping[tuple[str, str], Decimal]) -> None:
        """Add USD to tenants' spend, {(tenant, period key): amount}, inside `conn`'s transaction."""
        accumulate(conn, self.project, schema.spend, ("tenant_id", "period"),
                   {key: (amount,) for key, amount in totals.items()}, ("spent_usd",))

    def add_to_rollups(self, conn: Connection, rows: Iterable[Mapping[str, Any]], sign: int = 1) -> None:
        """Add stored event rows to the usage and run rollups (`sign=-1` takes them out)."""
        add_to_rollups(conn, self.project, rows, sign)

    def rebuild_rollups(self) -> int:
        """Recompute the rollups and runs' first/last seen times from the raw events (a
        consistency repair); returns the number of events read."""
        with self.transaction() as conn:
            return rebuild_rollups(conn, self.project)

    def _take_from_lease(self, conn: Connection, lease_id: str, amount: Decimal) -> None:
        t = schema.leases
        key = and_(t.c.lease_id == lease_id, t.c.project_id == self.project)
        current = conn.execute(select(t.c.remaining_usd).where(key).with_for_update()).scalar_one_or_none()
        if current is not None:
            conn.execute(update(t).where(key).values(remaining_usd=current - amount))

    # -- limits ---------------------------------------------------------------------------------

    def set_limit(self, tenant_id: str, frequency: str, limit_usd: Decimal) -> None:
        t = schema.limits
        with self.transaction() as conn:
            conn.execute(delete(t).where(_limit_key(t, self.project, tenant_id, frequency)))
            conn.execute(insert(t).values(project_id=self.project, tenant_id=tenant_id, frequency=frequency,
                                          limit_usd=limit_usd, updated_at=_now()))
            self._revoke_leases(conn, tenant_id)

    def remove_limit(self, tenant_id: str, frequency: str | None = None) -> int:
        t = schema.limits
        where = and_(t.c.project_id == self.project, t.c.tenant_id == tenant_id)
        if frequency is not None:
            where = and_(where, t.c.frequency == frequency)
        with self.transaction() as conn:
            removed = conn.execute(delete(t).where(where)).rowcount
            self._revoke_leases(conn, tenant_id)
        return removed

    def _revoke_leases(self, conn: Connection, tenant_id: str) -> None:
        """A changed limit: leases granted under the old one no longer stand."""
        if conn.dialect.name == "postgresql":
            # A grant under way read the limits as they were: wait for it to commit, so that
            # its lease is among those removed below (a grant after this one reads the new
            # limits). The default limits ('*') are read by the grants of every tenant.
            if tenant_id == DEFAULT_TENANT_LIMITS:
                conn.execute(_DEFAULTS_LOCK, {"defaults": self._defaults_key()})
            else:
                self._lock_tenant(conn, tenant_id)
        t = schema.leases
        where = t.c.project_id == self.project
        if tenant_id != DEFAULT_TENANT_LIMITS:
            where = and_(where, t.c.tenant_id == tenant_id)
        conn.execute(delete(t).where(where))

    def limits_for(self, tenant_id: str) -> list[Limit]:
        with self.transaction() as conn:
            return self._limits_for(conn, tenant_id)

    def _limits_for(self, conn: Connection, tenant_id: str) -> list[Limit]:
        t = schema.limits
        rows = conn.execute(
            select(t.c.tenant_id, t.c.frequency, t.c.limit_usd)
            .where(t.c.project_id == self.project, t.c.tenant_id.in_([tenant_id, DEFAULT_TENANT_LIMITS]))
        ).all()
        own = [Limit(tenant_id, f, amount) for tid, f, amount in rows if tid == tenant_id]
        if own:
            return _ordered(own)
        return _ordered([Limit(tenant_id, f, amount, default=True) for _, f, amount in rows])

    def all_limits(self) -> list[Limit]:
        t = schema.limits
        with self.transaction() as conn:
            rows = conn.execute(select(t.c.tenant_id, t.c.frequency, t.c.limit_usd)
                                .where(t.c.project_id == self.project)).all()
        return sorted((Limit(tid, f, amount) for tid, f, amount in rows),
                      key=lambda lim: (lim.tenant_id, FREQUENCIES.index(lim.frequency)))

    def set_rate_limit(self, tenant_id: str, requests_per_minute: int | None, tokens_per_minute: int | None) -> None:
        t = schema.rate_limits
        with self.transaction() as conn:
            conn.execute(delete(t).where(t.c.project_id == self.project, t.c.tenant_id == tenant_id))
            if requests_per_minute is not None or tokens_per_minute is not None:
                conn.execute(insert(t).values(project_id=self.project, tenant_id=tenant_id,
                                              requests_per_minute=requests_per_minute,
                                              tokens_per_minute=tokens_per_minute, updated_at=_now()))

    def rate_limit_for(self, tenant_id: str, wait: float | None = None) -> RateLimit | None:
        """The tenant's rate limits; `wait`: seconds to wait at most for a locked database."""
        t = schema.rate_limits
        with lock_wait(wait), self.transaction() as conn:
            row = conn.execute(select(t.c.requests_per_minute, t.c.tokens_per_minute)
                               .where(t.c.project_id == self.project, t.c.tenant_id == tenant_id)).first()
        return None if row is None else RateLimit(tenant_id, row[0], row[1])

    # -- spend and leases -----------------------------------------------------------------------

    def limit_states(self, tenant_id: str, at: datetime | None = None) -> list[LimitState]:
        at = at or _now()
        with self.transaction() as conn:
            return self._states(conn, tenant_id, self._limits_for(conn, tenant_id), at)

    def _states(self, conn: Connection, tenant_id: str, limits: list[Limit], at: datetime) -> list[LimitState]:
        if not limits:
            return []
        periods = {lim.frequency: period_key(lim.frequency, at) for lim in limits}
        s = schema.spend
        spent = dict(conn.execute(
            select(s.c.period, s.c.spent_usd).where(
                s.c.project_id == self.project, s.c.tenant_id == tenant_id, s.c.period.in_(list(periods.values())))
        ).all())
        ls = schema.leases
        leased = conn.execute(
            select(money_sum(ls.c.remaining_usd)).where(
                ls.c.project_id == self.project, ls.c.tenant_id == tenant_id, ls.c.expires_at > at)
        ).scalar() or _ZERO
        return [
            LimitState(lim, spent.get(periods[lim.frequency], _ZERO), max(leased, _ZERO),
                       period_end(lim.frequency, at))
            for lim in limits
        ]

    def spent(self, tenant_id: str, at: datetime | None = None) -> dict[str, Decimal]:
        """Settled spend in the current period of every frequency."""
        at = at or _now()
        keys = {freq: period_key(freq, at) for freq in FREQUENCIES}
        s = schema.spend
        with self.transaction() as conn:
            rows = dict(conn.execute(select(s.c.period, s.c.spent_usd).where(
                s.c.project_id == self.project, s.c.tenant_id == tenant_id,
                s.c.period.in_(list(keys.values())))).all())
        return {freq: rows.get(key, _ZERO) for freq, key in keys.items()}

    def grant(self, tenant_id: str, holder: str, want: Decimal, *, ttl: float, need: Decimal = _ZERO,
              lease_id: str | None = None, at: datetime | None = None,
              want_fraction: Decimal | None = None, wait: float | None = None) -> Grant:
        """Lease budget to `holder` (a new lease, or more on `lease_id`): `need` USD at least,
        or nothing when the limits do not leave that much; up to `want` (or `want_fraction` of
        the tenant's smallest limit, if more: a holder that does not know the limits yet asks
        so), but never more than a quarter of what is left beyond the need, so that near a
        limit every process's lease shrinks and little budget sits unused in one process while
        another is refused. What the limits leave is the limit minus settled spend minus every
        active lease. `wait`: seconds to wait at most for a locked database (`transaction`)."""
        return self.grant_with_rate_limit(tenant_id, holder, want, ttl=ttl, need=need, lease_id=lease_id, at=at,
                                          want_fraction=want_fraction, wait=wait)[0]

    def grant_with_rate_limit(self, tenant_id: str, holder: str, want: Decimal, *, ttl: float,
                              need: Decimal = _ZERO, lease_id: str | None = None, at: datetime | None = None,
                              want_fraction: Decimal | None = None, wait: float | None = None,
                              key_hash: str | None = None) -> tuple[Grant, RateLimit | None]:
        """`grant`, and the tenant's rate limits as they stand (what a lease answer carries),
        read with its limits: one transaction, on PostgreSQL the tenant's lock, one read, one
        write (two for a new lease) and the commit. `key_hash`: the grant stands only if that API
        key of the project is unrevoked when its state is read (the server's check of a key it
        knows, made by the same read: no round trip of its own); else `KeyRevoked`, nothing
        written."""
        at = at or _now()
        with lock_wait(wait), self.transaction() as conn:
            if conn.dialect.name == "postgresql":
                if wait is not None:
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {max(1, int(wait * 1000))}")
                # Grants of one tenant one at a time (SQLite: BEGIN IMMEDIATE does it), or two
                # replicas could lease the same budget out twice; and none while its limits or
                # the default ones change (`_revoke_leases`). Its own statement: the read below
                # must take its snapshot once the locks are held (read committed).
                conn.execute(_GRANT_LOCK, {"key": self._lock_key(tenant_id),
                                           "defaults": self._defaults_key()})
            limits, states, rate, key_valid = self._grant_state(conn, tenant_id, at, key_hash)
            if key_hash is not None and not key_valid:
                raise KeyRevoked("invalid or revoked API key")
            if not limits:
                return Grant(None, _ZERO, _ZERO, None), rate
            available = min(state.available_usd for state in states)
            if want_fraction is not None:
                want = max(want, min(lim.limit_usd for lim in limits) * want_fraction)
            if available < need or available <= 0:
                granted = _ZERO
            else:
                granted = min(want, max(need, need + (available - need) / 4), available)
                granted = granted.quantize(_NANO, rounding=ROUND_DOWN) if granted > need else granted
            resets = [s.resets_at for s in states if s.resets_at is not None]
            expires = min([at + timedelta(seconds=ttl), *resets])
            lease_id, remaining = self._lease_out(conn, tenant_id, holder, lease_id, granted, expires, at)
            return Grant(lease_id, granted, remaining, expires, tuple(states)), rate

    def _grant_state(self, conn: Connection, tenant_id: str, at: datetime, key_hash: str | None = None
                     ) -> tuple[list[Limit], list[LimitState], RateLimit | None, bool]:
        """The tenant's limits (its own, else the defaults), their spend and active leases, its
        rate limits, and whether the API key of hash `key_hash` is a valid key of the project:
        one statement (`_GRANT_STATE`)."""
        keys = period_keys(at)
        params = {"project": self.project, "tenant": tenant_id, "defaults": DEFAULT_TENANT_LIMITS, "at": at,
                  "key_hash": key_hash, **{f"period_{n}": key for n, key in enumerate(keys)}}
        own: list[Limit] = []
        defaults: list[Limit] = []
        spent: dict[str, Decimal] = {}
        leased, rate, key_valid = _ZERO, None, False
        for kind, name, frequency, usd, per_minute, tokens in conn.execute(_GRANT_STATE, params):
            if kind == "key":
                key_valid = True
            elif kind == "limit":
                (own if name == tenant_id else defaults).append(
                    Limit(tenant_id, frequency, usd, default=name != tenant_id))
            elif kind == "spend":
                spent[name] = usd
            elif kind == "leased":
                leased = usd or _ZERO
            else:
                rate = RateLimit(tenant_id, per_minute, tokens)
        limits = _ordered(own or defaults)
        by_frequency = dict(zip(FREQUENCIES, keys))
        return limits, [
            LimitState(lim, spent.get(by_frequency[lim.frequency], _ZERO), max(leased, _ZERO),
                       period_end(lim.frequency, at))
            for lim in limits
        ], rate, key_valid

    def _lease_out(self, conn: Connection, tenant_id: str, holder: str, lease_id: str | None, granted: Decimal,
                   expires: datetime, at: datetime) -> tuple[str | None, Decimal]:
        """Add `granted` to the holder's active lease `lease_id` (a new expiry even if 0), or
        lease it anew; (the lease, its remaining budget), or (None, 0) for nothing granted."""
        if lease_id is not None:
            remaining = conn.execute(_extend_lease(conn.dialect.name), {
                "project": self.project, "tenant": tenant_id, "lease": lease_id, "granted": granted,
                "expires": expires, "at": at}).scalar_one_or_none()
            if remaining is not None:
                return lease_id, remaining
        if granted <= 0:
            return None, _ZERO
        # Lapsed leases count for nothing; they are removed as new ones are made (agents
        # mostly extend theirs). SKIP LOCKED: a grant of another tenant never waits here.
        conn.execute(_SWEEP_LEASES, {"project": self.project, "at": at})
        lease_id = secrets.token_hex(12)
        conn.execute(insert(schema.leases).values(lease_id=lease_id, project_id=self.project, tenant_id=tenant_id,
                                                  holder=holder, remaining_usd=granted, expires_at=expires))
        return lease_id, granted

    def _lock_tenant(self, conn: Connection, tenant_id: str) -> None:
        """PostgreSQL: the tenant's budget lock, held to the end of the transaction."""
        conn.execute(_TENANT_LOCK, {"key": self._lock_key(tenant_id)})

    def _lock_key(self, tenant_id: str) -> str:
        return f"tollmeter-lease:{self.project}:{tenant_id}"

    def _defaults_key(self) -> str:
        """The lock of the project's default limits (read by every tenant's grants)."""
        return f"tollmeter-limits:{self.project}"

    def release(self, lease_id: str) -> None:
        """Give a lease's unspent budget back."""
        with self.transaction() as conn:
            conn.execute(delete(schema.leases).where(schema.leases.c.lease_id == lease_id,
                                                     schema.leases.c.project_id == self.project))

    def claim_alert(self, tenant_id: str, period: str, threshold: str) -> bool:
        """True for the first caller only: the alert is this process's to send."""
        t = schema.alerts
        with self.transaction() as conn:
            result = conn.execute(_insert(conn, t).values(
                project_id=self.project, tenant_id=tenant_id, period=period, threshold=threshold, sent_at=_now()
            ).on_conflict_do_nothing(index_elements=["project_id", "tenant_id", "period", "threshold"])
                .returning(t.c.tenant_id))
            # Not rowcount: psycopg reports -1 for INSERT ... ON CONFLICT DO NOTHING.
            return result.first() is not None

    # -- reports --------------------------------------------------------------------------------

    def usage(self, *, group_by: Sequence[str], since: datetime | None = None,
              until: datetime | None = None, tenant_id: str | None = None) -> list[dict[str, Any]]:
        """Calls, tokens and cost grouped by event columns (tenant_id, model, provider, agent_id,
        run_id, endpoint) or by "day", over [since, until): from the rollups, and from the raw
        events only for the minutes at the ends of the range outside a whole hour (usage.py),
        so the cost does not grow with the history; grouped by run_id with provider or
        endpoint, from the raw events (no rollup has both)."""
        with self.report() as conn:
            return usage_report(conn, self.project, group_by, _utc(since), _utc(until), tenant_id)

    def usage_from_events(self, *, group_by: Sequence[str], since: datetime | None = None,
                          until: datetime | None = None, tenant_id: str | None = None) -> list[dict[str, Any]]:
        """`usage` read from the raw events alone (what the rollups are checked against)."""
        e = schema.events
        keys = [period_text(self.engine.dialect.name, e.c.timestamp, "day").label("day") if name == "day"
                else e.c[name] for name in group_by]
        query = select(*keys, *raw_measures()).where(e.c.project_id == self.project)
        if since is not None:
            query = query.where(e.c.timestamp >= since)
        if until is not None:
            query = query.where(e.c.timestamp < until)
        if tenant_id is not None:
            query = query.where(e.c.tenant_id == tenant_id)
        if keys:
            query = query.group_by(*keys).order_by(*keys)
        with self.transaction() as conn:
            rows = conn.execute(query).mappings().all()
        return [{**row, "cost_usd": row["cost_usd"] or _ZERO} for row in rows]

    # -- retention ------------------------------------------------------------------------------

    def remove_events_before(self, before: datetime, *, batch: int = 10_000,
                             pause: Callable[[], None] | None = None) -> int:
        """Remove the raw events of this project older than the UTC midnight on or before
        `before`, `batch` at a time (one short transaction each, so ingest never waits long),
        the rollups kept as they are. Records the cutoff (`retention_mark`). Returns the number
        of events removed. On PostgreSQL's partitioned events, whole months are dropped where
        no other project keeps events (partitions.py)."""
        cutoff = self.mark_retention(before)
        e = schema.events
        with self.transaction() as conn:
            partitioned = partitions.is_partitioned(conn)
        if partitioned:
            return partitions.remove_before(self.engine, self.transaction, [self.project], cutoff, batch,
                                            pause)[self.project]
        removed = 0
        while True:
            with self.transaction() as conn:
                ids = select(e.c.event_id).where(e.c.project_id == self.project, e.c.timestamp < cutoff).limit(batch)
                done = conn.execute(delete(e).where(e.c.project_id == self.project,
                                                    e.c.event_id.in_(ids.scalar_subquery()))).rowcount
            removed += done
            if done < batch:
                return removed
            if pause is not None:
                pause()

    def mark_retention(self, before: datetime) -> datetime:
        """Move the retention mark to the UTC midnight on or before `before` (never back):
        events older are refused from now on. Returns that midnight."""
        cutoff = _utc(before).replace(hour=0, minute=0, second=0, microsecond=0)
        marks = schema.retention_marks
        with self.transaction() as conn:
            current = conn.execute(select(marks.c.removed_before).where(
                marks.c.project_id == self.project)).scalar_one_or_none()
            if current is None:
                conn.execute(insert(marks).values(project_id=self.project, removed_before=cutoff))
            elif _utc(current) < cutoff:
                conn.execute(update(marks).where(marks.c.project_id == self.project).values(removed_before=cutoff))
        return cutoff

    def retention_mark(self) -> datetime | None:
        """The UTC midnight before which retention removed this project's raw events (None: never)."""
        with self.transaction() as conn:
            return retention_mark(conn, self.project)

    def check_rollups(self) -> dict[str, dict[str, int]]:
        """Compare the usage rollups with sums recomputed from the raw events by SQL (days and
        hours from the retention mark on): {table: {"rows": rows compared, "missing": ...,
        "extra": ..., "different": ...}}; all zero but "rows" when they agree."""
        with self.transaction() as conn:
            return check_rollups(conn, self.project)

    def count_events(self) -> int:
        with self.transaction() as conn:
            return conn.execute(select(func.count()).select_from(schema.events)
                                .where(schema.events.c.project_id == self.project)).scalar_one()


try:  # the server's extra: JSON written at several times the standard library's speed
    import msgspec

    _json_bytes = msgspec.json.Encoder(decimal_format="string").encode

    def _json_text(value: Any) -> str | None:
        return None if value is None else _json_bytes(value).decode()
except ImportError:  # the embedded store alone
    def _json_text(value: Any) -> str | None:
        return None if value is None else json.dumps(value, default=_json_value, separators=(",", ":"))

_SQLITE_INSERTS: dict[int, tuple[str, Any, Callable[[list[Any]], None], Any]] = {}


def _sqlite_event_insert(dialect: Any) -> tuple[str, Any, Callable[[list[Any]], None], Any]:
    """The SQLite INSERT of an event row (project_id and received_at first), a function from
    the row to the values of the other columns in their order, a function binding those values
    in place (`_binder_of` the binding of each column that has one, by position: (position,
    class, fast, bind) - a value of that class is bound by `fast` (None: as it is), any other
    by `bind`, the column type's own processor (JSON columns as compact JSON text)) - and the
    binding of received_at."""
    cached = _SQLITE_INSERTS.get(id(dialect))
    if cached is None:
        first = [schema.events.c.project_id, schema.events.c.received_at]
        columns = first + [c for c in schema.events.columns if c not in first]
        binds = []
        for i, column in enumerate(columns):
            if isinstance(column.type, schema.JSON):
                binds.append((i, dict, _json_text, _json_text))
                continue
            bind = column.type.dialect_impl(dialect).bind_processor(dialect)
            if bind is None:
                continue
            kind, fast = object, None  # no class is object itself: every value by `bind`
            if isinstance(column.type, schema.Money):
                kind, fast = Decimal, _decimal_text
            elif isinstance(column.type, schema.DateTime) and _same_binding(bind, _sqlite_time, _SAMPLE_TIMES):
                kind, fast = datetime, _sqlite_time
            elif isinstance(column.type, schema.Boolean) and _same_binding(bind, int, (True, False)):
                kind = bool  # sqlite3 binds True and False as 1 and 0
            elif isinstance(column.type, schema.Float):
                kind = float
            binds.append((i, kind, fast, bind))
        names = [c.name for c in columns]
        sql = f"INSERT INTO {schema.events.name} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})"
        [received] = [bind for i, _, _, bind in binds if i == 1]
        cached = (sql, operator.itemgetter(*names[len(first):]), _binder_of([b for b in binds if b[0] > 1]), received)
        _SQLITE_INSERTS[id(dialect)] = cached
    return cached


def _binder_of(binds: list[tuple[int, type, Any, Any]]) -> Callable[[list[Any]], None]:
    """A function binding a row's values in place, straight-line code of `binds` (position,
    class, fast, bind): a value of that class by `fast` (None: as it is), another by `bind`,
    None as it is. A loop over the binds cost a third of the Python of a row."""
    lines = ["def bind_all(values):"]
    env: dict[str, Any] = {}
    for n, (i, kind, fast, bind) in enumerate(binds):
        env[f"k{n}"], env[f"f{n}"], env[f"b{n}"] = kind, fast, bind
        lines.append(f"    x = values[{i}]")
        if fast is None:
            lines.append(f"    if x is not None and x.__class__ is not k{n}: values[{i}] = b{n}(x)")
        else:
            lines.append(f"    if x is not None: values[{i}] = f{n}(x) if x.__class__ is k{n} else b{n}(x)")
    lines.append("    return None")
    exec(compile("\n".join(lines), "<tollmeter.store bind_all>", "exec"), env)  # noqa: S102 - our own source
    return env["bind_all"]


def _decimal_text(value: Decimal) -> str:
    return format(value, "f")


def _sqlite_time(value: datetime) -> str:
    """SQLAlchemy's SQLite DATETIME text of a datetime (its fields, the offset left out),
    without the dict of fields its processor builds for each value."""
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (value.year, value.month, value.day, value.hour, value.minute,
                                                 value.second, value.microsecond)


_SAMPLE_TIMES = (datetime(2026, 12, 5, 7, 8, 9, 123456, tzinfo=timezone.utc), datetime(2000, 1, 1),
                 datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-3))))


def _same_binding(bind: Any, fast: Any, samples: Iterable[Any]) -> bool:
    """Whether `fast` binds the samples as the column type's own processor does (else that
    processor is used: a dialect with another storage format)."""
    return all(fast(sample) == bind(sample) for sample in samples)


_COPY_LAYOUT: list[tuple[list[str], list[str], Any, list[int]]] = []
#: The PostgreSQL type each kind of column is dumped as in COPY (JSON columns as their text:
#: json's binary form is its text).
_COPY_TYPES = ((schema.Money, "numeric"), (schema.JSON, "text"), (schema.String, "text"),
               (schema.DateTime, "timestamptz"), (schema.Boolean, "bool"), (schema.BigInteger, "int8"),
               (schema.Integer, "int4"), (schema.Float, "float8"))


def _copy_layout() -> tuple[list[str], list[str], Any, list[int]]:
    """The events' columns for COPY (project_id and received_at first), their types as COPY
    dumps them, a function from a row to the values of the others in their order, and the
    positions of the JSON columns (given as JSON text)."""
    if not _COPY_LAYOUT:
        # project_id and received_at first: the ingest's own, not the row's
        first = [schema.events.c.project_id, schema.events.c.received_at]
        columns = first + [c for c in schema.events.columns if c not in first]
        types = [next(name for kind, name in _COPY_TYPES if isinstance(c.type, kind)) for c in columns]
        names = [c.name for c in columns]
        json_at = [i for i, c in enumerate(columns) if isinstance(c.type, schema.JSON)]
        _COPY_LAYOUT.append((names, types, operator.itemgetter(*names[len(first):]), json_at))
    return _COPY_LAYOUT[0]


def _create_missing_indexes(engine: Engine) -> None:
    """The indexes a table made by an older version lacks (`create_all` makes only missing
    tables): what a migration adds on a server, and those a later version replaced dropped
    (`schema.RETIRED_INDEXES`). The events table is left to partitions.py, and an index on
    columns the table lacks (or only on another database) to the migrations."""
    with engine.begin() as conn:
        have = inspect(conn)
        for table in schema.metadata.sorted_tables:
            if table is schema.events or not table.indexes:
                continue
            names = {i["name"] for i in have.get_indexes(table.name)}
            columns = {c["name"] for c in have.get_columns(table.name)}
            for index in table.indexes:
                if index.name in names or (index in schema.COSTLY_RUN_INDEXES and conn.dialect.name != "postgresql"):
                    continue
                used = {c.name for c in index.columns}
                where = index.dialect_options["postgresql"]["where"]
                if where is not None:
                    used |= {c.name for c in visitors.iterate(where) if isinstance(c, Column)}
                if used <= columns:
                    index.create(conn)
        for table, name in schema.RETIRED_INDEXES:
            if name in {i["name"] for i in have.get_indexes(table)}:
                conn.execute(text(f"DROP INDEX {name}"))


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def retention_mark(conn: Connection, project: str) -> datetime | None:
    marks = schema.retention_marks
    mark = conn.execute(select(marks.c.removed_before).where(marks.c.project_id == project)).scalar_one_or_none()
    return _utc(mark)


def check_rollups(conn: Connection, project: str) -> dict[str, dict[str, int]]:
    """`Store.check_rollups` inside `conn`'s transaction. Both sides are read as streams in
    one key order and walked together, so memory stays flat at millions of rollup rows."""
    mark = retention_mark(conn, project)
    dialect = conn.dialect.name
    e = schema.events
    report: dict[str, dict[str, int]] = {}
    none = schema.NONE_KEY
    tables = [
        (schema.usage_hourly, "hour", ("hour", *schema.USAGE_KEYS)),
        (schema.usage_daily, "day", ("day", *schema.USAGE_KEYS)),
        (schema.usage_rollup, "day", ("tenant_id", "day", "agent_id", "model")),
        (schema.tenant_rollup, "day", ("tenant_id", "day")),
        (schema.run_rollup, "day", ("run_id", "tenant_id", "day", "agent_id", "model")),
        (schema.run_usage_rollup, "day", ("tenant_id", "day", "agent_id", "model")),
    ]

    def ordered(keys: list[Any]) -> list[Any]:  # code point order on both databases, as Python's
        return [k.collate("C") for k in keys] if dialect == "postgresql" else keys

    streaming = conn.execution_options(stream_results=True, yield_per=5000)

    def rows(result: Any, width: int, skip_zero: bool) -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...]]]:
        for row in result:
            values = tuple((_decimal(v) if v is not None else _ZERO) if m == "cost_usd" else int(v or 0)
                           for m, v in zip(schema.ROLLUP_MEASURES, row[width:]))
            if skip_zero and not any(values):  # a row all zero (taken out by a reprice) is no row
                continue
            yield tuple(row[:width]), values

    for table, unit, keys in tables:
        period = table.c.hour if unit == "hour" else table.c.day
        stored_keys = ordered([period_text(dialect, period, unit) if k in ("hour", "day") else table.c[k]
                               for k in keys])
        query = select(*stored_keys, *(table.c[m] for m in schema.ROLLUP_MEASURES)).where(table.c.project_id == project)
        if mark is not None:
            query = query.where(period >= (mark if unit == "hour" else mark.date()))
        raw_keys = ordered([period_text(dialect, e.c.timestamp, unit) if k in ("hour", "day") else
                            func.coalesce(e.c[k], none) for k in keys])
        raw = select(*raw_keys, *raw_measures()).where(e.c.project_id == project)
        if mark is not None:
            raw = raw.where(e.c.timestamp >= mark)
        if table is schema.run_rollup or table is schema.run_usage_rollup:
            raw = raw.where(e.c.run_id.is_not(None), e.c.run_id != "")
        stored = rows(streaming.execute(query.order_by(*stored_keys)), len(keys), True)
        expected = rows(streaming.execute(raw.group_by(*raw_keys).order_by(*raw_keys)), len(keys), False)
        report[table.name] = _compare(stored, expected)
    # The weeks against the days summed by week: every day of them, those before the retention
    # mark too (kept, as the weeks are), the days themselves checked against the events above.
    w, d = schema.usage_weekly, schema.usage_daily
    week_keys = ordered([period_text(dialect, w.c.week, "day"), *(w.c[k] for k in schema.USAGE_KEYS)])
    day_keys = ordered([period_text(dialect, week_sql(dialect, d.c.day), "day"), *(d.c[k] for k in schema.USAGE_KEYS)])
    stored = rows(streaming.execute(select(*week_keys, *(w.c[m] for m in schema.ROLLUP_MEASURES))
                                    .where(w.c.project_id == project).order_by(*week_keys)), len(week_keys), True)
    expected = rows(streaming.execute(select(*day_keys, *_summed_measures(d)).where(d.c.project_id == project)
                                      .group_by(*day_keys).order_by(*day_keys)), len(day_keys), True)
    report[w.name] = _compare(stored, expected)
    # Each run's cost to date against its run_rollup rows (all of them: those before the
    # retention mark too, whose events are gone); a run without a cost is no row.
    c, r = schema.runs, schema.run_rollup
    run_keys = ordered([c.c.run_id]), ordered([r.c.run_id])
    stored = ((tuple(row[:1]), (_decimal(row[1]),)) for row in streaming.execute(
        select(*run_keys[0], c.c.cost_usd).where(c.c.project_id == project).order_by(*run_keys[0]))
        if _decimal(row[1]))
    expected = ((tuple(row[:1]), (_decimal(row[1]),)) for row in streaming.execute(
        select(*run_keys[1], money_sum(r.c.cost_usd)).where(r.c.project_id == project)
        .group_by(*run_keys[1]).order_by(*run_keys[1])) if row[1] is not None and _decimal(row[1]))
    report["run_costs"] = _compare(stored, expected)
    report[schema.run_outcomes.name] = _compare(*outcomes.streams(conn, project, ordered))
    return report


def _compare(stored: Iterator[tuple[tuple[Any, ...], tuple[Any, ...]]],
             expected: Iterator[tuple[tuple[Any, ...], tuple[Any, ...]]]) -> dict[str, int]:
    """Walk two streams of (key, values) in one key order together: rows expected, missing
    from the stored side, extra on it, and different."""
    counts = {"rows": 0, "missing": 0, "extra": 0, "different": 0}
    have, want = next(stored, None), next(expected, None)
    while have is not None or want is not None:
        if want is not None and (have is None or want[0] < have[0]):
            counts["rows"] += 1
            counts["missing"] += 1
            want = next(expected, None)
        elif have is not None and (want is None or have[0] < want[0]):
            counts["extra"] += 1
            have = next(stored, None)
        else:
            counts["rows"] += 1
            counts["different"] += have[1] != want[1]  # type: ignore[index]
            have, want = next(stored, None), next(expected, None)
    return counts


#: Every column an event row may leave out, so that all rows of an executemany have the same keys.
_EVENT_DEFAULTS: dict[str, Any] = {
    column.name: None for column in schema.events.columns if column.name not in ("project_id", "received_at")
}
_EVENT_DEFAULTS.update(stream=False, partial=False, priced=False)


def add_to_rollups(conn: Connection, project: str, rows: Iterable[Mapping[str, Any]], sign: int = 1) -> None:
    """Add stored event rows to the usage and run rollups of `project` (`sign=-1` takes them
    out), inside `conn`'s transaction: the rollups are exact sums of the stored events."""
    _add_fine(conn, project, _tally(rows)[0], sign)


#: Where `_tally`'s sums keep the cost, and the count of costs given (not a rollup measure).
_COST, _COSTED = 4, 7
#: The values of a row `_tally` reads, in one call.
_TALLIED_NAMES = ("timestamp", "cost_usd", "tenant_id", "agent_id", "run_id", "model", "provider", "endpoint",
                  "input_tokens", "output_tokens", "cache_read_tokens", "priced", "error")
_TALLIED = operator.itemgetter(*_TALLIED_NAMES)


def _tally(rows: Iterable[Mapping[str, Any]]) -> tuple[dict[tuple[Any, ...], list[Any]], dict[str, list[Any]]]:
    """One pass over stored event rows: their measures summed per finest key (hour, tenant as
    given, agent, model, provider, endpoint, run), exactly, and the runs they belong to (run id
    -> [tenant, agent, first seen, last seen], see_runs)."""
    fine: dict[tuple[Any, ...], list[Any]] = {}
    seen: dict[str, list[Any]] = {}
    none = schema.NONE_KEY
    with localcontext(EXACT):  # a sum of costs of 30 digits each needs more than 28
        for row in rows:
            give_way()
            try:
                (moment, cost, tenant, agent, run, model, provider, endpoint, inputs, outputs, cache_reads, priced,
                 error) = _TALLIED(row)
            except KeyError:  # a row that leaves columns out
                moment = row["timestamp"]
                (cost, tenant, agent, run, model, provider, endpoint, inputs, outputs, cache_reads, priced,
                 error) = (row.get(name) for name in _TALLIED_NAMES[1:])
            key = (_hour(moment), tenant, agent or none, model or none, provider or none, endpoint or none,
                   run or None)
            sums = fine.get(key)
            if sums is None:
                sums = fine[key] = [0, 0, 0, 0, _ZERO, 0, 0, 0]
            sums[0] += 1
            if inputs:
                sums[1] += inputs
            if outputs:
                sums[2] += outputs
            if cache_reads:
                sums[3] += cache_reads
            if cost is not None:
                sums[4] += cost if cost.__class__ is Decimal else _decimal(cost)
                sums[7] += 1
            if not priced:
                sums[5] += 1
            if error is not None:
                sums[6] += 1
            if run:
                known = seen.get(run)
                if known is None:
                    seen[run] = [tenant, agent, moment, moment]
                else:
                    known[0] = known[0] or tenant
                    known[1] = known[1] or agent
                    known[2], known[3] = min(known[2], moment), max(known[3], moment)
    return fine, seen


def _add_fine(conn: Connection, project: str, fine: dict[tuple[Any, ...], list[Any]], sign: int = 1,
              run_costs: dict[tuple[Any, ...], list[Any]] | None = None) -> None:
    """The rollups' rows from `_tally`'s sums, added (`sign=-1`: taken out). `run_costs` (a dict
    to fill): the runs' costs are put there, for `_record_runs` to add with their seen times
    (one update of a run's row per batch, not two), and only their missing rows are made."""
    none = schema.NONE_KEY
    with localcontext(EXACT):  # sums of costs, as in _tally
        merged: dict[tuple[Any, ...], list[Any]] = {}
        for (hour, tenant, *rest), sums in fine.items():
            _add_measures(merged, (hour, tenant or none, *rest), sums[:_COSTED], 1)
        fine = merged
        if sign != 1:
            fine = {key: [m * sign for m in sums] for key, sums in fine.items()}
        usage: dict[tuple[Any, ...], list[Any]] = {}
        per_run: dict[tuple[Any, ...], list[Any]] = {}
        of_runs: dict[tuple[Any, ...], list[Any]] = {}
        per_tenant: dict[tuple[Any, ...], list[Any]] = {}
        run_cost: dict[tuple[Any, ...], list[Any]] = {}
        hourly: dict[tuple[Any, ...], list[Any]] = {}
        daily: dict[tuple[Any, ...], list[Any]] = {}
        weekly: dict[tuple[Any, ...], list[Any]] = {}
        weeks: dict[date, date] = {}
        touched: set[date] = set()
        for (hour, tenant, agent, model, provider, endpoint, run), sums in fine.items():
            day = hour.date()
            touched.add(day)
            key = (tenant, day, agent, model)
            _add_measures(usage, key, sums, 1)
            _add_measures(per_tenant, (tenant, day), sums, 1)
            if run:
                _add_measures(per_run, (run, *key), sums, 1)
                _add_measures(of_runs, key, sums, 1)
                _add_measures(run_cost, (run,), (sums[4],), 1)
            _add_measures(hourly, (hour, tenant, agent, model, provider, endpoint), sums, 1)
            _add_measures(daily, (day, tenant, agent, model, provider, endpoint), sums, 1)
            week = weeks.get(day)
            if week is None:
                week = weeks[day] = week_of(day)
            _add_measures(weekly, (week, tenant, agent, model, provider, endpoint), sums, 1)
    revisions.note(conn, project, touched)  # a closed day's figures change: marked at commit
    names = schema.ROLLUP_MEASURES
    accumulate(conn, project, schema.usage_rollup, ("tenant_id", "day", "agent_id", "model"),
                    {k: tuple(v) for k, v in usage.items()}, names)
    accumulate(conn, project, schema.run_rollup, ("run_id", "tenant_id", "day", "agent_id", "model"),
                    {k: tuple(v) for k, v in per_run.items()}, names)
    accumulate(conn, project, schema.tenant_rollup, ("tenant_id", "day"),
               {k: tuple(v) for k, v in per_tenant.items()}, names)
    accumulate(conn, project, schema.run_usage_rollup, ("tenant_id", "day", "agent_id", "model"),
               {k: tuple(v) for k, v in of_runs.items()}, names)
    accumulate(conn, project, schema.usage_hourly, ("hour", *schema.USAGE_KEYS),
               {k: tuple(v) for k, v in hourly.items()}, names)
    accumulate(conn, project, schema.usage_daily, ("day", *schema.USAGE_KEYS),
               {k: tuple(v) for k, v in daily.items()}, names)
    accumulate(conn, project, schema.usage_weekly, ("week", *schema.USAGE_KEYS),
               {k: tuple(v) for k, v in weekly.items()}, names)
    # The runs last, by every writer (`add_events` locks them after these, in `moves_learnt`).
    if run_costs is None:
        accumulate(conn, project, schema.runs, ("run_id",), {k: tuple(v) for k, v in run_cost.items()}, ("cost_usd",))
    else:
        run_costs.update(run_cost)
        accumulate(conn, project, schema.runs, ("run_id",), dict.fromkeys(run_cost, ()), ())


def accumulate(conn: Connection, project: str, table: Any, keys: Sequence[str],
               increments: Mapping[tuple[Any, ...], Sequence[Any]], measures: Sequence[str]) -> None:
    """Add `increments` ({key values: measure values}) to the rows of `table` of `project`,
    creating missing rows at zero: exact on both databases, rows taken in one
    order by every writer (no deadlocks)."""
    if not increments:
        return
    items = sorted(increments.items())
    if conn.dialect.name == "postgresql":
        # NUMERIC and integers add exactly in the database: one upsert of every row, the rows
        # as one JSON parameter (an executemany would be a statement per row).
        names = ["project_id", *keys, *measures]
        rows = _json_text([dict(zip(names, (project, *key, *values))) for key, values in items])
        pending = conn.info.get(_PENDING_UPSERTS)
        if pending is not None:  # inside `_one_upsert`: sent with the others at its end
            pending.append((_upsert_sql(table, keys, measures, "{rows}", "{after}"), rows))
            return
        conn.execute(text(_upsert_sql(table, keys, measures, ":rows", "")), {"rows": rows})
        return
    # SQLite keeps decimal text, which SQL would add as floats: money is added by
    # `decimal_add` (registered on every connection, exact). One upsert per row through the
    # driver's executemany, found by the primary key (a read of the current rows by their keys
    # was not planned on the key: it scanned the table per chunk, quadratic in its size), with
    # values bound by the columns' own processors.
    bind = _binders(conn.dialect, table)
    money = [isinstance(table.c[m].type, Money) for m in measures]
    rows = [(project, *(value if bind[name] is None or value is None else bind[name](value)
                        for name, value in zip(keys, key)),
             *(format(v, "f") if is_money else v for v, is_money in zip(values, money)))
            for key, values in items]
    # Counts add by `int_add`: SQLite's own `+` turns a sum past 2^63 - 1 into a float
    # silently; this notes it, and the write is refused with OverflowError as a bound value
    # past it is (the server then stores the batch in halves to find the culprit).
    added = ", ".join(f"{m} = decimal_add({m}, excluded.{m})" if is_money else f"{m} = int_add({m}, excluded.{m})"
                      for m, is_money in zip(measures, money))
    _int_overflow.hit = False
    conn.exec_driver_sql(
        f"INSERT INTO {table.name} (project_id, {', '.join([*keys, *measures])}) VALUES "
        f"(?, {', '.join('?' for _ in (*keys, *measures))}) "
        f"ON CONFLICT (project_id, {', '.join(keys)}) " + (f"DO UPDATE SET {added}" if measures else "DO NOTHING"),
        rows)
    if _int_overflow.hit:
        raise OverflowError(f"a total of {table.name} would pass 2^63 - 1")


def _upsert_sql(table: Any, keys: Sequence[str], measures: Sequence[str], rows: str, where: str) -> str:
    """PostgreSQL: `accumulate`'s upsert of `table`, its rows the JSON parameter `rows`,
    `where` (a condition, or "") on its source."""
    listed = ", ".join(["project_id", *keys, *measures])
    added = ", ".join(f"{m} = {table.name}.{m} + excluded.{m}" for m in measures)
    return (f"INSERT INTO {table.name} ({listed}) SELECT {listed} FROM json_populate_recordset("
            f"NULL::{table.name}, CAST({rows} AS json)) {where} ON CONFLICT (project_id, {', '.join(keys)}) "
            + (f"DO UPDATE SET {added}" if measures else "DO NOTHING"))


#: `conn.info` key of the upserts `_one_upsert` is collecting.
_PENDING_UPSERTS = "tollmeter.pending_upserts"


@contextmanager
def _one_upsert(conn: Connection, locks: Sequence[str] = ()) -> Iterator[None]:
    """PostgreSQL: the advisory locks `locks` (in their order), then every `accumulate` made
    inside, in the order made, as ONE statement sent at the end (a round trip, a parse and a
    plan per batch instead of one per table: a batch paid 9). Each part runs after the one
    before it (its source waits for the count of the rows the one before returned), so the
    tables' rows are taken in the same order as by separate statements: no new deadlocks.
    SQLite: nothing changes (`accumulate` writes at once)."""
    if conn.dialect.name != "postgresql":
        yield
        return
    pending: list[tuple[str, str]] = []
    conn.info[_PENDING_UPSERTS] = pending
    try:
        yield
    finally:
        del conn.info[_PENDING_UPSERTS]
    if not pending and not locks:
        return
    parts = []
    params: dict[str, Any] = {}
    before = ""
    if locks:
        parts.append("l AS (SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) AS n "
                     "FROM unnest(CAST(:locks AS text[])) AS k)")
        params["locks"] = list(locks)
        before = "WHERE (SELECT n FROM l) >= 0"
    for i, (sql, rows) in enumerate(pending):
        parts.append(f"u{i} AS ({sql.format(rows=f':r{i}', after=before)} RETURNING 1)")
        params[f"r{i}"] = rows
        before = f"WHERE (SELECT count(*) FROM u{i}) >= 0"
    last = f"u{len(pending) - 1}" if pending else "l"
    conn.execute(text(f"WITH {', '.join(parts)} SELECT count(*) FROM {last}"), params)


_BINDERS: dict[tuple[int, str], dict[str, Any]] = {}


def _binders(dialect: Any, table: Any) -> dict[str, Any]:
    """Each column's bind processor on `dialect` (None: the value as it is)."""
    cache_key = (id(dialect), table.name)
    found = _BINDERS.get(cache_key)
    if found is None:
        found = {c.name: c.type.dialect_impl(dialect).bind_processor(dialect) for c in table.columns}
        _BINDERS[cache_key] = found
    return found


def see_runs(conn: Connection, project: str, rows: Iterable[Mapping[str, Any]]) -> None:
    """Runs met in stored events, whose costs `add_to_rollups` has added (that made their rows):
    their tenant and agent (of their first event) and first and last seen times widened."""
    _record_runs(conn, project, _tally(rows)[1])


def _record_runs(conn: Connection, project: str, seen: dict[str, list[Any]],
                 costs: Mapping[tuple[Any, ...], Sequence[Any]] | None = None) -> None:
    """`see_runs` of the runs `_tally` found, and their `costs` added ({(run id,): [cost]},
    from `_add_fine`'s `run_costs`) when given. Their rows are there already, for
    `moves_learnt` to lock: every caller has been through `_add_fine` with the same events
    (which makes a run's row)."""
    if not seen:
        return
    t = schema.runs
    items = sorted(seen.items())  # one order for every writer: no deadlocks
    values = [{"project_id": project, "run_id": run_id, "tenant_id": tenant, "agent_id": agent,
               "first_seen": first, "last_seen": last} for run_id, (tenant, agent, first, last) in items]
    if costs is not None:
        for row in values:
            row["cost_usd"] = costs.get((row["run_id"],), (_ZERO,))[0]
    moves = outcomes.moves_learnt(conn, project, ((run_id, tenant, agent) for run_id, (tenant, agent, _, _) in items))
    # Tenant, agent and seen times of every run in one statement (an update per run cost most of
    # a batch's write when its events belong to many runs): the rows exist now, so each takes
    # the DO UPDATE.
    stmt = _insert(conn, t)
    new = stmt.excluded
    changes = {
        "tenant_id": func.coalesce(t.c.tenant_id, new.tenant_id),
        "agent_id": func.coalesce(t.c.agent_id, new.agent_id),
        "first_seen": case((or_(t.c.first_seen.is_(None), t.c.first_seen > new.first_seen), new.first_seen),
                           else_=t.c.first_seen),
        "last_seen": case((or_(t.c.last_seen.is_(None), t.c.last_seen < new.last_seen), new.last_seen),
                          else_=t.c.last_seen)}
    if costs is not None:  # exact on both: NUMERIC, and SQLite's decimal text added by decimal_add
        changes["cost_usd"] = (t.c.cost_usd + new.cost_usd if conn.dialect.name == "postgresql"
                               else func.decimal_add(t.c.cost_usd, new.cost_usd))
    conn.execute(stmt.on_conflict_do_update(index_elements=["project_id", "run_id"], set_=changes), values)
    accumulate(conn, project, schema.run_outcomes, outcomes.KEYS, moves, outcomes.MEASURES)
    revisions.note(conn, project, {key[outcomes.KEYS.index("day")] for key in moves})


def rebuild_rollups(conn: Connection, project: str) -> int:
    """Recompute `project`'s rollups and runs' seen times from its raw events, in `conn`'s
    transaction (runs' outcomes are kept). Days before the retention mark, whose raw events
    are gone, keep their rollups. Returns the number of events read."""
    mark = retention_mark(conn, project)
    # A migration before the run tables (0005) rebuilds the rollups there were then.
    present = set(inspect(conn).get_table_names())
    for table in (schema.usage_rollup, schema.tenant_rollup, schema.run_rollup, schema.run_usage_rollup,
                  schema.usage_daily, schema.usage_hourly):
        if table.name not in present:
            continue
        where = [table.c.project_id == project]
        if mark is not None:
            where.append(table.c.hour >= mark if table is schema.usage_hourly else table.c.day >= mark.date())
        conn.execute(delete(table).where(*where))
    if conn.dialect.name == "postgresql":
        count = _rebuild_in_sql(conn, project, mark, present)
    else:
        count = _rebuild_in_python(conn, project, mark)
    if schema.usage_weekly.name in present:  # from the days (those before the mark kept)
        weekly_from_daily(conn, project, mark.date() if mark is not None else None)
    if "cost_usd" in {c["name"] for c in inspect(conn).get_columns(schema.runs.name)}:
        run_costs_from_rollup(conn, project)
    if schema.run_outcomes.name in present:
        outcomes.from_runs(conn, project)
    if schema.day_revisions.name in present:
        revisions.note_every_day(conn, project)
    return count


def _rebuild_in_python(conn: Connection, project: str, mark: datetime | None) -> int:
    e = schema.events
    columns = [e.c.event_id, e.c.timestamp, e.c.tenant_id, e.c.run_id, e.c.agent_id, e.c.model, e.c.provider,
               e.c.endpoint, e.c.input_tokens, e.c.output_tokens, e.c.cache_read_tokens, e.c.cost_usd, e.c.priced,
               e.c.error]
    after, count = "", 0
    while True:
        query = select(*columns).where(e.c.project_id == project, e.c.event_id > after)
        if mark is not None:
            query = query.where(e.c.timestamp >= mark)
        rows = conn.execute(query.order_by(e.c.event_id).limit(5000)).mappings().all()
        if not rows:
            return count
        add_to_rollups(conn, project, rows)
        see_runs(conn, project, rows)
        count += len(rows)
        after = rows[-1]["event_id"]


_SQL_MEASURES = ("count(*), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), "
                 "coalesce(sum(cache_read_tokens), 0), coalesce(sum(cost_usd), 0), "
                 "sum(CASE WHEN priced THEN 0 ELSE 1 END), sum(CASE WHEN error IS NULL THEN 0 ELSE 1 END)")
#: Each rollup as one GROUP BY of the raw events (PostgreSQL): its table, key expressions, filter.
_SQL_ROLLUPS = (
    ("usage_hourly", ("date_trunc('hour', timestamp)", "tenant_id", "agent_id", "model", "provider", "endpoint"), ""),
    ("usage_daily", ("timestamp::date", "tenant_id", "agent_id", "model", "provider", "endpoint"), ""),
    ("usage_rollup", ("tenant_id", "timestamp::date", "agent_id", "model"), ""),
    ("tenant_rollup", ("tenant_id", "timestamp::date"), ""),
    ("run_rollup", ("run_id", "tenant_id", "timestamp::date", "agent_id", "model"), " AND run_id <> ''"),
    ("run_usage_rollup", ("tenant_id", "timestamp::date", "agent_id", "model"), " AND run_id <> ''"),
)


def run_costs_from_rollup(conn: Connection, project: str) -> None:
    """Set every run's cost to date (`runs.cost_usd`) to the sum of its `run_rollup` rows,
    which keep the days whose raw events retention removed."""
    t, r = schema.runs, schema.run_rollup
    conn.execute(update(t).where(t.c.project_id == project).values(cost_usd=_ZERO))
    # One UPDATE ... FROM the sums (the database's own, exact: NUMERIC, SQLite's decimal_sum),
    # whatever the number of runs.
    sums = select(r.c.run_id, money_sum(r.c.cost_usd).label("cost")).where(r.c.project_id == project) \
        .group_by(r.c.run_id).subquery()
    conn.execute(update(t).where(t.c.project_id == project, t.c.run_id == sums.c.run_id)
                 .values(cost_usd=sums.c.cost))


def run_usage_from_rollup(conn: Connection, project: str) -> None:
    """Fill `run_usage_rollup` from `run_rollup` (a database from before it: the runs' rows
    hold the same sums, per run)."""
    _sum_into(conn, project, schema.run_usage_rollup, schema.run_rollup, ("tenant_id", "day", "agent_id", "model"))


def tenant_from_rollup(conn: Connection, project: str) -> None:
    """Fill `tenant_rollup` from `usage_rollup` (a database from before it)."""
    _sum_into(conn, project, schema.tenant_rollup, schema.usage_rollup, ("tenant_id", "day"))


def weekly_from_daily(conn: Connection, project: str, since: date | None = None) -> None:
    """`usage_weekly`'s rows of `project` (of the weeks from the one of `since` on) made anew
    as `usage_daily`'s summed by week."""
    w, d = schema.usage_weekly, schema.usage_daily
    first = week_of(since) if since is not None else None
    conn.execute(delete(w).where(w.c.project_id == project, *([w.c.week >= first] if first is not None else [])))
    week = week_sql(conn.dialect.name, d.c.day)
    keys = [d.c[k] for k in schema.USAGE_KEYS]
    conn.execute(insert(w).from_select(
        ["project_id", "week", *schema.USAGE_KEYS, *schema.ROLLUP_MEASURES],
        select(d.c.project_id, week, *keys, *_summed_measures(d))
        .where(d.c.project_id == project, *([d.c.day >= first] if first is not None else []))
        .group_by(d.c.project_id, week, *keys)))


def _sum_into(conn: Connection, project: str, t: Any, r: Any, keys: Sequence[str]) -> None:
    """`t`'s rows of `project` made anew as `r`'s summed by `keys`."""
    conn.execute(delete(t).where(t.c.project_id == project))
    conn.execute(insert(t).from_select(
        ["project_id", *keys, *schema.ROLLUP_MEASURES],
        select(r.c.project_id, *(r.c[k] for k in keys), *_summed_measures(r)).where(r.c.project_id == project)
        .group_by(r.c.project_id, *(r.c[k] for k in keys))))


def _summed_measures(r: Any) -> list[Any]:
    """The rollup measures of table `r`, summed (exact on both databases)."""
    return [money_sum(r.c[m]) if m == "cost_usd" else schema.count_sum(r.c[m]) for m in schema.ROLLUP_MEASURES]


def _rebuild_in_sql(conn: Connection, project: str, mark: datetime | None, present: set[str]) -> int:
    """`rebuild_rollups` on PostgreSQL: each rollup one INSERT ... SELECT ... GROUP BY (the
    rollups of ten million events in minutes, where reading them into Python took an hour)."""
    since = " AND timestamp >= :mark" if mark is not None else ""
    params = {"project": project, "mark": mark}
    for table, keys, only in _SQL_ROLLUPS:
        if table not in present:
            continue
        columns = [c.name for c in schema.metadata.tables[table].columns]
        picked = [k if "(" in k or "::" in k or k == "run_id" else f"coalesce({k}, '')" for k in keys]
        conn.execute(text(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT project_id, {', '.join(picked)}, {_SQL_MEASURES} "
            f"FROM {schema.events.name} WHERE project_id = :project{since}{only} "
            f"GROUP BY project_id, {', '.join(picked)}"), params)
    conn.execute(text(
        f"INSERT INTO runs (project_id, run_id, tenant_id, agent_id, first_seen, last_seen) "
        f"SELECT project_id, run_id, min(tenant_id), min(agent_id), min(timestamp), max(timestamp) "
        f"FROM {schema.events.name} WHERE project_id = :project AND run_id <> ''{since} GROUP BY project_id, run_id "
        "ON CONFLICT (project_id, run_id) DO UPDATE SET tenant_id = coalesce(runs.tenant_id, excluded.tenant_id), "
        "agent_id = coalesce(runs.agent_id, excluded.agent_id), "
        "first_seen = least(runs.first_seen, excluded.first_seen), "
        "last_seen = greatest(runs.last_seen, excluded.last_seen)"), params)
    return conn.execute(text(f"SELECT count(*) FROM {schema.events.name} WHERE project_id = :project{since}"),
                        params).scalar_one()


def fill_missing_rollups(conn: Connection, *, quick: bool = False) -> list[str]:
    """Fill the rollups of every project that has events but no rollups yet (a database made
    before rollups, or before the usage rollups, existed), and the tables summed from other
    rollups (`run_usage_rollup`, `tenant_rollup`, `run_outcomes`) where they are missing. Returns
    the projects filled. `quick`: look no further when rollups exist (the embedded store's check on every
    open)."""
    e, kept = schema.events, (schema.usage_rollup, schema.usage_daily)
    if not quick and not inspect(conn).has_table(schema.usage_daily.name):
        return []  # a migration before the usage rollups (0002): the one that makes them fills them
    missing: list[str] = []
    if not quick or (conn.execute(select(e.c.project_id).limit(1)).first() is not None
                     and not all(conn.execute(select(u.c.project_id).limit(1)).first() is not None for u in kept)):
        with_events = {r[0] for r in conn.execute(select(e.c.project_id).distinct())}
        with_rollups = set.intersection(*({r[0] for r in conn.execute(select(u.c.project_id).distinct())}
                                          for u in kept))
        missing = sorted(with_events - with_rollups)
        for project in missing:
            rebuild_rollups(conn, project)
    if not quick and not inspect(conn).has_table(schema.run_usage_rollup.name):
        return missing  # a migration before the tables made from rollups (0005): that one fills them
    filled = set(missing)
    r = schema.runs
    for made, source, fill in ((schema.run_usage_rollup, select(schema.run_rollup.c.project_id), run_usage_from_rollup),
                               (schema.tenant_rollup, select(schema.usage_rollup.c.project_id), tenant_from_rollup),
                               (schema.usage_weekly, select(schema.usage_daily.c.project_id), weekly_from_daily),
                               (schema.run_outcomes, select(r.c.project_id).where(r.c.outcome.is_not(None)),
                                outcomes.from_runs)):
        if not quick and not inspect(conn).has_table(made.name):
            continue  # a migration before it: the one that makes it fills it
        if quick and (conn.execute(select(made.c.project_id).limit(1)).first() is not None
                      or conn.execute(source.limit(1)).first() is None):
            continue
        without = ({row[0] for row in conn.execute(source.distinct())}
                   - {row[0] for row in conn.execute(select(made.c.project_id).distinct())} - set(missing))
        for project in sorted(without):
            fill(conn, project)
        filled |= without
    return sorted(filled)


def _add_measures(into: dict[tuple[Any, ...], list[Any]], key: tuple[Any, ...], measures: tuple[Any, ...],
                  sign: int) -> None:
    current = into.get(key)
    if current is None:
        into[key] = [m * sign for m in measures]
    else:
        for i, m in enumerate(measures):
            current[i] += m * sign


def _decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _normal(key: tuple[Any, ...], current: Mapping[tuple[Any, ...], Any]) -> tuple[Any, ...]:
    """The key as the database gave it back (a day may come back as a date or as text)."""
    if key in current:
        return key
    naive = tuple(k.replace(tzinfo=None) if isinstance(k, datetime) else k for k in key)  # SQLite's times
    if naive in current:
        return naive
    return tuple(str(k) if isinstance(k, date) else k for k in key)


def _hour(moment: Any) -> datetime:
    """The UTC hour of an event's timestamp (a datetime, naive in UTC, or its ISO text)."""
    if moment.__class__ is datetime and moment.tzinfo is timezone.utc:  # a validated event's
        return moment.replace(minute=0, second=0, microsecond=0)
    if not isinstance(moment, datetime):
        moment = datetime.fromisoformat(str(moment).replace("Z", "+00:00"))
    moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    return moment.replace(minute=0, second=0, microsecond=0)


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in an event")


def _grant_state_query() -> Any:
    """A tenant's limits (with the defaults), spend in the current periods (`period_0`... for
    every frequency), active leases' sum, rate limits, and a row if the API key of hash
    `key_hash` is the project's and unrevoked: a row of each: (kind, name, frequency, usd,
    requests per minute, tokens per minute)."""
    lim, s, ls, r, k = schema.limits, schema.spend, schema.leases, schema.rate_limits, schema.api_keys
    project, tenant = bindparam("project", type_=String), bindparam("tenant", type_=String)
    rates = cast(null(), r.c.requests_per_minute.type), cast(null(), r.c.tokens_per_minute.type)  # typed: one UNION
    return select(literal_column("'limit'"), lim.c.tenant_id, lim.c.frequency, lim.c.limit_usd, *rates).where(
        lim.c.project_id == project, lim.c.tenant_id.in_([tenant, bindparam("defaults", type_=String)])
    ).union_all(
        select(literal_column("'spend'"), s.c.period, null(), s.c.spent_usd, null(), null()).where(
            s.c.project_id == project, s.c.tenant_id == tenant,
            s.c.period.in_([bindparam(f"period_{n}", type_=String) for n in range(len(FREQUENCIES))])),
        select(literal_column("'leased'"), null(), null(), money_sum(ls.c.remaining_usd), null(), null()).where(
            ls.c.project_id == project, ls.c.tenant_id == tenant, ls.c.expires_at > bindparam("at")),
        select(literal_column("'rate'"), null(), null(), null(), r.c.requests_per_minute, r.c.tokens_per_minute).where(
            r.c.project_id == project, r.c.tenant_id == tenant),
        select(literal_column("'key'"), null(), null(), null(), null(), null()).where(
            k.c.key_hash == bindparam("key_hash", type_=String), k.c.project_id == project, k.c.revoked_at.is_(None)),
    )


#: Built once: a grant's statements are the same every time (only their parameters differ).
_GRANT_STATE = _grant_state_query()
_TENANT_LOCK = select(func.pg_advisory_xact_lock(func.hashtextextended(bindparam("key", type_=String), 0)))
#: A grant's locks: the tenant's, and a shared hold on the default limits (taken alone by a
#: change of them): one statement.
_GRANT_LOCK = select(func.pg_advisory_xact_lock_shared(func.hashtextextended(bindparam("defaults", type_=String), 0)),
                     func.pg_advisory_xact_lock(func.hashtextextended(bindparam("key", type_=String), 0)))
_DEFAULTS_LOCK = select(func.pg_advisory_xact_lock(func.hashtextextended(bindparam("defaults", type_=String), 0)))
_lapsed = schema.leases.alias("lapsed")
_SWEEP_LEASES = delete(schema.leases).where(schema.leases.c.lease_id.in_(
    select(_lapsed.c.lease_id).where(_lapsed.c.project_id == bindparam("project", type_=String),
                                     _lapsed.c.expires_at <= bindparam("at")).with_for_update(skip_locked=True)))
_EXTEND_LEASE: dict[str, Any] = {}


def _extend_lease(dialect: str) -> Any:
    """UPDATE of an active lease: `granted` added (exactly: SQLite keeps money as text, which
    its `+` would add as floats) and `expires` set; returns its remaining budget."""
    stmt = _EXTEND_LEASE.get(dialect)
    if stmt is None:
        ls = schema.leases
        granted = bindparam("granted", type_=Money())
        added = (func.decimal_add(ls.c.remaining_usd, granted, type_=Money()) if dialect == "sqlite"
                 else ls.c.remaining_usd + granted)
        stmt = _EXTEND_LEASE[dialect] = update(ls).where(
            ls.c.lease_id == bindparam("lease"), ls.c.project_id == bindparam("project", type_=String),
            ls.c.tenant_id == bindparam("tenant", type_=String), ls.c.expires_at > bindparam("at"),
        ).values(remaining_usd=added, expires_at=bindparam("expires")).returning(ls.c.remaining_usd)
    return stmt


def _ordered(limits: Iterable[Limit]) -> list[Limit]:
    return sorted(limits, key=lambda lim: FREQUENCIES.index(lim.frequency))


def _limit_key(t: Any, project: str, tenant_id: str, frequency: str) -> Any:
    return and_(t.c.project_id == project, t.c.tenant_id == tenant_id, t.c.frequency == frequency)


def _insert(conn: Connection, table: Any) -> Any:
    """INSERT with ON CONFLICT support on both dialects."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class _Transaction:
    """One transaction, serialised for an in-memory database (its one connection is shared)."""

    def __init__(self, engine: Engine, lock: threading.Lock | None, file: _WatchedFile | None = None) -> None:
        self._engine = engine
        self._lock = lock
        self._file = file
        self._context: Any = None
        self._conn: Any = None

    def __enter__(self) -> Connection:
        if self._file is not None:
            self._engine = self._file.enter()  # the current engine (not one being reopened)
        if self._lock is not None:
            self._lock.acquire()
        try:
            self._context = self._engine.begin()
            self._conn = self._context.__enter__()
            revisions.flush(self._conn, commit=False)  # nothing noted by an earlier user of the connection
            return self._conn
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            if self._file is not None:
                self._file.leave(self._engine)
            raise

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            failed = None
            try:  # the closed days written to, marked as the transaction's last write
                revisions.flush(self._conn, commit=exc_info[0] is None)
            except BaseException as error:
                if exc_info[0] is None:
                    failed, exc_info = error, (type(error), error, error.__traceback__)
            suppressed = self._context.__exit__(*exc_info)
            if failed is not None and not suppressed:
                raise failed
            return suppressed
        finally:
            if self._lock is not None:
                self._lock.release()
            if self._file is not None:
                self._file.leave(self._engine)


#: SQLite's busy timeout (ms), and the one a bounded transaction of this thread asks for.
_BUSY_MS = 30_000
_busy = threading.local()


@contextmanager
def lock_wait(wait: float | None) -> Iterator[None]:
    """Around `transaction()`: the transaction begun in it waits at most `wait` seconds for
    SQLite's write lock (its busy timeout, set in `_engine`'s "begin" listener) and raises
    OperationalError "database is locked" past it. For what a caller waits for: a lease
    request (`grant`), opening the store for its first call."""
    if wait is None:
        yield
        return
    _busy.ms = max(1, int(wait * 1000))
    try:
        yield
    finally:
        _busy.ms = None


def _engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        if url.startswith("postgresql"):
            # Sessions in UTC: days, periods and `to_char` are UTC days whatever the server's zone;
            # a report's groups hashed in memory (`Store.report`) rather than spilled to disk
            # (added to the URL's own `options`, which may set a search_path).
            parsed = make_url(url)
            options = " ".join(filter(None, [parsed.query.get("options"), "-c timezone=UTC -c work_mem=32MB"]))
            engine = create_engine(parsed.update_query_dict({"options": options}))
            # A connection the server closed (a restart, a killed backend) is replaced at
            # checkout, as pool_pre_ping would, without its round trip per transaction.
            event.listen(engine, "checkout", _closed_by_server)
            return engine
        return create_engine(url, pool_pre_ping=True)
    if url == "sqlite://":
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        dbapi_connection.create_aggregate("decimal_sum", 1, _DecimalSum)
        dbapi_connection.create_function("decimal_add", 2, _decimal_add, deterministic=True)
        dbapi_connection.create_function("int_add", 2, _int_add)
        cursor = dbapi_connection.cursor()
        if url != "sqlite://":
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        # A bounded transaction (`lock_wait`) waits less for the lock; the connection's
        # timeout is set back on its next ordinary transaction.
        wanted = getattr(_busy, "ms", None) or _BUSY_MS
        info = connection.connection.info
        if info.get("busy_ms", _BUSY_MS) != wanted:
            connection.exec_driver_sql(f"PRAGMA busy_timeout={wanted}")
            info["busy_ms"] = wanted
        # Take the write lock at the start: read-then-write transactions of several processes
        # then run one after the other instead of failing with "database is locked".
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _closed_by_server(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """At a pooled PostgreSQL connection's checkout: an idle connection has nothing to read,
    so a readable socket means the server closed it (a restart or `pg_terminate_backend`
    sends its FATAL error and closes; a crash closes) or sent an asynchronous message (a
    setting reloaded, a notice): either way the pool replaces it with a new connection
    (DisconnectionError), which a false alarm costs only a reconnect. A poll of the socket
    instead of pool_pre_ping's round trip, which cost every transaction one."""
    if dbapi_connection.closed or dbapi_connection.broken:
        raise DisconnectionError("the connection is closed")
    poller = io_select.poll()
    poller.register(dbapi_connection.fileno(), io_select.POLLIN | io_select.POLLPRI)
    if poller.poll(0):
        raise DisconnectionError("the server closed the connection (or it has unread messages)")


# -- a deleted database file ----------------------------------------------------------------------


class StoreFileLost(Exception):
    """The embedded store's SQLite file was deleted (or replaced by another file) while it was
    open, and the database now at its path was opened (a new one if none): reported to
    `on_error`. What the old file held is gone with it; later writes go to the new one."""

    def __init__(self, message: str, *, path: str, replaced: bool) -> None:
        super().__init__(message)
        self.path = path
        #: True when a file was at the path when it was reopened (another process reopened it
        #: first, a restored backup); False when the path was empty (a new database).
        self.replaced = replaced


#: How long a reopen waits for the transactions under way on the old file to end.
_REOPEN_WAIT_SECONDS = 1.0


class _WatchedFile:
    """The SQLite file of a store. SQLite takes no notice of its database file being deleted
    under an open connection: writes go on into the unlinked file and are lost when it closes.
    So the store compares the file at its path with the one it opened (device and inode, one
    `stat`) before each transaction and after each write of events, and when they differ opens
    the database at the path afresh (creating it): later writes are kept, and a batch of
    events written as the file went is written again into the new one.

    Reopening waits for this process's transactions on the old file to end and closes its
    connections before anything is created at the path (SQLite leaves the files of a moved
    database alone when it closes it); a database file that is gone takes its leftover
    `-wal` / `-shm` / `-journal` files with it, under a lock on the directory, so that two
    processes reopening at once make one database."""

    def __init__(self, url: str, path: str, engine: Engine) -> None:
        self.url = url
        self.path = path
        self.engine = engine
        self.ident: tuple[int, int] | None = None
        self.reopened = 0
        self._report: Callable[[StoreFileLost], object] | None = None
        self._unreported: list[StoreFileLost] = []
        self.after_fork()

    @classmethod
    def of(cls, url: str, engine: Engine) -> _WatchedFile | None:
        if not url.startswith("sqlite:///"):
            return None  # in memory, or a server database
        path = url[len("sqlite:///"):]
        return cls(url, path, engine) if path and path != ":memory:" and "?" not in path else None

    def after_fork(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._busy: dict[tuple[int, int], int] = {}  # (engine id, thread id) -> open transactions
        self._reopening: int | None = None  # the thread reopening

    def opened(self) -> None:
        if self.ident is None:
            self.ident = _file_ident(self.path)

    def moved(self) -> bool:
        """The file at the path is not the one open (it was deleted or replaced)."""
        if self.ident is None:
            self.opened()  # first seen now (a store made with create=False)
            return False
        try:
            current = _file_ident(self.path)
        except OSError:
            return False  # cannot tell (permissions): leave it
        return current != self.ident

    def check(self) -> None:
        if self.moved():
            self.reopen()

    def enter(self) -> Engine:
        me = threading.get_ident()
        with self._cond:
            while self._reopening is not None and self._reopening != me:
                self._cond.wait()
            engine = self.engine
            key = (id(engine), me)
            self._busy[key] = self._busy.get(key, 0) + 1
            return engine

    def leave(self, engine: Engine) -> None:
        key = (id(engine), threading.get_ident())
        with self._cond:
            left = self._busy.get(key, 0) - 1
            if left > 0:
                self._busy[key] = left
            else:
                self._busy.pop(key, None)
            self._cond.notify_all()

    def reopen(self) -> None:
        me = threading.get_ident()
        with self._cond:
            if self._reopening is not None:  # another thread is at it: wait for its file
                while self._reopening is not None and self._reopening != me:
                    self._cond.wait()
                return
            if not self.moved():
                return  # reopened by another thread since this one looked
            self._reopening = me
            old = self.engine
            deadline = time.monotonic() + _REOPEN_WAIT_SECONDS
            while any(eid == id(old) and tid != me for eid, tid in self._busy):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        fresh: Engine | None = None
        replaced = False
        try:
            fresh, replaced = self._open_fresh(old)
        finally:
            with self._cond:
                if fresh is not None:
                    self.engine = fresh
                    self.reopened += 1
                report = self._report
                self._reopening = None
                self._cond.notify_all()
        lost = StoreFileLost(
            f"the embedded store {self.path} was deleted or replaced while in use: opened "
            f"{'the database now at' if replaced else 'a new database at'} that path "
            "(what the old file held is gone with it)", path=self.path, replaced=replaced)
        if report is None:
            with self._cond:
                self._unreported.append(lost)
            logger.warning("tollmeter: %s", lost)
        else:
            self.deliver(report, lost)

    def _open_fresh(self, old: Engine) -> tuple[Engine, bool]:
        old.dispose()  # this process's connections to the old file
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, exist_ok=True)
        with _locked_directory(directory):
            replaced = os.path.exists(self.path)
            if not replaced:  # what the deleted database left beside it is not the new one's
                for suffix in ("-wal", "-shm", "-journal"):
                    try:
                        os.unlink(self.path + suffix)
                    except FileNotFoundError:
                        pass
            engine = _engine(self.url)
            try:
                schema.metadata.create_all(engine)
                with _Transaction(engine, None) as conn:
                    fill_missing_rollups(conn, quick=True)
            except BaseException:
                engine.dispose()
                raise
            self.ident = _file_ident(self.path)
        return engine, replaced

    def set_report(self, report: Callable[[StoreFileLost], object] | None) -> None:
        with self._cond:
            self._report = report
            pending: list[StoreFileLost] = []
            if report is not None:
                pending, self._unreported = self._unreported, []
        for lost in pending:
            self.deliver(report, lost)  # type: ignore[arg-type]

    @staticmethod
    def deliver(report: Callable[[StoreFileLost], object], lost: StoreFileLost) -> None:
        try:
            report(lost)
        except Exception:
            logger.exception("tollmeter: reporting a reopened store failed")


def _file_ident(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


@contextmanager
def _locked_directory(directory: str) -> Iterator[None]:
    """An exclusive lock on a directory between processes (where the platform has one)."""
    try:
        import fcntl
    except ImportError:  # Windows: an open file cannot be deleted there in the first place
        yield
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)  # releases the lock
