"""AWS Bedrock through aiobotocore (and aioboto3 on top of it): the async `bedrock-runtime`
client's Converse, ConverseStream, InvokeModel and InvokeModelWithResponseStream.

aiobotocore overrides botocore's `BaseClient._make_api_call` with a coroutine on `AioBaseClient`
(it never calls botocore's), so that one coroutine is patched here, as `bedrock.py` patches the
sync one; every other operation and service passes after one dict lookup. Requests and
responses are botocore's shapes, read by the same endpoints as the sync client (`bedrock.py`);
what differs is that reading is async:

- a stream (`AioEventStream`) awaits `_parse_event` for each raw event of its async
  `_event_generator`: the generator is observed in place and `_parse_event` shadowed on the one
  stream by a coroutine that parses as aiobotocore does, then reads the parsed event; its
  `close` (inherited from botocore, so not patchable on the class) is shadowed too;
- an InvokeModel body (`AioStreamingBody` on aiohttp, `AioHttpxStreamingBody` on httpx) cannot
  be read before the call returns without awaiting it on the caller's behalf, so the body stays
  the caller's, unread: its `read` and `readinto` (everything else reads through `read`) are
  shadowed on the one object and keep the bytes as they pass. The call ends when the body is
  read to its end, closed, fails, or is dropped; Bedrock's token-count headers are known from
  the start, so a body never read still has the call's billed counts.
"""

from __future__ import annotations

import weakref
from typing import Any, Mapping

from aiobotocore.eventstream import AioEventStream
from aiobotocore.response import AioStreamingBodyBase

from ..formats import bedrock_invoke
from ..formats.converse import as_dict
from .bedrock import BedrockRuntime, Converse, ConverseStream, InvokeModel, InvokeModelWithResponseStream
from .call import Call
from .endpoint import ChunkReader
from .fields import text
from .registry import Patch
from .streams import AsyncChunkObserver, observe_stream

#: The most body bytes kept for the worker (an image model's base64 answer can be megabytes;
#: its token counts are in Bedrock's headers anyway).
MAX_KEPT_BODY = 4 * 1024 * 1024


def _request_id(call: Call, result: Mapping[str, Any]) -> None:
    request_id = as_dict(result.get("ResponseMetadata")).get("RequestId")
    if request_id:
        call.request_id = text(request_id)


class AioConverseStream(ConverseStream):
    def observe_result(self, call: Call, result: Any) -> Any:
        stream = result.get("stream") if isinstance(result, dict) else None
        if not isinstance(stream, AioEventStream):
            call.finish()
            return result
        _request_id(call, result)
        _observe_event_stream(stream, call)
        return result


class AioInvokeModel(InvokeModel):
    def observe_result(self, call: Call, result: Any) -> Any:
        if not isinstance(result, dict):
            call.finish()
            return result
        headers = self._read_metadata(call, result)
        body = result.get("body")
        if not isinstance(body, AioStreamingBodyBase):
            call.defer_usage(bedrock_invoke.read_invoked, bedrock_invoke.Invoked(headers, None))
            call.finish()
            return result
        _BodyReads.observe(body, call, headers)
        return result


class AioInvokeModelWithResponseStream(InvokeModelWithResponseStream):
    def observe_result(self, call: Call, result: Any) -> Any:
        stream = result.get("body") if isinstance(result, dict) else None
        if not isinstance(stream, AioEventStream):
            call.finish()
            return result
        self._read_metadata(call, result)
        _observe_event_stream(stream, call)
        return result


_OPERATIONS = {
    "Converse": Converse(),
    "ConverseStream": AioConverseStream(),
    "InvokeModel": AioInvokeModel(),
    "InvokeModelWithResponseStream": AioInvokeModelWithResponseStream(),
}


class AioBedrockRuntime(BedrockRuntime):
    """`AioBaseClient._make_api_call`: shared by every operation of every aiobotocore client."""

    def start(self, call: Call, instance: Any, args: tuple, kwargs: Mapping[str, Any]) -> dict | None:
        operation = _OPERATIONS[args[0] if args else kwargs["operation_name"]]
        call.endpoint = operation
        return operation.start(call, instance, args, kwargs)


# -- an AioEventStream observed in place -----------------------------------------------------------


