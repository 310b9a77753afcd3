"""The OpenAI Responses format (`responses.create`, `parse`, `stream`), and the usage shape it
shares with OpenAI's image and audio endpoints: `input_tokens` / `output_tokens`, inclusive,
with their details (`cached_tokens`, `cache_write_tokens` and `image_tokens` inside the input,
`reasoning_tokens` and `image_tokens` inside the output; transcriptions spell the input's
details `input_token_details`).

A response lists its output items: every tool call is an item (`function_call`,
`web_search_call`, ...). Web searches are billed per call: the API counts those it bills in
`tool_usage.web_search.num_requests`; older responses only list the calls. A stream is a
sequence of typed events; the terminal one (`response.completed`, `.incomplete`, `.failed`)
carries the whole response.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from ..events import Usage
from ..instrument.fields import count, field, mapping, money, text
from ..limits.estimate import (PER_MESSAGE_TOKENS, STORED_CONTEXT_TOKENS, Acc, RequestFormat, as_mapping,
                               cap_value, text_tokens, walk, walk_items, walk_parts, walk_text, walk_tools)
from .openai_chat import read_head

if TYPE_CHECKING:
    from ..instrument.call import Call
    from ..instrument.endpoint import ChunkReader


# -- usage (on the background worker) --------------------------------------------------------


def usage_of(usage: Any) -> Usage:
    """The `Usage` of an input/output `usage` object (Responses, images, audio)."""
    input_details = field(usage, "input_tokens_details")
    output_details = field(usage, "output_tokens_details")
    return Usage(
        input_tokens=count(field(usage, "input_tokens")),
        output_tokens=count(field(usage, "output_tokens")),
        cache_read_tokens=count(field(input_details, "cached_tokens")),
        cache_write_tokens=count(field(input_details, "cache_write_tokens")),
        input_audio_tokens=count(field(field(usage, "input_token_details"), "audio_tokens")),  # transcriptions
        input_image_tokens=count(field(input_details, "image_tokens")),
        reasoning_tokens=count(field(output_details, "reasoning_tokens")),
        output_image_tokens=count(field(output_details, "image_tokens")),
    )


def read_usage(call: Call, usage: Any) -> None:
    """A deferred `usage` object (a `UsageReader`)."""
    call.usage = usage_of(usage)
    cost = money(field(usage, "cost"))  # OpenRouter
    if cost is not None:
        call.provider_cost_usd = cost


# -- responses and stream events (on the caller's thread) ------------------------------------

_TOOL_CALL_ITEMS = frozenset({
    "function_call", "custom_tool_call", "computer_call", "mcp_call", "local_shell_call",
    "shell_call", "apply_patch_call", "code_interpreter_call", "file_search_call",
    "image_generation_call",
})
_TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def read_response(call: Call, response: Any) -> Mapping[str, Any]:
    """A response (an SDK object or its JSON): the model, tier, tool calls, web searches, status
    and error now, the `usage` object deferred. Returns the response's fields."""
    values = mapping(response)
    read_head(call, values)
    usage = values.get("usage")
    if usage is not None:
        call.defer_usage(read_usage, usage)
    tool_calls = web_searches = 0
    output = values.get("output")
    for item in output if isinstance(output, list) else ():
        kind = mapping(item).get("type")
        if type(kind) is not str:
            continue
        if kind == "web_search_call":
            web_searches += 1
        elif kind in _TOOL_CALL_ITEMS:
            tool_calls += 1
    call.tool_calls = tool_calls
    # The API counts the searches it bills in tool_usage; older responses only list the calls.
    reported = count(field(field(field(response, "tool_usage"), "web_search"), "num_requests"))
    call.web_search_requests = reported if reported is not None else web_searches
    status = values.get("status")
    incomplete = mapping(values.get("incomplete_details")).get("reason")
    call.finish_reason = text(incomplete) if incomplete else text(status)
    if status == "failed":
        call.error = "response.failed"
        code = mapping(values.get("error")).get("code")
        if code:
            call.error += f": {code}"
    return values


def stream_reader(call: Call) -> ChunkReader:
    """Response stream events: the first `.delta` is the first token; the terminal event's
    response is read as a whole."""

    def read(event: Any) -> bool:
        kind = getattr(event, "type", None)
        if type(kind) is not str:  # not an event: nothing to read
            return True
        if call.first_token_ns is None and kind.endswith(".delta"):
            call.mark_first_token()
        if kind in _TERMINAL_EVENTS:
            read_response(call, getattr(event, "response", None))
        elif kind == "response.created" and call.model is None:
            read_head(call, getattr(event, "response", None))
        elif kind == "error":
            call.error = "error"
            code = getattr(event, "code", None)
            if code:
                call.error += f": {code}"
        return True

    return read


# -- request estimates -----------------------------------------------------------------------


def _part(acc: Acc, p: Mapping, depth: int) -> None:
    typ = p.get("type")
    if typ in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
        walk_text(acc, p.get("text"))
    elif typ == "input_image" or typ == "computer_screenshot":
        acc.image(p.get("detail"))
    elif typ == "input_file" or typ == "input_audio":
        acc.document()
    elif typ == "refusal":
        walk_text(acc, p.get("refusal"))
    else:
        walk(acc, p, depth + 1)


_SKIP = frozenset(("type", "role", "id", "status", "call_id"))


def _input(acc: Acc, inp: Any) -> None:
    if type(inp) is str:
        acc.fixed += PER_MESSAGE_TOKENS
        acc.text += text_tokens(inp)
        return
    if not isinstance(inp, (list, tuple)):
        if inp is not None:
            walk(acc, inp, 1)
        return
    for m in walk_items(acc, inp, per_item=PER_MESSAGE_TOKENS):
        typ = m.get("type")
        if typ is None or typ == "message":
            walk_parts(acc, m.get("content"), _part)
        elif typ == "item_reference":
            acc.fixed += STORED_CONTEXT_TOKENS
        elif typ == "computer_call_output":
            acc.image()
        else:  # function calls and outputs, reasoning items, tool calls ...
            for k, v in m.items():
                if k in _SKIP or v is None:
                    continue
                if k == "output" and isinstance(v, (list, tuple)):
                    walk_parts(acc, v, _part)
                else:
                    walk(acc, v, 1)


def walk_request(acc: Acc, kw: Mapping) -> int | None:
    _input(acc, kw.get("input"))
    instructions = kw.get("instructions")
    if instructions is not None:
        _input(acc, instructions)
    walk_tools(acc, kw.get("tools"))
    for key in ("text", "tool_choice"):
        v = as_mapping(kw.get(key))
        if v is not None:
            walk(acc, v, 1)
    prompt = as_mapping(kw.get("prompt"))
    if prompt is not None:  # a stored prompt template: its text is server-side
        acc.fixed += STORED_CONTEXT_TOKENS
        walk(acc, prompt, 1)
    if type(kw.get("previous_response_id")) is str:
        acc.fixed += STORED_CONTEXT_TOKENS
    conversation = kw.get("conversation")
    if type(conversation) is str or as_mapping(conversation) is not None:
        acc.fixed += STORED_CONTEXT_TOKENS
    return cap_value(kw.get("max_output_tokens"))


#: `responses.create(...)`.
RESPONSES = RequestFormat("openai responses", walk_request)
