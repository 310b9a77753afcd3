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

Usage (`usage_metadata`), in tollmeter's inclusive convention:

* input = `prompt_token_count` + `tool_use_prompt_token_count`: Google reports the tokens of
  tool results fed back to the model (search results, code execution output, URL context)
  beside the prompt, not inside it (`total_token_count` is the sum of prompt, candidates,
  tool-use prompt and thoughts); they are billed as input.
* output = `candidates_token_count` + `thoughts_token_count`: thinking tokens are reported
  beside the candidates and billed as output; `reasoning_tokens` = thoughts. A reply cut off
  while thinking reports no `candidates_token_count` at all.
* `cached_content_token_count` (explicit or implicit cache hits) is inside
  `prompt_token_count`: it is `cache_read_tokens`, never added again.
* Modality breakdowns (`prompt_tokens_details`, `tool_use_prompt_tokens_details`,
  `candidates_tokens_details`) give `input_audio/image/video_tokens` and
  `output_audio/image_tokens`; a modality not listed is not reported (None). Cached audio,
  image and video tokens (`cache_tokens_details`), which Gemini prices apart, go into
  `units` as genai-prices' `cache_audio_read_tokens` etc., since `Usage` has no field for them.

Streams: every chunk carries `usage_metadata`, cumulative; the last reported value of each
count wins. Time to first token is taken at the first chunk with content parts. The sync stream
is a generator whose request goes out at the first `next()`: a request refused then (429, 400)
is recorded as a failed call, not as a partial stream, as the async stream's is (its request
goes out when it is awaited).

Grounding with Google Search is billed per grounded prompt on Gemini 2.x and older (one per
request that searched, however many queries it ran) and per search query on Gemini 3 and
later (unique, non-empty `web_search_queries`; Google ignores empty ones for billing).
`web_search_requests` holds the billable count under that rule, so that genai-prices'
`web_searches_kcount` ($35 / 1,000 prompts for 2.x, $14 / 1,000 queries for 3.x) prices it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Mapping

from ..events import Usage
from .call import Call
from .endpoint import ChunkReader, Endpoint, Kind
from .fields import add, count, field, text
from .registry import Patch

GEMINI, VERTEX = "google", "google-vertex"

# Vertex AI's `traffic_type` -> the tier names the Gemini API uses (`ServiceTier`).
_TRAFFIC_TIERS = {
    "ON_DEMAND": "standard",
    "ON_DEMAND_PRIORITY": "priority",
    "ON_DEMAND_FLEX": "flex",
    "ON_DEMAND_OFFPEAK": "offpeak",
    "PROVISIONED_THROUGHPUT": "provisioned_throughput",
}


def _mapping(obj: Any) -> Mapping[str, Any]:
    """The fields of an SDK object (snake_case) or a JSON dict (camelCase), read alike by `_get`."""
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return obj
    values = getattr(obj, "__dict__", None)
    return values if isinstance(values, dict) else {}


def _get(values: Mapping[str, Any], snake: str, camel: str | None = None) -> Any:
    value = values.get(snake)
    if value is None and camel is not None:
        value = values.get(camel)
    return value


def _enum_text(value: Any) -> str | None:
    """An SDK enum (`FinishReason.STOP`) or the wire string ("STOP") as the wire string."""
    if value is None:
        return None
    return text(getattr(value, "value", value))


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


# -- usage -----------------------------------------------------------------------------------


def _modalities(details: Any) -> dict[str, int] | None:
    """`[{modality: AUDIO, token_count: 800}, ...]` as {"AUDIO": 800, ...}; None if not reported."""
    if details is None or not isinstance(details, (list, tuple)):
        return None
    out: dict[str, int] = {}
    for item in details:
        values = _mapping(item)
        modality = _enum_text(values.get("modality"))
        tokens = count(_get(values, "token_count", "tokenCount"))
        if modality and tokens is not None:
            modality = modality.upper()
            out[modality] = out.get(modality, 0) + tokens
    return out


def _of(modalities: dict[str, int] | None, modality: str) -> int | None:
    return None if modalities is None else modalities.get(modality)


