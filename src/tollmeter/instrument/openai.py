"""The `openai` SDK: chat completions, Responses, legacy completions and embeddings.

Helpers are covered through the methods they call: `chat.completions.stream()` and
`responses.stream()` call `create` when entered; `parse()` posts on its own and is wrapped too.
OpenAI-compatible APIs reached through this client are attributed by base URL.
"""

from __future__ import annotations

from typing import Any, Mapping

import openai

from ..events import Usage
from .call import Call
from .chat_format import read_choices
from .endpoint import ChunkReader
from .fields import count, field, money, text
from .registry import Patch
from .stainless import StainlessEndpoint, lifecycle_patches


class _OpenAIEndpoint(StainlessEndpoint):
    sdk = openai
    default_provider = "openai"
    request_id_header = "x-request-id"


def _read_token_usage(call: Call, usage: Any) -> None:
    """`usage` of chat completions, legacy completions and embeddings (and compatible APIs)."""
    if usage is None:
        return
    prompt = field(usage, "prompt_tokens")
    prompt_details = field(usage, "prompt_tokens_details")
    completion_details = field(usage, "completion_tokens_details")
    cached = count(field(prompt_details, "cached_tokens"))
    if cached is None:  # DeepSeek reports its cache hits beside prompt_tokens
        cached = count(field(usage, "prompt_cache_hit_tokens"))
    call.usage = Usage(
        input_tokens=count(prompt),
        output_tokens=count(field(usage, "completion_tokens")),
        cache_read_tokens=cached,
        cache_write_tokens=count(field(prompt_details, "cache_write_tokens")),  # OpenRouter
        input_audio_tokens=count(field(prompt_details, "audio_tokens")),
        input_image_tokens=count(field(prompt_details, "image_tokens")),
        reasoning_tokens=count(field(completion_details, "reasoning_tokens")),
        output_audio_tokens=count(field(completion_details, "audio_tokens")),
        accepted_prediction_tokens=count(field(completion_details, "accepted_prediction_tokens")),
        rejected_prediction_tokens=count(field(completion_details, "rejected_prediction_tokens")),
    )
    cost = money(field(usage, "cost"))  # OpenRouter reports what the call cost
    if cost is not None:
        call.provider_cost_usd = cost


def _read_common(call: Call, response: Any) -> None:
    model = field(response, "model")
    if isinstance(model, str):
        call.model = model
    tier = field(response, "service_tier")
    if tier is not None:
        call.service_tier = text(tier)
    request_id = field(response, "_request_id")
    if isinstance(request_id, str):
        call.request_id = request_id


# -- chat completions ------------------------------------------------------------------------


class ChatCompletions(_OpenAIEndpoint):
    name = "chat.completions"

    def start(self, call: Call, instance: Any, args: tuple, kwargs: Mapping[str, Any]) -> dict | None:
        super().start(call, instance, args, kwargs)
        if call.stream and call.settings.stream_usage:
            return _ask_for_stream_usage(call, kwargs)
        return None

    def read_response(self, call: Call, response: Any) -> None:
        _read_common(call, response)
        _read_token_usage(call, field(response, "usage"))
        read_choices(call, response)

    def stream_reader(self, call: Call) -> ChunkReader:
        return _chat_stream_reader(call)


def _ask_for_stream_usage(call: Call, kwargs: Mapping[str, Any]) -> dict | None:
    """Ask for the usage chunk the caller did not ask for; the stream proxy hides it again."""
    options = kwargs.get("stream_options")
    if isinstance(options, Mapping):
        if options.get("include_usage") is True:
            return None
        options = {**options, "include_usage": True}
    else:
        options = {"include_usage": True}
    call.hide_usage_chunk = True
    return {**kwargs, "stream_options": options}


