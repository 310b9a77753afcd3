"""Anthropic Messages API response bodies, as the API sends them, for tests.

Every constant here is what ``POST https://api.anthropic.com/v1/messages``
returns: plain dicts for JSON bodies, and ``str`` for SSE streams in the exact
wire form (``event: NAME\\ndata: {json}\\n\\n``, compact JSON, one ``ping`` after
the first ``content_block_start`` as the live API sends it). Serve them with
respx, e.g.::

    with respx.mock(using="httpcore2") as router:
        router.post("https://api.anthropic.com/v1/messages").respond(
            200, text=STREAM_PLAIN, headers=STREAM_HEADERS)   # or json=MESSAGE_PLAIN, headers=HEADERS
        client = anthropic.Anthropic(api_key="k", max_retries=0)
        with client.messages.stream(model=MODEL, max_tokens=1024, messages=[...]) as stream:
            usage = stream.get_final_message().usage

respx 0.23 itself has no "httpcore2" mocker: ``pytest_httpx2`` registers it
when it is imported, which pytest does through its plugin entry point. Outside
pytest (or with ``-p no:pytest_httpx2``) ``using="httpcore2"`` silently mocks
nothing and the SDK goes to the network; import ``pytest_httpx2`` first there.
respx ``side_effect`` responses must be ``httpx.Response`` (not httpx2).

Shapes follow the types of anthropic 2.14 (``anthropic/types/message.py``,
``usage.py``, ``cache_creation.py``, ``server_tool_usage.py``,
``output_tokens_details.py``, ``raw_message_*_event.py``,
``message_delta_usage.py``) and recorded traffic of the current API:

* A message carries ``container``, ``stop_details`` (both ``null`` here) and a
  ``usage`` with ``service_tier`` and ``inference_geo`` (``"global"`` for
  claude-sonnet-4-6, ``"not_available"`` for some older models).
* ``usage.cache_creation`` splits ``cache_creation_input_tokens`` by TTL
  (``ephemeral_5m_input_tokens`` + ``ephemeral_1h_input_tokens``).
* Thinking tokens ARE part of ``output_tokens`` (billed as output). The current
  API also reports them as ``usage.output_tokens_details.thinking_tokens`` -- a
  read-only breakdown that is always <= ``output_tokens``: never add it to
  ``output_tokens``. The API sends it only when the reply had a thinking block
  (in streams: on ``message_delta.usage`` only). Older API versions and older
  SDKs have no such field, so a meter must not depend on it.
* ``usage.server_tool_use`` appears when server tools ran and carries both
  ``web_search_requests`` and ``web_fetch_requests``.
* ``message_delta.usage`` carries CUMULATIVE totals: ``output_tokens`` always,
  and in the current API also ``input_tokens``, ``cache_creation_input_tokens``,
  ``cache_read_input_tokens`` (and ``server_tool_use`` /
  ``output_tokens_details`` when applicable). It never carries the
  ``cache_creation`` TTL split, ``service_tier`` or ``inference_geo``: those
  exist only in ``message_start``. With server tools, ``input_tokens`` grows
  during the turn (search results are input), so the ``message_start`` value is
  NOT the final one -- see STREAM_WEB_SEARCH.
* ``tool_use`` blocks carry ``"caller": {"type": "direct"}``.
* In-stream errors arrive as ``event: error`` after a 200 response. The SDK
  (2.14 and 1.17) raises a plain ``anthropic.APIStatusError`` with
  ``status_code == 200`` and ``.type == "overloaded_error"`` -- NOT
  ``OverloadedError`` (that one is only for an HTTP 529) -- when iteration
  reaches the event; the events before it have already been yielded.

Header dicts leave out hop-by-hop and framing headers (``content-length``,
``transfer-encoding``, ``connection``, ``content-encoding``) so that respx can
serve them as given. Tests that serve a 429 or 529 should build the client
with ``max_retries=0``: the SDK retries those (and honours ``retry-after``).

``EXPECTED_USAGE`` at the end gives, for every body, the usage the SDK ends up
with (``Message.usage`` for JSON bodies, ``get_final_message().usage`` for
streams), checked against anthropic 2.14 and 1.17.
"""

from __future__ import annotations

import json
from typing import Any, Dict

import pydantic

__all__ = [
    "MODEL",
    "WeatherReport",
    "MESSAGE_PLAIN",
    "MESSAGE_CACHED",
    "MESSAGE_THINKING",
    "MESSAGE_TOOL_USE",
    "MESSAGE_WEB_SEARCH",
    "MESSAGE_OLD_USAGE",
    "MESSAGE_PARSED",
    "STREAM_PLAIN",
    "STREAM_CACHED",
    "STREAM_THINKING",
    "STREAM_TOOL_USE",
    "STREAM_WEB_SEARCH",
    "STREAM_ERROR",
    "STREAM_OLD_USAGE",
    "STREAM_ERROR_EVENT",
    "ERROR_429",
    "ERROR_529",
    "HEADERS",
    "STREAM_HEADERS",
    "ERROR_429_HEADERS",
    "ERROR_529_HEADERS",
    "REQUEST_ID",
    "EXPECTED_USAGE",
]

