"""Mistral API response bodies for tests, in exact wire form.

A ``dict`` is a JSON body (``route.respond(json=BODY, headers=HEADERS)``); a ``str`` is an SSE
stream (``route.respond(text=STREAM, headers=SSE_HEADERS)``).

Shapes follow the ``mistralai`` SDK's generated types (3.7 and 2.10) and captures of the live
API:

* Chat and FIM completions carry ``usage`` with ``prompt_tokens``, ``total_tokens``,
  ``completion_tokens``; current responses add ``prompt_tokens_details.cached_tokens``
  (cached tokens are inside ``prompt_tokens``, billed at 10%) and ``service_tier``
  (``standard`` / ``priority``). Earlier responses report ``num_cached_tokens`` or
  ``prompt_token_details`` instead, or no cache detail at all.
* Reasoning models (Magistral, Mistral Large 3 with ``reasoning_effort``) answer with
  ``thinking`` content blocks; their thinking tokens are inside ``completion_tokens``.
* Streams are ``data: {chunk}`` lines ending with ``data: [DONE]``; chunks may carry a ``p``
  padding string; the last chunk (with ``finish_reason``) carries ``usage``. Tool calls arrive
  whole, each with its ``id``.
* Embeddings report ``prompt_tokens`` and ``total_tokens`` (``completion_tokens`` 0) and
  null details.
* Errors are ``{"object": "error", "message", "type", "param", "code"}``; 422 puts the
  validation ``detail`` list inside ``message``. Every response has a
  ``mistral-correlation-id`` header.

Token numbers are consistent: total = prompt + completion, cached <= prompt.
"""

from __future__ import annotations

import json
from typing import Any

CORRELATION_ID = "019a6b2e-7c41-7d3e-9f0a-3b5c8e2d1f47"

HEADERS = {"content-type": "application/json", "mistral-correlation-id": CORRELATION_ID,
           "x-kong-request-id": "9e4c1a5b2d7f3e8a6c0b"}
SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "mistral-correlation-id": CORRELATION_ID,
               "x-kong-request-id": "9e4c1a5b2d7f3e8a6c0b"}


def _j(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _sse(chunks: list[dict[str, Any]]) -> str:
    return "".join(f"data: {_j(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"


def _completion(model: str, message: dict[str, Any], finish: str, usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "a2984449b4204304a731f30927977d5c",
        "created": 1787865809,
        "model": model,
        "usage": usage,
        "object": "chat.completion",
        "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "tool_calls": None,
                                                                      **message}}],
    }


def _usage(prompt: int, completion: int, cached: int | None = 0, **extra: Any) -> dict[str, Any]:
    usage: dict[str, Any] = {"prompt_tokens": prompt, "total_tokens": prompt + completion,
                             "completion_tokens": completion}
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    usage["service_tier"] = "standard"
    usage.update(extra)
    return usage


# -- chat completions ----------------------------------------------------------------------------

# mistral-small-latest: 19 prompt (0 cached), 11 completion
CHAT_PLAIN = _completion("mistral-small-latest", {"content": "The capital of France is Paris."}, "stop",
                         _usage(19, 11))

# mistral-medium-latest: 801 prompt of which 768 cached, 42 completion
CHAT_CACHED = _completion("mistral-medium-latest", {"content": "Clause 4.2 limits the liability to..."}, "stop",
                          _usage(801, 42, cached=768))

# mistral-large-latest: 1,013 prompt of which 1,008 cached (as num_cached_tokens), 30 completion
CHAT_NUM_CACHED_TOKENS = _completion(
    "mistral-large-latest", {"content": "Yes."}, "stop",
    {"prompt_tokens": 1013, "total_tokens": 1043, "completion_tokens": 30, "num_cached_tokens": 1008})

# mistral-large-latest: 124 prompt, 22 completion, no cache detail (earlier responses)
CHAT_NO_DETAILS = _completion("mistral-large-latest", {"content": "Paris."}, "stop",
                              {"prompt_tokens": 124, "total_tokens": 146, "completion_tokens": 22})

# magistral-medium-2509: 10 prompt, 46 completion (thinking inside, not split out)
CHAT_REASONING = _completion(
    "magistral-medium-2509",
    {"content": [{"type": "thinking", "thinking": [{"type": "text",
                                                    "text": "The user is asking for 2+2. This is basic arithmetic."}]},
                 {"type": "text", "text": "2 + 2 = 4"}]},
    "stop",
    {"prompt_tokens": 10, "total_tokens": 56, "completion_tokens": 46},
)

# mistral-large-2512: 26 prompt (0 cached), 112 completion of which 96 reasoning, in
# completion_tokens_details (the split genai-prices' Mistral extractor reads)
CHAT_REASONING_SPLIT = _completion(
    "mistral-large-2512",
    {"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "Count the r's: s-t-r-a-w-b-e-r-r-y."}],
                  "closed": True},
                 {"type": "text", "text": "3"}]},
    "stop",
    _usage(26, 112, completion_tokens_details={"reasoning_tokens": 96}),
)

# mistral-small-latest: 124 prompt (0 cached), 41 completion, two tool calls
CHAT_TOOL_CALLS = _completion(
    "mistral-small-latest",
    {"content": "", "tool_calls": [
        {"id": "gSIMJiOkT", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}, "index": 0},
        {"id": "Hq7pLx2Wd", "function": {"name": "get_weather", "arguments": "{\"city\": \"Berlin\"}"}, "index": 1},
    ]},
    "tool_calls",
    _usage(124, 41),
)

