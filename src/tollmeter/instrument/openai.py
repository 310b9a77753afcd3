"""The `openai` SDK: chat completions, Responses, legacy completions and embeddings.

Helpers are covered through the methods they call: `chat.completions.stream()` and
`responses.stream()` call `create` when entered; `parse()` posts on its own and is wrapped too.
OpenAI-compatible APIs reached through this client are attributed by base URL.
"""

from __future__ import annotations

from typing import Any, Mapping

import openai

from ..formats import openai_chat, openai_responses
from .call import Call
from .endpoint import ChunkReader
from .fields import field
from .registry import Patch
from .stainless import StainlessEndpoint, lifecycle_patches, read_request_id


class _OpenAIEndpoint(StainlessEndpoint):
    sdk = openai
    default_provider = "openai"
    request_id_header = "x-request-id"


# -- chat completions ------------------------------------------------------------------------


class _ChatFormat(_OpenAIEndpoint):
    """Chat completions, legacy completions and embeddings: responses in the chat format (the
    format's reader reads the request id too; one function: this runs after every call)."""

    read_response = staticmethod(openai_chat.read_response)  # type: ignore[assignment]


class ChatCompletions(_ChatFormat):
    name = "chat.completions"
    request_format = openai_chat.CHAT

    def start_stream(self, call: Call, instance: Any, kwargs: Mapping[str, Any]) -> dict | None:
        if _asks_for_stream_usage(call, instance, kwargs):
            return _ask_for_stream_usage(call, kwargs)
        return None

    def stream_reader(self, call: Call) -> ChunkReader:
        return openai_chat.chunk_reader(call)


#: Providers whose answer to `stream_options.include_usage` is documented: they take the option
#: and send the usage only when asked, in a last chunk of its own with no choices (OpenAI; Azure
#: OpenAI from API version 2024-08-01-preview). Elsewhere the request is left as written unless
#: `MeterConfig.stream_usage` says otherwise: DeepSeek, OpenRouter, Groq, Together, Fireworks
#: and Mistral send usage on their last chunk unasked, and another server may refuse the option.
ASKS_FOR_STREAM_USAGE = frozenset({"openai", "azure"})
#: Gateways that pass the request to OpenAI as it is written (`cloudflare-ai-gateway/openai`,
#: `helicone/openai`): their streams are asked as OpenAI's are.
PASS_THROUGH_GATEWAYS = frozenset({"cloudflare-ai-gateway", "helicone"})
#: Azure OpenAI takes `stream_options` from API version 2024-08-01-preview on (and in its v1 API).
_AZURE_STREAM_OPTIONS_SINCE = "2024-08-01"


def _asks_for_stream_usage(call: Call, instance: Any, kwargs: Mapping[str, Any]) -> bool:
    """Whether to ask this stream for the usage its caller did not ask for (see
    `ASKS_FOR_STREAM_USAGE` and `MeterConfig.stream_usage`)."""
    setting = call.settings.stream_usage
    if setting is True or setting is False:
        return setting
    provider = call.provider
    if setting is not None and provider in setting:  # type: ignore[operator]
        return bool(setting[provider])  # type: ignore[index]
    if provider not in ASKS_FOR_STREAM_USAGE:
        gateway, _, upstream = (provider or "").partition("/")
        return upstream == "openai" and gateway in PASS_THROUGH_GATEWAYS
    if provider == "azure":
        return _azure_takes_stream_options(instance, kwargs)
    return True


def _azure_takes_stream_options(instance: Any, kwargs: Mapping[str, Any]) -> bool:
    """Azure OpenAI (an `/openai` path: not the model inference API of AI Foundry) at an API
    version that takes `stream_options`: the v1 API (no version, "preview", "latest") or a
    dated version from 2024-08-01-preview on."""
    client = getattr(instance, "_client", None)
    stored = getattr(client, "__dict__", None) or {}
    base_url = str(stored.get("_base_url") or getattr(client, "base_url", "") or "")
    if "/openai" not in base_url:
        return False
    version = None
    for query in (kwargs.get("extra_query"), stored.get("_custom_query")):
        if isinstance(query, Mapping) and query.get("api-version") is not None:
            version = query.get("api-version")
            break
    if version is None or version in ("preview", "latest", "v1"):
        return True
    return isinstance(version, str) and version[:10] >= _AZURE_STREAM_OPTIONS_SINCE


