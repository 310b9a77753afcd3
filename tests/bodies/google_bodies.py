"""Gemini API and Vertex AI response bodies, as the APIs send them, for tests.

JSON bodies are what ``POST .../models/{model}:generateContent`` (Gemini API:
``https://generativelanguage.googleapis.com/v1beta/models/...``; Vertex AI:
``https://{location}-aiplatform.googleapis.com/v1beta1/projects/{p}/locations/{l}/publishers/google/models/...``)
returns; streams are what ``:streamGenerateContent?alt=sse`` returns: one
``data: {json}`` event per chunk, each a complete GenerateContentResponse,
separated by CRLF blank lines as Google's front end sends them. Keys are the
wire's camelCase; the SDK (google-genai 2.x / 3.x) renames them to snake_case.

Shapes follow the SDK's types (``google/genai/types.py``:
GenerateContentResponse, Candidate, GenerateContentResponseUsageMetadata,
ModalityTokenCount, GroundingMetadata, EmbedContentResponse) and the API
reference, with these facts of the live API:

* ``usageMetadata.promptTokenCount`` includes cached tokens
  (``cachedContentTokenCount`` is a subset), but NOT the tool-use prompt
  tokens (``toolUsePromptTokenCount``: search results, code output fed back)
  nor the thinking tokens (``thoughtsTokenCount``), which are reported beside
  ``candidatesTokenCount``: ``totalTokenCount`` = prompt + candidates +
  toolUsePrompt + thoughts.
* Implicit cache hits (Gemini 2.5+) report ``cachedContentTokenCount`` and
  ``cacheTokensDetails``; ``promptTokensDetails`` covers the whole prompt,
  cached part included.
* A reply cut off while the model was still thinking (``MAX_TOKENS``) has no
  ``candidatesTokenCount`` and a content without parts.
* Streams carry ``usageMetadata`` in every chunk, cumulative: the last chunk
  (with ``finishReason``) has the final counts. ``thoughtsTokenCount`` is
  already complete in the first chunk (thinking precedes the answer).
* Every response and every chunk of a stream carries ``modelVersion`` and the
  same ``responseId``; Vertex adds ``createTime`` and ``usageMetadata.trafficType``.
* Grounding with Google Search: ``candidates[].groundingMetadata`` with
  ``webSearchQueries``, ``groundingChunks``, ``groundingSupports`` and
  ``searchEntryPoint``; in a stream it arrives in the last chunk. Gemini 3 may
  list empty queries, which Google does not bill.
* The Gemini API's ``batchEmbedContents`` reports ``usageMetadata`` with
  ``promptTokenCount`` and ``promptTokenDetails`` (sic, not
  ``promptTokensDetails``); google-genai 2.x drops it all, 3.x keeps the count.
  Vertex ``predict`` (text-embedding-005) reports a ``token_count`` per input
  and ``metadata.billableCharacterCount``.
* Errors: ``{"error": {"code", "message", "status", "details"}}`` with the
  HTTP status; in a stream an error can arrive as a ``data:`` event after
  chunks were sent (HTTP 200).
"""

from __future__ import annotations

import json

GEMINI_URL = "https://generativelanguage.googleapis.com"
VERTEX_URL = "https://us-central1-aiplatform.googleapis.com"
VERTEX_EXPRESS_URL = "https://aiplatform.googleapis.com"

HEADERS = {"content-type": "application/json; charset=UTF-8", "vary": "Origin, X-Origin, Referer",
           "server": "scaffolding on HTTPServer2", "server-timing": "gfet4t7; dur=612"}
SSE_HEADERS = {"content-type": "text/event-stream", "vary": "Origin, X-Origin, Referer",
               "server": "scaffolding on HTTPServer2"}

RESPONSE_ID = "VpQuaYjGKd2ZkdUP9s-PmQo"
SIGNATURE = "CtcBAdHtim9vXFwsanuJwmMbCBlBR+lX+awbczMPvClFkj2FCwcks++gzJokc7FHWSuTbz8NFg/8eab67Km9"  # base64, as sent


def sse(*chunks: dict) -> str:
    """The wire form of a stream: one `data:` event per chunk, compact JSON, CRLF framing."""
    return "".join(f"data: {json.dumps(c, separators=(',', ':'))}\r\n\r\n" for c in chunks)


