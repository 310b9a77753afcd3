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

Usage: Bedrock's `inputTokens` excludes cache reads and writes (AWS prompt caching docs: total
input = inputTokens + cacheReadInputTokens + cacheWriteInputTokens, and `totalTokens` includes
all three). `cacheDetails` splits the cache writes by TTL ("5m" / "1h"). botocore releases that
predate the cache fields (1.35.99 has none) drop them when parsing; the difference between
`totalTokens` and inputTokens + outputTokens is the cached input then, so the inclusive input
stays right while the cache details are unknown.

InvokeModel bodies differ per model family; Bedrock's own counts come in response headers
(`x-amzn-bedrock-{input,output,cache-read-input,cache-write-input}-token-count`, input without
the cache, like Converse) and, for streams, in the `amazon-bedrock-invocationMetrics` of the
last chunk. Those are what Bedrock bills and are read first; the body fills what they lack (the
Anthropic 1-hour cache-write split, stop reason, tool calls). The body is read when the call
returns and the caller gets a fresh `StreamingBody` over the same bytes.

The model is the request's `modelId` (a model id, an inference profile id such as
`us.anthropic.claude-3-5-sonnet-20241022-v2:0`, or an ARN), kept as it is: the regional and
global profiles of a model are priced differently.
"""

from __future__ import annotations

import io
import json
import weakref
from typing import Any, Mapping

from botocore.eventstream import EventStream
from botocore.response import StreamingBody

from ..events import Usage
from .call import Call
from .endpoint import ChunkReader, Endpoint, Kind
from .fields import add, count, text
from .registry import Patch
from .streams import ChunkObserver, close_patches, observe_stream

PROVIDER = "aws"
_SERVICE = "bedrock-runtime"
_METRICS = "amazon-bedrock-invocationMetrics"
_METRICS_KEY = b'"amazon-bedrock-invocationMetrics"'  # quoted: text in a chunk would be escaped
_HEADER_INPUT = "x-amzn-bedrock-input-token-count"
_HEADER_OUTPUT = "x-amzn-bedrock-output-token-count"
_HEADER_CACHE_READ = "x-amzn-bedrock-cache-read-input-token-count"
_HEADER_CACHE_WRITE = "x-amzn-bedrock-cache-write-input-token-count"


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _response_metadata(call: Call, result: Mapping[str, Any]) -> dict:
    meta = _dict(result.get("ResponseMetadata"))
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
        code = _dict(response.get("Error")).get("Code")
        if code:
            call.error = text(code)
        meta = _dict(response.get("ResponseMetadata"))
        status = meta.get("HTTPStatusCode")
        if isinstance(status, int):
            call.status_code = status
        request_id = meta.get("RequestId")
        if request_id:
            call.request_id = text(request_id)


# -- Converse ----------------------------------------------------------------------------------


def _converse_usage(usage: Mapping[str, Any]) -> Usage:
    fresh = count(usage.get("inputTokens"))
    output = count(usage.get("outputTokens"))
    cache_read = count(usage.get("cacheReadInputTokens"))
    cache_write = count(usage.get("cacheWriteInputTokens"))
    write_1h = None
    details = usage.get("cacheDetails")
    if isinstance(details, list):
        write_1h = written = 0
        for detail in details:
            detail = _dict(detail)
            tokens = count(detail.get("inputTokens")) or 0
            written += tokens
            if detail.get("ttl") == "1h":
                write_1h += tokens
        if cache_write is None:
            cache_write = written
        elif write_1h > cache_write:
            write_1h = None
    input_tokens = add(add(fresh, cache_read), cache_write)
    total = count(usage.get("totalTokens"))
    if (cache_read is None and cache_write is None and fresh is not None and output is not None
            and total is not None and total > fresh + output):
        # An older botocore dropped the cache fields; totalTokens still counts them.
        input_tokens = total - output
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=write_1h,
    )


class Converse(_Operation):
    name = "converse"

    def read_response(self, call: Call, response: Any) -> None:
        """A Converse response, or the `metadata` event that ends a ConverseStream (usage,
        metrics, trace and service tier: the stop reason and tool calls came before it)."""
        if not isinstance(response, dict):
            return
        if "ResponseMetadata" in response:
            _response_metadata(call, response)
        usage = response.get("usage")
        if isinstance(usage, dict):
            call.usage = _converse_usage(usage)
        tier = _dict(response.get("serviceTier")).get("type")
        if tier:
            call.service_tier = text(tier)
        # A prompt router says which model served the request.
        routed = _dict(_dict(response.get("trace")).get("promptRouter")).get("invokedModelId")
        if isinstance(routed, str):
            call.model = routed
        if "stopReason" in response:
            call.finish_reason = text(response["stopReason"])
        output = response.get("output")
        if isinstance(output, dict):
            content = _list(_dict(output.get("message")).get("content"))
            call.tool_calls = sum(1 for block in content if isinstance(block, dict) and "toolUse" in block)


class ConverseStream(Converse):
    """`response["stream"]` is an EventStream of events that botocore parses into dicts; it is
    observed in place (`_observe_event_stream`) and its parsed events are read as they pass."""

    def start(self, call: Call, instance: Any, args: tuple, kwargs: Mapping[str, Any]) -> dict | None:
        super().start(call, instance, args, kwargs)
        call.stream = True
        return None

    def classify(self, result: Any) -> Kind:
        return Kind.CUSTOM

    def observe_result(self, call: Call, result: Any) -> Any:
        stream = result.get("stream") if isinstance(result, dict) else None
        if not isinstance(stream, EventStream):
            call.finish()
            return result
        _response_metadata(call, result)
        _observe_event_stream(stream, call)
        return result

    def stream_reader(self, call: Call) -> ChunkReader:
        call.tool_calls = 0

        def read(event: Any) -> bool:
            if "contentBlockDelta" in event:
                if call.first_token_ns is None:
                    call.mark_first_token()
            elif "contentBlockStart" in event:
                if "toolUse" in _dict(_dict(event["contentBlockStart"]).get("start")):
                    call.tool_calls += 1
            elif "messageStop" in event:
                call.finish_reason = text(_dict(event["messageStop"]).get("stopReason"))
            elif "metadata" in event:
                # The last event: the call is complete; its usage is read on the worker.
                call.finish(response=event["metadata"])
            return True

        return read


# -- InvokeModel -------------------------------------------------------------------------------


class _Counts:
    """Counts read from a body (or streamed chunks) of one model family. `fresh` is the input
    neither read from nor written to a cache, as Bedrock's own counts report it."""

    __slots__ = ("fresh", "output", "cache_read", "cache_write", "write_1h", "tool_calls", "stop")

    def __init__(self) -> None:
        self.fresh = self.output = self.cache_read = self.cache_write = self.write_1h = None
        self.tool_calls: int | None = None
        self.stop: str | None = None

    def anthropic_usage(self, usage: Any) -> None:
        usage = _dict(usage)
        for attr, key in (("fresh", "input_tokens"), ("output", "output_tokens"),
                          ("cache_read", "cache_read_input_tokens"),
                          ("cache_write", "cache_creation_input_tokens")):
            value = count(usage.get(key))
            if value is not None:
                setattr(self, attr, value)
        split = usage.get("cache_creation")
        if isinstance(split, dict):
            self.write_1h = count(split.get("ephemeral_1h_input_tokens"))
            if self.cache_write is None:
                self.cache_write = add(count(split.get("ephemeral_5m_input_tokens")), self.write_1h)

    def nova_usage(self, usage: Any) -> None:
        usage = _dict(usage)
        self.fresh = count(usage.get("inputTokens"))
        self.output = count(usage.get("outputTokens"))
        self.cache_read = count(usage.get("cacheReadInputTokenCount"))
        self.cache_write = count(usage.get("cacheWriteInputTokenCount"))

    def body(self, body: dict) -> None:
        """A complete InvokeModel response body, whichever family wrote it."""
        usage = body.get("usage")
        if body.get("type") == "message" or (isinstance(usage, dict) and "input_tokens" in usage):
            # Anthropic Messages
            self.anthropic_usage(usage)
            self.stop = text(body.get("stop_reason"))
            self.tool_calls = sum(1 for b in _list(body.get("content")) if _dict(b).get("type") == "tool_use")
        elif isinstance(body.get("output"), dict):
            # Amazon Nova
            self.nova_usage(usage)
            self.stop = text(body.get("stopReason"))
            content = _list(_dict(body["output"].get("message")).get("content"))
            self.tool_calls = sum(1 for b in content if isinstance(b, dict) and "toolUse" in b)
        elif isinstance(body.get("choices"), list):
            # OpenAI-style chat completions (gpt-oss, Mistral Large 2, DeepSeek, AI21 Jamba...)
            usage = _dict(usage)
            prompt = count(usage.get("prompt_tokens"))
            cached = count(_dict(usage.get("prompt_tokens_details")).get("cached_tokens"))
            self.fresh = prompt - cached if prompt is not None and cached is not None and cached <= prompt else prompt
            self.cache_read = cached
            self.output = count(usage.get("completion_tokens"))
            choices = body["choices"]
            if choices:
                first = _dict(choices[0])
                self.stop = text(first.get("finish_reason") or first.get("stop_reason"))
                self.tool_calls = sum(len(_list(_dict(_dict(c).get("message")).get("tool_calls"))) for c in choices)
        elif "generation" in body:
            # Meta Llama
            self.fresh = count(body.get("prompt_token_count"))
            self.output = count(body.get("generation_token_count"))
            self.stop = text(body.get("stop_reason"))
        elif "inputTextTokenCount" in body:
            # Amazon Titan text (results) and embeddings (no output)
            self.fresh = count(body.get("inputTextTokenCount"))
            results = _list(body.get("results"))
            if results:
                self.output = sum(count(_dict(r).get("tokenCount")) or 0 for r in results)
                self.stop = text(_dict(results[0]).get("completionReason"))
        elif isinstance(body.get("outputs"), list):
            # Mistral text completion: no counts in the body
            outputs = body["outputs"]
            if outputs:
                self.stop = text(_dict(outputs[0]).get("stop_reason"))
        elif isinstance(body.get("generations"), list):
            # Cohere Command (text)
            generations = body["generations"]
            if generations:
                self.stop = text(_dict(generations[0]).get("finish_reason"))
        elif "finish_reason" in body or "meta" in body:
            # Cohere Command R / R+
            billed = _dict(_dict(body.get("meta")).get("billed_units"))
            self.fresh = count(billed.get("input_tokens"))
            self.output = count(billed.get("output_tokens"))
            self.stop = text(body.get("finish_reason"))
            if "tool_calls" in body:
                self.tool_calls = len(_list(body.get("tool_calls")))

    def apply(self, call: Call, fresh: Any = None, output: Any = None, cache_read: Any = None,
              cache_write: Any = None) -> None:
        """Bedrock's own counts (headers or invocation metrics) first, the family's after."""
        fresh = _first(count(fresh), self.fresh)
        output = _first(count(output), self.output)
        cache_read = _first(count(cache_read), self.cache_read)
        cache_write = _first(count(cache_write), self.cache_write)
        write_1h = self.write_1h
        if write_1h is not None and (cache_write is None or write_1h > cache_write):
            write_1h = None
        call.usage = Usage(
            input_tokens=add(add(fresh, cache_read), cache_write),
            output_tokens=output,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            cache_write_1h_tokens=write_1h,
        )
        if self.stop is not None:
            call.finish_reason = self.stop
        if self.tool_calls is not None:
            call.tool_calls = self.tool_calls


