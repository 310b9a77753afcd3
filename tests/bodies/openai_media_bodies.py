"""OpenAI audio and image response bodies for tests, shaped as the API sends them.

Shapes follow the `openai` SDK's generated types (3.57 and 2.54: `Transcription`,
`TranscriptionVerbose`, `TranslationVerbose`, `TranscriptionTextDoneEvent`, `ImagesResponse`,
`ImageGenCompletedEvent`, `ImageEditCompletedEvent`) and the API reference:

* Transcriptions with gpt-4o(-mini)-transcribe report `usage` of type "tokens" (input with
  its audio/text split, output); whisper-1 reports `usage` of type "duration" (whole seconds
  billed) in json and verbose_json; verbose_json also carries the exact `duration`. The text,
  srt and vtt formats answer plain text. Translations answer `{"text"}` in json.
* Streamed transcriptions are data-only SSE events; `transcript.text.done` carries `usage`.
* Speech answers audio bytes; with stream_format="sse" it answers `speech.audio.delta` events
  and a final `speech.audio.done` carrying `usage`.
* The GPT image models report `usage` (input with its text/image split, output with its
  image/text split on current releases); DALL·E reports none. Image streams are `event:` +
  `data:` pairs: partial images, then a `*.completed` event with `usage`.

Constants are dicts (JSON bodies), str (SSE or plain text) or bytes (audio).
"""

from __future__ import annotations

import json
from typing import Any

HEADERS: dict[str, str] = {
    "content-type": "application/json",
    "date": "Thu, 26 Nov 2026 12:04:31 GMT",
    "openai-organization": "user-t9x3pkq0wz8vb2m1lr6hd4nc",
    "openai-processing-ms": "1412",
    "openai-version": "2020-10-01",
    "x-request-id": "req_5f0c4e8a2b7d4c1e9a3f6b8d0e2c4a61",
}
SSE_HEADERS: dict[str, str] = {**HEADERS, "content-type": "text/event-stream; charset=utf-8"}
TEXT_HEADERS: dict[str, str] = {**HEADERS, "content-type": "text/plain; charset=utf-8"}
AUDIO_HEADERS: dict[str, str] = {**HEADERS, "content-type": "audio/mpeg", "transfer-encoding": "chunked"}

SPOKEN_TEXT = "Today is a wonderful day to build something people love!"  # 56 characters

# -- transcriptions and translations -----------------------------------------------------------

# gpt-4o-transcribe: 26 input tokens (12 text of the prompt, 14 audio), 45 output.
TRANSCRIPTION_TOKENS: dict[str, Any] = {
    "text": "Imagine the wildest idea that you've ever had, and you're curious about how it might scale "
            "to something that's a 100, a 1,000 times bigger.",
    "usage": {
        "type": "tokens",
        "input_tokens": 26,
        "input_token_details": {"text_tokens": 12, "audio_tokens": 14},
        "output_tokens": 45,
        "total_tokens": 71,
    },
}

# whisper-1, json: 9 seconds billed.
TRANSCRIPTION_WHISPER: dict[str, Any] = {
    "text": "Imagine the wildest idea that you've ever had, and you're curious about how it might scale "
            "to something that's a 100, a 1,000 times bigger.",
    "usage": {"type": "duration", "seconds": 9},
}

# whisper-1, json, as older API releases answered: no usage, no duration.
TRANSCRIPTION_WHISPER_NO_USAGE: dict[str, Any] = {"text": "The quick brown fox jumped over the lazy dog."}

# whisper-1, verbose_json: 8.47 seconds of audio, 9 seconds billed.
TRANSCRIPTION_VERBOSE: dict[str, Any] = {
    "task": "transcribe",
    "language": "english",
    "duration": 8.470000267028809,
    "text": "The beach was a popular spot on a hot summer day. People were swimming in the ocean.",
    "segments": [
        {
            "id": 0, "seek": 0, "start": 0.0, "end": 3.319999933242798,
            "text": " The beach was a popular spot on a hot summer day.",
            "tokens": [50364, 440, 7534, 390, 257, 3743, 4008, 322, 257, 2368, 4266, 786, 13, 50530],
            "temperature": 0.0, "avg_logprob": -0.2860786020755768,
            "compression_ratio": 1.2363636493682861, "no_speech_prob": 0.00985979475080967,
        },
        {
            "id": 1, "seek": 0, "start": 3.319999933242798, "end": 8.470000267028809,
            "text": " People were swimming in the ocean.",
            "tokens": [50530, 3432, 645, 11989, 294, 264, 7810, 13, 50787],
            "temperature": 0.0, "avg_logprob": -0.2860786020755768,
            "compression_ratio": 1.2363636493682861, "no_speech_prob": 0.00985979475080967,
        },
    ],
    "usage": {"type": "duration", "seconds": 9},
}

