"""Response bodies and headers of gateways and of the provider quirks, as they are sent.

Gateways pass the upstream's body through (OpenAI's chat completion, Anthropic's message) and
add headers of their own:

* LiteLLM proxy (docs.litellm.ai/docs/proxy/response_headers): ``x-litellm-call-id``,
  ``x-litellm-model-id``, ``x-litellm-model-api-base`` (the deployment's upstream URL),
  ``x-litellm-version``, ``x-litellm-response-cost`` (USD, a float; not on streams: headers
  go out before the stream is generated), ``x-litellm-key-spend``, latency and retry headers,
  and the upstream's own headers prefixed ``llm_provider-``. The body is the OpenAI chat
  completion LiteLLM builds (``tool_calls`` / ``function_call`` null, ``prompt_tokens_details``
  with ``audio_tokens: null``).
* Cloudflare AI Gateway: ``cf-aig-cache-status``, ``cf-aig-log-id``, ``cf-aig-event-id``.
* Portkey (portkey.ai/docs/api-reference/inference-api/response-schema):
  ``x-portkey-trace-id``, ``x-portkey-retry-attempt-count``, ``x-portkey-cache-status``,
  ``x-portkey-last-used-option-index``; it answers in OpenAI's format for every upstream.
* Helicone: ``helicone-id``.

None of Cloudflare, Portkey, Helicone or Vercel reports a cost per response (Cloudflare's
``cf-aig-custom-cost`` is a request header), so their calls are priced by tollmeter.

Quirks:

* Gemini's OpenAI-compatible endpoint (generativelanguage.googleapis.com/v1beta/openai) counts
  thinking tokens in ``total_tokens`` only: 20 prompt + 151 completion + 382 thinking = 553.
* OpenRouter ends a stream whose upstream failed mid-way with a chunk carrying ``error`` (and
  ``finish_reason: "error"``) after the usage chunk was sent.
* Anthropic context management (``compact-2026-01-12``): ``usage.iterations`` lists each
  sampling; the top-level counts are the ``message`` iterations', a ``compaction`` iteration
  is billed on top (docs example: 180,000 in / 3,500 out compacting, 23,000 / 1,000 answering).
"""

from __future__ import annotations

import json
from typing import Any, Dict, List

CALL_ID = "4d0a9a3e-6d6b-4c1b-9d57-3f1f8d2b7c11"

# gpt-4o through a LiteLLM proxy: 14 prompt, 9 completion; gpt-4o at $2.50 / $10 per million:
# 14 * 2.5e-6 + 9 * 1e-5 = 0.000125, which the proxy reports in x-litellm-response-cost.
LITELLM_CHAT: Dict[str, Any] = {
    "id": "chatcmpl-CQx8hT2mN6bVz1Lp4Rk9Wd0Yf3Gs",
    "created": 1795700000,
    "model": "gpt-4o-2024-08-06",
    "object": "chat.completion",
    "system_fingerprint": "fp_cbf1785567",
    "choices": [
        {
            "finish_reason": "stop",
            "index": 0,
            "message": {
                "content": "Paris is the capital of France.",
                "role": "assistant",
                "tool_calls": None,
                "function_call": None,
                "annotations": [],
            },
            "provider_specific_fields": {},
        }
    ],
    "usage": {
        "completion_tokens": 9,
        "prompt_tokens": 14,
        "total_tokens": 23,
        "completion_tokens_details": {"accepted_prediction_tokens": 0, "audio_tokens": 0, "reasoning_tokens": 0,
                                      "rejected_prediction_tokens": 0},
        "prompt_tokens_details": {"audio_tokens": None, "cached_tokens": 0},
    },
    "service_tier": "default",
}

LITELLM_HEADERS: Dict[str, str] = {
    "content-type": "application/json",
    "x-litellm-call-id": CALL_ID,
    "x-litellm-model-id": "7f6c2b4e9d0a1c3e5b7d9f1a2c4e6b8d0f2a4c6e8b0d2f4a6c8e0b2d4f6a8c0e",
    "x-litellm-model-api-base": "https://api.openai.com",
    "x-litellm-model-group": "gpt-4o",
    "x-litellm-version": "1.77.5",
    "x-litellm-response-cost": "0.000125",
    "x-litellm-key-spend": "0.0213",
    "x-litellm-response-duration-ms": "612.417",
    "x-litellm-overhead-duration-ms": "4.211",
    "x-litellm-attempted-retries": "0",
    "x-litellm-attempted-fallbacks": "0",
    "llm_provider-x-request-id": "req_3c9d1f7a2b8e4c6d0a5f1e9b7c3d2a8f",
    "llm_provider-openai-processing-ms": "585",
}