# A current model id that neither anthropic 2.14 nor 1.17 warns about
# (both list claude-sonnet-4-5 in DEPRECATED_MODELS and emit a
# DeprecationWarning when a request names it). Use it as the request's model.
MODEL = "claude-sonnet-4-6"

REQUEST_ID = "req_011CiuczPfieVfaoYGBz134b"


def _sse(event: str, data: Dict[str, Any]) -> str:
    # The API writes compact JSON and raw UTF-8.
    return "event: %s\ndata: %s\n\n" % (event, json.dumps(data, separators=(",", ":"), ensure_ascii=False))


# The API writes the ping payload with a space after the colon.
_PING = 'event: ping\ndata: {"type": "ping"}\n\n'


def _text_deltas(index: int, *parts: str) -> str:
    return "".join(
        _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": part}})
        for part in parts
    )


def _json_deltas(index: int, *parts: str) -> str:
    return "".join(
        _sse(
            "content_block_delta",
            {"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": part}},
        )
        for part in parts
    )


def _block_stop(index: int) -> str:
    return _sse("content_block_stop", {"type": "content_block_stop", "index": index})


def _message_stop() -> str:
    return _sse("message_stop", {"type": "message_stop"})


def _message_start(message_id: str, usage: Dict[str, Any], model: str = MODEL) -> str:
    return _sse(
        "message_start",
        {
            "type": "message_start",
            "message": {
                "model": model,
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "stop_details": None,
                "usage": usage,
            },
        },
    )


def _message_delta(stop_reason: str, usage: Dict[str, Any]) -> str:
    return _sse(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None, "stop_details": None},
            "usage": usage,
        },
    )


# --- Opaque values (thinking signatures, encrypted search results) ---------

_SIGNATURE_1 = (
    "EqImZaYMEtKJGF2VDuiBNgkWb2sRPReNbA/TkB/yOaGglfIPk5VlDPk4C47bIkprJIoekk6P0K4uGpSSozBfGIy2EJAPnjR/rohtxlB3"
    "lex0XEw/yy6yxz4Uk0yGfuBXunJJm/oSHoNrKsFXJu59awr2qxPDjpLK4NFQV7FZmH+UzHQR1xfxRXmyqhAPu7NPpZP+rtJySLdi46tY"
    "BfB2WiucHX4PN8RJIb0/ZWTq338UKnJmjEfiI9Fu3YxHtGr8W67iYfU7JhUtJjuoOwN81JYuQ0gBJWuIXpyQUfMgsNuD856nrb0NdObe"
    "x/PfrsyPZGVmZBp7omYPMBH8NXApHFeZDRoAkSaJGfJdnQYS3zWdYCaiQPRYml15Hx3ZfP76d3p7TxUkGr9XvUN6"
)
_SIGNATURE_2 = (
    "EqEphAU08/OHXCWwi+oGwodM+qTdF7LYQoRd6CpbxTmIiseAVKI5nM/J/MLaMc490Wa9zTozhH5buwf9B8pHeEIxsZr0WHLO77n8WfT5"
    "XRQ4Gjp4MlY0e5/85pzXAHrop1jMpBXVqR7oY8i2wDN64y1vyqJVFs3y+Lhldma+8hW5KCv+IAcml+d3zqclnNOY+nmo71knjIwhBQPM"
    "+LmmGoa/7yNv/N8x0982B0A2SoA9w5ZTQotr1SEP6L1a5XWpldDnhGvT6uCAIYgmhoIE33DGLpsBxswmLCR5nrkejg9TroSHjnvIxhvi"
    "jw4/MEYK"
)
_ENC = [
    "EvmBc48HwuTpEHFTnPmBm4MzsUZzgojOeoHxP7KF4ODx7ULsj+TxM9dyI2ofZHFQEqs9bRI2q03IH+XGJ/C3pKldJEDiI/d3OL/zGGXif"
    "Cn9qtU5KbRu/oNnVmsyW1EXuF0EVo11cLQEYlSEn0uD9RAc/OvJOvjgGhVDRQrnxy5FwSHRbNnprdHyQmcmieuDkn6zUxZHDsywLmzlEk"
    "TwBKIWzUIVm9s4EUPcH3QCVv6Nau3q",
    "Ev8hC4a1PfAc+ClDDC4z7k+gTofCNEpygKwtRVjNBP5ACQMEu4GN+jCDeT7vchuo0aZuqH6L1eNk+IFOsDf7Olcy1eG0uqIjZ/1Y+w3WI"
    "QMSoL3hQW4pDhWq12Hegav4SJk+sUsLdS8oRHIAQ132VPj8jFI+CPfhTzdbLgBVYRV5R4CnMz+BxgEXQ9EWJGaWCmQFTE2hOxWV9Yfaw"
    "Ceo5LfI4Zhjw1O4/H4mSLmepCUL09W3",
    "EvOgbbuzz4Ej6IbAgZHV0M0E06+VzOS2rvSxpDoVBwoio1z1GmDVc44MoASgiK4+fUMAdMwRv+6A5YkXqIYQvrx5QM8T2EM8usE0O72m+"
    "XV+2GETeumvScQLnaGkMhOZJVRBpr6xTZ+RIgN7D3xE+KwZsTesfUq1hEl2d3fEHv7kjDNP+hXveQRKdRPRgff+c/5EYzXq8u41E5QXJL"
    "+GQ/NcIZrRoYJH4xy0XTt/5eB8ZAYo",
    "EvN9rnNnTbokalhgUB7XVABTwFbWZR7w7TK2A+a9SkBfEGRj/96WE1zsbcFG2gxHGg3VqUmi7yY/+ERvglAwxV/I9G3iB8/CoWbp4PCNj"
    "DS4FAzuu2lzncAjpN5JfAzp7YwgK3hqV0hMQb29+adCZ6c9TXuOq2QeKqQpEzWA589/jDhz6FX/wnNtI4wxPhcsV44XUT1eQs+RM+MFv9"
    "5pYmm+hjVgRVbAD39Hk/dcIK+Ah6HK",
]
_ENC_INDEX = [
    "EogQpgh7jYtTKfpt4hr8EkOfFTUYa3/9tfhyLDsianWe5Kw8v4nYxqrCH8fXS0tHkURfQbxCMnA/Lz48",
    "Eoji6JQwUxBlQP4+gYY7ps4Zp3b9CRoBeeLRO9dy6l8K4Es7HgwwmfnTlTHuE1+D3S1ymkLGx6ryARuj",
]

