"""The demo's fake provider, driven over real loopback HTTP by the real openai and anthropic SDKs.

No Meter here (these test the fake provider only), and no ``http_mock``: requests go through
the SDKs' real transports to the server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import time

import anthropic
import openai
import pytest

from tollmeter.demo.fake_provider import FakeProvider

pytestmark = pytest.mark.sdk

CLAUDE = "claude-sonnet-4-6"


@pytest.fixture
def fp():
    with FakeProvider() as provider:
        yield provider


def oai(fp: FakeProvider, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=fp.openai_base_url, api_key="fake", max_retries=0, **kw)


def aoai(fp: FakeProvider, **kw) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fp.openai_base_url, api_key="fake", max_retries=0, **kw)


def ant(fp: FakeProvider, **kw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fp.anthropic_base_url, api_key="fake", max_retries=0, **kw)


def aant(fp: FakeProvider, **kw) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=fp.anthropic_base_url, api_key="fake", max_retries=0, **kw)


def user(text: str) -> list:
    return [{"role": "user", "content": text}]


def raw(fp: FakeProvider, method: str, path: str, body=None, headers=None):
    """One request with the stdlib client: (status, headers, bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", fp.port, timeout=10)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"content-type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


# --------------------------------------------------------------------------- #
# lifecycle
# --------------------------------------------------------------------------- #


def test_base_urls_and_lifecycle():
    provider = FakeProvider()
    assert provider.start() is provider
    try:
        assert provider.port > 0
        assert provider.openai_base_url == f"http://127.0.0.1:{provider.port}/v1"
        assert provider.anthropic_base_url == f"http://127.0.0.1:{provider.port}/anthropic"
        assert provider.gemini_base_url == f"http://127.0.0.1:{provider.port}/gemini"
        assert provider.bedrock_endpoint_url == f"http://127.0.0.1:{provider.port}/bedrock"
        assert provider.requests == 0
        with oai(provider) as client:
            client.chat.completions.create(model="gpt-4o-mini", messages=user("hi"))
            assert provider.requests == 1
            provider.stop()  # with an idle keep-alive connection still in the client's pool
            with pytest.raises(openai.APIConnectionError):
                client.chat.completions.create(model="gpt-4o-mini", messages=user("hi"))
    finally:
        provider.stop()
    provider.stop()  # idempotent


# --------------------------------------------------------------------------- #
# OpenAI chat completions
# --------------------------------------------------------------------------- #


def test_chat_create(fp):
    text = "What is the capital of France?"
    with oai(fp) as client:
        raw_resp = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=user(text))
        assert raw_resp.headers["x-request-id"].startswith("req_")
        assert raw_resp.headers["content-type"] == "application/json"
        r = raw_resp.parse()
        again = client.chat.completions.create(model="gpt-4o-mini", messages=user(text))
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert r.model == "gpt-4o-mini"
    (choice,) = r.choices
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    content = choice.message.content
    assert content and content == again.choices[0].message.content  # deterministic
    u = r.usage
    assert u.prompt_tokens == math.ceil(len(text) / 4)
    assert u.completion_tokens == len(content.split())
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert u.prompt_tokens_details.cached_tokens == 0
    assert u.completion_tokens_details.reasoning_tokens == 0


def test_chat_reply_varies_with_prompt(fp):
    with oai(fp) as client:
        lengths = {
            client.chat.completions.create(model="gpt-4o-mini", messages=user(f"question {i}")).usage.completion_tokens
            for i in range(8)
        }
    assert len(lengths) > 1


def test_chat_input_tokens_cover_system_and_tools(fp):
    messages = [{"role": "system", "content": "s" * 40}, {"role": "user", "content": [{"type": "text", "text": "u" * 20}]}]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    with oai(fp) as client:
        plain = client.chat.completions.create(model="gpt-4o-mini", messages=messages).usage.prompt_tokens
        with_tools = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools).usage.prompt_tokens
    assert plain == 15
    assert with_tools == math.ceil((60 + len(json.dumps(tools[0], separators=(",", ":")))) / 4)


