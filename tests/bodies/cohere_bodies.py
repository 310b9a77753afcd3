"""Cohere API v2 response bodies for tests, shaped as the API sends them.

Shapes follow the `cohere` SDK's generated types (7.3 and 6.1: `V2ChatResponse`, `Usage`,
`V2ChatStreamResponse`, `EmbedByTypeResponse`, `V2RerankResponse`, `ApiMeta`) and the API
reference:

* Chat usage carries `billed_units` (what Cohere charges) and `tokens` (what the model
  processed, Cohere's prompt template and special tokens included); `cached_tokens`, when
  present, counts cache hits over the processed prompt and may exceed the billed input.
* Chat responses carry no model name; embed and rerank report usage under `meta`.
* Streams are `event: <type>` + `data: {...}` pairs ending with `data: [DONE]`; usage comes on
  the `message-end` event's `delta`.
* Errors are `{"id": ..., "message": ...}` bodies.

Constants are plain dicts (JSON bodies) or str (SSE streams in wire form).
"""

from __future__ import annotations

import json
from typing import Any

MODEL = "command-a-03-2025"

HEADERS: dict[str, str] = {
    "content-type": "application/json",
    "date": "Thu, 26 Nov 2026 12:04:31 GMT",
    "num_chars": "1843",
    "num_tokens": "215",
    "x-debug-trace-id": "2b8f0f6c2a1e9d4b7c3e5a6f8d1b0c9e",
    "x-envoy-upstream-service-time": "512",
}
SSE_HEADERS: dict[str, str] = {**HEADERS, "content-type": "text/event-stream"}


# billed 17 in / 12 out; processed 215 in / 14 out.
CHAT_PLAIN: dict[str, Any] = {
    "id": "c14c80c3-18eb-4519-9460-6c92edd8cfb4",
    "message": {
        "role": "assistant",
        "content": [{"type": "text", "text": "The capital of France is Paris."}],
    },
    "finish_reason": "COMPLETE",
    "usage": {
        "billed_units": {"input_tokens": 17, "output_tokens": 12},
        "tokens": {"input_tokens": 215, "output_tokens": 14},
    },
}

# billed 1450 in / 96 out; processed 2043 in / 98 out; 1792 cached (of the processed prompt).
CHAT_CACHED: dict[str, Any] = {
    "id": "0e2d1f4a-8b5c-4a3e-9d7f-6c1b2a3e4f50",
    "message": {
        "role": "assistant",
        "content": [{"type": "text", "text": "Based on the contract above, the notice period is 30 days."}],
    },
    "finish_reason": "COMPLETE",
    "usage": {
        "billed_units": {"input_tokens": 1450, "output_tokens": 96},
        "tokens": {"input_tokens": 2043, "output_tokens": 98},
        "cached_tokens": 1792,
    },
}

# command-a-reasoning: billed 24 in / 1187 out (thinking included); processed 512 in / 1190 out.
CHAT_THINKING: dict[str, Any] = {
    "id": "7f3a2c1d-5e6b-4f8a-9c0d-1e2f3a4b5c6d",
    "message": {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "The user asks for 17 * 23. 17 * 20 = 340, 17 * 3 = 51, total 391."},
            {"type": "text", "text": "17 × 23 = 391."},
        ],
    },
    "finish_reason": "COMPLETE",
    "usage": {
        "billed_units": {"input_tokens": 24, "output_tokens": 1187},
        "tokens": {"input_tokens": 512, "output_tokens": 1190},
    },
}

# Two tool calls; billed 41 in / 58 out; processed 1368 in / 92 out.
CHAT_TOOL_CALLS: dict[str, Any] = {
    "id": "5a8c7e6f-4d3b-4a21-8f9e-0d1c2b3a4f5e",
    "message": {
        "role": "assistant",
        "tool_plan": "I will look up the weather in Toronto and in Paris.",
        "tool_calls": [
            {
                "id": "get_weather_1byjy32y4hvq",
                "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"location\":\"Toronto\"}"},
            },
            {
                "id": "get_weather_8q2m3r5t7v9x",
                "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"},
            },
        ],
    },
    "finish_reason": "TOOL_CALL",
    "usage": {
        "billed_units": {"input_tokens": 41, "output_tokens": 58},
        "tokens": {"input_tokens": 1368, "output_tokens": 92},
    },
}

# Stopped at max_tokens; billed 12 in / 5 out; processed 207 in / 5 out.
CHAT_MAX_TOKENS: dict[str, Any] = {
    "id": "9b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e",
    "message": {"role": "assistant", "content": [{"type": "text", "text": "Once upon a"}]},
    "finish_reason": "MAX_TOKENS",
    "usage": {
        "billed_units": {"input_tokens": 12, "output_tokens": 5},
        "tokens": {"input_tokens": 207, "output_tokens": 5},
    },
}

# Only processed tokens reported (no billed_units): 215 in / 14 out.
CHAT_TOKENS_ONLY: dict[str, Any] = {
    **CHAT_PLAIN,
    "usage": {"tokens": {"input_tokens": 215, "output_tokens": 14}},
}