_SEARCH_RESULTS_1 = [
    {
        "type": "web_search_result",
        "title": "Lisbon, Lisbon, Portugal Weather Forecast | AccuWeather",
        "url": "https://www.accuweather.com/en/pt/lisbon/274087/weather-forecast/274087",
        "encrypted_content": _ENC[0],
        "page_age": None,
    },
    {
        "type": "web_search_result",
        "title": "Weather for Lisbon, Portugal - timeanddate.com",
        "url": "https://www.timeanddate.com/weather/portugal/lisbon",
        "encrypted_content": _ENC[1],
        "page_age": "3 hours ago",
    },
]
_SEARCH_RESULTS_2 = [
    {
        "type": "web_search_result",
        "title": "Lisbon 14 day weather forecast - timeanddate.com",
        "url": "https://www.timeanddate.com/weather/portugal/lisbon/ext",
        "encrypted_content": _ENC[2],
        "page_age": "5 hours ago",
    },
    {
        "type": "web_search_result",
        "title": "Lisboa - IPMA",
        "url": "https://www.ipma.pt/en/otempo/prev.localidade.hora/#Lisboa&Lisboa",
        "encrypted_content": _ENC[3],
        "page_age": None,
    },
]
_CITATION_1 = {
    "type": "web_search_result_location",
    "cited_text": "Today: Sunny. High 27°C. Winds NNW at 15 to 25 km/h. ",
    "url": "https://www.timeanddate.com/weather/portugal/lisbon",
    "title": "Weather for Lisbon, Portugal - timeanddate.com",
    "encrypted_index": _ENC_INDEX[0],
}
_CITATION_2 = {
    "type": "web_search_result_location",
    "cited_text": "Saturday 29 / 18 °C Sunny. Sunday 31 / 19 °C Sunny. ",
    "url": "https://www.timeanddate.com/weather/portugal/lisbon/ext",
    "title": "Lisbon 14 day weather forecast - timeanddate.com",
    "encrypted_index": _ENC_INDEX[1],
}


# --- Structured output (messages.parse) -------------------------------------


class WeatherReport(pydantic.BaseModel):
    """Pass as ``client.messages.parse(..., output_format=WeatherReport)``.

    Both anthropic 2.14 and 1.17 name the parameter ``output_format`` (on
    ``messages.parse``, ``messages.stream`` and ``beta.messages.parse``); the
    SDK sends it as ``output_config.format`` (``{"type": "json_schema",
    "schema": ...}``), the API's current field.
    """

    city: str
    temperature_c: float
    conditions: str


# === Non-streaming bodies ===================================================

# usage: input=25 output=96 cache_read=0 cache_write=0 (5m=0, 1h=0)
MESSAGE_PLAIN: Dict[str, Any] = {
    "model": "claude-sonnet-4-6",
    "id": "msg_01fngPE3QNA3EH3foiEu1uMT",
    "type": "message",
    "role": "assistant",
    "content": [
        {
            "type": "text",
            "text": (
                "A token bucket holds up to N tokens and refills at a fixed rate. Each request takes one token; "
                "when the bucket is empty, requests wait or are rejected. It allows short bursts up to N while "
                "holding the long-run rate to the refill rate."
            ),
        }
    ],
    "container": None,
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "stop_details": None,
    "usage": {
        "input_tokens": 25,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 96,
        "service_tier": "standard",
        "inference_geo": "global",
    },
}