def _text(value: str, finish: str | None = None, **extra) -> dict:
    candidate = {"content": {"parts": [{"text": value}], "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    candidate.update(extra)
    return candidate


def _details(**modalities: int) -> list:
    return [{"modality": m, "tokenCount": n} for m, n in modalities.items()]


# -- generateContent ------------------------------------------------------------------------

# gemini-2.0-flash, no thinking: prompt 8, candidates 12 -> input 8, output 12
PLAIN = {
    "candidates": [_text("The capital of France is Paris.\n", "STOP", avgLogprobs=-0.04273606836795807)],
    "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 12, "totalTokenCount": 20,
                      "promptTokensDetails": _details(TEXT=8), "candidatesTokensDetails": _details(TEXT=12)},
    "modelVersion": "gemini-2.0-flash",
    "responseId": RESPONSE_ID,
}

# gemini-2.5-pro thinking: prompt 25, candidates 180, thoughts 1,021 -> input 25, output 1,201, reasoning 1,021
THINKING = {
    "candidates": [{
        "content": {"parts": [
            {"text": "**Weighing the two routes**\n\nThe user wants the faster option...", "thought": True},
            {"text": "Take the train: it is faster door to door.", "thoughtSignature": SIGNATURE},
        ], "role": "model"},
        "finishReason": "STOP", "index": 0,
    }],
    "usageMetadata": {"promptTokenCount": 25, "candidatesTokenCount": 180, "totalTokenCount": 1226,
                      "promptTokensDetails": _details(TEXT=25), "thoughtsTokenCount": 1021},
    "modelVersion": "gemini-2.5-pro",
    "responseId": RESPONSE_ID,
}

# gemini-2.5-flash implicit cache hit: prompt 12,500 (11,800 cached), candidates 85, thoughts 400
# -> input 12,500, cache_read 11,800, output 485, reasoning 400
CACHED = {
    "candidates": [_text("Section 4.2 limits liability to direct damages.", "STOP")],
    "usageMetadata": {"promptTokenCount": 12500, "candidatesTokenCount": 85, "totalTokenCount": 12985,
                      "cachedContentTokenCount": 11800, "promptTokensDetails": _details(TEXT=12500),
                      "cacheTokensDetails": _details(TEXT=11800), "thoughtsTokenCount": 400},
    "modelVersion": "gemini-2.5-flash",
    "responseId": RESPONSE_ID,
}

# gemini-2.5-flash, two parallel function calls: prompt 96, candidates 36, thoughts 54
# -> input 96, output 90, reasoning 54, 2 tool calls
TOOL_CALLS = {
    "candidates": [{
        "content": {"parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIGNATURE},
            {"functionCall": {"name": "get_weather", "args": {"city": "London"}}},
        ], "role": "model"},
        "finishReason": "STOP", "index": 0,
    }],
    "usageMetadata": {"promptTokenCount": 96, "candidatesTokenCount": 36, "totalTokenCount": 186,
                      "promptTokensDetails": _details(TEXT=96), "thoughtsTokenCount": 54},
    "modelVersion": "gemini-2.5-flash",
    "responseId": RESPONSE_ID,
}


def _grounding(*queries: str) -> dict:
    return {
        "searchEntryPoint": {"renderedContent": "<style>.container{align-items:center}</style><div class=\"container\">"
                                                "<a class=\"chip\" href=\"https://www.google.com/search?q=weather\">"
                                                "weather</a></div>"},
        "groundingChunks": [
            {"web": {"uri": "https://vertexaisearch.cloud.google.com/grounding-api-redirect/AUZIYQF4b", "title": "meteo.fr"}},
            {"web": {"uri": "https://vertexaisearch.cloud.google.com/grounding-api-redirect/AUZIYQH2x", "title": "bbc.com"}},
        ],
        "groundingSupports": [{"segment": {"endIndex": 41, "text": "Paris is sunny today with a high of 24°C."},
                               "groundingChunkIndices": [0, 1], "confidenceScores": [0.93, 0.81]}],
        "webSearchQueries": list(queries),
    }


