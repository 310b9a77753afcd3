"""A local fake LLM provider: real HTTP on loopback for the real ``openai`` and ``anthropic`` SDKs.

Used by ``make demo`` and the benchmarks, so that metering can be shown and
measured with no API keys and no network::

    from tollmeter.demo.fake_provider import FakeProvider

    with FakeProvider(latency=0.05, chunk_delay=0.01) as fp:
        oai = openai.OpenAI(base_url=fp.openai_base_url, api_key="fake")
        ant = anthropic.Anthropic(base_url=fp.anthropic_base_url, api_key="fake")
        oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])

Endpoints (bodies shaped like the live APIs, see ``tests/bodies``):

* ``POST /v1/chat/completions`` -- ``chat.completion`` or an SSE stream of
  ``chat.completion.chunk`` (``stream_options.include_usage`` adds
  ``"usage": null`` to every chunk and a final ``choices: []`` usage chunk).
* ``POST /v1/responses`` -- a ``response`` or its SSE event sequence.
* ``POST /v1/embeddings`` -- float vectors, or base64 little-endian float32
  when ``encoding_format`` is ``"base64"`` (the openai SDK's default).
* ``POST /v1/messages`` -- an Anthropic ``message`` or its SSE event sequence,
  with simple deterministic prompt caching (``cache_control`` breakpoints).

Everything else answers 404 in the provider's error shape. The model names
``"fail-429"`` and ``"fail-500"`` answer a rate-limit error (with
``retry-after: 0``) and a server error.

Token counts are deterministic: input tokens are ``ceil(chars / 4)`` over all
the text of the request (tools JSON-dumped), at least 1; the reply is a canned
sentence whose length depends on the last user message, and every streamed
word is one output token. Models whose name starts with ``"o"`` also report
reasoning tokens (inside the completion/output tokens). Prompt content is
never logged or stored (cache keys are SHA-256 digests).

Standard library only. Responses use HTTP/1.1 keep-alive: JSON bodies carry
``Content-Length``, streams use chunked transfer encoding and flush every
event (after ``chunk_delay`` seconds, except the first).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
import secrets
import socket
import socketserver
import string
import struct
import threading
import time
import zlib
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

__all__ = ["FakeProvider"]


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #

_REPLY = (
    "This is a simulated answer from the tollmeter fake provider. It streams a deterministic "
    "sentence so that tokens, latency and spend can be metered without calling a real model. "
    "Every word of this reply counts as exactly one output token, which keeps the arithmetic "
    "easy to check in demos, tests and benchmarks alike."
).split()

# Fixed padding strings for the ``obfuscation`` field of OpenAI stream events.
_OBF = ["yZ3", "qF0vB", "m", "Ab8Kc", "X2p", "rT", "gW4sHe", "n9", "Lk1", "dQ7Vu", "s", "Pz6", "oJ2Rm", "E"]

_B62 = string.ascii_letters + string.digits
_CACHE_MAX = 4096  # remembered Anthropic cache prefixes (digests only)

# Keys whose string values are prompt text; keys skipped entirely (binary / ids / markers).
_TEXT_KEYS = frozenset(
    {"text", "content", "input", "arguments", "output", "thinking", "refusal", "instructions", "system", "transcript"}
)
_SKIP_KEYS = frozenset(
    {
        "cache_control", "image_url", "source", "data", "file_data", "file_id", "file_url", "image",
        "input_audio", "audio", "signature", "encrypted_content", "citations", "id", "call_id", "tool_use_id",
    }
)

_MISSING = object()


def _j(obj: Any) -> str:
    """Compact JSON with raw UTF-8, as the APIs write it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _rand62(n: int) -> str:
    return "".join(secrets.choice(_B62) for _ in range(n))


def _walk_text(obj: Any, out: List[str], key: Optional[str] = None) -> None:
    if isinstance(obj, str):
        if key is None or key in _TEXT_KEYS:
            out.append(obj)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if k in _SKIP_KEYS:
                continue
            if k in ("input", "arguments") and isinstance(v, dict):  # tool_use input, parsed arguments
                out.append(_j(v))
            else:
                _walk_text(v, out, k)
    elif isinstance(obj, list):
        for item in obj:
            _walk_text(item, out, key)