# usage: input=12 output=318 cache_read=48213 cache_write=3070 (5m=254, 1h=2816); total input 51295
MESSAGE_CACHED: Dict[str, Any] = {
    "model": "claude-sonnet-4-6",
    "id": "msg_01kQCgL5E3sYcX5T7sSjcAhb",
    "type": "message",
    "role": "assistant",
    "content": [
        {
            "type": "text",
            "text": (
                "Section 4.2 caps the supplier's liability at the fees paid in the twelve months before the claim, "
                "except for breaches of confidentiality and indemnity obligations, which are uncapped. Section 9.1 "
                "lets either party terminate for convenience on 90 days' written notice."
            ),
        }
    ],
    "container": None,
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "stop_details": None,
    "usage": {
        "input_tokens": 12,
        "cache_creation_input_tokens": 3070,
        "cache_read_input_tokens": 48213,
        "cache_creation": {"ephemeral_5m_input_tokens": 254, "ephemeral_1h_input_tokens": 2816},
        "output_tokens": 318,
        "service_tier": "standard",
        "inference_geo": "global",
    },
}

# usage: input=61 output=1187 (thinking_tokens=934 of them, already inside output) cache_read=0 cache_write=0
MESSAGE_THINKING: Dict[str, Any] = {
    "model": "claude-sonnet-4-6",
    "id": "msg_016iBSmJTKjLT4LpdyPTT2xr",
    "type": "message",
    "role": "assistant",
    "content": [
        {
            "type": "thinking",
            "thinking": (
                "The user asks whether there are infinitely many primes p with p ≡ 3 (mod 4). Classic Euclid-style "
                "argument: suppose finitely many, p1..pk. Consider N = 4·p1·…·pk − 1. N ≡ 3 (mod 4), so N is odd and "
                "has at least one prime factor ≡ 3 (mod 4), since a product of primes ≡ 1 (mod 4) is ≡ 1 (mod 4). "
                "That factor cannot be any pi, because N ≡ −1 (mod pi). Contradiction."
            ),
            "signature": _SIGNATURE_1,
        },
        {
            "type": "text",
            "text": (
                "Yes. Suppose there were only finitely many such primes p₁, …, pₖ and let N = 4p₁⋯pₖ − 1. Then "
                "N ≡ 3 (mod 4), so at least one of its prime factors is ≡ 3 (mod 4) (a product of primes ≡ 1 (mod 4) "
                "is ≡ 1 (mod 4)). No pᵢ divides N, since N leaves remainder −1 on division by pᵢ. That prime factor "
                "is a new prime ≡ 3 (mod 4), a contradiction."
            ),
        },
    ],
    "container": None,
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "stop_details": None,
    "usage": {
        "input_tokens": 61,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 1187,
        "output_tokens_details": {"thinking_tokens": 934},
        "service_tier": "standard",
        "inference_geo": "global",
    },
}

# usage: input=611 output=143 cache_read=0 cache_write=0 (two parallel tool_use blocks, stop_reason tool_use)
MESSAGE_TOOL_USE: Dict[str, Any] = {
    "model": "claude-sonnet-4-6",
    "id": "msg_01tQiDSoSE1UzBU8u6SdyQWr",
    "type": "message",
    "role": "assistant",
    "content": [
        {"type": "text", "text": "I'll check the current weather in both cities."},
        {
            "type": "tool_use",
            "id": "toolu_015vPgqHBMzgJzuWAHZXEeHg",
            "name": "get_weather",
            "input": {"location": "Paris, France", "unit": "celsius"},
            "caller": {"type": "direct"},
        },
        {
            "type": "tool_use",
            "id": "toolu_01ZGMQ3DCSBhJkMzRBssH8ra",
            "name": "get_weather",
            "input": {"location": "Berlin, Germany", "unit": "celsius"},
            "caller": {"type": "direct"},
        },
    ],
    "container": None,
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "stop_details": None,
    "usage": {
        "input_tokens": 611,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 143,
        "service_tier": "standard",
        "inference_geo": "global",
    },
}

