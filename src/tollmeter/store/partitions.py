"""Monthly partitions of the events table on PostgreSQL (SQLite keeps one plain table).

On PostgreSQL `events` is partitioned by RANGE (timestamp), one partition per UTC month, named
`events_yYYYYmMM`. There is no default partition: every timestamp the server accepts (2000 to
a day ahead) gets its month's partition, created ahead (this month and the next few: by the
migration, the server's start-up and `tollmeter db partitions`) or on demand when a batch
carries a month that has none. A partition is created on its own and then ATTACHed, which
takes only a SHARE UPDATE EXCLUSIVE lock on `events` (CREATE TABLE ... PARTITION OF would take
an ACCESS EXCLUSIVE one and stop every ingest and query while it waits).

A partitioned table's unique keys must hold the partition column, so (project_id, event_id),
the idempotency key, is kept unique by `event_ids`: ingest inserts the batch's ids there (ON
CONFLICT DO NOTHING RETURNING) and copies the events of the new ids into `events` (COPY), in
one transaction. The events' own primary key is (project_id, event_id, timestamp).

Retention drops a whole month when it lies before the cutoff and no project that keeps events
there is left (every project with rows in it has its retention mark past its end): the
partition is DETACHed CONCURRENTLY (ingest and queries go on), the ids of its events removed,
and it is dropped. Otherwise, and in the month the cutoff falls in, a project's events are
deleted in batches with their ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Callable, Iterable, Mapping, Sequence

from sqlalchemy import Index, MetaData, PrimaryKeyConstraint, Table, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.schema import CreateIndex, CreateTable

from . import schema

#: Months created ahead of the current one.
AHEAD = 3
EVENT_IDS = "event_ids"
_NAME = re.compile(r"^events_y(\d{4})m(\d{2})$")
_BOUNDS = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")
#: pg_advisory_xact_lock key of partition creation ("tm-parts" in ASCII, as an int).
_LOCK_KEY = 0x746D2D7061727473


@dataclass(frozen=True)
class Partition:
    name: str
    #: Its range [lower, upper) (None: a bound this module did not make, never dropped).
    lower: datetime | None
    upper: datetime | None
    #: PostgreSQL's estimate (-1: never analysed) and the size on disk, indexes included.
    rows_estimate: int = -1
    bytes: int = 0
    #: Left detached by a retention run that did not finish (dropped by the next one).
    detached: bool = False


def month_of(moment: Any) -> date:
    """The first day of the UTC month of a timestamp (a datetime, naive in UTC, or ISO text)."""
    if not isinstance(moment, datetime):
        moment = datetime.fromisoformat(str(moment).replace("Z", "+00:00"))
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return date(moment.year, moment.month, 1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"events_y{month.year:04d}m{month.month:02d}"


def _start(month: date) -> datetime:
    return datetime(month.year, month.month, 1, tzinfo=timezone.utc)


def postgres_only(table: str) -> bool:
    """Whether a table is one of PostgreSQL's own for the partitioned events (a month's
    partition, `event_ids`), which `schema.metadata` does not hold."""
    return table == EVENT_IDS or _NAME.match(table) is not None


# -- the layout -----------------------------------------------------------------------------------


def is_partitioned(conn: Connection) -> bool:
    """Whether `events` is the partitioned table (False on SQLite and on a PostgreSQL database
    not migrated yet)."""
    if conn.dialect.name != "postgresql":
        return False
    return conn.execute(text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"),
                        {"t": schema.events.name}).scalar() == "p"


def create_partitioned_events(conn: Connection, ahead: int = AHEAD, now: datetime | None = None) -> bool:
    """Create `events` partitioned, with `event_ids` and the partitions ahead, where `events`
    does not exist yet (a new PostgreSQL database: the store's `create_all` path; migrations
    have their own). Returns whether it created it."""
    if conn.execute(text("SELECT to_regclass(:t)"), {"t": schema.events.name}).scalar() is not None:
        return False
    partitioned = _partitioned_table()
    conn.execute(CreateTable(partitioned))
    for index in partitioned.indexes:
        conn.execute(CreateIndex(index))
    create_event_ids(conn)
    create_ahead(conn, ahead, now)
    return True


def _partitioned_table() -> Table:
    """`schema.events` as PostgreSQL holds it: partitioned by timestamp, keyed by (project_id,
    event_id, timestamp)."""
    e = schema.events
    columns = []
    for column in e.columns:
        copy = column._copy()
        copy.primary_key = False
        columns.append(copy)
    table = Table(e.name, MetaData(), *columns,
                  PrimaryKeyConstraint("project_id", "event_id", "timestamp", name=f"{e.name}_pkey"),
                  postgresql_partition_by="RANGE (timestamp)")
    for index in e.indexes:
        Index(index.name, *(table.c[c.name] for c in index.columns))
    return table


def create_event_ids(conn: Connection) -> None:
    """The idempotency key of the partitioned events: one row per (project, event id) stored.
    Its keys compare bytewise (COLLATE "C": they are opaque, and the database's own collation,
    en_US.UTF-8 say, would make every comparison of the index a call to strcoll); a comparison
    with another table's event_id names the collation (`= x COLLATE "C"`)."""
    width = schema.events.c.event_id.type.length
    conn.execute(text(f'CREATE TABLE IF NOT EXISTS {EVENT_IDS} (project_id VARCHAR(64) COLLATE "C" NOT NULL, '
                      f'event_id VARCHAR({width}) COLLATE "C" NOT NULL, PRIMARY KEY (project_id, event_id))'))