# gemini-2.5-flash grounded on Google Search, 2 queries run: prompt 12, tool-use prompt 310, candidates 64,
# thoughts 120 -> input 322 (tool_use 310), output 184, reasoning 120, web searches billed: 1 grounded prompt
GROUNDED = {
    "candidates": [_text("Paris is sunny today with a high of 24°C.", "STOP",
                         groundingMetadata=_grounding("weather Paris today", "Paris forecast 24 hours"))],
    "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 64, "totalTokenCount": 506,
                      "promptTokensDetails": _details(TEXT=12), "toolUsePromptTokenCount": 310,
                      "toolUsePromptTokensDetails": _details(TEXT=310), "thoughtsTokenCount": 120},
    "modelVersion": "gemini-2.5-flash",
    "responseId": RESPONSE_ID,
}

# gemini-3-flash-preview grounded: queries "", "weather Paris today", "", "Paris forecast", "weather Paris today"
# -> 2 unique non-empty queries billed; prompt 12, tool-use prompt 280, candidates 58, thoughts 210
# -> input 292, output 268, reasoning 210
GROUNDED_3 = {
    "candidates": [_text("Paris is sunny today with a high of 24°C.", "STOP",
                         groundingMetadata=_grounding("", "weather Paris today", "", "Paris forecast",
                                                      "weather Paris today"))],
    "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 58, "totalTokenCount": 560,
                      "promptTokensDetails": _details(TEXT=12), "toolUsePromptTokenCount": 280,
                      "toolUsePromptTokensDetails": _details(TEXT=280), "thoughtsTokenCount": 210},
    "modelVersion": "gemini-3-flash-preview",
    "responseId": RESPONSE_ID,
}

# gemini-2.5-flash with a Google Search tool that the model chose not to use: no grounding metadata
# -> prompt 14, candidates 9, thoughts 30 -> input 14, output 39, web searches not reported
NOT_GROUNDED = {
    "candidates": [_text("2 + 2 = 4.", "STOP")],
    "usageMetadata": {"promptTokenCount": 14, "candidatesTokenCount": 9, "totalTokenCount": 53,
                      "promptTokensDetails": _details(TEXT=14), "thoughtsTokenCount": 30},
    "modelVersion": "gemini-2.5-flash",
    "responseId": RESPONSE_ID,
}

# gemini-2.5-flash, audio in, part of it from an implicit cache: prompt 1,000 (TEXT 200, AUDIO 800),
# cached 600 (AUDIO 500, TEXT 100), candidates 40 -> input 1,000, audio 800, cache_read 600 (audio 500), output 40
AUDIO_CACHED = {
    "candidates": [_text("The speaker asks for a table for two at eight.", "STOP")],
    "usageMetadata": {"promptTokenCount": 1000, "candidatesTokenCount": 40, "totalTokenCount": 1040,
                      "cachedContentTokenCount": 600, "promptTokensDetails": _details(TEXT=200, AUDIO=800),
                      "cacheTokensDetails": _details(AUDIO=500, TEXT=100),
                      "candidatesTokensDetails": _details(TEXT=40)},
    "modelVersion": "gemini-2.5-flash",
    "responseId": RESPONSE_ID,
}

# gemini-2.5-flash, an image and a video in: prompt 2,163 (TEXT 7, IMAGE 258, VIDEO 1,898), candidates 31
# -> input 2,163, image 258, video 1,898, output 31
VISION = {
    "candidates": [_text("A cat jumps onto the sofa in the video; the photo shows the same cat.", "STOP")],
    "usageMetadata": {"promptTokenCount": 2163, "candidatesTokenCount": 31, "totalTokenCount": 2194,
                      "promptTokensDetails": _details(TEXT=7, IMAGE=258, VIDEO=1898)},
    "modelVersion": "gemini-2.5-flash",
    "responseId": RESPONSE_ID,
}

_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

# gemini-2.5-flash-image, an image out: prompt 9, candidates 1,302 (IMAGE 1,290, TEXT 12)
# -> input 9, output 1,302, output_image 1,290
IMAGE_OUT = {
    "candidates": [{
        "content": {"parts": [{"text": "Here is a banana on a skateboard."},
                              {"inlineData": {"mimeType": "image/png", "data": _PNG}}], "role": "model"},
        "finishReason": "STOP", "index": 0,
    }],
    "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 1302, "totalTokenCount": 1311,
                      "promptTokensDetails": _details(TEXT=9), "candidatesTokensDetails": _details(TEXT=12, IMAGE=1290)},
    "modelVersion": "gemini-2.5-flash-image",
    "responseId": RESPONSE_ID,
}

