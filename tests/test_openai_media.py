"""The openai SDK's audio and image endpoints, on bodies shaped as the API sends them
(tests/bodies/openai_media_bodies.py).

Expected usage and units are written out by hand from each body. Token totals are inclusive:
audio and image tokens are inside input_tokens / output_tokens.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import httpx
import openai
import pytest

from tollmeter import Usage

from .bodies import openai_media_bodies as B
from .conftest import observe, run_bare_then_patched

pytestmark = pytest.mark.sdk

BASE = "https://api.openai.com/v1"
TRANSCRIPTIONS, TRANSLATIONS = f"{BASE}/audio/transcriptions", f"{BASE}/audio/translations"
SPEECH, GENERATIONS, EDITS = f"{BASE}/audio/speech", f"{BASE}/images/generations", f"{BASE}/images/edits"
AUDIO = ("speech.mp3", b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(64), "audio/mpeg")
IMAGE = ("otter.png", b"\x89PNG\r\n\x1a\n" + bytes(64), "image/png")
M = Decimal(10**6)


def client() -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test", max_retries=0)


def aclient() -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="sk-test", max_retries=0)


# -- transcriptions and translations ---------------------------------------------------------------


@pytest.mark.parametrize(
    "model, body, response_format, usage, units",
    [
        ("gpt-4o-transcribe", B.TRANSCRIPTION_TOKENS, "json",
         Usage(input_tokens=26, output_tokens=45, input_audio_tokens=14), None),
        ("whisper-1", B.TRANSCRIPTION_WHISPER, "json", Usage(), {"audio_seconds": 9, "input_audio_seconds": 9}),
        # verbose_json: the billed 9 seconds of usage win over the exact 8.47 of `duration`.
        ("whisper-1", B.TRANSCRIPTION_VERBOSE, "verbose_json", Usage(),
         {"audio_seconds": 9, "input_audio_seconds": 9}),
        ("whisper-1", B.TRANSCRIPTION_WHISPER_NO_USAGE, "json", Usage(), None),
    ],
    ids=["tokens", "whisper_json", "whisper_verbose", "whisper_no_usage"],
)
def test_transcription(recorder, http_mock, model, body, response_format, usage, units):
    http_mock.post(TRANSCRIPTIONS).respond(json=body, headers=B.HEADERS)
    result = client().audio.transcriptions.create(model=model, file=AUDIO, response_format=response_format)
    assert result.text == body["text"]
    event = recorder.one()
    assert (event.usage, event.units) == (usage, units)
    assert (event.provider, event.endpoint, event.model, event.stream) == ("openai", "audio.transcriptions", model, False)
    assert event.request_id == B.HEADERS["x-request-id"] and event.error is None


def test_transcription_duration_without_usage(recorder, http_mock):
    body = {k: v for k, v in B.TRANSCRIPTION_VERBOSE.items() if k != "usage"}
    http_mock.post(TRANSCRIPTIONS).respond(json=body, headers=B.HEADERS)
    client().audio.transcriptions.create(model="whisper-1", file=AUDIO, response_format="verbose_json")
    event = recorder.one()
    assert event.units == {"audio_seconds": 8.470000267028809, "input_audio_seconds": 8.470000267028809}


def test_transcription_as_text_has_no_usage(recorder, http_mock):
    http_mock.post(TRANSCRIPTIONS).respond(text=B.TRANSCRIPTION_TEXT, headers=B.TEXT_HEADERS)
    result = client().audio.transcriptions.create(model="whisper-1", file=AUDIO, response_format="text")
    assert isinstance(result, str) and result.startswith("The quick brown fox")
    event = recorder.one()
    assert (event.usage, event.units, event.priced, event.cost_usd) == (Usage(), None, False, None)


async def test_async_transcription(recorder, http_mock):
    http_mock.post(TRANSCRIPTIONS).respond(json=B.TRANSCRIPTION_TOKENS, headers=B.HEADERS)
    await aclient().audio.transcriptions.create(model="gpt-4o-transcribe", file=AUDIO)
    assert recorder.one().usage == Usage(input_tokens=26, output_tokens=45, input_audio_tokens=14)


def test_transcription_stream(recorder, http_mock):
    http_mock.post(TRANSCRIPTIONS).respond(text=B.TRANSCRIPTION_STREAM, headers=B.SSE_HEADERS)
    stream = client().audio.transcriptions.create(model="gpt-4o-mini-transcribe", file=AUDIO, stream=True)
    assert isinstance(stream, openai.Stream)
    events = list(stream)
    assert [e.type for e in events][-1] == "transcript.text.done"
    event = recorder.one()
    assert event.usage == Usage(input_tokens=14, output_tokens=8, input_audio_tokens=14)
    assert (event.stream, event.partial, event.request_id) == (True, False, B.SSE_HEADERS["x-request-id"])
    assert 0 <= event.time_to_first_token_ms <= event.duration_ms


async def test_async_transcription_stream(recorder, http_mock):
    http_mock.post(TRANSCRIPTIONS).respond(text=B.TRANSCRIPTION_STREAM, headers=B.SSE_HEADERS)
    stream = await aclient().audio.transcriptions.create(model="gpt-4o-mini-transcribe", file=AUDIO, stream=True)
    events = [e async for e in stream]
    assert events[-1].usage.output_tokens == 8
    event = recorder.one()
    assert event.usage == Usage(input_tokens=14, output_tokens=8, input_audio_tokens=14) and not event.partial


def test_transcription_stream_closed_early_is_partial(recorder, http_mock):
    http_mock.post(TRANSCRIPTIONS).respond(text=B.TRANSCRIPTION_STREAM, headers=B.SSE_HEADERS)
    stream = client().audio.transcriptions.create(model="gpt-4o-mini-transcribe", file=AUDIO, stream=True)
    next(iter(stream))
    stream.close()
    event = recorder.one()
    assert event.partial and event.usage == Usage()


@pytest.mark.parametrize(
    "body, response_format, units",
    [
        (B.TRANSLATION, "json", None),  # no duration reported: unpriced
        (B.TRANSLATION_VERBOSE, "verbose_json", {"audio_seconds": 12.5, "input_audio_seconds": 12.5}),
    ],
    ids=["json", "verbose_json"],
)
def test_translation(recorder, http_mock, body, response_format, units):
    http_mock.post(TRANSLATIONS).respond(json=body, headers=B.HEADERS)
    result = client().audio.translations.create(model="whisper-1", file=AUDIO, response_format=response_format)
    assert result.text == body["text"]
    event = recorder.one()
    assert (event.endpoint, event.units, event.usage) == ("audio.translations", units, Usage())


async def test_async_translation(recorder, http_mock):
    http_mock.post(TRANSLATIONS).respond(json=B.TRANSLATION_VERBOSE, headers=B.HEADERS)
    await aclient().audio.translations.create(model="whisper-1", file=AUDIO, response_format="verbose_json")
    assert recorder.one().units == {"audio_seconds": 12.5, "input_audio_seconds": 12.5}


def test_transcription_error(recorder, http_mock):
    http_mock.post(TRANSCRIPTIONS).respond(400, json=B.ERROR_AUDIO_FORMAT, headers=B.HEADERS)
    with pytest.raises(openai.BadRequestError) as raised:
        client().audio.transcriptions.create(model="whisper-1", file=AUDIO)
    assert raised.value.body == B.ERROR_AUDIO_FORMAT["error"]
    event = recorder.one()
    assert (event.error, event.status_code, event.request_id) == ("BadRequestError", 400, B.HEADERS["x-request-id"])


def test_transcription_with_raw_response(recorder, http_mock):
    http_mock.post(TRANSCRIPTIONS).respond(json=B.TRANSCRIPTION_WHISPER, headers=B.HEADERS)
    raw = client().audio.transcriptions.with_raw_response.create(model="whisper-1", file=AUDIO)
    assert raw.parse().usage.seconds == 9
    assert recorder.one().units == {"audio_seconds": 9, "input_audio_seconds": 9}


# -- speech ---------------------------------------------------------------------------------------


def test_speech_tts1_counts_characters(recorder, http_mock):
    http_mock.post(SPEECH).respond(content=B.SPEECH_MP3, headers=B.AUDIO_HEADERS)
    audio = client().audio.speech.create(model="tts-1", voice="alloy", input=B.SPOKEN_TEXT)
    assert audio.content == B.SPEECH_MP3
    event = recorder.one()
    assert (event.endpoint, event.model, event.usage) == ("audio.speech", "tts-1", Usage())
    assert event.units == {"input_characters": 56}
    assert event.request_id == B.HEADERS["x-request-id"]


def test_speech_token_model_without_sse_is_unpriced(recorder, http_mock):
    http_mock.post(SPEECH).respond(content=B.SPEECH_MP3, headers=B.AUDIO_HEADERS)
    client().audio.speech.create(model="gpt-4o-mini-tts", voice="coral", input=B.SPOKEN_TEXT)
    event = recorder.one()
    # Billed in tokens the API does not report here: no usage, no characters, no price (not $0).
    assert (event.usage, event.units, event.priced, event.cost_usd) == (Usage(), None, False, None)


def test_speech_sse_reports_tokens(recorder, http_mock):
    http_mock.post(SPEECH).respond(text=B.SPEECH_SSE, headers=B.SSE_HEADERS)
    audio = client().audio.speech.create(model="gpt-4o-mini-tts", voice="coral", input=B.SPOKEN_TEXT,
                                         stream_format="sse")
    assert audio.text == B.SPEECH_SSE  # the caller reads the events as the SDK gave them
    event = recorder.one()
    assert event.usage == Usage(input_tokens=14, output_tokens=101) and event.units is None


async def test_async_speech(recorder, http_mock):
    http_mock.post(SPEECH).respond(content=B.SPEECH_MP3, headers=B.AUDIO_HEADERS)
    audio = await aclient().audio.speech.create(model="tts-1-hd", voice="alloy", input="Hello!")
    assert audio.content == B.SPEECH_MP3
    assert recorder.one().units == {"input_characters": 6}


def test_speech_with_streaming_response_stream_to_file(recorder, http_mock, tmp_path):
    http_mock.post(SPEECH).respond(content=B.SPEECH_MP3, headers=B.AUDIO_HEADERS)
    target = tmp_path / "speech.mp3"
    with client().audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input=B.SPOKEN_TEXT) as response:
        response.stream_to_file(target)
    assert target.read_bytes() == B.SPEECH_MP3
    event = recorder.one()
    assert event.units == {"input_characters": 56} and event.error is None and not event.partial


def test_speech_with_streaming_response_iter_bytes(recorder, http_mock):
    http_mock.post(SPEECH).respond(content=B.SPEECH_MP3, headers=B.AUDIO_HEADERS)
    with client().audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input=B.SPOKEN_TEXT) as response:
        received = b"".join(response.iter_bytes(chunk_size=512))
    assert received == B.SPEECH_MP3
    assert recorder.one().units == {"input_characters": 56}


async def test_async_speech_with_streaming_response(recorder, http_mock, tmp_path):
    http_mock.post(SPEECH).respond(content=B.SPEECH_MP3, headers=B.AUDIO_HEADERS)
    target = tmp_path / "speech.mp3"
    async with aclient().audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input=B.SPOKEN_TEXT) as response:
        await response.stream_to_file(target)
    assert target.read_bytes() == B.SPEECH_MP3
    assert recorder.one().units == {"input_characters": 56}


def test_speech_write_to_file(recorder, http_mock, tmp_path):
    http_mock.post(SPEECH).respond(content=B.SPEECH_MP3, headers=B.AUDIO_HEADERS)
    target = tmp_path / "speech.mp3"
    client().audio.speech.create(model="tts-1", voice="alloy", input=B.SPOKEN_TEXT).write_to_file(target)
    assert target.read_bytes() == B.SPEECH_MP3
    assert recorder.one().units == {"input_characters": 56}


def test_speech_error(recorder, http_mock):
    http_mock.post(SPEECH).respond(429, json=B.ERROR_429, headers=B.HEADERS)
    with pytest.raises(openai.RateLimitError):
        client().audio.speech.create(model="tts-1", voice="alloy", input=B.SPOKEN_TEXT)
    event = recorder.one()
    assert (event.error, event.status_code) == ("RateLimitError", 429)
    assert event.units is None and event.cost_usd == Decimal(0)  # refused: no characters billed


# -- images ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model, body, usage, images",
    [
        ("gpt-image-1", B.IMAGE_GPT,
         Usage(input_tokens=50, output_tokens=4160, input_image_tokens=0, output_image_tokens=4160), 1),
        ("gpt-image-1", B.IMAGE_GPT_TWO, Usage(input_tokens=38, output_tokens=2720, input_image_tokens=0), 2),
        ("dall-e-3", B.IMAGE_DALLE, Usage(), 1),
    ],
    ids=["gpt_image", "gpt_image_two", "dalle"],
)
def test_images_generate(recorder, http_mock, model, body, usage, images):
    http_mock.post(GENERATIONS).respond(json=body, headers=B.HEADERS)
    response = client().images.generate(model=model, prompt="A cute baby sea otter")
    assert response.created == body["created"]
    event = recorder.one()
    assert (event.usage, event.units) == (usage, {"images": images})
    assert (event.provider, event.endpoint, event.model) == ("openai", "images.generate", model)
    assert event.request_id == B.HEADERS["x-request-id"]


def test_images_edit(recorder, http_mock):
    http_mock.post(EDITS).respond(json=B.IMAGE_EDIT_GPT, headers=B.HEADERS)
    client().images.edit(model="gpt-image-1", image=IMAGE, prompt="Add a red hat")
    event = recorder.one()
    assert event.endpoint == "images.edit"
    assert event.usage == Usage(input_tokens=373, output_tokens=4160, input_image_tokens=323,
                                output_image_tokens=4160)


async def test_async_images(recorder, http_mock):
    http_mock.post(GENERATIONS).respond(json=B.IMAGE_GPT, headers=B.HEADERS)
    http_mock.post(EDITS).respond(json=B.IMAGE_EDIT_GPT, headers=B.HEADERS)
    c = aclient()
    await c.images.generate(model="gpt-image-1", prompt="otter")
    await c.images.edit(model="gpt-image-1", image=IMAGE, prompt="Add a red hat")
    events = recorder.recorded()
    assert [(e.endpoint, e.usage.input_tokens) for e in events] == [("images.generate", 50), ("images.edit", 373)]


def test_images_stream(recorder, http_mock):
    http_mock.post(GENERATIONS).respond(text=B.IMAGE_STREAM, headers=B.SSE_HEADERS)
    stream = client().images.generate(model="gpt-image-1", prompt="otter", stream=True, partial_images=2)
    events = list(stream)
    assert [e.type for e in events] == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    event = recorder.one()
    assert event.usage == Usage(input_tokens=50, output_tokens=4360, input_image_tokens=0)
    assert (event.units, event.stream, event.partial) == ({"images": 1}, True, False)
    assert event.time_to_first_token_ms is not None


async def test_async_images_edit_stream(recorder, http_mock):
    http_mock.post(EDITS).respond(text=B.IMAGE_EDIT_STREAM, headers=B.SSE_HEADERS)
    stream = await aclient().images.edit(model="gpt-image-1", image=IMAGE, prompt="hat", stream=True,
                                         partial_images=1)
    events = [e async for e in stream]
    assert events[-1].type == "image_edit.completed"
    event = recorder.one()
    assert event.usage == Usage(input_tokens=373, output_tokens=4260, input_image_tokens=323)
    assert event.endpoint == "images.edit" and event.units == {"images": 1}


def test_images_stream_broken_off_is_partial_without_usage(recorder, http_mock):
    http_mock.post(GENERATIONS).respond(text=B.IMAGE_STREAM, headers=B.SSE_HEADERS)
    stream = client().images.generate(model="gpt-image-1", prompt="otter", stream=True, partial_images=2)
    next(iter(stream))
    stream.close()
    event = recorder.one()
    assert event.partial and event.usage == Usage() and event.units is None


def test_images_content_policy_error(recorder, http_mock):
    http_mock.post(GENERATIONS).respond(400, json=B.ERROR_CONTENT_POLICY, headers=B.HEADERS)
    with pytest.raises(openai.BadRequestError) as raised:
        client().images.generate(model="dall-e-3", prompt="...")
    assert raised.value.code == "content_policy_violation"
    event = recorder.one()
    assert (event.error, event.status_code, event.units) == ("BadRequestError", 400, None)


def test_odd_media_usage_never_raises(recorder, http_mock):
    odd = {**B.IMAGE_GPT, "usage": {"input_tokens": "50", "output_tokens": -1, "input_tokens_details": "x"}}
    http_mock.post(GENERATIONS).respond(json=odd, headers=B.HEADERS)
    client().images.generate(model="gpt-image-1", prompt="otter")
    assert recorder.one().usage == Usage(input_tokens=50)


def test_odd_audio_usage_never_raises(recorder, http_mock):
    odd = {"text": "hi", "usage": {"type": "duration", "seconds": "nan"}, "duration": -4}
    http_mock.post(TRANSCRIPTIONS).respond(json=odd, headers=B.HEADERS)
    client().audio.transcriptions.create(model="whisper-1", file=AUDIO)
    event = recorder.one()
    assert (event.usage, event.units) == (Usage(), None)


# -- pricing --------------------------------------------------------------------------------------


def test_whisper_is_priced_per_second(recorder, http_mock):
    # openai/whisper-1: $0.36 per hour of input audio ($0.006 a minute).
    http_mock.post(TRANSCRIPTIONS).respond(json=B.TRANSCRIPTION_WHISPER, headers=B.HEADERS)
    client().audio.transcriptions.create(model="whisper-1", file=AUDIO)
    event = recorder.one()
    assert event.priced and event.price_model == "openai/whisper-1"
    assert event.cost_usd == Decimal("0.36") * 9 / 3600


def test_transcribe_tokens_are_priced(recorder, http_mock):
    # openai/gpt-4o-transcribe: $2.50 / M text input, $6 / M audio input, $10 / M output.
    http_mock.post(TRANSCRIPTIONS).respond(json=B.TRANSCRIPTION_TOKENS, headers=B.HEADERS)
    client().audio.transcriptions.create(model="gpt-4o-transcribe", file=AUDIO)
    assert recorder.one().cost_usd == (12 * Decimal("2.5") + 14 * Decimal(6) + 45 * Decimal(10)) / M


def test_mini_transcribe_stream_is_priced(recorder, http_mock):
    # openai/gpt-4o-mini-transcribe: $1.25 / M text input, $3 / M audio input, $5 / M output.
    http_mock.post(TRANSCRIPTIONS).respond(text=B.TRANSCRIPTION_STREAM, headers=B.SSE_HEADERS)
    list(client().audio.transcriptions.create(model="gpt-4o-mini-transcribe", file=AUDIO, stream=True))
    assert recorder.one().cost_usd == (14 * Decimal(3) + 8 * Decimal(5)) / M


def test_tts1_is_priced_per_character(recorder, http_mock):
    # openai/tts-1: $15 per million characters.
    http_mock.post(SPEECH).respond(content=B.SPEECH_MP3, headers=B.AUDIO_HEADERS)
    client().audio.speech.create(model="tts-1", voice="alloy", input=B.SPOKEN_TEXT)
    event = recorder.one()
    assert event.price_model == "openai/tts-1" and event.cost_usd == 56 * Decimal(15) / M


def test_mini_tts_sse_is_priced(recorder, http_mock):
    # openai/gpt-4o-mini-tts: $0.60 / M input, $12 / M output.
    http_mock.post(SPEECH).respond(text=B.SPEECH_SSE, headers=B.SSE_HEADERS)
    client().audio.speech.create(model="gpt-4o-mini-tts", voice="coral", input=B.SPOKEN_TEXT, stream_format="sse")
    assert recorder.one().cost_usd == (14 * Decimal("0.6") + 101 * Decimal(12)) / M


def test_gpt_image_is_priced(recorder, http_mock):
    # openai/gpt-image-1: $5 / M text input, $10 / M image input, $40 / M output.
    http_mock.post(EDITS).respond(json=B.IMAGE_EDIT_GPT, headers=B.HEADERS)
    client().images.edit(model="gpt-image-1", image=IMAGE, prompt="Add a red hat")
    event = recorder.one()
    assert event.price_model == "openai/gpt-image-1"
    assert event.cost_usd == (50 * Decimal(5) + 323 * Decimal(10) + 4160 * Decimal(40)) / M


def test_dalle_is_unpriced_not_free(recorder, http_mock):
    # genai-prices 0.2.3 has no DALL·E price and no per-image unit.
    http_mock.post(GENERATIONS).respond(json=B.IMAGE_DALLE, headers=B.HEADERS)
    client().images.generate(model="dall-e-3", prompt="otter")
    event = recorder.one()
    assert (event.priced, event.cost_usd, event.units) == (False, None, {"images": 1})


# -- transparency and one event per call -----------------------------------------------------------




def mock_media(router):
    def transcriptions(request):
        form = request.content
        if b'name="stream"' in form:
            return httpx.Response(200, text=B.TRANSCRIPTION_STREAM, headers=B.SSE_HEADERS)
        if b"verbose_json" in form:
            return httpx.Response(200, json=B.TRANSCRIPTION_VERBOSE, headers=B.HEADERS)
        if b"\r\n\r\ntext\r\n" in form:
            return httpx.Response(200, text=B.TRANSCRIPTION_TEXT, headers=B.TEXT_HEADERS)
        return httpx.Response(200, json=B.TRANSCRIPTION_TOKENS, headers=B.HEADERS)

    def speech(request):
        if json.loads(request.content).get("stream_format") == "sse":
            return httpx.Response(200, text=B.SPEECH_SSE, headers=B.SSE_HEADERS)
        return httpx.Response(200, content=B.SPEECH_MP3, headers=B.AUDIO_HEADERS)

    def generations(request):
        sent = json.loads(request.content)
        if sent.get("stream"):
            return httpx.Response(200, text=B.IMAGE_STREAM, headers=B.SSE_HEADERS)
        if sent.get("model") == "dall-e-3":
            return httpx.Response(400, json=B.ERROR_CONTENT_POLICY, headers=B.HEADERS)
        return httpx.Response(200, json=B.IMAGE_GPT, headers=B.HEADERS)

    router.post(TRANSCRIPTIONS).mock(side_effect=transcriptions)
    router.post(TRANSLATIONS).respond(json=B.TRANSLATION_VERBOSE, headers=B.HEADERS)
    router.post(SPEECH).mock(side_effect=speech)
    router.post(GENERATIONS).mock(side_effect=generations)
    router.post(EDITS).respond(text=B.IMAGE_EDIT_STREAM, headers=B.SSE_HEADERS)


def _transcriptions():
    c = client()
    return (observe(c.audio.transcriptions.create(model="gpt-4o-transcribe", file=AUDIO)),
            observe(c.audio.transcriptions.create(model="whisper-1", file=AUDIO, response_format="verbose_json")),
            observe(c.audio.transcriptions.create(model="whisper-1", file=AUDIO, response_format="text")),
            observe(c.audio.translations.create(model="whisper-1", file=AUDIO, response_format="verbose_json")))


def _transcription_stream():
    return observe(list(client().audio.transcriptions.create(model="gpt-4o-mini-transcribe", file=AUDIO,
                                                             stream=True)))


def _speech():
    c = client()
    return (observe(c.audio.speech.create(model="tts-1", voice="alloy", input=B.SPOKEN_TEXT)),
            observe(c.audio.speech.create(model="gpt-4o-mini-tts", voice="coral", input=B.SPOKEN_TEXT,
                                          stream_format="sse")))


def _speech_streaming_response():
    with client().audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input=B.SPOKEN_TEXT) as response:
        return response.__class__.__qualname__, b"".join(response.iter_bytes()), response.status_code


def _images():
    c = client()
    return (observe(c.images.generate(model="gpt-image-1", prompt="otter")),
            observe(list(c.images.generate(model="gpt-image-1", prompt="otter", stream=True))))


def _async_media():
    async def run():
        c = aclient()
        audio = await c.audio.speech.create(model="tts-1", voice="alloy", input=B.SPOKEN_TEXT)
        edits = [e async for e in await c.images.edit(model="gpt-image-1", image=IMAGE, prompt="hat", stream=True)]
        return observe(audio), observe(edits)

    return asyncio.run(run())


def _image_error():
    try:
        client().images.generate(model="dall-e-3", prompt="...")
    except openai.BadRequestError as exc:
        return type(exc).__qualname__, str(exc), exc.status_code, exc.body, exc.request_id


SCENARIOS = [_transcriptions, _transcription_stream, _speech, _speech_streaming_response, _images, _async_media,
             _image_error]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_patched_result_equals_unpatched(http_mock, scenario):
    mock_media(http_mock)
    bare, patched, events = run_bare_then_patched(scenario, "openai")
    assert patched == bare and bare is not None
    assert events, "the patched run was not metered"


@pytest.mark.parametrize("scenario, calls", [
    (_transcriptions, 4), (_transcription_stream, 1), (_speech, 2), (_speech_streaming_response, 1),
    (_images, 2), (_async_media, 2), (_image_error, 1),
], ids=[s.__name__ for s in SCENARIOS])
def test_one_event_per_call(recorder, http_mock, scenario, calls):
    mock_media(http_mock)
    scenario()
    assert len(recorder.recorded()) == calls
