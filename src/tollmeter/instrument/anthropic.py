"""The `anthropic` SDK: Messages (`create`, `parse`, `stream`), also under `beta`.

`messages.stream()` returns a manager whose request starts on `__enter__` and whose
`MessageStream` reads a raw SSE stream; the raw stream is proxied so that `text_stream`,
`get_final_message()` and `until_done()` work unchanged. The Bedrock, Vertex and Foundry
clients share these resource classes and are attributed by client class. Responses and stream
events are read by the Messages format (`formats.anthropic_messages`).
"""

from __future__ import annotations

from typing import Any

import anthropic

from ..formats import anthropic_messages
from .call import Call
from .endpoint import ChunkReader, Streaming
from .registry import Patch
from .stainless import StainlessEndpoint, lifecycle_patches, read_request_id
from .streams import observe_stream, start_on_enter

# Client class name fragment -> provider, for the cloud clients sharing the Messages resource
# (each a vendor's own API: no gateway between).
_CLIENT_PROVIDERS = (("Bedrock", "aws"), ("AWS", "aws"), ("Vertex", "google-vertex"), ("Foundry", "azure"))
_by_client_type: dict[type, str] = {}


class Messages(StainlessEndpoint):
    sdk = anthropic
    default_provider = "anthropic"
    name = "messages"
    request_id_header = "request-id"
    request_format = anthropic_messages.MESSAGES

    def provider_of(self, instance: Any, call: Call) -> tuple[str, bool]:
        client_type = type(getattr(instance, "_client", None))
        provider = _by_client_type.get(client_type)
        if provider is None:
            name = client_type.__name__
            provider = _by_client_type[client_type] = next((p for f, p in _CLIENT_PROVIDERS if f in name), "")
        return (provider, False) if provider else super().provider_of(instance, call)

    def read_response(self, call: Call, response: Any) -> None:
        anthropic_messages.read_response(call, response)
        read_request_id(call, response)

    def stream_reader(self, call: Call) -> ChunkReader:
        return anthropic_messages.stream_reader(call)


class StreamingMessages(Streaming, Messages):
    """`messages.stream()`: the request starts when the manager is entered."""

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