class _Counts:
    """Gemini's usage counts as reported; the last reported value of each wins (streams).

    `update` takes one `usage_metadata` (snake_case keys: an SDK object's fields, or a JSON
    dict through `_snake_usage`) and says whether anything changed; the modality breakdowns
    are read again only when the counts they break down changed (a stream sends a new list in
    every chunk). Straight-line code: a stream runs it once per chunk on the caller's thread.
    """

    __slots__ = ("prompt", "tool_use", "cached", "candidates", "thoughts", "tier", "input_audio",
                 "input_image", "input_video", "cached_units", "output_audio", "output_image",
                 "input_details", "output_details")

    def __init__(self) -> None:
        self.prompt = self.tool_use = self.cached = self.candidates = self.thoughts = None
        self.tier = self.input_audio = self.input_image = self.input_video = None
        self.cached_units = self.output_audio = self.output_image = None
        self.input_details = self.output_details = False

    def update(self, u: Mapping[str, Any]) -> bool:
        inputs = outputs = False
        value = u.get("prompt_token_count")
        if value is not None and value != self.prompt:
            self.prompt, inputs = value, True
        value = u.get("tool_use_prompt_token_count")
        if value is not None and value != self.tool_use:
            self.tool_use, inputs = value, True
        value = u.get("cached_content_token_count")
        if value is not None and value != self.cached:
            self.cached, inputs = value, True
        value = u.get("candidates_token_count")
        if value is not None and value != self.candidates:
            self.candidates, outputs = value, True
        value = u.get("thoughts_token_count")
        if value is not None and value != self.thoughts:
            self.thoughts, outputs = value, True
        prompt_details = u.get("prompt_tokens_details")
        tool_details = u.get("tool_use_prompt_tokens_details")
        if (prompt_details is not None or tool_details is not None) and (inputs or not self.input_details):
            self.input_details = inputs = True
            prompt_m, tool_m = _modalities(prompt_details), _modalities(tool_details)
            self.input_audio = add(_of(prompt_m, "AUDIO"), _of(tool_m, "AUDIO"))
            self.input_image = add(_of(prompt_m, "IMAGE"), _of(tool_m, "IMAGE"))
            self.input_video = add(_of(prompt_m, "VIDEO"), _of(tool_m, "VIDEO"))
        cache_details = u.get("cache_tokens_details")
        if cache_details is not None and (inputs or self.cached_units is None):
            cache_m = _modalities(cache_details) or {}
            self.cached_units = {key: float(cache_m[m]) for m, key in _CACHED_MODALITY_UNITS if cache_m.get(m)}
            inputs = True
        output_details = u.get("candidates_tokens_details")
        if output_details is not None and (outputs or not self.output_details):
            self.output_details = outputs = True
            output_m = _modalities(output_details)
            self.output_audio = _of(output_m, "AUDIO")
            self.output_image = _of(output_m, "IMAGE")
        tier = u.get("traffic_type")  # Vertex AI
        if tier is not None:
            self.tier = _TRAFFIC_TIERS.get(_enum_text(tier) or "")
        else:
            tier = u.get("service_tier")  # the Gemini API, where reported
            if tier is not None:
                self.tier = _enum_text(tier)
        return inputs or outputs

    def apply(self, call: Call) -> None:
        tool_use, thoughts = count(self.tool_use), count(self.thoughts)
        values = (
            add(count(self.prompt), tool_use),  # input_tokens
            add(count(self.candidates), thoughts),  # output_tokens
            count(self.cached),  # cache_read_tokens
            None,  # cache_write_tokens: Gemini caches are written by caches.create(), not by a call
            None,  # cache_write_1h_tokens
            self.input_audio,
            self.input_image,
            self.input_video,
            tool_use,  # tool_use_prompt_tokens
            thoughts,  # reasoning_tokens
            self.output_audio,
            self.output_image,
        )
        # Positionally: several times cheaper than by keyword, and this runs once per chunk.
        call.usage = Usage(*values) if _USAGE_POSITIONAL else Usage(**dict(zip(_USAGE_ORDER, values)))
        if self.cached_units:
            call.units = self.cached_units
        if self.tier is not None:
            call.service_tier = self.tier


