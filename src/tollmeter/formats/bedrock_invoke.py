"""Bedrock InvokeModel and InvokeModelWithResponseStream: Bedrock's envelope around each model
family's own request and response format.

The body is the family's JSON: Anthropic Messages (`anthropic_messages`), Amazon Nova (Converse-
like, `converse`), OpenAI-style chat completions (gpt-oss, Mistral Large 2, DeepSeek, AI21
Jamba: `openai_chat`), Cohere Command R (`cohere_chat`), and the few families read here (Meta
Llama, Amazon Titan, Mistral's text completions, Cohere Command). Bedrock's own counts come in
response headers (`x-amzn-bedrock-{input,output,cache-read-input,cache-write-input}-token-count`,
input without the cache, like Converse) and, for streams, in the
`amazon-bedrock-invocationMetrics` of the last chunk. Those are what Bedrock bills and are read
first; the body fills what they lack (the Anthropic 1-hour cache-write split, stop reason, tool
calls).

A stream is a sequence of `{"chunk": {"bytes": b"<the family's JSON>"}}` events. On the caller's
thread the first chunk is parsed (input counts for an early stop); after it, a content delta
costs one prefix comparison and any other chunk a search for one or two byte strings; the
chunks the worker needs are kept as they are, and parsed there.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Mapping

from ..events import Usage
from ..instrument.fields import add, count, text
from ..limits.estimate import Acc, RequestFormat, walk_generic
from . import anthropic_messages, cohere_chat, converse, openai_chat
from .converse import as_dict, as_list

if TYPE_CHECKING:
    from ..instrument.call import Call
    from ..instrument.endpoint import ChunkReader

METRICS = "amazon-bedrock-invocationMetrics"
_METRICS_KEY = b'"amazon-bedrock-invocationMetrics"'  # quoted: text in a chunk would be escaped
HEADER_INPUT = "x-amzn-bedrock-input-token-count"
HEADER_OUTPUT = "x-amzn-bedrock-output-token-count"
HEADER_CACHE_READ = "x-amzn-bedrock-cache-read-input-token-count"
HEADER_CACHE_WRITE = "x-amzn-bedrock-cache-write-input-token-count"


def loads(data: Any) -> dict | None:
    """A JSON object, or None."""
    try:
        value = json.loads(data)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


class Counts:
    """Counts read from a body (or streamed chunks) of one model family. `fresh` is the input
    neither read from nor written to a cache, as Bedrock's own counts report it."""

    __slots__ = ("fresh", "output", "cache_read", "cache_write", "write_1h", "tool_calls", "stop")

    def __init__(self) -> None:
        self.fresh = self.output = self.cache_read = self.cache_write = self.write_1h = None
        self.tool_calls: int | None = None
        self.stop: str | None = None

    def take(self, usage: Usage | None) -> None:
        """The inclusive `Usage` a format's reader made of the body, in Bedrock's terms."""
        if usage is None:
            return
        fresh = usage.input_tokens
        cached = add(usage.cache_read_tokens, usage.cache_write_tokens)
        if fresh is not None and cached is not None and cached <= fresh:
            fresh -= cached
        self.fresh, self.output = fresh, usage.output_tokens
        self.cache_read, self.cache_write = usage.cache_read_tokens, usage.cache_write_tokens
        self.write_1h = usage.cache_write_1h_tokens

    def body(self, body: dict) -> None:
        """A complete InvokeModel response body, whichever family wrote it."""
        usage = body.get("usage")
        if body.get("type") == "message" or (isinstance(usage, dict) and "input_tokens" in usage):
            # Anthropic Messages
            self.take(_anthropic_usage(usage))
            self.stop = text(body.get("stop_reason"))
            self.tool_calls = anthropic_messages.count_tool_uses(body.get("content"))
        elif isinstance(body.get("output"), dict):
            # Amazon Nova
            self.take(converse.usage_of(as_dict(usage)))
            self.stop = text(body.get("stopReason"))
            self.tool_calls = converse.count_tool_uses(body)
        elif isinstance(body.get("choices"), list):
            # OpenAI-style chat completions (gpt-oss, Mistral Large 2, DeepSeek, AI21 Jamba...)
            self.take(openai_chat.usage_of(as_dict(usage)))
            if body["choices"]:
                self.tool_calls, self.stop = openai_chat.summarize_choices(body["choices"])
        elif "generation" in body:
            # Meta Llama
            self.fresh = count(body.get("prompt_token_count"))
            self.output = count(body.get("generation_token_count"))
            self.stop = text(body.get("stop_reason"))
        elif "inputTextTokenCount" in body:
            # Amazon Titan text (results) and embeddings (no output)
            self.fresh = count(body.get("inputTextTokenCount"))
            results = as_list(body.get("results"))
            if results:
                self.output = sum(count(as_dict(r).get("tokenCount")) or 0 for r in results)
                self.stop = text(as_dict(results[0]).get("completionReason"))
        elif isinstance(body.get("outputs"), list):
            # Mistral text completion: no counts in the body
            outputs = body["outputs"]
            if outputs:
                self.stop = text(as_dict(outputs[0]).get("stop_reason"))
        elif isinstance(body.get("generations"), list):
            # Cohere Command (text)
            generations = body["generations"]
            if generations:
                self.stop = text(as_dict(generations[0]).get("finish_reason"))
        elif "finish_reason" in body or "meta" in body:
            # Cohere Command R / R+
            self.take(cohere_chat.usage_of(body.get("meta")))
            self.stop = text(body.get("finish_reason"))
            if "tool_calls" in body:
                self.tool_calls = len(as_list(body.get("tool_calls")))

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