# gemini-2.5-flash stopped while thinking: prompt 18, thoughts 1,000, no candidatesTokenCount
# -> input 18, output 1,000, reasoning 1,000
MAX_TOKENS_THINKING = {
    "candidates": [{"content": {"role": "model"}, "finishReason": "MAX_TOKENS", "index": 0}],
    "usageMetadata": {"promptTokenCount": 18, "totalTokenCount": 1018, "promptTokensDetails": _details(TEXT=18),
                      "thoughtsTokenCount": 1000},
    "modelVersion": "gemini-2.5-flash",
    "responseId": RESPONSE_ID,
}

# a blocked prompt: no candidates; prompt 11 -> input 11, output not reported, finish "PROHIBITED_CONTENT"
BLOCKED = {
    "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
    "usageMetadata": {"promptTokenCount": 11, "totalTokenCount": 11, "promptTokensDetails": _details(TEXT=11)},
    "modelVersion": "gemini-2.5-flash",
    "responseId": RESPONSE_ID,
}

# gemini-2.5-pro, a long prompt above the 200k tier: prompt 250,000, candidates 2,000, thoughts 1,500
# -> input 250,000, output 3,500, reasoning 1,500
LONG_CONTEXT = {
    "candidates": [_text("The three filings disagree on the 2023 revenue figure.", "STOP")],
    "usageMetadata": {"promptTokenCount": 250000, "candidatesTokenCount": 2000, "totalTokenCount": 253500,
                      "promptTokensDetails": _details(TEXT=250000), "thoughtsTokenCount": 1500},
    "modelVersion": "gemini-2.5-pro",
    "responseId": RESPONSE_ID,
}

# odd usage: a negative prompt count, a detail without a count and one without a modality, a string count
# -> input None (negative dropped), output 7, audio not reported
ODD_USAGE = {
    "candidates": [_text("ok", "STOP")],
    "usageMetadata": {"promptTokenCount": -3, "candidatesTokenCount": "7",
                      "promptTokensDetails": [{"modality": "AUDIO"}, {"tokenCount": 5}]},
    "modelVersion": "gemini-2.5-flash",
    "responseId": RESPONSE_ID,
}

# no usageMetadata, no modelVersion, no responseId at all -> usage not reported
NO_USAGE = {"candidates": [_text("ok", "STOP")]}

# Vertex AI, gemini-2.5-flash: prompt 9, candidates 7, thoughts 212, traffic ON_DEMAND
# -> input 9, output 219, reasoning 212, tier "standard"
VERTEX = {
    "candidates": [_text("Paris.", "STOP")],
    "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 7, "totalTokenCount": 228,
                      "trafficType": "ON_DEMAND", "promptTokensDetails": _details(TEXT=9),
                      "candidatesTokensDetails": _details(TEXT=7), "thoughtsTokenCount": 212},
    "modelVersion": "gemini-2.5-flash",
    "createTime": "2026-11-26T10:41:07.312571Z",
    "responseId": "Yx4naZDQE_mUmecP0rGdsQg",
}

# Vertex AI, gemini-2.5-flash on Flex PayGo with a cache hit: prompt 4,100 (4,000 cached), candidates 20
# -> input 4,100, cache_read 4,000, output 20, tier "flex"
VERTEX_FLEX_CACHED = {
    "candidates": [_text("Yes.", "STOP")],
    "usageMetadata": {"promptTokenCount": 4100, "candidatesTokenCount": 20, "totalTokenCount": 4120,
                      "cachedContentTokenCount": 4000, "trafficType": "ON_DEMAND_FLEX",
                      "promptTokensDetails": _details(TEXT=4100), "cacheTokensDetails": _details(TEXT=4000),
                      "candidatesTokensDetails": _details(TEXT=20)},
    "modelVersion": "gemini-2.5-flash",
    "createTime": "2026-11-26T10:42:51.009126Z",
    "responseId": "mx8naczFNrGGmecPh6Xa6Ag",
}

# -- automatic function calling ---------------------------------------------------------------
# The SDK runs get_weather / get_time itself and sends the results back: one request per step.