def test_chat_reasoning_model(fp):
    with oai(fp) as client:
        r = client.chat.completions.create(model="o3-mini", messages=user("count primes"))
    u = r.usage
    visible = len(r.choices[0].message.content.split())
    assert u.completion_tokens_details.reasoning_tokens > 0
    assert u.completion_tokens == visible + u.completion_tokens_details.reasoning_tokens


def test_chat_max_tokens_cut(fp):
    with oai(fp) as client:
        r = client.chat.completions.create(model="gpt-4o-mini", messages=user("long story"), max_tokens=3)
        o = client.chat.completions.create(model="o4-mini", messages=user("long story"), max_completion_tokens=20)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 3 == len(r.choices[0].message.content.split())
    assert o.choices[0].finish_reason == "length"
    assert o.usage.completion_tokens == 20
    assert 0 < o.usage.completion_tokens_details.reasoning_tokens < 20


def test_chat_n(fp):
    with oai(fp) as client:
        r = client.chat.completions.create(model="gpt-4o-mini", messages=user("three please"), n=3)
        s = client.chat.completions.create(model="gpt-4o-mini", messages=user("three please"), n=3, stream=True,
                                           stream_options={"include_usage": True})
        chunks = list(s)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert r.usage.completion_tokens == sum(len(c.message.content.split()) for c in r.choices)
    streamed = {i: "" for i in range(3)}
    for chunk in chunks:
        for c in chunk.choices:
            streamed[c.index] += c.delta.content or ""
    assert [streamed[i] for i in range(3)] == [c.message.content for c in r.choices]
    assert chunks[-1].usage.completion_tokens == r.usage.completion_tokens


def test_chat_stream_without_usage(fp):
    with oai(fp) as client:
        full = client.chat.completions.create(model="gpt-4o-mini", messages=user("stream me")).choices[0].message.content
        chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=user("stream me"), stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.object == "chat.completion.chunk" and c.choices for c in chunks)
    assert all("usage" not in c.model_fields_set for c in chunks)  # no usage key at all
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == full


def test_chat_stream_with_usage(fp):
    with oai(fp) as client:
        chunks = list(
            client.chat.completions.create(
                model="gpt-4o-mini", messages=user("stream me"), stream=True, stream_options={"include_usage": True}
            )
        )
    *body, last = chunks
    assert all("usage" in c.model_fields_set and c.usage is None and c.choices for c in body)
    assert last.choices == [] and last.usage is not None
    pieces = [c.choices[0].delta.content for c in body if c.choices[0].delta.content]
    assert last.usage.completion_tokens == len(pieces)
    assert last.usage.prompt_tokens == math.ceil(len("stream me") / 4)
    assert last.usage.prompt_tokens_details.cached_tokens == 0
    assert last.usage.completion_tokens_details.reasoning_tokens == 0


def test_chat_stream_wire_format(fp):
    body = {"model": "gpt-4o-mini", "messages": user("wire"), "stream": True, "stream_options": {"include_usage": True}}
    status, headers, data = raw(fp, "POST", "/v1/chat/completions", body)
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["transfer-encoding"] == "chunked"
    assert headers["x-request-id"].startswith("req_")
    events = data.decode().split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    payloads = [json.loads(e[len("data: "):]) for e in events[:-2]]
    assert all(p["usage"] is None for p in payloads[:-1])
    assert payloads[-1]["choices"] == [] and payloads[-1]["usage"]["total_tokens"] > 0


def test_chat_stream_helper(fp):
    with oai(fp) as client:
        with client.chat.completions.stream(
            model="gpt-4o-mini", messages=user("helper"), stream_options={"include_usage": True}
        ) as stream:
            deltas = [e.delta for e in stream if e.type == "content.delta" and e.delta]
            final = stream.get_final_completion()
    assert final.choices[0].message.content == "".join(deltas)
    assert final.choices[0].finish_reason == "stop"
    assert final.usage.completion_tokens == len(deltas)


