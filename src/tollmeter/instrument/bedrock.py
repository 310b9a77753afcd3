"""AWS Bedrock through botocore (and boto3 on top of it): the `bedrock-runtime` client's
Converse, ConverseStream, InvokeModel and InvokeModelWithResponseStream.

botocore builds one client class per service at runtime; every operation of every client ends
in `BaseClient._make_api_call(operation_name, api_params)`. That one method is patched, so
clients created before and after `patch_all()` are covered alike, and `accepts()` lets every
other operation of every other service (S3, DynamoDB, ...) through after one dict lookup.

Not metered, passed through: CountTokens (free), ApplyGuardrail and InvokeGuardrailChecks
(billed per guardrail text unit, no token usage), StartAsyncInvoke / GetAsyncInvoke /
ListAsyncInvokes (an async job's usage is not reported by the API), and
InvokeModelWithBidirectionalStream (not usable through botocore). Async: aiobotocore (used by
aioboto3) overrides `_make_api_call` with a coroutine on `AioBaseClient`; it is not patched here.

Responses, stream events and usage are read by the Converse format (`formats.converse`) and the
InvokeModel format (`formats.bedrock_invoke`, which reads each model family's body through its
own format). For InvokeModel the body is read when the call returns and the caller gets a fresh
`StreamingBody` over the same bytes; its bytes are parsed on the background worker.

The model is the request's `modelId` (a model id, an inference profile id such as
`us.anthropic.claude-3-5-sonnet-20241022-v2:0`, or an ARN), kept as it is: the regional and
global profiles of a model are priced differently.
"""

from __future__ import annotations

import io
import weakref
from typing import Any, Mapping

from botocore.eventstream import EventStream
from botocore.response import StreamingBody

from ..formats import bedrock_invoke, converse
from ..formats.converse import as_dict
from .call import Call
from .endpoint import ChunkReader, Endpoint, Kind, Streaming
from .fields import text
from .registry import Patch
from .streams import ChunkObserver, close_patches, observed_chunks

PROVIDER = "aws"
_SERVICE = "bedrock-runtime"


def _response_metadata(call: Call, result: Mapping[str, Any]) -> dict:
    meta = as_dict(result.get("ResponseMetadata"))
    request_id = meta.get("RequestId")
    if request_id:
        call.request_id = text(request_id)
    return meta


class _Operation(Endpoint):
    """One bedrock-runtime operation; `BedrockRuntime.start()` hands the call to it."""

    def start(self, call: Call, instance: Any, args: tuple, kwargs: Mapping[str, Any]) -> dict | None:
        call.provider = PROVIDER
        params = args[1] if len(args) > 1 else kwargs.get("api_params")
        if isinstance(params, Mapping):
            model = params.get("modelId")
            call.request_model = model if isinstance(model, str) else None
            call.request = params  # for the limit guard's estimate: botocore passes it positionally
        return None

    def read_error(self, call: Call, exc: BaseException) -> None:
        """botocore's ClientError (and EventStreamError, raised mid-stream) carry the parsed
        error: the AWS error code, and for HTTP errors the status and request id."""
        response = getattr(exc, "response", None)
        if not isinstance(response, dict):
            return
        code = as_dict(response.get("Error")).get("Code")
        if code:
            call.error = text(code)
        meta = as_dict(response.get("ResponseMetadata"))
        status = meta.get("HTTPStatusCode")
        if isinstance(status, int):
            call.status_code = status
        request_id = meta.get("RequestId")
        if request_id:
            call.request_id = text(request_id)


# -- Converse ----------------------------------------------------------------------------------


class Converse(_Operation):
    name = "converse"
    request_format = converse.CONVERSE

    def read_response(self, call: Call, response: Any) -> None:
        """A Converse response, or the `metadata` event that ends a ConverseStream."""
        if not isinstance(response, dict):
            return
        if "ResponseMetadata" in response:
            _response_metadata(call, response)
        converse.read_response(call, response)


class ConverseStream(Streaming, Converse):
    """`response["stream"]` is an EventStream of events that botocore parses into dicts; it is
    observed in place (`_observe_event_stream`) and its parsed events are read as they pass."""

    def observe_result(self, call: Call, result: Any) -> Any:
        stream = result.get("stream") if isinstance(result, dict) else None
        if not isinstance(stream, EventStream):
            call.finish()
            return result
        _response_metadata(call, result)
        _observe_event_stream(stream, call)
        return result

    def stream_reader(self, call: Call) -> ChunkReader:
        return converse.stream_reader(call)


# -- InvokeModel -------------------------------------------------------------------------------


class _Unreadable(io.RawIOBase):
    """Stands in for a body whose reading failed: reading it raises the same exception."""

    def __init__(self, exc: BaseException) -> None:
        self._exc = exc

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        raise self._exc

    def readinto(self, buffer: Any) -> int:
        raise self._exc