# mistral-small-latest: usage without any count (every count unreported)
CHAT_EMPTY_USAGE = _completion("mistral-small-latest", {"content": "OK"}, "stop", {})


# -- streams -------------------------------------------------------------------------------------

def _chunk(model: str, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    chunk: dict[str, Any] = {"id": "b5810ef13dbb4811a20d34e1393d8431", "object": "chat.completion.chunk",
                             "created": 1787865810, "model": model,
                             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    chunk.update(extra)
    return chunk


_SMALL = "mistral-small-latest"

# mistral-small-latest: 19 prompt (0 cached), 8 completion
STREAM_PLAIN = _sse([
    _chunk(_SMALL, {"role": "assistant", "content": ""}),
    _chunk(_SMALL, {"content": "The capital"}, p="abcdefghijklmnopqrstuvwxyz0123456789"),
    _chunk(_SMALL, {"content": " of France is Paris."}, p="abcdefghij"),
    _chunk(_SMALL, {"content": ""}, "stop", usage=_usage(19, 8), p="abcdef"),
])

# mistral-medium-latest: 1,560 prompt of which 1,536 cached, 12 completion
STREAM_CACHED = _sse([
    _chunk("mistral-medium-latest", {"role": "assistant", "content": ""}),
    _chunk("mistral-medium-latest", {"content": "It expires on 31 March."}),
    _chunk("mistral-medium-latest", {"content": ""}, "stop", usage=_usage(1560, 12, cached=1536)),
])

# mistral-small-latest: 124 prompt, 22 completion, one tool call (in the usage chunk)
STREAM_TOOL_CALL = _sse([
    _chunk(_SMALL, {"role": "assistant", "content": ""}, logprobs=None),
    {"id": "b3999b8c93e04e11bcbff7bcab829667", "object": "chat.completion.chunk", "created": 1769088854,
     "model": _SMALL, "choices": [{"index": 0, "delta": {"content": None, "tool_calls": [
         {"id": "gSIMJiOkT", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
         "finish_reason": "tool_calls", "logprobs": None}],
     "usage": {"prompt_tokens": 124, "total_tokens": 146, "completion_tokens": 22}},
])

# magistral-medium-2509: 10 prompt, 46 completion (thinking inside)
STREAM_REASONING = _sse([
    _chunk("magistral-medium-2509", {"role": "assistant", "content": [
        {"type": "thinking", "thinking": [{"type": "text", "text": "The user is asking"}]}]}),
    _chunk("magistral-medium-2509", {"content": [
        {"type": "thinking", "thinking": [{"type": "text", "text": " for 2+2. This is basic arithmetic."}]}]}),
    _chunk("magistral-medium-2509", {"content": [{"type": "text", "text": "2 + 2 = 4"}]}),
    _chunk("magistral-medium-2509", {"content": ""}, "stop",
           usage={"prompt_tokens": 10, "total_tokens": 56, "completion_tokens": 46}),
])


# -- FIM -----------------------------------------------------------------------------------------

# codestral-latest: 35 prompt (0 cached), 24 completion
FIM_PLAIN = _completion("codestral-latest", {"content": "    return a + b\n"}, "stop", _usage(35, 24))

# codestral-latest: 35 prompt (0 cached), 9 completion
FIM_STREAM = _sse([
    _chunk("codestral-latest", {"role": "assistant", "content": ""}),
    _chunk("codestral-latest", {"content": "    return"}),
    _chunk("codestral-latest", {"content": " a + b\n"}, "stop", usage=_usage(35, 9)),
])


# -- agents --------------------------------------------------------------------------------------

# mistral-medium-2508 behind an agent: 312 prompt (256 cached), 18 completion
AGENT_COMPLETION = _completion("mistral-medium-2508", {"content": "Your order ships tomorrow."}, "stop",
                               _usage(312, 18, cached=256))


# -- embeddings ----------------------------------------------------------------------------------

# mistral-embed: 16 prompt tokens, 0 completion
EMBEDDINGS = {
    "id": "fe87621011b544829fe9f966488f3d84",
    "object": "list",
    "data": [
        {"object": "embedding", "embedding": [-0.0389404296875, 0.048065185546875, 0.07159423828125], "index": 0},
        {"object": "embedding", "embedding": [-0.0535888671875, 0.019500732421875, 0.057464599609375], "index": 1},
    ],
    "model": "mistral-embed",
    "usage": {"prompt_audio_seconds": None, "prompt_tokens": 16, "total_tokens": 16, "completion_tokens": 0,
              "request_count": None, "prompt_tokens_details": None, "prompt_token_details": None},
}


# -- errors --------------------------------------------------------------------------------------

# no usage
ERROR_429 = {"object": "error", "message": "Requests rate limit exceeded", "type": "rate_limited",
             "param": None, "code": "1300"}

# no usage
ERROR_400 = {"object": "error", "message": "Invalid model: mistral-tiny-2312", "type": "invalid_model",
             "param": None, "code": "1500"}

# no usage
ERROR_422 = {"object": "error", "message": {"detail": [
    {"type": "missing", "loc": ["body", "messages"], "msg": "Field required",
     "input": {"model": "mistral-small-latest"}}]},
    "type": "invalid_request_error", "param": None, "code": None}