def _text_of(obj: Any) -> str:
    out: List[str] = []
    _walk_text(obj, out)
    return "".join(out)


def _tools_text(tools: Any) -> str:
    if not isinstance(tools, list):
        return ""
    return "".join(
        _j({k: v for k, v in t.items() if k != "cache_control"}) if isinstance(t, dict) else _j(t) for t in tools
    )


def _tokens(chars: int) -> int:
    return math.ceil(chars / 4)


def _count_input(*parts: Any, tools: Any = None) -> int:
    chars = sum(len(_text_of(p)) for p in parts if p is not None) + len(_tools_text(tools))
    return max(1, _tokens(chars))


def _last_user_text(messages: Any) -> str:
    """Text of the last user message (chat / Responses / Anthropic shapes); only used as a seed."""
    if isinstance(messages, str):
        return messages
    if not isinstance(messages, list):
        return ""
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role", "user") == "user" and "content" in m:
            return _text_of(m.get("content"))
    return ""


def _reply_pieces(seed_text: str, salt: int = 0) -> List[str]:
    """A canned sentence of 8..40 words, chosen deterministically from the seed text."""
    seed = zlib.crc32(f"{salt}:{seed_text}".encode("utf-8"))
    n = 8 + seed % 33
    words = [_REPLY[i % len(_REPLY)] for i in range(n)]
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def _budget(pieces: List[str], limit: Optional[int], reasoning: int) -> Tuple[List[str], int, bool]:
    """Fit reasoning + visible pieces into ``limit`` tokens; returns (pieces, reasoning, cut)."""
    if limit is None or reasoning + len(pieces) <= limit:
        return pieces, reasoning, False
    limit = max(0, limit)
    reasoning = min(reasoning, max(limit - len(pieces), limit // 2))
    return pieces[: max(0, limit - reasoning)], reasoning, True


def _reasoning_tokens(model: str, pieces: List[str]) -> int:
    return 32 + 4 * len(pieces) if model.startswith("o") else 0


def _int_or_none(*values: Any) -> Optional[int]:
    for v in values:
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            return int(v)
    return None


class _BadRequest(Exception):
    pass


# --------------------------------------------------------------------------- #
# OpenAI bodies
# --------------------------------------------------------------------------- #


def _chat_usage(prompt: int, completion: int, *, cached: int = 0, reasoning: int = 0) -> Dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
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


def _fingerprint(model: str) -> str:
    return "fp_%010x" % (zlib.crc32(model.encode("utf-8")) * 977 % 16**10)


_Reply = Union[Dict[str, Any], Iterator[str]]


def _chat(body: Dict[str, Any], fp: "FakeProvider") -> _Reply:
    model = str(body.get("model") or "gpt-4o-mini")
    messages = body.get("messages") or []
    tools = [t for key in ("tools", "functions") if isinstance(body.get(key), list) for t in body[key]]
    prompt = _count_input(messages, tools=tools)
    limit = _int_or_none(body.get("max_completion_tokens"), body.get("max_tokens"))
    n = max(1, _int_or_none(body.get("n")) or 1)
    seed = _last_user_text(messages)

    choices: List[Tuple[List[str], int, str]] = []
    for i in range(n):
        pieces = _reply_pieces(seed, i)
        pieces, reasoning, cut = _budget(pieces, limit, _reasoning_tokens(model, pieces))
        choices.append((pieces, reasoning, "length" if cut else "stop"))
    completion = sum(len(p) + r for p, r, _ in choices)
    usage = _chat_usage(prompt, completion, reasoning=sum(r for _, r, _ in choices))
    cid = "chatcmpl-" + _rand62(29)
    created = int(time.time())
    sfp = _fingerprint(model)

    if not body.get("stream"):
        return {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": "".join(p), "refusal": None, "annotations": []},
                    "logprobs": None,
                    "finish_reason": finish,
                }
                for i, (p, _, finish) in enumerate(choices)
            ],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": sfp,
        }

    options = body.get("stream_options") or {}
    include_usage = bool(options.get("include_usage"))
    obfuscation = options.get("include_obfuscation", True) is not False
    head = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "service_tier": "default", "system_fingerprint": sfp}

    def gen() -> Iterator[str]:
        count = 0

        def chunk(chs: List[Dict[str, Any]], chunk_usage: Any = None) -> str:
            nonlocal count
            p = dict(head)
            p["choices"] = chs
            if include_usage:
                p["usage"] = chunk_usage
            if obfuscation:
                p["obfuscation"] = _OBF[count % len(_OBF)]
            count += 1
            return f"data: {_j(p)}\n\n"

        def delta(i: int, d: Dict[str, Any], finish: Optional[str] = None) -> List[Dict[str, Any]]:
            return [{"index": i, "delta": d, "logprobs": None, "finish_reason": finish}]

        for i, (pieces, _, finish) in enumerate(choices):
            yield chunk(delta(i, {"role": "assistant", "content": "", "refusal": None}))
            for piece in pieces:
                yield chunk(delta(i, {"content": piece}))
            yield chunk(delta(i, {}, finish))
        if include_usage:
            yield chunk([], usage)
        yield "data: [DONE]\n\n"

    return gen()