# usage: input=18734 output=642 cache_read=0 cache_write=0 server_tool_use.web_search_requests=2 web_fetch_requests=0
MESSAGE_WEB_SEARCH: Dict[str, Any] = {
    "model": "claude-sonnet-4-6",
    "id": "msg_01B914cAitS6dgQpZBAPKBaB",
    "type": "message",
    "role": "assistant",
    "content": [
        {"type": "text", "text": "I'll look up today's weather in Lisbon."},
        {
            "type": "server_tool_use",
            "id": "srvtoolu_01RQdAQNq6VFCgp4KuaHLhxe",
            "name": "web_search",
            "input": {"query": "Lisbon weather today"},
        },
        {
            "type": "web_search_tool_result",
            "tool_use_id": "srvtoolu_01RQdAQNq6VFCgp4KuaHLhxe",
            "content": _SEARCH_RESULTS_1,
        },
        {
            "type": "server_tool_use",
            "id": "srvtoolu_01jzMo1p3FAKghUTZQz49YFg",
            "name": "web_search",
            "input": {"query": "Lisbon weather forecast weekend"},
        },
        {
            "type": "web_search_tool_result",
            "tool_use_id": "srvtoolu_01jzMo1p3FAKghUTZQz49YFg",
            "content": _SEARCH_RESULTS_2,
        },
        {"type": "text", "text": "Here's the weather in Lisbon:\n\n"},
        {"type": "text", "text": "Today is sunny with a high of 27°C and a northerly breeze", "citations": [_CITATION_1]},
        {"type": "text", "text": ", and the weekend stays sunny and warmer, "},
        {"type": "text", "text": "reaching 29°C on Saturday and 31°C on Sunday", "citations": [_CITATION_2]},
        {"type": "text", "text": "."},
    ],
    "container": None,
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "stop_details": None,
    "usage": {
        "input_tokens": 18734,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 642,
        "server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 0},
        "service_tier": "standard",
        "inference_geo": "global",
    },
}

# usage: input=12 output=35 (no cache_* keys, no cache_creation, no service_tier: the 2024 API's usage)
MESSAGE_OLD_USAGE: Dict[str, Any] = {
    "id": "msg_0157RYqtstDL9v3XM4fhR6zn",
    "type": "message",
    "role": "assistant",
    "content": [{"type": "text", "text": "Hello! How can I help you today? Feel free to ask me anything."}],
    "model": "claude-3-5-sonnet-20241022",
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 35},
}

# usage: input=214 output=29 cache_read=0 cache_write=0; text parses as WeatherReport
MESSAGE_PARSED: Dict[str, Any] = {
    "model": "claude-sonnet-4-6",
    "id": "msg_01gmuzBhswFgSgwDvXCdE3Sa",
    "type": "message",
    "role": "assistant",
    "content": [{"type": "text", "text": '{"city":"Paris","temperature_c":18.5,"conditions":"partly cloudy"}'}],
    "container": None,
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "stop_details": None,
    "usage": {
        "input_tokens": 214,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 29,
        "service_tier": "standard",
        "inference_geo": "global",
    },
}


# === Streams (SSE, exact wire form) ==========================================

# usage: start input=25 output=1 cache 0/0 -> delta input=25 output=31 cache 0/0; final input=25 output=31
STREAM_PLAIN: str = (
    _message_start(
        "msg_01BRP8AGouzD3ycvqk3jvM8R",
        {
            "input_tokens": 25,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 1,
            "service_tier": "standard",
            "inference_geo": "global",
        },
    )
    + _sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    + _PING
    + _text_deltas(0, "A token", " bucket holds up to N tokens and refills at a fixed rate;", " each request spends one", ", so bursts up to N pass while the long-run rate stays capped.")
    + _block_stop(0)
    + _message_delta(
        "end_turn",
        {"input_tokens": 25, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 31},
    )
    + _message_stop()
)

# usage: start input=12 cache_read=48213 cache_write=3070 (5m=254, 1h=2816) output=1 -> delta repeats input/cache, output=97; final output=97
STREAM_CACHED: str = (
    _message_start(
        "msg_01fWcwhrLiTLeGURjQVZVC21",
        {
            "input_tokens": 12,
            "cache_creation_input_tokens": 3070,
            "cache_read_input_tokens": 48213,
            "cache_creation": {"ephemeral_5m_input_tokens": 254, "ephemeral_1h_input_tokens": 2816},
            "output_tokens": 1,
            "service_tier": "standard",
            "inference_geo": "global",
        },
    )
    + _sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    + _PING
    + _text_deltas(0, "Section", " 9.1 lets either party terminate for convenience", " on 90 days' written notice", "; Section 9.2 allows termination for cause on 30 days' notice to cure.")
    + _block_stop(0)
    + _message_delta(
        "end_turn",
        {"input_tokens": 12, "cache_creation_input_tokens": 3070, "cache_read_input_tokens": 48213, "output_tokens": 97},
    )
    + _message_stop()
)

