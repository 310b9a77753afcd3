"""The flow of one instrumented call, shared by every provider.

`sync_wrapper` / `async_wrapper` build the function wrapt installs on an SDK method. For each
call they capture the scope, let the hooks admit it (the only exception raised on purpose,
`LimitExceededException`, comes from there), call the original method, and observe what it
returned: a response is read at once, a stream as it is consumed (streams.py). While an
instrumented method runs, instrumented methods it calls itself are passed through, so one call
is one event.

On the caller's thread a call reads only what is cheap (ids, the model, counts of tool calls)
and keeps a reference to the response's small usage object; turning that into `Usage`, the
event, its price and its settlement happen on the background worker (`Call.to_event`).
"""

from __future__ import annotations

import _thread
import os
import time
from contextvars import ContextVar
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..events import LLMEvent, Usage
from ..rules import repair_event
from . import streams
from .endpoint import Endpoint, Kind

if TYPE_CHECKING:
    from ..context import Scope
    from .hooks import CallHooks, InstrumentSettings

#: True while an instrumented coroutine (or a tracked generator's step) runs in this context:
#: nested instrumented calls pass through. A ContextVar: coroutines interleave on one thread.
in_call: ContextVar[bool] = ContextVar("tollmeter_in_call", default=False)


#: The threads on which a sync instrumented method runs (by `_thread.get_ident()`): nested
#: instrumented calls there, sync or async (an event loop run inside it), pass through. Nothing
#: interleaves with a sync call on its thread, so the thread is the right scope, and a set of
#: idents the cheapest mark of it: a ContextVar's `set` and `reset` cost a new context and a
#: token each, and a `threading.local` attribute's every read and write looks up the thread's
#: dictionary and the attribute on the class (check, mark and unmark in a loop: 154-170 ns
#: against 111, docs/benchmarks.md). `get_ident` is read from `_thread` at each call, so
#: gevent's patched one (a greenlet's ident) is used once it is patched.
sync_calls: set[int] = set()
os.register_at_fork(after_in_child=sync_calls.clear)  # the child's threads are not in a call

#: The clocks, read from this module's globals (one look-up fewer than `time.<name>`).
_time_ns, _perf_counter_ns = time.time_ns, time.perf_counter_ns

#: Reads a deferred usage object into the call (on the background worker).
UsageReader = Callable[["Call", Any], None]


