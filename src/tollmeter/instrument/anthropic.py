"""The `anthropic` SDK: Messages (`create`, `parse`, `stream`), also under `beta`.

`messages.stream()` returns a manager whose request starts on `__enter__` and whose
`MessageStream` reads a raw SSE stream; the raw stream is proxied so that `text_stream`,
`get_final_message()` and `until_done()` work unchanged. The Bedrock, Vertex and Foundry
clients share these resource classes and are attributed by client class.

Usage: Anthropic's `input_tokens` excludes cache reads and writes; the inclusive input is
their sum. In streams, message_start carries the first counts and message_delta the final
ones: for each count the last value reported wins.
"""

from __future__ import annotations

from typing import Any, Mapping

import anthropic

from ..events import Usage
from .call import Call
from .endpoint import ChunkReader, Kind
from .fields import add, count, field, text
from .registry import Patch
from .stainless import StainlessEndpoint, lifecycle_patches
from .streams import observe_stream, start_on_enter

# Client class name fragment -> provider, for the cloud clients sharing the Messages resource.
_CLIENT_PROVIDERS = (("Bedrock", "aws"), ("AWS", "aws"), ("Vertex", "google-vertex"), ("Foundry", "azure"))
_by_client_type: dict[type, str] = {}


class _Counts:
    """Anthropic's usage counts as reported; the last reported value of each wins."""

    __slots__ = ("input", "cache_read", "cache_write", "write_5m", "write_1h", "output",
                 "thinking", "web_search", "tier")

    def __init__(self) -> None:
        self.input = self.cache_read = self.cache_write = None
        self.write_5m = self.write_1h = self.output = self.thinking = self.web_search = None
        self.tier = None

    def update(self, usage: Any) -> None:
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

    def apply(self, call: Call) -> None:
        cache_write = self.cache_write
        if cache_write is None and (self.write_5m is not None or self.write_1h is not None):
            cache_write = (self.write_5m or 0) + (self.write_1h or 0)
        call.usage = Usage(
            input_tokens=add(add(self.input, self.cache_read), cache_write),
            output_tokens=self.output,
            cache_read_tokens=self.cache_read,
            cache_write_tokens=cache_write,
            cache_write_1h_tokens=self.write_1h,
            reasoning_tokens=self.thinking,
        )
        if self.web_search is not None:
            call.web_search_requests = self.web_search
        if self.tier is not None:
            call.service_tier = self.tier


def _count_tool_uses(content: Any) -> int:
    return sum(1 for block in content or () if field(block, "type") == "tool_use")


class Messages(StainlessEndpoint):
    sdk = anthropic
    default_provider = "anthropic"
    name = "messages"
    request_id_header = "request-id"

    def provider_of(self, instance: Any, call: Call) -> str:
        client_type = type(getattr(instance, "_client", None))
        provider = _by_client_type.get(client_type)
        if provider is None:
            name = client_type.__name__
            provider = _by_client_type[client_type] = next((p for f, p in _CLIENT_PROVIDERS if f in name), "")
        return provider or super().provider_of(instance, call)

    def read_response(self, call: Call, response: Any) -> None:
        model = field(response, "model")
        if isinstance(model, str):
            call.model = model
        request_id = field(response, "_request_id")
        if isinstance(request_id, str):
            call.request_id = request_id
        usage = field(response, "usage")
        if usage is not None:
            counts = _Counts()
            counts.update(usage)
            counts.apply(call)
        call.tool_calls = _count_tool_uses(field(response, "content"))
        call.finish_reason = text(field(response, "stop_reason"))

    def stream_reader(self, call: Call) -> ChunkReader:
        counts = _Counts()
        call.tool_calls = 0

        def read(event: Any) -> bool:
            kind = event.type
            if kind == "content_block_delta":
                if call.first_token_ns is None:
                    call.mark_first_token()
            elif kind == "message_start":
                message = event.message
                call.model = message.model
                counts.update(message.usage)
                counts.apply(call)
            elif kind == "message_delta":
                counts.update(event.usage)
                counts.apply(call)
                call.finish_reason = text(event.delta.stop_reason)
            elif kind == "content_block_start":
                if field(event.content_block, "type") == "tool_use":
                    call.tool_calls += 1
            return True

        return read


class StreamingMessages(Messages):
    """`messages.stream()`: the request starts when the manager is entered."""

    def start(self, call: Call, instance: Any, args: tuple, kwargs: Mapping[str, Any]) -> dict | None:
        super().start(call, instance, args, kwargs)
        call.stream = True
        return None

    def classify(self, result: Any) -> Kind:
        return Kind.CUSTOM

    def observe_result(self, call: Call, manager: Any) -> Any:
        # The manager keeps its request (a callable, or a coroutine for the async manager) in a
        # private attribute named after its class: `_MessageStreamManager__api_request`, ...
        attribute = next(name for name in vars(manager) if name.endswith("__api_request"))
        return start_on_enter(call, manager, attribute, _observe_raw_stream)


def _observe_raw_stream(call: Call, raw_stream: Any) -> Any:
    """The raw event stream the manager's `MessageStream` reads: observed in place."""
    return observe_stream(raw_stream, call)


_MESSAGES, _STREAMING = Messages(), StreamingMessages()


def patches() -> list[Patch]:
    # The Bedrock and Vertex beta resources copy the first-party methods when their module is
    # imported: patch them first, so that they copy the originals and are patched on their own.
    modules = (
        "anthropic.lib.bedrock._beta_messages",
        "anthropic.lib.vertex._beta_messages",
        "anthropic.resources.messages.messages",
        "anthropic.resources.beta.messages.messages",
    )
    out = []
    for module in modules:
        for owner, is_async in (("Messages", False), ("AsyncMessages", True)):
            out.append(Patch(module, f"{owner}.create", _MESSAGES, is_async=is_async))
            out.append(Patch(module, f"{owner}.parse", _MESSAGES, is_async=is_async))
            # stream() is a plain function in both clients: it returns a manager.
            out.append(Patch(module, f"{owner}.stream", _STREAMING))
    return out + lifecycle_patches("anthropic")