# AFC step 1: a function call; prompt 60, candidates 12, thoughts 40 -> input 60, output 52, 1 tool call
AFC_CALL = {
    "candidates": [{"content": {"parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                                           "thoughtSignature": SIGNATURE}], "role": "model"},
                    "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 60, "candidatesTokenCount": 12, "totalTokenCount": 112,
                      "promptTokensDetails": _details(TEXT=60), "thoughtsTokenCount": 40},
    "modelVersion": "gemini-2.5-flash",
    "responseId": "afc-1",
}

# AFC step 2: another function call; prompt 95, candidates 10, thoughts 25 -> input 95, output 35, 1 tool call
AFC_CALL_2 = {
    "candidates": [{"content": {"parts": [{"functionCall": {"name": "get_time", "args": {"city": "Paris"}}}],
                                "role": "model"},
                    "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 95, "candidatesTokenCount": 10, "totalTokenCount": 130,
                      "promptTokensDetails": _details(TEXT=95), "thoughtsTokenCount": 25},
    "modelVersion": "gemini-2.5-flash",
    "responseId": "afc-2",
}

# AFC final answer: prompt 120, candidates 18 -> input 120, output 18, no tool call
AFC_FINAL = {
    "candidates": [_text("It is 24°C and sunny in Paris, and 14:05 there.", "STOP")],
    "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 18, "totalTokenCount": 138,
                      "promptTokensDetails": _details(TEXT=120)},
    "modelVersion": "gemini-2.5-flash",
    "responseId": "afc-3",
}

# -- automatic continuation (google-genai 2.2x+) ------------------------------------------------
# A reply that hits the per-request limit ends with finishReason CONTINUATION and a continuationToken;
# the SDK sends the token back in a new request and merges the replies (summing their usage).

CONTINUATION_TOKEN = "dG9rX3VuYXJ5X2hvcDE="  # base64 of b"tok_unary_hop1"

# hop 1: prompt 120 (40 cached), candidates 50, thoughts 30 -> input 120, cache_read 40, output 80, reasoning 30
CONTINUATION_HOP1 = {
    "candidates": [{"content": {"parts": [{"text": "Chapter one. "}], "role": "model"},
                    "finishReason": "CONTINUATION", "continuationToken": CONTINUATION_TOKEN, "index": 0}],
    "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 50, "totalTokenCount": 200,
                      "cachedContentTokenCount": 40, "thoughtsTokenCount": 30},
    "modelVersion": "gemini-3-flash-preview",
    "responseId": "hop-1",
}

# hop 2: prompt 200, candidates 25 -> input 200, output 25
CONTINUATION_HOP2 = {
    "candidates": [_text("Chapter two. The end.", "STOP")],
    "usageMetadata": {"promptTokenCount": 200, "candidatesTokenCount": 25, "totalTokenCount": 225},
    "modelVersion": "gemini-3-flash-preview",
    "responseId": "hop-2",
}

# -- streams ----------------------------------------------------------------------------------

# gemini-2.0-flash, 3 chunks: prompt 8, candidates 1 -> 5 -> 12 (final) -> input 8, output 12
STREAM_PLAIN = sse(
    {"candidates": [_text("The")], "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 1,
     "totalTokenCount": 9, "promptTokensDetails": _details(TEXT=8)},
     "modelVersion": "gemini-2.0-flash", "responseId": RESPONSE_ID},
    {"candidates": [_text(" capital of France is")], "usageMetadata": {"promptTokenCount": 8,
     "candidatesTokenCount": 5, "totalTokenCount": 13, "promptTokensDetails": _details(TEXT=8)},
     "modelVersion": "gemini-2.0-flash", "responseId": RESPONSE_ID},
    {"candidates": [_text(" Paris.\n", "STOP")], "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 12,
     "totalTokenCount": 20, "promptTokensDetails": _details(TEXT=8), "candidatesTokensDetails": _details(TEXT=12)},
     "modelVersion": "gemini-2.0-flash", "responseId": RESPONSE_ID},
)

