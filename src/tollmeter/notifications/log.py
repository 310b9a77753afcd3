"""What the dashboard and the API read and change: a project's endpoints and its delivery log.
`store` is the server's per-project Store (`Store.for_project`)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from ..store import schema
from .endpoints import delete_endpoint, get_endpoint, list_endpoints, save_endpoint
from .messages import payload
from .outbox import enqueue

if TYPE_CHECKING:
    from ..store.store import Store

__all__ = ["list_endpoints", "get_endpoint", "save_endpoint", "delete_endpoint", "send_test", "recent_deliveries",
           "delivery_attempts"]

#: Rows a delivery log answer holds at most.
MAX_DELIVERIES = 1000


def send_test(store: Store, endpoint_id: str) -> dict[str, Any] | None:
    """Queue a `notification.test` message to one endpoint (sent by the next round, retried
    like any other); None when the project has no such endpoint. Returns the message."""
    import secrets

    e = schema.notification_endpoints
    now = datetime.now(timezone.utc)
    with store.transaction() as conn:
        endpoint = conn.execute(select(e).where(e.c.project_id == store.project, e.c.endpoint_id == endpoint_id)
                                ).mappings().first()
        if endpoint is None:
            return None
        message = payload(project=store.project, rule="test", tenant_id="", subject="test",
                          period=secrets.token_hex(8), status="firing", at=now, data={},
                          text=f"A test of endpoint {endpoint_id}: its notifications reach you.")
        enqueue(conn, store.project, [endpoint], message, now)
    return message


def recent_deliveries(store: Store, limit: int = 100, *, endpoint_id: str | None = None,
                      status: str | None = None) -> list[dict[str, Any]]:
    """The project's deliveries, newest first: what was sent where, attempts (`answers`: each
    one's status code or error kind, in order), the last status code or error, the next retry
    (None once delivered or given up)."""
    limit = max(1, min(int(limit), MAX_DELIVERIES))
    d = schema.notification_deliveries
    query = select(d).where(d.c.project_id == store.project)
    if endpoint_id is not None:
        query = query.where(d.c.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(d.c.status == status)
    with store.transaction() as conn:
        rows = conn.execute(query.order_by(d.c.created_at.desc(), d.c.delivery_id).limit(limit)).mappings().all()
        answers = _answers(conn, store.project, [r["delivery_id"] for r in rows])
    return [{
        "delivery_id": r["delivery_id"],
        "endpoint_id": r["endpoint_id"],
        "message_id": r["message_id"],
        "event": r["event"],
        "status": r["status"],
        "notification_status": (r["payload"] or {}).get("status"),
        "tenant_id": (r["payload"] or {}).get("tenant_id"),
        "text": (r["payload"] or {}).get("text"),
        "attempts": r["attempts"],
        "last_status_code": r["last_status_code"],
        "last_error": r["last_error"],
        "answers": answers.get(r["delivery_id"], []),
        "next_attempt_at": _iso(r["next_attempt_at"]) if r["status"] == "pending" else None,
        "created_at": _iso(r["created_at"]),
        "delivered_at": _iso(r["delivered_at"]),
    } for r in rows]


def _answers(conn: Any, project: str, delivery_ids: list[str]) -> dict[str, list[str]]:
    """Each delivery's attempts in order, short: the status code, or the error's kind
    ("ConnectError", "ReadTimeout")."""
    a = schema.notification_attempts
    out: dict[str, list[str]] = {}
    for start in range(0, len(delivery_ids), 500):
        chunk = delivery_ids[start:start + 500]
        for r in conn.execute(select(a.c.delivery_id, a.c.status_code, a.c.error)
                              .where(a.c.project_id == project, a.c.delivery_id.in_(chunk))
                              .order_by(a.c.delivery_id, a.c.attempt)):
            short = str(r.status_code) if r.status_code is not None else (r.error or "").partition(":")[0] or "error"
            out.setdefault(r.delivery_id, []).append(short)
    return out


def delivery_attempts(store: Store, delivery_id: str) -> list[dict[str, Any]]:
    """Every attempt of one of the project's deliveries, first first."""
    a = schema.notification_attempts
    with store.transaction() as conn:
        rows = conn.execute(select(a).where(a.c.project_id == store.project, a.c.delivery_id == delivery_id)
                            .order_by(a.c.attempt)).mappings().all()
    return [{"attempt": r["attempt"], "attempted_at": _iso(r["attempted_at"]), "status_code": r["status_code"],
             "error": r["error"], "next_attempt_at": _iso(r["next_attempt_at"])} for r in rows]


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat()
    return str(value)