# --------------------------------------------------------------------------- #
# OpenAI Responses
# --------------------------------------------------------------------------- #


def test_responses_create(fp):
    with oai(fp) as client:
        raw_resp = client.responses.with_raw_response.create(model="gpt-4.1-mini", input="Tell me a story",
                                                             instructions="Be brief.")
        r = raw_resp.parse()
    assert raw_resp.headers["x-request-id"].startswith("req_")
    assert r.object == "response" and r.status == "completed" and r.id.startswith("resp_")
    assert r.output_text and r.output[0].type == "message"
    assert r.instructions == "Be brief."
    assert r.usage.input_tokens == math.ceil(len("Be brief.Tell me a story") / 4)
    assert r.usage.output_tokens == len(r.output_text.split())
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert r.usage.input_tokens_details.cached_tokens == 0
    assert r.usage.output_tokens_details.reasoning_tokens == 0


def test_responses_reasoning_and_max_output_tokens(fp):
    with oai(fp) as client:
        r = client.responses.create(model="o4-mini", input=[{"role": "user", "content": "think"}])
        cut = client.responses.create(model="gpt-4.1-mini", input="long story please", max_output_tokens=4)
    assert [o.type for o in r.output] == ["reasoning", "message"]
    assert r.usage.output_tokens_details.reasoning_tokens > 0
    assert r.usage.output_tokens == len(r.output_text.split()) + r.usage.output_tokens_details.reasoning_tokens
    assert cut.status == "incomplete" and cut.incomplete_details.reason == "max_output_tokens"
    assert cut.usage.output_tokens == 4 == len(cut.output_text.split())
    assert cut.max_output_tokens == 4


