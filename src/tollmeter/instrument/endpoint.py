"""Endpoint: what a provider module tells the shared machinery about one SDK method.

A provider module subclasses `Endpoint` once per family of methods (chat completions, messages,
...) and says: how to read the request (model, stream flag, provider), what kind of object the
method returned, and how to read a response, a streamed chunk or an SDK error. The wire format
it speaks (formats/) reads usage and estimates requests: an endpoint names that format's
request estimator (`request_format`) and hands its responses to that format's readers. The
endpoint never builds events, observes streams or talks to the meter: that is the shared
machinery's job.
"""

from __future__ import annotations

import enum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..limits.estimate import estimate_generic
from .fields import text

if TYPE_CHECKING:
    from ..limits.estimate import RequestEstimate, RequestFormat
    from .call import Call


class Kind(enum.Enum):
    VALUE = "value"  # a parsed response object: read at once
    STREAM = "stream"  # an SDK stream object keeping its chunk iterator in an attribute
    GENERATOR = "generator"  # a generator of chunks (the caller gets a generator back)
    ASYNC_GENERATOR = "async_generator"  # the async twin
    RAW = "raw"  # a Stainless raw-response wrapper (`with_raw_response`, `with_streaming_response`)
    CUSTOM = "custom"  # the endpoint observes the result itself (`observe_result`)


#: Reads one streamed chunk into the call; returns False to hide the chunk from the caller.
ChunkReader = Callable[[Any], bool]


class Endpoint:
    #: The event's `endpoint` value, e.g. "chat.completions".
    name: str = ""
    #: Response header holding the provider's request id (read for streams).
    request_id_header: str | None = None
    #: For `Kind.STREAM`: the attribute of the SDK's stream object that holds its chunk iterator.
    stream_iterator: str = "_iterator"
    #: How the requests of the wire format this endpoint speaks are estimated (a format's
    #: `RequestFormat`, from `tollmeter.formats`); None: no known format, the generic estimate.
    request_format: RequestFormat | None = None
    #: The kind of a result by its type alone, for the types classified so far (`classify`
    #: fills it; the wrapper looks here first): empty for an endpoint whose kinds depend on
    #: the value itself.
    kinds_by_type: Mapping[type, Kind] = MappingProxyType({})

    def accepts(self, instance: Any, args: tuple, kwargs: Mapping[str, Any]) -> bool:
        """Whether this call is metered at all (a method shared with calls that are not LLM
        calls, like botocore's `_make_api_call`, says no for those). Must be cheap."""
        return True

    def start(self, call: Call, instance: Any, args: tuple, kwargs: Mapping[str, Any]) -> dict | None:
        """Read the request into `call`. Return replacement kwargs to send, or None to keep them."""
        return None

    def estimate(self, request: Mapping[str, Any], model: str | None) -> RequestEstimate:
        """The request's worst-case tokens, for limits: by the rules of the endpoint's wire
        format, or (no known format) every string counted and the model's output maximum."""
        request_format = self.request_format
        if request_format is None:
            return estimate_generic(request, model)
        return request_format.estimate(request, model)

    def classify(self, result: Any) -> Kind:
        return Kind.VALUE

    def read_response(self, call: Call, response: Any) -> None:
        """Read a complete response (an SDK object or its JSON as a dict) into `call`, on the
        caller's thread: cheap fields now, the usage object through `call.defer_usage`."""

    def stream_reader(self, call: Call) -> ChunkReader:
        """A reader for one stream's chunks; it may keep state of its own."""
        return _show_all

    def observe_result(self, call: Call, result: Any) -> Any:
        """For `Kind.CUSTOM`: observe a result the shared kinds do not fit (a stream manager,
        a response dict holding an event stream) in place, and return `result` itself. The
        endpoint finishes the call, typically through the helpers of `streams` or `call.finish()`."""
        call.finish(response=result)
        return result

    def read_error(self, call: Call, exc: BaseException) -> None:
        """Read an SDK exception into `call` (status code, request id)."""
        status = getattr(exc, "status_code", None)
        if isinstance(status, int):
            call.status_code = status
        request_id = getattr(exc, "request_id", None)
        if request_id:
            call.request_id = text(request_id)


class Streaming(Endpoint):
    """Mixed in before an endpoint whose every call streams and whose result is observed by the
    endpoint itself (`observe_result`): a stream manager, a response holding an event stream."""

    def start(self, call: Call, instance: Any, args: tuple, kwargs: Mapping[str, Any]) -> dict | None:
        replaced = super().start(call, instance, args, kwargs)
        call.stream = True
        return replaced

    def classify(self, result: Any) -> Kind:
        return Kind.CUSTOM


def _show_all(chunk: Any) -> bool:
    return True