class Call:
    """What is known about one call while it runs; becomes one `LLMEvent` exactly once.

    After `finish` it holds no request and no response: only counts, ids and, until the worker
    reads it, the provider's usage object (a few hundred bytes).
    """

    __slots__ = (
        "hooks", "endpoint", "scope", "provider", "request_model", "stream", "model", "usage",
        "wall_ns", "started_ns", "first_token_ns", "request_id", "tool_calls",
        "web_search_requests", "service_tier", "finish_reason", "provider_cost_usd", "units",
        "error", "status_code", "chunk_filter", "request", "done", "ticket", "partial",
        "ended_ns", "deferred",
    )

    def __init__(self, hooks: CallHooks, endpoint: Endpoint, scope: Scope | None) -> None:
        self.hooks = hooks
        self.endpoint = endpoint
        self.scope = scope
        self.provider: str | None = None
        self.request_model: str | None = None
        self.stream = False
        self.model: str | None = None
        self.usage: Usage | None = None
        self.wall_ns = _time_ns()  # made a datetime on the background worker
        self.started_ns = _perf_counter_ns()
        self.first_token_ns: int | None = None
        self.request_id: str | None = None
        self.tool_calls: int | None = None
        self.web_search_requests: int | None = None
        self.service_tier: str | None = None
        self.finish_reason: str | None = None
        self.provider_cost_usd: Decimal | None = None
        self.units: dict[str, float] | None = None
        self.error: str | None = None
        self.status_code: int | None = None
        #: Set by an endpoint that changed the request (asked for stream usage the caller did
        #: not ask for): a chunk reader that hides what the change added (False: hide the chunk).
        #: Fault-proof and independent of the chunk reader: it stays in force after the reader
        #: faulted (streams.py), so a fault in reading never changes what the caller iterates.
        self.chunk_filter: Callable[[Any], bool] | None = None
        #: The request's keyword arguments, kept only until the call is admitted.
        self.request: Mapping[str, Any] | None = None
        self.done = False
        #: The reservation the hooks made for this call, if any (opaque here).
        self.ticket: Any = None
        self.partial = False
        self.ended_ns = 0
        #: (reader, usage object): usage read on the background worker, see `defer_usage`.
        self.deferred: tuple[UsageReader, Any] | None = None

    @property
    def settings(self) -> InstrumentSettings:
        return self.hooks.settings

    def restart_clock(self) -> None:
        """For stream managers: the request starts on `__enter__`, not when the manager is made."""
        self.wall_ns = time.time_ns()
        self.started_ns = time.perf_counter_ns()

    def mark_first_token(self) -> None:
        if self.first_token_ns is None:
            self.first_token_ns = time.perf_counter_ns()

    def defer_usage(self, reader: UsageReader, usage: Any) -> None:
        """Keep the provider's usage object and read it on the background worker: `reader(call,
        usage)` sets `call.usage` (and whatever else the usage says). The last deferral wins."""
        self.deferred = (reader, usage)
        self.usage = None

    def finish(self, partial: bool = False, response: Any = None) -> None:
        """Record the call; only the first finish counts. A complete `response` is read now
        (cheaply: its usage object is kept for the worker) and not kept."""
        if self.done:
            return
        self.done = True
        self.ended_ns = time.perf_counter_ns()
        self.partial = partial
        if response is not None:
            try:
                self.endpoint.read_response(self, response)
            except Exception as fault:
                self.hooks.fault(fault, f"reading a {self.endpoint.name} response")
        self.hooks.finished(self)

    def fail(self, exc: BaseException, partial: bool = False) -> None:
        if self.done:
            return
        self.error = type(exc).__name__
        try:
            self.endpoint.read_error(self, exc)
        except Exception as fault:  # never let reading an error hide the error itself
            self.hooks.fault(fault, f"reading a {self.error} from {self.endpoint.name}")
        self.finish(partial)

    def abandon(self) -> None:
        """The request was never sent (a stream manager never entered): no event, no charge."""
        if self.done:
            return
        self.done = True
        self.hooks.abandoned(self)

    def to_event(self) -> LLMEvent:
        """The event of a finished call: the one place an event is built (on the background
        worker, or for `track_manually` on the caller's thread)."""
        deferred = self.deferred
        if deferred is not None:
            self.deferred = None
            try:
                deferred[0](self, deferred[1])
            except Exception as fault:
                self.hooks.fault(fault, f"reading a {self.endpoint.name} usage")
        scope = self.scope
        event = LLMEvent(
            provider=self.provider,
            model=self.model or self.request_model,
            request_model=self.request_model,
            endpoint=self.endpoint.name,
            stream=self.stream,
            usage=self.usage if self.usage is not None else Usage(),
            tenant_id=scope.tenant_id if scope else None,
            run_id=scope.run_id if scope else None,
            agent_id=scope.agent_id if scope else None,
            tags=scope.tags if scope else {},
            timestamp=datetime.fromtimestamp(self.wall_ns / 1e9, timezone.utc),
            duration_ms=(self.ended_ns - self.started_ns) / 1e6 if self.ended_ns else None,
            time_to_first_token_ms=(
                None if self.first_token_ns is None else (self.first_token_ns - self.started_ns) / 1e6
            ),
            request_id=self.request_id,
            tool_calls=self.tool_calls,
            web_search_requests=self.web_search_requests,
            service_tier=self.service_tier,
            finish_reason=self.finish_reason,
            error=self.error,
            status_code=self.status_code,
            partial=self.partial,
            provider_cost_usd=self.provider_cost_usd,
            units=self.units,
        )
        problems = repair_event(event)  # what a provider reported, within the rules (rules.py)
        if problems:
            self.hooks.fault(ValueError(f"{event.provider} {event.model}: {'; '.join(problems)}"),
                             f"bounding a {self.endpoint.name} event")
        return event


_VALUE = Kind.VALUE