# Thinking tokens are inside output_tokens; thinking_tokens is only a breakdown of them.
# usage: start input=61 output=1 -> delta input=61 output=312 (thinking_tokens=254 of them); final input=61 output=312
STREAM_THINKING: str = (
    _message_start(
        "msg_01gYWGVqgruWvCtXS759PUQ6",
        {
            "input_tokens": 61,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 1,
            "service_tier": "standard",
            "inference_geo": "global",
        },
    )
    + _sse(
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}},
    )
    + _PING
    + "".join(
        _sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": part}})
        for part in (
            "27 * 453",
            ": break 453 into 400 + 50 + 3. 27 * 400 = 10,800; 27 * 50 = 1,350; 27 * 3 = 81. Sum: 10,800 + 1,350 = 12,150",
            ", + 81 = 12,231.",
        )
    )
    + _sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": _SIGNATURE_2}})
    + _block_stop(0)
    + _sse("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}})
    + _text_deltas(1, "27 × 453", " = 12,231")
    + _block_stop(1)
    + _message_delta(
        "end_turn",
        {
            "input_tokens": 61,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 312,
            "output_tokens_details": {"thinking_tokens": 254},
        },
    )
    + _message_stop()
)

# usage: start input=611 output=5 -> delta input=611 output=87; final input=611 output=87 (stop_reason tool_use)
STREAM_TOOL_USE: str = (
    _message_start(
        "msg_01tVZZj33h96oMroZ64qZzRi",
        {
            "input_tokens": 611,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 5,
            "service_tier": "standard",
            "inference_geo": "global",
        },
    )
    + _sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    + _PING
    + _text_deltas(0, "I'll check the current", " weather in Paris for you.")
    + _block_stop(0)
    + _sse(
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {
                "type": "tool_use",
                "id": "toolu_014hwQxVcaemyz7HbhwSptQH",
                "name": "get_weather",
                "input": {},
                "caller": {"type": "direct"},
            },
        },
    )
    # The live API splits keys and values mid-token; the first fragment is empty.
    + _json_deltas(1, "", '{"locati', 'on": "Par', 'is, France"', ', "unit": "c', 'elsius"}')
    + _block_stop(1)
    + _message_delta(
        "tool_use",
        {"input_tokens": 611, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 87},
    )
    + _message_stop()
)

# Search results are input, so input_tokens grows during the turn: message_start's value is not the final one.
# usage: start input=2431 output=3 -> delta input=18734 output=642 web_search_requests=2; final input=18734 output=642 searches=2
STREAM_WEB_SEARCH: str = (
    _message_start(
        "msg_01s92w5gomu8D9yYKtsBksoF",
        {
            "input_tokens": 2431,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 3,
            "service_tier": "standard",
            "inference_geo": "global",
        },
    )
    + _sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    + _PING
    + _text_deltas(0, "I'll look up", " today's weather in Lisbon.")
    + _block_stop(0)
    + _sse(
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "server_tool_use", "id": "srvtoolu_01i3241dPL7aPbFTeLe9EQgv", "name": "web_search", "input": {}},
        },
    )
    + _json_deltas(1, "", '{"query', '": "Lisbon', " weather", ' today"}')
    + _block_stop(1)
    # Result blocks arrive whole in content_block_start, with no deltas.
    + _sse(
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {
                "type": "web_search_tool_result",
                "tool_use_id": "srvtoolu_01i3241dPL7aPbFTeLe9EQgv",
                "content": _SEARCH_RESULTS_1,
            },
        },
    )
    + _block_stop(2)
    + _sse(
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 3,
            "content_block": {"type": "server_tool_use", "id": "srvtoolu_01XB91tGnAV75hAxjsJStH14", "name": "web_search", "input": {}},
        },
    )
    + _json_deltas(3, "", '{"query": "Lisbon', " weather forecast", ' weekend"}')
    + _block_stop(3)
    + _sse(
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 4,
            "content_block": {
                "type": "web_search_tool_result",
                "tool_use_id": "srvtoolu_01XB91tGnAV75hAxjsJStH14",
                "content": _SEARCH_RESULTS_2,
            },
        },
    )
    + _block_stop(4)
    + _sse("content_block_start", {"type": "content_block_start", "index": 5, "content_block": {"type": "text", "text": ""}})
    + _text_deltas(5, "Here's the weather in Lisbon:\n\n")
    + _block_stop(5)
    + _sse(
        "content_block_start",
        {"type": "content_block_start", "index": 6, "content_block": {"citations": [], "type": "text", "text": ""}},
    )
    + _sse(
        "content_block_delta",
        {"type": "content_block_delta", "index": 6, "delta": {"type": "citations_delta", "citation": _CITATION_1}},
    )
    + _text_deltas(6, "Today is sunny with a high of 27°C", " and a northerly breeze")
    + _block_stop(6)
    + _sse("content_block_start", {"type": "content_block_start", "index": 7, "content_block": {"type": "text", "text": ""}})
    + _text_deltas(7, ", and the weekend stays sunny and warmer.")
    + _block_stop(7)
    + _message_delta(
        "end_turn",
        {
            "input_tokens": 18734,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 642,
            "server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 0},
        },
    )
    + _message_stop()
)

# The in-stream error event as the current API sends it (``details`` is null
# unless the error has a machine-readable code).
STREAM_ERROR_EVENT: Dict[str, Any] = {
    "type": "error",
    "error": {"details": None, "type": "overloaded_error", "message": "Overloaded"},
    "request_id": "req_011C2SCGB4r71gcjDATDafiZ",
}