def _anthropic_usage(*usages: Any) -> Usage:
    counts = anthropic_messages.Counts()
    for usage in usages:
        counts.update(usage)
    return counts.usage()


def _first(a: int | None, b: int | None) -> int | None:
    return a if a is not None else b


# -- complete responses (on the worker) ------------------------------------------------------


class Invoked:
    """An InvokeModel response's headers and the bytes of its body, for the worker."""

    __slots__ = ("headers", "data")

    def __init__(self, headers: Mapping[str, Any], data: bytes | None) -> None:
        self.headers = headers
        self.data = data


def read_invoked(call: Call, response: Invoked) -> None:
    """A deferred InvokeModel response (a `UsageReader`)."""
    counts = Counts()
    if response.data:
        body = loads(response.data)
        if body is not None:
            counts.body(body)
    headers = response.headers
    counts.apply(call, headers.get(HEADER_INPUT), headers.get(HEADER_OUTPUT),
                 headers.get(HEADER_CACHE_READ), headers.get(HEADER_CACHE_WRITE))


# -- streams ---------------------------------------------------------------------------------


class StreamTail:
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
    counts = Counts()
    if head.get("type") == "message_start":  # Anthropic
        counts.take(_anthropic_usage(as_dict(head.get("message")).get("usage")))
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


def stream_reader(call: Call) -> ChunkReader:
    """Reads the `{"chunk": {"bytes": ...}}` events of a stream as they pass; the chunk with
    Bedrock's invocation metrics is the last and completes the call (`call.finish`)."""
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
            first = loads(data)
            tool_marker, delta = _stream_head(call, first)
            if delta is None:  # Anthropic and Nova open with a message start, others with text
                call.mark_first_token()
        # bytes.find: `in` first tries the needle as an int and pays for the TypeError
        if data.find(_METRICS_KEY) >= 0:
            # The last chunk: the call is complete; the rest is read on the worker.
            call.defer_usage(read_stream_tail, StreamTail(first, kept, previous, data))
            call.finish()
        elif tool_marker is not None and data.find(tool_marker) >= 0:
            kept.append(data)
        previous = data
        return True

    return read


def read_stream_tail(call: Call, tail: StreamTail) -> None:
    """A deferred stream's tail (a `UsageReader`)."""
    last = loads(tail.last) or {}
    metrics = as_dict(last.get(METRICS))
    counts = Counts()
    first = tail.first or {}
    before_last = loads(tail.previous) if tail.previous else None
    if first.get("type") == "message_start":  # Anthropic
        usages = [as_dict(first.get("message")).get("usage")]
        counts.tool_calls = 0
        for data in tail.kept:
            event = loads(data) or {}
            if event.get("type") == "content_block_start" and \
                    as_dict(event.get("content_block")).get("type") == "tool_use":
                counts.tool_calls += 1
        for event in (before_last, last):
            if event and event.get("type") == "message_delta":
                usages.append(event.get("usage"))
                counts.stop = text(as_dict(event.get("delta")).get("stop_reason"))
        counts.take(_anthropic_usage(*usages))
    elif "messageStart" in first:  # Amazon Nova
        counts.tool_calls = sum(1 for data in tail.kept if converse.is_tool_start(loads(data) or {}))
        for event in (before_last, last):
            if event and "messageStop" in event:
                counts.stop = converse.stop_reason(event)
        if "metadata" in last:
            counts.take(converse.usage_of(as_dict(as_dict(last["metadata"]).get("usage"))))
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


# -- request estimates -----------------------------------------------------------------------


def walk_request(acc: Acc, kw: Mapping) -> int | None:
    """The request is the model family's own JSON, in `body`."""
    body = kw.get("body")
    if isinstance(body, (bytes, bytearray, str)):
        try:
            body = json.loads(body)
        except ValueError:
            body = None
    if not isinstance(body, Mapping):
        return walk_generic(acc, kw)
    if "anthropic_version" in body or ("messages" in body and "max_tokens" in body):
        return anthropic_messages.walk_request(acc, body)
    if "inferenceConfig" in body or "schemaVersion" in body:  # Amazon Nova: Converse-like
        return converse.walk_nova_body(acc, body)
    return walk_generic(acc, body)  # Llama (max_gen_len), Titan (maxTokenCount), Mistral, Cohere


#: `invoke_model(...)` / `invoke_model_with_response_stream(...)`: a family's body, whose cap is
#: its own; a request without a model is taken for a Claude model.
INVOKE_MODEL = RequestFormat("bedrock invoke_model", walk_request, claude_by_default=True)
