"""AWS Bedrock through aiobotocore (async), over both of its HTTP backends (aiohttp, httpx),
against the local endpoint of tests/test_bedrock.py: real HTTP on 127.0.0.1, the service's
bodies (tests/bodies/bedrock_bodies.py), event streams in the real binary framing with CRCs.
The expected usage is the sync client's for the same bodies."""

from __future__ import annotations

import json
from decimal import Decimal
import urllib.parse
from contextlib import asynccontextmanager

import aiobotocore.session
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.eventstream import AioEventStream
from aiobotocore.httpxsession import HttpxSession
from aiobotocore.response import AioStreamingBodyBase
from botocore.exceptions import ClientError, EventStreamError

from tollmeter import LimitExceededException, Usage

from .bodies import bedrock_bodies as B
from .conftest import Recorder, collect
from .test_bedrock import (CONVERSE_CASES, INVOKE_CASES, INVOKE_IDS, INVOKE_STREAM_CASES, MESSAGES, PLAIN,
                           TOOL_USE, Endpoint, aws, invoke_body)  # noqa: F401 - aws is a fixture

pytestmark = pytest.mark.sdk


@pytest.fixture(scope="module")
def _server():
    """The sync tests' endpoint, also reading a request target in absolute form
    (`POST http://host/model/...`), which aiobotocore's httpx backend sends (RFC 9112 3.2.2)."""
    server = Endpoint()
    handler = server.server.RequestHandlerClass

    class AbsoluteForm(handler):
        def parse_request(self):
            parsed = super().parse_request()
            if parsed and self.path.startswith(("http://", "https://")):
                url = urllib.parse.urlsplit(self.path)
                self.path = url.path + (f"?{url.query}" if url.query else "")
            return parsed

    server.server.RequestHandlerClass = AbsoluteForm
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture(params=["aiohttp", "httpx"])
def backend(request) -> str:
    return request.param


#: aiobotocore reads event streams through aiohttp's API (`content.iter_chunks()`): over its
#: httpx backend a stream fails in aiobotocore itself, patched or not (3.10), so streams are
#: tested on aiohttp.
stream_backend = "aiohttp"


@asynccontextmanager
async def client(server, backend: str, service: str = "bedrock-runtime"):
    config = {"retries": {"total_max_attempts": 1, "mode": "standard"}}
    if backend == "httpx":
        config["http_session_cls"] = HttpxSession
    session = aiobotocore.session.get_session()
    async with session.create_client(
        service, region_name="us-east-1", endpoint_url=server.url, aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", config=AioConfig(**config),
    ) as runtime:
        yield runtime


# -- Converse ----------------------------------------------------------------------------------


@pytest.mark.parametrize("model, body, usage, tool_calls, finish", CONVERSE_CASES,
                         ids=["plain", "cache_write", "cache_read", "cache_1h", "tool_use", "nova"])
async def test_converse(recorder, aws, backend, model, body, usage, tool_calls, finish):
    aws.converse(body)
    async with client(aws, backend) as runtime:
        response = await runtime.converse(modelId=model, messages=MESSAGES)
    assert response["stopReason"] == finish
    event = recorder.one()
    assert event.usage == usage
    assert (event.tool_calls, event.finish_reason) == (tool_calls, finish)
    assert (event.provider, event.endpoint, event.stream, event.partial, event.error) == (
        "aws", "converse", False, False, None)
    assert event.model == event.request_model == model and event.request_id == B.REQUEST_ID


async def test_converse_in_a_tenant_scope(recorder, aws):
    aws.converse(B.CONVERSE_PLAIN)
    async with client(aws, "aiohttp") as runtime:
        async with recorder.meter.for_tenant("acme", run_id="ticket-7"):
            await runtime.converse(modelId=B.CLAUDE, messages=MESSAGES)
    event = recorder.one()
    assert (event.tenant_id, event.run_id) == ("acme", "ticket-7")
    assert event.priced and event.cost_usd > 0


# -- ConverseStream ------------------------------------------------------------------------------


async def test_converse_stream(recorder, aws):
    aws.converse_stream(B.STREAM_TOOL_USE)
    async with client(aws, stream_backend) as runtime:
        response = await runtime.converse_stream(modelId=B.CLAUDE_45, messages=MESSAGES)
        stream = response["stream"]
        assert type(stream) is AioEventStream
        received = [item async for item in stream]
    assert [next(iter(e)) for e in received] == [kind for kind, _ in B.STREAM_TOOL_USE]
    event = recorder.one()
    assert event.usage == TOOL_USE
    assert (event.tool_calls, event.finish_reason) == (1, "tool_use")
    assert (event.endpoint, event.stream, event.partial, event.error) == ("converse", True, False, None)
    assert event.request_id == B.REQUEST_ID and event.model == B.CLAUDE_45
    assert 0 <= event.time_to_first_token_ms <= event.duration_ms


async def test_converse_stream_closed_early_is_partial(recorder, aws):
    aws.converse_stream(B.STREAM_PLAIN)
    async with client(aws, stream_backend) as runtime:
        stream = (await runtime.converse_stream(modelId=B.CLAUDE, messages=MESSAGES))["stream"]
        async for first in stream:
            break
        assert first == {"messageStart": {"role": "assistant"}}
        stream.close()
        event = recorder.one()
    assert event.partial and event.usage == Usage() and event.finish_reason is None