def _message_item(item_id: str, text: str, *, status: str = "completed") -> Dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}],
        "role": "assistant",
    }


def _responses(body: Dict[str, Any], fp: "FakeProvider") -> _Reply:
    model = str(body.get("model") or "gpt-4.1-mini")
    inp = body.get("input")
    instructions = body.get("instructions")
    tools = body.get("tools") or []
    prompt = _count_input(instructions, inp, tools=tools)
    limit = _int_or_none(body.get("max_output_tokens"))
    pieces = _reply_pieces(_last_user_text(inp))
    pieces, reasoning, cut = _budget(pieces, limit, _reasoning_tokens(model, pieces))
    text = "".join(pieces)
    usage = _resp_usage(prompt, len(pieces) + reasoning, reasoning=reasoning)
    rid = "resp_" + secrets.token_hex(25)
    msg_id = "msg_" + secrets.token_hex(25)
    created = int(time.time())
    status = "incomplete" if cut else "completed"
    reasoning_item = (
        {"id": "rs_" + secrets.token_hex(25), "type": "reasoning", "summary": []} if model.startswith("o") else None
    )
    req_reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else {}
    text_cfg = body.get("text") if isinstance(body.get("text"), dict) else {}

    def response(state: str, *, output: List[Dict[str, Any]], usage: Any, service_tier: str) -> Dict[str, Any]:
        done = state in ("completed", "incomplete")
        return {
            "id": rid,
            "object": "response",
            "created_at": created,
            "status": state,
            "background": False,
            "billing": {"payer": "developer"},
            "completed_at": int(time.time()) if state == "completed" else None,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if state == "incomplete" else None,
            "instructions": instructions,
            "max_output_tokens": limit,
            "max_tool_calls": body.get("max_tool_calls"),
            "model": model,
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "prompt_cache_key": body.get("prompt_cache_key"),
            "prompt_cache_retention": body.get("prompt_cache_retention"),
            "reasoning": {
                "effort": req_reasoning.get("effort", "medium" if reasoning_item else None),
                "summary": req_reasoning.get("summary"),
            },
            "safety_identifier": body.get("safety_identifier"),
            "service_tier": service_tier if done else body.get("service_tier") or "auto",
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": {
                "format": text_cfg.get("format") or {"type": "text"},
                "verbosity": text_cfg.get("verbosity", "medium"),
            },
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": tools,
            "top_logprobs": body.get("top_logprobs", 0),
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation", "disabled"),
            "usage": usage,
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }

    final_output = ([reasoning_item] if reasoning_item else []) + [_message_item(msg_id, text, status=status)]
    if not body.get("stream"):
        return response(status, output=final_output, usage=usage, service_tier="default")

    def gen() -> Iterator[str]:
        seq = 0

        def ev(e: Dict[str, Any]) -> str:
            nonlocal seq
            e = {"type": e.pop("type"), "sequence_number": seq, **e}
            seq += 1
            return f"event: {e['type']}\ndata: {_j(e)}\n\n"

        for lifecycle in ("response.created", "response.in_progress"):
            yield ev({"type": lifecycle, "response": response("in_progress", output=[], usage=None, service_tier="")})
        oi = 0
        if reasoning_item:
            yield ev({"type": "response.output_item.added", "output_index": 0, "item": reasoning_item})
            yield ev({"type": "response.output_item.done", "output_index": 0, "item": reasoning_item})
            oi = 1
        pending = {"id": msg_id, "type": "message", "status": "in_progress", "content": [], "role": "assistant"}
        yield ev({"type": "response.output_item.added", "output_index": oi, "item": pending})
        loc = {"item_id": msg_id, "output_index": oi, "content_index": 0}
        yield ev({"type": "response.content_part.added", **loc,
                  "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}})
        for i, piece in enumerate(pieces):
            yield ev({"type": "response.output_text.delta", **loc, "delta": piece, "logprobs": [],
                      "obfuscation": _OBF[i % len(_OBF)]})
        yield ev({"type": "response.output_text.done", **loc, "text": text, "logprobs": []})
        yield ev({"type": "response.content_part.done", **loc,
                  "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": text}})
        yield ev({"type": "response.output_item.done", "output_index": oi,
                  "item": _message_item(msg_id, text, status=status)})
        yield ev({"type": f"response.{status}",
                  "response": response(status, output=final_output, usage=usage, service_tier="default")})

    return gen()


def _vector(key: str, dims: int) -> List[float]:
    rng = random.Random(zlib.crc32(key.encode("utf-8")))
    vec = [rng.gauss(0.0, 1.0) for _ in range(dims)]
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def _embeddings(body: Dict[str, Any], fp: "FakeProvider") -> _Reply:
    model = str(body.get("model") or "text-embedding-3-small")
    raw = body.get("input")
    if isinstance(raw, str) or (isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw)):
        items = [raw]
    elif isinstance(raw, list) and raw:
        items = raw
    else:
        raise _BadRequest("'input' is a required property and must be a non-empty string or array.")
    dims = _int_or_none(body.get("dimensions")) or (3072 if "large" in model else 1536)
    if dims < 1:
        raise _BadRequest("'dimensions' must be a positive integer.")
    b64 = body.get("encoding_format") == "base64"
    data = []
    prompt = 0
    for i, item in enumerate(items):
        if isinstance(item, str):
            prompt += max(1, _tokens(len(item)))
            vec = _vector(item, dims)
        else:
            prompt += max(1, len(item) if isinstance(item, list) else 1)
            vec = _vector(_j(item), dims)
        packed = struct.pack(f"<{dims}f", *vec)
        emb: Any = base64.b64encode(packed).decode("ascii") if b64 else list(struct.unpack(f"<{dims}f", packed))
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": prompt, "total_tokens": prompt}}