_USAGE_ORDER = (
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens",
    "input_audio_tokens", "input_image_tokens", "input_video_tokens", "tool_use_prompt_tokens",
    "reasoning_tokens", "output_audio_tokens", "output_image_tokens",
)
_USAGE_POSITIONAL = tuple(f.name for f in dataclasses.fields(Usage))[: len(_USAGE_ORDER)] == _USAGE_ORDER

#: usage_metadata's keys: the SDK's field names and the JSON (camelCase) names.
_USAGE_KEYS = (
    ("prompt_token_count", "promptTokenCount"),
    ("tool_use_prompt_token_count", "toolUsePromptTokenCount"),
    ("cached_content_token_count", "cachedContentTokenCount"),
    ("candidates_token_count", "candidatesTokenCount"),
    ("thoughts_token_count", "thoughtsTokenCount"),
    ("prompt_tokens_details", "promptTokensDetails"),
    ("tool_use_prompt_tokens_details", "toolUsePromptTokensDetails"),
    ("cache_tokens_details", "cacheTokensDetails"),
    ("candidates_tokens_details", "candidatesTokensDetails"),
    ("traffic_type", "trafficType"),
    ("service_tier", "serviceTier"),
)


def _snake_usage(usage: Any) -> Mapping[str, Any]:
    """A usage_metadata as `_Counts.update` reads it: SDK fields as they are, JSON renamed."""
    if isinstance(usage, dict):
        return {snake: _get(usage, snake, camel) for snake, camel in _USAGE_KEYS}
    return _mapping(usage)


# Cached tokens of a modality Gemini prices apart -> genai-prices usage key.
_CACHED_MODALITY_UNITS = (
    ("AUDIO", "cache_audio_read_tokens"),
    ("IMAGE", "cache_image_read_tokens"),
    ("VIDEO", "cache_video_read_tokens"),
)


# -- grounding -------------------------------------------------------------------------------

_GENERATION = re.compile(r"gemini-(\d+)")


def _bills_per_query(model: str | None) -> bool:
    """Gemini 3 and later bill Google Search grounding per query; 2.x and older per prompt."""
    match = _GENERATION.search(model or "")
    return match is None or int(match.group(1)) >= 3


def _web_searches(groundings: Any, model: str | None) -> int | None:
    """The billable Google Search count of one response's grounding metadata (one per
    candidate); None when no candidate reports web search queries."""
    reported = False
    queries_total = 0
    grounded = False
    for grounding in groundings:
        queries = _get(_mapping(grounding), "web_search_queries", "webSearchQueries")
        if not isinstance(queries, (list, tuple)):
            continue
        reported = True
        unique = {q.strip() for q in queries if isinstance(q, str) and q.strip()}
        queries_total += len(unique)
        grounded = grounded or bool(unique)
    if not reported:
        return None
    if _bills_per_query(model):
        return queries_total
    return 1 if grounded else 0


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

    def start(self, call: Call, instance: Any, args: tuple, kwargs: Mapping[str, Any]) -> dict | None:
        call.provider = _provider(call, getattr(instance, "_api_client", None))
        call.request_model = _model_id(kwargs.get("model"))
        return None

    def read_response(self, call: Call, response: Any) -> None:
        values = _mapping(response)
        if not isinstance(response, dict) and values.get("usage_metadata") is None \
                and values.get("candidates") is None:
            # `config.should_return_http_response`: the caller gets the raw body only.
            body = field(values.get("sdk_http_response"), "body")
            if isinstance(body, str) and body:
                values = _mapping(json.loads(body))
        _read_generate(call, values)


