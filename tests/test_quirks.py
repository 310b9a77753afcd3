"""Provider quirks, each on a body shaped as the provider sends it (tests/bodies/gateway_bodies.py):
Anthropic compaction iterations, Gemini's OpenAI-compatible usage, OpenRouter's error after the
usage, and audio tokens that must not be priced at the text rate.

(Groq's `x_groq.usage` on the last stream chunk: tests/test_groq.py, `x_groq_usage_only`.)
"""

from __future__ import annotations

import logging
from decimal import Decimal

import anthropic
import openai
import pytest

from tollmeter import LLMEvent, Usage
from tollmeter.pricing.pricer import Pricer
from tollmeter.pricing.ratecard import RateCard

from .bodies import gateway_bodies as G
from .bodies import openai_bodies as OB

pytestmark = pytest.mark.sdk

M = Decimal(1_000_000)
MESSAGES = [{"role": "user", "content": "Where were we?"}]
ANTHROPIC_URL = "https://api.anthropic.com/v1/messages"
BETA = {"anthropic-beta": "compact-2026-01-12"}
CONTEXT = {"edits": [{"type": "compact_20260112"}]}


# -- Anthropic: usage per iteration (compaction) ---------------------------------------------------

#: The message iteration (= the top-level counts) plus the compaction iteration.
COMPACTED = Usage(input_tokens=23_000 + 180_000, output_tokens=1_000 + 3_500, cache_read_tokens=20_000 + 150_000,
                  cache_write_tokens=2_000, cache_write_1h_tokens=0)


def compacted_cost() -> Decimal:
    """claude-sonnet-4-6 at $3 in, $15 out, $0.30 cache reads, $3.75 cache writes (5 minutes)."""
    plain_input = COMPACTED.input_tokens - COMPACTED.cache_read_tokens - COMPACTED.cache_write_tokens
    return (plain_input * Decimal(3) + COMPACTED.output_tokens * Decimal(15)
            + COMPACTED.cache_read_tokens * Decimal("0.3") + COMPACTED.cache_write_tokens * Decimal("3.75")) / M


def anthropic_client() -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="sk-ant-test", max_retries=0)


def test_compaction_iterations_are_summed(recorder, http_mock):
    http_mock.post(url__startswith=ANTHROPIC_URL).respond(json=G.COMPACTION_MESSAGE)
    message = anthropic_client().beta.messages.create(
        model="claude-sonnet-4-6", max_tokens=4096, messages=MESSAGES, context_management=CONTEXT,
        extra_headers=BETA)
    assert message.usage.input_tokens == 1_000  # the caller's object is untouched
    event = recorder.one()
    assert event.usage == COMPACTED
    assert event.cost_usd == compacted_cost()


def test_compaction_iterations_in_a_stream(recorder, http_mock):
    http_mock.post(url__startswith=ANTHROPIC_URL).respond(
        text=G.COMPACTION_STREAM, headers={"content-type": "text/event-stream"})
    stream = anthropic_client().beta.messages.create(
        model="claude-sonnet-4-6", max_tokens=4096, messages=MESSAGES, context_management=CONTEXT,
        extra_headers=BETA, stream=True)
    assert [e.type for e in stream][-1] == "message_stop"
    event = recorder.one()
    assert event.usage == COMPACTED and not event.partial
    assert event.cost_usd == compacted_cost()