def _ask_for_stream_usage(call: Call, kwargs: Mapping[str, Any]) -> dict | None:
    """Ask for the usage chunk the caller did not ask for; the chunk filter hides it again
    (`openai_chat.hide_asked_usage`), also when the chunk reader has faulted."""
    options = kwargs.get("stream_options")
    if type(options) is dict or isinstance(options, Mapping):  # (a dict: no ABC check, every stream)
        if options.get("include_usage") is True:
            return None
        options = {**options, "include_usage": True}
    elif options is None or type(options).__name__ in ("NotGiven", "Omit"):  # absent
        options = {"include_usage": True}
    else:  # something else the SDK will send as it is: not ours to change
        return None
    call.chunk_filter = openai_chat.hide_asked_usage
    return {**kwargs, "stream_options": options}


# -- Responses API ---------------------------------------------------------------------------


class Responses(_OpenAIEndpoint):
    name = "responses"
    request_format = openai_responses.RESPONSES

    def read_response(self, call: Call, response: Any) -> None:
        openai_responses.read_response(call, response)
        read_request_id(call, response)

    def stream_reader(self, call: Call) -> ChunkReader:
        return openai_responses.stream_reader(call)


# -- legacy completions and embeddings -------------------------------------------------------


class TextCompletions(ChatCompletions):
    """Legacy `/v1/completions`: the same usage and chunk shapes as chat, text instead of messages."""

    name = "completions"
    request_format = openai_chat.COMPLETIONS

    def stream_reader(self, call: Call) -> ChunkReader:
        return openai_chat.chunk_reader(call, deltas=False)


class Embeddings(_ChatFormat):
    name = "embeddings"
    request_format = openai_chat.EMBEDDINGS


def _read_head(call: Call, response: Any) -> None:
    """The model, service tier and request id of a response that is not a chat completion."""
    openai_chat.read_head(call, response)
    read_request_id(call, response)


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


def _read_audio_usage(call: Call, reported: tuple[Any, Any]) -> None:
    """A transcription's `usage` (tokens or duration), or the verbose formats' `duration`
    (a `UsageReader` of the pair, on the worker)."""
    usage, duration = reported
    seconds = None
    if usage is not None:
        seconds = _seconds(field(usage, "seconds"))
        if seconds is None and field(usage, "type") != "duration":
            tokens = openai_responses.usage_of(usage)
            if tokens.input_tokens is not None or tokens.output_tokens is not None:
                call.usage = tokens
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
        _read_head(call, response)
        call.defer_usage(_read_audio_usage, (field(response, "usage"), field(response, "duration")))

    def stream_reader(self, call: Call) -> ChunkReader:
        def read(event: Any) -> bool:
            kind = event.type
            if kind == "transcript.text.delta":
                if call.first_token_ns is None:
                    call.mark_first_token()
            elif kind == "transcript.text.done":
                call.defer_usage(_read_audio_usage, (field(event, "usage"), None))
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
            call.defer_usage(openai_responses.read_usage, usage)


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


def _defer_image_usage(call: Call, usage: Any) -> None:
    if usage is not None:  # the GPT image models' input/output usage; DALL·E reports none
        call.defer_usage(openai_responses.read_usage, usage)


class Images(_OpenAIEndpoint):
    name = "images.generate"

    def read_response(self, call: Call, response: Any) -> None:
        _read_head(call, response)
        _defer_image_usage(call, field(response, "usage"))
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
                _defer_image_usage(call, field(event, "usage"))
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
