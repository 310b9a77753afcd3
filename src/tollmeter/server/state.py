"""What a server process holds while it runs: the settings, the store (one engine and its
connection pool for every project), the pricer, the API keys it found valid (their projects;
every use still checks the key in the database) and the turns of the lease grants. Nothing
else: any number of processes and replicas share one database and no state of their own."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from ..store import migrations, partitions
from ..store.store import Store, default_path
from .auth import KnownKeys
from .pricing import load_pricer
from .settings import ServerSettings

if TYPE_CHECKING:
    from ..pricing.pricer import Pricer

logger = logging.getLogger("tollmeter.server")


class SchemaNotReady(RuntimeError):
    pass


@dataclass
class ServerState:
    settings: ServerSettings
    store: Store
    pricer: Pricer
    known_keys: KnownKeys = field(default_factory=KnownKeys)
    #: The worker threads of lease grants (`settings.lease_concurrency` at once, in turn).
    grant_turns: anyio.CapacityLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.grant_turns = anyio.CapacityLimiter(self.settings.lease_concurrency)

    @classmethod
    def open(cls, settings: ServerSettings) -> ServerState:
        # A bad rate card stops the start, before the database.
        pricer = load_pricer(settings.prices, settings.infer_prices)
        store = open_store(settings.database_url)
        try:
            if settings.migrate:
                before, after = migrations.upgrade(store.engine)
                if before != after:
                    logger.info("database migrated from %s to %s", before or "empty", after)
            else:
                revision = migrations.current(store.engine)
                if revision != migrations.HEAD:
                    raise SchemaNotReady(f"the database is at revision {revision or 'none'}, not "
                                         f"{migrations.HEAD}: run `tollmeter db upgrade` first")
            create_partitions_ahead(store)
            pricer.bundled.find("openai", "gpt-4o")  # load the price data now, not on the first batch
        except BaseException:
            store.close()
            raise
        return cls(settings, store, pricer)

    def close(self) -> None:
        self.store.close()


def create_partitions_ahead(store: Store) -> None:
    """PostgreSQL: the partitions of the events of this month and the next ones, where missing
    (a month without one gets it at its first event too; this keeps that off the ingest path)."""
    try:
        with store.transaction() as conn:
            if partitions.is_partitioned(conn):
                created = partitions.create_ahead(conn)
                if created:
                    logger.info("events partitions created: %s", ", ".join(created))
    except Exception as exc:  # noqa: BLE001 - a role that may not create tables: ingest creates them
        logger.warning("could not create the events partitions ahead: %s", exc)


def open_store(database_url: str | None) -> Store:
    """The store at a URL or path (default: the embedded store's file), schema not created:
    migrations do that."""
    return Store(database_url or default_path(), create=False)


def describe(database_url: str | None) -> str:
    """The database for a log line, without its password."""
    from sqlalchemy.engine import make_url

    from ..store.store import database_url as to_url

    try:
        return make_url(to_url(database_url or default_path())).render_as_string(hide_password=True)
    except Exception:
        return "(database)"