# --------------------------------------------------------------------------- #
# Anthropic bodies
# --------------------------------------------------------------------------- #


def _sse(event: str, data: Dict[str, Any]) -> str:
    return f"event: {event}\ndata: {_j(data)}\n\n"


_PING = 'event: ping\ndata: {"type": "ping"}\n\n'


def _messages(body: Dict[str, Any], fp: "FakeProvider") -> _Reply:
    max_tokens = _int_or_none(body.get("max_tokens"))
    if max_tokens is None:
        raise _BadRequest("max_tokens: Field required")
    if max_tokens < 1:
        raise _BadRequest("max_tokens: Input should be greater than or equal to 1")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise _BadRequest("messages: Field required")
    model = str(body.get("model") or "claude-sonnet-4-6")
    usage_in = fp._anthropic_input_usage(model, body.get("tools"), body.get("system"), messages)
    full = _reply_pieces(_last_user_text(messages))
    pieces = full[:max_tokens]
    stop_reason = "max_tokens" if len(pieces) < len(full) else "end_turn"
    usage = {**usage_in, "output_tokens": len(pieces), "service_tier": "standard", "inference_geo": "global"}
    mid = "msg_01" + _rand62(22)

    if not body.get("stream"):
        return {
            "model": model,
            "id": mid,
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": "".join(pieces)}],
            "container": None,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "stop_details": None,
            "usage": usage,
        }

    def gen() -> Iterator[str]:
        start_usage = {**usage, "output_tokens": 1}
        yield _sse("message_start", {"type": "message_start", "message": {
            "model": model, "id": mid, "type": "message", "role": "assistant", "content": [],
            "stop_reason": None, "stop_sequence": None, "stop_details": None, "usage": start_usage}})
        yield _sse("content_block_start",
                   {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
        yield _PING
        for piece in pieces:
            yield _sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                               "delta": {"type": "text_delta", "text": piece}})
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
        yield _sse("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None, "stop_details": None},
            "usage": {
                "input_tokens": usage["input_tokens"],
                "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
                "cache_read_input_tokens": usage["cache_read_input_tokens"],
                "output_tokens": len(pieces),
            },
        })
        yield _sse("message_stop", {"type": "message_stop"})

    return gen()


