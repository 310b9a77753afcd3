"""The wire formats (tollmeter.formats): one reader per format, shared by every SDK that speaks
it; usage read on the worker from the usage object alone; the request estimator chosen through
the endpoint object, never by the endpoint's name."""

from __future__ import annotations

import ast
import importlib
import json
from decimal import Decimal
from typing import Any

import pytest

from tollmeter.events import Usage
from tollmeter.formats import (anthropic_messages, bedrock_invoke, cohere_chat, converse, gemini, openai_chat,
                               openai_responses)
from tollmeter.instrument.call import Call
from tollmeter.instrument.endpoint import Endpoint
from tollmeter.instrument.fields import field
from tollmeter.instrument.hooks import InstrumentSettings
from tollmeter.limits.estimate import estimate_generic, estimate_request

pytestmark = pytest.mark.sdk


class _Hooks:
    settings = InstrumentSettings()

    def fault(self, exc: BaseException, what: str) -> None:
        raise AssertionError(what) from exc


def _call(endpoint: Endpoint) -> Call:
    return Call(_Hooks(), endpoint, None)  # type: ignore[arg-type]


def _worker(call: Call) -> Usage | None:
    """What the background worker does with the call's deferred usage."""
    if call.deferred is not None:
        reader, usage = call.deferred
        call.deferred = None
        reader(call, usage)
    return call.usage


def _mistral_models() -> Any:
    try:
        return importlib.import_module("mistralai.client.models")
    except ImportError:  # mistralai 1.x
        return importlib.import_module("mistralai.models")


_CHAT_BODY = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1795694866, "model": "some-model-2025",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": None, "message": {
        "role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
            {"id": "call_2", "type": "function", "function": {"name": "b", "arguments": "{}"}}]}}],
    "usage": {"prompt_tokens": 1200, "completion_tokens": 80, "total_tokens": 1280,
              "prompt_tokens_details": {"cached_tokens": 1024},
              "completion_tokens_details": {"reasoning_tokens": 50}},
}
_CHAT_USAGE = Usage(input_tokens=1200, output_tokens=80, cache_read_tokens=1024, reasoning_tokens=50)


def _chat_responses() -> list[tuple[str, Endpoint, Any]]:
    import groq.types.chat
    import openai.types.chat

    from tollmeter.instrument import groq as groq_adapter
    from tollmeter.instrument import mistral as mistral_adapter
    from tollmeter.instrument import openai as openai_adapter

    models = _mistral_models()
    body = {**_CHAT_BODY, "x_groq": {"id": "req_1"}}
    return [
        ("openai", openai_adapter.ChatCompletions(), openai.types.chat.ChatCompletion.model_validate(_CHAT_BODY)),
        ("openai raw JSON", openai_adapter.ChatCompletions(), dict(_CHAT_BODY)),
        ("groq", groq_adapter.ChatCompletions(), groq.types.chat.ChatCompletion.model_validate(body)),
        ("mistral", mistral_adapter.MistralEndpoint("chat.completions"),
         models.ChatCompletionResponse.model_validate(_CHAT_BODY)),
    ]


def test_openai_groq_and_mistral_responses_go_through_one_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    read: list[Any] = []
    usage_of = openai_chat.usage_of

    def spy(usage: Any, get: Any = field) -> Usage:
        read.append(usage)
        return usage_of(usage, get)

    monkeypatch.setattr(openai_chat, "usage_of", spy)
    for name, endpoint, response in _chat_responses():
        call = _call(endpoint)
        endpoint.read_response(call, response)
        # On the caller's thread: the cheap fields, and a reference to the usage object alone.
        assert (call.model, call.tool_calls, call.finish_reason) == ("some-model-2025", 2, "tool_calls"), name
        assert call.usage is None and call.deferred is not None, name
        usage = call.deferred[1]
        assert usage is field(response, "usage"), name
        assert not any(getattr(call, slot) is response for slot in Call.__slots__), name
        # On the worker: one reader for all of them.
        assert _worker(call) == _CHAT_USAGE, name
        assert read[-1] is usage, name
    assert len(read) == 4


def _chunks(make: Any) -> list[Any]:
    """One stream's chunks, as each SDK parses them: two tool calls (a call's first fragment
    carries its id, the fragments after it none), then the usage chunk."""
    head = {"id": "c1", "object": "chat.completion.chunk", "created": 1795694866, "model": "some-model-2025"}

    def chunk(delta: dict | None, finish: str | None = None, usage: dict | None = None) -> Any:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        return make({**head, "choices": choices, **({"usage": usage} if usage else {})})

    def tool(index: int, id_: str | None, arguments: str) -> dict:
        return {"index": index, **({"id": id_, "type": "function"} if id_ else {}),
                "function": {"name": "f" if id_ else "", "arguments": arguments}}

    return [
        chunk({"role": "assistant", "content": ""}),
        chunk({"tool_calls": [tool(0, "call_1", "")]}),
        chunk({"tool_calls": [tool(0, None, "{}")]}),
        chunk({"tool_calls": [tool(1, "call_2", "{}")]}),
        chunk({}, "tool_calls"),
        chunk(None, usage=_CHAT_BODY["usage"]),
    ]


