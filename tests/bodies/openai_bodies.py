"""Realistic OpenAI (and OpenAI-compatible gateway) response bodies for tests.

Every constant is either a plain ``dict`` (a JSON body, serve it with
``route.respond(json=BODY)``) or a ``str`` holding an SSE stream in exact wire
form (serve it with ``route.respond(content=STREAM, headers=SSE_HEADERS)``).

Shapes follow the ``openai`` SDK's generated types (3.57 and 2.54) and captures
of the live API:

* Chat Completions streams carry ``"usage": null`` on every chunk when
  ``stream_options={"include_usage": true}`` and end with a usage-only chunk
  (``"choices": []``) before ``data: [DONE]``; without include_usage there is
  no ``usage`` key at all. Every chunk carries an ``obfuscation`` padding string
  (on by default; ``stream_options.include_obfuscation=false`` removes it).
* Responses API streams are ``event: <type>`` + ``data: {...}`` pairs with a
  ``sequence_number`` and no ``[DONE]`` sentinel.
* ``usage.input_tokens_details.cache_write_tokens`` is required by the SDK's
  ``ResponseUsage`` type (2.x and 3.x), so Responses bodies carry it.
* Legacy completions answer with the snapshot name
  ``gpt-3.5-turbo-instruct:20230824-v2`` when ``gpt-3.5-turbo-instruct`` is
  requested, and carry no ``system_fingerprint``.

Token numbers are consistent: total = prompt + completion (input + output),
cached <= prompt, reasoning <= completion.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from pydantic import BaseModel

__all__ = [
    "CalendarEvent",
    "HEADERS",
    "SSE_HEADERS",
    # chat completions
    "CHAT_PLAIN",
    "CHAT_CACHED",
    "CHAT_REASONING",
    "CHAT_AUDIO",
    "CHAT_PREDICTION",
    "CHAT_TOOL_CALLS",
    "CHAT_FLEX",
    "CHAT_NO_USAGE",
    "CHAT_NULL_USAGE",
    "CHAT_PARSED",
    "CHAT_STREAM_WITH_USAGE",
    "CHAT_STREAM_NO_USAGE",
    "CHAT_STREAM_TOOL_CALLS",
    "CHAT_STREAM_REASONING",
    "CHAT_STREAM_USAGE_ON_LAST_CHOICE",
    "ERROR_429",
    "ERROR_400",
    # responses
    "RESPONSES_PLAIN",
    "RESPONSES_CACHED",
    "RESPONSES_REASONING",
    "RESPONSES_TOOL_CALLS",
    "RESPONSES_WEB_SEARCH",
    "RESPONSES_PARSED",
    "RESPONSES_FLEX",
    "RESPONSES_STREAM",
    "RESPONSES_STREAM_FAILED",
    "RESPONSES_STREAM_ERROR",
    "RESPONSES_STREAM_ERROR_FLAT",
    "RESPONSES_STREAM_INCOMPLETE",
    # legacy completions / embeddings
    "COMPLETIONS_PLAIN",
    "COMPLETIONS_STREAM",
    "EMBEDDINGS",
    "EMBEDDINGS_BASE64",
    # OpenAI-compatible gateways
    "DEEPSEEK_CHAT",
    "DEEPSEEK_REASONER",
    "OPENROUTER_CHAT",
    "OPENROUTER_STREAM",
]


class CalendarEvent(BaseModel):
    """Structured-output model matching CHAT_PARSED / RESPONSES_PARSED."""

    name: str
    date: str


# --------------------------------------------------------------------------- #
# wire helpers (private; the public constants below are plain dict / str)
# --------------------------------------------------------------------------- #


def _j(obj: Any) -> str:
    # The API emits compact JSON with raw UTF-8 in SSE frames.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _sse_data(payloads: List[Dict[str, Any]], *, done: bool = True) -> str:
    """Chat/legacy-completions wire form: ``data: {...}\\n\\n`` ... ``data: [DONE]\\n\\n``."""
    out = "".join(f"data: {_j(p)}\n\n" for p in payloads)
    return out + ("data: [DONE]\n\n" if done else "")


def _sse_events(events: List[Dict[str, Any]]) -> str:
    """Responses wire form: ``event: <type>\\ndata: {...}\\n\\n`` (no [DONE])."""
    return "".join(f"event: {e['type']}\ndata: {_j(e)}\n\n" for e in events)


# Fixed pseudo-random padding strings for the ``obfuscation`` field.
_OBF = ["yZ3", "qF0vB", "m", "Ab8Kc", "X2p", "rT", "gW4sHe", "n9", "Lk1", "dQ7Vu", "s", "Pz6", "oJ2Rm", "E"]


def _chat_stream(
    head: Dict[str, Any],
    choices: List[List[Dict[str, Any]]],
    *,
    usage: Optional[Dict[str, Any]],
    include_usage: bool,
    obfuscation: bool = True,
) -> str:
    """Build an OpenAI chat completions stream.

    ``head`` holds the keys repeated on every chunk (id, object, created, model,
    service_tier, system_fingerprint); ``choices`` the ``choices`` list of each
    chunk. With ``include_usage`` every chunk gets ``"usage": null`` and a
    final ``choices: []`` chunk carries ``usage``.
    """
    payloads: List[Dict[str, Any]] = []
    n = 0
    for ch in choices:
        p = dict(head)
        p["choices"] = ch
        if include_usage:
            p["usage"] = None
        if obfuscation:
            p["obfuscation"] = _OBF[n % len(_OBF)]
        n += 1
        payloads.append(p)
    if include_usage:
        p = dict(head)
        p["choices"] = []
        p["usage"] = usage
        if obfuscation:
            p["obfuscation"] = _OBF[n % len(_OBF)]
        payloads.append(p)
    return _sse_data(payloads)


def _delta(delta: Dict[str, Any], finish_reason: Optional[str] = None) -> List[Dict[str, Any]]:
    return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]


def _chat_usage(
    prompt: int,
    completion: int,
    *,
    cached: int = 0,
    prompt_audio: int = 0,
    reasoning: int = 0,
    completion_audio: int = 0,
    accepted: int = 0,
    rejected: int = 0,
) -> Dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": prompt_audio},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": completion_audio,
            "accepted_prediction_tokens": accepted,
            "rejected_prediction_tokens": rejected,
        },
    }


def _resp_usage(inp: int, out: int, *, cached: int = 0, reasoning: int = 0) -> Dict[str, Any]:
    return {
        "input_tokens": inp,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": inp + out,
    }


def _response(
    *,
    id: str,
    created_at: int,
    model: str,
    output: List[Dict[str, Any]],
    usage: Optional[Dict[str, Any]],
    status: str = "completed",
    completed_at: Optional[int] = None,
    error: Optional[Dict[str, Any]] = None,
    incomplete_details: Optional[Dict[str, Any]] = None,
    instructions: Optional[str] = None,
    max_output_tokens: Optional[int] = None,
    prompt_cache_key: Optional[str] = None,
    reasoning: Optional[Dict[str, Any]] = None,
    service_tier: str = "default",
    text_format: Optional[Dict[str, Any]] = None,
    tools: Optional[List[Dict[str, Any]]] = None,
    extra: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """A full Response object with every key in the order the API sends them."""
    body: Dict[str, Any] = {
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "billing": {"payer": "developer"},
        "completed_at": completed_at,
        "error": error,
        "incomplete_details": incomplete_details,
        "instructions": instructions,
        "max_output_tokens": max_output_tokens,
        "max_tool_calls": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "prompt_cache_key": prompt_cache_key,
        "prompt_cache_retention": None,
        "reasoning": reasoning if reasoning is not None else {"effort": None, "summary": None},
        "safety_identifier": None,
        "service_tier": service_tier,
        "store": True,
        "temperature": 1.0,
        "text": {"format": text_format or {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": tools or [],
        "top_logprobs": 0,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }
    if extra:
        body.update(extra)
    return body


def _message_item(id: str, text: str, *, status: str = "completed", annotations: Optional[list] = None) -> Dict[str, Any]:
    return {
        "id": id,
        "type": "message",
        "status": status,
        "content": [{"type": "output_text", "annotations": annotations or [], "logprobs": [], "text": text}],
        "role": "assistant",
    }


# --------------------------------------------------------------------------- #
# HTTP headers
# --------------------------------------------------------------------------- #

# Response headers of a non-streaming api.openai.com call (no content-length /
# transfer-encoding / connection: the mock computes those).
HEADERS: Dict[str, str] = {
    "date": "Thu, 26 Nov 2026 12:04:31 GMT",
    "content-type": "application/json",
    "access-control-expose-headers": "X-Request-ID",
    "openai-organization": "user-t9x3pkq0wz8vb2m1lr6hd4nc",
    "openai-processing-ms": "612",
    "openai-project": "proj_7QeXn3RkV2bYp9LmTz4HcW1s",
    "openai-version": "2020-10-01",
    "x-envoy-upstream-service-time": "618",
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-limit-tokens": "30000000",
    "x-ratelimit-remaining-requests": "9999",
    "x-ratelimit-remaining-tokens": "29999974",
    "x-ratelimit-reset-requests": "6ms",
    "x-ratelimit-reset-tokens": "0s",
    "x-request-id": "req_5f0c3d9a8e7b4c21a6d2f1e09b8c7a63",
    "x-openai-proxy-wasm": "v0.1",
    "cf-cache-status": "DYNAMIC",
    "strict-transport-security": "max-age=31536000; includeSubDomains; preload",
    "x-content-type-options": "nosniff",
    "server": "cloudflare",
    "cf-ray": "9a51c7e0fb3d2f4e-SJC",
    "alt-svc": 'h3=":443"; ma=86400',
}

# Same for a streaming (SSE) call.
SSE_HEADERS: Dict[str, str] = {
    **HEADERS,
    "content-type": "text/event-stream; charset=utf-8",
    "openai-processing-ms": "187",
    "x-envoy-upstream-service-time": "191",
    "x-request-id": "req_b27e94c1d0a3485f9e6c2d7a1f0b3e58",
}


# --------------------------------------------------------------------------- #
# Chat Completions  (POST /v1/chat/completions)
# --------------------------------------------------------------------------- #

# usage: prompt 19, completion 10, total 29; cached 0, prompt audio 0; reasoning 0, completion audio 0, accepted 0, rejected 0
CHAT_PLAIN: Dict[str, Any] = {
    "id": "chatcmpl-DhQk2v8yNw3TbXc0Lm5pRz1sAe7Gf",
    "object": "chat.completion",
    "created": 1795694671,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello! How can I assist you today?",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": _chat_usage(19, 10),
    "service_tier": "default",
    "system_fingerprint": "fp_07871e2ad8",
}

# usage: prompt 2006 (cached 1920), completion 300, total 2306; reasoning 0
CHAT_CACHED: Dict[str, Any] = {
    "id": "chatcmpl-DhQkA1cR7uJ4mWq9Yx2nVb6tKp0Ls",
    "object": "chat.completion",
    "created": 1795694702,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": (
                    "Based on the contract you provided, the termination clause (Section 14.2) allows either "
                    "party to end the agreement with 30 days' written notice. Early termination by the "
                    "customer within the first year triggers a fee equal to two months of service. "
                    "Notices must be delivered by email and by registered mail to the addresses listed "
                    "in Schedule A."
                ),
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": _chat_usage(2006, 300, cached=1920),
    "service_tier": "default",
    "system_fingerprint": "fp_07871e2ad8",
}

# usage: prompt 26, completion 1484 (reasoning 1344), total 1510; cached 0
CHAT_REASONING: Dict[str, Any] = {
    "id": "chatcmpl-DhQkJ6eT0aZ3pLs8Wd1xCq5nHr9Ub",
    "object": "chat.completion",
    "created": 1795694719,
    "model": "o3-mini-2025-01-31",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": (
                    "There are 17 prime numbers below 60: 2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, "
                    "41, 43, 47, 53 and 59."
                ),
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": _chat_usage(26, 1484, reasoning=1344),
    "service_tier": "default",
    "system_fingerprint": "fp_42bfad963b",
}

# usage: prompt 112 (text 34 + audio 78, cached 0), completion 187 (text 41 + audio 146), total 299
CHAT_AUDIO: Dict[str, Any] = {
    "id": "chatcmpl-DhQkR3gY8bN1vXw6Zt4mKc0pLe2Aq",
    "object": "chat.completion",
    "created": 1795694741,
    "model": "gpt-4o-audio-preview-2025-06-03",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "audio": {
                    "id": "audio_6927a6951c8c8191b0f3e2d47a9c5b18",
                    "data": (
                        "UklGRkQAAABXQVZFZm10IBAAAAABAAEAwF0AAIC7AAACABAAZGF0YSAAAAAAABAAIAAQAAAAEAAg"
                        "ABAAAAAQACAAEAAAABAAIAAQAA=="
                    ),
                    "expires_at": 1795698341,
                    "transcript": "Sure! The golden retriever is a friendly, intelligent and devoted dog breed.",
                },
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 112,
        "completion_tokens": 187,
        "total_tokens": 299,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 78, "text_tokens": 34, "image_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 146,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
            "text_tokens": 41,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_c65e57e4c0",
}

# usage: prompt 341, completion 226 (accepted prediction 156, rejected prediction 24), total 567; reasoning 0
CHAT_PREDICTION: Dict[str, Any] = {
    "id": "chatcmpl-DhQkZ9hU2cM5wYr0Xs3tLb8nJq6Fd",
    "object": "chat.completion",
    "created": 1795694766,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": (
                    "class User {\n  firstName: string = \"\";\n  lastName: string = \"\";\n"
                    "  email: string = \"\";\n}\n\nexport default User;\n"
                ),
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": _chat_usage(341, 226, accepted=156, rejected=24),
    "service_tier": "default",
    "system_fingerprint": "fp_07871e2ad8",
}

# usage: prompt 82, completion 51, total 133; cached 0, reasoning 0
CHAT_TOOL_CALLS: Dict[str, Any] = {
    "id": "chatcmpl-DhQkf4iV7dO0xZs5Yu2pMc9oKr1Ge",
    "object": "chat.completion",
    "created": 1795694788,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_Lq4Zt8WbN2xVc6Hm0Pk3Jr9s",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"location\": \"Paris, France\"}"},
                    },
                    {
                        "id": "call_Rv7Ye1XcO5aTd3Kn8Qm2Ws6u",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"location\": \"Bogotá, Colombia\"}"},
                    },
                ],
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": _chat_usage(82, 51),
    "service_tier": "default",
    "system_fingerprint": "fp_07871e2ad8",
}

# usage: prompt 1130, completion 845 (reasoning 576), total 1975; cached 0; service_tier "flex"
CHAT_FLEX: Dict[str, Any] = {
    "id": "chatcmpl-DhQkm8jW3eP6yAt1Zv4qNd0rLs5Hf",
    "object": "chat.completion",
    "created": 1795694802,
    "model": "o4-mini-2025-04-16",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": (
                    "Summary: Q3 revenue grew 12% year over year, driven by subscription renewals; churn "
                    "fell to 2.1%. Operating margin narrowed slightly because of higher infrastructure spend."
                ),
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": _chat_usage(1130, 845, reasoning=576),
    "service_tier": "flex",
    "system_fingerprint": None,
}

# usage: none -- the body has no "usage" key at all (some OpenAI-compatible gateways)
CHAT_NO_USAGE: Dict[str, Any] = {
    "id": "chatcmpl-DhQks2kX9fQ4zBu7Aw0rOe3sMt6Ig",
    "object": "chat.completion",
    "created": 1795694820,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Sure - here is a haiku about autumn leaves.", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "system_fingerprint": "fp_560af6e559",
}

# usage: null -- "usage": null in the body
CHAT_NULL_USAGE: Dict[str, Any] = {
    "id": "chatcmpl-DhQkx6lY3gR8aCv1Bx4sPf7tNu0Jh",
    "object": "chat.completion",
    "created": 1795694833,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Sure - here is a haiku about autumn leaves.", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": None,
    "system_fingerprint": "fp_560af6e559",
}

# usage: prompt 92, completion 13, total 105; cached 0, reasoning 0 (content parses as CalendarEvent)
CHAT_PARSED: Dict[str, Any] = {
    "id": "chatcmpl-DhQl30mZ7hS2bDw5Cy8tQg1uOv4Ki",
    "object": "chat.completion",
    "created": 1795694851,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "{\"name\":\"Science Fair\",\"date\":\"Friday\"}",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": _chat_usage(92, 13),
    "service_tier": "default",
    "system_fingerprint": "fp_07871e2ad8",
}

_STREAM_HEAD: Dict[str, Any] = {
    "id": "chatcmpl-DhQl94nA1iT6cEx9Dz2uRh5vPw8Lj",
    "object": "chat.completion.chunk",
    "created": 1795694866,
    "model": "gpt-4o-2024-08-06",
    "service_tier": "default",
    "system_fingerprint": "fp_07871e2ad8",
}
_STREAM_CHOICES: List[List[Dict[str, Any]]] = [
    _delta({"role": "assistant", "content": "", "refusal": None}),
    *[_delta({"content": t}) for t in ["The", " capital", " of", " France", " is", " Paris", "."]],
    _delta({}, "stop"),
]

# usage (final choices:[] chunk): prompt 14, completion 7, total 21; cached 0, reasoning 0; other chunks "usage": null
CHAT_STREAM_WITH_USAGE: str = _chat_stream(
    _STREAM_HEAD, _STREAM_CHOICES, usage=_chat_usage(14, 7), include_usage=True
)

# usage: none -- same chunks as CHAT_STREAM_WITH_USAGE sent without include_usage (no usage key, no usage chunk)
CHAT_STREAM_NO_USAGE: str = _chat_stream(_STREAM_HEAD, _STREAM_CHOICES, usage=None, include_usage=False)

_TOOL_HEAD: Dict[str, Any] = {
    "id": "chatcmpl-DhQlF8oB5jU0dFy3Ea6vSi9wQx2Mk",
    "object": "chat.completion.chunk",
    "created": 1795694880,
    "model": "gpt-4o-2024-08-06",
    "service_tier": "default",
    "system_fingerprint": "fp_07871e2ad8",
}


def _tc(index: int, arguments: str) -> List[Dict[str, Any]]:
    return _delta({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]})


# usage (final chunk): prompt 88, completion 56, total 144; cached 0, reasoning 0
CHAT_STREAM_TOOL_CALLS: str = _chat_stream(
    _TOOL_HEAD,
    [
        _delta(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_Tn2Xa6VcP0bYe4Lm8Rk1Hs5q",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ],
                "refusal": None,
            }
        ),
        _tc(0, "{\"lo"),
        _tc(0, "cation"),
        _tc(0, "\": \"Par"),
        _tc(0, "is, France"),
        _tc(0, "\"}"),
        _delta(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "call_Wp9Gd3KzQ7cUf1Nr5Sj0Bt4y",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
        ),
        _tc(1, "{\"lo"),
        _tc(1, "cation"),
        _tc(1, "\": \"Bog"),
        _tc(1, "otá, Colombia"),
        _tc(1, "\"}"),
        _delta({}, "tool_calls"),
    ],
    usage=_chat_usage(88, 56),
    include_usage=True,
)

# usage (final chunk): prompt 1562 (cached 1408), completion 410 (reasoning 320), total 1972
CHAT_STREAM_REASONING: str = _chat_stream(
    {
        "id": "chatcmpl-DhQlL2pC9kV4eGz7Fb0wTj3xRy6Nl",
        "object": "chat.completion.chunk",
        "created": 1795694897,
        "model": "o3-mini-2025-01-31",
        "service_tier": "default",
        "system_fingerprint": "fp_42bfad963b",
    },
    [
        _delta({"role": "assistant", "content": "", "refusal": None}),
        *[
            _delta({"content": t})
            for t in ["The", " invoice", " total", " is", " $", "1", ",", "284", ".", "50", "."]
        ],
        _delta({}, "stop"),
    ],
    usage=_chat_usage(1562, 410, cached=1408, reasoning=320),
    include_usage=True,
)

_DS_HEAD: Dict[str, Any] = {
    "id": "5c1f8e2a-7b3d-4e9f-a6c0-2d8b4f1e7a93",
    "object": "chat.completion.chunk",
    "created": 1795694911,
    "model": "deepseek-chat",
    "system_fingerprint": "fp_ffc7281d48_prod0820_fp8_kvcache",
}

# usage (on the final finish_reason chunk, DeepSeek-style, no choices:[] chunk): prompt 13 (cached 0; prompt_cache_hit_tokens 0, prompt_cache_miss_tokens 13), completion 9, total 22
CHAT_STREAM_USAGE_ON_LAST_CHOICE: str = _sse_data(
    [
        {**_DS_HEAD, "choices": _delta({"role": "assistant", "content": ""}), "usage": None},
        *[
            {**_DS_HEAD, "choices": _delta({"content": t}), "usage": None}
            for t in ["Hello", "!", " How", " can", " I", " help", " you", " today", "?"]
        ],
        {
            **_DS_HEAD,
            "choices": _delta({"content": ""}, "stop"),
            "usage": {
                "prompt_tokens": 13,
                "completion_tokens": 9,
                "total_tokens": 22,
                "prompt_tokens_details": {"cached_tokens": 0},
                "prompt_cache_hit_tokens": 0,
                "prompt_cache_miss_tokens": 13,
            },
        },
    ]
)

# usage: none (HTTP 429 error body; the SDK raises openai.RateLimitError)
ERROR_429: Dict[str, Any] = {
    "error": {
        "message": (
            "Rate limit reached for gpt-4o in organization org-Zq3vN8kLr2TxWb5Yh0Pd6sMf on requests per min "
            "(RPM): Limit 500, Used 500, Requested 1. Please try again in 120ms. Visit "
            "https://platform.openai.com/account/rate-limits to learn more."
        ),
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}

# usage: none (HTTP 400 error body; the SDK raises openai.BadRequestError)
ERROR_400: Dict[str, Any] = {
    "error": {
        "message": (
            "Invalid value: 'bot'. Supported values are: 'system', 'assistant', 'user', 'function', "
            "'tool', and 'developer'."
        ),
        "type": "invalid_request_error",
        "param": "messages[0].role",
        "code": "invalid_value",
    }
}


# --------------------------------------------------------------------------- #
# Responses API  (POST /v1/responses)
# --------------------------------------------------------------------------- #

# usage: input 36 (cached 0, cache_write 0), output 87 (reasoning 0), total 123
RESPONSES_PLAIN: Dict[str, Any] = _response(
    id="resp_0a6f3c2e91d84b7f006927a6f1c3d8819fb4e2a7c05d16e93b",
    created_at=1795694929,
    completed_at=1795694931,
    model="gpt-4.1-2025-04-14",
    output=[
        _message_item(
            "msg_0a6f3c2e91d84b7f006927a6f2a9b081a0c7e5d3f41b28a96c",
            (
                "In a quiet forest glade, a curious unicorn named Lumi discovered a silver stream that "
                "sang lullabies at night. Every evening she followed its melody to a moonlit pond, where "
                "fireflies gathered to listen. One night the stream asked her to share a dream of her "
                "own, and as she whispered it, the fireflies wove her words into a constellation that "
                "still shines over the glade, guiding lost travelers safely home."
            ),
        )
    ],
    usage=_resp_usage(36, 87),
)

# usage: input 3104 (cached 2944, cache_write 0), output 112 (reasoning 0), total 3216
RESPONSES_CACHED: Dict[str, Any] = _response(
    id="resp_07d2b8e4a1c94f3a006927a70c5e1c8190a3f6d2b7e849c15f",
    created_at=1795694956,
    completed_at=1795694958,
    model="gpt-4.1-2025-04-14",
    instructions="You are a support assistant for Acme Cloud. Answer from the knowledge base only.",
    prompt_cache_key="tenant-acme-support",
    output=[
        _message_item(
            "msg_07d2b8e4a1c94f3a006927a70d1f0c8190b8e4c2a6d5f3179e",
            (
                "To rotate an API key, open Settings > API Keys, click \"Rotate\" next to the key, and "
                "update your deployments with the new secret within 24 hours; the old key keeps working "
                "until that grace period ends."
            ),
        )
    ],
    usage=_resp_usage(3104, 112, cached=2944),
)

# usage: input 58 (cached 0), output 1027 (reasoning 896), total 1085
RESPONSES_REASONING: Dict[str, Any] = _response(
    id="resp_0c91e5a7d3b24f8c006927a71b4e2081a2d6c9f0e3b75a418d",
    created_at=1795694971,
    completed_at=1795694983,
    model="o4-mini-2025-04-16",
    reasoning={"effort": "medium", "summary": None},
    output=[
        {"id": "rs_0c91e5a7d3b24f8c006927a71c0a6c81a1b3e5d7f9c2046e8a", "type": "reasoning", "summary": []},
        _message_item(
            "msg_0c91e5a7d3b24f8c006927a727e1d881a0f4c6b8e2d3a5917c",
            "The train arrives at 4:45 pm, so you will have 25 minutes to make the 5:10 pm connection.",
        ),
    ],
    usage=_resp_usage(58, 1027, reasoning=896),
)

_WEATHER_TOOL: Dict[str, Any] = {
    "type": "function",
    "description": "Get current temperature for a given location.",
    "name": "get_weather",
    "parameters": {
        "type": "object",
        "properties": {"location": {"type": "string", "description": "City and country e.g. Bogotá, Colombia"}},
        "required": ["location"],
        "additionalProperties": False,
    },
    "strict": True,
}

# usage: input 291 (cached 0), output 46 (reasoning 0), total 337
RESPONSES_TOOL_CALLS: Dict[str, Any] = _response(
    id="resp_0e47a9c1b5d64e2f006927a739f5b48190c2d8e6a4f1b3075d",
    created_at=1795694999,
    completed_at=1795695000,
    model="gpt-4.1-2025-04-14",
    tools=[_WEATHER_TOOL],
    output=[
        {
            "id": "fc_0e47a9c1b5d64e2f006927a73a8c6c8190d4f2b6e9a1c7358b",
            "type": "function_call",
            "status": "completed",
            "arguments": "{\"location\":\"Paris, France\"}",
            "call_id": "call_Hx5Mb9Qd2Wz7Ky1Vn4Tc8Ls0",
            "name": "get_weather",
        },
        {
            "id": "fc_0e47a9c1b5d64e2f006927a73ab2d88190e6a3c5f8b2d4169a",
            "type": "function_call",
            "status": "completed",
            "arguments": "{\"location\":\"Bogotá, Colombia\"}",
            "call_id": "call_Jy8Nc3Re6Xa0Lz4Wo7Ud1Mt5",
            "name": "get_weather",
        },
    ],
    usage=_resp_usage(291, 46),
)

_WEB_ANSWER = (
    "On November 25, 2026, NASA confirmed that the Artemis IV crew completed their final dress "
    "rehearsal ahead of the planned launch window ([nasa.gov](https://www.nasa.gov/news/artemis-iv-rehearsal/"
    "?utm_source=openai))."
)
_WEB_URL = "https://www.nasa.gov/news/artemis-iv-rehearsal/?utm_source=openai"
_WEB_START = _WEB_ANSWER.index("([nasa.gov]") + 1
_WEB_END = _WEB_ANSWER.index("openai))") + len("openai)")

# usage: input 2918 (cached 0), output 214 (reasoning 0), total 3132; tool_usage.web_search.num_requests 1
RESPONSES_WEB_SEARCH: Dict[str, Any] = _response(
    id="resp_01b6d3f8a2c74e5b006927a74e2d0c8193f1a5c7e9b3d6280c",
    created_at=1795695019,
    completed_at=1795695026,
    model="gpt-4.1-2025-04-14",
    tools=[
        {
            "type": "web_search",
            "filters": None,
            "search_context_size": "medium",
            "user_location": {"type": "approximate", "city": None, "country": "US", "region": None, "timezone": None},
        }
    ],
    output=[
        {
            "id": "ws_01b6d3f8a2c74e5b006927a74f0e5c8193a6c2e8d4f1b7395d",
            "type": "web_search_call",
            "status": "completed",
            "action": {"type": "search", "query": "Artemis IV crew dress rehearsal news"},
        },
        _message_item(
            "msg_01b6d3f8a2c74e5b006927a751c4a88193b2d7f3e5a9c1068e",
            _WEB_ANSWER,
            annotations=[
                {
                    "type": "url_citation",
                    "end_index": _WEB_END,
                    "start_index": _WEB_START,
                    "title": "NASA's Artemis IV Crew Completes Launch Dress Rehearsal - NASA",
                    "url": _WEB_URL,
                }
            ],
        ),
    ],
    usage=_resp_usage(2918, 214),
    extra={
        "tool_usage": {
            "image_gen": {
                "input_tokens": 0,
                "input_tokens_details": {"image_tokens": 0, "text_tokens": 0},
                "output_tokens": 0,
                "total_tokens": 0,
            },
            "web_search": {"num_requests": 1},
        }
    },
)

# usage: input 72 (cached 0), output 14 (reasoning 0), total 86 (output_text parses as CalendarEvent)
RESPONSES_PARSED: Dict[str, Any] = _response(
    id="resp_05e8c2a6d1b94f7a006927a762f3a08196c4e1b8d7a2f5309b",
    created_at=1795695042,
    completed_at=1795695043,
    model="gpt-4.1-2025-04-14",
    text_format={
        "type": "json_schema",
        "description": None,
        "name": "CalendarEvent",
        "schema": {
            "properties": {"name": {"title": "Name", "type": "string"}, "date": {"title": "Date", "type": "string"}},
            "required": ["name", "date"],
            "title": "CalendarEvent",
            "type": "object",
            "additionalProperties": False,
        },
        "strict": True,
    },
    output=[
        _message_item(
            "msg_05e8c2a6d1b94f7a006927a763a1b48196d8f3c5e2b7a4160c",
            "{\"name\":\"Science Fair\",\"date\":\"Friday\"}",
        )
    ],
    usage=_resp_usage(72, 14),
)

# usage: input 1215 (cached 0), output 1633 (reasoning 1408), total 2848; service_tier "flex"
RESPONSES_FLEX: Dict[str, Any] = _response(
    id="resp_08a3f1d7c5e24b9a006927a77b8e1c81a5b3d9e6f2c4a7081e",
    created_at=1795695067,
    completed_at=1795695161,
    model="o3-2025-04-16",
    service_tier="flex",
    reasoning={"effort": "medium", "summary": None},
    output=[
        {"id": "rs_08a3f1d7c5e24b9a006927a77c2d5881a3c6e8f1b4d7a9250f", "type": "reasoning", "summary": []},
        _message_item(
            "msg_08a3f1d7c5e24b9a006927a7d8f0b081a6d2c4e7f9b1a3586d",
            "Batch classification complete: 42 tickets labelled billing, 17 outage, 9 feature-request.",
        ),
    ],
    usage=_resp_usage(1215, 1633, reasoning=1408),
)


# ---- Responses streams ----------------------------------------------------- #

_RS_ID = "resp_0d5b7e3a9c1f4e86006927a7e9a4c48190b1d6f3a8e2c5749e"
_RS_MSG = "msg_0d5b7e3a9c1f4e86006927a7ea1f2c8190c3e7a5d9b4f1286a"
_RS_TEXT_PARTS = ["The", " capital", " of", " France", " is", " Paris", "."]
_RS_TEXT = "".join(_RS_TEXT_PARTS)


def _stream_response(status: str, **kw: Any) -> Dict[str, Any]:
    """The Response snapshot as embedded in lifecycle events (service_tier echoes the request: "auto")."""
    kw.setdefault("output", [])
    kw.setdefault("usage", None)
    kw.setdefault("service_tier", "auto")
    return _response(id=kw.pop("id", _RS_ID), created_at=1795695181, model="gpt-4.1-2025-04-14", status=status, **kw)


def _text_events(
    seq: int,
    *,
    item_id: str,
    parts: List[str],
    finish: bool,
    item_status: str = "completed",
) -> List[Dict[str, Any]]:
    """output_item.added ... (optionally) output_item.done for one message item, starting at ``seq``."""
    ev: List[Dict[str, Any]] = [
        {
            "type": "response.output_item.added",
            "sequence_number": seq,
            "output_index": 0,
            "item": {"id": item_id, "type": "message", "status": "in_progress", "content": [], "role": "assistant"},
        },
        {
            "type": "response.content_part.added",
            "sequence_number": seq + 1,
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": ""},
        },
    ]
    seq += 2
    for i, p in enumerate(parts):
        ev.append(
            {
                "type": "response.output_text.delta",
                "sequence_number": seq,
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "delta": p,
                "logprobs": [],
                "obfuscation": _OBF[i % len(_OBF)],
            }
        )
        seq += 1
    if finish:
        text = "".join(parts)
        ev += [
            {
                "type": "response.output_text.done",
                "sequence_number": seq,
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "text": text,
                "logprobs": [],
            },
            {
                "type": "response.content_part.done",
                "sequence_number": seq + 1,
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": text},
            },
            {
                "type": "response.output_item.done",
                "sequence_number": seq + 2,
                "output_index": 0,
                "item": _message_item(item_id, text, status=item_status),
            },
        ]
    return ev


def _lifecycle_start(**kw: Any) -> List[Dict[str, Any]]:
    return [
        {"type": "response.created", "sequence_number": 0, "response": _stream_response("in_progress", **kw)},
        {"type": "response.in_progress", "sequence_number": 1, "response": _stream_response("in_progress", **kw)},
    ]


_RS_BODY = _text_events(2, item_id=_RS_MSG, parts=_RS_TEXT_PARTS, finish=True)

# usage (in response.completed): input 14 (cached 0), output 7 (reasoning 0), total 21
RESPONSES_STREAM: str = _sse_events(
    [
        *_lifecycle_start(),
        *_RS_BODY,
        {
            "type": "response.completed",
            "sequence_number": 2 + len(_RS_BODY),
            "response": _stream_response(
                "completed",
                completed_at=1795695182,
                service_tier="default",
                output=[_message_item(_RS_MSG, _RS_TEXT)],
                usage=_resp_usage(14, 7),
            ),
        },
    ]
)

_RF_ID = "resp_02c8e6a4f0b94d1e006927a80b3c5c8197a2e4d6f8b1c3059f"
_RF_MSG = "msg_02c8e6a4f0b94d1e006927a80c7e1081979b3d5f7a2c4e618b"
_RF_BODY = _text_events(2, item_id=_RF_MSG, parts=["The", " capital"], finish=False)

# usage: null in response.failed (none reported); stream ends with response.failed (error.code "server_error")
RESPONSES_STREAM_FAILED: str = _sse_events(
    [
        *_lifecycle_start(id=_RF_ID),
        *_RF_BODY,
        {
            "type": "response.failed",
            "sequence_number": 2 + len(_RF_BODY),
            "response": _stream_response(
                "failed",
                id=_RF_ID,
                service_tier="default",
                error={
                    "code": "server_error",
                    "message": (
                        "An error occurred while processing your request. You can retry your request, or "
                        "contact us through our help center at help.openai.com if the error persists. Please "
                        "include the request ID req_b27e94c1d0a3485f9e6c2d7a1f0b3e58 in your message."
                    ),
                },
                output=[_message_item(_RF_MSG, "The capital", status="in_progress")],
            ),
        },
    ]
)

_RE_ID = "resp_04f1a7c3e9d54b2a006927a81d6e0c81968c1e3a5d7f9b240e"

# usage: none; the live API's mid-stream `error` event nests the fields under "error" (the SDK raises openai.APIError on it)
RESPONSES_STREAM_ERROR: str = _sse_events(
    [
        *_lifecycle_start(id=_RE_ID),
        {
            "type": "error",
            "error": {
                "type": "tokens",
                "code": "rate_limit_exceeded",
                "message": (
                    "Rate limit reached for gpt-4.1 in organization org-Zq3vN8kLr2TxWb5Yh0Pd6sMf on tokens per "
                    "min (TPM): Limit 30000, Used 25265, Requested 8020. Please try again in 6.57s. Visit "
                    "https://platform.openai.com/account/rate-limits to learn more."
                ),
                "param": None,
            },
            "sequence_number": 2,
        },
    ]
)

# usage: none; the `error` event in the flat shape the API reference documents (the SDK yields a ResponseErrorEvent)
RESPONSES_STREAM_ERROR_FLAT: str = _sse_events(
    [
        *_lifecycle_start(id=_RE_ID),
        {
            "type": "error",
            "code": "rate_limit_exceeded",
            "message": (
                "Rate limit reached for gpt-4.1 in organization org-Zq3vN8kLr2TxWb5Yh0Pd6sMf on tokens per "
                "min (TPM): Limit 30000, Used 25265, Requested 8020. Please try again in 6.57s. Visit "
                "https://platform.openai.com/account/rate-limits to learn more."
            ),
            "param": None,
            "sequence_number": 2,
        },
    ]
)

_RI_ID = "resp_06b9d2f8a4c14e7b006927a82a9f3c8195d3f5b7e1a4c6082b"
_RI_MSG = "msg_06b9d2f8a4c14e7b006927a82b4d1081958e2a4c6f9b3d157c"
_RI_PARTS = ["Once", " upon", " a", " time", ",", " in", " a", " quiet", " valley", ",", " there", " lived", " a", " clock", "maker", " named"]
_RI_BODY = _text_events(2, item_id=_RI_MSG, parts=_RI_PARTS, finish=True, item_status="incomplete")

# usage (in response.incomplete): input 14 (cached 0), output 16 (reasoning 0), total 30; incomplete_details.reason "max_output_tokens"
RESPONSES_STREAM_INCOMPLETE: str = _sse_events(
    [
        *_lifecycle_start(id=_RI_ID, max_output_tokens=16),
        *_RI_BODY,
        {
            "type": "response.incomplete",
            "sequence_number": 2 + len(_RI_BODY),
            "response": _stream_response(
                "incomplete",
                id=_RI_ID,
                max_output_tokens=16,
                service_tier="default",
                incomplete_details={"reason": "max_output_tokens"},
                output=[_message_item(_RI_MSG, "".join(_RI_PARTS), status="incomplete")],
                usage=_resp_usage(14, 16),
            ),
        },
    ]
)


# --------------------------------------------------------------------------- #
# Legacy completions  (POST /v1/completions)
# --------------------------------------------------------------------------- #

# usage: prompt 5, completion 7, total 12 (no details object on legacy completions)
COMPLETIONS_PLAIN: Dict[str, Any] = {
    "id": "cmpl-DhQm4rE8sB1wK6yN3vT0aZ5qL9xUj",
    "object": "text_completion",
    "created": 1795695230,
    "model": "gpt-3.5-turbo-instruct:20230824-v2",
    "choices": [{"text": "\n\nThis is indeed a test.", "index": 0, "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
}

_CMPL_HEAD = {"id": "cmpl-DhQmA7tG2uC5xL9zO4wU1bA8rM3yVk", "object": "text_completion", "created": 1795695247}
_CMPL_MODEL = "gpt-3.5-turbo-instruct:20230824-v2"


def _cmpl_chunk(text: str, finish: Optional[str] = None) -> Dict[str, Any]:
    return {
        **_CMPL_HEAD,
        "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
        "model": _CMPL_MODEL,
        "usage": None,
    }


# usage (final choices:[] chunk, stream_options include_usage): prompt 8, completion 11, total 19; other chunks "usage": null
COMPLETIONS_STREAM: str = _sse_data(
    [
        *[
            _cmpl_chunk(t)
            for t in ["\n\n", "Once", " upon", " a", " time", ",", " there", " was", " a", " fox", "."]
        ],
        _cmpl_chunk("", "stop"),
        {
            **_CMPL_HEAD,
            "choices": [],
            "model": _CMPL_MODEL,
            "usage": {"prompt_tokens": 8, "completion_tokens": 11, "total_tokens": 19},
        },
    ]
)


# --------------------------------------------------------------------------- #
# Embeddings  (POST /v1/embeddings)
# --------------------------------------------------------------------------- #

# usage: prompt 9, total 9 (response to encoding_format="float"; real vectors have 1536 dims, 8 shown)
EMBEDDINGS: Dict[str, Any] = {
    "object": "list",
    "data": [
        {
            "object": "embedding",
            "index": 0,
            "embedding": [
                -0.006929283495992422,
                -0.00533643551170826,
                0.017121603712439537,
                -0.023741619661450386,
                0.02948574721813202,
                -0.01087353564798832,
                -0.01274895016103983,
                0.00931174773722887,
            ],
        },
        {
            "object": "embedding",
            "index": 1,
            "embedding": [
                0.012841233983635902,
                -0.021193090826272964,
                0.0034457319416105747,
                0.02773081324994564,
                -0.00519272405654192,
                0.017886556684970856,
                -0.009385036304593086,
                -0.024600189179182053,
            ],
        },
    ],
    "model": "text-embedding-3-small",
    "usage": {"prompt_tokens": 9, "total_tokens": 9},
}

# usage: prompt 9, total 9 (API reply to the SDK's default request, which sends encoding_format="base64"; decodes to EMBEDDINGS' floats)
EMBEDDINGS_BASE64: Dict[str, Any] = {
    "object": "list",
    "data": [
        {"object": "embedding", "index": 0, "embedding": "Cw/ju0TdrrubQow8yX3CvBiM8TzqJjK8+eBQvE2QGDw="},
        {"object": "embedding", "index": 1, "embedding": "CmRSPCKdrbzK0WE7uyvjPLonqrvUhpI8ssMZvFaGybw="},
    ],
    "model": "text-embedding-3-small",
    "usage": {"prompt_tokens": 9, "total_tokens": 9},
}


# --------------------------------------------------------------------------- #
# OpenAI-compatible gateways through the same client
# --------------------------------------------------------------------------- #

# usage: prompt 1289 (cached 1216 = prompt_cache_hit_tokens; prompt_cache_miss_tokens 73), completion 187, total 1476
DEEPSEEK_CHAT: Dict[str, Any] = {
    "id": "9b2e7d41-3c8a-4f5e-b6d0-1a7c9e3f5b82",
    "object": "chat.completion",
    "created": 1795695266,
    "model": "deepseek-chat",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": (
                    "Here is the refactored function: it now streams rows in batches of 500, closes the "
                    "cursor in a finally block, and returns the number of rows written."
                ),
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 1289,
        "completion_tokens": 187,
        "total_tokens": 1476,
        "prompt_tokens_details": {"cached_tokens": 1216},
        "prompt_cache_hit_tokens": 1216,
        "prompt_cache_miss_tokens": 73,
    },
    "system_fingerprint": "fp_ffc7281d48_prod0820_fp8_kvcache",
}

# usage: prompt 21 (cached 0; prompt_cache_hit_tokens 0, prompt_cache_miss_tokens 21), completion 633 (reasoning 498), total 654
DEEPSEEK_REASONER: Dict[str, Any] = {
    "id": "e4a19c62-8d3f-4b7a-9e15-6c2b8f0d4a37",
    "object": "chat.completion",
    "created": 1795695281,
    "model": "deepseek-reasoner",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "9.11 is smaller than 9.9, because 0.11 < 0.90 when both are written to two decimals.",
                "reasoning_content": (
                    "The user asks which is larger, 9.11 or 9.9. Compare the integer parts: both 9. Compare the "
                    "fractional parts: 0.11 versus 0.9, i.e. 0.11 versus 0.90. 0.90 is larger, so 9.9 > 9.11."
                ),
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 21,
        "completion_tokens": 633,
        "total_tokens": 654,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 498},
        "prompt_cache_hit_tokens": 0,
        "prompt_cache_miss_tokens": 21,
    },
    "system_fingerprint": "fp_7e73fd9a08_prod0820_fp8_kvcache",
}

# usage: prompt 1450 (cached 1024, cache_write 0), completion 312 (reasoning 0), total 1762; cost 0.0062652 credits, is_byok false
OPENROUTER_CHAT: Dict[str, Any] = {
    "id": "gen-1795695297-Hq4vT9xLm2Zb7Nc0Wk5R",
    "provider": "Anthropic",
    "model": "anthropic/claude-sonnet-4",
    "object": "chat.completion",
    "created": 1795695297,
    "choices": [
        {
            "logprobs": None,
            "finish_reason": "stop",
            "native_finish_reason": "end_turn",
            "index": 0,
            "message": {
                "role": "assistant",
                "content": (
                    "The migration plan looks sound. I'd add a backfill step before switching reads to the new "
                    "column, and keep the old column writable for one release so you can roll back safely."
                ),
                "refusal": None,
                "reasoning": None,
            },
        }
    ],
    "usage": {
        "prompt_tokens": 1450,
        "completion_tokens": 312,
        "total_tokens": 1762,
        "cost": 0.0062652,
        "is_byok": False,
        "prompt_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 0, "audio_tokens": 0},
        "cost_details": {
            "upstream_inference_cost": None,
            "upstream_inference_prompt_cost": 0.0015852,
            "upstream_inference_completions_cost": 0.00468,
        },
        "completion_tokens_details": {"reasoning_tokens": 0, "image_tokens": 0},
    },
}

_OR_HEAD: Dict[str, Any] = {
    "id": "gen-1795695314-Pw8sK3yJn6Vd1Xf4Qa9M",
    "provider": "Anthropic",
    "model": "anthropic/claude-sonnet-4",
    "object": "chat.completion.chunk",
    "created": 1795695314,
}


def _or_choice(delta: Dict[str, Any], finish: Optional[str] = None, native: Optional[str] = None) -> List[Dict[str, Any]]:
    return [{"index": 0, "delta": delta, "finish_reason": finish, "native_finish_reason": native, "logprobs": None}]


# usage (last chunk, which still carries a choice with an empty delta -- not choices:[]): prompt 58 (cached 0), completion 10 (reasoning 0), total 68; cost 0.000324, is_byok false
OPENROUTER_STREAM: str = ": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\n" + _sse_data(
    [
        *[
            {**_OR_HEAD, "choices": _or_choice({"role": "assistant", "content": t})}
            for t in ["Paris", " is", " the", " capital", " of", " France", "."]
        ],
        {**_OR_HEAD, "choices": _or_choice({"role": "assistant", "content": ""}, "stop", "end_turn")},
        {
            **_OR_HEAD,
            "choices": _or_choice({"role": "assistant", "content": ""}),
            "usage": {
                "prompt_tokens": 58,
                "completion_tokens": 10,
                "total_tokens": 68,
                "cost": 0.000324,
                "is_byok": False,
                "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0, "audio_tokens": 0},
                "cost_details": {
                    "upstream_inference_cost": None,
                    "upstream_inference_prompt_cost": 0.000174,
                    "upstream_inference_completions_cost": 0.00015,
                },
                "completion_tokens_details": {"reasoning_tokens": 0, "image_tokens": 0},
            },
        },
    ]
)
