"""Meter: the public API. It wires the pieces and delegates: patching (instrument/), the call
hooks (call_hooks.py), limits (limits/), the batch pipeline (pipeline.py), delivery
(transport/) and fault reporting (faults.py)."""

from __future__ import annotations

import atexit
import importlib
import logging
import os
import signal
import sys
import threading
import time
import uuid
import weakref
from contextvars import Token
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, TypeVar

from . import rules
from .call_hooks import MeterHooks
from .config import MeterConfig
from .context import Scope, TenantScope, enter_scope, exit_scope, make_scope
from .events import LLMEvent, Usage
from .faults import Faults
from .instrument.call import Call
from .instrument.endpoint import Endpoint
from .instrument.registry import PROVIDERS, Patcher
from .limits.keeper import LimitKeeper, SpendStatus
from .pipeline import Pipeline
from .transport.delivery import Delivery

if TYPE_CHECKING:
    from datetime import date, datetime

    from .business.leaks import Leak, LeakSettings
    from .business.margin import MarginReport
    from .business.plans import Plan
    from .pricing.pricer import Pricer
    from .store.ledger import Customer, Ledger
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
        self._faults = Faults(config.on_error)
        self._pricer: Pricer | None = None
        self._pricer_lock = threading.Lock()
        if config.prices is not None:
            self._pricing()  # a bad rate card fails here, at start-up
        elif config.pricing:
            # genai-prices (and httpx2 under it) imported here, on the thread that makes the
            # meter, before any thread of ours exists: the warm-up, the worker and the callers
            # would otherwise import it at once, and a package that imports itself in a circle
            # (httpx2) can then be handed half made to one of them ("partially initialized
            # module 'httpx2' has no attribute 'URL'", seen in a spawned app of 16 threads).
            importlib.import_module("genai_prices")
        self._delivery = Delivery(config, self._faults) if config.url else None
        self._limits = LimitKeeper(config, self._pricing, self._faults)
        self._pipeline = Pipeline(config, self._faults, self._pricing, self._limits, self._delivery,
                                  ledger=None if config.url else self._ledger)
        self._limits.settle_record = self._pipeline.settle
        self._hooks = MeterHooks(config, self._limits, self._pipeline, self._faults)
        self._patcher = Patcher(self._hooks)
        if config.pricing and config.refresh_prices:
            threading.Thread(target=self._refresh_prices, name="tollmeter-prices", daemon=True).start()
        self._limits.warm_up()
        self._closed = False
        #: Whether SIGTERM (with no handler of the application's) shuts this meter down first.
        self._handles_sigterm = bool(getattr(config, "handle_sigterm", True))
        _lifecycle.add(self)
        if self._delivery is not None and self._delivery.has_spooled():
            # Batches an earlier process could not deliver are sent now, in the background,
            # whether or not this one ever records anything.
            self._pipeline.worker.start()

    def _pricing(self) -> Pricer:
        """The pricer, made on first use: genai-prices takes a few hundred ms to import."""
        if self._pricer is None:
            with self._pricer_lock:
                if self._pricer is None:
                    from .pricing.pricer import load_pricer

                    self._pricer = load_pricer(self.config.prices, infer_prices=self.config.infer_prices)
        return self._pricer

    def _refresh_prices(self) -> None:
        try:
            self._pricing().bundled.refresh()
        except Exception as fault:
            self._faults(fault, "refreshing prices")

    @property
    def instrumenting(self) -> bool:
        """False: patched methods call straight through, unrecorded (patches stay installed)."""
        return self._hooks.active

    @instrumenting.setter
    def instrumenting(self, value: bool) -> None:
        self._hooks.active = bool(value)

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
        return self._hooks.scope()

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

    # -- customers, runs and margin -------------------------------------------------------------

    def _ledger(self) -> Ledger:
        """Customers, plans, runs and rollups: the embedded store's, or the server's."""
        if self.config.url is not None:
            remote = getattr(self, "_remote_ledger", None)
            if remote is None:  # one, so that its connections are reused (closed by shutdown)
                from .business.remote import RemoteLedger

                remote = self._remote_ledger = RemoteLedger(self.config.url, self.config.api_key or "",
                                                            timeout=self.config.timeout)
            return remote
        from .store.ledger import Ledger

        return Ledger(self._limits.store)

    def upsert_customer(self, tenant_id: str, *, name: str | None = None, plan: Plan | Mapping[str, Any] | None = None,
                        seats: int | None = None, effective_from: date | None = None) -> Customer:
        """Create or update a customer (a tenant): its name, and its plan and seats from
        `effective_from` (a UTC day, today by default); earlier days keep the plan they had.
        A plan is a `tollmeter.Plan` or a dict with the same keys (docs/margin.md)."""
        return self._ledger().upsert_customer(tenant_id, name=name, plan=plan, seats=seats,  # type: ignore[arg-type]
                                              effective_from=effective_from)

    def customer(self, tenant_id: str) -> Customer | None:
        return self._ledger().customer(tenant_id)

    def customers(self) -> list[Customer]:
        return self._ledger().customers()

    def resolve(self, run_id: str, outcome: str = "resolved", *, revenue_usd: Decimal | float | str | None = None,
                tenant_id: str | None = None, agent_id: str | None = None,
                idempotency_key: str | None = None) -> None:
        """End a run with its outcome ("resolved", "escalated" or "failed"): its margin is known
        from then on. `revenue_usd` replaces what the plan says it earns. Checked at once
        (ValueError), then stored like an event: resolving twice the same way is one resolution."""
        from .business.runs import RunResolution

        self._pipeline.submit(RunResolution.checked(run_id, outcome, revenue_usd, tenant_id, agent_id, idempotency_key))

    def run(self, run_id: str, *, tenant: str | None = None, agent: str | None = None,
            tags: Mapping[str, Any] | None = None) -> Any:
        """`with meter.run("ticket-4711", tenant="acme", agent="support-bot") as run: ...;
        run.resolve("resolved")`: the calls inside belong to the run."""
        from .business.runs import Run

        scope = self._hooks.scope()
        tenant_id = tenant if tenant is not None else (scope.tenant_id if scope is not None else None)
        return Run(run_id, tenant_id, agent, TenantScope(make_scope(tenant_id, run_id, agent, tags)), self.resolve)

    def margin(self, group_by: Iterable[str] | str = ("tenant",), since: date | datetime | None = None,
               until: date | datetime | None = None) -> MarginReport:
        """Revenue, cost and margin grouped by any of tenant, run, agent, model, day, week and
        month, over UTC days (by default this month to date). Exact: the groups add up to the total."""
        return self._ledger().margin(group_by, since=since, until=until)

    def leaks(self, settings: LeakSettings | None = None, tenant_id: str | None = None) -> list[Leak]:
        """Customers, runs and agents losing money this month, each with its rule and numbers
        (one customer's alone: its own, its runs' and its agents' on its runs)."""
        return self._ledger().leaks(settings, tenant_id=tenant_id)

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

        rules.check_text(provider, "provider", rules.TEXT_LIMITS["provider"], empty=False)
        if model is not None:
            rules.check_text(model, "model", rules.TEXT_LIMITS["model"])
        if endpoint is not None:
            rules.check_text(endpoint, "endpoint", rules.TEXT_LIMITS["endpoint"], empty=False)

        def decorate(fn: F) -> F:
            return track(self._hooks, fn, provider=provider, model=model, endpoint=endpoint,
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
        idempotency_key: str | None = None,
        timestamp: datetime | None = None,
    ) -> LLMEvent:
        """Record a call the agent cannot see, or a non-LLM cost given in USD.

        The tenant is the one in scope unless `tenant_id` is given. A `cost_usd` is taken as
        the cost the provider charged (it wins over any computed price). An `idempotency_key`
        ("ticket-4711#step-3") makes the event's id, so a retried job books it once. A
        `timestamp` (timezone-aware) records a call made earlier (a backfill from logs).
        """
        usage, cost = _manual_values(provider, model, input_tokens, output_tokens, usage, cost_usd, endpoint,
                                     duration_ms, units, request_id, error)
        if units is not None:
            units = rules.check_units(units)
        if timestamp is not None:
            timestamp = rules.check_timestamp(timestamp, "timestamp")
        event_id = event_id_for(idempotency_key) if idempotency_key is not None else None
        scope = self._hooks.scope()
        if tenant_id is not None or run_id is not None or agent_id is not None or tags:
            scope = make_scope(tenant_id, run_id, agent_id, tags).within(scope)
        call = Call(self._hooks, _manual(endpoint), scope)
        call.provider, call.request_model, call.usage = provider, model, usage
        call.provider_cost_usd, call.units, call.request_id, call.error = cost, units, request_id, error
        call.ended_ns = call.started_ns + round(duration_ms * 1e6) if duration_ms is not None else 0
        event = call.to_event()
        if event_id is not None:
            event.event_id = event_id
        if timestamp is not None:
            event.timestamp = timestamp
        if cost is not None:
            from .pricing.pricer import MANUAL_SOURCE

            event.price_source = MANUAL_SOURCE
        self._pipeline.submit(event)
        return event

    # -- lifecycle -----------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Deliver everything recorded so far. True if done within `timeout` seconds."""
        if timeout is None:
            timeout = self.config.timeout * (self.config.max_retries + 1)
        return self._pipeline.flush(timeout)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Unpatch, deliver what is queued and stop the background worker."""
        if self._closed:
            return True
        self._closed = True
        self.unpatch_all()
        timeout = self.config.timeout if timeout is None else timeout
        delivery = self._delivery
        if delivery is not None and delivery.spool is not None:
            delivery.stop_waiting()  # what the server does not take at once waits in the spool
        self._pipeline.flush(timeout)
        if delivery is not None:
            delivery.stop_waiting()
        # The worker handles everything still queued before it stops (or, if it never could
        # start, shutdown handles it here): stopped in time means nothing is left.
        stopped = self._pipeline.shutdown(timeout)
        if delivery is not None:
            delivery.close()
        self._limits.close()
        remote = getattr(self, "_remote_ledger", None)
        if remote is not None:
            remote.close()
        _lifecycle.closed(self)
        return stopped

    def stats(self) -> dict[str, int]:
        """Counters since start (of this process: a forked child starts at 0): recorded, queued,
        sent, retried, dropped, failed, rejected, faults, unpriced (events whose model has no
        known price), spooled, replayed, spool_dropped, store_reopened (the embedded store's
        file found deleted or replaced, and opened afresh), and the limits' waits: see
        `LimitKeeper.stats` (docs/limits.md, "When the server does not answer")."""
        delivery = self._delivery.stats() if self._delivery is not None else {}
        pipeline = self._pipeline.stats()
        return {
            "recorded": pipeline["recorded"],
            "queued": pipeline["queued"],
            "sent": delivery.get("sent", 0),
            "retried": delivery.get("retried", 0),
            # Events the queue could not take, and (embedded store) events kept past its bound
            # while the store could not be written.
            "dropped": pipeline["dropped"] + self._limits.store_dropped,
            "failed": delivery.get("failed", 0),
            # Events the server refused (with a url), or the embedded store set aside.
            "rejected": delivery.get("rejected", 0) + self._limits.rejected,
            "faults": self._faults.count,
            "unpriced": self._pricer.unpriced if self._pricer is not None else 0,
            "spooled": delivery.get("spooled", 0),
            "replayed": delivery.get("replayed", 0),
            "spool_dropped": delivery.get("spool_dropped", 0),
            "store_reopened": pipeline["store_reopened"],
            # lease_waits_exceeded, limits_unreachable_calls, limits_circuit_opened/_open
            **self._limits.stats(),
        }

    def _after_fork_in_child(self) -> None:
        """A forked child counts its own events and faults (its worker, queue, HTTP client and
        database connections are reset by their own fork hooks)."""
        self._faults.after_fork_in_child()
        self._pipeline.after_fork_in_child()
        if self._delivery is not None:
            self._delivery.after_fork_in_child()
        pricer = self._pricer
        if pricer is not None and hasattr(pricer, "unpriced"):
            pricer.unpriced = 0

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        target = self.config.url or "no url"
        return f"<Meter {target} patched={self.patched}>"


class _Lifecycle:
    """How the meters of a process end without losing what they hold.

    - Interpreter exit: an `atexit` hook shuts every open meter down (flushes and stops).
    - `multiprocessing` children end with `os._exit` after their target (fork and forkserver
      start methods), so atexit never runs there: multiprocessing's own exit finalizers
      (`multiprocessing.util.Finalize`, run by the child after its target) shut the meters down.
      multiprocessing is never imported for this: the finalizer is registered when a meter is
      made in a process that has it loaded, and again in each child after a fork
      (`register_after_fork`: a child's finalizers start empty).
    - fork: the child's counts start at 0 (`Meter._after_fork_in_child`).
    - SIGTERM with its default action (a container being stopped): see `_on_sigterm`.
    """

    def __init__(self) -> None:
        self.meters: weakref.WeakSet[Meter] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._hooked = False
        self._multiprocessing = False

    def add(self, meter: Meter) -> None:
        with self._lock:
            self.meters.add(meter)
            if not self._hooked:
                self._hooked = True
                atexit.register(_shutdown_all)
                if hasattr(os, "register_at_fork"):
                    os.register_at_fork(after_in_child=_after_fork_in_child)
        self.watch_multiprocessing()
        if meter._handles_sigterm:
            _install_sigterm_handler()

    def closed(self, meter: Meter) -> None:
        self.meters.discard(meter)
        if not any(m._handles_sigterm for m in list(self.meters)):
            _release_sigterm_handler()

    def open_meters(self) -> list[Meter]:
        return [m for m in list(self.meters) if not m._closed]

    def watch_multiprocessing(self) -> None:
        """Shut the meters down on a multiprocessing child's exit path too (see the class)."""
        util = sys.modules.get("multiprocessing.util")
        if util is None or self._multiprocessing:
            return
        try:
            util.register_after_fork(self, _finalize_in_this_process)
            _finalize_in_this_process(self)
        except Exception:  # pragma: no cover - multiprocessing's internals moved
            logger.debug("tollmeter: could not hook multiprocessing's exit", exc_info=True)
            return
        self._multiprocessing = True

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        for meter in list(self.meters):
            try:
                meter._after_fork_in_child()
            except Exception:
                logger.debug("tollmeter: resetting a meter after fork failed", exc_info=True)
        self.watch_multiprocessing()  # multiprocessing loaded after the meters were made


_lifecycle = _Lifecycle()

#: The finalizer runs before multiprocessing's own (a queue's feeder thread is joined at -5, a
#: Queue closed at 10, a Pool terminated at 15): an `on_event` may still use them.
_FINALIZER_PRIORITY = 100


def _finalize_in_this_process(_: object) -> None:
    from multiprocessing import util

    util.Finalize(None, _shutdown_all, exitpriority=_FINALIZER_PRIORITY)


def _after_fork_in_child() -> None:
    _lifecycle.after_fork_in_child()


def _shutdown_all() -> None:
    """At exit (atexit, or a multiprocessing child's finalizers): shut every open meter down."""
    for meter in _lifecycle.open_meters():
        try:
            meter.shutdown()
        except Exception:  # interpreter teardown: nothing left to report to
            logger.debug("tollmeter: shutdown at exit failed", exc_info=True)


#: Seconds the SIGTERM handler gives the meters to deliver what they hold before the process
#: ends (containers are killed 10 s (Docker) or 30 s (Kubernetes) after SIGTERM).
SIGTERM_WAIT_SECONDS = 5.0


def _install_sigterm_handler() -> None:
    """When SIGTERM would end the process at once (its default action: how containers and
    process managers stop a process), end it after the meters delivered what they hold. A
    handler the application installed is left alone (it ends the process its own way, through
    atexit), and one it installs later simply replaces this one."""
    if sys.platform == "win32" or threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError, AttributeError):  # not the main interpreter, no SIGTERM
        pass