def test_responses_stream_helper(fp):
    with oai(fp) as client:
        with client.responses.stream(model="gpt-4.1-mini", input="stream a story") as stream:
            events = list(stream)
            final = stream.get_final_response()
    types = [e.type for e in events]
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert types[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert final.output_text == "".join(deltas)
    assert final.usage.output_tokens == len(deltas)
    assert final.status == "completed"


def test_responses_stream_reasoning_and_cut(fp):
    with oai(fp) as client:
        with client.responses.stream(model="o3", input="think") as stream:
            final = stream.get_final_response()
        events = list(client.responses.create(model="gpt-4.1-mini", input="long", max_output_tokens=2, stream=True))
    assert [o.type for o in final.output] == ["reasoning", "message"]
    assert final.usage.output_tokens_details.reasoning_tokens > 0
    assert events[-1].type == "response.incomplete"  # as the live API ends a cut-off stream
    assert events[-1].response.usage.output_tokens == 2
    assert len([e for e in events if e.type == "response.output_text.delta"]) == 2


# --------------------------------------------------------------------------- #
# OpenAI embeddings
# --------------------------------------------------------------------------- #


def test_embeddings_base64_default_and_float(fp):
    with oai(fp) as client:
        b64 = client.embeddings.create(model="text-embedding-3-small", input=["hello world", "goodbye"])
        flt = client.embeddings.create(model="text-embedding-3-small", input=["hello world", "goodbye"],
                                       encoding_format="float")
        small = client.embeddings.create(model="text-embedding-3-small", input="hi", dimensions=8)
    assert [d.index for d in b64.data] == [0, 1]
    assert len(b64.data[0].embedding) == 1536
    assert b64.data[0].embedding == flt.data[0].embedding  # base64 float32 decodes to the same floats
    assert b64.data[0].embedding != b64.data[1].embedding
    assert abs(sum(v * v for v in flt.data[1].embedding) - 1.0) < 1e-4
    assert b64.usage.prompt_tokens == math.ceil(11 / 4) + math.ceil(7 / 4) == b64.usage.total_tokens
    assert len(small.data[0].embedding) == 8


def test_embeddings_wire_base64(fp):
    status, _, data = raw(fp, "POST", "/v1/embeddings", {"model": "m", "input": "x", "encoding_format": "base64",
                                                          "dimensions": 4})
    body = json.loads(data)
    assert status == 200 and isinstance(body["data"][0]["embedding"], str)
    import base64
    import struct

    assert len(struct.unpack("<4f", base64.b64decode(body["data"][0]["embedding"]))) == 4


# --------------------------------------------------------------------------- #
# Anthropic messages
# --------------------------------------------------------------------------- #


def test_messages_create(fp):
    with ant(fp) as client:
        raw_resp = client.messages.with_raw_response.create(model=CLAUDE, max_tokens=256, system="Be kind.",
                                                            messages=user("Explain token buckets"))
        m = raw_resp.parse()
    assert raw_resp.headers["request-id"].startswith("req_")
    assert m.type == "message" and m.role == "assistant" and m.id.startswith("msg_01")
    assert m.stop_reason == "end_turn"
    text = m.content[0].text
    u = m.usage
    assert u.input_tokens == math.ceil(len("Be kind.Explain token buckets") / 4)
    assert u.output_tokens == len(text.split())
    assert u.cache_creation_input_tokens == 0 and u.cache_read_input_tokens == 0
    assert u.cache_creation.ephemeral_5m_input_tokens == 0 and u.cache_creation.ephemeral_1h_input_tokens == 0
    assert u.service_tier == "standard"


def test_messages_max_tokens(fp):
    with ant(fp) as client:
        m = client.messages.create(model=CLAUDE, max_tokens=3, messages=user("long answer"))
        with client.messages.stream(model=CLAUDE, max_tokens=3, messages=user("long answer")) as stream:
            final = stream.get_final_message()
    assert m.stop_reason == "max_tokens" and m.usage.output_tokens == 3
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 3
    assert final.content[0].text == m.content[0].text


def test_messages_stream(fp):
    with ant(fp) as client:
        full = client.messages.create(model=CLAUDE, max_tokens=256, messages=user("stream please"))
        with client.messages.stream(model=CLAUDE, max_tokens=256, messages=user("stream please")) as stream:
            texts = list(stream.text_stream)
            final = stream.get_final_message()
        events = [e.type for e in client.messages.create(model=CLAUDE, max_tokens=256, messages=user("x"), stream=True)]
    assert "".join(texts) == final.content[0].text == full.content[0].text
    assert final.usage.output_tokens == len(texts) == full.usage.output_tokens
    assert final.usage.input_tokens == full.usage.input_tokens
    assert final.stop_reason == "end_turn"
    assert events[:3] == ["message_start", "content_block_start", "content_block_delta"]  # the SDK drops ping
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_messages_stream_wire_format(fp):
    body = {"model": CLAUDE, "max_tokens": 50, "messages": user("wire"), "stream": True}
    status, headers, data = raw(fp, "POST", "/v1/messages", body, {"anthropic-version": "2023-06-01"})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert headers["request-id"].startswith("req_")
    names = [block.split("\n")[0] for block in data.decode().split("\n\n") if block]
    assert names[:3] == ["event: message_start", "event: content_block_start", "event: ping"]
    assert names[-3:] == ["event: content_block_stop", "event: message_delta", "event: message_stop"]


def test_messages_prompt_caching(fp):
    system = [
        {"type": "text", "text": "a" * 4000, "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        {"type": "text", "text": "b" * 800, "cache_control": {"type": "ephemeral"}},
    ]
    args = dict(model=CLAUDE, max_tokens=50, system=system)
    with ant(fp) as client:
        first = client.messages.create(**args, messages=user("first question")).usage
        second = client.messages.create(**args, messages=user("second question")).usage
        with client.messages.stream(**args, messages=user("third")) as stream:
            third = stream.get_final_message().usage
        other = client.messages.create(model=CLAUDE, max_tokens=50, messages=[
            {"role": "user", "content": [{"type": "text", "text": "c" * 400, "cache_control": {"type": "ephemeral"}},
                                         {"type": "text", "text": "tail"}]}]).usage
    assert first.cache_creation_input_tokens == 1200 and first.cache_read_input_tokens == 0
    assert first.cache_creation.ephemeral_1h_input_tokens == 1000
    assert first.cache_creation.ephemeral_5m_input_tokens == 200
    assert first.input_tokens == math.ceil((4800 + len("first question")) / 4) - 1200
    assert second.cache_read_input_tokens == 1200 and second.cache_creation_input_tokens == 0
    assert second.cache_creation.ephemeral_1h_input_tokens == 0 and second.cache_creation.ephemeral_5m_input_tokens == 0
    assert third.cache_read_input_tokens == 1200 and third.cache_creation_input_tokens == 0
    assert other.cache_creation_input_tokens == 100 and other.cache_creation.ephemeral_5m_input_tokens == 100
    assert other.input_tokens == 1  # "tail"


def test_messages_caching_partial_prefix_hit(fp):
    a = {"type": "text", "text": "a" * 400, "cache_control": {"type": "ephemeral"}}
    b = {"type": "text", "text": "b" * 400, "cache_control": {"type": "ephemeral"}}
    with ant(fp) as client:
        client.messages.create(model=CLAUDE, max_tokens=5, system=[a], messages=user("q"))
        u = client.messages.create(model=CLAUDE, max_tokens=5, system=[a, b], messages=user("q")).usage
    assert u.cache_read_input_tokens == 100 and u.cache_creation_input_tokens == 100 and u.input_tokens == 1


# --------------------------------------------------------------------------- #
# errors
# --------------------------------------------------------------------------- #


def test_openai_errors(fp):
    with oai(fp) as client:
        with pytest.raises(openai.RateLimitError) as rate:
            client.chat.completions.create(model="fail-429", messages=user("x"))
        with pytest.raises(openai.InternalServerError) as boom:
            client.responses.create(model="fail-500", input="x")
        with pytest.raises(openai.NotFoundError) as missing:
            client.models.list()
        with pytest.raises(openai.RateLimitError):
            client.embeddings.create(model="fail-429", input="x")
    assert rate.value.response.headers["retry-after"] == "0"
    assert rate.value.response.headers["x-request-id"].startswith("req_")
    assert rate.value.code == "rate_limit_exceeded"
    assert boom.value.status_code == 500 and boom.value.type == "server_error"
    assert missing.value.type == "invalid_request_error"


def test_anthropic_errors(fp):
    with ant(fp) as client:
        with pytest.raises(anthropic.RateLimitError) as rate:
            client.messages.create(model="fail-429", max_tokens=5, messages=user("x"))
        with pytest.raises(anthropic.InternalServerError) as boom:
            client.messages.create(model="fail-500", max_tokens=5, messages=user("x"), stream=True)
        with pytest.raises(anthropic.NotFoundError) as missing:
            client.models.list()
    assert rate.value.response.headers["retry-after"] == "0"
    assert rate.value.body["error"]["type"] == "rate_limit_error"
    assert rate.value.request_id.startswith("req_")
    assert boom.value.body["error"]["type"] == "api_error"
    assert missing.value.body["error"]["type"] == "not_found_error"


def test_429_is_retried_by_the_sdk(fp):
    # `retry-after: 0` is not a positive delay, so the SDK falls back to its own backoff (~0.5 s).
    with openai.OpenAI(base_url=fp.openai_base_url, api_key="fake", max_retries=1) as client:
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="fail-429", messages=user("x"))
    assert fp.requests == 2


def test_unknown_paths_and_bad_json(fp):
    status, headers, data = raw(fp, "GET", "/v1/nope")
    assert status == 404 and json.loads(data)["error"]["type"] == "invalid_request_error"
    assert headers["content-length"] == str(len(data))
    status, _, data = raw(fp, "POST", "/v1/complete", {}, {"anthropic-version": "2023-06-01"})
    assert status == 404 and json.loads(data)["type"] == "error"
    conn = http.client.HTTPConnection("127.0.0.1", fp.port, timeout=10)
    try:
        conn.request("POST", "/v1/chat/completions", body=b"{not json", headers={"content-type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 400 and "error" in json.loads(resp.read())
    finally:
        conn.close()
    status, _, data = raw(fp, "POST", "/v1/messages", {"model": CLAUDE, "messages": user("x")})
    assert status == 400 and json.loads(data)["error"]["type"] == "invalid_request_error"


# --------------------------------------------------------------------------- #
# keep-alive, timing, async
# --------------------------------------------------------------------------- #


def test_keep_alive_100_sequential_requests(fp):
    with oai(fp) as client:
        for i in range(100):
            if i % 4 == 3:
                with client.responses.stream(model="gpt-4.1-mini", input=f"n{i}") as stream:
                    assert stream.get_final_response().usage.output_tokens > 0
            else:
                r = client.chat.completions.create(model="gpt-4o-mini", messages=user(f"n{i}"))
                assert r.usage.completion_tokens > 0
    assert fp.requests == 100
    assert fp.connections == 1
    with ant(fp) as client:
        for i in range(100):
            if i % 2:
                with client.messages.stream(model=CLAUDE, max_tokens=64, messages=user(f"n{i}")) as stream:
                    assert stream.get_final_message().usage.output_tokens > 0
            else:
                assert client.messages.create(model=CLAUDE, max_tokens=64, messages=user(f"n{i}")).content
    assert fp.requests == 200
    assert fp.connections == 2


def test_sync_chat_streams_many(fp):
    # The sync openai Stream stops reading at `data: [DONE]` and closes the response before the
    # chunked terminator, so httpcore drops that connection: each sync chat stream may open a new
    # one (as against the live API). They must all work.
    with oai(fp) as client:
        for i in range(30):
            chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=user(f"s{i}"), stream=True,
                                                         stream_options={"include_usage": True}))
            assert chunks[-1].usage.completion_tokens > 0
            client.chat.completions.create(model="gpt-4o-mini", messages=user(f"s{i}"))
    assert fp.requests == 60


def test_latency_and_chunk_delay():
    with FakeProvider(latency=0.1, chunk_delay=0.02) as provider:
        with oai(provider) as client:
            t0 = time.monotonic()
            client.chat.completions.create(model="gpt-4o-mini", messages=user("hi"))
            assert time.monotonic() - t0 >= 0.1
            t0 = time.monotonic()
            stream = client.chat.completions.create(model="gpt-4o-mini", messages=user("hi"), stream=True)
            first = next(iter(stream))
            ttft = time.monotonic() - t0
            rest = list(stream)
            total = time.monotonic() - t0
    assert first.choices[0].delta.role == "assistant"
    assert 0.1 <= ttft < 0.1 + 0.2
    assert total >= 0.1 + 0.02 * len(rest) * 0.9
    assert total - ttft > 0.1  # the events really arrive one by one


async def test_async_openai(fp):
    async with aoai(fp) as client:
        r = await client.chat.completions.create(model="gpt-4o-mini", messages=user("async"))
        stream = await client.chat.completions.create(model="gpt-4o-mini", messages=user("async"), stream=True,
                                                      stream_options={"include_usage": True})
        chunks = [c async for c in stream]
        async with client.chat.completions.stream(model="gpt-4o-mini", messages=user("async")) as helper:
            completion = await helper.get_final_completion()
        async with client.responses.stream(model="gpt-4.1-mini", input="async") as rs:
            response = await rs.get_final_response()
        emb = await client.embeddings.create(model="text-embedding-3-small", input="async")
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="fail-429", messages=user("x"))
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="fail-500", messages=user("x"))
    content = r.choices[0].message.content
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == content
    assert chunks[-1].usage.completion_tokens == r.usage.completion_tokens
    assert completion.choices[0].message.content == content
    assert response.output_text and response.usage.output_tokens == len(response.output_text.split())
    assert len(emb.data[0].embedding) == 1536