# claude-sonnet-4-5 through the proxy's Anthropic route (/v1/messages): 1,200 in (1,024 of them
# cache reads), 85 out; the proxy prices it: 176 * 3e-6 + 1024 * 3e-7 + 85 * 1.5e-5 = 0.0021102.
LITELLM_MESSAGE: Dict[str, Any] = {
    "id": "msg_01XbT7qLm3Nc8Vz2Pw5Rk1Yd",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Paris is the capital of France."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 176, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1024,
              "output_tokens": 85},
}

LITELLM_MESSAGE_HEADERS: Dict[str, str] = {
    **LITELLM_HEADERS,
    "x-litellm-model-api-base": "https://api.anthropic.com",
    "x-litellm-model-group": "claude-sonnet-4-5",
    "x-litellm-response-cost": "0.0021102",
}


def _j(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _sse(payloads: List[Dict[str, Any]], *, done: bool = True) -> str:
    return "".join(f"data: {_j(p)}\n\n" for p in payloads) + ("data: [DONE]\n\n" if done else "")


def _chunk(model: str, delta: Dict[str, Any], finish: str | None = None, **extra: Any) -> Dict[str, Any]:
    return {"id": "chatcmpl-CQx9aB3cD4eF5gH6iJ7kL8mN9oP", "object": "chat.completion.chunk", "created": 1795700001,
            "model": model, "system_fingerprint": "fp_cbf1785567",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}


# A LiteLLM proxy stream (the caller asked for usage): 14 prompt, 7 completion.
LITELLM_STREAM: str = _sse([
    _chunk("gpt-4o-2024-08-06", {"role": "assistant", "content": ""}),
    *[_chunk("gpt-4o-2024-08-06", {"content": t}) for t in ["Paris", " is", " the", " capital", "."]],
    _chunk("gpt-4o-2024-08-06", {}, "stop"),
    {"id": "chatcmpl-CQx9aB3cD4eF5gH6iJ7kL8mN9oP", "object": "chat.completion.chunk", "created": 1795700001,
     "model": "gpt-4o-2024-08-06", "choices": [],
     "usage": {"completion_tokens": 7, "prompt_tokens": 14, "total_tokens": 21}},
])
LITELLM_STREAM_HEADERS: Dict[str, str] = {
    k: v for k, v in LITELLM_HEADERS.items() if k not in ("x-litellm-response-cost", "content-type")
} | {"content-type": "text/event-stream"}

# OpenAI's body, as Cloudflare AI Gateway / Portkey / Helicone / a company proxy pass it on:
# gpt-4o-mini, 19 prompt, 10 completion.
OPENAI_CHAT: Dict[str, Any] = {
    "id": "chatcmpl-CQxAq1W2e3R4t5Y6u7I8o9P0aSd",
    "object": "chat.completion",
    "created": 1795700010,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris.", "refusal": None,
                                         "annotations": []},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
              "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
    "service_tier": "default",
    "system_fingerprint": "fp_560af6e559",
}
CLOUDFLARE_HEADERS = {"content-type": "application/json", "cf-aig-cache-status": "MISS",
                      "cf-aig-log-id": "01JQ7ZC8Y3V9M2K5T6N4P8R1WS", "cf-aig-event-id": "c4f0c1e2-8a7b-4d3c-9e1f-2b6a5d4c3e21",
                      "x-request-id": "req_8b2e4f6a1c3d5e7f9a0b2c4d6e8f0a1b"}
CLOUDFLARE_STREAM: str = _sse([
    _chunk("gpt-4o-mini-2024-07-18", {"role": "assistant", "content": ""}),
    _chunk("gpt-4o-mini-2024-07-18", {"content": "Paris."}),
    _chunk("gpt-4o-mini-2024-07-18", {}, "stop"),
    {"id": "chatcmpl-CQx9aB3cD4eF5gH6iJ7kL8mN9oP", "object": "chat.completion.chunk", "created": 1795700001,
     "model": "gpt-4o-mini-2024-07-18", "choices": [], "system_fingerprint": "fp_560af6e559",
     "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
               "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
               "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                             "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}},
])
CLOUDFLARE_STREAM_NO_USAGE: str = _sse([
    _chunk("gpt-4o-mini-2024-07-18", {"role": "assistant", "content": ""}),
    _chunk("gpt-4o-mini-2024-07-18", {"content": "Paris."}),
    _chunk("gpt-4o-mini-2024-07-18", {}, "stop"),
])

