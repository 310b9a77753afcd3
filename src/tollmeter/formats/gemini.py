"""Google's generate_content and embed_content format (google-genai, on the Gemini API and Vertex
AI). A payload is the SDK's object (snake_case fields) or the JSON of a raw body (camelCase):
both are read alike.

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
count wins. Time to first token is taken at the first chunk with content parts.

Grounding with Google Search is billed per grounded prompt on Gemini 2.x and older (one per
request that searched, however many queries it ran) and per search query on Gemini 3 and
later (unique, non-empty `web_search_queries`; Google ignores empty ones for billing).
`web_search_requests` holds the billable count under that rule, so that genai-prices'
`web_searches_kcount` ($35 / 1,000 prompts for 2.x, $14 / 1,000 queries for 3.x) prices it.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any, Mapping

from ..events import Usage
from ..instrument.fields import add, count, mapping, text
from ..limits.estimate import (HOSTED_TOOL_TOKENS, PER_MESSAGE_TOKENS, STORED_CONTEXT_TOKENS, TOOL_TOKENS,
                               Acc, RequestFormat, as_mapping, cap_value, choice_count, member, text_tokens,
                               walk, walk_generic, walk_items, walk_text)

if TYPE_CHECKING:
    from ..instrument.call import Call
    from ..instrument.endpoint import ChunkReader

# Vertex AI's `traffic_type` -> the tier names the Gemini API uses (`ServiceTier`).
_TRAFFIC_TIERS = {
    "ON_DEMAND": "standard",
    "ON_DEMAND_PRIORITY": "priority",
    "ON_DEMAND_FLEX": "flex",
    "ON_DEMAND_OFFPEAK": "offpeak",
    "PROVISIONED_THROUGHPUT": "provisioned_throughput",
}


def _get(values: Mapping[str, Any], snake: str, camel: str | None = None) -> Any:
    """A field of an SDK object's fields (snake_case) or of a JSON dict (camelCase)."""
    value = values.get(snake)
    if value is None and camel is not None:
        value = values.get(camel)
    return value


def _enum_text(value: Any) -> str | None:
    """An SDK enum (`FinishReason.STOP`) or the wire string ("STOP") as the wire string."""
    if value is None:
        return None
    return text(getattr(value, "value", value))


# -- usage -----------------------------------------------------------------------------------


def _modalities(details: Any) -> dict[str, int] | None:
    """`[{modality: AUDIO, token_count: 800}, ...]` as {"AUDIO": 800, ...}; None if not reported."""
    if details is None or not isinstance(details, (list, tuple)):
        return None
    out: dict[str, int] = {}
    for item in details:
        values = mapping(item)
        modality = _enum_text(values.get("modality"))
        tokens = count(_get(values, "token_count", "tokenCount"))
        if modality and tokens is not None:
            modality = modality.upper()
            out[modality] = out.get(modality, 0) + tokens
    return out


def _of(modalities: dict[str, int] | None, modality: str) -> int | None:
    return None if modalities is None else modalities.get(modality)


class Counts:
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
        # Positionally: several times cheaper than by keyword.
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
    """A usage_metadata as `Counts.update` reads it: SDK fields as they are, JSON renamed."""
    if isinstance(usage, dict):
        return {snake: _get(usage, snake, camel) for snake, camel in _USAGE_KEYS}
    return mapping(usage)


# Cached tokens of a modality Gemini prices apart -> genai-prices usage key.
_CACHED_MODALITY_UNITS = (
    ("AUDIO", "cache_audio_read_tokens"),
    ("IMAGE", "cache_image_read_tokens"),
    ("VIDEO", "cache_video_read_tokens"),
)


def read_usage(call: Call, usage: Any) -> None:
    """A deferred `usage_metadata` (a `UsageReader`)."""
    counts = Counts()
    counts.update(_snake_usage(usage))
    counts.apply(call)


def _apply_counts(call: Call, counts: Counts) -> None:
    counts.apply(call)


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
        queries = _get(mapping(grounding), "web_search_queries", "webSearchQueries")
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


# -- generate_content (on the caller's thread) -----------------------------------------------


def read_response(call: Call, response: Any) -> None:
    """One generate_content response (an SDK object or its JSON): the model, response id, tool
    calls, finish reason and billable web searches now, `usage_metadata` deferred."""
    values = mapping(response)
    model = _get(values, "model_version", "modelVersion")
    if isinstance(model, str) and model:
        call.model = model
    response_id = _get(values, "response_id", "responseId")
    if isinstance(response_id, str) and response_id:
        call.request_id = response_id
    usage = _get(values, "usage_metadata", "usageMetadata")
    if usage is not None:
        call.defer_usage(read_usage, usage)
    candidates = values.get("candidates")
    if not isinstance(candidates, (list, tuple)):
        candidates = ()
    tool_calls = 0
    groundings = []
    for candidate in candidates:
        cv = mapping(candidate)
        parts = mapping(cv.get("content")).get("parts")
        for part in parts if isinstance(parts, (list, tuple)) else ():
            if _get(mapping(part), "function_call", "functionCall") is not None:
                tool_calls += 1
        grounding = _get(cv, "grounding_metadata", "groundingMetadata")
        if grounding is not None:
            groundings.append(grounding)
    call.tool_calls = tool_calls
    if candidates:
        call.finish_reason = _enum_text(_get(mapping(candidates[0]), "finish_reason", "finishReason"))
    else:  # a blocked prompt: no candidates, the reason is in the prompt feedback
        feedback = mapping(_get(values, "prompt_feedback", "promptFeedback"))
        call.finish_reason = _enum_text(_get(feedback, "block_reason", "blockReason"))
    if groundings:
        call.web_search_requests = _web_searches(groundings, call.model or call.request_model)