def _chat_stream_reader(call: Call) -> ChunkReader:
    """Chat completion chunks: usage from the final usage chunk (or from the last choice chunk,
    as some compatible servers send it), tool calls from the deltas. Runs once per chunk on the
    caller's thread, so it touches only declared fields, each once, and calls nothing on the
    common path (a content delta)."""
    take_usage = _usage_taker(call)
    hide = call.hide_usage_chunk
    started = False
    call.tool_calls = 0

    def read(chunk: Any) -> bool:
        nonlocal started, hide
        choices = chunk.choices
        if choices:
            if not started:
                started = True
                call.mark_first_token()
                _read_common(call, chunk)
                hide = hide and hasattr(chunk, "__pydantic_fields_set__")  # pydantic 2
            for choice in choices:
                tool_deltas = choice.delta.tool_calls
                if tool_deltas:
                    for tool_delta in tool_deltas:
                        if tool_delta.id is not None:  # a call's first fragment carries its id
                            call.tool_calls += 1
                reason = choice.finish_reason
                if reason is not None:
                    call.finish_reason = reason
                    if reason == "function_call":  # the legacy single function call
                        call.tool_calls += 1
            if chunk.usage is None:
                if hide:
                    chunk.__pydantic_fields_set__.discard("usage")
                return True
        return take_usage(chunk, choices)

    return read


def _text_stream_reader(call: Call) -> ChunkReader:
    """Legacy completion chunks: the same usage chunk, choices without deltas."""
    take_usage = _usage_taker(call)
    started = False

    def read(chunk: Any) -> bool:
        nonlocal started
        choices = chunk.choices
        if choices:
            if not started:
                started = True
                call.mark_first_token()
                _read_common(call, chunk)
            reason = choices[-1].finish_reason
            if reason is not None:
                call.finish_reason = reason
        return take_usage(chunk, choices)

    return read


def _usage_taker(call: Call) -> Any:
    """Reads a chunk's usage; says whether the caller may see the chunk."""
    hide = call.hide_usage_chunk

    def take_usage(chunk: Any, choices: Any) -> bool:
        usage = chunk.usage
        if usage is None:
            if hide:
                # "usage": null is there only because we asked for usage: unset it again.
                fields_set = getattr(chunk, "__pydantic_fields_set__", None)
                if fields_set is not None:
                    fields_set.discard("usage")
            return True
        if call.model is None:
            _read_common(call, chunk)
        _read_token_usage(call, usage)
        return bool(choices) or not hide

    return take_usage


# -- Responses API ---------------------------------------------------------------------------

_TOOL_CALL_ITEMS = frozenset({
    "function_call", "custom_tool_call", "computer_call", "mcp_call", "local_shell_call",
    "shell_call", "apply_patch_call", "code_interpreter_call", "file_search_call",
    "image_generation_call",
})
_TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class Responses(_OpenAIEndpoint):
    name = "responses"

    def read_response(self, call: Call, response: Any) -> None:
        _read_common(call, response)
        usage = field(response, "usage")
        if usage is not None:
            input_details = field(usage, "input_tokens_details")
            output_details = field(usage, "output_tokens_details")
            call.usage = Usage(
                input_tokens=count(field(usage, "input_tokens")),
                output_tokens=count(field(usage, "output_tokens")),
                cache_read_tokens=count(field(input_details, "cached_tokens")),
                cache_write_tokens=count(field(input_details, "cache_write_tokens")),
                reasoning_tokens=count(field(output_details, "reasoning_tokens")),
            )
            cost = money(field(usage, "cost"))
            if cost is not None:
                call.provider_cost_usd = cost
        tool_calls = web_searches = 0
        for item in field(response, "output") or ():
            kind = field(item, "type")
            if kind == "web_search_call":
                web_searches += 1
            elif kind in _TOOL_CALL_ITEMS:
                tool_calls += 1
        call.tool_calls = tool_calls
        # The API counts the searches it bills in tool_usage; older responses only list the calls.
        reported = count(field(field(field(response, "tool_usage"), "web_search"), "num_requests"))
        call.web_search_requests = reported if reported is not None else web_searches
        status = field(response, "status")
        incomplete = field(field(response, "incomplete_details"), "reason")
        call.finish_reason = text(incomplete) if incomplete else text(status)
        if status == "failed":
            call.error = "response.failed"
            code = field(field(response, "error"), "code")
            if code:
                call.error += f": {code}"

    def stream_reader(self, call: Call) -> ChunkReader:
        def read(event: Any) -> bool:
            kind = event.type
            if call.first_token_ns is None and kind.endswith(".delta"):
                call.mark_first_token()
            if kind in _TERMINAL_EVENTS:
                self.read_response(call, event.response)
            elif kind == "response.created" and call.model is None:
                _read_common(call, event.response)
            elif kind == "error":
                call.error = "error"
                code = getattr(event, "code", None)
                if code:
                    call.error += f": {code}"
            return True

        return read


