"""The Bedrock Converse format (Converse, ConverseStream), and Amazon Nova's InvokeModel bodies,
which are Converse-like (the same messages, content blocks, `output.message`, `stopReason` and
stream events; their usage spells the cache counts `cache...InputTokenCount`).

Payloads are the dicts botocore parses. Usage: `inputTokens` excludes cache reads and writes
(AWS prompt caching docs: total input = inputTokens + cacheReadInputTokens +
cacheWriteInputTokens, and `totalTokens` includes all three). `cacheDetails` splits the cache
writes by TTL ("5m" / "1h"). botocore releases that predate the cache fields (1.35.99 has none)
drop them when parsing; the difference between `totalTokens` and inputTokens + outputTokens is
the cached input then, so the inclusive input stays right while the cache details are unknown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from ..events import Usage
from ..instrument.fields import add, count, text
from ..limits.estimate import (PER_MESSAGE_TOKENS, STORED_CONTEXT_TOKENS, TOOL_TOKENS,
                               TOOLS_SYSTEM_PROMPT_TOKENS, Acc, RequestFormat, as_mapping, cap_value, member,
                               text_tokens, walk, walk_parts, walk_text)

if TYPE_CHECKING:
    from ..instrument.call import Call
    from ..instrument.endpoint import ChunkReader


def as_dict(value: Any) -> dict:
    """A parsed JSON object, or {} for anything else (botocore's payloads are plain JSON)."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list:
    """A parsed JSON array, or []."""
    return value if isinstance(value, list) else []


# -- usage (on the background worker) --------------------------------------------------------


def usage_of(usage: Mapping[str, Any]) -> Usage:
    """The `Usage` of a Converse `usage` (or a Nova InvokeModel body's)."""
    fresh = count(usage.get("inputTokens"))
    output = count(usage.get("outputTokens"))
    cache_read = count(usage.get("cacheReadInputTokens"))
    if cache_read is None:
        cache_read = count(usage.get("cacheReadInputTokenCount"))  # Nova InvokeModel
    cache_write = count(usage.get("cacheWriteInputTokens"))
    if cache_write is None:
        cache_write = count(usage.get("cacheWriteInputTokenCount"))  # Nova InvokeModel
    write_1h = None
    details = usage.get("cacheDetails")
    if isinstance(details, list):
        write_1h = written = 0
        for detail in details:
            detail = as_dict(detail)
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


def read_usage(call: Call, usage: Any) -> None:
    """A deferred `usage` dict (a `UsageReader`)."""
    call.usage = usage_of(usage)


# -- responses and stream events (on the caller's thread) ------------------------------------


def count_tool_uses(body: Mapping[str, Any]) -> int:
    """The tool calls of a response's (or Nova body's) `output.message.content`."""
    content = as_list(as_dict(as_dict(body.get("output")).get("message")).get("content"))
    return sum(1 for block in content if isinstance(block, dict) and "toolUse" in block)


def read_response(call: Call, response: Mapping[str, Any]) -> None:
    """A Converse response, or the `metadata` event that ends a ConverseStream (usage, metrics,
    trace and service tier: the stop reason and tool calls came before it). The usage is
    deferred."""
    usage = response.get("usage")
    if isinstance(usage, dict):
        call.defer_usage(read_usage, usage)
    tier = as_dict(response.get("serviceTier")).get("type")
    if tier:
        call.service_tier = text(tier)
    # A prompt router says which model served the request.
    routed = as_dict(as_dict(response.get("trace")).get("promptRouter")).get("invokedModelId")
    if isinstance(routed, str):
        call.model = routed
    if "stopReason" in response:
        call.finish_reason = text(response["stopReason"])
    if isinstance(response.get("output"), dict):
        call.tool_calls = count_tool_uses(response)


def is_tool_start(event: Mapping[str, Any]) -> bool:
    """A `contentBlockStart` event opening a tool call."""
    return "toolUse" in as_dict(as_dict(event.get("contentBlockStart")).get("start"))


def stop_reason(event: Mapping[str, Any]) -> str | None:
    """The stop reason of a `messageStop` event."""
    return text(as_dict(event["messageStop"]).get("stopReason"))


def stream_reader(call: Call) -> ChunkReader:
    """ConverseStream events as botocore parses them: the first content delta is the first
    token; the `metadata` event is the last, and completes the call (`call.finish`)."""
    call.tool_calls = 0

    def read(event: Any) -> bool:
        if "contentBlockDelta" in event:
            if call.first_token_ns is None:
                call.mark_first_token()
        elif "contentBlockStart" in event:
            if is_tool_start(event):
                call.tool_calls += 1
        elif "messageStop" in event:
            call.finish_reason = stop_reason(event)
        elif "metadata" in event:
            # The last event: the call is complete; its usage is read on the worker.
            call.finish(response=event["metadata"])
        return True

    return read


# -- request estimates -----------------------------------------------------------------------


def _block(acc: Acc, b: Mapping, depth: int) -> None:
    for k, v in b.items():
        if v is None or k == "cachePoint":
            continue
        if k == "text":
            walk_text(acc, v)
        elif k == "image":
            acc.image()
        elif k == "document":
            src = as_mapping(member(v, "source"))
            if src is not None and isinstance(src.get("text"), str):
                acc.fixed += TOOL_TOKENS
                acc.text += text_tokens(src["text"])
            elif src is not None and src.get("content") is not None:
                acc.fixed += TOOL_TOKENS
                _blocks(acc, src.get("content"), depth + 1)
            else:
                acc.document()
        elif k in ("video", "audio"):
            acc.document()
        elif k == "toolUse":
            acc.fixed += TOOL_TOKENS
            walk(acc, v, depth + 1)
        elif k == "toolResult":
            acc.fixed += TOOL_TOKENS
            _blocks(acc, member(v, "content"), depth + 1)
        elif k == "json":
            walk(acc, v, depth + 1)
        elif k == "reasoningContent":
            r = as_mapping(v)
            if r is not None:
                walk_text(acc, member(r.get("reasoningText"), "text"))
                redacted = r.get("redactedContent")
                if isinstance(redacted, (bytes, bytearray)):
                    acc.fixed += len(redacted) // 2 + 1
        else:  # guardContent, citationsContent, searchResult, ...
            walk(acc, v, depth + 1)


def _blocks(acc: Acc, content: Any, depth: int = 1) -> None:
    # A bare string among the blocks is no block: walked like any value.
    walk_parts(acc, content, _block, depth, strings=False)


def walk_request(acc: Acc, kw: Mapping) -> int | None:
    system = kw.get("system")
    if system is not None:
        _blocks(acc, system)
    messages = kw.get("messages")
    if isinstance(messages, (list, tuple)):
        for message in messages:
            acc.fixed += PER_MESSAGE_TOKENS
            m = as_mapping(message)
            if m is None:
                walk(acc, message, 1)
            else:
                _blocks(acc, m.get("content"))
    elif messages is not None:
        walk(acc, messages, 1)
    tool_config = as_mapping(kw.get("toolConfig"))
    if tool_config is not None:
        tools = tool_config.get("tools")
        if isinstance(tools, (list, tuple)) and tools:
            acc.fixed += TOOLS_SYSTEM_PROMPT_TOKENS + TOOL_TOKENS * len(tools)
        walk(acc, tool_config, 1)
    variables = kw.get("promptVariables")
    if variables is not None:  # a Bedrock prompt-management prompt: its text is server-side
        acc.fixed += STORED_CONTEXT_TOKENS
        walk(acc, variables, 1)
    extra = kw.get("additionalModelRequestFields")
    if extra is not None:
        walk(acc, extra, 1)
    return cap_value(member(kw.get("inferenceConfig"), "maxTokens"))


def walk_nova_body(acc: Acc, body: Mapping) -> int | None:
    """An Amazon Nova InvokeModel body: a Converse request whose cap may be `max_new_tokens`."""
    config = body.get("inferenceConfig") or {}
    return walk_request(acc, {**body, "inferenceConfig": {"maxTokens": config.get("maxTokens")
                                                          or config.get("max_new_tokens")}})


#: `converse(...)` / `converse_stream(...)`. A request without a model is taken for a Claude model.
CONVERSE = RequestFormat("bedrock converse", walk_request, claude_by_default=True)