async def test_converse_stream_dropped_is_partial(recorder, aws):
    aws.converse_stream(B.STREAM_TOOL_USE)
    async with client(aws, stream_backend) as runtime:
        response = await runtime.converse_stream(modelId=B.CLAUDE, messages=MESSAGES)
        events = response["stream"].__aiter__()
        while "contentBlockStart" not in await events.__anext__():
            pass
        await events.aclose()
        del response, events
        collect()
        event = recorder.one()
    assert event.partial and event.tool_calls == 1 and event.usage == Usage()


async def test_converse_stream_error_event(recorder, aws):
    aws.converse_stream(B.STREAM_ERROR, exception=B.STREAM_ERROR_EXCEPTION)
    seen = []
    async with client(aws, stream_backend) as runtime:
        stream = (await runtime.converse_stream(modelId=B.CLAUDE, messages=MESSAGES))["stream"]
        with pytest.raises(EventStreamError) as raised:
            async for item in stream:
                seen.append(item)
    assert len(seen) == 3
    assert raised.value.response["Error"]["Code"] == "modelStreamErrorException"
    event = recorder.one()
    assert event.error == "modelStreamErrorException" and event.partial and event.usage == Usage()


# -- InvokeModel -------------------------------------------------------------------------------


@pytest.mark.parametrize("model, body, headers, usage, finish, tool_calls", INVOKE_CASES, ids=INVOKE_IDS)
async def test_invoke_model(recorder, aws, backend, model, body, headers, usage, finish, tool_calls):
    aws.invoke(body, headers)
    async with client(aws, backend) as runtime:
        response = await runtime.invoke_model(modelId=model, body=invoke_body())
        assert isinstance(response["body"], AioStreamingBodyBase)
        assert json.loads(await response["body"].read()) == body  # the caller reads what was sent
        event = recorder.one()
    assert event.usage == usage
    assert (event.finish_reason, event.tool_calls) == (finish, tool_calls)
    assert (event.provider, event.endpoint, event.stream, event.partial, event.error) == (
        "aws", "invoke_model", False, False, None)
    assert event.model == event.request_model == model and event.request_id == B.REQUEST_ID


async def test_invoke_model_body_reads_like_the_original(recorder, aws, backend):
    raw = json.dumps(B.ANTHROPIC_TOOL_USE, indent=2).encode()  # several lines
    aws.invoke(raw, B.JSON_HEADERS)  # no count headers: the counts come from the body
    async with client(aws, backend) as runtime:
        body = (await runtime.invoke_model(modelId=B.CLAUDE, body=invoke_body()))["body"]
        assert await body.read(10) == raw[:10]
        assert b"".join([chunk async for chunk in body.iter_chunks(7)]) == raw[10:]
        assert await body.read() == b""
        body = (await runtime.invoke_model(modelId=B.CLAUDE, body=invoke_body()))["body"]
        assert [line async for line in body.iter_lines()] == raw.splitlines()
        body = (await runtime.invoke_model(modelId=B.CLAUDE, body=invoke_body()))["body"]
        async with body:
            buffer = bytearray(len(raw) + 10)
            count = await body.readinto(buffer)
            while count < len(raw):
                count += await body.readinto(memoryview(buffer)[count:])
            assert bytes(buffer[:count]) == raw
            assert await body.readinto(bytearray(5)) == 0
        events = recorder.recorded()
    assert len(events) == 3
    assert [(e.usage, e.tool_calls, e.partial) for e in events] == [(TOOL_USE, 2, False)] * 3


async def test_invoke_model_body_closed_or_dropped_unread_counts_the_headers(recorder, aws, backend):
    aws.invoke(B.ANTHROPIC, B.ANTHROPIC_HEADERS)
    async with client(aws, backend) as runtime:
        body = (await runtime.invoke_model(modelId=B.CLAUDE, body=invoke_body()))["body"]
        await body.aclose()
        response = await runtime.invoke_model(modelId=B.CLAUDE, body=invoke_body())
        del response
        collect()
        events = recorder.recorded()
    assert [(e.usage, e.finish_reason, e.partial) for e in events] == [(PLAIN, None, False)] * 2


async def test_invoke_model_body_read_failure_reaches_the_caller(recorder, aws, backend):
    aws.invoke(B.ANTHROPIC, B.ANTHROPIC_HEADERS, truncate=True)
    async with client(aws, backend) as runtime:
        response = await runtime.invoke_model(modelId=B.CLAUDE, body=invoke_body())
        with pytest.raises(Exception) as raised:
            await response["body"].read()
        event = recorder.one()
    assert event.error == type(raised.value).__name__ and event.partial
    assert event.usage == PLAIN  # Bedrock's headers still say what was billed


# -- InvokeModelWithResponseStream -------------------------------------------------------------


@pytest.mark.parametrize("model, chunks, usage, finish, tool_calls", INVOKE_STREAM_CASES,
                         ids=["anthropic", "anthropic_cached_tool", "nova", "llama", "titan", "mistral"])
