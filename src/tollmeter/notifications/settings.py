"""NotifierSettings: how often the server evaluates the rules and sends the outbox, and how it
retries. From `TOLLMETER_NOTIFY_*` environment variables, so every replica runs alike."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Mapping

ENVIRONMENT = {
    "enabled": "TOLLMETER_NOTIFY",
    "interval": "TOLLMETER_NOTIFY_INTERVAL",
    "leak_interval": "TOLLMETER_NOTIFY_LEAK_INTERVAL",
    "backoff_base": "TOLLMETER_NOTIFY_BACKOFF_BASE",
    "backoff_max": "TOLLMETER_NOTIFY_BACKOFF_MAX",
    "backoff_jitter": "TOLLMETER_NOTIFY_BACKOFF_JITTER",
    "max_attempts": "TOLLMETER_NOTIFY_MAX_ATTEMPTS",
    "timeout": "TOLLMETER_NOTIFY_TIMEOUT",
    "claim_seconds": "TOLLMETER_NOTIFY_CLAIM_SECONDS",
    "batch": "TOLLMETER_NOTIFY_BATCH",
    "keep_days": "TOLLMETER_NOTIFY_KEEP_DAYS",
    "prune_interval": "TOLLMETER_NOTIFY_PRUNE_INTERVAL",
    "prune_batch": "TOLLMETER_NOTIFY_PRUNE_BATCH",
}


@dataclass(frozen=True)
class NotifierSettings:
    #: Run the notifier in this server process (off: another replica does, or nobody).
    enabled: bool = True
    #: Seconds between two rounds (evaluate the rules, send what is due).
    interval: float = 15.0
    #: Seconds between two evaluations of the leak rules (they read the month's margin: 0.4 s
    #: over 1,000,000 events, docs/benchmarks.md).
    leak_interval: float = 300.0
    #: A failed delivery is retried after base x 2^(attempt - 1) seconds...
    backoff_base: float = 30.0
    #: ...at most this long...
    backoff_max: float = 6 * 3600.0
    #: ...plus up to this fraction more, at random (replicas' retries do not come in step).
    backoff_jitter: float = 0.1
    #: After this many attempts a delivery is given up ("failed" in the log).
    max_attempts: int = 10
    #: Seconds to wait for a receiver's answer.
    timeout: float = 10.0
    #: A replica sending a delivery holds it this long; one that dies meanwhile leaves it to another.
    claim_seconds: float = 120.0
    #: Deliveries sent per round at most.
    batch: int = 100
    #: Deliveries done (delivered or given up) are kept in the log this many days, and
    #: notifications resolved this many days (and a day after their period ended: retention.py).
    keep_days: int = 30
    #: Seconds between two prunings of what is older than `keep_days`...
    prune_interval: float = 3600.0
    #: ...which remove at most this many rows of each table a transaction (and at most 100
    #: transactions of each a pruning: what is left waits for the next).
    prune_batch: int = 1000

    def __post_init__(self) -> None:
        for name in ("interval", "leak_interval", "backoff_base", "backoff_max", "timeout", "claim_seconds",
                     "prune_interval"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 <= self.backoff_jitter <= 1:
            raise ValueError(f"backoff_jitter must be from 0 to 1, got {self.backoff_jitter!r}")
        for name in ("max_attempts", "batch", "keep_days", "prune_batch"):
            if not getattr(self, name) >= 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.claim_seconds <= self.timeout:
            raise ValueError("claim_seconds must be longer than timeout (a claim outlives its request)")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NotifierSettings:
        environ = os.environ if environ is None else environ
        values: dict = {}
        for f in fields(cls):
            raw = environ.get(ENVIRONMENT[f.name])
            if raw is None or raw.strip() == "":
                continue
            try:
                if f.name == "enabled":
                    values[f.name] = raw.strip().lower() not in ("0", "false", "no", "off")
                elif f.name in ("max_attempts", "batch", "keep_days", "prune_batch"):
                    values[f.name] = int(raw)
                else:
                    values[f.name] = float(raw)
            except ValueError:
                raise ValueError(f"{ENVIRONMENT[f.name]}: expected a number, got {raw!r}") from None
        return cls(**values)

    def backoff(self, attempt: int, draw: float = 0.0) -> float:
        """Seconds before the retry that follows failed attempt number `attempt` (1, 2, ...);
        `draw` in [0, 1) scales the jitter."""
        delay = min(self.backoff_max, self.backoff_base * 2 ** min(attempt - 1, 62))
        return delay * (1 + self.backoff_jitter * draw)
