"""The background half of every call: event -> price -> settle -> store -> on_event -> deliver.

The caller's thread only queues what finished (`submit`: an append). One batching
worker thread builds each event (`Call.to_event`, the one place events are made), prices it,
replaces its limit reservation by its real cost, writes it to the embedded store, hands it to
`on_event` and ships it to the server. Each per-event loop pauses every 200 µs of work
(`pacing.give_way`), so that an application thread whose answer came meanwhile is not kept
from the interpreter lock for the rest of the batch.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from .business.runs import RunResolution
from .events import LLMEvent
from .pacing import give_way
from .transport.worker import BatchWorker

if TYPE_CHECKING:
    from .config import MeterConfig
    from .faults import Faults
    from .instrument.call import Call
    from .limits.keeper import LimitKeeper, Settled
    from .pricing.pricer import Pricer
    from .store.ledger import Ledger
    from .transport.delivery import Delivery

logger = logging.getLogger("tollmeter")


class Pipeline:
    def __init__(self, config: MeterConfig, faults: Faults, pricing: Callable[[], Pricer],
                 limits: LimitKeeper, delivery: Delivery | None, ledger: Callable[[], Ledger] | None = None) -> None:
        self.config = config
        self._faults = faults
        self._pricing = pricing
        self._limits = limits
        self._delivery = delivery
        #: The embedded store's ledger, where run resolutions go when there is no server.
        self._ledger = ledger
        self.worker = BatchWorker(
            self.handle_batch,
            max_batch_size=config.max_batch_size,
            flush_interval=config.flush_interval,
            max_queue_size=config.max_queue_size,
            on_wake=self.upkeep,
            on_fault=faults,
        )
        #: The embedded store's file found deleted or replaced (and reopened), in this process.
        self.store_reopened = 0
        self._store_watched = False

    # -- the caller's thread --------------------------------------------------------------------

    def submit(self, item: Call | LLMEvent | RunResolution, urgent: bool = False) -> None:
        """Queue a finished call; `urgent` wakes the worker now (`limits.guard.wake_line`)."""
        if not self.worker.submit(item, urgent):
            self.refused(item)

    def refused(self, item: Any) -> None:
        """The worker's queue did not take `item` (counted as dropped there)."""
        if self.worker.stopping:
            logger.debug("tollmeter: an event recorded after shutdown was dropped")
            return
        self._faults.warn_once(
            "queue full", f"tollmeter: the event queue is full ({self.config.max_queue_size}); dropping events")

    # -- settlement (the worker, or a caller short of budget) -----------------------------------

    def settle(self, call: Call) -> None:
        """Build and price a reserved call's event and replace its reservation by its cost
        (the result stays on the reservation for the worker). Runs once per call (the guard
        serialises it); the reservation is always settled."""
        event = self._event(call)
        if event is not None and self.config.pricing:
            self._price(event)
        try:
            call.ticket.result = self._limits.settle(call.ticket, event)
        except Exception as fault:
            self._faults(fault, "settling a reservation")

    # -- the worker -----------------------------------------------------------------------------

    def handle_batch(self, items: list[Call | LLMEvent | RunResolution]) -> None:
        if not self._store_watched:
            self._watch_store()
        events: list[LLMEvent] = []
        settled: list[Settled | None] = []
        resolutions: list[RunResolution] = []
        for item in items:
            give_way()
            if type(item) is RunResolution:
                resolutions.append(item)
            elif type(item) is LLMEvent:  # track_manually
                if self.config.pricing:
                    self._price(item)
                events.append(item)
                settled.append(None)
            elif item.ticket is not None:  # type: ignore[union-attr]  # a call with a reservation
                ticket = item.ticket  # type: ignore[union-attr]
                self._limits.settle_one(ticket)  # unless a caller already did
                done = ticket.result
                # Taken: no cycle (reservation -> Settled -> reservation) is left for the
                # collector, whose full passes over what limited calls left ran on callers'
                # threads (a quarter of a second every few thousand calls, measured).
                ticket.result = None
                if done is not None:
                    events.append(done.event)
                    settled.append(done)
            else:
                event = self._event(item)  # type: ignore[arg-type]
                if event is not None:
                    if self.config.pricing:
                        self._price(event)
                    events.append(event)
                    settled.append(None)
        try:
            self._limits.record(events, settled)
        except Exception as fault:
            self._faults(fault, "recording spend")
        if resolutions and self._ledger is not None:
            self._resolve(resolutions)
        on_event = self.config.on_event
        if on_event is not None or self.config.debug:
            for event in events:
                give_way()
                if self.config.debug:
                    logger.debug("tollmeter event: %s", event.to_dict())
                if on_event is not None:
                    try:
                        on_event(event)
                    except Exception as fault:
                        self._faults(fault, "in on_event")
        if self._delivery is not None and (events or resolutions):
            try:
                self._delivery.deliver([_paced_dict(event) for event in events], [r.to_dict() for r in resolutions])
            except Exception as fault:
                self._faults(fault, "delivering a batch")

    def _watch_store(self) -> None:
        """Have the embedded store report its file found deleted or replaced (it reopens one at
        the path by itself: store/store.py) as a fault, counted in `store_reopened`."""
        self._store_watched = True
        if not self._limits.keeps_events:
            return
        try:
            on_reopen = getattr(self._limits.store, "on_reopen", None)
            if on_reopen is not None:
                on_reopen(self._store_reopened)
        except Exception as fault:  # the store cannot be opened: record() says so
            logger.debug("tollmeter: watching the store failed: %r", fault)
            self._store_watched = False

    def _store_reopened(self, lost: BaseException) -> None:
        self.store_reopened += 1
        self._faults(lost, "the embedded store's file")

    def _resolve(self, resolutions: list[RunResolution]) -> None:
        """Into the embedded store, after the batch's events (so that their runs are known)."""
        assert self._ledger is not None
        ledger = self._ledger()
        for r in resolutions:
            try:
                ledger.resolve(r.run_id, r.outcome, revenue_usd=r.revenue_usd, tenant_id=r.tenant_id,
                               agent_id=r.agent_id, at=r.resolved_at, key=r.key)
            except Exception as fault:  # RunAlreadyResolved: the first resolution stands
                self._faults(fault, "resolving a run")

    def _event(self, call: Call) -> LLMEvent | None:
        try:
            return call.to_event()
        except Exception as fault:
            self._faults(fault, "building an event")
            return None

    def _price(self, event: LLMEvent) -> None:
        try:
            self._pricing().price(event)
        except Exception as fault:
            self._faults(fault, "pricing an event")

    def upkeep(self) -> None:
        """On every wake of the worker: limits upkeep, and spooled batches sent when possible."""
        self._limits.maintain()
        if self._delivery is not None:
            self._delivery.replay()

    # -- lifecycle ------------------------------------------------------------------------------

    def flush(self, timeout: float | None) -> bool:
        return self.worker.flush(timeout)

    def shutdown(self, timeout: float | None) -> bool:
        return self.worker.shutdown(timeout)

    def after_fork_in_child(self) -> None:
        self.store_reopened = 0

    def stats(self) -> dict[str, Any]:
        worker = self.worker
        return {"recorded": worker.submitted + worker.dropped, "queued": worker.queued, "dropped": worker.dropped,
                "store_reopened": self.store_reopened}


def _paced_dict(event: LLMEvent) -> dict[str, Any]:
    give_way()
    return event.to_dict()
