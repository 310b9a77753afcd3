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

from ..formats import openai_chat
from .call import Call
from .endpoint import ChunkReader
from .fields import field, text
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


def _read_request_id(call: Call, x_groq: Any) -> None:
    request_id = field(x_groq, "id")
    if isinstance(request_id, str) and request_id:
        call.request_id = request_id


class ChatCompletions(_GroqEndpoint):
    name = "chat.completions"
    request_format = openai_chat.CHAT

    def read_response(self, call: Call, response: Any) -> None:
        values = openai_chat.read_response(call, response)
        _read_request_id(call, values.get("x_groq"))

    def stream_reader(self, call: Call) -> ChunkReader:
        """Chat completion chunks with Groq's `x_groq`: the first chunk's carries the request
        id; the last one's the usage (the current API repeats it in the chunk's `usage`) and,
        for a failed generation, an error."""
        read_chunk = openai_chat.chunk_reader(call, head=_read_head)

        def read(chunk: Any) -> bool:
            shown = read_chunk(chunk)
            x_groq = getattr(chunk, "x_groq", None)
            if x_groq is not None:  # the first and the last chunk
                if getattr(chunk, "usage", None) is None:
                    usage = field(x_groq, "usage")
                    if usage is not None:
                        call.defer_usage(openai_chat.read_usage, usage)
                error = field(x_groq, "error")
                if error:
                    call.error = f"x_groq.error: {error}"[:200]
            return shown

        return read


def _read_head(call: Call, chunk: Any) -> None:
    openai_chat.read_head(call, chunk)
    if call.request_id is None:
        _read_request_id(call, getattr(chunk, "x_groq", None))


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