def stream_reader(call: Call) -> ChunkReader:
    """Per chunk (a `GenerateContentResponse`): only fields that are set are looked at; the
    usage counts are merged as they come and turned into `Usage` on the worker."""
    counts = Counts()
    call.defer_usage(_apply_counts, counts)
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
        if usage is not None:
            counts.update(usage.__dict__)
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


def read_embeddings(call: Call, values: Mapping[str, Any]) -> None:
    """An embedding response's JSON: `batchEmbedContents` / `embedContent` (Gemini API) or
    `predict` (Vertex AI: a token count per embedded input, billable characters)."""
    usage = mapping(_get(values, "usage_metadata", "usageMetadata"))
    tokens = count(_get(usage, "prompt_token_count", "promptTokenCount"))
    if tokens is None:  # Vertex `predict`: a token count per embedded input
        predictions = values.get("predictions")
        for prediction in predictions if isinstance(predictions, (list, tuple)) else ():
            statistics = mapping(mapping(mapping(prediction).get("embeddings")).get("statistics"))
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
    characters = count(_get(mapping(values.get("metadata")), "billable_character_count",
                            "billableCharacterCount"))
    if characters is not None:
        call.units = {"input_characters": float(characters)}


# -- request estimates -----------------------------------------------------------------------


def _part(acc: Acc, part: Any) -> None:
    if type(part) is str:
        acc.text += text_tokens(part)
        return
    p = as_mapping(part)
    if p is None:
        walk(acc, part, 2)
        return
    if "uri" in p and "text" not in p:  # an uploaded types.File given as a part
        acc.media(p.get("mime_type", p.get("mimeType")))
        return
    for k, v in p.items():
        if v is None or k in (
            "thought",
            "thought_signature",
            "thoughtSignature",
            "video_metadata",
            "videoMetadata",
            "media_resolution",
            "mediaResolution",
        ):
            continue
        if k == "text":
            walk_text(acc, v)
        elif k in ("inline_data", "inlineData", "file_data", "fileData"):
            blob = as_mapping(v)
            mime = blob.get("mime_type", blob.get("mimeType")) if blob is not None else None
            data = blob.get("data") if blob is not None else None
            if type(mime) is str and mime.startswith("text/") and isinstance(data, (bytes, str)):
                acc.fixed += (len(data) * 2 + 2) // 3  # <= 1 token per 1.5 bytes
            else:
                acc.media(mime)
        else:  # function_call, function_response, executable_code, code_execution_result
            walk(acc, v, 2)


def _contents(acc: Acc, contents: Any) -> None:
    if contents is None:
        return
    items = contents if isinstance(contents, (list, tuple)) else [contents]
    acc.fixed += PER_MESSAGE_TOKENS
    for m in walk_items(acc, items):
        parts = m.get("parts")
        if parts is not None or "role" in m:
            acc.fixed += PER_MESSAGE_TOKENS
            for part in parts if isinstance(parts, (list, tuple)) else [parts] if parts else []:
                _part(acc, part)
        else:
            _part(acc, m)


def _tools(acc: Acc, tools: Any) -> None:
    if tools is None:
        return
    for tool in tools if isinstance(tools, (list, tuple)) else [tools]:
        acc.fixed += TOOL_TOKENS
        m = as_mapping(tool)
        if m is None:
            walk(acc, tool, 1)  # a Python function, an MCP session, ...
            continue
        for k, v in m.items():
            if v is None:
                continue
            if k in ("function_declarations", "functionDeclarations"):
                walk(acc, v, 1)
            else:  # google_search, code_execution, url_context, retrieval, file_search, ...
                acc.fixed += HOSTED_TOOL_TOKENS
                walk(acc, v, 1)


def walk_request(acc: Acc, kw: Mapping) -> int | None:
    _contents(acc, kw.get("contents"))
    config = kw.get("config")
    if config is None or isinstance(config, (str, int, float, list, tuple)):
        return None
    if not isinstance(config, Mapping) and not hasattr(config, "max_output_tokens"):
        m = as_mapping(config)  # neither a dict nor a config object: maybe another pydantic object
        if m is None:
            return None
        config = m
    system = member(config, "system_instruction", "systemInstruction")
    if system is not None:
        _contents(acc, system)
    _tools(acc, member(config, "tools"))
    for key, alt in (
        ("response_schema", "responseSchema"),
        ("response_json_schema", "responseJsonSchema"),
    ):
        schema = member(config, key, alt)
        if schema is not None:
            walk(acc, schema, 1)
    if type(member(config, "cached_content", "cachedContent")) is str:
        acc.fixed += STORED_CONTEXT_TOKENS
    acc.choices = choice_count(member(config, "candidate_count", "candidateCount"))
    return cap_value(member(config, "max_output_tokens", "maxOutputTokens"))


#: `models.generate_content(...)` (the SDK's keyword arguments: `contents`, `config`).
GENERATE_CONTENT = RequestFormat("gemini generate_content", walk_request)
#: The JSON body of an embedding request (`requests` / `instances` / `contents`): every string
#: in it; no output.
EMBED_CONTENT = RequestFormat("gemini embed_content", walk_generic, embeds=True)