async def test_async_anthropic(fp):
    system = [{"type": "text", "text": "z" * 2000, "cache_control": {"type": "ephemeral"}}]
    async with aant(fp) as client:
        m = await client.messages.create(model=CLAUDE, max_tokens=100, system=system, messages=user("async"))
        async with client.messages.stream(model=CLAUDE, max_tokens=100, system=system, messages=user("async")) as s:
            final = await s.get_final_message()
        with pytest.raises(anthropic.RateLimitError):
            await client.messages.create(model="fail-429", max_tokens=5, messages=user("x"))
    assert m.usage.cache_creation_input_tokens == 500 and m.usage.cache_read_input_tokens == 0
    assert final.usage.cache_read_input_tokens == 500 and final.usage.cache_creation_input_tokens == 0
    assert final.content[0].text == m.content[0].text


async def test_async_keep_alive_100_sequential_requests(fp):
    async with aoai(fp) as client:
        for i in range(100):
            if i % 2:
                stream = await client.chat.completions.create(model="gpt-4o-mini", messages=user(f"a{i}"), stream=True)
                assert [c async for c in stream]
            else:
                await client.chat.completions.create(model="gpt-4o-mini", messages=user(f"a{i}"))
    async with aant(fp) as client:
        for i in range(100):
            async with client.messages.stream(model=CLAUDE, max_tokens=32, messages=user(f"a{i}")) as s:
                await s.get_final_message()
    assert fp.requests == 200
    # Plain calls always reuse connections; an openai stream's connection is reused only by SDKs
    # that read the body to its end after [DONE] (the httpx2-based 3.x async client does).
    assert fp.connections <= (3 if openai.__version__ >= "3" else 60)