class InvokeModel(_Operation):
    name = "invoke_model"
    request_format = bedrock_invoke.INVOKE_MODEL

    def classify(self, result: Any) -> Kind:
        return Kind.CUSTOM

    def observe_result(self, call: Call, result: Any) -> Any:
        if not isinstance(result, dict):
            call.finish()
            return result
        headers = self._read_metadata(call, result)
        body = result.get("body")
        if not isinstance(body, StreamingBody):
            call.defer_usage(bedrock_invoke.read_invoked, bedrock_invoke.Invoked(headers, None))
            call.finish()
            return result
        try:
            data = body.read()
        except Exception as exc:
            # The caller gets the same exception when it reads the body.
            result["body"] = StreamingBody(_Unreadable(exc), None)
            call.error = type(exc).__name__
            call.defer_usage(bedrock_invoke.read_invoked, bedrock_invoke.Invoked(headers, None))
            call.finish(partial=True)
            return result
        result["body"] = StreamingBody(io.BytesIO(data), len(data))
        # The body is parsed on the worker: Bedrock's own counts are in the headers, the body
        # adds the stop reason, tool calls and the Anthropic 1-hour cache-write split.
        call.defer_usage(bedrock_invoke.read_invoked, bedrock_invoke.Invoked(headers, data))
        call.finish()
        return result

    @staticmethod
    def _read_metadata(call: Call, result: Mapping[str, Any]) -> dict:
        meta = _response_metadata(call, result)
        tier = result.get("serviceTier")
        if isinstance(tier, str):
            call.service_tier = tier
        return as_dict(meta.get("HTTPHeaders"))


class InvokeModelWithResponseStream(Streaming, InvokeModel):
    """`response["body"]` is an EventStream of `{"chunk": {"bytes": b"<model JSON>"}}` events,
    read by `bedrock_invoke.stream_reader` as they pass."""

    def observe_result(self, call: Call, result: Any) -> Any:
        stream = result.get("body") if isinstance(result, dict) else None
        if not isinstance(stream, EventStream):
            call.finish()
            return result
        self._read_metadata(call, result)
        _observe_event_stream(stream, call)
        return result

    def stream_reader(self, call: Call) -> ChunkReader:
        return bedrock_invoke.stream_reader(call)


# -- observing an EventStream in place ----------------------------------------------------------


def _observe_event_stream(stream: EventStream, call: Call) -> None:
    """botocore's EventStream parses each raw event of `_event_generator` in `__iter__`. The raw
    generator is observed (end, error, close and collection end the call); the parsed events
    are read through `_parse_event`, looked up on the instance first."""
    observer = ChunkObserver(stream._event_generator, call, _raw_event)
    stream._event_generator = observed_chunks(observer)
    stream._parse_event = _ParsedEvents(weakref.ref(stream), call.endpoint.stream_reader(call), observer)


def _raw_event(event: Any) -> bool:
    return True


class _ParsedEvents:
    """Stands in for `EventStream._parse_event` on one stream: parses as botocore does, then
    reads the parsed event. Holds the stream weakly (no cycle: a dropped stream goes at once)."""

    __slots__ = ("stream", "read", "observer")

    def __init__(self, stream: weakref.ref, read: ChunkReader, observer: ChunkObserver) -> None:
        self.stream = stream
        self.read = read
        self.observer = observer

    def __call__(self, event: Any) -> Any:
        observer = self.observer
        try:
            parsed = EventStream._parse_event(self.stream(), event)
        except BaseException as exc:  # an exception event (EventStreamError): the call failed
            observer.call.fail(exc, partial=observer.seen)
            raise
        try:
            self.read(parsed)
        except Exception as fault:
            self.read = _raw_event
            observer.failed(fault, parsed)
        return parsed


# -- the patched method ------------------------------------------------------------------------

_OPERATIONS: dict[str, _Operation] = {
    "Converse": Converse(),
    "ConverseStream": ConverseStream(),
    "InvokeModel": InvokeModel(),
    "InvokeModelWithResponseStream": InvokeModelWithResponseStream(),
}


class BedrockRuntime(Endpoint):
    """`BaseClient._make_api_call`: shared by every operation of every botocore client."""

    name = "bedrock-runtime"

    def accepts(self, instance: Any, args: tuple, kwargs: Mapping[str, Any]) -> bool:
        try:
            if (args[0] if args else kwargs.get("operation_name")) not in _OPERATIONS:
                return False
        except TypeError:  # not a string: not an operation of ours
            return False
        meta = getattr(instance, "meta", None)
        return getattr(getattr(meta, "service_model", None), "service_name", None) == _SERVICE

    def start(self, call: Call, instance: Any, args: tuple, kwargs: Mapping[str, Any]) -> dict | None:
        operation = _OPERATIONS[args[0] if args else kwargs["operation_name"]]
        call.endpoint = operation
        return operation.start(call, instance, args, kwargs)


def patches() -> list[Patch]:
    return [Patch("botocore.client", "BaseClient._make_api_call", BedrockRuntime()),
            *close_patches("botocore.eventstream", ("EventStream",), "_event_generator")]
