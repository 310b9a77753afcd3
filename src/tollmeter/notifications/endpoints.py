"""A project's webhook endpoints: where its notifications go, in which format, for which rules.

An endpoint is stored with its options in `notification_endpoints.rules` (JSON):
`{"rules": [...], "thresholds": [80, 100], "refusal_count": 10, "refusal_window_minutes": 5}`.
Its secret is shown when it is set (generated when not given) and never again: only its last
four characters (`secret_hint`)."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Iterable

from sqlalchemy import delete, func, insert, select, update

from ..store import schema

if TYPE_CHECKING:
    from ..store.store import Store

#: The rules an endpoint can hear.
RULES = ("limit", "refusals", "leak")
FORMATS = ("json", "slack")
DEFAULT_THRESHOLDS = (80, 100)
DEFAULT_REFUSAL_COUNT = 10
DEFAULT_REFUSAL_WINDOW = 5
#: Endpoints per project at most.
MAX_ENDPOINTS = 20
_FIELDS = {"endpoint_id", "url", "secret", "format", "rules", "thresholds", "refusal_count",
           "refusal_window_minutes", "enabled", "description"}


def list_endpoints(store: Store) -> list[dict[str, Any]]:
    """The project's endpoints (secrets hidden), oldest first."""
    t = schema.notification_endpoints
    with store.transaction() as conn:
        rows = conn.execute(select(t).where(t.c.project_id == store.project)
                            .order_by(t.c.created_at, t.c.endpoint_id)).mappings().all()
    return [public(row) for row in rows]


def get_endpoint(store: Store, endpoint_id: str) -> dict[str, Any] | None:
    t = schema.notification_endpoints
    with store.transaction() as conn:
        row = conn.execute(select(t).where(t.c.project_id == store.project, t.c.endpoint_id == endpoint_id)
                           ).mappings().first()
    return None if row is None else public(row)


def save_endpoint(store: Store, **fields: Any) -> dict[str, Any]:
    """Create an endpoint (no `endpoint_id`, or one not there yet; `url` needed) or change the
    fields given of an existing one. Returns it, with `secret` when this call set it (a new
    endpoint without one gets a generated secret). Bad input raises ValueError, changing nothing."""
    unknown = set(fields) - _FIELDS
    if unknown:
        raise ValueError(f"unknown endpoint fields: {', '.join(sorted(unknown))}")
    fields = {k: v for k, v in fields.items() if v is not None or k == "description"}
    endpoint_id = fields.pop("endpoint_id", None)
    if endpoint_id is not None:
        endpoint_id = _text(endpoint_id, "endpoint_id", 32, pattern=True)
    t = schema.notification_endpoints
    now = datetime.now(timezone.utc)
    with store.transaction() as conn:
        row = None
        if endpoint_id is not None:
            row = conn.execute(select(t).where(t.c.project_id == store.project, t.c.endpoint_id == endpoint_id)
                               .with_for_update()).mappings().first()
        if row is None:
            if "url" not in fields:
                raise ValueError("a new endpoint needs its url")
            count = conn.execute(select(func.count()).select_from(t).where(t.c.project_id == store.project)).scalar()
            if count >= MAX_ENDPOINTS:
                raise ValueError(f"a project has at most {MAX_ENDPOINTS} endpoints")
            secret = fields.get("secret") or generate_secret()
            values = _validated({**fields, "secret": secret}, current=None)
            values.update(project_id=store.project, endpoint_id=endpoint_id or secrets.token_hex(8),
                          created_at=now, updated_at=now)
            conn.execute(insert(t).values(**values))
            return {**public(values), "secret": secret}
        values = _validated(fields, current=row)
        values["updated_at"] = now
        conn.execute(update(t).where(t.c.project_id == store.project, t.c.endpoint_id == endpoint_id).values(**values))
        saved = public({**row, **values})
    return {**saved, "secret": fields["secret"]} if "secret" in fields else saved


def delete_endpoint(store: Store, endpoint_id: str) -> bool:
    """Remove an endpoint (its deliveries not sent yet are given up when their turn comes)."""
    t = schema.notification_endpoints
    with store.transaction() as conn:
        result = conn.execute(delete(t).where(t.c.project_id == store.project, t.c.endpoint_id == endpoint_id))
    return result.rowcount > 0


def generate_secret() -> str:
    return "whsec_" + secrets.token_hex(24)


