"""Webhook signatures: HMAC-SHA256 over `<unix timestamp>.<body>`, sent as

    Tollmeter-Signature: t=1733364000,v1=5f8a...e1

The timestamp is inside what is signed, so a receiver that refuses old timestamps (`tolerance`
seconds) refuses a replayed request; a receiver that also remembers the `id` of the messages it
handled drops the rare retry of one it already has. Several `v1=` entries are accepted (a secret
being rotated)."""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "Tollmeter-Signature"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `<timestamp>.<body>` with `secret`."""
    message = str(int(timestamp)).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The `Tollmeter-Signature` header's value for `body`, signed now (or at `timestamp`)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={ts},v1={signature(secret, ts, body)}"


def verify_signature(secret: str, header: str | None, body: bytes, tolerance: float = 300,
                     now: float | None = None) -> bool:
    """True when `header` (the `Tollmeter-Signature` value) signs exactly `body` with `secret`,
    at a time no more than `tolerance` seconds from `now` (either way). Give the body as the
    bytes received, before any JSON parsing."""
    if not header or not isinstance(body, (bytes, bytearray)):
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, bytes(body))
    return any(hmac.compare_digest(expected, c) for c in candidates)