def _observe_event_stream(stream: AioEventStream, call: Call) -> None:
    observe_stream(stream, call, "_event_generator", read=_pass)
    observer = stream._event_generator
    stream._parse_event = _ParsedEvents(weakref.ref(stream), call.endpoint.stream_reader(call), observer)
    stream.close = _Close(weakref.ref(stream), observer)


def _pass(event: Any) -> bool:
    return True


class _ParsedEvents:
    """Stands in for `AioEventStream._parse_event` on one stream (held weakly: no cycle)."""

    __slots__ = ("stream", "read", "observer")

    def __init__(self, stream: weakref.ref, read: ChunkReader, observer: AsyncChunkObserver) -> None:
        self.stream = stream
        self.read = read
        self.observer = observer

    async def __call__(self, event: Any) -> Any:
        observer = self.observer
        try:
            parsed = await AioEventStream._parse_event(self.stream(), event)
        except BaseException as exc:  # an exception event (EventStreamError): the call failed
            observer.call.fail(exc, partial=observer.seen)
            raise
        try:
            self.read(parsed)
        except Exception as fault:
            self.read = _pass
            observer.failed(fault, parsed)
        return parsed


class _Close:
    """Stands in for `close` on one stream: whatever was read is the call's usage."""

    __slots__ = ("stream", "observer")

    def __init__(self, stream: weakref.ref, observer: AsyncChunkObserver) -> None:
        self.stream = stream
        self.observer = observer

    def __call__(self) -> Any:
        self.observer.ended()
        stream = self.stream()
        return None if stream is None else AioEventStream.close(stream)


# -- an InvokeModel body observed in place ---------------------------------------------------------


class _BodyReads:
    """Keeps the bytes of one body as the caller reads them; ends the call once."""

    __slots__ = ("body", "call", "headers", "chunks", "kept", "__weakref__")

    def __init__(self, body: AioStreamingBodyBase, call: Call, headers: dict) -> None:
        self.body = weakref.ref(body)
        self.call = call
        self.headers = headers
        self.chunks: list[bytes] | None = []
        self.kept = 0

    @classmethod
    def observe(cls, body: AioStreamingBodyBase, call: Call, headers: dict) -> None:
        reads = cls(body, call, headers)
        body.read = reads.read
        body.readinto = reads.readinto
        close, aclose = type(body).close, type(body).aclose
        body.close = _BodyClose(reads, close)
        body.aclose = _BodyClose(reads, aclose)
        weakref.finalize(body, reads.end, False)

    def keep(self, data: bytes) -> None:
        if self.chunks is None or not data:
            return
        self.kept += len(data)
        if self.kept > MAX_KEPT_BODY:
            self.chunks = None  # the headers' counts only
        else:
            self.chunks.append(bytes(data))

    async def read(self, amt: int | None = None) -> bytes:
        body = self.body()
        try:
            data = await type(body).read(body, amt)
        except BaseException as exc:
            self.failed(exc)
            raise
        self.keep(data)
        if amt is None or amt < 0 or (not data and amt > 0):
            self.end(True)
        return data

    async def readinto(self, buffer: Any) -> int:
        body = self.body()
        try:
            count = await type(body).readinto(body, buffer)
        except BaseException as exc:
            self.failed(exc)
            raise
        self.keep(memoryview(buffer)[:count])
        if count == 0 and len(buffer) > 0:
            self.end(True)
        return count

    def failed(self, exc: BaseException) -> None:
        if not self.call.done:
            self.call.error = type(exc).__name__
            self.end(False, partial=True)

    def end(self, whole: bool, partial: bool = False) -> None:
        """`whole`: the body was read to its end (the worker parses it); otherwise Bedrock's
        headers say what was billed."""
        call = self.call
        if call.done:
            return
        data = b"".join(self.chunks) if whole and self.chunks is not None else None
        call.defer_usage(bedrock_invoke.read_invoked, bedrock_invoke.Invoked(self.headers, data))
        call.finish(partial=partial)


class _BodyClose:
    """Stands in for a body's `close` or `aclose` (sync or a coroutine function, as the class's)."""

    __slots__ = ("reads", "original")

    def __init__(self, reads: _BodyReads, original: Any) -> None:
        self.reads = reads
        self.original = original

    def __call__(self) -> Any:
        reads = self.reads
        reads.end(False)
        body = reads.body()
        return None if body is None else self.original(body)


def patches() -> list[Patch]:
    return [Patch("aiobotocore.client", "AioBaseClient._make_api_call", AioBedrockRuntime(), is_async=True)]