# -- creating partitions --------------------------------------------------------------------------


def create_ahead(conn: Connection, ahead: int = AHEAD, now: datetime | None = None) -> list[str]:
    """Create the partitions of this UTC month and the `ahead` next ones that are missing, in
    `conn`'s transaction. Returns the names created."""
    month = month_of(now or datetime.now(timezone.utc))
    months = [month]
    for _ in range(ahead):
        months.append(next_month(months[-1]))
    return create_months(conn, months)


def create_months(conn: Connection, months: Iterable[date]) -> list[str]:
    """Create the partitions of `months` that are missing, in `conn`'s transaction (under a lock,
    so that replicas creating the same month at once create it once). Returns the names created."""
    wanted = sorted(set(months))
    if not wanted:
        return []
    conn.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})"))
    missing = _missing(conn, wanted)
    for month in missing:
        name = partition_name(month)
        conn.execute(text(f"CREATE TABLE {name} (LIKE {schema.events.name} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
        _attach(conn, name, month)
    return [partition_name(m) for m in missing]


def _attach(conn: Connection, name: str, month: date) -> None:
    lower, upper = _start(month).isoformat(), _start(next_month(month)).isoformat()
    conn.execute(text(f"ALTER TABLE {schema.events.name} ATTACH PARTITION {name} "
                      f"FOR VALUES FROM ('{lower}') TO ('{upper}')"))


def _missing(conn: Connection, months: Sequence[date]) -> list[date]:
    names = [partition_name(m) for m in months]
    absent = set(conn.execute(text("SELECT n FROM unnest(CAST(:names AS text[])) AS n WHERE to_regclass(n) IS NULL"),
                              {"names": names}).scalars())
    return [m for m, n in zip(months, names) if n in absent]


def ensure_months(conn: Connection, rows: Iterable[Mapping[str, Any]]) -> bool:
    """Before an ingest batch is written in `conn`'s transaction: whether `events` is
    partitioned, and if so the partitions of the batch's months created where missing (in a
    transaction of their own: ATTACH must not wait inside the ingest transaction, which holds
    its tenants' locks). One query when they all exist."""
    months = sorted({month_of(row["timestamp"]) for row in rows})
    names = [partition_name(m) for m in months]
    kind, absent = conn.execute(text(
        "SELECT (SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)), "
        "ARRAY(SELECT n FROM unnest(CAST(:names AS text[])) AS n WHERE to_regclass(n) IS NULL)"),
        {"t": schema.events.name, "names": names}).one()
    if kind != "p":
        return False
    if absent:
        with conn.engine.begin() as own:
            own.execute(text("SET LOCAL lock_timeout = '10s'"))
            create_months(own, [m for m, n in zip(months, names) if n in set(absent)])
    return True


# -- the ingest statement -------------------------------------------------------------------------

#: The batch's ids into `event_ids`, in the order given (sorted by the caller: concurrent batches
#: sharing ids wait on each other in one order, never deadlock); the ids new there come back as
#: one array (psycopg's parameters: run on the driver's cursor), and their events are then
#: written into `events` by COPY (store.py), in the same transaction.
CLAIM_IDS = (f"WITH claimed AS (INSERT INTO {EVENT_IDS} (project_id, event_id) SELECT %(project)s, i "
             "FROM unnest(%(ids)s::text[]) AS i ON CONFLICT (project_id, event_id) DO NOTHING RETURNING event_id) "
             "SELECT array_agg(event_id) FROM claimed")
#: CLAIM_IDS with the ids as one comma-separated text (psycopg dumps a list parameter element by
#: element in Python, 1.2 µs an id, one text 0.05): for ids that hold no comma and are not empty.
CLAIM_JOINED_IDS = CLAIM_IDS.replace("unnest(%(ids)s::text[])", "unnest(string_to_array(%(ids)s, ','))")
assert CLAIM_JOINED_IDS != CLAIM_IDS


# -- listing --------------------------------------------------------------------------------------


def list_partitions(conn: Connection) -> list[Partition]:
    """The partitions of `events`, oldest first, and the tables a retention run detached and
    did not drop (`detached`)."""
    rows = conn.execute(text(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), c.reltuples::bigint, "
        "pg_total_relation_size(c.oid), i.inhdetachpending FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(:t)"), {"t": schema.events.name}).all()
    found = []
    for name, bound, estimate, size, pending in rows:
        lower = upper = None
        match = _BOUNDS.search(bound or "")
        if match:
            lower, upper = (_timestamp(v) for v in match.groups())
        found.append(Partition(name, lower, upper, int(estimate), int(size), bool(pending)))
    attached = {p.name for p in found}
    for name, estimate, size in conn.execute(text(
            "SELECT c.relname, c.reltuples::bigint, pg_total_relation_size(c.oid) FROM pg_class c "
            "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' "
            "AND c.relname LIKE 'events\\_y%' AND NOT c.relispartition")).all():
        match = _NAME.match(name)
        if match and name not in attached:
            month = date(int(match.group(1)), int(match.group(2)), 1)
            found.append(Partition(name, _start(month), _start(next_month(month)), int(estimate), int(size), True))
    return sorted(found, key=lambda p: (p.lower or datetime.min.replace(tzinfo=timezone.utc), p.name))


def _timestamp(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value.replace(" ", "T") + (":00" if re.search(r"[+-]\d\d$", value) else ""))
    except ValueError:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


# -- retention ------------------------------------------------------------------------------------


def remove_before(engine: Engine, transaction: Callable[[], Any], projects: Sequence[str], cutoff: datetime,
                  batch: int, pause: Callable[[], None] | None = None) -> dict[str, int]:
    """Remove the events of `projects` before `cutoff` (a UTC midnight; their retention marks are
    at it already): whole months dropped where no other project keeps events in them, the rest
    deleted `batch` at a time with their ids. Returns the events removed per project."""
    removed = {project: 0 for project in projects}
    with transaction() as conn:
        parts = list_partitions(conn)
    for part in parts:
        if part.lower is not None and part.lower >= cutoff:
            continue
        if part.upper is not None and part.upper <= cutoff and _drop(engine, transaction, part, projects, batch,
                                                                     removed, pause):
            continue
        for project in projects:
            removed[project] += _delete(transaction, part.name, project, cutoff, batch, pause)
    return removed


def _delete(transaction: Callable[[], Any], table: str, project: str, cutoff: datetime, batch: int,
            pause: Callable[[], None] | None) -> int:
    """Delete the events of `project` before `cutoff` from one partition, with their ids,
    `batch` at a time (one short transaction each)."""
    statement = text(
        f"WITH gone AS (DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table} "
        "WHERE project_id = :project AND timestamp < :cutoff LIMIT :batch)) RETURNING project_id, event_id), "
        f"ids AS (DELETE FROM {EVENT_IDS} i USING gone WHERE i.project_id = gone.project_id COLLATE \"C\" "
        "AND i.event_id = gone.event_id COLLATE \"C\") SELECT count(*) FROM gone")
    total = 0
    while True:
        with transaction() as conn:
            done = conn.execute(statement, {"project": project, "cutoff": cutoff, "batch": batch}).scalar_one()
        total += done
        if done < batch:
            return total
        if pause is not None:
            pause()


def _blockers(conn: Connection, table: str, projects: Sequence[str], upper: datetime) -> list[str]:
    """The projects with events in `table` that keep them: not among `projects`, and without a
    retention mark at or past `upper`. The projects are found by a skip scan of the primary key
    (one index probe per project, not a read of the partition)."""
    return list(conn.execute(text(
        f"WITH RECURSIVE p(project_id) AS ((SELECT project_id FROM {table} ORDER BY project_id LIMIT 1) "
        f"UNION ALL SELECT (SELECT t.project_id FROM {table} t WHERE t.project_id > p.project_id "
        "ORDER BY t.project_id LIMIT 1) FROM p WHERE p.project_id IS NOT NULL) "
        "SELECT p.project_id FROM p LEFT JOIN retention_marks m ON m.project_id = p.project_id "
        "WHERE p.project_id IS NOT NULL AND NOT p.project_id = ANY(CAST(:projects AS text[])) "
        "AND (m.removed_before IS NULL OR m.removed_before < :upper)"),
        {"projects": list(projects), "upper": upper}).scalars())


def _is_partition(engine: Engine, name: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(text("SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(:n)"), {"n": name}).first() \
            is not None


def _drop(engine: Engine, transaction: Callable[[], Any], part: Partition, projects: Sequence[str], batch: int,
          removed: dict[str, int], pause: Callable[[], None] | None) -> bool:
    """Drop a partition wholly before the cutoff if no project keeps events in it: detached
    concurrently first (nothing waits for it, and no row can arrive after), checked again, its
    events' ids removed in batches, then dropped. Returns False (the partition left attached)
    when some project keeps events in it."""
    assert part.upper is not None and part.lower is not None
    leftover = part.detached and not _is_partition(engine, part.name)  # a run that stopped after detaching
    with transaction() as conn:
        if _blockers(conn, part.name, projects, part.upper):
            if leftover:
                _attach(conn, part.name, month_of(part.lower))
            return False
    if not leftover:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            pending = conn.execute(text("SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = to_regclass(:n)"),
                                   {"n": part.name}).scalar()
            how = "FINALIZE" if pending else "CONCURRENTLY"
            conn.execute(text(f"ALTER TABLE {schema.events.name} DETACH PARTITION {part.name} {how}"))
    with transaction() as conn:
        if _blockers(conn, part.name, projects, part.upper):  # an event came in as it was detached
            _attach(conn, part.name, month_of(part.lower))
            return False
        for project, count in conn.execute(text(
                f"SELECT project_id, count(*) FROM {part.name} WHERE project_id = ANY(CAST(:projects AS text[])) "
                "GROUP BY project_id"), {"projects": list(projects)}).all():
            removed[project] += count
    forget = text(
        f"WITH chunk AS (SELECT project_id, event_id FROM {part.name} WHERE (project_id, event_id) > (:p, :e) "
        "ORDER BY project_id, event_id LIMIT :batch), "
        f"ids AS (DELETE FROM {EVENT_IDS} i USING chunk WHERE i.project_id = chunk.project_id COLLATE \"C\" "
        "AND i.event_id = chunk.event_id COLLATE \"C\") "
        "SELECT project_id, event_id FROM chunk ORDER BY project_id DESC, event_id DESC LIMIT 1")
    after = ("", "")
    while True:
        with transaction() as conn:
            last = conn.execute(forget, {"p": after[0], "e": after[1], "batch": batch}).first()
        if last is None:
            break
        after = (last[0], last[1])
        if pause is not None:
            pause()
    with transaction() as conn:
        conn.execute(text(f"DROP TABLE {part.name}"))
    return True
