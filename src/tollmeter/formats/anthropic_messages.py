"""The Anthropic Messages format: the `anthropic` SDK's first-party, Bedrock, Vertex and Foundry
clients, and the Claude bodies of Bedrock InvokeModel.

Usage: `input_tokens` excludes cache reads and writes; the inclusive input is their sum.
`cache_creation` splits the cache writes by TTL (5 minutes, 1 hour). Thinking tokens are inside
`output_tokens` (reported apart as `output_tokens_details.thinking_tokens` where available);
`server_tool_use.web_search_requests` counts the web searches billed. In streams, message_start
carries the first counts and message_delta the final ones: for each count the last value
reported wins.

Context management (compaction) and server-side tool loops sample the model more than once per
request, and report each sampling in `usage.iterations` (beta), with its own input, output and
cache reads and writes. The top-level counts are the `message` iterations' alone; a
`compaction` iteration (the summary of the context being closed, by the same model) is billed
on top of them. The call's usage is the sum: the top-level counts (or the sum of the `message`
iterations, should that be larger) plus every compaction iteration, cache reads and writes
included. Iterations of another model (an `advisor_message`, a `fallback_message`) are billed
at that model's prices and are not added to this call's model's usage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping

from ..events import Usage
from ..instrument.fields import add, count, field, mapping, text
from ..limits.estimate import (ANTHROPIC_DEFINED_TOOL_TOKENS, HOSTED_TOOL_TOKENS, TOOL_TOKENS,
                               TOOLS_SYSTEM_PROMPT_TOKENS, Acc, RequestFormat, as_mapping, cap_value, walk,
                               walk_messages, walk_parts, walk_text, walk_tools)

if TYPE_CHECKING:
    from ..instrument.call import Call
    from ..instrument.endpoint import ChunkReader


# -- usage (on the background worker) --------------------------------------------------------


class Counts:
    """Anthropic's usage counts as reported; the last reported value of each wins."""

    __slots__ = ("input", "cache_read", "cache_write", "write_5m", "write_1h", "output",
                 "thinking", "web_search", "tier", "iterations")

    def __init__(self) -> None:
        self.input = self.cache_read = self.cache_write = None
        self.write_5m = self.write_1h = self.output = self.thinking = self.web_search = None
        self.tier = None
        self.iterations: Any = None

    def update(self, usage: Any) -> None:
        """Take one `usage` object (an SDK object or its JSON)."""
        for attr, key in (
            ("input", "input_tokens"),
            ("cache_read", "cache_read_input_tokens"),
            ("cache_write", "cache_creation_input_tokens"),
            ("output", "output_tokens"),
        ):
            value = count(field(usage, key))
            if value is not None:
                setattr(self, attr, value)
        split = field(usage, "cache_creation")
        if split is not None:
            self.write_5m = count(field(split, "ephemeral_5m_input_tokens"))
            self.write_1h = count(field(split, "ephemeral_1h_input_tokens"))
        thinking = count(field(field(usage, "output_tokens_details"), "thinking_tokens"))
        if thinking is not None:
            self.thinking = thinking
        searches = count(field(field(usage, "server_tool_use"), "web_search_requests"))
        if searches is not None:
            self.web_search = searches
        tier = field(usage, "service_tier")
        if tier is not None:
            self.tier = text(tier)
        iterations = field(usage, "iterations")
        if iterations:
            self.iterations = iterations

    @property
    def cache_writes(self) -> int | None:
        """The tokens written to the cache, all TTLs: as reported, or the sum of the split."""
        if self.cache_write is None and (self.write_5m is not None or self.write_1h is not None):
            return (self.write_5m or 0) + (self.write_1h or 0)
        return self.cache_write

    def usage(self) -> Usage:
        cache_write = self.cache_writes
        usage = Usage(
            input_tokens=add(add(self.input, self.cache_read), cache_write),
            output_tokens=self.output,
            cache_read_tokens=self.cache_read,
            cache_write_tokens=cache_write,
            cache_write_1h_tokens=self.write_1h,
            reasoning_tokens=self.thinking,
        )
        if self.iterations and isinstance(self.iterations, (list, tuple)):
            usage = _with_iterations(usage, self.iterations)
        return usage

    def apply(self, call: Call) -> None:
        call.usage = self.usage()
        if self.web_search is not None:
            call.web_search_requests = self.web_search
        if self.tier is not None:
            call.service_tier = self.tier


#: The fields of one iteration's usage that are summed, as `Usage` counts.
_SUMMED = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens")


def _iteration_usage(item: Any) -> Usage:
    counts = Counts()
    counts.update(item)
    counts.iterations = None
    return counts.usage()


def _with_iterations(top: Usage, iterations: Iterable[Any]) -> Usage:
    """The billed usage of a call with `usage.iterations`: the top-level counts (or the sum of
    the `message` iterations, if larger) plus every `compaction` iteration."""
    messages: dict[str, int] = {}
    compactions: dict[str, int] = {}
    for item in iterations:
        kind = field(item, "type")
        into = messages if kind == "message" else compactions if kind == "compaction" else None
        if into is None:  # another model's iteration (advisor, fallback): not this model's usage
            continue
        counted = _iteration_usage(item)
        for name in _SUMMED:
            value = getattr(counted, name)
            if value is not None:
                into[name] = into.get(name, 0) + value
    if not compactions and not messages:
        return top
    values = {}
    for name in _SUMMED:
        base = getattr(top, name)
        if messages.get(name) is not None and (base is None or messages[name] > base):
            base = messages[name]
        extra = compactions.get(name)
        values[name] = base if extra is None else (base or 0) + extra
    return Usage(
        input_tokens=values["input_tokens"],
        output_tokens=values["output_tokens"],
        cache_read_tokens=values["cache_read_tokens"],
        cache_write_tokens=values["cache_write_tokens"],
        cache_write_1h_tokens=values["cache_write_1h_tokens"],
        reasoning_tokens=top.reasoning_tokens,
    )