def _first(a: int | None, b: int | None) -> int | None:
    return a if a is not None else b


def _loads(data: Any) -> dict | None:
    try:
        value = json.loads(data)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


class _Invoked:
    """An InvokeModel response's headers and the bytes of its body, for the worker."""

    __slots__ = ("headers", "data")

    def __init__(self, headers: dict, data: bytes | None) -> None:
        self.headers = headers
        self.data = data


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

    def classify(self, result: Any) -> Kind:
        return Kind.CUSTOM

    def observe_result(self, call: Call, result: Any) -> Any:
        if not isinstance(result, dict):
            call.finish()
            return result
        headers = self._read_metadata(call, result)
        body = result.get("body")
        if not isinstance(body, StreamingBody):
            call.defer_usage(self.read_response, _Invoked(headers, None))
            call.finish()
            return result
        try:
            data = body.read()
        except Exception as exc:
            # The caller gets the same exception when it reads the body.
            result["body"] = StreamingBody(_Unreadable(exc), None)
            call.error = type(exc).__name__
            call.defer_usage(self.read_response, _Invoked(headers, None))
            call.finish(partial=True)
            return result
        result["body"] = StreamingBody(io.BytesIO(data), len(data))
        # The body is parsed on the worker: Bedrock's own counts are in the headers, the body
        # adds the stop reason, tool calls and the Anthropic 1-hour cache-write split.
        call.defer_usage(self.read_response, _Invoked(headers, data))
        call.finish()
        return result

    @staticmethod
    def _read_metadata(call: Call, result: Mapping[str, Any]) -> dict:
        meta = _response_metadata(call, result)
        tier = result.get("serviceTier")
        if isinstance(tier, str):
            call.service_tier = tier
        return _dict(meta.get("HTTPHeaders"))

    def read_response(self, call: Call, response: Any) -> None:
        if not isinstance(response, _Invoked):
            return
        counts = _Counts()
        if response.data:
            body = _loads(response.data)
            if body is not None:
                counts.body(body)
        headers = response.headers
        counts.apply(call, headers.get(_HEADER_INPUT), headers.get(_HEADER_OUTPUT),
                     headers.get(_HEADER_CACHE_READ), headers.get(_HEADER_CACHE_WRITE))


