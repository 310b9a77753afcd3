"""The `google-genai` SDK (`from google import genai`): generate_content and embed_content, on
the Gemini Developer API (provider "google") and Vertex AI ("google-vertex").

One event per HTTP request. `models.generate_content()` can send several requests in one call:
automatic function calling (Python callables as tools) answers each function call with a new
request, and automatic continuation follows `continuation_token`s. Every request goes through
the private `Models._generate_content` / `_generate_content_stream` (and their `AsyncModels`
twins), so those are what is patched: one event per request, with that request's own usage
(the SDK's merged response and its cross-hop usage sums are never read). Chats and every
public helper go through them too. Embeddings are patched one level lower, on the API
client's request method, because the SDK drops the usage of the Gemini API's embedding
responses (2.x keeps none, 3.x keeps `promptTokenCount` only): the response body is read.

Responses, stream chunks and usage (`usage_metadata`, grounding searches, modalities) are read by
the Gemini format (`formats.gemini`). The sync stream is a generator whose request goes out at
the first `next()`: a request refused then (429, 400) is recorded as a failed call, not as a
partial stream, as the async stream's is (its request goes out when it is awaited).
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from ..formats import gemini
from .call import Call
from .endpoint import ChunkReader, Endpoint, Kind
from .fields import field, mapping
from .registry import Patch

GEMINI, VERTEX = "google", "google-vertex"


# -- attribution -----------------------------------------------------------------------------


def _provider(call: Call, api_client: Any) -> str:
    """Vertex AI or the Gemini API, as the client is set up (`vertexai=True` or not).

    A custom base URL (a gateway in front of Google) keeps that attribution, since it is Google
    that bills the calls; `MeterConfig.provider_overrides` can still name another provider.
    """
    provider = VERTEX if getattr(api_client, "vertexai", None) else GEMINI
    overrides = call.settings.provider_overrides
    if overrides:
        options = getattr(api_client, "_http_options", None)
        base_url = getattr(options, "base_url", None)
        if base_url:
            base_url = str(base_url)
            for prefix, name in overrides.items():
                if base_url.startswith(prefix):
                    return name
    return provider


_model_ids: dict[str, str] = {}


def _model_id(model: Any) -> str | None:
    """The model id in a model resource name: "models/gemini-2.5-flash",
    "publishers/google/models/…", "projects/p/locations/l/publishers/google/models/…" and
    Vertex's "google/…" all name "gemini-2.5-flash", the id prices are kept under. Tuned
    models ("tunedModels/…") and endpoints are left as they are."""
    if not isinstance(model, str):
        return None
    known = _model_ids.get(model)
    if known is not None:
        return known
    name = model
    if name.startswith("models/") or "/models/" in name:
        name = name[name.rfind("models/") + len("models/"):]
    elif name.startswith("google/"):
        name = name[len("google/"):]
    if len(_model_ids) > 1024:
        _model_ids.clear()
    _model_ids[model] = name or model
    return name or model


# -- generate_content ------------------------------------------------------------------------


class _GoogleEndpoint(Endpoint):
    def read_error(self, call: Call, exc: BaseException) -> None:
        # errors.APIError (ClientError 4xx, ServerError 5xx): `code` is the HTTP status, or the
        # code of an error event inside a stream. Google's errors carry no request id.
        code = getattr(exc, "code", None)
        if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599:
            call.status_code = code
            return
        super().read_error(call, exc)


class GenerateContent(_GoogleEndpoint):
    """`Models._generate_content` (and `AsyncModels`'): one request, one response."""

    name = "generate_content"
    request_format = gemini.GENERATE_CONTENT

    def start(self, call: Call, instance: Any, args: tuple, kwargs: Mapping[str, Any]) -> dict | None:
        call.provider = _provider(call, getattr(instance, "_api_client", None))
        call.request_model = _model_id(kwargs.get("model"))
        return None

    def read_response(self, call: Call, response: Any) -> None:
        values = mapping(response)
        if not isinstance(response, dict) and values.get("usage_metadata") is None \
                and values.get("candidates") is None:
            # `config.should_return_http_response`: the caller gets the raw body only.
            body = field(values.get("sdk_http_response"), "body")
            if isinstance(body, str) and body:
                values = mapping(json.loads(body))
        gemini.read_response(call, values)


class GenerateContentStream(GenerateContent):
    """`Models._generate_content_stream`: a generator (sync) or, awaited, an async generator."""

    def start(self, call: Call, instance: Any, args: tuple, kwargs: Mapping[str, Any]) -> dict | None:
        super().start(call, instance, args, kwargs)
        call.stream = True
        return None

    def classify(self, result: Any) -> Kind:
        if hasattr(result, "__anext__"):
            return Kind.ASYNC_GENERATOR  # the request was sent (and an HTTP error raised) when awaited
        if hasattr(result, "__next__"):
            # A generator whose request goes out at the first next(): a refusal then (429, 400)
            # is a failed call, not a partial stream (the observer knows no chunk came yet).
            return Kind.GENERATOR
        return Kind.VALUE

    def stream_reader(self, call: Call) -> ChunkReader:
        return gemini.stream_reader(call)


# -- embed_content ---------------------------------------------------------------------------


def _embedding_path(path: Any) -> bool:
    if type(path) is not str:
        return False
    return ":batchEmbedContents" in path or ":embedContent" in path or (
        ":predict" in path and "embedding" in path)  # Vertex's text-embedding-* / multimodalembedding


class EmbedContent(_GoogleEndpoint):
    """`BaseApiClient.request` for the embedding methods (`batchEmbedContents`, `embedContent`,
    Vertex `predict` of an embedding model); every other request passes through untouched."""

    name = "embed_content"
    request_format = gemini.EMBED_CONTENT

    def accepts(self, instance: Any, args: tuple, kwargs: Mapping[str, Any]) -> bool:
        return _embedding_path(args[1] if len(args) > 1 else kwargs.get("path"))

    def start(self, call: Call, instance: Any, args: tuple, kwargs: Mapping[str, Any]) -> dict | None:
        call.provider = _provider(call, instance)
        path = args[1] if len(args) > 1 else kwargs.get("path")
        resource = path.split("?", 1)[0].rsplit(":", 1)[0]
        call.request_model = resource.rsplit("/", 1)[-1] or None
        # The request is positional here: what limits estimate is the JSON body about to be sent.
        body = args[2] if len(args) > 2 else kwargs.get("request_dict")
        call.request = body if isinstance(body, Mapping) else {}
        return None

    def read_response(self, call: Call, response: Any) -> None:
        values = mapping(response)
        if not isinstance(response, dict) or "body" in values:  # the SDK's HttpResponse: JSON text
            body = values.get("body")
            values = mapping(json.loads(body)) if isinstance(body, str) and body else {}
        gemini.read_embeddings(call, values)


_GENERATE, _STREAM, _EMBED = GenerateContent(), GenerateContentStream(), EmbedContent()


def patches() -> list[Patch]:
    return [
        Patch("google.genai.models", "Models._generate_content", _GENERATE),
        Patch("google.genai.models", "Models._generate_content_stream", _STREAM),
        Patch("google.genai.models", "AsyncModels._generate_content", _GENERATE, is_async=True),
        Patch("google.genai.models", "AsyncModels._generate_content_stream", _STREAM, is_async=True),
        Patch("google.genai._api_client", "BaseApiClient.request", _EMBED),
        Patch("google.genai._api_client", "BaseApiClient.async_request", _EMBED, is_async=True),
    ]