# --------------------------------------------------------------------------- #
# errors and headers
# --------------------------------------------------------------------------- #


def _openai_error(status: int, message: str, model: str = "") -> Dict[str, Any]:
    if status == 429:
        return {"error": {
            "message": (f"Rate limit reached for {model} in organization org-fakeprovider on requests per min "
                        "(RPM): Limit 500, Used 500, Requested 1. Please try again in 0s."),
            "type": "requests", "param": None, "code": "rate_limit_exceeded"}}
    if status >= 500:
        return {"error": {"message": "The server had an error while processing your request. Sorry about that!",
                          "type": "server_error", "param": None, "code": None}}
    return {"error": {"message": message, "type": "invalid_request_error", "param": None,
                      "code": "unknown_url" if status == 404 else None}}


_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error", 404: "not_found_error", 429: "rate_limit_error", 500: "api_error",
}


def _anthropic_error(status: int, message: str, request_id: str) -> Dict[str, Any]:
    if status == 429:
        message = "This request would exceed your organization's rate limit (fake provider). Please try again later."
    elif status >= 500:
        message = "Internal server error"
    return {"type": "error", "error": {"type": _ANTHROPIC_ERROR_TYPES.get(status, "api_error"), "message": message},
            "request_id": request_id}


# --------------------------------------------------------------------------- #
# Gemini API (google-genai) and Bedrock Converse (boto3)
# --------------------------------------------------------------------------- #


def _gemini(body: Dict[str, Any], fp: "FakeProvider", model: str, stream: bool) -> _Reply:
    """``POST /v1[beta]/models/{model}:generateContent`` (or ``:streamGenerateContent?alt=sse``)."""
    contents = body.get("contents")
    config = body.get("generationConfig") or {}
    prompt = _count_input(contents, body.get("systemInstruction"), tools=body.get("tools"))
    seed = _text_of(contents[-1]) if isinstance(contents, list) and contents else _text_of(contents)
    pieces, _, cut = _budget(_reply_pieces(seed), _int_or_none(config.get("maxOutputTokens")), 0)
    thoughts = 12 + 2 * len(pieces) if "2.5" in model or "3" in model.split("-")[1:2] else 0
    response_id = _rand62(22)

    def usage(out: int) -> Dict[str, Any]:
        u: Dict[str, Any] = {"promptTokenCount": prompt, "candidatesTokenCount": out,
                             "totalTokenCount": prompt + out + thoughts,
                             "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]}
        if thoughts:
            u["thoughtsTokenCount"] = thoughts
        return u

    def chunk(text: str, out: int, finish: Optional[str]) -> Dict[str, Any]:
        candidate: Dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        return {"candidates": [candidate], "usageMetadata": usage(out), "modelVersion": model,
                "responseId": response_id}

    finish = "MAX_TOKENS" if cut else "STOP"
    if not stream:
        return chunk("".join(pieces), len(pieces), finish)

    def gen() -> Iterator[str]:
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            yield "data: " + _j(chunk(piece, i + 1, finish if last else None)) + "\r\n\r\n"

    return gen()


def _converse(body: Dict[str, Any], fp: "FakeProvider", model: str, stream: bool) -> Any:
    """``POST /model/{modelId}/converse`` (or ``/converse-stream``, AWS event-stream frames)."""
    messages = body.get("messages")
    tool_config = body.get("toolConfig") or {}
    prompt = _count_input(messages, body.get("system"), tools=tool_config.get("tools"))
    limit = _int_or_none((body.get("inferenceConfig") or {}).get("maxTokens"))
    pieces, _, cut = _budget(_reply_pieces(_last_user_text(messages)), limit, 0)
    stop = "max_tokens" if cut else "end_turn"
    usage = {"inputTokens": prompt, "outputTokens": len(pieces), "totalTokens": prompt + len(pieces)}
    if not stream:
        return {"output": {"message": {"role": "assistant", "content": [{"text": "".join(pieces)}]}},
                "stopReason": stop, "usage": usage, "metrics": {"latencyMs": 120}}

    def gen() -> Iterator[bytes]:
        yield _aws_event("messageStart", {"role": "assistant"})
        for piece in pieces:
            yield _aws_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}})
        yield _aws_event("contentBlockStop", {"contentBlockIndex": 0})
        yield _aws_event("messageStop", {"stopReason": stop})
        yield _aws_event("metadata", {"usage": usage, "metrics": {"latencyMs": 120}})

    return ("application/vnd.amazon.eventstream", gen())