class _StreamTail:
    """What the worker needs of an InvokeModelWithResponseStream: the first chunk (parsed),
    the chunks that may start a tool call, the one before the last and the last (the one with
    Bedrock's invocation metrics), as bytes."""

    __slots__ = ("first", "kept", "previous", "last")

    def __init__(self, first: dict | None, kept: list[bytes], previous: bytes | None, last: bytes) -> None:
        self.first = first
        self.kept = kept
        self.previous = previous
        self.last = last


#: Per family: the marker of chunks that may open a tool call, and how the family's content
#: deltas begin. A delta is never the last chunk nor a tool call's start: the reader passes it
#: after one prefix comparison (were the key order to change, it would scan them as well).
_ANTHROPIC_STREAM = (b'"tool_use"', b'{"type":"content_block_delta"')
_NOVA_STREAM = (b'"contentBlockStart"', b'{"contentBlockDelta"')
_OTHER_STREAM = (None, None)


def _stream_head(call: Call, head: dict | None) -> tuple[bytes | None, bytes | None]:
    """Reads the first chunk of a stream: what is known if the stream stops early (input
    tokens, for the families that report them up front). Returns the family's markers."""
    if head is None:
        return _OTHER_STREAM
    counts = _Counts()
    if head.get("type") == "message_start":  # Anthropic
        counts.anthropic_usage(_dict(head.get("message")).get("usage"))
        counts.output = None  # a placeholder here: the final count comes at the end
        counts.apply(call)
        return _ANTHROPIC_STREAM
    if "messageStart" in head:  # Amazon Nova
        return _NOVA_STREAM
    counts.fresh = count(head.get("prompt_token_count"))  # Llama
    if counts.fresh is None:
        counts.fresh = count(head.get("inputTextTokenCount"))  # Titan
    if counts.fresh is not None:
        counts.apply(call)
    return _OTHER_STREAM