def _read_generate(call: Call, values: Mapping[str, Any]) -> None:
    model = _get(values, "model_version", "modelVersion")
    if isinstance(model, str) and model:
        call.model = model
    response_id = _get(values, "response_id", "responseId")
    if isinstance(response_id, str) and response_id:
        call.request_id = response_id
    usage = _get(values, "usage_metadata", "usageMetadata")
    if usage is not None:
        counts = _Counts()
        counts.update(_snake_usage(usage))
        counts.apply(call)
    candidates = values.get("candidates")
    if not isinstance(candidates, (list, tuple)):
        candidates = ()
    tool_calls = 0
    groundings = []
    for candidate in candidates:
        cv = _mapping(candidate)
        parts = _mapping(cv.get("content")).get("parts")
        for part in parts if isinstance(parts, (list, tuple)) else ():
            if _get(_mapping(part), "function_call", "functionCall") is not None:
                tool_calls += 1
        grounding = _get(cv, "grounding_metadata", "groundingMetadata")
        if grounding is not None:
            groundings.append(grounding)
    call.tool_calls = tool_calls
    if candidates:
        call.finish_reason = _enum_text(_get(_mapping(candidates[0]), "finish_reason", "finishReason"))
    else:  # a blocked prompt: no candidates, the reason is in the prompt feedback
        feedback = _mapping(_get(values, "prompt_feedback", "promptFeedback"))
        call.finish_reason = _enum_text(_get(feedback, "block_reason", "blockReason"))
    if groundings:
        call.web_search_requests = _web_searches(groundings, call.model or call.request_model)


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
        """Per chunk (a `GenerateContentResponse`), on the caller's thread: only fields that
        are set are looked at; usage is converted only when its counts changed."""
        counts = _Counts()
        groundings: dict[int, Any] = {}
        call.tool_calls = 0

        def read(chunk: Any) -> bool:
            values = chunk.__dict__
            candidates = values.get("candidates")
            if candidates:
                for position, candidate in enumerate(candidates):
                    cv = candidate.__dict__
                    content = cv.get("content")
                    if content is not None:
                        parts = content.parts
                        if parts:
                            if call.first_token_ns is None:
                                call.mark_first_token()
                            for part in parts:
                                if part.function_call is not None:
                                    call.tool_calls += 1
                    reason = cv.get("finish_reason")
                    if reason is not None and position == 0:
                        call.finish_reason = _enum_text(reason)
                    grounding = cv.get("grounding_metadata")
                    if grounding is not None:  # rare: once, near the end of a grounded stream
                        index = cv.get("index")
                        groundings[index if isinstance(index, int) else position] = grounding
                        call.web_search_requests = _web_searches(
                            groundings.values(), values.get("model_version") or call.request_model)
            usage = values.get("usage_metadata")
            if usage is not None and counts.update(usage.__dict__):
                counts.apply(call)
            if call.request_id is None:
                response_id = values.get("response_id")
                if response_id:
                    call.request_id = response_id
                model = values.get("model_version")
                if model:
                    call.model = model
            return True

        return read


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
        values = _mapping(response)
        if not isinstance(response, dict) or "body" in values:  # the SDK's HttpResponse: JSON text
            body = values.get("body")
            values = _mapping(json.loads(body)) if isinstance(body, str) and body else {}
        usage = _mapping(_get(values, "usage_metadata", "usageMetadata"))
        tokens = count(_get(usage, "prompt_token_count", "promptTokenCount"))
        if tokens is None:  # Vertex `predict`: a token count per embedded input
            predictions = values.get("predictions")
            for prediction in predictions if isinstance(predictions, (list, tuple)) else ():
                statistics = _mapping(_mapping(_mapping(prediction).get("embeddings")).get("statistics"))
                tokens = add(tokens, count(_get(statistics, "token_count", "tokenCount")))
        # The Gemini API spells it promptTokenDetails for embeddings, promptTokensDetails elsewhere.
        details = _modalities(_get(usage, "prompt_tokens_details", "promptTokensDetails")
                              or _get(usage, "prompt_token_details", "promptTokenDetails"))
        call.usage = Usage(
            input_tokens=tokens,
            input_audio_tokens=_of(details, "AUDIO"),
            input_image_tokens=_of(details, "IMAGE"),
            input_video_tokens=_of(details, "VIDEO"),
        )
        tier = _enum_text(_get(usage, "traffic_type", "trafficType"))
        if tier is not None:
            call.service_tier = _TRAFFIC_TIERS.get(tier)
        characters = count(_get(_mapping(values.get("metadata")), "billable_character_count",
                                "billableCharacterCount"))
        if characters is not None:
            call.units = {"input_characters": float(characters)}


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