def _release_sigterm_handler() -> None:
    """No meter wants SIGTERM any more: its default action again (unless replaced since)."""
    if sys.platform == "win32" or threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except (ValueError, OSError, AttributeError):
        pass


def _on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM: shut the meters down (at most `SIGTERM_WAIT_SECONDS`), then let SIGTERM end the
    process as it would have (exit status 128 + 15; -15 to a parent's `wait`). Called by a
    handler the application installed after this one (which it saved and chains to), it
    flushes only and returns: the application decides what happens next."""
    ours = signal.getsignal(signal.SIGTERM) is _on_sigterm
    _stop_meters([m for m in _lifecycle.open_meters() if m._handles_sigterm], shut_down=ours)
    if ours:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)


def _stop_meters(meters: list[Meter], shut_down: bool) -> None:
    """Shut down (or flush) `meters` within `SIGTERM_WAIT_SECONDS`, on a thread of its own: the
    signal interrupted the main thread anywhere, perhaps holding a lock that this needs."""
    if not meters:
        return
    deadline = time.monotonic() + SIGTERM_WAIT_SECONDS

    def run() -> None:
        for meter in meters:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                if shut_down:
                    meter.shutdown(timeout=remaining / 2)  # a flush, then the worker's stop
                else:
                    meter.flush(timeout=remaining)
            except Exception:
                logger.debug("tollmeter: stopping a meter on SIGTERM failed", exc_info=True)

    thread = threading.Thread(target=run, name="tollmeter-sigterm", daemon=True)
    try:
        thread.start()
    except RuntimeError:
        run()
        return
    thread.join(max(0.0, deadline - time.monotonic()) + 0.5)


def _manual_values(provider: Any, model: Any, input_tokens: Any, output_tokens: Any, usage: Any, cost_usd: Any,
                   endpoint: Any, duration_ms: Any, units: Any, request_id: Any,
                   error: Any) -> tuple[Usage, Decimal | None]:
    """`track_manually`'s values checked by the rules the server holds events to (rules.py):
    the usage and the cost it records; TypeError / ValueError naming the argument otherwise."""
    rules.check_text(provider, "provider", rules.TEXT_LIMITS["provider"], empty=False)
    rules.check_text(endpoint, "endpoint", rules.TEXT_LIMITS["endpoint"], empty=False)
    for name, value in (("model", model), ("request_id", request_id), ("error", error)):
        if value is not None:
            rules.check_text(value, name, rules.TEXT_LIMITS[name])
    if duration_ms is not None:
        rules.check_number(duration_ms, "duration_ms")
    counts = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    if isinstance(usage, Usage):
        counts.update({k: v for k, v in usage.to_dict().items() if v is not None})
    elif isinstance(usage, Mapping):
        counts.update({k: v for k, v in usage.items() if k in _USAGE_NAMES and v is not None})
    elif usage is not None:
        raise TypeError(f"usage must be a Usage or a mapping of token counts, not {type(usage).__name__}")
    checked = {name: rules.check_tokens(value, name) for name, value in counts.items() if value is not None}
    cost = rules.check_money(cost_usd, "cost_usd") if cost_usd is not None else None
    return Usage(**checked), cost


_USAGE_NAMES = frozenset(Usage.__dataclass_fields__)  # type: ignore[attr-defined]


class _Manual(Endpoint):
    """What `track_manually` records: the caller says everything."""

    def __init__(self, name: str) -> None:
        self.name = name


_manual_endpoints: dict[str, _Manual] = {}


def _manual(name: str) -> _Manual:
    endpoint = _manual_endpoints.get(name)
    if endpoint is None:
        if len(_manual_endpoints) > 1024:
            _manual_endpoints.clear()
        endpoint = _manual_endpoints[name] = _Manual(name)
    return endpoint


def event_id_for(idempotency_key: str) -> str:
    """The event id a caller's idempotency key stands for (the same key, the same id)."""
    rules.check_text(idempotency_key, "idempotency_key", 1024, empty=False)
    return str(uuid.uuid5(_IDEMPOTENCY_NAMESPACE, idempotency_key))


_IDEMPOTENCY_NAMESPACE = uuid.UUID("5b0c3b1e-4f0a-4c52-9a55-7f5d2f0c7a11")