# Portkey in front of Anthropic answers in OpenAI's format: 31 prompt, 12 completion.
PORTKEY_ANTHROPIC_CHAT: Dict[str, Any] = {
    "id": "msg_01Hq4vT9xLm2Zb7Nc0Wk5Rpo",
    "object": "chat.completion",
    "created": 1795700020,
    "model": "claude-sonnet-4-5-20250929",
    "provider": "anthropic",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "logprobs": None,
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 31, "completion_tokens": 12, "total_tokens": 43,
              "prompt_tokens_details": {"cached_tokens": 0}, "cache_read_input_tokens": 0,
              "cache_creation_input_tokens": 0},
}
PORTKEY_HEADERS = {"content-type": "application/json", "x-portkey-trace-id": "7c1f2a3b-4d5e-6f70-8192-a3b4c5d6e7f8",
                   "x-portkey-retry-attempt-count": "0", "x-portkey-cache-status": "DISABLED",
                   "x-portkey-last-used-option-index": "config"}

# Anthropic's message through Helicone (anthropic.helicone.ai): 25 in, 9 out.
HELICONE_MESSAGE: Dict[str, Any] = {
    "id": "msg_01Wd0Yf3GsQx8hT2mN6bVz1L",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5-20251001",
    "content": [{"type": "text", "text": "Paris."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 25, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
              "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
              "output_tokens": 9, "service_tier": "standard"},
}
HELICONE_HEADERS = {"content-type": "application/json", "helicone-id": "5e3b1c7a-9f2d-4e8b-a6c0-1d3f5b7e9a2c",
                    "request-id": "req_011CUx8hT2mN6bVz1Lp4Rk9W"}

# Vercel AI Gateway: "provider/model" ids, the model echoed as asked.
VERCEL_CHAT: Dict[str, Any] = {
    "id": "gen_01K7ZC8Y3V9M2K5T6N4P8R1WSA",
    "object": "chat.completion",
    "created": 1795700030,
    "model": "anthropic/claude-sonnet-4.5",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 40, "completion_tokens": 6, "total_tokens": 46},
}

# A self-hosted open model behind a gateway: never priced from the bundled data.
LLAMA_CHAT: Dict[str, Any] = {
    **OPENAI_CHAT,
    "model": "meta-llama/Llama-3.3-70B-Instruct",
    "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29},
}

# -- Gemini's OpenAI-compatible endpoint -----------------------------------------------------

# gemini-2.5-flash, thinking: 20 prompt, 151 answer, 382 thinking (in the total only).
GEMINI_COMPAT_CHAT: Dict[str, Any] = {
    "choices": [{"finish_reason": "stop", "index": 0,
                 "message": {"content": "Paris is the capital of France.", "role": "assistant"}}],
    "created": 1795700040,
    "id": "mKQsaZ-cN4-kz7IPzsuhqAs",
    "model": "gemini-2.5-flash",
    "object": "chat.completion",
    "usage": {"completion_tokens": 151, "prompt_tokens": 20, "total_tokens": 553},
}
# Where the endpoint also reports the thinking apart (and still outside completion_tokens).
GEMINI_COMPAT_CHAT_DETAILED: Dict[str, Any] = {
    **GEMINI_COMPAT_CHAT,
    "usage": {"completion_tokens": 151, "prompt_tokens": 20, "total_tokens": 553,
              "completion_tokens_details": {"reasoning_tokens": 382}},
}
GEMINI_COMPAT_STREAM: str = _sse([
    {"choices": [{"delta": {"content": "Paris is", "role": "assistant"}, "index": 0}], "created": 1795700041,
     "id": "nKQsaZ-dN5-lz7IPzsuhqAt", "model": "gemini-2.5-flash", "object": "chat.completion.chunk"},
    {"choices": [{"delta": {"content": " the capital of France.", "role": "assistant"}, "finish_reason": "stop",
                  "index": 0}], "created": 1795700041, "id": "nKQsaZ-dN5-lz7IPzsuhqAt", "model": "gemini-2.5-flash",
     "object": "chat.completion.chunk",
     "usage": {"completion_tokens": 151, "prompt_tokens": 20, "total_tokens": 553}},
])

# -- OpenRouter: an error chunk after the usage -----------------------------------------------

_OR = {"id": "gen-1795700050-Zb7Nc0Wk5RHq4vT9xLm2", "provider": "Google", "model": "google/gemini-2.5-pro",
       "object": "chat.completion.chunk", "created": 1795700050}