# gemini-2.5-flash thinking, 3 chunks: prompt 9, thoughts 603 (from the first chunk), candidates 2 -> 5 -> 8
# -> input 9, output 611, reasoning 603
STREAM_THINKING = sse(
    {"candidates": [_text("The capital")], "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 2,
     "totalTokenCount": 614, "promptTokensDetails": _details(TEXT=9), "thoughtsTokenCount": 603},
     "modelVersion": "gemini-2.5-flash", "responseId": RESPONSE_ID},
    {"candidates": [_text(" of France is")], "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 5,
     "totalTokenCount": 617, "promptTokensDetails": _details(TEXT=9), "thoughtsTokenCount": 603},
     "modelVersion": "gemini-2.5-flash", "responseId": RESPONSE_ID},
    {"candidates": [_text(" Paris.", "STOP")], "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 8,
     "totalTokenCount": 620, "promptTokensDetails": _details(TEXT=9), "thoughtsTokenCount": 603},
     "modelVersion": "gemini-2.5-flash", "responseId": RESPONSE_ID},
)

# gemini-2.5-flash, cache hit, 2 chunks: prompt 12,500 (11,800 cached), candidates 40 -> 85, thoughts 400
# -> input 12,500, cache_read 11,800, output 485, reasoning 400
STREAM_CACHED = sse(
    {"candidates": [_text("Section 4.2 limits")], "usageMetadata": {"promptTokenCount": 12500,
     "candidatesTokenCount": 40, "totalTokenCount": 12940, "cachedContentTokenCount": 11800,
     "promptTokensDetails": _details(TEXT=12500), "cacheTokensDetails": _details(TEXT=11800),
     "thoughtsTokenCount": 400}, "modelVersion": "gemini-2.5-flash", "responseId": RESPONSE_ID},
    {"candidates": [_text(" liability to direct damages.", "STOP")], "usageMetadata": {"promptTokenCount": 12500,
     "candidatesTokenCount": 85, "totalTokenCount": 12985, "cachedContentTokenCount": 11800,
     "promptTokensDetails": _details(TEXT=12500), "cacheTokensDetails": _details(TEXT=11800),
     "thoughtsTokenCount": 400}, "modelVersion": "gemini-2.5-flash", "responseId": RESPONSE_ID},
)

# gemini-2.5-flash, a function call in one chunk: prompt 96, candidates 21, thoughts 54
# -> input 96, output 75, reasoning 54, 1 tool call
STREAM_TOOL_CALL = sse(
    {"candidates": [{"content": {"parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                                            "thoughtSignature": SIGNATURE}], "role": "model"},
                     "finishReason": "STOP", "index": 0}],
     "usageMetadata": {"promptTokenCount": 96, "candidatesTokenCount": 21, "totalTokenCount": 171,
                       "promptTokensDetails": _details(TEXT=96), "thoughtsTokenCount": 54},
     "modelVersion": "gemini-2.5-flash", "responseId": RESPONSE_ID},
)

# gemini-2.5-flash grounded, 2 chunks, grounding metadata in the last: prompt 12, tool-use 310, candidates 30 -> 64,
# thoughts 120 -> input 322 (tool_use 310), output 184, reasoning 120, 1 grounded prompt
STREAM_GROUNDED = sse(
    {"candidates": [_text("Paris is sunny today")], "usageMetadata": {"promptTokenCount": 12,
     "candidatesTokenCount": 30, "totalTokenCount": 472, "promptTokensDetails": _details(TEXT=12),
     "toolUsePromptTokenCount": 310, "thoughtsTokenCount": 120},
     "modelVersion": "gemini-2.5-flash", "responseId": RESPONSE_ID},
    {"candidates": [_text(" with a high of 24°C.", "STOP",
                          groundingMetadata=_grounding("weather Paris today", "Paris forecast 24 hours"))],
     "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 64, "totalTokenCount": 506,
                       "promptTokensDetails": _details(TEXT=12), "toolUsePromptTokenCount": 310,
                       "toolUsePromptTokensDetails": _details(TEXT=310), "thoughtsTokenCount": 120},
     "modelVersion": "gemini-2.5-flash", "responseId": RESPONSE_ID},
)

# gemini-2.5-flash, an error event after the first chunk (HTTP 200): prompt 9, candidates 2, thoughts 603 so far
STREAM_ERROR = sse(
    {"candidates": [_text("The capital")], "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 2,
     "totalTokenCount": 614, "promptTokensDetails": _details(TEXT=9), "thoughtsTokenCount": 603},
     "modelVersion": "gemini-2.5-flash", "responseId": RESPONSE_ID},
    {"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}},
)

