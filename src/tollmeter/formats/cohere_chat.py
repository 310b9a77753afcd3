"""Cohere's chat, embed and rerank format (the v2 API of the `cohere` SDK; the `meta` of Cohere
Command R bodies on Bedrock has the same `billed_units`).

Usage: Cohere reports two counts. `billed_units` is what Cohere charges for; `tokens` is what
the model processed, which adds the tokens Cohere puts around the caller's input (its prompt
template, special tokens) and may add special output tokens, none of them billed. Events carry
the billed counts, so that they price to what the invoice says; `tokens` is read only when no
billed count is reported. `cached_tokens` counts cache hits over that whole processed prompt (it
can exceed the billed input) and Cohere does not bill them differently, so it is not recorded
as cache reads of the billed input. Rerank is billed per search: `billed_units.search_units`
becomes `units["rerank_searches"]`.

Requests have no format of their own here: they are estimated by the generic rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..events import Usage
from ..instrument.fields import count, field, mapping, text

if TYPE_CHECKING:
    from ..instrument.call import Call
    from ..instrument.endpoint import ChunkReader


# -- usage (on the background worker) --------------------------------------------------------


def usage_of(usage: Any) -> Usage | None:
    """The `Usage` of a chat `usage` (or the `meta` of embed and rerank); None without counts."""
    if usage is None:
        return None
    billed = field(usage, "billed_units")
    input_tokens = count(field(billed, "input_tokens"))
    output_tokens = count(field(billed, "output_tokens"))
    if billed is None:  # no billed counts at all: the processed ones are all there is
        tokens = field(usage, "tokens")
        input_tokens = count(field(tokens, "input_tokens"))
        output_tokens = count(field(tokens, "output_tokens"))
    # Embed bills text and image tokens under billed_units (older models count images instead,
    # which no price uses: those are left out).
    image_tokens = count(field(billed, "image_tokens"))
    parts = count(field(billed, "text_tokens"))
    if image_tokens is not None or parts is not None:
        parts = (parts or 0) + (image_tokens or 0)
        if input_tokens is None or input_tokens < parts:  # the input is at least its parts
            input_tokens = parts
    if input_tokens is None and output_tokens is None:
        return None
    return Usage(input_tokens=input_tokens, output_tokens=output_tokens, input_image_tokens=image_tokens)


def read_usage(call: Call, usage: Any) -> None:
    """A deferred `usage` or `meta` (a `UsageReader`)."""
    read = usage_of(usage)
    if read is not None:
        call.usage = read
    searches = count(field(field(usage, "billed_units"), "search_units"))
    if searches is not None:
        call.units = {"rerank_searches": searches}


# -- responses and stream events (on the caller's thread) ------------------------------------


def read_response(call: Call, body: Any, chat: bool = True) -> None:
    """A chat response (not `chat`: an embed or rerank response, whose usage is its `meta`): its
    id, tool calls and finish reason now, its usage deferred."""
    values = mapping(body)
    request_id = values.get("id")
    if request_id is not None:
        call.request_id = text(request_id)
    usage = values.get("usage" if chat else "meta")
    if usage is not None:
        call.defer_usage(read_usage, usage)
    if chat:
        call.tool_calls = len(mapping(values.get("message")).get("tool_calls") or ())
        reason = values.get("finish_reason")
        if reason is not None:
            call.finish_reason = text(reason)


def stream_reader(call: Call) -> ChunkReader:
    """Chat stream events: the first content (or tool plan, or tool call) is the first token;
    `message-end` carries the usage and the finish reason."""
    call.tool_calls = 0

    def read(event: Any) -> bool:
        kind = getattr(event, "type", None)
        if kind == "content-delta" or kind == "tool-plan-delta":
            if call.first_token_ns is None:
                call.mark_first_token()
        elif kind == "tool-call-start":
            call.tool_calls += 1
            if call.first_token_ns is None:
                call.mark_first_token()
        elif kind == "message-start":
            request_id = field(event, "id")
            if request_id is not None:
                call.request_id = text(request_id)
        elif kind == "message-end":
            delta = field(event, "delta")
            usage = field(delta, "usage")
            if usage is not None:
                call.defer_usage(read_usage, usage)
            reason = field(delta, "finish_reason")
            if reason is not None:
                call.finish_reason = text(reason)
            if field(delta, "error"):
                call.error = "message-end error"
        return True

    return read
