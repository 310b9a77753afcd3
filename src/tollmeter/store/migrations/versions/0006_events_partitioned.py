"""PostgreSQL: the events table partitioned by month (store/partitions.py), and `event_ids`, which
keeps (project_id, event_id) unique across the partitions. SQLite is left as it is.

The table is renamed, the partitioned one created with the same columns, a partition made for
every month that has events (and this month and the next three), the events copied in one
INSERT ... SELECT (their primary key and indexes built after the copy, faster than row by row),
their ids copied to `event_ids`, and the old table dropped: in the migration's one transaction,
so ingest waits for it (92 s for 10,000,000 events measured here; docs/server.md). A
database the store already made partitioned (`create_all`) only gets what it lacks.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

#: Months created ahead of the current one (partitions.AHEAD, as it was at this revision).
AHEAD = 3
_WIDTH = 64  # event_id's length


def _create_months(source: str) -> None:
    """A partition for every month of `source`'s events, and for this month and the next ones."""
    op.execute(f"""
DO $$
DECLARE m date;
BEGIN
  FOR m IN SELECT DISTINCT date_trunc('month', timestamp AT TIME ZONE 'UTC')::date FROM {source}
           UNION SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => k))::date
                 FROM generate_series(0, {AHEAD}) AS k
  LOOP
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                   'events_y' || to_char(m, 'YYYY') || 'm' || to_char(m, 'MM'),
                   m::timestamp AT TIME ZONE 'UTC', (m + interval '1 month')::timestamp AT TIME ZONE 'UTC');
  END LOOP;
END $$""")


def _partitioned() -> bool:
    if context.is_offline_mode():
        return False
    return op.get_bind().execute(sa.text("SELECT relkind FROM pg_class WHERE oid = to_regclass('events')")).scalar() \
        == "p"


def _indexes(table: str) -> None:
    op.execute(f"CREATE INDEX ix_events_tenant_time ON {table} (project_id, tenant_id, timestamp)")
    op.execute(f"CREATE INDEX ix_events_time ON {table} (project_id, timestamp)")


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    event_ids = (f'CREATE TABLE IF NOT EXISTS event_ids (project_id VARCHAR(64) COLLATE "C" NOT NULL, '
                 f'event_id VARCHAR({_WIDTH}) COLLATE "C" NOT NULL, PRIMARY KEY (project_id, event_id))')
    if _partitioned():  # made so by the store's create_all
        op.execute(event_ids)
        _create_months("events")
        return
    op.execute("ALTER TABLE events RENAME TO events_unpartitioned")
    op.execute("ALTER TABLE events_unpartitioned RENAME CONSTRAINT events_pkey TO events_unpartitioned_pkey")
    op.execute("ALTER INDEX ix_events_tenant_time RENAME TO ix_events_unpartitioned_tenant_time")
    op.execute("ALTER INDEX ix_events_time RENAME TO ix_events_unpartitioned_time")
    op.execute("CREATE TABLE events (LIKE events_unpartitioned INCLUDING DEFAULTS) PARTITION BY RANGE (timestamp)")
    _create_months("events_unpartitioned")
    op.execute("INSERT INTO events SELECT * FROM events_unpartitioned")
    op.execute("ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (project_id, event_id, timestamp)")
    _indexes("events")
    op.execute(event_ids)
    op.execute("INSERT INTO event_ids (project_id, event_id) SELECT project_id, event_id FROM events_unpartitioned")
    op.execute("DROP TABLE events_unpartitioned")
    op.execute("ANALYZE events")


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE events RENAME TO events_partitioned")
    op.execute("ALTER TABLE events_partitioned RENAME CONSTRAINT events_pkey TO events_partitioned_pkey")
    op.execute("ALTER INDEX ix_events_tenant_time RENAME TO ix_events_partitioned_tenant_time")
    op.execute("ALTER INDEX ix_events_time RENAME TO ix_events_partitioned_time")
    op.execute("CREATE TABLE events (LIKE events_partitioned INCLUDING DEFAULTS)")
    op.execute("INSERT INTO events SELECT * FROM events_partitioned")
    op.execute("ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (project_id, event_id)")
    _indexes("events")
    op.execute("DROP TABLE events_partitioned")  # and its partitions
    op.execute("DROP TABLE event_ids")