# -- legacy completions and embeddings -------------------------------------------------------


class TextCompletions(ChatCompletions):
    """Legacy `/v1/completions`: the same usage and chunk shapes as chat, text instead of messages."""

    name = "completions"

    def stream_reader(self, call: Call) -> ChunkReader:
        return _text_stream_reader(call)


class Embeddings(_OpenAIEndpoint):
    name = "embeddings"

    def read_response(self, call: Call, response: Any) -> None:
        _read_common(call, response)
        usage = field(response, "usage")
        if usage is not None:
            call.usage = Usage(input_tokens=count(field(usage, "prompt_tokens")))


# -- audio and images ------------------------------------------------------------------------
#
# Speech-to-text: gpt-4o(-mini)-transcribe bill tokens and report them in `usage` (type
# "tokens": input_tokens with their audio/text split, output_tokens); whisper-1 bills seconds of
# audio and reports them in `usage` (type "duration") in the json and verbose_json formats, and
# verbose_json also carries `duration`. They become `units` {"audio_seconds",
# "input_audio_seconds"} (the total and its input part, both priced by genai-prices for
# whisper-1). The text, srt and vtt formats return a bare string: no duration is known, and the
# event is recorded without usage (unpriced). Translations answer {"text"} in json (no duration)
# and carry `duration` in verbose_json.
#
# Text-to-speech: tts-1 and tts-1-hd bill characters of input, counted from the request
# (`units` {"input_characters"}: a count, never the text). gpt-4o-mini-tts bills tokens, which
# the API reports only with stream_format="sse" (`speech.audio.done` carries `usage`); without
# it the event has no usage and stays unpriced (characters are not recorded for the gpt-* models:
# their price has no character rate, so they would price the call at $0). The response is
# binary and returned untouched; it is read on the background worker.
#
# Images: the GPT image models report `usage` (input with its text/image split, output with its
# image/text split); DALL·E reports none. `units` {"images": n} counts the images returned:
# genai-prices has no per-image unit, so it prices nothing and DALL·E calls stay unpriced.


def _seconds(value: Any) -> float | None:
    """A duration as a non-negative finite float, or None."""
    from math import isfinite

    if value is None or isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if isfinite(seconds) and seconds >= 0 else None


def _read_audio_usage(call: Call, usage: Any, duration: Any = None) -> None:
    """A transcription's `usage` (tokens or duration), or the verbose formats' `duration`."""
    seconds = None
    if usage is not None:
        seconds = _seconds(field(usage, "seconds"))
        if seconds is None and field(usage, "type") != "duration":
            details = field(usage, "input_token_details")
            input_tokens = count(field(usage, "input_tokens"))
            output_tokens = count(field(usage, "output_tokens"))
            if input_tokens is not None or output_tokens is not None:
                call.usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens,
                                   input_audio_tokens=count(field(details, "audio_tokens")))
                return
    if seconds is None:
        seconds = _seconds(duration)
    if seconds is not None:
        call.units = {"audio_seconds": seconds, "input_audio_seconds": seconds}


class Transcriptions(_OpenAIEndpoint):
    name = "audio.transcriptions"

    def read_response(self, call: Call, response: Any) -> None:
        if isinstance(response, str):  # text, srt, vtt: nothing but the text
            return
        _read_common(call, response)
        _read_audio_usage(call, field(response, "usage"), field(response, "duration"))

    def stream_reader(self, call: Call) -> ChunkReader:
        def read(event: Any) -> bool:
            kind = event.type
            if kind == "transcript.text.delta":
                if call.first_token_ns is None:
                    call.mark_first_token()
            elif kind == "transcript.text.done":
                _read_audio_usage(call, field(event, "usage"))
            return True

        return read


class Translations(Transcriptions):
    name = "audio.translations"