def _complete(call: Call, result: Any, kind: Kind | None = None) -> Any:
    """Observe the original method's result (of `kind`, when known): read it now, or as its
    stream is consumed. The caller always gets `result` itself."""
    try:
        if kind is None:
            kind = call.endpoint.classify(result)
        if kind is _VALUE:
            call.finish(response=result)
            return result
        if kind is Kind.STREAM:
            return streams.observe_stream(result, call)
        if kind is Kind.GENERATOR:
            return streams.observe_generator(result, call)
        if kind is Kind.ASYNC_GENERATOR:
            return streams.observe_async_generator(result, call)
        if kind is Kind.RAW:
            return streams.observe_raw_response(result, call)
        return call.endpoint.observe_result(call, result)
    except Exception as fault:
        return _faulted(call, result, fault)


def _faulted(call: Call, result: Any, fault: Exception) -> Any:
    """Observing `result` failed: reported, the call recorded with what is known, `result` returned."""
    call.hooks.fault(fault, f"observing a {call.endpoint.name} response")
    if not call.done:
        call.finish()
    return result


def _accepts(endpoint: Endpoint) -> Callable[[Any, tuple, dict], bool] | None:
    """The endpoint's `accepts`, or None when it accepts every call (one call fewer per call)."""
    return None if type(endpoint).accepts is Endpoint.accepts else endpoint.accepts


def sync_wrapper(hooks: CallHooks, endpoint: Endpoint) -> Callable[..., Any]:
    """The function wrapt installs on a sync SDK method. Its steps are written out, not called:
    they run for every call, and each Python call and code object visited costs there (the SDK's
    own work between them leaves the processor's caches cold)."""
    accepts = _accepts(endpoint)
    start, scope = endpoint.start, hooks.scope
    # The endpoint's kinds and reader, bound once (a class attribute read through the instance,
    # and a static method, are looked up on the class at every call); a dispatching endpoint's
    # `start` may hand the call to another, whose own are read then.
    kinds_by_type, read_response = endpoint.kinds_by_type, endpoint.read_response

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        thread = _thread.get_ident()
        if (thread in sync_calls or in_call.get() or not hooks.active
                or (accepts is not None and not accepts(instance, args, kwargs))):
            return wrapped(*args, **kwargs)
        try:  # begin: the scope, the request
            call = Call(hooks, endpoint, scope())
            replaced = start(call, instance, args, kwargs)
            if replaced is not None:
                kwargs = replaced
            if call.request is None:  # an endpoint whose request is positional sets it itself
                call.request = kwargs
        except Exception as fault:
            hooks.fault(fault, f"reading a {endpoint.name} request")
            return wrapped(*args, **kwargs)
        hooks.admit(call)  # may raise LimitExceededException: before anything is sent
        call.request = None
        sync_calls.add(thread)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            sync_calls.discard(thread)
        try:
            answering = call.endpoint
            if answering is endpoint:
                kind, read = kinds_by_type.get(type(result)), read_response  # `classify`'s cache
            else:  # a dispatching endpoint's `start` handed the call to `answering`
                kind, read = answering.kinds_by_type.get(type(result)), answering.read_response
            if kind is None:
                kind = answering.classify(result)
            if kind is _VALUE and not call.done:  # a response, read at once: `finish`, written out
                call.done = True
                call.ended_ns = _perf_counter_ns()
                try:
                    read(call, result)
                except Exception as fault:
                    hooks.fault(fault, f"reading a {answering.name} response")
                hooks.finished(call)
                return result
        except Exception as fault:
            return _faulted(call, result, fault)
        return _complete(call, result, kind)

    return wrapper


def async_wrapper(hooks: CallHooks, endpoint: Endpoint) -> Callable[..., Any]:
    """The function wrapt installs on an async SDK method: `sync_wrapper`'s steps, awaited."""
    accepts = _accepts(endpoint)
    start, scope = endpoint.start, hooks.scope

    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        if (in_call.get() or _thread.get_ident() in sync_calls or not hooks.active
                or (accepts is not None and not accepts(instance, args, kwargs))):
            return await wrapped(*args, **kwargs)
        try:
            call = Call(hooks, endpoint, scope())
            replaced = start(call, instance, args, kwargs)
            if replaced is not None:
                kwargs = replaced
            if call.request is None:
                call.request = kwargs
        except Exception as fault:
            hooks.fault(fault, f"reading a {endpoint.name} request")
            return await wrapped(*args, **kwargs)
        await hooks.admit_async(call)  # may raise LimitExceededException: before anything is sent
        call.request = None
        token = in_call.set(True)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            in_call.reset(token)
        return _complete(call, result)

    return wrapper
