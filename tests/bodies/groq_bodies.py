"""Groq API response bodies for tests, in exact wire form.

A ``dict`` is a JSON body (``route.respond(json=BODY, headers=HEADERS)``); a ``str`` is an SSE
stream (``route.respond(text=STREAM, headers=SSE_HEADERS)``).

Shapes follow the ``groq`` SDK's generated types (1.7 and 0.37) and captures of the live API:

* Chat completions carry ``usage`` (with Groq's timings: ``queue_time``, ``prompt_time``,
  ``completion_time``, ``total_time``), ``usage_breakdown`` (null except for compound
  systems), ``system_fingerprint``, ``x_groq: {"id": "req_..."}`` and ``service_tier``.
  Cached prompt tokens are in ``usage.prompt_tokens_details.cached_tokens`` (inside
  ``prompt_tokens``); reasoning tokens in ``usage.completion_tokens_details.reasoning_tokens``
  (inside ``completion_tokens``); both details are absent when the model has none.
* Streams need no ``stream_options``: the first chunk carries ``x_groq: {id, seed}``, the
  last one (with ``finish_reason``) ``x_groq: {id, usage}``. The current API repeats that
  usage in the chunk's ``usage``; earlier captures have it in ``x_groq.usage`` only.
* Transcriptions and translations answer ``{"text", "x_groq": {"id"}}``; only
  ``response_format="verbose_json"`` adds ``task``, ``language``, ``duration`` (seconds) and
  ``segments``.
* Errors are ``{"error": {"message", "type", "code"}}``.

Token numbers are consistent: total = prompt + completion, cached <= prompt,
reasoning <= completion.
"""

from __future__ import annotations

import json
from typing import Any

REQUEST_ID = "req_01kh52n6v2fr2b5m32125xqb7b"
STREAM_REQUEST_ID = "req_01kh52nj5yfcat8hrmvrk2j2hj"

HEADERS = {"content-type": "application/json", "x-request-id": REQUEST_ID}
SSE_HEADERS = {"content-type": "text/event-stream", "x-request-id": STREAM_REQUEST_ID}