def _aws_event(event_type: str, payload: Dict[str, Any]) -> bytes:
    """One AWS event-stream message: prelude, string headers, payload, and their CRC32s."""
    headers = b""
    for name, value in ((":event-type", event_type), (":content-type", "application/json"),
                        (":message-type", "event")):
        raw_name, raw_value = name.encode(), value.encode()
        headers += struct.pack("!B", len(raw_name)) + raw_name + b"\x07" + struct.pack("!H", len(raw_value)) + raw_value
    body = _j(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack("!II", total, len(headers))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    message = prelude + headers + body
    return message + struct.pack("!I", zlib.crc32(message))


#: Path prefixes that keep the base URLs of the APIs apart (for attribution by base URL).
_API_PREFIXES = ("/anthropic", "/gemini", "/bedrock")


def _pattern_route(path: str) -> Optional[Tuple[str, Callable[[Dict[str, Any], "FakeProvider"], Any]]]:
    from urllib.parse import unquote

    gemini = re.match(r"^/v1(?:beta|alpha)?/models/([^:]+):(\w+)$", path)
    if gemini:
        model, method = gemini.groups()
        if method in ("generateContent", "streamGenerateContent"):
            stream = method == "streamGenerateContent"
            return "gemini", lambda body, fp: _gemini(body, fp, unquote(model), stream)
    if path.startswith("/model/") and path.endswith(("/converse", "/converse-stream")):
        model, _, op = path[len("/model/"):].rpartition("/")
        stream = op == "converse-stream"
        return "bedrock", lambda body, fp: _converse(body, fp, unquote(model), stream)
    return None


_ROUTES: Dict[str, Tuple[str, Callable[[Dict[str, Any], "FakeProvider"], _Reply]]] = {
    "/v1/chat/completions": ("openai", _chat),
    "/v1/responses": ("openai", _responses),
    "/v1/embeddings": ("openai", _embeddings),
    "/v1/messages": ("anthropic", _messages),
}


# --------------------------------------------------------------------------- #
# HTTP
# --------------------------------------------------------------------------- #


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    provider: "FakeProvider"

    def server_bind(self) -> None:
        # Skip HTTPServer.server_bind's getfqdn() reverse lookup.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], OSError):  # client went away / provider stopped
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tollmeter-fake-provider/1.0"
    sys_version = ""
    disable_nagle_algorithm = True
    server: _Server

    # -- plumbing ------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence request logging
        return

    def setup(self) -> None:
        super().setup()
        self.server.provider._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.provider._track(self.connection, False)

    def do_POST(self) -> None:
        self._handle()

    do_GET = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_POST

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    # -- dispatch ------------------------------------------------------------

    def _handle(self) -> None:
        fp = self.server.provider
        fp._count_request()
        self._t0 = time.monotonic()
        self._sent = False
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        for prefix in _API_PREFIXES:  # one origin, a distinct base URL per API
            if path.startswith(prefix + "/"):
                path = path[len(prefix):]
                break
        route = (_ROUTES.get(path) or _pattern_route(path)) if self.command == "POST" else None
        if route is not None:
            self._flavor = route[0]
        else:
            self._flavor = "anthropic" if "anthropic-version" in self.headers else "openai"
        self._request_id = "req_" + (("011C" + _rand62(20)) if self._flavor == "anthropic" else secrets.token_hex(16))
        try:
            raw = self._read_body()
            if fp.latency > 0:
                time.sleep(fp.latency)
            if route is None:
                msg = f"Invalid URL ({self.command} {path})" if self._flavor == "openai" else "Not Found"
                return self._error(404, msg)
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = None
            if not isinstance(body, dict):
                return self._error(400, "We could not parse the JSON body of your request.")
            model = body.get("model")
            if model == "fail-429":
                return self._error(429, "", model=model, headers={"retry-after": "0", "x-should-retry": "true"})
            if model == "fail-500":
                return self._error(500, "", model=model)
            try:
                reply = route[1](body, fp)
            except _BadRequest as exc:
                return self._error(400, str(exc))
            if isinstance(reply, dict):
                self._send_json(200, reply)
            elif isinstance(reply, tuple):  # (content type, binary frames)
                self._send_stream(reply[1], content_type=reply[0])
            else:
                self._send_stream(reply)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        except Exception:  # a bug here must not hang the client
            self.close_connection = True
            if not self._sent:
                try:
                    self._error(500, "")
                except OSError:
                    pass

    # -- responses -----------------------------------------------------------

    def _common_headers(self) -> List[Tuple[str, str]]:
        if self._flavor == "bedrock":
            return [("x-amzn-RequestId", self._request_id)]
        if self._flavor == "gemini":
            return [("server", "scaffolding on HTTPServer2")]
        if self._flavor == "anthropic":
            return [
                ("request-id", self._request_id),
                ("anthropic-organization-id", "00000000-0000-4000-8000-00000fa4e000"),
                ("anthropic-ratelimit-requests-limit", "4000"),
                ("anthropic-ratelimit-requests-remaining", "3999"),
            ]
        return [
            ("x-request-id", self._request_id),
            ("openai-organization", "user-fakeprovider"),
            ("openai-processing-ms", str(int((time.monotonic() - self._t0) * 1000))),
            ("openai-version", "2020-10-01"),
            ("x-ratelimit-limit-requests", "10000"),
            ("x-ratelimit-remaining-requests", "9999"),
        ]

    def _error(self, status: int, message: str, *, model: Any = "", headers: Optional[Dict[str, str]] = None) -> None:
        if self._flavor == "anthropic":
            body = _anthropic_error(status, message, self._request_id)
        else:
            body = _openai_error(status, message, str(model or ""))
        self._send_json(status, body, headers)

    def _send_json(self, status: int, obj: Dict[str, Any], headers: Optional[Dict[str, str]] = None) -> None:
        data = _j(obj).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in self._common_headers():
            self.send_header(k, v)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self._sent = True
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_stream(self, events: Iterator[Any], content_type: str = "text/event-stream; charset=utf-8") -> None:
        delay = self.server.provider.chunk_delay
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for k, v in self._common_headers():
            self.send_header(k, v)
        self.end_headers()
        self._sent = True
        first = True
        for event in events:
            if not first and delay > 0:
                time.sleep(delay)
            first = False
            data = event if isinstance(event, bytes) else event.encode("utf-8")
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.write(b"0\r\n\r\n")


# --------------------------------------------------------------------------- #
# public API
# --------------------------------------------------------------------------- #


class FakeProvider:
    """A fake OpenAI + Anthropic HTTP API on loopback, served from a daemon thread.

    ``latency`` is slept before every response; ``chunk_delay`` between stream events.
    ``requests`` counts the requests served, ``connections`` the TCP connections accepted.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0, chunk_delay: float = 0.0) -> None:
        self.host = host
        self.port = port
        self.latency = float(latency)
        self.chunk_delay = float(chunk_delay)
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._requests = 0
        self._connections = 0
        self._open: set = set()
        self._cache: "OrderedDict[str, None]" = OrderedDict()

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> "FakeProvider":
        if self._server is not None:
            return self
        server_cls = _Server
        if ":" in self.host:
            server_cls = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
        server = server_cls((self.host, self.port), _Handler)
        server.provider = self
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"tollmeter-fake-provider:{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()
        with self._lock:
            conns = list(self._open)
        for conn in conns:  # idle keep-alive connections would otherwise keep their threads
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> "FakeProvider":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- addresses & counters ------------------------------------------------

    @property
    def _origin(self) -> str:
        if self._server is None and not self.port:
            raise RuntimeError("FakeProvider is not started")
        host = self.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self._origin + "/v1"

    @property
    def gemini_base_url(self) -> str:
        """For ``genai.Client(api_key=..., http_options={"base_url": fp.gemini_base_url})``."""
        return self._origin + "/gemini"

    @property
    def bedrock_endpoint_url(self) -> str:
        """For ``boto3.client("bedrock-runtime", endpoint_url=fp.bedrock_endpoint_url, ...)``."""
        return self._origin + "/bedrock"

    @property
    def anthropic_base_url(self) -> str:
        return self._origin + "/anthropic"

    @property
    def requests(self) -> int:
        return self._requests

    @property
    def connections(self) -> int:
        return self._connections

    def _count_request(self) -> None:
        with self._lock:
            self._requests += 1

    def _track(self, conn: socket.socket, opened: bool) -> None:
        with self._lock:
            if opened:
                self._connections += 1
                self._open.add(conn)
            else:
                self._open.discard(conn)

    # -- Anthropic prompt caching --------------------------------------------

    def _anthropic_input_usage(self, model: str, tools: Any, system: Any, messages: List[Any]) -> Dict[str, Any]:
        """Split the input tokens by ``cache_control`` breakpoints (tools, then system, then messages).

        The prefix up to the last breakpoint is a cache write the first time it is seen and a
        cache read after that; when a shorter breakpoint prefix was seen, it is read and the rest
        written. Written tokens are attributed to the TTL of the breakpoint that closes them.
        """
        digest = hashlib.sha256(model.encode("utf-8"))
        chars = 0
        breakpoints: List[Tuple[int, str, str]] = []  # (chars, ttl, digest)

        def add(role: str, block: Any, text: str) -> None:
            nonlocal chars
            chars += len(text)
            payload = {k: v for k, v in block.items() if k != "cache_control"} if isinstance(block, dict) else block
            digest.update(_j([role, payload]).encode("utf-8"))
            cc = block.get("cache_control") if isinstance(block, dict) else None
            if isinstance(cc, dict):
                ttl = "1h" if cc.get("ttl") == "1h" else "5m"
                breakpoints.append((chars, ttl, digest.copy().hexdigest()))

        for tool in tools if isinstance(tools, list) else []:
            add("tool", tool, _tools_text([tool]))
        if isinstance(system, str):
            add("system", system, system)
        elif isinstance(system, list):
            for block in system:
                add("system", block, _text_of(block))
        for m in messages:
            if not isinstance(m, dict):
                continue
            role, content = str(m.get("role", "user")), m.get("content")
            if isinstance(content, list):
                for block in content:
                    add(role, block, _text_of(block))
            else:
                add(role, content, _text_of(content))

        total = max(1, _tokens(chars))
        read = written = 0
        split = {"5m": 0, "1h": 0}
        if breakpoints:
            with self._lock:
                hit = -1
                for i, (_, _, key) in enumerate(breakpoints):
                    if key in self._cache:
                        hit = i
                        self._cache.move_to_end(key)
                for _, _, key in breakpoints:
                    self._cache[key] = None
                while len(self._cache) > _CACHE_MAX:
                    self._cache.popitem(last=False)
            read = _tokens(breakpoints[hit][0]) if hit >= 0 else 0
            prev = read
            for c, ttl, _ in breakpoints[hit + 1:]:
                upto = _tokens(c)
                split[ttl] += upto - prev
                prev = upto
            written = prev - read
            total = max(total, prev)
        return {
            "input_tokens": total - read - written,
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
            "cache_creation": {"ephemeral_5m_input_tokens": split["5m"], "ephemeral_1h_input_tokens": split["1h"]},
        }


def _main(argv: Optional[List[str]] = None) -> None:
    """``python -m tollmeter.demo.fake_provider [--port N]``: serve in the foreground (e.g. for benchmarks)."""
    import argparse

    parser = argparse.ArgumentParser(description="Fake OpenAI + Anthropic API on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--chunk-delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    with FakeProvider(args.host, args.port, args.latency, args.chunk_delay) as fp:
        print(f"OpenAI base_url:    {fp.openai_base_url}\nAnthropic base_url: {fp.anthropic_base_url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    _main()
