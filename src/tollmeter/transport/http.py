"""HttpSink: POST a batch of events as gzip JSON to the ingest URL, with retries.

Retried: 429, 5xx and network errors, with exponential backoff and jitter, honouring
`Retry-After`. Any other 4xx is permanent: counted as failed, reported, never retried.
Runs on the background worker only.
"""

from __future__ import annotations

import email.utils
import enum
import gzip
import json
import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import httpx

from .._version import __version__

logger = logging.getLogger("tollmeter")

#: Longest wait between two attempts, whatever the server's Retry-After says.
MAX_BACKOFF_SECONDS = 60.0
#: After a batch could not be delivered, how long until the next try (doubling to the max).
_FIRST_PROBE_DELAY = 2.0


class Outcome(enum.Enum):
    SENT = "sent"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"


class DeliveryError(Exception):
    """A batch, or some events of it, could not be delivered."""

    def __init__(self, message: str, *, status_code: int | None = None, events: int = 0) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.events = events


@dataclass
class DeliveryStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    rejected: int = 0
    batches: int = 0


class HttpSink:
    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout: float,
        max_retries: int,
        report: Callable[[BaseException], None],
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "User-Agent": f"tollmeter/{__version__}",
        }
        self._timeout = timeout
        self._max_retries = max_retries
        self._report = report
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._transport = transport
        self._client: httpx.Client | None = None
        self._pid = os.getpid()
        self.stats = DeliveryStats()
        #: Set when the agent shuts down: backoff waits end early and no new retry starts.
        self.stopping = threading.Event()
        self.down_until = 0.0
        self._probe_delay = _FIRST_PROBE_DELAY
        self.last_error: str | None = None

    @staticmethod
    def encode(events: list[dict[str, Any]], resolutions: list[dict[str, Any]] | None = None) -> bytes:
        payload: dict[str, Any] = {"events": events}
        if resolutions:
            payload["resolutions"] = resolutions
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        return gzip.compress(body.encode("utf-8"), compresslevel=6)

    def send_body(self, body: bytes, count: int, *, retries: int | None = None) -> Outcome:
        """Deliver one encoded batch. SENT (the server took it, perhaps rejecting some events),
        REFUSED (a 4xx other than 429: reported, never retried), or UNREACHABLE (network
        errors, 429 and 5xx until the retries ran out: the batch is the caller's to keep)."""
        retries = self._max_retries if retries is None else retries
        attempt = 0
        while True:
            status, retry_after, detail = self._attempt(body)
            if status is not None and 200 <= status < 300:
                self.stats.batches += 1
                self._account_accepted(count, detail)
                self.down_until = 0.0
                self._probe_delay = _FIRST_PROBE_DELAY
                return Outcome.SENT
            retryable = status is None or status == 429 or status >= 500
            if not retryable:
                self.stats.failed += count
                self._report(DeliveryError(
                    f"ingest refused a batch of {count} events with HTTP {status}: {detail}",
                    status_code=status, events=count,
                ))
                return Outcome.REFUSED
            if attempt >= retries or self.stopping.is_set():
                # Down: until a probe gets through, batches skip the network (see `is_down`).
                self.down_until = time.monotonic() + self._probe_delay
                self._probe_delay = min(self._probe_delay * 2, MAX_BACKOFF_SECONDS)
                self.last_error = f"HTTP {status}" if status is not None else str(detail)
                return Outcome.UNREACHABLE
            delay = self._backoff(attempt, retry_after)
            attempt += 1
            self.stats.retried += 1
            logger.debug("tollmeter: retrying a batch in %.2fs (attempt %d)", delay, attempt + 1)
            if self.stopping.wait(delay):
                continue  # shutting down: one last attempt right away, then give up

    @property
    def is_down(self) -> bool:
        """The server did not answer lately: batches go straight to the spool until a probe works."""
        return time.monotonic() < self.down_until

    def _attempt(self, body: bytes) -> tuple[int | None, float | None, Any]:
        try:
            response = self._http().post(self.url, content=body, headers=self._headers)
        except httpx.HTTPError as exc:
            return None, None, exc
        retry_after = _parse_retry_after(response.headers.get("retry-after"))
        try:
            detail: Any = response.json()
        except ValueError:
            detail = response.text[:200]
        return response.status_code, retry_after, detail

    def _account_accepted(self, count: int, detail: Any) -> None:
        rejected = detail.get("rejected") if isinstance(detail, dict) else None
        if isinstance(rejected, list) and rejected:
            self.stats.rejected += len(rejected)
            self.stats.sent += count - len(rejected)
            reasons = "; ".join(
                f"#{r.get('index')}: {r.get('reason')}" for r in rejected[:5] if isinstance(r, dict)
            )
            self._report(DeliveryError(
                f"ingest rejected {len(rejected)} of {count} events ({reasons})",
                status_code=200, events=len(rejected),
            ))
        else:
            self.stats.sent += count
        refused = detail.get("rejected_resolutions") if isinstance(detail, dict) else None
        if isinstance(refused, list) and refused:
            # Counted with the batch's items: a refused resolution (invalid, or contradicting
            # the run's first resolution) is rejected, not sent.
            self.stats.rejected += len(refused)
            self.stats.sent -= len(refused)
            reasons = "; ".join(
                f"#{r.get('index')}: {r.get('reason')}" for r in refused[:5] if isinstance(r, dict)
            )
            self._report(DeliveryError(
                f"ingest rejected {len(refused)} run resolution{'s' if len(refused) != 1 else ''} ({reasons})",
                status_code=200, events=len(refused),
            ))

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_BACKOFF_SECONDS)
        ceiling = min(self._backoff_max, self._backoff_base * (2 ** attempt))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _http(self) -> httpx.Client:
        if self._client is None or self._pid != os.getpid():
            # After fork() the parent's connections are not ours: open our own.
            self._pid = os.getpid()
            self._client = httpx.Client(timeout=self._timeout, transport=self._transport)
        return self._client

    def after_fork_in_child(self) -> None:
        """Counts start at 0 in a forked child; its client is its own (the parent's
        connections are never used or closed here)."""
        self.stats = DeliveryStats()
        self.stopping = threading.Event()
        self._client = None
        self._pid = os.getpid()

    def close(self) -> None:
        if self._client is not None and self._pid == os.getpid():
            self._client.close()
        self._client = None


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
