"""Alembic migrations of the store's schema (`store/schema.py`), for the ingest server.

`tollmeter db upgrade` and the server's start-up call `upgrade()`: it brings a database to the
newest revision in one transaction, under a lock (PostgreSQL: an advisory lock; SQLite: `BEGIN
IMMEDIATE`), so that several replicas starting at once migrate it once. The initial revision
creates exactly `schema.metadata`; on a database the embedded store already made (same tables,
no `alembic_version`) it creates only what is missing and records the revision.

A new revision goes in `versions/` (`alembic revision` with `script_location` pointing here,
or by hand), and `schema.py` changes with it: `tests/test_server_migrations.py` checks that the
newest revision and `schema.metadata` agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Connection, Engine

#: The newest revision.
HEAD = "0012"
#: pg_advisory_xact_lock key held while migrating ("tollmeter" in ASCII, as an int).
_LOCK_KEY = 0x746F6C6C6D65746572 & 0x7FFFFFFFFFFFFFFF
VERSION_TABLE = "alembic_version"


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Any:
    """An Alembic Config for this folder, running on `connection` (or offline, for `url`)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def current(engine: Engine) -> str | None:
    """The database's revision (None: not migrated yet)."""
    with engine.connect() as conn:
        return _current(conn)


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate to `revision`; returns (revision before, revision after)."""
    from alembic import command

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(select(text(f"pg_advisory_xact_lock({_LOCK_KEY})")))
        before = _current(conn)
        command.upgrade(alembic_config(conn), revision)
        return before, _current(conn)


def upgrade_sql(url: str, revision: str = "head") -> None:
    """Print the SQL of the migration instead of running it (for a DBA)."""
    from alembic import command

    command.upgrade(alembic_config(url=url), revision, sql=True)


def _current(conn: Connection) -> str | None:
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def differences(conn: Connection) -> list[Any]:
    """What the database and `schema.metadata` disagree on (Alembic's comparison, types
    included), but for what belongs to one database alone: PostgreSQL's own tables of the
    partitioned events (store/partitions.py) and, elsewhere, its indexes of the runs' costs."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from .. import partitions, schema

    skipped = set() if conn.dialect.name == "postgresql" else {i.name for i in schema.COSTLY_RUN_INDEXES}

    def ours(name: str | None, kind: str, parents: Any) -> bool:  # what the database has
        return not (kind == "table" and partitions.postgres_only(name or ""))

    def made_here(obj: Any, name: str | None, kind: str, reflected: bool, compare_to: Any) -> bool:  # both sides
        return not (kind == "index" and name in skipped)

    return compare_metadata(MigrationContext.configure(conn, opts={
        "compare_type": True, "include_name": ours, "include_object": made_here}), schema.metadata)