class InvokeModelWithResponseStream(InvokeModel):
    """`response["body"]` is an EventStream of `{"chunk": {"bytes": b"<model JSON>"}}` events.
    The first chunk is parsed (input counts for an early stop); after it, a content delta costs
    one prefix comparison and any other chunk a search for one or two byte strings; the chunks
    the worker needs are kept as they are, and parsed there."""

    def start(self, call: Call, instance: Any, args: tuple, kwargs: Mapping[str, Any]) -> dict | None:
        super().start(call, instance, args, kwargs)
        call.stream = True
        return None

    def observe_result(self, call: Call, result: Any) -> Any:
        stream = result.get("body") if isinstance(result, dict) else None
        if not isinstance(stream, EventStream):
            call.finish()
            return result
        self._read_metadata(call, result)
        _observe_event_stream(stream, call)
        return result

    def stream_reader(self, call: Call) -> ChunkReader:
        first: dict | None = None
        started = False
        tool_marker: bytes | None = None
        delta: bytes | None = None
        kept: list[bytes] = []
        previous: bytes | None = None

        def read(event: Any) -> bool:
            nonlocal first, started, tool_marker, delta, previous
            try:
                data = event["chunk"]["bytes"]
            except (KeyError, TypeError):  # not a chunk
                return True
            if type(data) is not bytes:
                return True
            if started:
                if call.first_token_ns is None:
                    call.mark_first_token()
                if delta is not None and data.startswith(delta):
                    return True
            else:
                started = True
                first = _loads(data)
                tool_marker, delta = _stream_head(call, first)
                if delta is None:  # Anthropic and Nova open with a message start, others with text
                    call.mark_first_token()
            # bytes.find: `in` first tries the needle as an int and pays for the TypeError
            if data.find(_METRICS_KEY) >= 0:
                # The last chunk: the call is complete; the rest is read on the worker.
                call.defer_usage(self.read_response, _StreamTail(first, kept, previous, data))
                call.finish()
            elif tool_marker is not None and data.find(tool_marker) >= 0:
                kept.append(data)
            previous = data
            return True

        return read

    def read_response(self, call: Call, response: Any) -> None:
        if not isinstance(response, _StreamTail):
            return
        last = _loads(response.last) or {}
        metrics = _dict(last.get(_METRICS))
        counts = _Counts()
        first = response.first or {}
        if first.get("type") == "message_start":  # Anthropic
            counts.anthropic_usage(_dict(first.get("message")).get("usage"))
            counts.tool_calls = 0
            for data in response.kept:
                event = _loads(data) or {}
                if event.get("type") == "content_block_start" and \
                        _dict(event.get("content_block")).get("type") == "tool_use":
                    counts.tool_calls += 1
            for event in (_loads(response.previous) if response.previous else None, last):
                if event and event.get("type") == "message_delta":
                    counts.anthropic_usage(event.get("usage"))
                    counts.stop = text(_dict(event.get("delta")).get("stop_reason"))
        elif "messageStart" in first:  # Amazon Nova
            counts.tool_calls = 0
            for data in response.kept:
                event = _loads(data) or {}
                if "toolUse" in _dict(_dict(event.get("contentBlockStart")).get("start")):
                    counts.tool_calls += 1
            for event in (_loads(response.previous) if response.previous else None, last):
                if event and "messageStop" in event:
                    counts.stop = text(_dict(event["messageStop"]).get("stopReason"))
            if "metadata" in last:
                counts.nova_usage(_dict(last["metadata"]).get("usage"))
        else:  # one JSON object per chunk: the last one says why it stopped
            counts.body(last)
            counts.fresh = _first(counts.fresh, count(first.get("prompt_token_count")))
            counts.fresh = _first(counts.fresh, count(first.get("inputTextTokenCount")))
            if counts.output is None:
                counts.output = count(last.get("totalOutputTextTokenCount"))  # Titan
            if counts.stop is None:
                counts.stop = text(last.get("completionReason") or last.get("finish_reason"))
            counts.tool_calls = None  # streamed tool calls of these families are not counted
        counts.apply(call, metrics.get("inputTokenCount"), metrics.get("outputTokenCount"),
                     metrics.get("cacheReadInputTokenCount"), metrics.get("cacheWriteInputTokenCount"))


# -- observing an EventStream in place ----------------------------------------------------------


def _observe_event_stream(stream: EventStream, call: Call) -> None:
    """botocore's EventStream parses each raw event of `_event_generator` in `__iter__`. The raw
    generator is observed (end, error, close and collection end the call); the parsed events
    are read through `_parse_event`, looked up on the instance first."""
    observe_stream(stream, call, "_event_generator", read=_raw_event)
    observer = stream._event_generator
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
            observer.failed(fault)
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