def read_usage(call: Call, usage: Any) -> None:
    """A deferred `usage` object (a `UsageReader`)."""
    counts = Counts()
    counts.update(usage)
    counts.apply(call)


def read_usages(call: Call, usages: Iterable[Any]) -> None:
    """A stream's `usage` objects in order (a `UsageReader`): the last value of each count wins."""
    counts = Counts()
    for usage in usages:
        counts.update(usage)
    counts.apply(call)


# -- messages and stream events (on the caller's thread) -------------------------------------


def count_tool_uses(content: Any) -> int:
    """The tool calls of a message's content blocks."""
    tool_uses = 0
    if isinstance(content, (list, tuple)):
        for block in content:
            if mapping(block).get("type") == "tool_use":
                tool_uses += 1
    return tool_uses


def read_response(call: Call, response: Any) -> Mapping[str, Any]:
    """A message (an SDK object or its JSON): the model, tool calls and stop reason now, the
    `usage` object deferred. Returns the message's fields."""
    values = mapping(response)
    model = values.get("model")
    if type(model) is str:
        call.model = model
    usage = values.get("usage")
    if usage is not None:
        call.defer_usage(read_usage, usage)
    call.tool_calls = count_tool_uses(values.get("content"))
    call.finish_reason = text(values.get("stop_reason"))
    return values


def stream_reader(call: Call) -> ChunkReader:
    """Message stream events: the first content delta is the first token; message_start names
    the model; the usage objects of message_start and message_delta are kept (a few hundred
    bytes) and read on the worker."""
    usages: list[Any] = []
    call.tool_calls = 0

    def read(event: Any) -> bool:
        kind = getattr(event, "type", None)
        if kind == "content_block_delta":
            if call.first_token_ns is None:
                call.mark_first_token()
        elif kind == "message_start":  # read as far as it goes: a malformed event never faults
            message = getattr(event, "message", None)
            model = getattr(message, "model", None)
            if type(model) is str:
                call.model = model
            usages.append(getattr(message, "usage", None))
            call.defer_usage(read_usages, usages)
        elif kind == "message_delta":
            usages.append(getattr(event, "usage", None))
            call.defer_usage(read_usages, usages)
            call.finish_reason = text(getattr(getattr(event, "delta", None), "stop_reason", None))
        elif kind == "content_block_start":
            if mapping(event.content_block).get("type") == "tool_use":
                call.tool_calls += 1
        return True

    return read


# -- request estimates -----------------------------------------------------------------------


def _block(acc: Acc, b: Mapping, depth: int) -> None:
    typ = b.get("type")
    if typ == "text":
        walk_text(acc, b.get("text"))
        if b.get("citations"):
            walk(acc, b.get("citations"), depth + 1)
    elif typ == "image":
        acc.image()
    elif typ == "document":
        src = as_mapping(b.get("source"))
        src_type = src.get("type") if src is not None else None
        if src_type == "text":
            acc.fixed += TOOL_TOKENS
            walk_text(acc, src.get("data"))
        elif src_type == "content":
            acc.fixed += TOOL_TOKENS
            walk_parts(acc, src.get("content"), _block, depth + 1)
        else:  # base64 / url / file PDFs: per page, unknowable
            acc.document()
        for key in ("title", "context"):
            walk_text(acc, b.get(key) if isinstance(b.get(key), str) else None)
    elif typ in ("tool_use", "server_tool_use", "mcp_tool_use"):
        acc.fixed += TOOL_TOKENS
        walk_text(acc, b.get("name") if isinstance(b.get("name"), str) else None)
        walk(acc, b.get("input"), depth + 1)
    elif typ in ("tool_result", "mcp_tool_result"):
        acc.fixed += TOOL_TOKENS
        walk_parts(acc, b.get("content"), _block, depth + 1)
    elif typ == "thinking":
        walk_text(acc, b.get("thinking"))
    elif typ == "container_upload":
        acc.document()
    else:  # redacted_thinking, search_result, web_search_tool_result, ...
        walk(acc, b, depth + 1)


def _builtin_tool_tokens(kind: str) -> int:
    if kind.startswith(("bash", "text_editor", "computer", "memory")):
        return ANTHROPIC_DEFINED_TOOL_TOKENS
    return HOSTED_TOOL_TOKENS  # web_search, web_fetch, code_execution, tool_search, mcp_toolset, ...


def walk_request(acc: Acc, kw: Mapping) -> int | None:
    system = kw.get("system")
    if system is not None:
        walk_parts(acc, system, _block)
    walk_messages(acc, kw.get("messages"), _block)
    walk_tools(acc, kw.get("tools"), _builtin_tool_tokens, TOOLS_SYSTEM_PROMPT_TOKENS)
    servers = kw.get("mcp_servers")
    if isinstance(servers, (list, tuple)):
        for server in servers:
            acc.fixed += HOSTED_TOOL_TOKENS
            walk(acc, server, 1)
    for key in ("output_format", "output_config", "tool_choice"):
        v = as_mapping(kw.get(key))
        if v is not None:
            walk(acc, v, 1)
    return cap_value(kw.get("max_tokens"))  # required by the API; includes the thinking budget


#: `messages.create(...)`, and the Claude bodies of Bedrock InvokeModel. A request without a
#: model is taken for a Claude model of the costlier tokenizer.
MESSAGES = RequestFormat("anthropic messages", walk_request, claude_by_default=True)