def options(row: Any) -> dict[str, Any]:
    """An endpoint row's options, with the defaults for any missing."""
    stored = row["rules"] if isinstance(row["rules"], dict) else {}
    return {
        "rules": list(stored.get("rules", RULES)),
        "thresholds": list(stored.get("thresholds", DEFAULT_THRESHOLDS)),
        "refusal_count": stored.get("refusal_count", DEFAULT_REFUSAL_COUNT),
        "refusal_window_minutes": stored.get("refusal_window_minutes", DEFAULT_REFUSAL_WINDOW),
    }


def public(row: Any) -> dict[str, Any]:
    """An endpoint as the API, the CLI and the dashboard show it (no secret)."""
    return {
        "endpoint_id": row["endpoint_id"],
        "url": row["url"],
        "format": row["format"],
        **options(row),
        "enabled": bool(row["enabled"]),
        "description": row.get("description"),
        "secret_hint": "..." + row["secret"][-4:],
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
    }


def _validated(fields: dict[str, Any], current: Any) -> dict[str, Any]:
    """The columns to write for `fields` (an update merges them into the current options)."""
    out: dict[str, Any] = {}
    if "url" in fields:
        out["url"] = _url(fields["url"])
    if "secret" in fields:
        out["secret"] = _text(fields["secret"], "secret", 255)
        if len(out["secret"]) < 16:
            raise ValueError("secret: at least 16 characters")
    if "format" in fields or current is None:
        fmt = fields.get("format", "json")
        if fmt not in FORMATS:
            raise ValueError(f"format: one of {', '.join(FORMATS)}, got {fmt!r}")
        out["format"] = fmt
    if "enabled" in fields or current is None:
        enabled = fields.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ValueError(f"enabled: true or false, got {enabled!r}")
        out["enabled"] = enabled
    if "description" in fields:
        description = fields["description"]
        out["description"] = None if description in (None, "") else _text(description, "description", 255)
    opts = options(current) if current is not None else options({"rules": {}})
    if "rules" in fields:
        opts["rules"] = _rules(fields["rules"])
    if "thresholds" in fields:
        opts["thresholds"] = _thresholds(fields["thresholds"])
    if "refusal_count" in fields:
        opts["refusal_count"] = _whole(fields["refusal_count"], "refusal_count", 1, 1_000_000)
    if "refusal_window_minutes" in fields:
        opts["refusal_window_minutes"] = _whole(fields["refusal_window_minutes"], "refusal_window_minutes", 1, 1440)
    if current is None or opts != options(current):
        out["rules"] = opts
    return out


def _url(value: Any) -> str:
    import httpx

    text = _text(value, "url", 2048)
    try:
        url = httpx.URL(text)
    except Exception:
        raise ValueError(f"url: not a URL: {text!r}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"url: an http:// or https:// URL with a host, got {text!r}")
    return text


def _rules(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"rules: a non-empty list of {', '.join(RULES)}")
    for rule in value:
        if rule not in RULES:
            raise ValueError(f"rules: {rule!r} is not one of {', '.join(RULES)}")
    return [rule for rule in RULES if rule in value]


def _thresholds(value: Any) -> list[int | float]:
    if isinstance(value, str):
        value = [v.strip().rstrip("%") for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not value or len(value) > 10:
        raise ValueError("thresholds: 1 to 10 percentages of a limit, like [80, 100]")
    out: set[int | float] = set()
    for item in value:
        try:
            if isinstance(item, bool):
                raise InvalidOperation
            pct = Decimal(str(item))
        except (InvalidOperation, ValueError):
            raise ValueError(f"thresholds: {item!r} is not a number") from None
        if not pct.is_finite() or not 0 < pct <= 1000:
            raise ValueError(f"thresholds: each above 0 and at most 1000 (percent), got {item!r}")
        out.add(int(pct) if pct == pct.to_integral_value() else float(pct))
    return sorted(out)


def _whole(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value))
        except ValueError:
            raise ValueError(f"{name}: a whole number, got {value!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name}: from {low} to {high}, got {value}")
    return value


def _text(value: Any, name: str, limit: int, *, pattern: bool = False) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name}: a non-empty string")
    if len(value) > limit:
        raise ValueError(f"{name}: at most {limit} characters")
    if "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value):
        raise ValueError(f"{name}: no NUL or lone surrogate characters")
    if pattern and not all(ch.isalnum() or ch in "-_" for ch in value):
        raise ValueError(f"{name}: letters, digits, - and _ only")
    return value


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat()
    return str(value)


def hears(endpoint_row: Any, rule: str) -> bool:
    return rule in options(endpoint_row)["rules"]


def enabled_rows(conn: Any, project: str) -> Iterable[Any]:
    t = schema.notification_endpoints
    return conn.execute(select(t).where(t.c.project_id == project, t.c.enabled.is_(True))).mappings().all()
