"""The `groq` SDK: chat completions, audio transcriptions and translations.

Usage is OpenAI-shaped and inclusive: `prompt_tokens` counts cached tokens too
(`prompt_tokens_details.cached_tokens`, billed at the cache rate) and `completion_tokens`
counts reasoning tokens too (`completion_tokens_details.reasoning_tokens`). Streams need no
`stream_options`: Groq ends every stream with a chunk whose `x_groq.usage` holds the usage
(the current API repeats it in the chunk's `usage`); both are the same count, read once. The
`x_groq.usage` of a non-streamed completion is something else (hardware cache statistics,
`dram_cached_tokens` / `sram_cached_tokens`) and is not read.

Whisper is billed per second of audio with a 10-second minimum per request; the duration is
reported only with `response_format="verbose_json"`, and without it the call is unpriced.
"""

from __future__ import annotations

from typing import Any

import groq

from ..events import Usage
from .call import Call
from .chat_format import read_choices
from .endpoint import ChunkReader
from .fields import count, field, text
from .registry import Patch
from .stainless import StainlessEndpoint, lifecycle_patches

#: Groq bills at least this many seconds of audio per transcription or translation.
MIN_BILLED_AUDIO_SECONDS = 10.0


class _GroqEndpoint(StainlessEndpoint):
    sdk = groq
    default_provider = "groq"
    request_id_header = "x-request-id"

    def read_error(self, call: Call, exc: BaseException) -> None:
        super().read_error(call, exc)
        if call.request_id is None:
            response = getattr(exc, "response", None)
            headers = getattr(response, "headers", None)
            if headers is not None:
                call.request_id = text(headers.get("x-request-id"))


def _read_usage(call: Call, usage: Any) -> None:
    if usage is None:
        return
    call.usage = Usage(
        input_tokens=count(field(usage, "prompt_tokens")),
        output_tokens=count(field(usage, "completion_tokens")),
        cache_read_tokens=count(field(field(usage, "prompt_tokens_details"), "cached_tokens")),
        reasoning_tokens=count(field(field(usage, "completion_tokens_details"), "reasoning_tokens")),
    )


def _read_request_id(call: Call, x_groq: Any) -> None:
    request_id = field(x_groq, "id")
    if isinstance(request_id, str) and request_id:
        call.request_id = request_id


class ChatCompletions(_GroqEndpoint):
    name = "chat.completions"

    def read_response(self, call: Call, response: Any) -> None:
        model = field(response, "model")
        if isinstance(model, str):
            call.model = model
        tier = field(response, "service_tier")
        if tier is not None:
            call.service_tier = text(tier)
        _read_request_id(call, field(response, "x_groq"))
        _read_usage(call, field(response, "usage"))
        read_choices(call, response)

    def stream_reader(self, call: Call) -> ChunkReader:
        """Runs once per chunk on the caller's thread: a content chunk costs a few attribute
        reads. The first chunk names the model and carries `x_groq.id`; the last carries usage."""
        started = False
        call.tool_calls = 0

        def read(chunk: Any) -> bool:
            nonlocal started
            choices = chunk.choices
            if not started:
                started = True
                call.model = chunk.model
                if call.request_id is None:
                    _read_request_id(call, chunk.x_groq)
            if choices:
                if call.first_token_ns is None:
                    call.mark_first_token()
                for choice in choices:
                    tool_deltas = choice.delta.tool_calls
                    if tool_deltas:
                        for tool_delta in tool_deltas:
                            if tool_delta.id is not None:  # a call's first fragment carries its id
                                call.tool_calls += 1
                    reason = choice.finish_reason
                    if reason is not None:
                        call.finish_reason = reason
                        if reason == "function_call":
                            call.tool_calls += 1
            x_groq = chunk.x_groq
            usage = chunk.usage
            if x_groq is not None:  # the first and the last chunk
                if usage is None:
                    usage = field(x_groq, "usage")
                error = field(x_groq, "error")
                if error:
                    call.error = f"x_groq.error: {error}"[:200]
            if usage is not None:
                _read_usage(call, usage)
            return True

        return read


class AudioText(_GroqEndpoint):
    """Transcriptions and translations: priced by the seconds of audio sent."""

    def read_response(self, call: Call, response: Any) -> None:
        if isinstance(response, str):  # response_format="text": the transcript alone
            return
        _read_request_id(call, field(response, "x_groq"))
        duration = field(response, "duration")  # verbose_json only
        if isinstance(duration, (int, float)) and not isinstance(duration, bool) and duration >= 0:
            seconds = max(float(duration), MIN_BILLED_AUDIO_SECONDS)
            # The seconds are input audio; `audio_seconds` is their inclusive total.
            call.units = {"audio_seconds": seconds, "input_audio_seconds": seconds}


class Transcriptions(AudioText):
    name = "audio.transcriptions"


class Translations(AudioText):
    name = "audio.translations"


_CHAT, _TRANSCRIPTIONS, _TRANSLATIONS = ChatCompletions(), Transcriptions(), Translations()


def patches() -> list[Patch]:
    targets = (
        ("groq.resources.chat.completions", "Completions", _CHAT),
        ("groq.resources.audio.transcriptions", "Transcriptions", _TRANSCRIPTIONS),
        ("groq.resources.audio.translations", "Translations", _TRANSLATIONS),
    )
    return [
        patch
        for module, owner, endpoint in targets
        for patch in (
            Patch(module, f"{owner}.create", endpoint),
            Patch(module, f"Async{owner}.create", endpoint, is_async=True),
        )
    ] + lifecycle_patches("groq")