# AFC streamed, step 1: a function call; prompt 60, candidates 12, thoughts 40 -> input 60, output 52
STREAM_AFC_CALL = sse(AFC_CALL)
# AFC streamed, final: prompt 120, candidates 4 -> 18 -> input 120, output 18
STREAM_AFC_FINAL = sse(
    {"candidates": [_text("It is 24°C")], "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 4,
     "totalTokenCount": 124, "promptTokensDetails": _details(TEXT=120)},
     "modelVersion": "gemini-2.5-flash", "responseId": "afc-3"},
    {"candidates": [_text(" and sunny in Paris.", "STOP")], "usageMetadata": {"promptTokenCount": 120,
     "candidatesTokenCount": 18, "totalTokenCount": 138, "promptTokensDetails": _details(TEXT=120)},
     "modelVersion": "gemini-2.5-flash", "responseId": "afc-3"},
)

# -- embeddings -------------------------------------------------------------------------------

# Gemini API batchEmbedContents, 2 texts: promptTokenCount 9 (promptTokenDetails TEXT 9) -> input 9
EMBED = {
    "embeddings": [{"values": [0.0123, -0.0456, 0.0789]}, {"values": [-0.0321, 0.0654, -0.0987]}],
    "usageMetadata": {"promptTokenCount": 9, "promptTokenDetails": _details(TEXT=9)},
}

# Gemini API batchEmbedContents of gemini-embedding-2, an image: 258 image tokens -> input 258, image 258
EMBED_IMAGE = {
    "embeddings": [{"values": [0.0111, 0.0222, -0.0333]}],
    "usageMetadata": {"promptTokenCount": 258, "promptTokenDetails": _details(IMAGE=258)},
}

# Gemini API batchEmbedContents as it was before usage was reported -> usage not reported
EMBED_NO_USAGE = {"embeddings": [{"values": [0.0123, -0.0456, 0.0789]}]}

# Vertex AI embedContent of gemini-embedding-001: promptTokenCount 4, ON_DEMAND -> input 4, tier standard
EMBED_VERTEX = {
    "embedding": {"values": [0.0123, -0.0456, 0.0789]},
    "usageMetadata": {"promptTokenCount": 4, "trafficType": "ON_DEMAND"},
    "truncated": False,
}

# Vertex AI predict of text-embedding-005, 2 texts: token counts 6 + 3, 41 billable characters
# -> input 9, units input_characters 41
EMBED_VERTEX_PREDICT = {
    "predictions": [
        {"embeddings": {"statistics": {"truncated": False, "token_count": 6}, "values": [0.0123, -0.0456]}},
        {"embeddings": {"statistics": {"truncated": False, "token_count": 3}, "values": [-0.0321, 0.0654]}},
    ],
    "metadata": {"billableCharacterCount": 41},
}

# Vertex AI predict of gemini-embedding-001 (google-genai 2.x), 1 text: token count 4, 5 billable characters
# -> input 4, units input_characters 5
EMBED_VERTEX_PREDICT_ONE = {
    "predictions": [{"embeddings": {"statistics": {"truncated": False, "token_count": 4},
                                    "values": [0.0123, -0.0456]}}],
    "metadata": {"billableCharacterCount": 5},
}

# -- errors -----------------------------------------------------------------------------------

# 429 from the Gemini API -> errors.ClientError, code 429, nothing billed
ERROR_429 = {
    "error": {
        "code": 429,
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
             "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_paid_tier_input_token_count",
                             "quotaId": "GenerateContentPaidTierInputTokensPerModelPerMinute",
                             "quotaDimensions": {"location": "global", "model": "gemini-2.5-pro"},
                             "quotaValue": "2000000"}]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "23s"},
        ],
    }
}

# 503 from the Gemini API -> errors.ServerError, code 503
ERROR_503 = {"error": {"code": 503, "message": "The model is overloaded. Please try again later.",
                       "status": "UNAVAILABLE"}}

# 400 from the Gemini API (bad argument) -> errors.ClientError, code 400
ERROR_400 = {"error": {"code": 400, "message": "* GenerateContentRequest.contents: contents is not specified\n",
                       "status": "INVALID_ARGUMENT"}}