# whisper-1, text format: no usage at all.
TRANSCRIPTION_TEXT: str = "The quick brown fox jumped over the lazy dog.\n"

# whisper-1 translation, json: no usage.
TRANSLATION: dict[str, Any] = {"text": "Hello, my name is Wolfgang and I come from Germany. Where are you heading today?"}

# whisper-1 translation, verbose_json: 12.5 seconds of audio (no usage object).
TRANSLATION_VERBOSE: dict[str, Any] = {
    "task": "translate",
    "language": "english",
    "duration": 12.5,
    "text": "Hello, my name is Wolfgang and I come from Germany. Where are you heading today?",
    "segments": [
        {
            "id": 0, "seek": 0, "start": 0.0, "end": 12.5,
            "text": " Hello, my name is Wolfgang and I come from Germany. Where are you heading today?",
            "tokens": [50364, 2425, 11, 452, 1315, 307, 48998, 50989],
            "temperature": 0.0, "avg_logprob": -0.19, "compression_ratio": 1.05, "no_speech_prob": 0.004,
        }
    ],
}


def _data_sse(events: list[dict[str, Any]]) -> str:
    return "".join(f"data: {json.dumps(e, separators=(',', ':'))}\n\n" for e in events)


def _event_sse(events: list[dict[str, Any]]) -> str:
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e, separators=(',', ':'))}\n\n" for e in events)


# gpt-4o-mini-transcribe, stream=True: 14 input tokens (all audio), 8 output.
TRANSCRIPTION_STREAM: str = _data_sse([
    {"type": "transcript.text.delta", "delta": "I", "logprobs": []},
    {"type": "transcript.text.delta", "delta": " see", "logprobs": []},
    {"type": "transcript.text.delta", "delta": " skies", "logprobs": []},
    {"type": "transcript.text.delta", "delta": " of blue.", "logprobs": []},
    {"type": "transcript.text.done", "text": "I see skies of blue.", "logprobs": [],
     "usage": {"type": "tokens", "input_tokens": 14, "input_token_details": {"text_tokens": 0, "audio_tokens": 14},
               "output_tokens": 8, "total_tokens": 22}},
])

# -- speech ---------------------------------------------------------------------------------------

# An MP3 frame header and padding: what tts-1 answers (binary, no usage).
SPEECH_MP3: bytes = b"ID3\x04\x00\x00\x00\x00\x00#TSSE\x00\x00\x00\x0f\x00\x00\x03Lavf61.7.100\x00" + bytes(range(256)) * 8

# gpt-4o-mini-tts, stream_format="sse": 14 input tokens, 101 output (audio) tokens.
SPEECH_SSE: str = _data_sse([
    {"type": "speech.audio.delta", "audio": "SUQzBAAAAAAAI1RTU0UAAAAPAAADTGF2ZjYxLjcuMTAwAAAAAAAAAAAAAAD/+0DAAAAAAAAAAAAA"},
    {"type": "speech.audio.delta", "audio": "SW5mbwAAAA8AAAAFAAAJYABAQEBAQEBAQEBAQEBAQEBAgICAgICAgICAgICAgICA"},
    {"type": "speech.audio.done", "usage": {"input_tokens": 14, "output_tokens": 101, "total_tokens": 115}},
])

# -- images ---------------------------------------------------------------------------------------

_B64_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

# gpt-image-1 generate: 50 input tokens (all text), 4160 output (all image).
IMAGE_GPT: dict[str, Any] = {
    "created": 1713833628,
    "background": "opaque",
    "data": [{"b64_json": _B64_PNG}],
    "output_format": "png",
    "quality": "high",
    "size": "1024x1024",
    "usage": {
        "input_tokens": 50,
        "input_tokens_details": {"image_tokens": 0, "text_tokens": 50},
        "output_tokens": 4160,
        "output_tokens_details": {"image_tokens": 4160, "text_tokens": 0},
        "total_tokens": 4210,
    },
}

