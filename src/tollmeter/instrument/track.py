"""`@meter.track(...)`: meter any function as a provider call (an SDK tollmeter does not patch,
a self-hosted model, an internal gateway).

The function's result (or, for generator functions, each item it yields) is handed to
`extract_usage`, which returns a `Usage`, a dict of usage counts (optionally with "model",
"cost_usd", "request_id"), or None. The call gets the same treatment as a patched SDK call:
tenant scope, the limit guard (estimated from the string arguments and the model's output
limit), one event, pricing, delivery. Instrumented SDK calls made inside the function are not
counted again.
"""

from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..events import Usage
from .call import Call, async_wrapper, in_call, sync_wrapper
from .endpoint import ChunkReader, Endpoint, Kind
from .fields import count, money, text

if TYPE_CHECKING:
    from .hooks import CallHooks

UsageExtractor = Callable[[Any], "Usage | Mapping[str, Any] | None"]

_USAGE_FIELDS = set(Usage.__dataclass_fields__)  # type: ignore[attr-defined]


class TrackedEndpoint(Endpoint):
    def __init__(self, name: str, provider: str, model: str | None, extract_usage: UsageExtractor | None,
                 kind: str) -> None:
        self.name = name
        self.provider = provider
        self.model = model
        self.extract_usage = extract_usage
        self.kind = kind  # "function", "generator", "async generator"

    def start(self, call: Call, instance: Any, args: tuple, kwargs: Mapping[str, Any]) -> dict | None:
        call.provider = self.provider
        call.request_model = self.model
        call.stream = self.kind != "function"
        return None

    def classify(self, result: Any) -> Kind:
        return Kind.VALUE if self.kind == "function" else Kind.CUSTOM

    def observe_result(self, call: Call, result: Any) -> Any:
        from .streams import observe_async_generator, observe_generator

        # A generator's body runs while it is iterated, outside the wrapper: mark those
        # stretches as inside this call, so that SDK calls it makes are not counted again.
        if self.kind == "async generator":
            return observe_async_generator(_async_inside_call(result), call)
        return observe_generator(_inside_call(result), call)

    def read_response(self, call: Call, response: Any) -> None:
        if self.extract_usage is not None:
            apply_usage(call, self.extract_usage(response))

    def stream_reader(self, call: Call) -> ChunkReader:
        extract = self.extract_usage

        def read(item: Any) -> bool:
            if call.first_token_ns is None:
                call.mark_first_token()
            if extract is not None:
                reported = extract(item)
                if reported is not None:
                    apply_usage(call, reported)
            return True

        return read


def apply_usage(call: Call, reported: Usage | Mapping[str, Any] | None) -> None:
    """A Usage, or a dict of usage counts plus optional model / cost_usd / request_id / units."""
    if reported is None:
        return
    if isinstance(reported, Usage):
        call.usage = reported
        return
    if not isinstance(reported, Mapping):
        raise TypeError(f"extract_usage must return a Usage, a dict or None, not {type(reported).__name__}")
    counts = {k: count(v) for k, v in reported.items() if k in _USAGE_FIELDS}
    if counts:
        call.usage = Usage(**counts)
    if reported.get("model"):
        call.model = text(reported["model"])
    if reported.get("request_id"):
        call.request_id = text(reported["request_id"])
    cost = money(reported.get("cost_usd"))
    if cost is not None:
        call.provider_cost_usd = cost
    units = reported.get("units")
    if isinstance(units, Mapping):
        call.units = {str(k): float(v) for k, v in units.items()}


def _inside_call(generator: Any) -> Any:
    while True:
        token = in_call.set(True)
        try:
            item = next(generator)
        except StopIteration:
            return
        finally:
            in_call.reset(token)
        yield item


async def _async_inside_call(generator: Any) -> Any:
    while True:
        token = in_call.set(True)
        try:
            item = await generator.__anext__()
        except StopAsyncIteration:
            return
        finally:
            in_call.reset(token)
        yield item


def track(hooks: CallHooks, fn: Callable[..., Any], *, provider: str, model: str | None, endpoint: str | None,
          extract_usage: UsageExtractor | None) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(fn):
        kind = "async generator"
    elif inspect.isgeneratorfunction(fn):
        kind = "generator"
    else:
        kind = "function"
    tracked = TrackedEndpoint(endpoint or getattr(fn, "__name__", "function"), provider, model, extract_usage, kind)
    if inspect.iscoroutinefunction(fn):
        run_async = async_wrapper(hooks, tracked)

        @functools.wraps(fn)
        async def tracked_async(*args: Any, **kwargs: Any) -> Any:
            return await run_async(fn, None, args, kwargs)

        return tracked_async
    run = sync_wrapper(hooks, tracked)

    @functools.wraps(fn)
    def tracked_call(*args: Any, **kwargs: Any) -> Any:
        return run(fn, None, args, kwargs)

    return tracked_call

