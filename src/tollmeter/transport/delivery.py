"""Delivery to the ingest server: batches are POSTed; what the server cannot take now waits in
the disk spool and is sent when it can. Runs on the background worker."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..paths import default_spool
from .http import DeliveryError, HttpSink, Outcome
from .spool import Spool

if TYPE_CHECKING:
    from ..config import MeterConfig
    from ..faults import Faults

logger = logging.getLogger("tollmeter")


class Delivery:
    def __init__(self, config: MeterConfig, faults: Faults) -> None:
        assert config.url is not None
        self._faults = faults
        self.sink = HttpSink(config.url, config.api_key or "", timeout=config.timeout,
                             max_retries=config.max_retries, backoff_base=config.retry_backoff,
                             report=faults.delivery)
        self.spool: Spool | None = None
        if config.spool_dir is not False:
            self.spool = Spool(config.spool_dir or default_spool(config.url), config.spool_max_bytes)

    def deliver(self, events: list[dict[str, Any]], resolutions: list[dict[str, Any]] = ()) -> None:  # type: ignore[assignment]
        """POST a batch (events, and run resolutions); what the server cannot take now goes to
        the spool."""
        body = self.sink.encode(events, list(resolutions))
        count = len(events) + len(resolutions)
        if self.spool is not None and self.sink.is_down:
            self._keep(body, count)  # the server did not answer lately: no waiting
            return
        if self.sink.send_body(body, count) is Outcome.UNREACHABLE:
            self._keep(body, count)

    def _keep(self, body: bytes, count: int) -> None:
        if self.spool is not None and self.spool.put(body, count):
            logger.debug("tollmeter: %d events spooled (%s)", count, self.sink.last_error)
            return
        self.sink.stats.failed += count
        self._faults.delivery(DeliveryError(
            f"could not deliver a batch of {count} events ({self.sink.last_error}) and could not spool it",
            events=count))

    def replay(self) -> None:
        """Send spooled batches while the server takes them (on every wake of the worker)."""
        if self.spool is None or self.sink.is_down:
            return
        for path in self.spool.pending()[:20]:
            batch = self.spool.claim(path)
            if batch is None:
                continue
            outcome = self.sink.send_body(batch.body, batch.events, retries=0)
            if outcome is Outcome.UNREACHABLE:
                self.spool.put_back(batch)
                return
            self.spool.sent(batch)  # sent, or refused for good (counted as failed)

    def stop_waiting(self) -> None:
        """Shutting down: no more backoff to sit out (what is not taken at once is spooled)."""
        self.sink.stopping.set()

    def after_fork_in_child(self) -> None:
        """A forked child starts with its own counts and a new HTTP client (made on first use);
        the parent's undelivered batches stay the parent's."""
        self.sink.after_fork_in_child()
        if self.spool is not None:
            self.spool.after_fork_in_child()

    def has_spooled(self) -> bool:
        return self.spool is not None and self.spool.has_pending()

    def close(self) -> None:
        self.sink.stopping.set()
        self.sink.close()

    def stats(self) -> dict[str, int]:
        delivery, spool = self.sink.stats, self.spool.stats if self.spool is not None else None
        return {
            "sent": delivery.sent, "retried": delivery.retried, "failed": delivery.failed,
            "rejected": delivery.rejected,
            "spooled": spool.spooled if spool else 0, "replayed": spool.replayed if spool else 0,
            "spool_dropped": spool.dropped if spool else 0,
        }