def _j(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _sse(chunks: list[dict[str, Any]]) -> str:
    return "".join(f"data: {_j(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"


def _timings(prompt: int, completion: int) -> dict[str, Any]:
    return {"queue_time": 0.041520249, "prompt_tokens": prompt, "prompt_time": 0.010407901,
            "completion_tokens": completion, "completion_time": 0.046601227,
            "total_tokens": prompt + completion, "total_time": 0.057009128}


def _completion(model: str, message: dict[str, Any], finish: str, usage: dict[str, Any] | None,
                **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-73cf8a54-d54e-400c-88b8-603d1a346d96",
        "object": "chat.completion",
        "created": 1770770833,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = usage
    body.update({"usage_breakdown": None, "system_fingerprint": "fp_f8b414701e",
                 "x_groq": {"id": REQUEST_ID, "seed": 1186842417}, "service_tier": "on_demand"})
    body.update(extra)
    return body


# -- chat completions ----------------------------------------------------------------------------

# llama-3.3-70b-versatile: 18 prompt, 8 completion, no details
CHAT_PLAIN = _completion(
    "llama-3.3-70b-versatile",
    {"role": "assistant", "content": "The capital of France is Paris."},
    "stop",
    _timings(18, 8),
)

# moonshotai/kimi-k2-instruct-0905: 4,641 prompt of which 4,608 cached, 187 completion
CHAT_CACHED = _completion(
    "moonshotai/kimi-k2-instruct-0905",
    {"role": "assistant", "content": "Here is the summary of the contract you sent..."},
    "stop",
    {**_timings(4641, 187), "prompt_tokens_details": {"cached_tokens": 4608}},
)

# openai/gpt-oss-120b: 2,061 prompt of which 1,536 cached; 1,107 completion of which 963 reasoning
CHAT_REASONING = _completion(
    "openai/gpt-oss-120b",
    {"role": "assistant", "content": "The word \"strawberry\" contains **3** r's.",
     "reasoning": "The user asks how many r's are in strawberry. Let me count: s-t-r-a-w-b-e-r-r-y..."},
    "stop",
    {**_timings(2061, 1107), "prompt_tokens_details": {"cached_tokens": 1536},
     "completion_tokens_details": {"reasoning_tokens": 963}},
)

# llama-3.3-70b-versatile: 210 prompt, 33 completion, two tool calls
CHAT_TOOL_CALLS = _completion(
    "llama-3.3-70b-versatile",
    {"role": "assistant", "tool_calls": [
        {"id": "tk85n1k4m", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
        {"id": "9x1rjzq2a", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"city\":\"Berlin\"}"}},
    ]},
    "tool_calls",
    _timings(210, 33),
)

# llama-3.1-8b-instant: 12 prompt, 5 completion; x_groq.usage holds hardware cache statistics
# (not billing counts: they must not be read as cached tokens)
CHAT_HARDWARE_CACHE_STATS = _completion(
    "llama-3.1-8b-instant",
    {"role": "assistant", "content": "Hello!"},
    "stop",
    _timings(12, 5),
    x_groq={"id": REQUEST_ID, "usage": {"dram_cached_tokens": 0, "sram_cached_tokens": 12}},
)

# llama-3.3-70b-versatile: no usage reported at all
CHAT_NO_USAGE = _completion(
    "llama-3.3-70b-versatile", {"role": "assistant", "content": "Paris."}, "stop", None)


# -- streams -------------------------------------------------------------------------------------

def _chunk(model: str, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": "chatcmpl-b610d559-f156-4aca-8827-24b4fe6af54f", "object": "chat.completion.chunk",
        "created": 1770770843, "model": model, "system_fingerprint": "fp_f8b414701e",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    chunk.update(extra)
    return chunk


_LLAMA = "llama-3.3-70b-versatile"
_FIRST_X_GROQ = {"x_groq": {"id": STREAM_REQUEST_ID, "seed": 689520654}}

# llama-3.3-70b-versatile: 38 prompt, 7 completion, in usage and x_groq.usage (current API)
STREAM_PLAIN = _sse([
    _chunk(_LLAMA, {"role": "assistant", "content": ""}, **_FIRST_X_GROQ),
    _chunk(_LLAMA, {"content": "The capital"}),
    _chunk(_LLAMA, {"content": " of France is Paris."}),
    _chunk(_LLAMA, {}, "stop", x_groq={"id": STREAM_REQUEST_ID, "usage": _timings(38, 7)},
           usage=_timings(38, 7)),
])

# llama3-8b-8192: 23 prompt, 19 completion, in x_groq.usage only (earlier captures)
STREAM_X_GROQ_USAGE_ONLY = _sse([
    _chunk("llama3-8b-8192", {"role": "assistant", "content": ""}, **_FIRST_X_GROQ),
    _chunk("llama3-8b-8192", {"content": "Hello! How can I help you today?"}),
    _chunk("llama3-8b-8192", {}, "stop", x_groq={"id": STREAM_REQUEST_ID, "usage": _timings(23, 19)}),
])

# llama-3.3-70b-versatile: 210 prompt, 15 completion, two tool calls (one sent in two fragments)
STREAM_TOOL_CALLS = _sse([
    _chunk(_LLAMA, {"role": "assistant", "content": None}, **_FIRST_X_GROQ),
    _chunk(_LLAMA, {"tool_calls": [{"id": "tk85n1k4m", "type": "function", "index": 0,
                                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}),
    _chunk(_LLAMA, {"tool_calls": [{"id": "9x1rjzq2a", "type": "function", "index": 1,
                                    "function": {"name": "get_weather", "arguments": "{\"city\":"}}]}),
    _chunk(_LLAMA, {"tool_calls": [{"index": 1, "function": {"arguments": "\"Berlin\"}"}}]}),
    _chunk(_LLAMA, {}, "tool_calls", x_groq={"id": STREAM_REQUEST_ID, "usage": _timings(210, 15)},
           usage=_timings(210, 15)),
])

_GPT_OSS = "openai/gpt-oss-120b"
_REASONING_USAGE = {**_timings(1562, 410), "prompt_tokens_details": {"cached_tokens": 1408},
                    "completion_tokens_details": {"reasoning_tokens": 320}}

# openai/gpt-oss-120b: 1,562 prompt of which 1,408 cached; 410 completion of which 320 reasoning
STREAM_REASONING = _sse([
    _chunk(_GPT_OSS, {"role": "assistant", "content": ""}, **_FIRST_X_GROQ),
    _chunk(_GPT_OSS, {"reasoning": "The user asks for the capital of France."}),
    _chunk(_GPT_OSS, {"reasoning": " That is Paris."}),
    _chunk(_GPT_OSS, {"content": "Paris."}),
    _chunk(_GPT_OSS, {}, "stop", x_groq={"id": STREAM_REQUEST_ID, "usage": _REASONING_USAGE},
           usage=_REASONING_USAGE),
])

# llama-3.3-70b-versatile: stopped early; x_groq.error set, 38 prompt, 2 completion
STREAM_X_GROQ_ERROR = _sse([
    _chunk(_LLAMA, {"role": "assistant", "content": ""}, **_FIRST_X_GROQ),
    _chunk(_LLAMA, {"content": "The capital"}),
    _chunk(_LLAMA, {}, "stop", x_groq={"id": STREAM_REQUEST_ID, "usage": _timings(38, 2),
                                       "error": "output_parse_failed"}),
])

# A mid-stream error event (the SDK raises groq.APIError): no usage
STREAM_ERROR_EVENT = (
    f"data: {_j(_chunk(_LLAMA, {'role': 'assistant', 'content': ''}, **_FIRST_X_GROQ))}\n\n"
    f"data: {_j(_chunk(_LLAMA, {'content': 'The'}))}\n\n"
    'data: {"error":{"message":"Service Unavailable","type":"internal_server_error"}}\n\n'
)


# -- errors --------------------------------------------------------------------------------------

# no usage
ERROR_429 = {"error": {
    "message": "Rate limit reached for model `llama-3.3-70b-versatile` in organization "
               "`org_01hv9pf7yzfb1s7rr9kqpx3fsc` service tier `on_demand` on tokens per minute (TPM): "
               "Limit 12000, Used 11456, Requested 1200. Please try again in 3.28s.",
    "type": "tokens", "code": "rate_limit_exceeded"}}

# no usage
ERROR_400 = {"error": {"message": "'messages' : minimum number of items is 1",
                       "type": "invalid_request_error"}}


# -- audio ---------------------------------------------------------------------------------------

# whisper-large-v3-turbo, response_format="json": no duration reported
TRANSCRIPTION_JSON = {"text": " Hello from the team.", "x_groq": {"id": REQUEST_ID}}

# whisper-large-v3, response_format="verbose_json": 36.712501248 s of audio
TRANSCRIPTION_VERBOSE = {
    "task": "transcribe",
    "language": "English",
    "duration": 36.712501248,
    "text": " Galileo was an American robotic space program that studied the planet Jupiter.",
    "segments": [
        {"id": 0, "seek": 0, "start": 0.0, "end": 8.44, "text": " Galileo was an American robotic space program",
         "tokens": [50365, 46576, 390], "temperature": 0.0, "avg_logprob": -0.153, "compression_ratio": 1.48,
         "no_speech_prob": 0.0001},
    ],
    "x_groq": {"id": REQUEST_ID},
}

# whisper-large-v3-turbo, response_format="verbose_json": 4.2 s of audio (billed as 10 s)
TRANSCRIPTION_SHORT = {
    "task": "transcribe", "language": "English", "duration": 4.2, "text": " Yes, that works.",
    "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": 4.2, "text": " Yes, that works.",
                  "tokens": [50365, 1079], "temperature": 0.0, "avg_logprob": -0.21,
                  "compression_ratio": 0.8, "no_speech_prob": 0.002}],
    "x_groq": {"id": REQUEST_ID},
}

# whisper-large-v3 translation, response_format="verbose_json": 12.5 s of audio
TRANSLATION_VERBOSE = {
    "task": "translate", "language": "French", "duration": 12.5, "text": " Good morning, how are you?",
    "segments": [], "x_groq": {"id": REQUEST_ID},
}
