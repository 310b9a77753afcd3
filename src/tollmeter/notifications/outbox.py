"""The outbox: a message becomes one delivery row per endpoint in the transaction that claims
it, so nothing is lost between deciding and sending, whatever restarts. `deliver_due` sends
what is due: it claims rows first (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so replicas take
different rows; SQLite: `BEGIN IMMEDIATE`), sends outside any transaction, and records the
attempt; a failure is retried after an exponential backoff, until `max_attempts`."""

from __future__ import annotations

import logging
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Iterable

import httpx
from sqlalchemy import and_, insert, or_, select, update

from .._version import __version__
from ..store import schema
from .messages import body
from .signing import HEADER, sign

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from ..store.store import Store
    from .settings import NotifierSettings

logger = logging.getLogger("tollmeter.notifications")

#: Characters of a receiver's answer or an error kept in the log.
_ERROR_CHARS = 500


def enqueue(conn: Connection, project: str, endpoints: Iterable[Any], message: dict[str, Any], now: datetime) -> int:
    """Queue `message` for each endpoint (inside the caller's transaction); returns how many.
    Due at once (rules evaluated as of a later `now` do not hold their messages back)."""
    now = min(now, datetime.now(timezone.utc))
    rows = [{"delivery_id": secrets.token_hex(16), "project_id": project, "endpoint_id": e["endpoint_id"],
             "message_id": message["id"], "event": message["type"], "payload": message, "status": "pending",
             "attempts": 0, "next_attempt_at": now, "created_at": now} for e in endpoints]
    if rows:
        conn.execute(insert(schema.notification_deliveries), rows)
    return len(rows)


@dataclass(frozen=True)
class Attempt:
    delivery_id: str
    outcome: str  # delivered, retrying, failed
    status_code: int | None
    error: str | None


def deliver_due(store: Store, settings: NotifierSettings, client: httpx.Client,
                now: datetime | None = None) -> list[Attempt]:
    """Send the deliveries due (of every project), at most `settings.batch`."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    claimed = _claim(store, settings, now)
    return [_send(store, settings, client, row, endpoint) for row, endpoint in claimed]


def _claim(store: Store, settings: NotifierSettings, now: datetime) -> list[tuple[Any, Any]]:
    d, e = schema.notification_deliveries, schema.notification_endpoints
    with store.transaction() as conn:
        due = (select(d).where(d.c.status == "pending", d.c.next_attempt_at <= now,
                               or_(d.c.claimed_until.is_(None), d.c.claimed_until <= now))
               .order_by(d.c.next_attempt_at).limit(settings.batch).with_for_update(skip_locked=True))
        rows = conn.execute(due).mappings().all()
        if not rows:
            return []
        conn.execute(update(d).where(d.c.delivery_id.in_([r["delivery_id"] for r in rows]))
                     .values(claimed_until=now + timedelta(seconds=settings.claim_seconds)))
        keys = {(r["project_id"], r["endpoint_id"]) for r in rows}
        found = conn.execute(select(e).where(or_(*(and_(e.c.project_id == p, e.c.endpoint_id == i)
                                                   for p, i in keys)))).mappings().all()
    endpoints = {(r["project_id"], r["endpoint_id"]): r for r in found}
    return [(row, endpoints.get((row["project_id"], row["endpoint_id"]))) for row in rows]


def _send(store: Store, settings: NotifierSettings, client: httpx.Client, row: Any, endpoint: Any) -> Attempt:
    attempt = row["attempts"] + 1
    status_code: int | None = None
    if endpoint is None or not endpoint["enabled"]:
        error, delivered, final = ("endpoint removed" if endpoint is None else "endpoint disabled"), False, True
    else:
        content = body(row["payload"], endpoint["format"])
        headers = {"Content-Type": "application/json", HEADER: sign(endpoint["secret"], content),
                   "Tollmeter-Event": row["event"], "Tollmeter-Message-Id": row["message_id"],
                   "Tollmeter-Delivery": row["delivery_id"], "User-Agent": f"tollmeter/{__version__}"}
        error = None
        try:
            with client.stream("POST", endpoint["url"], content=content, headers=headers,
                               timeout=settings.timeout) as response:
                status_code = response.status_code
                if not 200 <= status_code < 300:
                    error = f"HTTP {status_code}: {_start_of(response)}".strip()
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]
        delivered = error is None
        final = delivered or attempt >= settings.max_attempts
    now = datetime.now(timezone.utc)
    retry_at = None if final else now + timedelta(seconds=settings.backoff(attempt, random.random()))
    outcome = "delivered" if delivered else "failed" if final else "retrying"
    _record(store, row, attempt, now, status_code, error, retry_at, outcome)
    if not delivered:
        logger.warning("notification %s to endpoint %s: attempt %d %s (%s)", row["message_id"], row["endpoint_id"],
                       attempt, "given up" if final else "failed, retried later", error)
    _count(outcome)
    return Attempt(row["delivery_id"], outcome, status_code, error)


def _start_of(response: httpx.Response) -> str:
    """The first characters of an answer's body (a receiver's whole body is never read; one its
    transport read already is served from memory)."""
    start = b""
    for chunk in response.iter_bytes():
        start += chunk
        if len(start) >= _ERROR_CHARS:
            break
    return start[:_ERROR_CHARS].decode("utf-8", "replace")


def _record(store: Store, row: Any, attempt: int, now: datetime, status_code: int | None, error: str | None,
            retry_at: datetime | None, outcome: str) -> None:
    d, a = schema.notification_deliveries, schema.notification_attempts
    with store.transaction() as conn:
        # Only if no other replica recorded an attempt meanwhile (its claim lapsed and it took over).
        done = conn.execute(update(d).where(d.c.delivery_id == row["delivery_id"], d.c.attempts == row["attempts"])
                            .values(attempts=attempt, status="pending" if outcome == "retrying" else outcome,
                                    next_attempt_at=retry_at, claimed_until=None, last_status_code=status_code,
                                    last_error=error, delivered_at=now if outcome == "delivered" else None))
        if done.rowcount == 1:
            conn.execute(insert(a).values(delivery_id=row["delivery_id"], attempt=attempt, project_id=row["project_id"],
                                          attempted_at=now, status_code=status_code, error=error,
                                          next_attempt_at=retry_at))


def _count(outcome: str) -> None:
    """The server's delivery counter (server/metrics.py), when the server's metrics are there."""
    try:
        from ..server.metrics import record_delivery
    except ImportError:
        return
    try:
        record_delivery(outcome)
    except Exception:  # a metrics fault never stops a delivery
        logger.exception("record_delivery failed")