async def test_invoke_model_with_response_stream(recorder, aws, model, chunks, usage, finish, tool_calls):
    aws.invoke_stream(chunks)
    async with client(aws, stream_backend) as runtime:
        response = await runtime.invoke_model_with_response_stream(modelId=model, body=invoke_body())
        assert type(response["body"]) is AioEventStream
        received = [json.loads(item["chunk"]["bytes"]) async for item in response["body"]]
    assert received == chunks
    event = recorder.one()
    assert event.usage == usage
    assert (event.finish_reason, event.tool_calls) == (finish, tool_calls)
    assert (event.endpoint, event.stream, event.partial, event.error) == ("invoke_model", True, False, None)
    assert event.request_id == B.REQUEST_ID and event.model == model


# -- errors, limits, other services ------------------------------------------------------------


async def test_client_error_reaches_the_caller_and_is_recorded(recorder, aws, backend):
    aws.converse({"message": "Too many requests, please wait before trying again."},
                 headers={**B.JSON_HEADERS, "x-amzn-ErrorType": "ThrottlingException:http://internal.amazon.com/"},
                 status=429)
    async with client(aws, backend) as runtime:
        with pytest.raises(ClientError) as raised:
            await runtime.converse(modelId=B.CLAUDE, messages=MESSAGES)
    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    event = recorder.one()
    assert (event.error, event.status_code, event.usage) == ("ThrottlingException", 429, Usage())


async def test_the_limit_guard_sees_the_request(aws):
    """aiobotocore passes the request positionally too: the guard estimates it (maxTokens) and
    refuses, before sending, what would pass the limit. (limits_wait: this test waits for the
    embedded store however slow the shared machine is, rather than failing open.)"""
    rec = Recorder(limits_wait=30)
    rec.meter.patch("aiobotocore")
    try:
        rec.meter.set_limit("acme", Decimal("0.01"), frequency="per_day")
        model = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"  # $15/M output
        aws.converse(B.CONVERSE_NOVA)
        async with client(aws, "aiohttp") as runtime:
            async with rec.meter.for_tenant("acme"):
                await runtime.converse(modelId=model, messages=MESSAGES, inferenceConfig={"maxTokens": 100})
                with pytest.raises(LimitExceededException):  # 1,000 x $15/M = $0.015 > $0.01
                    await runtime.converse(modelId=model, messages=MESSAGES, inferenceConfig={"maxTokens": 1000})
                with pytest.raises(LimitExceededException):
                    await runtime.invoke_model(modelId=model, body=invoke_body(max_tokens=1000))
        assert len(aws.requests) == 1  # the refused calls never left the process
        assert rec.one().tenant_id == "acme"
    finally:
        rec.meter.shutdown()


async def test_other_services_and_operations_pass_through(recorder, aws, backend):
    aws.reply("s3", B.S3_LIST_BUCKETS, {"Content-Type": "application/xml", "x-amz-request-id": "TX1"})
    async with client(aws, backend, service="s3") as s3:
        buckets = await s3.list_buckets()
    assert [b["Name"] for b in buckets["Buckets"]] == ["invoices"]
    aws.reply("count-tokens", {"inputTokens": 12})  # free: not metered
    async with client(aws, backend) as runtime:
        counted = await runtime.count_tokens(modelId=B.CLAUDE, input={"converse": {"messages": MESSAGES}})
    assert counted["inputTokens"] == 12
    assert recorder.recorded() == []


async def test_unpatched_calls_are_not_recorded(recorder, aws):
    recorder.meter.unpatch("aiobotocore")
    aws.converse(B.CONVERSE_PLAIN)
    async with client(aws, "aiohttp") as runtime:
        assert (await runtime.converse(modelId=B.CLAUDE, messages=MESSAGES))["stopReason"] == "end_turn"
    assert recorder.recorded() == []


async def test_patched_results_equal_unpatched(recorder, aws, backend):
    """What the caller gets, patched and not: the response dicts, the body bytes, the events."""
    async def calls():
        aws.converse(B.CONVERSE_TOOL_USE)
        aws.invoke(B.ANTHROPIC, B.ANTHROPIC_HEADERS)
        async with client(aws, backend) as runtime:
            converse = await runtime.converse(modelId=B.CLAUDE, messages=MESSAGES)
            invoked = await runtime.invoke_model(modelId=B.CLAUDE, body=invoke_body())
            invoked["body"] = (type(invoked["body"]).__name__, await invoked["body"].read())
        streamed = None
        if backend == stream_backend:
            aws.converse_stream(B.STREAM_CACHED)
            async with client(aws, backend) as runtime:
                response = await runtime.converse_stream(modelId=B.CLAUDE, messages=MESSAGES)
                response["stream"] = [type(response["stream"]).__name__] + [e async for e in response["stream"]]
                streamed = response
        aws.replies.clear()
        return converse, invoked, streamed

    patched = await calls()
    assert len(recorder.recorded()) == (3 if backend == stream_backend else 2)
    recorder.meter.unpatch("aiobotocore")
    assert await calls() == patched
