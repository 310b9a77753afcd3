"""The `mistralai` SDK (Speakeasy-generated): chat, FIM, agents and embeddings.

Where the classes live: 2.x and 3.x keep them under `mistralai.client` (`from mistralai.client
import Mistral`; 3.x also drops `mistralai/__init__.py` and moves from httpx to httpx2), 1.x
directly under `mistralai`. The Azure and Google Cloud clients (`mistralai.azure.client`,
`mistralai.gcp.client`) have chat (and FIM) classes of their own, patched too and attributed
to `azure` and `google-vertex`. A client reaches its resources through lazily created
sub-SDK objects (`client.chat`); the methods are patched on their classes, so clients made
before patching are covered.

Methods return the parsed response, or for `stream*` an `EventStream` / `EventStreamAsync` of
`CompletionEvent`s whose `.data` is the chunk; the last chunk (the one with `finish_reason`)
carries `usage`. Usage is inclusive: `prompt_tokens` counts the cached tokens reported in
`prompt_tokens_details.cached_tokens` (older responses: `prompt_token_details` or
`num_cached_tokens`); `completion_tokens` counts thinking tokens (a split in
`completion_tokens_details.reasoning_tokens` is read when present). `UsageInfo` defaults its
counts to 0 when the API leaves them out, so a count is read only if the response set it.

The parsed response does not keep the HTTP headers: `request_id` (the
`mistral-correlation-id` header) is recorded for streams and errors only.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..formats import openai_chat
from .attribution import provider_for_base_url
from .call import Call
from .endpoint import ChunkReader, Endpoint, Kind
from .fields import field, text
from .registry import Patch
from .streams import close_patches

if TYPE_CHECKING:
    from ..limits.estimate import RequestFormat

REQUEST_ID_HEADER = "mistral-correlation-id"
_UNSET_NAME = "Unset"


def _get(obj: Any, name: str) -> Any:
    """A field the response really carried: None for Speakeasy's UNSET and for a pydantic
    default (a field the body left out), which `UsageInfo` sets to 0 for its counts."""
    value = field(obj, name)
    if value is None or type(value).__name__ == _UNSET_NAME:
        return None
    fields_set = getattr(obj, "__pydantic_fields_set__", None)
    if fields_set is not None and name not in fields_set and name in obj.__dict__:
        return None
    return value


def _read_usage(call: Call, usage: Any) -> None:
    """A deferred `UsageInfo`: the chat format's usage, counting only what the body carried."""
    openai_chat.read_usage(call, usage, _get)


_mistral_urls: dict[str, str] = {}


class MistralEndpoint(Endpoint):
    request_id_header = REQUEST_ID_HEADER

    def __init__(self, name: str, *, streams: bool = False, provider: str = "mistral",
                 request_format: RequestFormat | None = None) -> None:
        self.name = name
        self.streams = streams
        self.provider = provider
        self.request_format = request_format

    def start(self, call: Call, instance: Any, args: tuple, kwargs: Mapping[str, Any]) -> dict | None:
        call.provider = self.provider_of(instance, kwargs, call)
        model = kwargs.get("model")
        call.request_model = model if isinstance(model, str) else None
        call.stream = self.streams
        return None

    def provider_of(self, instance: Any, kwargs: Mapping[str, Any], call: Call) -> str:
        """`mistral` unless the client (or the call's `server_url=`) points elsewhere."""
        if self.provider != "mistral":  # the Azure and Google Cloud clients
            return self.provider
        url = kwargs.get("server_url") or getattr(getattr(instance, "sdk_configuration", None), "server_url", None)
        if not url or not isinstance(url, str):
            return self.provider  # one of the SDK's own servers (global, eu, us)
        provider = _mistral_urls.get(url)
        if provider is None:
            provider = provider_for_base_url(url, self.provider, call.settings.provider_overrides)
            host = (urlsplit(url).hostname or "").lower()
            if provider == "mistral-compatible" and (host == "mistral.ai" or host.endswith(".mistral.ai")):
                provider = "mistral"  # api.eu.mistral.ai, api.us.mistral.ai
            if len(_mistral_urls) > 256:
                _mistral_urls.clear()
            _mistral_urls[url] = provider
        return provider

    #: `EventStream` / `EventStreamAsync` keep their event generator here.
    stream_iterator = "generator"

    def classify(self, result: Any) -> Kind:
        if self.streams and hasattr(result, "generator"):  # an EventStream / EventStreamAsync
            return Kind.STREAM
        return Kind.VALUE

    def read_response(self, call: Call, response: Any) -> None:
        openai_chat.read_response(call, response, _read_usage)

    def stream_reader(self, call: Call) -> ChunkReader:
        """Each `CompletionEvent`'s `.data` is a chat completion chunk."""
        read = openai_chat.chunk_reader(call, usage_reader=_read_usage)
        return lambda event: read(event.data)

    def read_error(self, call: Call, exc: BaseException) -> None:
        status = getattr(exc, "status_code", None)
        if isinstance(status, int):
            call.status_code = status
        headers = getattr(exc, "headers", None)
        if headers is not None and hasattr(headers, "get"):
            request_id = headers.get(REQUEST_ID_HEADER)
            if request_id:
                call.request_id = text(request_id)