# Ends with `event: error` after two text deltas: no message_delta, no message_stop.
# usage: start input=25 output=1 cache 0/0; no final usage (the only usage ever sent is message_start's)
STREAM_ERROR: str = (
    _message_start(
        "msg_01kQCgL5E3sYcX5T7sSjcAhc",
        {
            "input_tokens": 25,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 1,
            "service_tier": "standard",
            "inference_geo": "global",
        },
    )
    + _sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    + _PING
    + _text_deltas(0, "A token", " bucket holds up to N tokens")
    + _sse("error", STREAM_ERROR_EVENT)
)

# The 2024 wire shape: no cache keys anywhere, and message_delta.usage has output_tokens alone.
# usage: start input=12 output=1 -> delta output=35; final input=12 output=35 (cache fields None)
STREAM_OLD_USAGE: str = (
    _sse(
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_01tQiDSoSE1UzBU8u6SdyQWs",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "claude-3-5-sonnet-20241022",
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 12, "output_tokens": 1},
            },
        },
    )
    + _sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    + _PING
    + _text_deltas(0, "Hello", "! How can I help you", " today? Feel free to ask me anything.")
    + _block_stop(0)
    + _sse(
        "message_delta",
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": 35}},
    )
    + _message_stop()
)


# === Error bodies ============================================================

# usage: none (HTTP 429; the SDK raises anthropic.RateLimitError)
ERROR_429: Dict[str, Any] = {
    "type": "error",
    "error": {
        "type": "rate_limit_error",
        "message": (
            "This request would exceed your organization's rate limit of 30,000 input tokens per minute "
            "(org: 5a2f8c1e-7b3d-4e9a-8f61-2c4d9e0b7a13, model: claude-sonnet-4-6). For details, refer to: "
            "https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. "
            "Please reduce the prompt length or the maximum tokens requested, or try again later. You may also "
            "contact sales at https://www.anthropic.com/contact-sales to discuss your options for a rate limit "
            "increase."
        ),
    },
    "request_id": "req_011CiiTugCZL5Lh4yosXnb1R",
}

# usage: none (HTTP 529; the SDK raises anthropic.OverloadedError)
ERROR_529: Dict[str, Any] = {
    "type": "error",
    "error": {"type": "overloaded_error", "message": "Overloaded"},
    "request_id": "req_011CwUpW6piVCF7HFi38Nzpm",
}


# === Headers =================================================================

_RATELIMIT_HEADERS: Dict[str, str] = {
    "anthropic-ratelimit-input-tokens-limit": "2000000",
    "anthropic-ratelimit-input-tokens-remaining": "1999000",
    "anthropic-ratelimit-input-tokens-reset": "2026-07-14T09:12:45Z",
    "anthropic-ratelimit-output-tokens-limit": "400000",
    "anthropic-ratelimit-output-tokens-remaining": "400000",
    "anthropic-ratelimit-output-tokens-reset": "2026-07-14T09:12:44Z",
    "anthropic-ratelimit-requests-limit": "4000",
    "anthropic-ratelimit-requests-remaining": "3999",
    "anthropic-ratelimit-requests-reset": "2026-07-14T09:12:43Z",
    "anthropic-ratelimit-tokens-limit": "2400000",
    "anthropic-ratelimit-tokens-remaining": "2399000",
    "anthropic-ratelimit-tokens-reset": "2026-07-14T09:12:44Z",
}

# usage: none (headers of a 200 JSON response; `request-id` is what the SDK exposes as `._request_id`)
HEADERS: Dict[str, str] = {
    "date": "Tue, 14 Jul 2026 09:12:44 GMT",
    "content-type": "application/json",
    "anthropic-organization-id": "5a2f8c1e-7b3d-4e9a-8f61-2c4d9e0b7a13",
    **_RATELIMIT_HEADERS,
    "request-id": REQUEST_ID,
    "strict-transport-security": "max-age=31536000; includeSubDomains; preload",
    "x-envoy-upstream-service-time": "2314",
    "server": "cloudflare",
    "x-robots-tag": "none",
    "cf-cache-status": "DYNAMIC",
    "cf-ray": "95f1c2a3bd4e6f70-SJC",
}

# usage: none (headers of a 200 SSE response)
STREAM_HEADERS: Dict[str, str] = {
    **HEADERS,
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "request-id": "req_011CwHn4JhckUksaHKizE6yZ",
    "x-envoy-upstream-service-time": "412",
}

