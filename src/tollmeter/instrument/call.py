"""The flow of one instrumented call, shared by every provider.

`sync_wrapper` / `async_wrapper` build the function wrapt installs on an SDK method. For each
call they capture the scope, let the meter guard it (the only exception raised on purpose,
`LimitExceededException`, comes from there), call the original method, and turn what it
returned into an event: at once for a plain response, when the stream ends for streams. While
an instrumented method runs, instrumented methods it calls itself are passed through, so one
call is one event.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..events import LLMEvent, Usage
from .endpoint import Endpoint, Kind

if TYPE_CHECKING:
    from ..context import Scope
    from ..meter import Meter

#: True while an instrumented method runs in this context: nested instrumented calls pass through.
_in_call: ContextVar[bool] = ContextVar("tollmeter_in_call", default=False)


class Call:
    """What is known about one call while it runs; becomes one `LLMEvent` exactly once."""

    __slots__ = (
        "meter", "endpoint", "scope", "provider", "request_model", "stream", "model", "usage",
        "wall_ns", "started_ns", "first_token_ns", "request_id", "tool_calls",
        "web_search_requests", "service_tier", "finish_reason", "provider_cost_usd", "units",
        "error", "status_code", "hide_usage_chunk", "request", "done", "ticket", "response",
        "partial", "ended_ns",
    )

    def __init__(self, meter: Meter, endpoint: Endpoint, scope: Scope | None) -> None:
        self.meter = meter
        self.endpoint = endpoint
        self.scope = scope
        self.provider: str | None = None
        self.request_model: str | None = None
        self.stream = False
        self.model: str | None = None
        self.usage: Usage | None = None
        self.wall_ns = time.time_ns()  # made a datetime on the background worker
        self.started_ns = time.perf_counter_ns()
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
        #: Set by an adapter that asked for stream usage the caller did not ask for.
        self.hide_usage_chunk = False
        #: What the guard needs to know about the request (kwargs), kept until the call starts.
        self.request: Mapping[str, Any] | None = None
        self.done = False
        #: The guard's reservation for this call, if any.
        self.ticket: Any = None
        #: A complete response whose usage is still to be read (on the background worker).
        self.response: Any = None
        self.partial = False
        self.ended_ns = 0

    def restart_clock(self) -> None:
        """For stream managers: the request starts on `__enter__`, not when the manager is made."""
        self.wall_ns = time.time_ns()
        self.started_ns = time.perf_counter_ns()

    def mark_first_token(self) -> None:
        if self.first_token_ns is None:
            self.first_token_ns = time.perf_counter_ns()

    def finish(self, partial: bool = False, response: Any = None) -> None:
        """Record the call; only the first finish counts.

        A complete `response` is kept as it is: its usage is read on the background worker,
        keeping that work off the caller's thread.
        """
        if self.done:
            return
        self.done = True
        self.ended_ns = time.perf_counter_ns()
        self.partial = partial
        self.response = response
        self.meter._record_call(self)

    def fail(self, exc: BaseException, partial: bool = False) -> None:
        if self.done:
            return
        self.error = type(exc).__name__
        try:
            self.endpoint.read_error(self, exc)
        except Exception as fault:  # never let reading an error hide the error itself
            self.meter._fault(fault, f"reading a {self.error} from {self.endpoint.name}")
        self.finish(partial)

    def abandon(self) -> None:
        """The request was never sent (a stream manager never entered): no event, no charge."""
        if self.done:
            return
        self.done = True
        self.meter._abandon_call(self)

    def to_event(self) -> LLMEvent:
        """The event of a finished call (on the background worker)."""
        response, self.response = self.response, None
        if response is not None:
            try:
                self.endpoint.read_response(self, response)
            except Exception as fault:
                self.meter._fault(fault, f"reading a {self.endpoint.name} response")
        scope = self.scope
        return LLMEvent(
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
            duration_ms=(self.ended_ns - self.started_ns) / 1e6,
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


def _begin(meter: Meter, endpoint: Endpoint, instance: Any, args: tuple, kwargs: dict) -> tuple[Call | None, dict]:
    """Start a call. Returns (None, kwargs) when instrumentation must step aside."""
    try:
        call = Call(meter, endpoint, meter._scope_for_call())
        replaced = endpoint.start(call, instance, args, kwargs)
        if replaced is not None:
            kwargs = replaced
        if call.request is None:  # an endpoint whose request is positional sets it itself
            call.request = kwargs
    except Exception as fault:
        meter._fault(fault, f"reading a {endpoint.name} request")
        return None, kwargs
    return call, kwargs


def _complete(call: Call, result: Any) -> Any:
    """Turn the original method's result into an event (now or when its stream ends)."""
    from . import streams

    try:
        kind = call.endpoint.classify(result)
        if kind is Kind.VALUE:
            call.finish(response=result)
            return result
        if kind is Kind.STREAM:
            return streams.StreamProxy(result, call)
        if kind is Kind.ASYNC_STREAM:
            return streams.AsyncStreamProxy(result, call)
        if kind is Kind.RAW:
            return streams.wrap_raw_response(result, call)
        if kind is Kind.MANAGER:
            return streams.ManagerProxy(result, call)
        if kind is Kind.ASYNC_MANAGER:
            return streams.AsyncManagerProxy(result, call)
        if kind is Kind.CUSTOM:
            return call.endpoint.wrap_result(call, result)
    except Exception as fault:
        call.meter._fault(fault, f"reading a {call.endpoint.name} response")
    if not call.done:
        call.finish()
    return result


def sync_wrapper(meter: Meter, endpoint: Endpoint) -> Callable[..., Any]:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        if _in_call.get() or not meter._instrumenting or not endpoint.accepts(instance, args, kwargs):
            return wrapped(*args, **kwargs)
        call, kwargs = _begin(meter, endpoint, instance, args, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        meter._guard_call(call)  # may raise LimitExceededException: before anything is sent
        token = _in_call.set(True)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            _in_call.reset(token)
        return _complete(call, result)

    return wrapper


def async_wrapper(meter: Meter, endpoint: Endpoint) -> Callable[..., Any]:
    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        if _in_call.get() or not meter._instrumenting or not endpoint.accepts(instance, args, kwargs):
            return await wrapped(*args, **kwargs)
        call, kwargs = _begin(meter, endpoint, instance, args, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        await meter._aguard_call(call)  # may raise LimitExceededException: before anything is sent
        token = _in_call.set(True)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            _in_call.reset(token)
        return _complete(call, result)

    return wrapper