# 1,210 prompt, 96 completion (64 reasoning), cost 0.0024725, then the upstream failed.
OPENROUTER_STREAM_ERROR: str = ": OPENROUTER PROCESSING\n\n" + _sse([
    {**_OR, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "The"}, "finish_reason": None,
                         "native_finish_reason": None, "logprobs": None}]},
    {**_OR, "choices": [{"index": 0, "delta": {"role": "assistant", "content": " plan"}, "finish_reason": None,
                         "native_finish_reason": None, "logprobs": None}]},
    {**_OR, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None,
                         "native_finish_reason": None, "logprobs": None}],
     "usage": {"prompt_tokens": 1210, "completion_tokens": 96, "total_tokens": 1306, "cost": 0.0024725,
               "is_byok": False, "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
               "completion_tokens_details": {"reasoning_tokens": 64, "image_tokens": 0}}},
    {**_OR, "error": {"code": 502, "message": "Provider returned error",
                      "metadata": {"provider_name": "Google", "raw": "upstream connection reset"}},
     "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error", "native_finish_reason": None,
                  "logprobs": None}]},
], done=False)

# -- Anthropic compaction ---------------------------------------------------------------------

# claude-sonnet-4-6 with context management: the compaction read 180,000 tokens (150,000 of
# them from the cache) and wrote 3,500; the answer read 23,000 (20,000 cache reads, 2,000 cache
# writes) and wrote 1,000.
COMPACTION_ITERATIONS = [
    {"type": "compaction", "input_tokens": 30_000, "cache_read_input_tokens": 150_000,
     "cache_creation_input_tokens": 0, "cache_creation": {"ephemeral_5m_input_tokens": 0,
                                                          "ephemeral_1h_input_tokens": 0},
     "output_tokens": 3_500},
    {"type": "message", "input_tokens": 1_000, "cache_read_input_tokens": 20_000,
     "cache_creation_input_tokens": 2_000, "cache_creation": {"ephemeral_5m_input_tokens": 2_000,
                                                              "ephemeral_1h_input_tokens": 0},
     "output_tokens": 1_000},
]
COMPACTION_MESSAGE: Dict[str, Any] = {
    "id": "msg_01Cp7mQ3xT9vL2nB8kR4wZ6y",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-6",
    "content": [
        {"type": "compaction", "content": "Summary of the conversation: the user is planning a database migration..."},
        {"type": "text", "text": "Based on our conversation so far, the next step is the backfill."},
    ],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "container": None,
    "context_management": {"applied_edits": []},
    "usage": {
        "input_tokens": 1_000, "cache_read_input_tokens": 20_000, "cache_creation_input_tokens": 2_000,
        "cache_creation": {"ephemeral_5m_input_tokens": 2_000, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 1_000, "service_tier": "standard", "inference_geo": "global",
        "iterations": COMPACTION_ITERATIONS,
    },
}


def _event(name: str, data: Dict[str, Any]) -> str:
    return f"event: {name}\ndata: {_j(data)}\n\n"


COMPACTION_STREAM: str = "".join([
    _event("message_start", {"type": "message_start", "message": {
        "id": "msg_01Cp8nR4yU0wM3oC9lS5xA7z", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
        "content": [], "stop_reason": None, "stop_sequence": None, "container": None,
        "usage": {"input_tokens": 30_000, "cache_read_input_tokens": 150_000, "cache_creation_input_tokens": 0,
                  "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                  "output_tokens": 1, "service_tier": "standard", "inference_geo": "global"}}}),
    _event("content_block_start", {"type": "content_block_start", "index": 0,
                                   "content_block": {"type": "compaction", "content": ""}}),
    _event("ping", {"type": "ping"}),
    _event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                   "delta": {"type": "compaction_delta",
                                             "content": "Summary of the conversation: ..."}}),
    _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
    _event("content_block_start", {"type": "content_block_start", "index": 1,
                                   "content_block": {"type": "text", "text": ""}}),
    _event("content_block_delta", {"type": "content_block_delta", "index": 1,
                                   "delta": {"type": "text_delta", "text": "Based on our conversation so far"}}),
    _event("content_block_stop", {"type": "content_block_stop", "index": 1}),
    _event("message_delta", {"type": "message_delta",
                             "delta": {"stop_reason": "end_turn", "stop_sequence": None, "container": None},
                             "usage": {"input_tokens": 1_000, "cache_read_input_tokens": 20_000,
                                       "cache_creation_input_tokens": 2_000, "output_tokens": 1_000,
                                       "iterations": COMPACTION_ITERATIONS}}),
    _event("message_stop", {"type": "message_stop"}),
])