class Speech(_OpenAIEndpoint):
    name = "audio.speech"

    def start(self, call: Call, instance: Any, args: tuple, kwargs: Mapping[str, Any]) -> dict | None:
        super().start(call, instance, args, kwargs)
        spoken = kwargs.get("input")
        if isinstance(spoken, str) and not (call.request_model or "").startswith("gpt-"):
            call.units = {"input_characters": len(spoken)}
        return None

    def read_error(self, call: Call, exc: BaseException) -> None:
        super().read_error(call, exc)
        call.units = None  # counted from the request: a refused request bills no characters

    def read_response(self, call: Call, response: Any) -> None:
        http = getattr(response, "response", None)  # HttpxBinaryResponseContent
        headers = getattr(http, "headers", None)
        if headers is None:
            return
        request_id = headers.get("x-request-id")
        if request_id:
            call.request_id = request_id
        if "text/event-stream" not in (headers.get("content-type") or ""):
            return
        try:
            body = http.content  # read already: create() returns after reading the body
        except RuntimeError:  # httpx's ResponseNotRead: a streamed body the caller reads
            return
        usage = _speech_done_usage(body)
        if usage is not None:
            call.usage = Usage(input_tokens=count(field(usage, "input_tokens")),
                               output_tokens=count(field(usage, "output_tokens")))


def _speech_done_usage(body: bytes) -> Any:
    """The `usage` of the last `speech.audio.done` event of an SSE speech body, or None."""
    import json

    at = body.rfind(b'"speech.audio.done"')
    if at < 0:
        return None
    start = body.rfind(b"\n", 0, at) + 1
    end = body.find(b"\n", at)
    line = body[start:end if end >= 0 else len(body)].strip()
    if line.startswith(b"data:"):
        line = line[5:]
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event.get("usage") if isinstance(event, dict) else None


def _read_image_usage(call: Call, usage: Any) -> None:
    if usage is None:
        return
    input_details = field(usage, "input_tokens_details")
    output_details = field(usage, "output_tokens_details")
    call.usage = Usage(
        input_tokens=count(field(usage, "input_tokens")),
        output_tokens=count(field(usage, "output_tokens")),
        cache_read_tokens=count(field(input_details, "cached_tokens")),
        input_image_tokens=count(field(input_details, "image_tokens")),
        output_image_tokens=count(field(output_details, "image_tokens")),
    )


class Images(_OpenAIEndpoint):
    name = "images.generate"

    def read_response(self, call: Call, response: Any) -> None:
        _read_common(call, response)
        _read_image_usage(call, field(response, "usage"))
        images = field(response, "data")
        if isinstance(images, list):
            call.units = {"images": len(images)}

    def stream_reader(self, call: Call) -> ChunkReader:
        """`image_generation.*` / `image_edit.*` events: partial images, then one completed
        event per image carrying the usage."""
        completed = 0

        def read(event: Any) -> bool:
            nonlocal completed
            kind = event.type
            if kind.endswith(".completed"):
                completed += 1
                call.units = {"images": completed}
                _read_image_usage(call, field(event, "usage"))
            if call.first_token_ns is None:
                call.mark_first_token()
            return True

        return read


class ImageEdits(Images):
    name = "images.edit"


_CHAT, _RESPONSES, _COMPLETIONS, _EMBEDDINGS = ChatCompletions(), Responses(), TextCompletions(), Embeddings()
_TRANSCRIPTIONS, _TRANSLATIONS, _SPEECH = Transcriptions(), Translations(), Speech()
_IMAGES, _IMAGE_EDITS = Images(), ImageEdits()


def patches() -> list[Patch]:
    chat = "openai.resources.chat.completions.completions"
    beta_chat = "openai.resources.beta.chat.completions"  # where openai < 1.92 kept `parse`
    targets = (
        (chat, "Completions", ("create", "parse"), _CHAT),
        (beta_chat, "Completions", ("parse",), _CHAT),
        ("openai.resources.responses.responses", "Responses", ("create", "parse"), _RESPONSES),
        ("openai.resources.completions", "Completions", ("create",), _COMPLETIONS),
        ("openai.resources.embeddings", "Embeddings", ("create",), _EMBEDDINGS),
        ("openai.resources.audio.transcriptions", "Transcriptions", ("create",), _TRANSCRIPTIONS),
        ("openai.resources.audio.translations", "Translations", ("create",), _TRANSLATIONS),
        ("openai.resources.audio.speech", "Speech", ("create",), _SPEECH),
        ("openai.resources.images", "Images", ("generate",), _IMAGES),
        ("openai.resources.images", "Images", ("edit",), _IMAGE_EDITS),
    )
    return [
        patch
        for module, owner, methods, endpoint in targets
        for method in methods
        for patch in (
            Patch(module, f"{owner}.{method}", endpoint),
            Patch(module, f"Async{owner}.{method}", endpoint, is_async=True),
        )
    ] + lifecycle_patches("openai")