# gpt-image-1 generate, n=2, as openai 2.x types it (no output details): 38 input (text),
# 2720 output.
IMAGE_GPT_TWO: dict[str, Any] = {
    "created": 1713833702,
    "background": "opaque",
    "data": [{"b64_json": _B64_PNG}, {"b64_json": _B64_PNG}],
    "output_format": "png",
    "quality": "medium",
    "size": "1024x1024",
    "usage": {
        "input_tokens": 38,
        "input_tokens_details": {"image_tokens": 0, "text_tokens": 38},
        "output_tokens": 2720,
        "total_tokens": 2758,
    },
}

# gpt-image-1 edit: 373 input tokens (50 text, 323 image), 4160 output (all image).
IMAGE_EDIT_GPT: dict[str, Any] = {
    "created": 1713833750,
    "background": "opaque",
    "data": [{"b64_json": _B64_PNG}],
    "output_format": "png",
    "quality": "high",
    "size": "1024x1024",
    "usage": {
        "input_tokens": 373,
        "input_tokens_details": {"image_tokens": 323, "text_tokens": 50},
        "output_tokens": 4160,
        "output_tokens_details": {"image_tokens": 4160, "text_tokens": 0},
        "total_tokens": 4533,
    },
}

# dall-e-3: one image, no usage.
IMAGE_DALLE: dict[str, Any] = {
    "created": 1713833628,
    "data": [{
        "url": "https://oaidalleapiprodscus.blob.core.windows.net/private/org-x/user-y/img-z.png?st=2026-11-26",
        "revised_prompt": "A photorealistic image of a white Siamese cat sitting on a windowsill at dusk.",
    }],
}

# gpt-image-1 generate, stream=True, partial_images=2: 50 input (text), 4360 output as reported
# on the completed event (the partial images' tokens included).
IMAGE_STREAM: str = _event_sse([
    {"type": "image_generation.partial_image", "b64_json": _B64_PNG, "created_at": 1713833628, "size": "1024x1024",
     "quality": "high", "background": "opaque", "output_format": "png", "partial_image_index": 0},
    {"type": "image_generation.partial_image", "b64_json": _B64_PNG, "created_at": 1713833629, "size": "1024x1024",
     "quality": "high", "background": "opaque", "output_format": "png", "partial_image_index": 1},
    {"type": "image_generation.completed", "b64_json": _B64_PNG, "created_at": 1713833640, "size": "1024x1024",
     "quality": "high", "background": "opaque", "output_format": "png",
     "usage": {"input_tokens": 50, "input_tokens_details": {"image_tokens": 0, "text_tokens": 50},
               "output_tokens": 4360, "total_tokens": 4410}},
])

# gpt-image-1 edit, stream=True, partial_images=1: 373 input (50 text, 323 image), 4260 output.
IMAGE_EDIT_STREAM: str = _event_sse([
    {"type": "image_edit.partial_image", "b64_json": _B64_PNG, "created_at": 1713833750, "size": "1024x1024",
     "quality": "high", "background": "opaque", "output_format": "png", "partial_image_index": 0},
    {"type": "image_edit.completed", "b64_json": _B64_PNG, "created_at": 1713833760, "size": "1024x1024",
     "quality": "high", "background": "opaque", "output_format": "png",
     "usage": {"input_tokens": 373, "input_tokens_details": {"image_tokens": 323, "text_tokens": 50},
               "output_tokens": 4260, "total_tokens": 4633}},
])

# -- errors ---------------------------------------------------------------------------------------

ERROR_CONTENT_POLICY: dict[str, Any] = {
    "error": {
        "code": "content_policy_violation",
        "message": "Your request was rejected as a result of our safety system.",
        "param": None,
        "type": "image_generation_user_error",
    }
}
ERROR_AUDIO_FORMAT: dict[str, Any] = {
    "error": {
        "message": "Invalid file format. Supported formats: ['flac', 'm4a', 'mp3', 'mp4', 'mpeg', 'mpga', 'oga', "
                   "'ogg', 'wav', 'webm']",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
}
ERROR_429: dict[str, Any] = {
    "error": {
        "message": "Rate limit reached for tts-1 in organization org-x on requests per min (RPM): Limit 50, Used 50.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}