def test_openai_groq_and_mistral_stream_chunks_go_through_one_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    import groq.types.chat
    import openai.types.chat

    from tollmeter.instrument import groq as groq_adapter
    from tollmeter.instrument import mistral as mistral_adapter
    from tollmeter.instrument import openai as openai_adapter

    models = _mistral_models()
    readers: list[Call] = []
    chunk_reader = openai_chat.chunk_reader

    def spy(call: Call, **options: Any) -> Any:
        readers.append(call)
        return chunk_reader(call, **options)

    monkeypatch.setattr(openai_chat, "chunk_reader", spy)
    streams = [
        (openai_adapter.ChatCompletions(), _chunks(openai.types.chat.ChatCompletionChunk.model_validate)),
        (groq_adapter.ChatCompletions(), _chunks(groq.types.chat.ChatCompletionChunk.model_validate)),
        (mistral_adapter.MistralEndpoint("chat.completions", streams=True),
         _chunks(lambda c: models.CompletionEvent(data=models.CompletionChunk.model_validate(c)))),
    ]
    for endpoint, chunks in streams:
        call = _call(endpoint)
        read = endpoint.stream_reader(call)
        assert all(read(chunk) for chunk in chunks)
        assert (call.model, call.tool_calls, call.finish_reason) == ("some-model-2025", 2, "tool_calls")
        assert _worker(call) == _CHAT_USAGE
    assert len(readers) == 3


def test_chat_usage_of_the_compatible_apis() -> None:
    def read(usage: dict) -> Call:
        call = _call(Endpoint())
        openai_chat.read_usage(call, usage)
        return call

    deepseek = read({"prompt_tokens": 100, "completion_tokens": 7, "prompt_cache_hit_tokens": 64,
                     "prompt_cache_miss_tokens": 36})
    assert deepseek.usage == Usage(input_tokens=100, output_tokens=7, cache_read_tokens=64)
    openrouter = read({"prompt_tokens": 100, "completion_tokens": 7, "cost": 0.00123,
                       "prompt_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 80}})
    assert openrouter.usage == Usage(input_tokens=100, output_tokens=7, cache_read_tokens=10, cache_write_tokens=80)
    assert openrouter.provider_cost_usd == Decimal("0.00123")
    mistral = read({"prompt_tokens": 100, "completion_tokens": 7, "num_cached_tokens": 32, "service_tier": "standard"})
    assert mistral.usage == Usage(input_tokens=100, output_tokens=7, cache_read_tokens=32)
    assert mistral.service_tier == "standard"


def test_anthropic_counts_read_messages_and_bedrock_claude_bodies_alike() -> None:
    usage = {"input_tokens": 12, "output_tokens": 300, "cache_read_input_tokens": 4000,
             "cache_creation_input_tokens": 1500,
             "cache_creation": {"ephemeral_5m_input_tokens": 500, "ephemeral_1h_input_tokens": 1000}}
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
               "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
               "stop_reason": "tool_use", "usage": usage}
    first_party = _call(Endpoint())
    anthropic_messages.read_response(first_party, message)
    assert _worker(first_party) == Usage(input_tokens=5512, output_tokens=300, cache_read_tokens=4000,
                                         cache_write_tokens=1500, cache_write_1h_tokens=1000)
    on_bedrock = _call(Endpoint())
    bedrock_invoke.read_invoked(on_bedrock, bedrock_invoke.Invoked({}, json.dumps(message).encode()))
    assert on_bedrock.usage == first_party.usage
    assert (on_bedrock.tool_calls, on_bedrock.finish_reason) == (first_party.tool_calls, "tool_use") == (1, "tool_use")


def test_endpoints_choose_their_estimator_by_format_not_by_name() -> None:
    from tollmeter.instrument import anthropic, bedrock, cohere, google, groq, mistral, openai

    expected = {
        openai.ChatCompletions: openai_chat.CHAT, openai.TextCompletions: openai_chat.COMPLETIONS,
        openai.Embeddings: openai_chat.EMBEDDINGS, openai.Responses: openai_responses.RESPONSES,
        openai.Transcriptions: None, openai.Speech: None, openai.Images: None,
        groq.ChatCompletions: openai_chat.CHAT, groq.Transcriptions: None,
        anthropic.Messages: anthropic_messages.MESSAGES, anthropic.StreamingMessages: anthropic_messages.MESSAGES,
        google.GenerateContent: gemini.GENERATE_CONTENT, google.GenerateContentStream: gemini.GENERATE_CONTENT,
        google.EmbedContent: gemini.EMBED_CONTENT,
        bedrock.Converse: converse.CONVERSE, bedrock.ConverseStream: converse.CONVERSE,
        bedrock.InvokeModel: bedrock_invoke.INVOKE_MODEL,
        bedrock.InvokeModelWithResponseStream: bedrock_invoke.INVOKE_MODEL,
        cohere.Chat: None, cohere.Embed: None,
    }
    for endpoint_type, request_format in expected.items():
        assert endpoint_type.request_format is request_format, endpoint_type
    by_name = {(e.name, e.request_format) for e in (p.endpoint for p in mistral.patches()) if e is not None}
    assert by_name == {("chat.completions", openai_chat.CHAT), ("embeddings", openai_chat.EMBEDDINGS),
                       ("fim.completions", None), ("agents.completions", None)}

    request = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}
    chat = estimate_request(openai_chat.CHAT, request, "gpt-4o")
    assert openai.ChatCompletions().estimate(request, "gpt-4o") == chat

    class NamedLikeChat(Endpoint):
        name = "chat.completions"  # a name says nothing: no format, the generic estimate

    assert NamedLikeChat().estimate(request, "gpt-4o") == estimate_generic(request, "gpt-4o")
    assert NamedLikeChat().estimate(request, "gpt-4o") != chat


def test_the_formats_import_no_sdk() -> None:
    sdks = ("openai", "anthropic", "groq", "mistralai", "cohere", "google", "botocore", "boto3")
    for module in (anthropic_messages, bedrock_invoke, cohere_chat, converse, gemini, openai_chat,
                   openai_responses):
        tree = ast.parse(open(module.__file__).read())  # type: ignore[arg-type]
        imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        imported += [node.module or "" for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and not node.level]  # absolute imports
        assert not [name for name in imported if name.split(".")[0] in sdks], module.__name__