# usage: none (headers of the 429; retry-after is in seconds and the SDK honours it when it retries)
ERROR_429_HEADERS: Dict[str, str] = {
    "date": "Tue, 14 Jul 2026 09:12:44 GMT",
    "content-type": "application/json",
    "anthropic-organization-id": "5a2f8c1e-7b3d-4e9a-8f61-2c4d9e0b7a13",
    "anthropic-ratelimit-input-tokens-limit": "30000",
    "anthropic-ratelimit-input-tokens-remaining": "0",
    "anthropic-ratelimit-input-tokens-reset": "2026-07-14T09:13:02Z",
    "anthropic-ratelimit-output-tokens-limit": "8000",
    "anthropic-ratelimit-output-tokens-remaining": "8000",
    "anthropic-ratelimit-output-tokens-reset": "2026-07-14T09:12:44Z",
    "anthropic-ratelimit-requests-limit": "50",
    "anthropic-ratelimit-requests-remaining": "49",
    "anthropic-ratelimit-requests-reset": "2026-07-14T09:12:45Z",
    "anthropic-ratelimit-tokens-limit": "38000",
    "anthropic-ratelimit-tokens-remaining": "8000",
    "anthropic-ratelimit-tokens-reset": "2026-07-14T09:12:44Z",
    "retry-after": "18",
    "request-id": ERROR_429["request_id"],
    "x-should-retry": "true",
    "strict-transport-security": "max-age=31536000; includeSubDomains; preload",
    "server": "cloudflare",
    "x-robots-tag": "none",
    "cf-cache-status": "DYNAMIC",
    "cf-ray": "95f1c2a3bd4e6f71-SJC",
}

# usage: none (headers of the 529)
ERROR_529_HEADERS: Dict[str, str] = {
    "date": "Tue, 14 Jul 2026 09:12:44 GMT",
    "content-type": "application/json",
    "request-id": ERROR_529["request_id"],
    "x-should-retry": "true",
    "strict-transport-security": "max-age=31536000; includeSubDomains; preload",
    "server": "cloudflare",
    "x-robots-tag": "none",
    "cf-cache-status": "DYNAMIC",
    "cf-ray": "95f1c2a3bd4e6f72-SJC",
}


# === What the SDK ends up with ===============================================
# Keys are Usage field names; a missing key means the SDK leaves the field None.
# For streams this is get_final_message().usage: the message_start usage, with
# output_tokens always, and input_tokens / cache_creation_input_tokens /
# cache_read_input_tokens / server_tool_use / output_tokens_details each
# overwritten by the last message_delta that carries them (not added).
# cache_creation, service_tier and inference_geo come from message_start only.
EXPECTED_USAGE: Dict[str, Dict[str, Any]] = {
    "MESSAGE_PLAIN": {
        "input_tokens": 25, "output_tokens": 96, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "service_tier": "standard", "inference_geo": "global",
    },
    "MESSAGE_CACHED": {
        "input_tokens": 12, "output_tokens": 318, "cache_creation_input_tokens": 3070, "cache_read_input_tokens": 48213,
        "cache_creation": {"ephemeral_5m_input_tokens": 254, "ephemeral_1h_input_tokens": 2816},
        "service_tier": "standard", "inference_geo": "global",
    },
    "MESSAGE_THINKING": {
        "input_tokens": 61, "output_tokens": 1187, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens_details": {"thinking_tokens": 934},
        "service_tier": "standard", "inference_geo": "global",
    },
    "MESSAGE_TOOL_USE": {
        "input_tokens": 611, "output_tokens": 143, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "service_tier": "standard", "inference_geo": "global",
    },
    "MESSAGE_WEB_SEARCH": {
        "input_tokens": 18734, "output_tokens": 642, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 0},
        "service_tier": "standard", "inference_geo": "global",
    },
    "MESSAGE_OLD_USAGE": {"input_tokens": 12, "output_tokens": 35},
    "MESSAGE_PARSED": {
        "input_tokens": 214, "output_tokens": 29, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "service_tier": "standard", "inference_geo": "global",
    },
    "STREAM_PLAIN": {
        "input_tokens": 25, "output_tokens": 31, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "service_tier": "standard", "inference_geo": "global",
    },
    "STREAM_CACHED": {
        "input_tokens": 12, "output_tokens": 97, "cache_creation_input_tokens": 3070, "cache_read_input_tokens": 48213,
        "cache_creation": {"ephemeral_5m_input_tokens": 254, "ephemeral_1h_input_tokens": 2816},
        "service_tier": "standard", "inference_geo": "global",
    },
    "STREAM_THINKING": {
        "input_tokens": 61, "output_tokens": 312, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens_details": {"thinking_tokens": 254},
        "service_tier": "standard", "inference_geo": "global",
    },
    "STREAM_TOOL_USE": {
        "input_tokens": 611, "output_tokens": 87, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "service_tier": "standard", "inference_geo": "global",
    },
    "STREAM_WEB_SEARCH": {
        "input_tokens": 18734, "output_tokens": 642, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 0},
        "service_tier": "standard", "inference_geo": "global",
    },
    # No final message: the stream raises. This is the snapshot after message_start.
    "STREAM_ERROR": {
        "input_tokens": 25, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "service_tier": "standard", "inference_geo": "global",
    },
    "STREAM_OLD_USAGE": {"input_tokens": 12, "output_tokens": 35},
}
