"""What a notification says: the JSON payload every endpoint gets (stored in the outbox as it
is, so a retry sends the same message), its one-line text, and the body in each format."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

#: The payload's `type` per rule.
TYPES = {"limit": "limit.threshold", "refusals": "refusals.burst", "leak": "leak.flagged",
         "test": "notification.test"}


def message_id(project: str, rule: str, tenant_id: str, subject: str, period: str, status: str) -> str:
    """The same for every replica and every endpoint: a receiver deduplicates on it."""
    key = "\x1f".join((project, rule, tenant_id, subject, period, status))
    return "ntf_" + hashlib.sha256(key.encode()).hexdigest()[:28]


def payload(*, project: str, rule: str, tenant_id: str, subject: str, period: str, status: str,
            text: str, data: dict[str, Any], at: datetime) -> dict[str, Any]:
    return {
        "id": message_id(project, rule, tenant_id, subject, period, status),
        "type": TYPES[rule],
        "status": status,
        "project": project,
        "tenant_id": tenant_id or None,
        "subject": subject,
        "period": period,
        "created_at": at.isoformat(),
        "text": text,
        "data": data,
    }


def body(message: dict[str, Any], fmt: str) -> bytes:
    """The request body: the payload as JSON, or Slack's `{"text": ...}` (an incoming webhook
    of Slack, Mattermost, Rocket.Chat or Discord's /slack endpoint takes it)."""
    if fmt == "slack":
        mark = ":white_check_mark:" if message["status"] == "resolved" else ":rotating_light:"
        document: dict[str, Any] = {"text": f"{mark} [tollmeter {message['project']}] {message['text']}"}
    else:
        document = message
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