async def test_async_concurrent_requests(fp):
    async with aoai(fp) as oclient, aant(fp) as aclient:
        results = await asyncio.gather(
            *[oclient.chat.completions.create(model="gpt-4o-mini", messages=user(f"c{i}")) for i in range(20)],
            *[aclient.messages.create(model=CLAUDE, max_tokens=32, messages=user(f"c{i}")) for i in range(20)],
        )
    assert len(results) == 40 and fp.requests == 40


def test_gemini_generate_content_and_stream(fp):
    from google import genai

    client = genai.Client(api_key="fake", http_options={"base_url": fp.gemini_base_url})
    response = client.models.generate_content(model="gemini-2.5-flash", contents="Hello there")
    usage = response.usage_metadata
    assert response.text and usage.candidates_token_count == len(response.text.split())
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count + usage.thoughts_token_count
    chunks = list(client.models.generate_content_stream(model="gemini-2.0-flash", contents="Stream please"))
    assert len(chunks) > 2 and chunks[-1].candidates[0].finish_reason == "STOP"
    assert chunks[-1].usage_metadata.candidates_token_count == len(chunks)  # cumulative, one word per chunk
    assert chunks[-1].usage_metadata.thoughts_token_count is None


def test_bedrock_converse_and_converse_stream(fp):
    import boto3

    client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=fp.bedrock_endpoint_url,
                          aws_access_key_id="fake", aws_secret_access_key="fake")
    messages = [{"role": "user", "content": [{"text": "Hello Bedrock"}]}]
    response = client.converse(modelId="us.anthropic.claude-3-5-sonnet-20241022-v2:0", messages=messages,
                               inferenceConfig={"maxTokens": 5})
    assert response["stopReason"] == "max_tokens" and response["usage"]["outputTokens"] == 5
    events = list(client.converse_stream(modelId="amazon.nova-lite-v1:0", messages=messages)["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    deltas = [e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e]
    assert events[-1]["metadata"]["usage"]["outputTokens"] == len(deltas)
