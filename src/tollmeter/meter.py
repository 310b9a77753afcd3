"""Meter: the agent's lifecycle (patching, scopes, recording, flush and shutdown)."""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from contextvars import Token
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, TypeVar

from .config import MeterConfig
from .context import Scope, TenantScope, current_scope, enter_scope, exit_scope, make_scope
from .events import LLMEvent, Usage
from .instrument.registry import PROVIDERS, Patcher
from .limits.keeper import LimitKeeper, Settled, SpendStatus
from .paths import default_spool
from .transport.http import DeliveryError, HttpSink, Outcome
from .transport.spool import Spool
from .transport.worker import BatchWorker

if TYPE_CHECKING:
    from .instrument.call import Call
    from .pricing.pricer import Pricer
    from .store.store import Limit

logger = logging.getLogger("tollmeter")

F = TypeVar("F", bound=Callable[..., Any])


class Meter:
    """Meters, prices and caps the LLM calls of a process, per tenant.

    >>> meter = Meter(MeterConfig(api_key="...", url="https://metering.example.com/v1/ingest"))
    >>> meter.patch_all()
    >>> with meter.for_tenant("acme"):
    ...     client.chat.completions.create(...)
    """

    def __init__(self, config: MeterConfig | None = None, **options: Any) -> None:
        if config is None:
            config = MeterConfig(**options)
        elif options:
            raise TypeError("pass either a MeterConfig or keyword options, not both")
        self.config = config
        self._patcher = Patcher(self)
        self._instrumenting = True
        self._faults = 0
        self._faults_seen: set[str] = set()
        self._fault_lock = threading.Lock()
        self._sink = (
            HttpSink(
                config.url,
                config.api_key or "",
                timeout=config.timeout,
                max_retries=config.max_retries,
                backoff_base=config.retry_backoff,
                report=self._report_delivery_error,
            )
            if config.url
            else None
        )
        self._pricer: Pricer | None = None
        self._pricer_lock = threading.Lock()
        if config.prices is not None:
            self._pricing()  # a bad rate card fails here, at start-up
        self._limits = LimitKeeper(config, self._pricing, self._fault)
        self._spool: Spool | None = None
        if self._sink is not None and config.spool_dir is not False:
            self._spool = Spool(config.spool_dir or default_spool(config.url or ""), config.spool_max_bytes)
        self._worker = BatchWorker(
            self._handle_batch,
            max_batch_size=config.max_batch_size,
            flush_interval=config.flush_interval,
            max_queue_size=config.max_queue_size,
            on_wake=self._upkeep,
        )
        if config.pricing and config.refresh_prices:
            threading.Thread(target=self._refresh_prices, name="tollmeter-prices", daemon=True).start()
        self._limits.warm_up()
        self._closed = False
        atexit.register(_shutdown_at_exit, weakref.ref(self))

    def _pricing(self) -> Pricer:
        """The pricer, made on first use: genai-prices takes a few hundred ms to import."""
        if self._pricer is None:
            with self._pricer_lock:
                if self._pricer is None:
                    from .pricing.pricer import load_pricer

                    self._pricer = load_pricer(self.config.prices)
        return self._pricer

    def _refresh_prices(self) -> None:
        try:
            self._pricing().bundled.refresh()
        except Exception as fault:
            self._fault(fault, "refreshing prices")

    # -- patching ------------------------------------------------------------------------------

    def patch_all(self) -> list[str]:
        """Patch every provider whose SDK is installed (or those in `config.providers`)."""
        names: Iterable[str] = self.config.providers or PROVIDERS
        return [name for name in names if self._patcher.patch(name)]

    def patch(self, name: str) -> bool:
        """Patch one provider. False when its SDK is not installed."""
        return self._patcher.patch(name)

    def unpatch(self, name: str) -> None:
        self._patcher.unpatch(name)

    def unpatch_all(self) -> None:
        self._patcher.unpatch_all()

    @property
    def patched(self) -> list[str]:
        return self._patcher.patched

    # -- scopes --------------------------------------------------------------------------------

    def for_tenant(
        self,
        tenant_id: str | None,
        *,
        run_id: str | None = None,
        agent_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> TenantScope:
        """Attribute the calls made inside to `tenant_id` (`with`, `async with` or decorator)."""
        return TenantScope(make_scope(tenant_id, run_id, agent_id, tags))

    def set_tenant(
        self,
        tenant_id: str | None,
        *,
        run_id: str | None = None,
        agent_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> Token:
        """Set the tenant for the rest of the current context (for middleware).

        Returns a token for `reset_tenant`; a web framework running each request in its own
        context (Starlette, Django's ASGI handler) needs no reset.
        """
        return enter_scope(make_scope(tenant_id, run_id, agent_id, tags))

    def reset_tenant(self, token: Token) -> None:
        exit_scope(token)

    def current_scope(self) -> Scope | None:
        return self._scope_for_call()

    # -- limits --------------------------------------------------------------------------------

    def set_limit(self, tenant_id: str, limit_usd: Decimal | float | str, frequency: str = "per_month") -> None:
        """Cap `tenant_id`'s spend at `limit_usd` per_hour, per_day, per_month (UTC calendar
        periods) or in total. One limit per frequency; it applies to the very next call."""
        self._limits.set_limit(tenant_id, limit_usd, frequency)

    def remove_limit(self, tenant_id: str, frequency: str | None = None) -> int:
        """Remove one of the tenant's limits, or all of them; returns how many were removed."""
        return self._limits.remove_limit(tenant_id, frequency)

    def get_limits(self, tenant_id: str) -> list[Limit]:
        """The tenant's limits (or the default limits, marked `default`, if it has none)."""
        return self._limits.get_limits(tenant_id)

    def set_default_limit(self, limit_usd: Decimal | float | str, frequency: str = "per_month") -> None:
        """A limit for every tenant that has none of its own."""
        self._limits.set_limit("*", limit_usd, frequency)

    def remove_default_limit(self, frequency: str | None = None) -> int:
        return self._limits.remove_limit("*", frequency)

    def set_rate_limit(self, tenant_id: str, *, requests_per_minute: int | None = None,
                       tokens_per_minute: int | None = None) -> None:
        """Cap the tenant's requests and tokens per minute (in this process); None removes."""
        self._limits.set_rate_limit(tenant_id, requests_per_minute, tokens_per_minute)

    def spend(self, tenant_id: str) -> list[SpendStatus]:
        """Spent, reserved, limit, remaining and reset time for each of the tenant's limits."""
        return self._limits.spend(tenant_id)

    # -- manual tracking -----------------------------------------------------------------------

    def track(self, *, provider: str, model: str | None = None, endpoint: str | None = None,
              extract_usage: Callable[[Any], Any] | None = None) -> Callable[[F], F]:
        """Meter a function as a provider call: sync, async, generator or async generator.

        >>> @meter.track(provider="vllm", model="llama-3.1-70b",
        ...              extract_usage=lambda r: {"input_tokens": r["usage"]["prompt_tokens"],
        ...                                       "output_tokens": r["usage"]["completion_tokens"]})
        ... def generate(prompt): ...

        `extract_usage` gets the result (each yielded item, for generators) and returns a
        `Usage`, a dict of counts (with optional "model", "cost_usd", "units"), or None.
        """
        from .instrument.track import track

        def decorate(fn: F) -> F:
            return track(self, fn, provider=provider, model=model, endpoint=endpoint,
                         extract_usage=extract_usage)  # type: ignore[return-value]

        return decorate

    def track_manually(
        self,
        *,
        provider: str,
        model: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        usage: Usage | Mapping[str, int] | None = None,
        cost_usd: Decimal | float | str | None = None,
        endpoint: str = "manual",
        tenant_id: str | None = None,
        run_id: str | None = None,
        agent_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
        duration_ms: float | None = None,
        units: Mapping[str, float] | None = None,
        request_id: str | None = None,
        error: str | None = None,
    ) -> LLMEvent:
        """Record a call the agent cannot see, or a non-LLM cost given in USD.

        The tenant is the one in scope unless `tenant_id` is given. A `cost_usd` is taken as
        the cost the provider charged (it wins over any computed price).
        """
        if usage is None:
            usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
        elif isinstance(usage, Mapping):
            usage = Usage.from_dict({"input_tokens": input_tokens, "output_tokens": output_tokens, **usage})
        scope = self._scope_for_call()
        if tenant_id is not None or run_id is not None or agent_id is not None or tags:
            scope = make_scope(tenant_id, run_id, agent_id, tags).within(scope)
        cost = None
        if cost_usd is not None:
            cost = cost_usd if isinstance(cost_usd, Decimal) else Decimal(str(cost_usd))
            if not cost.is_finite() or cost < 0:
                raise ValueError(f"cost_usd must be a finite amount >= 0, got {cost_usd!r}")
        event = LLMEvent(
            provider=provider, model=model, request_model=model, endpoint=endpoint, usage=usage,
            tenant_id=scope.tenant_id if scope else None,
            run_id=scope.run_id if scope else None,
            agent_id=scope.agent_id if scope else None,
            tags=scope.tags if scope else {},
            duration_ms=duration_ms, provider_cost_usd=cost, units=units,
            request_id=request_id, error=error, price_source="manual" if cost is not None else None,
        )
        self._submit(event)
        return event

    # -- the call path (caller's thread) -------------------------------------------------------

    def _scope_for_call(self) -> Scope | None:
        scope = current_scope()
        if scope is None and self.config.default_tenant is not None:
            scope = Scope(self.config.default_tenant)
        return scope

    def _guard_call(self, call: Call) -> None:
        """Check the call against its tenant's limits and reserve its worst-case cost."""
        self._limits.guard_call(call)

    async def _aguard_call(self, call: Call) -> None:
        await self._limits.aguard_call(call)

    def _record_call(self, call: Call) -> None:
        """A finished call: queued as it is, its event built on the background worker. A call
        that holds a reservation is priced and settled here, so that the tenant's next call
        already sees its real cost (the store write still happens on the worker)."""
        if call.ticket is None:
            self._submit(call)
            return
        try:
            self._submit(self._limits.settle_now(call))
        except Exception as fault:
            self._fault(fault, "settling a reservation")

    def _abandon_call(self, call: Call) -> None:
        """A call that never reached the provider: its reservation goes back."""
        self._limits.release(call)

    def _submit(self, item: LLMEvent | Call | Settled, urgent: bool = False) -> None:
        if not self._worker.submit(item, urgent):
            if self._worker.stopping:
                logger.debug("tollmeter: an event recorded after shutdown was dropped")
                return
            self._fault_once(
                "queue full",
                f"tollmeter: the event queue is full ({self.config.max_queue_size}); dropping events",
            )

    # -- the background side -------------------------------------------------------------------

    def _handle_batch(self, items: list[LLMEvent | Call | Settled]) -> None:
        events: list[LLMEvent] = []
        settled: list[Settled | None] = []
        for item in items:
            if isinstance(item, Settled):
                events.append(item.event)
                settled.append(item)
                continue
            if isinstance(item, LLMEvent):
                events.append(item)
            else:
                try:
                    events.append(item.to_event())
                except Exception as fault:
                    self._fault(fault, "building an event")
                    continue
            settled.append(None)
        if self.config.pricing:
            pricer = self._pricing()
            for event, done in zip(events, settled):
                if done is None:  # a settled call was priced when it finished
                    try:
                        pricer.price(event)
                    except Exception as fault:
                        self._fault(fault, "pricing an event")
        try:
            self._limits.record(events, settled)
        except Exception as fault:
            self._fault(fault, "recording spend")
        on_event = self.config.on_event
        for event in events:
            if self.config.debug:
                logger.debug("tollmeter event: %s", event.to_dict())
            if on_event is not None:
                try:
                    on_event(event)
                except Exception as fault:
                    self._fault(fault, "in on_event")
        if self._sink is not None:
            try:
                self._deliver([event.to_dict() for event in events])
            except Exception as fault:
                self._fault(fault, "delivering a batch")

    def _deliver(self, events: list[dict[str, Any]]) -> None:
        """POST a batch; what the server cannot take now goes to the spool."""
        assert self._sink is not None
        body = self._sink.encode(events)
        if self._spool is not None and self._sink.is_down:
            self._keep(body, len(events))  # the server did not answer lately: no waiting
            return
        if self._sink.send_body(body, len(events)) is Outcome.UNREACHABLE:
            self._keep(body, len(events))

    def _keep(self, body: bytes, count: int) -> None:
        assert self._sink is not None
        if self._spool is not None and self._spool.put(body, count):
            logger.debug("tollmeter: %d events spooled (%s)", count, self._sink.last_error)
            return
        self._sink.stats.failed += count
        self._report_delivery_error(DeliveryError(
            f"could not deliver a batch of {count} events ({self._sink.last_error}) and could not spool it",
            events=count))

    def _upkeep(self) -> None:
        """On every wake of the worker: limits upkeep, and spooled batches sent when possible."""
        self._limits.maintain()
        if self._spool is None or self._sink is None or self._sink.is_down:
            return
        for path in self._spool.pending()[:20]:
            batch = self._spool.claim(path)
            if batch is None:
                continue
            outcome = self._sink.send_body(batch.body, batch.events, retries=0)
            if outcome is Outcome.UNREACHABLE:
                self._spool.put_back(batch)
                return
            self._spool.sent(batch)  # sent, or refused for good (counted as failed)

    # -- faults --------------------------------------------------------------------------------

    def _fault(self, exc: BaseException, what: str) -> None:
        """An instrumentation fault: logged and reported, never raised into the application."""
        with self._fault_lock:
            self._faults += 1
            first = what not in self._faults_seen
            self._faults_seen.add(what)
        if first:
            logger.warning("tollmeter: fault %s (the call itself is unaffected): %r", what, exc,
                           exc_info=exc)
        else:
            logger.debug("tollmeter: fault %s: %r", what, exc)
        self._call_on_error(exc)

    def _fault_once(self, key: str, message: str) -> None:
        with self._fault_lock:
            first = key not in self._faults_seen
            self._faults_seen.add(key)
        if first:
            logger.warning(message)

    def _report_delivery_error(self, exc: BaseException) -> None:
        logger.warning("tollmeter: %s", exc)
        self._call_on_error(exc)

    def _call_on_error(self, exc: BaseException) -> None:
        on_error = self.config.on_error
        if on_error is None:
            return
        try:
            on_error(exc)
        except Exception:
            logger.exception("tollmeter: on_error raised")

    # -- lifecycle -----------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Deliver everything recorded so far. True if done within `timeout` seconds."""
        return self._worker.flush(self.config.timeout * (self.config.max_retries + 1) if timeout is None else timeout)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Unpatch, deliver what is queued and stop the background worker."""
        if self._closed:
            return True
        self._closed = True
        self.unpatch_all()
        timeout = self.config.timeout if timeout is None else timeout
        if self._sink is not None and self._spool is not None:
            # What the server does not take at once waits in the spool: no backoff to sit out.
            self._sink.stopping.set()
        flushed = self._worker.flush(timeout)
        if self._sink is not None:
            self._sink.stopping.set()
        stopped = self._worker.shutdown(timeout)
        if self._sink is not None:
            self._sink.close()
        self._limits.close()
        return flushed and stopped

    def stats(self) -> dict[str, int]:
        """Counters since start: recorded, queued, sent, retried, dropped, failed, rejected, faults,
        unpriced (events whose model has no known price), spooled, replayed and spool_dropped."""
        delivery = self._sink.stats if self._sink is not None else None
        return {
            "recorded": self._worker.submitted + self._worker.dropped,
            "queued": self._worker.queued,
            "sent": delivery.sent if delivery else 0,
            "retried": delivery.retried if delivery else 0,
            "dropped": self._worker.dropped,
            "failed": delivery.failed if delivery else 0,
            "rejected": delivery.rejected if delivery else 0,
            "faults": self._faults,
            "unpriced": self._pricer.unpriced if self._pricer is not None else 0,
            "spooled": self._spool.stats.spooled if self._spool else 0,
            "replayed": self._spool.stats.replayed if self._spool else 0,
            "spool_dropped": self._spool.stats.dropped if self._spool else 0,
        }

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        target = self.config.url or "no url"
        return f"<Meter {target} patched={self.patched}>"


def _shutdown_at_exit(ref: weakref.ref[Meter]) -> None:
    meter = ref()
    if meter is not None:
        try:
            meter.shutdown()
        except Exception:  # interpreter teardown: nothing left to report to
            logger.debug("tollmeter: shutdown at exit failed", exc_info=True)
