"""Server-side notifications: rules over spend, lease refusals and leaks (rules.py), sent once
per threshold and period through a persisted outbox (outbox.py) to signed webhooks
(signing.py), by a background Notifier in each server process (runner.py). See
docs/notifications.md."""

from .signing import HEADER, sign, verify_signature

__all__ = ["HEADER", "sign", "verify_signature"]
