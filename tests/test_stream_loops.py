"""A loop over an observed Stainless stream (`streams.passthrough_iter_patches`): the loop gets an
observed generator straight over the source, sharing the stream's observer. Whatever way the
caller takes the chunks (loops, `next`, a loop's iterator closed, breaks), it sees what it sees
unpatched, each chunk is read once, and the call is one complete event.

Real openai SDK over respx; the unpatched run is the same scenario with the patches removed."""

from __future__ import annotations

import anthropic
import openai
import pytest
import wrapt

from tollmeter.events import Usage
from tollmeter.instrument.streams import observed_chunks, passthrough_iter_patches

from .bodies import openai_bodies as B
from .conftest import collect

CHAT = "https://api.openai.com/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Hi"}]


def stream() -> openai.Stream:
    return openai.OpenAI(api_key="k", max_retries=0).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True})


def seen(chunks) -> list:
    return [(chunk.id, [c.delta.content for c in chunk.choices], chunk.usage is not None) for chunk in chunks]


def two_loops():
    s, taken = stream(), []
    for chunk in s:
        taken.append(chunk)
        if len(taken) == 3:
            break
    taken += list(s)
    return taken


def loop_iterator_closed():
    s = stream()
    it = iter(s)
    taken = [next(it), next(it)]
    it.close()  # unpatched: closes the SDK's loop, not the stream
    return taken + list(s)


def next_then_loop():
    s = stream()
    taken = [next(s), next(s)]
    return taken + [chunk for chunk in s]


def in_a_with_block():
    with stream() as s:
        return [chunk for chunk in s]


@pytest.mark.parametrize("scenario", [two_loops, loop_iterator_closed, next_then_loop, in_a_with_block])
def test_every_way_of_taking_the_chunks_is_as_unpatched_and_one_complete_call(recorder, http_mock, scenario):
    http_mock.post(CHAT).respond(text=B.CHAT_STREAM_WITH_USAGE, headers=B.SSE_HEADERS)
    recorder.meter.unpatch_all()
    unpatched = seen(scenario())
    recorder.meter.patch_all()
    assert isinstance(openai.Stream.__dict__["__iter__"], wrapt.FunctionWrapper)
    assert seen(scenario()) == unpatched
    event = recorder.one()
    assert (event.stream, event.partial, event.finish_reason) == (True, False, "stop")
    assert event.usage.input_tokens == 14 and event.usage.output_tokens == 7


def test_a_loop_over_a_stream_gets_a_generator_and_a_broken_loop_is_a_partial_call(recorder, http_mock):
    http_mock.post(CHAT).respond(text=B.CHAT_STREAM_WITH_USAGE, headers=B.SSE_HEADERS)
    s = stream()
    it = iter(s)
    # the observed generator straight over the source, not the SDK's loop over the observed one
    assert it.gi_code is observed_chunks.__code__ and it is not s._iterator
    next(it)
    del s, it
    collect()
    event = recorder.one()
    assert event.partial and event.usage == Usage()


def test_only_a_pass_through_iter_is_hooked():
    """anthropic's `Stream.__iter__` does more than yield from `_iterator`: left alone."""
    assert [p.path for p in passthrough_iter_patches("openai._streaming", "Stream")] == ["Stream.__iter__"]
    assert passthrough_iter_patches("anthropic._streaming", "Stream") == []
