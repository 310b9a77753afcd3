"""Pruning of what the notifier is done with, in bounded batches of short transactions:

- deliveries done (delivered or given up) created more than `keep_days` ago, with their attempts;
- notifications resolved more than `keep_days` ago whose period ended more than a day ago.

A `notifications` row is what makes a rule fire once per (rule, tenant, subject, period): its
primary key is claimed by the INSERT that queues the message (rules.py). So a row is pruned only
when its period can no longer be produced: never a `total` limit's, never one of the current
period (a threshold crossed, resolved by a raised limit and crossed again stays notified once),
nor one of a period that ended less than a day ago (a replica still finishing a round begun in
it, or with a clock a little behind, would fire it again). A row still firing is never pruned:
its resolved message is owed (an endpoint switched off, say, and on again later)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Callable

from sqlalchemy import and_, bindparam, delete, not_, or_, select

from ..limits.periods import period_keys
from ..store import schema
from .refusals import prune as prune_refusals

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from ..store.store import Store

#: A period is over for pruning once it ended this long ago.
GRACE = timedelta(days=1)


@dataclass
class Pruned:
    notifications: int = 0
    deliveries: int = 0
    attempts: int = 0


def prune(store: Store, now: datetime, keep_days: int, *, batch: int = 1000, max_batches: int | None = None,
          stop: Callable[[], bool] = lambda: False) -> Pruned:
    """Prune every project's notifications and deliveries done more than `keep_days` before
    `now` (and the lease refusal counts the burst rule no longer reads). At most `batch` rows
    of each kind a transaction; at most `max_batches` transactions of each kind (None: until
    none is left), or until `stop()` holds. Returns what was removed."""
    if keep_days < 1:
        raise ValueError(f"keep_days must be >= 1, got {keep_days!r}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch!r}")
    now = now.astimezone(timezone.utc)
    before = now - timedelta(days=keep_days)
    pruned = Pruned()
    with store.transaction() as conn:
        prune_refusals(conn, now)
    for step in (_notifications, _deliveries):
        done = 0
        while (max_batches is None or done < max_batches) and not stop():
            removed = step(store, now, before, batch, pruned)
            done += 1
            if removed < batch:
                break
    return pruned


def _notifications(store: Store, now: datetime, before: datetime, batch: int, pruned: Pruned) -> int:
    t = schema.notifications
    keys = (t.c.project_id, t.c.rule, t.c.tenant_id, t.c.subject, t.c.period)
    with store.transaction() as conn:
        rows = conn.execute(select(*keys).where(t.c.state == "resolved", t.c.resolved_at < before,
                                                _period_over(now)).limit(batch)).all()
        if rows:
            conn.execute(delete(t).where(*(c == bindparam(f"k_{c.name}") for c in keys)),
                         [{f"k_{c.name}": value for c, value in zip(keys, row)} for row in rows])
    pruned.notifications += len(rows)
    return len(rows)


def _period_over(now: datetime):
    """SQL: the row's period ended before `now - GRACE` (rules whose periods this module knows
    only; a row of another rule is kept)."""
    t = schema.notifications
    hours = [now - timedelta(hours=h) for h in range(int(GRACE / timedelta(hours=1)) + 1)]
    recent_limits = sorted({key for at in hours for key in period_keys(at)})  # "total" among them
    recent_hours = sorted({f"{at:%Y-%m-%dT%H}" for at in hours})
    recent_months = sorted({f"{at:%Y-%m}" for at in hours})
    return or_(and_(t.c.rule == "limit", not_(t.c.period.in_(recent_limits))),
               and_(t.c.rule == "refusals", not_(t.c.period.in_(recent_hours))),
               and_(t.c.rule == "leak", not_(t.c.period.in_(recent_months))))


def _deliveries(store: Store, now: datetime, before: datetime, batch: int, pruned: Pruned) -> int:
    d, a = schema.notification_deliveries, schema.notification_attempts
    with store.transaction() as conn:
        ids = list(conn.execute(select(d.c.delivery_id).where(d.c.status != "pending", d.c.created_at < before)
                                .limit(batch)).scalars())
        if ids:
            pruned.attempts += _rowcount(conn, delete(a).where(a.c.delivery_id.in_(ids)))
            conn.execute(delete(d).where(d.c.delivery_id.in_(ids)))
    pruned.deliveries += len(ids)
    return len(ids)


def _rowcount(conn: Connection, statement) -> int:
    return max(conn.execute(statement).rowcount, 0)
