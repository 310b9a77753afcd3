"""Lease refusals counted per tenant and UTC minute: what the refusal-burst rule reads. The
server knows a refusal when it answers a lease request with nothing granted (server/leases.py);
the calls an agent then refuses on its own are behind that refusal."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select

from ..store import schema

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from ..store.store import Store

#: Counts older than this are pruned.
KEEP = timedelta(days=2)


def record_refusal(store: Store, tenant_id: str, at: datetime | None = None) -> None:
    """Count one refused lease of `tenant_id` in the minute of `at` (default now)."""
    at = (at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    minute = at.replace(second=0, microsecond=0)
    t = schema.lease_refusals
    with store.transaction() as conn:
        statement = _insert(conn, t).values(project_id=store.project, tenant_id=tenant_id, minute=minute, refusals=1)
        conn.execute(statement.on_conflict_do_update(index_elements=["project_id", "tenant_id", "minute"],
                                                     set_={"refusals": t.c.refusals + 1}))


def refusals_since(conn: Connection, project: str, since: datetime) -> dict[str, int]:
    """Refused leases per tenant from the minute of `since` on."""
    t = schema.lease_refusals
    minute = since.astimezone(timezone.utc).replace(second=0, microsecond=0)
    rows = conn.execute(select(t.c.tenant_id, func.sum(t.c.refusals))
                        .where(t.c.project_id == project, t.c.minute >= minute).group_by(t.c.tenant_id)).all()
    return {tenant: int(count) for tenant, count in rows}


def prune(conn: Connection, now: datetime) -> None:
    conn.execute(delete(schema.lease_refusals).where(schema.lease_refusals.c.minute < now - KEEP))


def _insert(conn: Connection, table: object):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def count_refusal(store: Store, tenant_id: str) -> None:
    """`record_refusal` for the lease route: a count that cannot be written is logged, and the
    refused lease is answered all the same."""
    try:
        record_refusal(store, tenant_id)
    except Exception:
        logging.getLogger("tollmeter.notifications").warning(
            "could not count a refused lease of %r", tenant_id, exc_info=True)