def test_iterations_without_compaction_change_nothing():
    from tollmeter.formats.anthropic_messages import Counts

    counts = Counts()
    counts.update({"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 0,
                   "cache_creation_input_tokens": 0,
                   "iterations": [{"type": "message", "input_tokens": 4, "output_tokens": 2,
                                   "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0},
                                  {"type": "message", "input_tokens": 6, "output_tokens": 3,
                                   "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0},
                                  # another model's sampling (an advisor): billed at its own prices
                                  {"type": "advisor_message", "model": "claude-opus-4-6", "input_tokens": 900,
                                   "output_tokens": 90, "cache_read_input_tokens": 0,
                                   "cache_creation_input_tokens": 0}]})
    assert counts.usage() == Usage(input_tokens=10, output_tokens=5, cache_read_tokens=0, cache_write_tokens=0)


# -- Gemini's OpenAI-compatible endpoint ------------------------------------------------------------

GEMINI = "https://generativelanguage.googleapis.com/v1beta/openai"
THOUGHT = Usage(input_tokens=20, output_tokens=151 + 382, reasoning_tokens=382)


def gemini_client() -> openai.OpenAI:
    return openai.OpenAI(api_key="gemini-key", base_url=f"{GEMINI}/", max_retries=0)


@pytest.mark.parametrize("body", [G.GEMINI_COMPAT_CHAT, G.GEMINI_COMPAT_CHAT_DETAILED], ids=["total_only", "detailed"])
def test_gemini_compatible_reasoning_is_output(recorder, http_mock, body):
    http_mock.post(f"{GEMINI}/chat/completions").respond(json=body)
    response = gemini_client().chat.completions.create(model="gemini-2.5-flash", messages=MESSAGES)
    assert response.usage.completion_tokens == 151  # the caller sees what was sent
    event = recorder.one()
    assert event.provider == "google"
    assert event.usage == THOUGHT
    # gemini-2.5-flash: $0.30 in, $2.50 out (thinking included)
    assert event.cost_usd == (20 * Decimal("0.3") + 533 * Decimal("2.5")) / M


def test_gemini_compatible_stream(recorder, http_mock):
    http_mock.post(f"{GEMINI}/chat/completions").respond(text=G.GEMINI_COMPAT_STREAM,
                                                         headers={"content-type": "text/event-stream"})
    list(gemini_client().chat.completions.create(model="gemini-2.5-flash", messages=MESSAGES, stream=True))
    assert recorder.one().usage == THOUGHT


def test_inclusive_reasoning_is_not_added_twice():
    """OpenAI's reasoning is inside completion_tokens (the total says so): left as it is."""
    from tollmeter.formats.openai_chat import usage_of

    usage = usage_of({"prompt_tokens": 26, "completion_tokens": 1484, "total_tokens": 1510,
                      "completion_tokens_details": {"reasoning_tokens": 1344}})
    assert (usage.output_tokens, usage.reasoning_tokens) == (1484, 1344)
    exclusive = usage_of({"prompt_tokens": 26, "completion_tokens": 140, "total_tokens": 1510,
                          "completion_tokens_details": {"reasoning_tokens": 1344}})
    assert (exclusive.output_tokens, exclusive.reasoning_tokens) == (1484, 1344)


# -- OpenRouter: the stream ends with an error after the usage ----------------------------------------


def test_openrouter_error_after_usage_keeps_the_usage(recorder, http_mock):
    http_mock.post("https://openrouter.ai/api/v1/chat/completions").respond(
        text=G.OPENROUTER_STREAM_ERROR, headers={"content-type": "text/event-stream"})
    client = openai.OpenAI(api_key="sk-or-test", base_url="https://openrouter.ai/api/v1", max_retries=0)
    stream = client.chat.completions.create(model="google/gemini-2.5-pro", messages=MESSAGES, stream=True)
    seen = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            seen.append(chunk)
    assert len(seen) == 3  # the chunks before the error reached the caller
    event = recorder.one()
    assert event.error == "APIError" and event.partial
    assert event.usage == Usage(input_tokens=1210, output_tokens=96, cache_read_tokens=0, input_audio_tokens=0,
                                reasoning_tokens=64)
    assert event.provider_cost_usd == Decimal("0.0024725") == event.cost_usd  # what the usage sent says


# -- audio tokens: never at the text rate ----------------------------------------------------------------


def test_audio_tokens_are_priced_at_audio_rates(recorder, http_mock):
    """gpt-4o-audio-preview: the bundled data has its text rates only; the audio rates come from
    the tollmeter supplement ($40 / $80 per million audio tokens), not the text rates."""
    http_mock.post("https://api.openai.com/v1/chat/completions").respond(json=OB.CHAT_AUDIO)
    client = openai.OpenAI(api_key="sk-test", max_retries=0)
    client.chat.completions.create(model="gpt-4o-audio-preview", messages=MESSAGES, modalities=["text", "audio"],
                                   audio={"voice": "alloy", "format": "wav"})
    event = recorder.one()
    # prompt 112 = text 34 + audio 78; completion 187 = text 41 + audio 146
    text = 34 * Decimal("2.5") + 41 * Decimal(10)
    audio = 78 * Decimal(40) + 146 * Decimal(80)
    assert event.cost_usd == (text + audio) / M
    assert event.price_source.endswith("tollmeter supplement 2026-12 (vendor list prices)")
    at_text_rates = (112 * Decimal("2.5") + 187 * Decimal(10)) / M
    assert event.cost_usd > 6 * at_text_rates  # what the text rates alone said: -85 %


def test_the_first_audio_snapshot_has_its_own_rates():
    event = LLMEvent(provider="openai", model="gpt-4o-audio-preview-2024-10-01",
                     usage=Usage(input_tokens=100, input_audio_tokens=100, output_tokens=10, output_audio_tokens=10))
    Pricer().price(event)
    assert event.cost_usd == (100 * Decimal(100) + 10 * Decimal(200)) / M


def test_an_audio_count_without_an_audio_rate_is_left_unpriced(caplog):
    """No rate here or in the supplement: unpriced and named, never the text rate."""
    event = LLMEvent(provider="openai", model="gpt-4o",
                     usage=Usage(input_tokens=500, input_audio_tokens=300, output_tokens=20))
    with caplog.at_level(logging.WARNING, logger="tollmeter"):
        Pricer().price(event)
    assert not event.priced and event.cost_usd is None
    assert any("input_audio_tokens" in r.getMessage() and "input_audio_mtok" in r.getMessage()
               for r in caplog.records)


def test_a_rate_card_with_an_audio_rate_prices_it():
    card = RateCard.load({"models": [{"model": "gpt-4o", "provider": "openai", "input_mtok": "2.5",
                                      "output_mtok": "10", "input_audio_mtok": "40"}]})
    event = LLMEvent(provider="openai", model="gpt-4o", usage=Usage(input_tokens=500, input_audio_tokens=300,
                                                                    output_tokens=20))
    Pricer(card).price(event)
    assert event.cost_usd == (200 * Decimal("2.5") + 300 * Decimal(40) + 20 * Decimal(10)) / M


def test_where_audio_costs_the_text_rate_the_data_is_followed():
    """Google prices audio apart where it differs (gemini-2.5-flash has input_audio_mtok); a
    model without an audio rate bills audio as text (gemini-2.5-pro): priced as the data says."""
    event = LLMEvent(provider="google", model="gemini-2.5-pro",
                     usage=Usage(input_tokens=1000, input_audio_tokens=600, output_tokens=100))
    Pricer().price(event)
    assert event.priced and "supplement" not in event.price_source
