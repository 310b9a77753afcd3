"""Endpoint: what a provider module tells the shared machinery about one SDK method.

A provider module subclasses `Endpoint` once per family of methods (chat completions, messages,
...) and says: how to read the request (model, stream flag, provider), what kind of object the
method returned, and how to read usage from a response, a streamed chunk or an SDK error. It
never builds events, proxies streams or talks to the meter: that is the shared machinery's job.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .fields import text

if TYPE_CHECKING:
    from .call import Call


class Kind(enum.Enum):
    VALUE = "value"  # a parsed response object
    STREAM = "stream"  # a sync iterator of chunks
    ASYNC_STREAM = "async_stream"  # an async iterator of chunks
    RAW = "raw"  # a raw-response wrapper (`with_raw_response`, `with_streaming_response`)
    MANAGER = "manager"  # a sync stream manager whose request starts on __enter__
    ASYNC_MANAGER = "async_manager"  # the async twin, started on __aenter__
    CUSTOM = "custom"  # the endpoint instruments the result itself (`wrap_result`)


#: Reads one streamed chunk into the call; returns False to hide the chunk from the caller.
ChunkReader = Callable[[Any], bool]


class Endpoint:
    #: The event's `endpoint` value, e.g. "chat.completions".
    name: str = ""
    #: Response header holding the provider's request id (read for streams).
    request_id_header: str | None = None

    def accepts(self, instance: Any, args: tuple, kwargs: Mapping[str, Any]) -> bool:
        """Whether this call is metered at all (a method shared with calls that are not LLM
        calls, like botocore's `_make_api_call`, says no for those). Must be cheap."""
        return True

    def start(self, call: Call, instance: Any, args: tuple, kwargs: Mapping[str, Any]) -> dict | None:
        """Read the request into `call`. Return replacement kwargs to send, or None to keep them."""
        return None

    def classify(self, result: Any) -> Kind:
        return Kind.VALUE

    def read_response(self, call: Call, response: Any) -> None:
        """Read a complete response (an SDK object or its JSON as a dict) into `call`."""

    def stream_reader(self, call: Call) -> ChunkReader:
        """A reader for one stream's chunks; it may keep state of its own."""
        return _show_all

    def wrap_result(self, call: Call, result: Any) -> Any:
        """For `Kind.CUSTOM`: instrument a result the shared proxies do not fit (a response dict
        holding an event stream, say) and return what the caller gets. The endpoint finishes the
        call, typically through `streams.StreamProxy` / `AsyncStreamProxy` or `call.finish()`."""
        call.finish(response=result)
        return result

    def enter_manager(self, call: Call, entered: Any) -> Any:
        """For stream managers: instrument what `__enter__` returned; return what the caller gets."""
        return entered

    def read_error(self, call: Call, exc: BaseException) -> None:
        """Read an SDK exception into `call` (status code, request id)."""
        status = getattr(exc, "status_code", None)
        if isinstance(status, int):
            call.status_code = status
        request_id = getattr(exc, "request_id", None)
        if request_id:
            call.request_id = text(request_id)


def _show_all(chunk: Any) -> bool:
    return True