def _methods(endpoint: MistralEndpoint, stream_endpoint: MistralEndpoint, *, complete: str = "complete",
             stream: str = "stream") -> list[tuple[str, MistralEndpoint, bool]]:
    return [
        (complete, endpoint, False), (f"{complete}_async", endpoint, True),
        (stream, stream_endpoint, False), (f"{stream}_async", stream_endpoint, True),
    ]


def _family(package: str, provider: str, *, fim: bool, agents: bool, embeddings: bool) -> list[Patch]:
    def make(name: str, streams: bool = False, request_format: RequestFormat | None = None) -> MistralEndpoint:
        return MistralEndpoint(name, streams=streams, provider=provider, request_format=request_format)

    # Chat takes OpenAI's chat request; FIM (`prompt`, `suffix`) and agents (an `agent_id`, its
    # instructions and tools server-side) are estimated by the generic rule.
    chat = openai_chat.CHAT
    targets: list[tuple[str, str, list[tuple[str, MistralEndpoint, bool]]]] = [
        ("chat", "Chat", _methods(make("chat.completions", False, chat), make("chat.completions", True, chat))),
    ]
    if fim:
        targets.append(("fim", "Fim", _methods(make("fim.completions"), make("fim.completions", True))))
    if agents:
        targets.append(("agents", "Agents", _methods(make("agents.completions"), make("agents.completions", True))))
    if embeddings:
        # NB: Mistral names the texts `inputs`, which OpenAI's embedding estimator does not read.
        endpoint = make("embeddings", request_format=openai_chat.EMBEDDINGS)
        targets.append(("embeddings", "Embeddings", [("create", endpoint, False), ("create_async", endpoint, True)]))
    return [
        Patch(f"{package}.{module}", f"{owner}.{method}", endpoint, is_async=is_async)
        for module, owner, methods in targets
        for method, endpoint, is_async in methods
    ] + close_patches(f"{package}.utils.eventstreaming", ("EventStream", "EventStreamAsync"), "generator")


def patches() -> list[Patch]:
    try:
        importlib.import_module("mistralai.client.chat")
    except ImportError:  # mistralai 1.x: the SDK's modules sit directly under `mistralai`
        return (
            _family("mistralai", "mistral", fim=True, agents=True, embeddings=True)
            + _family("mistralai_azure", "azure", fim=False, agents=False, embeddings=False)
            + _family("mistralai_gcp", "google-vertex", fim=True, agents=False, embeddings=False)
        )
    return (
        _family("mistralai.client", "mistral", fim=True, agents=True, embeddings=True)
        + _family("mistralai.azure.client", "azure", fim=False, agents=False, embeddings=False)
        + _family("mistralai.gcp.client", "google-vertex", fim=True, agents=False, embeddings=False)
    )