# No usage at all.
CHAT_NO_USAGE: dict[str, Any] = {k: v for k, v in CHAT_PLAIN.items() if k != "usage"}


def _sse(events: list[dict[str, Any]]) -> str:
    lines = []
    for event in events:
        lines.append(f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n")
    lines.append("data: [DONE]\n\n")
    return "".join(lines)


_START = {
    "type": "message-start",
    "id": "29f14a5a-11de-4cae-9800-25e4747408ea",
    "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}},
}

# billed 17 in / 9 out; processed 215 in / 11 out.
CHAT_STREAM: str = _sse([
    _START,
    {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}},
    {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "The capital"}}}},
    {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": " of France"}}}},
    {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": " is Paris."}}}},
    {"type": "content-end", "index": 0},
    {"type": "message-end", "delta": {
        "finish_reason": "COMPLETE",
        "usage": {"billed_units": {"input_tokens": 17, "output_tokens": 9},
                  "tokens": {"input_tokens": 215, "output_tokens": 11}},
    }},
])

# Two tool calls; billed 50 in / 26 out; processed 793 in / 61 out; 176 cached.
CHAT_STREAM_TOOL_CALLS: str = _sse([
    _START,
    {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will look up"}}},
    {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": " both cities."}}},
    {"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {
        "id": "get_weather_3v76fs3zjrgq", "type": "function",
        "function": {"name": "get_weather", "arguments": ""}}}}},
    {"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {
        "function": {"arguments": "{\"location\": \"Toronto\"}"}}}}},
    {"type": "tool-call-end", "index": 0},
    {"type": "tool-call-start", "index": 1, "delta": {"message": {"tool_calls": {
        "id": "get_weather_7k2p9w4x1zqm", "type": "function",
        "function": {"name": "get_weather", "arguments": ""}}}}},
    {"type": "tool-call-delta", "index": 1, "delta": {"message": {"tool_calls": {
        "function": {"arguments": "{\"location\": \"Paris\"}"}}}}},
    {"type": "tool-call-end", "index": 1},
    {"type": "message-end", "delta": {
        "finish_reason": "TOOL_CALL",
        "usage": {"billed_units": {"input_tokens": 50, "output_tokens": 26},
                  "tokens": {"input_tokens": 793, "output_tokens": 61}, "cached_tokens": 176},
    }},
])

# The generation failed mid-way: message-end carries an error and the usage so far
# (billed 17 in / 3 out; processed 215 in / 3 out).
CHAT_STREAM_ERROR_END: str = _sse([
    _START,
    {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}},
    {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "The capital"}}}},
    {"type": "message-end", "delta": {
        "finish_reason": "ERROR",
        "error": "internal server error while generating",
        "usage": {"billed_units": {"input_tokens": 17, "output_tokens": 3},
                  "tokens": {"input_tokens": 215, "output_tokens": 3}},
    }},
])

# embed-v4.0 on two texts: billed 2 input tokens.
EMBED: dict[str, Any] = {
    "id": "da6e531f-54c6-4a73-bf92-f60566d8d753",
    "embeddings": {"float": [[0.016296387, -0.008354187, 0.04699707], [-0.0118637085, 0.030731201, -0.02532959]]},
    "texts": ["hello", "goodbye"],
    "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": 2}},
    "response_type": "embeddings_by_type",
}

# embed-v4.0 on one image: billed 1610 image tokens (no input_tokens total reported).
EMBED_IMAGE: dict[str, Any] = {
    "id": "4c9a3e2b-1d0f-4e8a-b7c6-5d4e3f2a1b0c",
    "embeddings": {"float": [[0.0213623, -0.0154419, 0.0335693]]},
    "texts": [],
    "images": [{"width": 512, "height": 512, "format": "png", "bit_depth": 24}],
    "meta": {"api_version": {"version": "2"}, "billed_units": {"image_tokens": 1610}},
    "response_type": "embeddings_by_type",
}

# rerank-v3.5: 1 search unit billed.
RERANK: dict[str, Any] = {
    "id": "07734bd2-2473-4f07-94e1-0d9f0e6843cf",
    "results": [
        {"index": 3, "relevance_score": 0.999071},
        {"index": 4, "relevance_score": 0.7867867},
        {"index": 0, "relevance_score": 0.32713068},
    ],
    "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
}

# rerank over many long documents: 3 search units billed.
RERANK_MANY: dict[str, Any] = {
    **RERANK,
    "id": "1f2e3d4c-5b6a-4978-8c7d-6e5f4a3b2c1d",
    "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 3}},
}

ERROR_429: dict[str, Any] = {
    "id": "f3a1b2c4-d5e6-47f8-9a0b-1c2d3e4f5a6b",
    "message": "You are using a Trial key, which is limited to 20 API calls / minute. "
               "You can continue to use the Trial key for free or upgrade to a Production key with higher rate limits",
}
ERROR_400: dict[str, Any] = {
    "id": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
    "message": "invalid request: model 'command-z' not found, make sure the correct model ID was used",
}
