"""The chat chunk reader's common path (a content delta after the first: one choice, no finish,
no tool call, no usage) against the chunks it must not take for one: tool calls arriving after
content, a finish on a content delta, several choices, usage on every chunk. Each stream goes
through the openai SDK over a mocked transport, as the API would send it."""

from __future__ import annotations

import json

import openai
import pytest

pytestmark = pytest.mark.sdk

CHAT = "https://api.openai.com/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "What is the weather in Paris and Rome?"}]
HEAD = {"id": "chatcmpl-chunks", "object": "chat.completion.chunk", "created": 1795694866,
        "model": "gpt-4o-2024-08-06", "system_fingerprint": "fp_07871e2ad8"}


def chunk(*choices, usage=None, with_usage_field=True):
    line = {**HEAD, "choices": list(choices)}
    if with_usage_field:
        line["usage"] = usage
    return line


def choice(delta, finish=None, index=0):
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}


def tool_delta(index, call_id=None, name=None, arguments=""):
    function = {"arguments": arguments}
    if name is not None:
        function["name"] = name
    delta = {"index": index, "function": function}
    if call_id is not None:
        delta.update(id=call_id, type="function")
    return {"tool_calls": [delta]}


def usage(prompt, completion):
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def sse(lines) -> str:
    return "".join(f"data: {json.dumps(line)}\n\n" for line in lines) + "data: [DONE]\n\n"


def stream(http_mock, lines, **kw):
    route = http_mock.post(CHAT).respond(text=sse(lines), headers={"content-type": "text/event-stream"})
    client = openai.OpenAI(api_key="sk-test", max_retries=0)
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True, **kw))
    return chunks, json.loads(route.calls.last.request.content)


CONTENT = [chunk(choice({"role": "assistant", "content": ""}))] + [
    chunk(choice({"content": f" w{i}"})) for i in range(5)]


def test_tool_calls_after_content_are_counted(recorder, http_mock):
    lines = CONTENT + [
        chunk(choice(tool_delta(0, "call_1", "weather"))),
        chunk(choice(tool_delta(0, arguments='{"city": "Paris"}'))),
        chunk(choice({"content": " and"})),  # content between two calls: the common path again
        chunk(choice(tool_delta(1, "call_2", "weather"))),
        chunk(choice(tool_delta(1, arguments='{"city": "Rome"}'))),
        chunk(choice({}, finish="tool_calls")),
        chunk(usage=usage(40, 30)),
    ]
    chunks, sent = stream(http_mock, lines)
    assert sent["stream_options"] == {"include_usage": True}  # asked for the caller, hidden from it
    assert len(chunks) == len(lines) - 1 and all(c.choices for c in chunks)
    assert all("usage" not in c.model_fields_set for c in chunks)
    event = recorder.one()
    assert (event.tool_calls, event.finish_reason) == (2, "tool_calls")
    assert (event.usage.input_tokens, event.usage.output_tokens) == (40, 30)


def test_a_finish_on_a_content_delta_is_read(recorder, http_mock):
    lines = CONTENT + [chunk(choice({"content": " end"}, finish="length")), chunk(usage=usage(12, 6))]
    chunks, _ = stream(http_mock, lines, stream_options={"include_usage": True})
    assert chunks[-1].usage.total_tokens == 18 and chunks[-2].choices[0].finish_reason == "length"
    event = recorder.one()
    assert (event.tool_calls, event.finish_reason, event.usage.output_tokens) == (0, "length", 6)


def test_several_choices_are_all_read(recorder, http_mock):
    lines = [chunk(choice({"role": "assistant", "content": ""}, index=0), choice({"role": "assistant"}, index=1)),
             chunk(choice({"content": "Sunny"}, index=0)),
             chunk(choice(tool_delta(0, "call_1", "weather"), index=1)),
             chunk(choice({"content": "."}, index=0), choice(tool_delta(0, arguments="{}"), index=1)),
             chunk(choice({}, finish="stop", index=0)),
             chunk(choice({}, finish="tool_calls", index=1)),
             chunk(usage=usage(20, 9))]
    stream(http_mock, lines, n=2, stream_options={"include_usage": True})
    event = recorder.one()
    assert (event.tool_calls, event.finish_reason, event.usage.output_tokens) == (1, "tool_calls", 9)


def test_usage_on_every_chunk_the_last_counts(recorder, http_mock):
    # A server streaming running usage on each chunk (vLLM's continuous usage stats).
    lines = [chunk(choice({"role": "assistant", "content": ""}), usage=usage(15, 0))]
    lines += [chunk(choice({"content": f" w{i}"}), usage=usage(15, i + 1)) for i in range(4)]
    lines += [chunk(choice({}, finish="stop"))]  # the last usage rode on a content delta
    chunks, _ = stream(http_mock, lines, stream_options={"include_usage": True})
    assert [c.usage and c.usage.completion_tokens for c in chunks] == [0, 1, 2, 3, 4, None]  # shown as sent
    event = recorder.one()
    assert (event.usage.input_tokens, event.usage.output_tokens, event.finish_reason) == (15, 4, "stop")


def test_chunks_without_a_usage_field_pass_the_common_path(recorder, http_mock):
    # A compatible server that leaves `usage` out of its chunks altogether.
    lines = [chunk(choice({"role": "assistant", "content": ""}), with_usage_field=False)]
    lines += [chunk(choice({"content": f" w{i}"}), with_usage_field=False) for i in range(3)]
    lines += [chunk(choice({}, finish="stop"), with_usage_field=False)]
    chunks, _ = stream(http_mock, lines, stream_options={"include_usage": True})
    assert [c.model_fields_set for c in chunks] == [set(c) for c in lines]
    event = recorder.one()
    assert (event.finish_reason, event.tool_calls, event.usage.input_tokens) == ("stop", 0, None)
    assert event.time_to_first_token_ms is not None


def test_a_content_chunk_whose_delta_is_null_is_still_read_past(recorder, http_mock):
    lines = CONTENT[:2] + [chunk({"index": 0, "delta": None, "finish_reason": None})] + CONTENT[2:] + [
        chunk(choice({}, finish="stop")), chunk(usage=usage(10, 5))]
    chunks, _ = stream(http_mock, lines)
    assert len(chunks) == len(lines) - 1
    event = recorder.one()
    assert (event.finish_reason, event.usage.output_tokens) == ("stop", 5)
