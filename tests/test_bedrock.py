"""AWS Bedrock through boto3/botocore, against a local HTTP endpoint that answers as the service
does (tests/bodies/bedrock_bodies.py), event streams in the real binary framing with CRCs.

respx does not reach botocore (it sends through urllib3), so each test points a real boto3
client at a stdlib HTTP server on 127.0.0.1 with `endpoint_url=` and dummy credentials.

Expected usage is written out by hand from the bodies, in tollmeter's inclusive convention:
input = inputTokens + cacheReadInputTokens + cacheWriteInputTokens (Bedrock's inputTokens, like
its input-token header, excludes the cache).
"""

from __future__ import annotations

import base64
import json
import struct
import threading
import urllib.parse
import zlib
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import botocore
import botocore.session
import pytest
import wrapt
from botocore.config import Config
from botocore.eventstream import EventStream
from botocore.exceptions import ClientError, EventStreamError
from botocore.response import StreamingBody
from botocore.stub import Stubber

from tollmeter import Usage
from tollmeter.instrument import bedrock
from tollmeter.instrument.call import sync_wrapper
from tollmeter.instrument.hooks import InstrumentSettings

from .bodies import bedrock_bodies as B
from .conftest import Recorder, collect
from .test_stream_drops import another_thread_collecting

pytestmark = pytest.mark.sdk

M = Decimal(10) ** 6
MESSAGES = [{"role": "user", "content": [{"text": "What is the capital of France?"}]}]

_MODEL = botocore.session.get_session().get_service_model("bedrock-runtime")
# botocore releases before spring 2025 (1.35 and older) have no cache fields in their model:
# their parser drops them from Converse responses.
CACHE_FIELDS = "cacheReadInputTokens" in _MODEL.shape_for("TokenUsage").members
SERVICE_TIER = "serviceTier" in _MODEL.shape_for("ConverseResponse").members
HAS_COUNT_TOKENS = "CountTokens" in _MODEL.operation_names


# -- the local endpoint ------------------------------------------------------------------------


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One message of the AWS event-stream encoding: prelude (total length, headers length, CRC),
    string headers (type 7), payload, CRC32 of everything before it."""
    raw = b"".join(
        bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(value.encode())) + value.encode()
        for name, value in headers.items()
    )
    prelude = struct.pack(">II", 12 + len(raw) + len(payload) + 4, len(raw))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + raw + payload
    return message + struct.pack(">I", zlib.crc32(message))


def _json(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def converse_stream(events, exception=None) -> bytes:
    out = b"".join(frame({":event-type": kind, ":content-type": "application/json", ":message-type": "event"},
                         _json(payload)) for kind, payload in events)
    if exception is not None:
        name, payload = exception
        out += frame({":exception-type": name, ":content-type": "application/json", ":message-type": "exception"},
                     _json(payload))
    return out


def invoke_stream(chunks, compact=True) -> bytes:
    def encode(chunk):
        return _json(chunk) if compact else json.dumps(chunk).encode()

    headers = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
    padding = "abcdefghijklmnopqrstuvwxyzABCDEF"
    return b"".join(
        frame(headers, _json({"bytes": base64.b64encode(encode(chunk)).decode(), "p": padding[:7 + i % 20]}))
        for i, chunk in enumerate(chunks)
    )


class Endpoint:
    """A stdlib HTTP server answering bedrock-runtime (and S3) requests with scripted replies."""

    def __init__(self) -> None:
        self.replies: dict[str, list[tuple[int, dict, bytes, bool]]] = {}
        self.requests: list[tuple[str, str, bytes]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def date_time_string(self, timestamp=None):  # a fixed Date: runs compare equal
                return "Tue, 05 Aug 2025 10:00:00 GMT"

            def version_string(self):
                return "Server"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self.serve()

            def do_POST(self):
                self.serve()

            def serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = urllib.parse.unquote(self.path.split("?", 1)[0])
                owner.requests.append((self.command, path, body))
                operation = path.rsplit("/", 1)[-1] if path.startswith("/model/") else "s3"
                queue = owner.replies.get(operation)
                if not queue:
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status, headers, payload, truncate = queue[0] if len(queue) == 1 else queue.pop(0)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload[: len(payload) // 2] if truncate else payload)
                if truncate:
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reply(self, operation: str, payload=b"", headers=None, status=200, truncate=False) -> None:
        if isinstance(payload, dict):
            payload = _json(payload)
        self.replies.setdefault(operation, []).append((status, headers or B.JSON_HEADERS, payload, truncate))

    def converse(self, body, headers=None, status=200):
        self.reply("converse", body, headers, status)

    def converse_stream(self, events, exception=None):
        self.reply("converse-stream", converse_stream(events, exception), B.STREAM_HEADERS)

    def invoke(self, body, headers, truncate=False):
        self.reply("invoke", body, headers, truncate=truncate)

    def invoke_stream(self, chunks, compact=True):
        self.reply("invoke-with-response-stream", invoke_stream(chunks, compact), B.INVOKE_STREAM_HEADERS)


@pytest.fixture(scope="module")
def _server():
    server = Endpoint()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def aws(_server):
    _server.replies.clear()
    _server.requests.clear()
    return _server


def client(server: Endpoint, service: str = "bedrock-runtime", attempts: int = 1):
    return boto3.client(
        service, region_name="us-east-1", endpoint_url=server.url,
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        config=Config(retries={"total_max_attempts": attempts, "mode": "standard"}),
    )


def invoke_body(**fields) -> bytes:
    return json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 512,
                       "messages": [{"role": "user", "content": "What is the capital of France?"}], **fields}).encode()


# -- Converse ----------------------------------------------------------------------------------

PLAIN = Usage(input_tokens=25, output_tokens=96)
if CACHE_FIELDS:
    # 18 + 0 read + 7,502 written
    CACHE_WRITE = Usage(input_tokens=7_520, output_tokens=386, cache_read_tokens=0, cache_write_tokens=7_502,
                        cache_write_1h_tokens=0)
    # 18 + 7,502 read + 0 written (no cacheDetails: the 1-hour share is not reported)
    CACHE_READ = Usage(input_tokens=7_520, output_tokens=503, cache_read_tokens=7_502, cache_write_tokens=0)
    # 12 + 5,120 written, 4,096 of them for an hour
    CACHE_1H = Usage(input_tokens=5_132, output_tokens=210, cache_read_tokens=0, cache_write_tokens=5_120,
                     cache_write_1h_tokens=4_096)
    NOVA = Usage(input_tokens=1_204, output_tokens=163, cache_read_tokens=1_024, cache_write_tokens=0)
else:
    # botocore dropped the cache fields: totalTokens - outputTokens is still the whole input
    CACHE_WRITE = Usage(input_tokens=7_520, output_tokens=386)
    CACHE_READ = Usage(input_tokens=7_520, output_tokens=503)
    CACHE_1H = Usage(input_tokens=5_132, output_tokens=210)
    NOVA = Usage(input_tokens=1_204, output_tokens=163)
TOOL_USE = Usage(input_tokens=611, output_tokens=143)
ROUTED = Usage(input_tokens=40, output_tokens=12)

CONVERSE_CASES = [
    (B.CLAUDE, B.CONVERSE_PLAIN, PLAIN, 0, "end_turn"),
    (B.CLAUDE_HAIKU_45, B.CONVERSE_CACHE_WRITE, CACHE_WRITE, 0, "end_turn"),
    (B.CLAUDE_HAIKU_45, B.CONVERSE_CACHE_READ, CACHE_READ, 0, "end_turn"),
    (B.CLAUDE_45, B.CONVERSE_CACHE_1H, CACHE_1H, 0, "end_turn"),
    (B.CLAUDE, B.CONVERSE_TOOL_USE, TOOL_USE, 2, "tool_use"),
    (B.NOVA, B.CONVERSE_NOVA, NOVA, 0, "end_turn"),
]


@pytest.mark.parametrize("model, body, usage, tool_calls, finish", CONVERSE_CASES,
                         ids=["plain", "cache_write", "cache_read", "cache_1h", "tool_use", "nova"])
def test_converse(recorder, aws, model, body, usage, tool_calls, finish):
    aws.converse(body)
    response = client(aws).converse(modelId=model, messages=MESSAGES)
    assert response["stopReason"] == finish
    event = recorder.one()
    assert event.usage == usage
    assert (event.tool_calls, event.finish_reason) == (tool_calls, finish)
    assert (event.provider, event.endpoint, event.stream, event.partial, event.error) == (
        "aws", "converse", False, False, None)
    assert event.model == event.request_model == model
    assert event.request_id == B.REQUEST_ID and event.status_code is None
    assert event.time_to_first_token_ms is None and event.duration_ms > 0


def test_converse_service_tier(recorder, aws):
    aws.converse(B.CONVERSE_NOVA)
    client(aws).converse(modelId=B.NOVA, messages=MESSAGES)
    assert recorder.one().service_tier == ("priority" if SERVICE_TIER else None)


def test_converse_model_arn_is_kept(recorder, aws):
    aws.converse(B.CONVERSE_PLAIN)
    client(aws).converse(modelId=B.CLAUDE_ARN, messages=MESSAGES)
    event = recorder.one()
    assert event.model == event.request_model == B.CLAUDE_ARN
    assert event.priced and event.cost_usd == (25 * Decimal(3) + 96 * Decimal(15)) / M


def test_prompt_router_names_the_model_that_served(recorder, aws):
    aws.converse(B.CONVERSE_ROUTED)
    client(aws).converse(modelId=B.ROUTER, messages=MESSAGES)
    event = recorder.one()
    assert event.request_model == B.ROUTER
    assert event.model == ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
                           "us.anthropic.claude-3-5-haiku-20241022-v1:0")
    assert event.usage == ROUTED


@pytest.mark.parametrize("body, usage", [
    (B.CONVERSE_NO_USAGE, Usage()),
    # the negative count is dropped; a cache detail without a count counts nothing
    (B.CONVERSE_ODD_USAGE, Usage(input_tokens=1000, output_tokens=20, cache_write_tokens=0, cache_write_1h_tokens=0)
     if CACHE_FIELDS else Usage(input_tokens=1000, output_tokens=20)),
], ids=["no_usage", "odd_usage"])
def test_odd_or_missing_usage_never_raises(recorder, aws, body, usage):
    aws.converse(body)
    client(aws).converse(modelId=B.CLAUDE, messages=MESSAGES)
    event = recorder.one()
    assert event.usage == usage and event.error is None


def test_converse_through_stubber(recorder):
    runtime = boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="k",
                           aws_secret_access_key="s")
    with Stubber(runtime) as stub:
        stub.add_response("converse", B.CONVERSE_TOOL_USE, {"modelId": B.NOVA, "messages": MESSAGES})
        response = runtime.converse(modelId=B.NOVA, messages=MESSAGES)
    assert response["usage"]["inputTokens"] == 611
    event = recorder.one()
    assert event.usage == TOOL_USE and event.tool_calls == 2 and event.model == B.NOVA


# -- ConverseStream ----------------------------------------------------------------------------

if CACHE_FIELDS:
    # 12 + 48,213 read + 3,070 written (2,816 for an hour)
    STREAM_CACHED = Usage(input_tokens=51_295, output_tokens=318, cache_read_tokens=48_213, cache_write_tokens=3_070,
                          cache_write_1h_tokens=2_816)
else:
    STREAM_CACHED = Usage(input_tokens=51_295, output_tokens=318)


@pytest.mark.parametrize("events, usage, tool_calls, finish", [
    (B.STREAM_PLAIN, PLAIN, 0, "end_turn"),
    (B.STREAM_TOOL_USE, TOOL_USE, 1, "tool_use"),
    (B.STREAM_CACHED, STREAM_CACHED, 0, "end_turn"),
], ids=["plain", "tool_use", "cached"])
def test_converse_stream(recorder, aws, events, usage, tool_calls, finish):
    aws.converse_stream(events)
    response = client(aws).converse_stream(modelId=B.CLAUDE_45, messages=MESSAGES)
    stream = response["stream"]
    assert isinstance(stream, EventStream)
    received = list(stream)
    assert [next(iter(e)) for e in received] == [kind for kind, _ in events]
    assert "p" not in received[0]["messageStart"]  # botocore drops the padding
    event = recorder.one()
    assert event.usage == usage
    assert (event.tool_calls, event.finish_reason) == (tool_calls, finish)
    assert (event.endpoint, event.stream, event.partial, event.error) == ("converse", True, False, None)
    assert event.request_id == B.REQUEST_ID and event.model == B.CLAUDE_45
    assert 0 <= event.time_to_first_token_ms <= event.duration_ms


def test_converse_stream_iterated_with_next_and_closed(recorder, aws):
    aws.converse_stream(B.STREAM_PLAIN)
    stream = client(aws).converse_stream(modelId=B.CLAUDE, messages=MESSAGES)["stream"]
    first = next(iter(stream))
    assert first == {"messageStart": {"role": "assistant"}}
    stream.close()
    event = recorder.one()
    assert event.partial and event.usage == Usage() and event.finish_reason is None


def test_converse_stream_break_then_dropped(recorder, aws):
    aws.converse_stream(B.STREAM_TOOL_USE)
    response = client(aws).converse_stream(modelId=B.CLAUDE, messages=MESSAGES)
    for item in response["stream"]:
        if "contentBlockStart" in item:
            break
    del response, item
    collect()
    event = recorder.one()
    assert event.partial and event.tool_calls == 1 and event.usage == Usage()


def test_converse_stream_dropped_while_another_thread_collects(recorder, aws):
    """The previous-majors pass once saw `test_converse_stream_break_then_dropped` get no event:
    botocore's EventStream is freed only by the cyclic collector, and a bare `gc.collect()` does
    nothing while another thread collects (test_stream_drops). `collect()` waits for a collection
    of its own: the stream is recorded, once, whichever thread's collection freed it."""
    aws.converse_stream(B.STREAM_TOOL_USE)
    response = client(aws).converse_stream(modelId=B.CLAUDE, messages=MESSAGES)
    for item in response["stream"]:
        if "contentBlockStart" in item:
            break
    with another_thread_collecting():
        del response, item
        collect()
        event = recorder.one()
    assert event.partial and event.tool_calls == 1 and event.usage == Usage()


def test_converse_stream_error_event(recorder, aws):
    aws.converse_stream(B.STREAM_ERROR, exception=B.STREAM_ERROR_EXCEPTION)
    stream = client(aws).converse_stream(modelId=B.CLAUDE, messages=MESSAGES)["stream"]
    seen = []
    with pytest.raises(EventStreamError) as raised:
        for item in stream:
            seen.append(item)
    assert len(seen) == 3
    assert raised.value.response["Error"]["Code"] == "modelStreamErrorException"
    event = recorder.one()
    assert event.error == "modelStreamErrorException" and event.partial and event.usage == Usage()
    assert event.request_id == B.REQUEST_ID


# -- InvokeModel -------------------------------------------------------------------------------

# 12 + 48,213 read + 3,070 written (2,816 for an hour)
INVOKE_CACHED = Usage(input_tokens=51_295, output_tokens=318, cache_read_tokens=48_213, cache_write_tokens=3_070,
                      cache_write_1h_tokens=2_816)
# 180 + 1,024 read + 0 written
INVOKE_NOVA = Usage(input_tokens=1_204, output_tokens=163, cache_read_tokens=1_024, cache_write_tokens=0)

INVOKE_CASES = [
    (B.CLAUDE, B.ANTHROPIC, B.ANTHROPIC_HEADERS, PLAIN, "end_turn", 0),
    (B.CLAUDE_45_US, B.ANTHROPIC_CACHED, B.ANTHROPIC_CACHED_HEADERS, INVOKE_CACHED, "end_turn", 0),
    (B.CLAUDE, B.ANTHROPIC_TOOL_USE, B.ANTHROPIC_TOOL_USE_HEADERS, TOOL_USE, "tool_use", 2),
    (B.NOVA, B.NOVA_BODY, B.NOVA_HEADERS, INVOKE_NOVA, "end_turn", 0),
    (B.LLAMA, B.LLAMA_BODY, B.LLAMA_HEADERS, Usage(input_tokens=31, output_tokens=54), "stop", None),
    (B.TITAN, B.TITAN_BODY, B.TITAN_HEADERS, Usage(input_tokens=9, output_tokens=42), "FINISH", None),
    (B.TITAN_EMBED, B.TITAN_EMBED_BODY, B.TITAN_EMBED_HEADERS, Usage(input_tokens=7), None, None),
    (B.MISTRAL, B.MISTRAL_BODY, B.MISTRAL_HEADERS, Usage(input_tokens=22, output_tokens=61), "stop", None),
    (B.MISTRAL_LARGE, B.MISTRAL_LARGE_BODY, B.MISTRAL_LARGE_HEADERS, Usage(input_tokens=97, output_tokens=23),
     "tool_calls", 1),
    (B.COHERE, B.COHERE_BODY, B.COHERE_HEADERS, Usage(input_tokens=58, output_tokens=19), "COMPLETE", None),
    (B.GPT_OSS, B.GPT_OSS_BODY, B.GPT_OSS_HEADERS, Usage(input_tokens=80, output_tokens=150), "stop", 0),
]
INVOKE_IDS = ["anthropic", "anthropic_cached", "anthropic_tool_use", "nova", "llama", "titan", "titan_embed",
              "mistral", "mistral_large", "cohere", "gpt_oss"]


@pytest.mark.parametrize("model, body, headers, usage, finish, tool_calls", INVOKE_CASES, ids=INVOKE_IDS)
def test_invoke_model(recorder, aws, model, body, headers, usage, finish, tool_calls):
    aws.invoke(body, headers)
    response = client(aws).invoke_model(modelId=model, body=invoke_body())
    assert isinstance(response["body"], StreamingBody)
    assert json.loads(response["body"].read()) == body  # the caller reads exactly what was sent
    event = recorder.one()
    assert event.usage == usage
    assert (event.finish_reason, event.tool_calls) == (finish, tool_calls)
    assert (event.provider, event.endpoint, event.stream, event.partial, event.error) == (
        "aws", "invoke_model", False, False, None)
    assert event.model == event.request_model == model and event.request_id == B.REQUEST_ID


@pytest.mark.parametrize("body, headers, usage", [
    # the body's counts when Bedrock sent no headers
    (B.ANTHROPIC_CACHED, B.JSON_HEADERS, INVOKE_CACHED),
    (B.LLAMA_BODY, B.JSON_HEADERS, Usage(input_tokens=31, output_tokens=54)),
    (B.NOVA_BODY, B.JSON_HEADERS, INVOKE_NOVA),
    (B.TITAN_BODY, B.JSON_HEADERS, Usage(input_tokens=9, output_tokens=42)),
    # the headers' counts when the body is not JSON
    (b"\x89PNG\r\n\x1a\n\x00\x00", B.invoke_headers(14, 0), Usage(input_tokens=14, output_tokens=0)),
    # neither: nothing is invented
    (B.MISTRAL_BODY, B.JSON_HEADERS, Usage()),
], ids=["anthropic_body", "llama_body", "nova_body", "titan_body", "binary_body", "no_counts"])
def test_invoke_model_counts_from_body_or_headers(recorder, aws, body, headers, usage):
    aws.invoke(body, headers)
    client(aws).invoke_model(modelId=B.CLAUDE_45_US, body=invoke_body())
    assert recorder.one().usage == usage


def test_invoke_model_body_reads_like_the_original(recorder, aws):
    raw = json.dumps(B.ANTHROPIC, indent=2).encode()  # several lines
    aws.invoke(raw, B.ANTHROPIC_HEADERS)
    runtime = client(aws)
    body = runtime.invoke_model(modelId=B.CLAUDE, body=invoke_body())["body"]
    assert body.readable() and body.read(10) == raw[:10]
    assert b"".join(body.iter_chunks(7)) == raw[10:]
    assert body.read() == b""
    body = runtime.invoke_model(modelId=B.CLAUDE, body=invoke_body())["body"]
    assert list(body.iter_lines()) == raw.splitlines()
    body = runtime.invoke_model(modelId=B.CLAUDE, body=invoke_body())["body"]
    body.close()
    assert len(recorder.recorded()) == 3


def test_invoke_model_body_read_failure_reaches_the_caller(recorder, aws):
    aws.invoke(B.ANTHROPIC, B.ANTHROPIC_HEADERS, truncate=True)
    response = client(aws).invoke_model(modelId=B.CLAUDE, body=invoke_body())
    with pytest.raises(botocore.exceptions.BotoCoreError) as raised:
        response["body"].read()
    with pytest.raises(type(raised.value)) as again:
        response["body"].read()
    assert again.value is raised.value  # the exception reading the body raised, as it was
    event = recorder.one()
    assert event.error == type(raised.value).__name__ and event.partial
    assert event.usage == PLAIN  # Bedrock's headers still say what was billed


# -- InvokeModelWithResponseStream -------------------------------------------------------------

INVOKE_STREAM_CASES = [
    (B.CLAUDE, B.ANTHROPIC_STREAM, PLAIN, "end_turn", 0),
    (B.CLAUDE_45_US, B.ANTHROPIC_STREAM_CACHED_TOOL,
     Usage(input_tokens=51_295, output_tokens=143, cache_read_tokens=48_213, cache_write_tokens=3_070,
           cache_write_1h_tokens=2_816), "tool_use", 1),
    (B.NOVA, B.NOVA_STREAM, INVOKE_NOVA, "end_turn", 0),
    (B.LLAMA, B.LLAMA_STREAM, Usage(input_tokens=31, output_tokens=54), "stop", None),
    (B.TITAN, B.TITAN_STREAM, Usage(input_tokens=9, output_tokens=42), "FINISH", None),
    (B.MISTRAL, B.MISTRAL_STREAM, Usage(input_tokens=22, output_tokens=61), "stop", None),
]


@pytest.mark.parametrize("model, chunks, usage, finish, tool_calls", INVOKE_STREAM_CASES,
                         ids=["anthropic", "anthropic_cached_tool", "nova", "llama", "titan", "mistral"])
def test_invoke_model_with_response_stream(recorder, aws, model, chunks, usage, finish, tool_calls):
    aws.invoke_stream(chunks)
    response = client(aws).invoke_model_with_response_stream(modelId=model, body=invoke_body())
    assert isinstance(response["body"], EventStream)
    received = [json.loads(item["chunk"]["bytes"]) for item in response["body"]]
    assert received == chunks
    event = recorder.one()
    assert event.usage == usage
    assert (event.finish_reason, event.tool_calls) == (finish, tool_calls)
    assert (event.endpoint, event.stream, event.partial, event.error) == ("invoke_model", True, False, None)
    assert event.request_id == B.REQUEST_ID and event.model == model
    assert 0 <= event.time_to_first_token_ms <= event.duration_ms


@pytest.mark.parametrize("chunks, usage", [
    (B.ANTHROPIC_STREAM, Usage(input_tokens=25)),  # message_start said what the input was
    (B.LLAMA_STREAM, Usage(input_tokens=31)),
    (B.NOVA_STREAM, None),  # Nova reports nothing before the end
], ids=["anthropic", "llama", "nova"])
def test_invoke_stream_stopped_early_is_partial(recorder, aws, chunks, usage):
    aws.invoke_stream(chunks)
    stream = client(aws).invoke_model_with_response_stream(modelId=B.CLAUDE, body=invoke_body())["body"]
    for _ in stream:
        break
    stream.close()
    event = recorder.one()
    assert event.partial and event.error is None
    assert event.usage == (usage or Usage())


@pytest.mark.parametrize("chunks, delta, usage, finish", [
    (B.ANTHROPIC_STREAM, {"type": "content_block_delta", "index": 0,
                          "delta": {"type": "text_delta", "text": 'the "amazon-bedrock-invocationMetrics" key'}},
     PLAIN, "end_turn"),
    (B.LLAMA_STREAM, {"generation": ' the "amazon-bedrock-invocationMetrics" key', "prompt_token_count": None,
                      "generation_token_count": 3, "stop_reason": None},
     Usage(input_tokens=31, output_tokens=54), "stop"),
], ids=["anthropic", "llama"])
def test_invoke_stream_text_naming_the_metrics_key_is_just_text(recorder, aws, chunks, delta, usage, finish):
    chunks = [*chunks[:1], delta, *chunks[1:]]
    aws.invoke_stream(chunks)
    stream = client(aws).invoke_model_with_response_stream(modelId=B.CLAUDE, body=invoke_body())["body"]
    assert [json.loads(c["chunk"]["bytes"]) for c in stream] == chunks
    event = recorder.one()
    assert event.usage == usage and event.finish_reason == finish and not event.partial


@pytest.mark.parametrize("chunks, usage, tool_calls, finish", [
    (B.ANTHROPIC_STREAM_CACHED_TOOL, Usage(input_tokens=51_295, output_tokens=143, cache_read_tokens=48_213,
                                           cache_write_tokens=3_070, cache_write_1h_tokens=2_816), 1, "tool_use"),
    (B.NOVA_STREAM, INVOKE_NOVA, 0, "end_turn"),
], ids=["anthropic", "nova"])
def test_invoke_stream_read_whatever_the_json_spacing(recorder, aws, chunks, usage, tool_calls, finish):
    aws.invoke_stream(chunks, compact=False)  # the content deltas' prefix does not match: all chunks are scanned
    for _ in client(aws).invoke_model_with_response_stream(modelId=B.CLAUDE, body=invoke_body())["body"]:
        pass
    event = recorder.one()
    assert (event.usage, event.tool_calls, event.finish_reason) == (usage, tool_calls, finish)


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status, body, headers, code", [
    (429, B.THROTTLING, B.THROTTLING_HEADERS, "ThrottlingException"),
    (400, B.VALIDATION, B.VALIDATION_HEADERS, "ValidationException"),
], ids=["throttling", "validation"])
@pytest.mark.parametrize("operation", ["converse", "converse-stream", "invoke", "invoke-with-response-stream"])
def test_client_error_reaches_caller_unchanged_and_is_recorded(recorder, aws, status, body, headers, code, operation):
    aws.reply(operation, body, headers, status)
    runtime = client(aws)
    call = {
        "converse": lambda: runtime.converse(modelId=B.CLAUDE, messages=MESSAGES),
        "converse-stream": lambda: runtime.converse_stream(modelId=B.CLAUDE, messages=MESSAGES),
        "invoke": lambda: runtime.invoke_model(modelId=B.CLAUDE, body=invoke_body()),
        "invoke-with-response-stream": lambda: runtime.invoke_model_with_response_stream(
            modelId=B.CLAUDE, body=invoke_body()),
    }[operation]
    with pytest.raises(getattr(runtime.exceptions, code)) as raised:
        call()
    assert isinstance(raised.value, ClientError)
    assert raised.value.response["Error"] == {"Code": code, "Message": body["message"]}
    event = recorder.one()
    assert (event.error, event.status_code, event.request_id) == (code, status, headers["x-amzn-RequestId"])
    assert event.usage == Usage() and event.provider == "aws" and event.request_model == B.CLAUDE


def test_retries_inside_one_call_are_one_event(recorder, aws):
    aws.reply("converse", B.THROTTLING, B.THROTTLING_HEADERS, 429)
    aws.converse(B.CONVERSE_PLAIN)
    client(aws, attempts=3).converse(modelId=B.CLAUDE, messages=MESSAGES)
    assert len(aws.requests) == 2
    event = recorder.one()
    assert event.usage == PLAIN and event.error is None


def test_connection_error_is_recorded(recorder):
    runtime = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
                           aws_access_key_id="k", aws_secret_access_key="s",
                           config=Config(retries={"total_max_attempts": 1}, connect_timeout=1))
    with pytest.raises(botocore.exceptions.EndpointConnectionError):
        runtime.converse(modelId=B.CLAUDE, messages=MESSAGES)
    assert recorder.one().error == "EndpointConnectionError"


# -- patching ----------------------------------------------------------------------------------


def test_client_created_before_patch_all(aws):
    runtime = client(aws)  # its class was generated before anything was patched
    recorder = Recorder()
    recorder.meter.patch_all()
    try:
        aws.converse(B.CONVERSE_PLAIN)
        runtime.converse(modelId=B.CLAUDE, messages=MESSAGES)
        assert recorder.one().usage == PLAIN
    finally:
        recorder.meter.shutdown()
    assert not recorder.errors


def test_unpatched_calls_are_not_recorded(recorder, aws):
    recorder.meter.unpatch("bedrock")
    aws.converse(B.CONVERSE_PLAIN)
    client(aws).converse(modelId=B.CLAUDE, messages=MESSAGES)
    assert recorder.recorded() == []


def test_other_services_and_operations_pass_through(recorder, aws):
    aws.reply("s3", B.S3_LIST_BUCKETS, {"Content-Type": "application/xml", "x-amz-request-id": "TX1"})
    buckets = client(aws, "s3").list_buckets()
    assert [b["Name"] for b in buckets["Buckets"]] == ["invoices"]
    if HAS_COUNT_TOKENS:  # free: not metered
        aws.reply("count-tokens", {"inputTokens": 12})
        counted = client(aws).count_tokens(modelId="anthropic.claude-3-5-haiku-20241022-v1:0",
                                           input={"converse": {"messages": MESSAGES}})
        assert counted["inputTokens"] == 12
    assert recorder.recorded() == []


def test_other_services_pass_through_without_a_call():
    """An S3 call through the patched `_make_api_call` is not metered: the wrapper asks
    `accepts()` (one dict lookup) and calls straight through; no scope is read, no call made.
    (What the pass-through costs is measured in benchmarks/, not asserted here.)"""

    class Hooks:
        settings = InstrumentSettings()
        active = True
        asked = 0

        def scope(self):
            Hooks.asked += 1

        def fault(self, exc, what):
            raise AssertionError(what)

    class Client:
        def _make_api_call(self, operation_name, api_params):
            return api_params

    wrapt.wrap_function_wrapper(Client, "_make_api_call", sync_wrapper(Hooks(), bedrock.BedrockRuntime()))
    params = {"Bucket": "invoices"}
    assert Client()._make_api_call("GetObject", params) is params
    assert Client()._make_api_call(operation_name="ListBuckets", api_params={}) == {}
    assert Hooks.asked == 0


# -- transparency: the same with and without tollmeter ----------------------------------------


def observe(value):
    """What a caller can see of a response, in comparable form."""
    if isinstance(value, dict):
        return {k: observe(v) for k, v in value.items()}
    if isinstance(value, EventStream):
        return ("EventStream", value.__class__.__name__, [observe(e) for e in value])
    if isinstance(value, StreamingBody):
        return ("StreamingBody", value.__class__.__name__, value.read())
    return value


def _converse(server):
    server.converse(B.CONVERSE_CACHE_1H)
    return observe(client(server).converse(modelId=B.CLAUDE_45, messages=MESSAGES))


def _converse_stream(server):
    server.converse_stream(B.STREAM_TOOL_USE)
    return observe(client(server).converse_stream(modelId=B.CLAUDE_45, messages=MESSAGES))


def _invoke(server):
    server.invoke(B.ANTHROPIC_CACHED, B.ANTHROPIC_CACHED_HEADERS)
    return observe(client(server).invoke_model(modelId=B.CLAUDE_45_US, body=invoke_body()))


def _invoke_stream(server):
    server.invoke_stream(B.ANTHROPIC_STREAM_CACHED_TOOL)
    return observe(client(server).invoke_model_with_response_stream(modelId=B.CLAUDE_45_US, body=invoke_body()))


def _error(server):
    server.reply("converse", B.THROTTLING, B.THROTTLING_HEADERS, 429)
    try:
        client(server).converse(modelId=B.CLAUDE, messages=MESSAGES)
    except ClientError as exc:
        return type(exc).__qualname__, str(exc), exc.response, exc.operation_name


def _stream_error(server):
    server.converse_stream(B.STREAM_ERROR, exception=B.STREAM_ERROR_EXCEPTION)
    seen = []
    try:
        for item in client(server).converse_stream(modelId=B.CLAUDE, messages=MESSAGES)["stream"]:
            seen.append(item)
    except EventStreamError as exc:
        return seen, type(exc).__qualname__, str(exc), exc.response


SCENARIOS = [_converse, _converse_stream, _invoke, _invoke_stream, _error, _stream_error]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__.strip("_") for s in SCENARIOS])
def test_patched_result_equals_unpatched(aws, scenario):
    bare = scenario(aws)
    aws.replies.clear()
    recorder = Recorder()
    recorder.meter.patch_all()
    try:
        patched = scenario(aws)
        assert len(recorder.recorded()) == 1
    finally:
        recorder.meter.shutdown()
    assert not recorder.errors
    assert patched == bare
    assert bare is not None


# -- pricing end to end ------------------------------------------------------------------------


def test_converse_priced_with_the_one_hour_cache_writes(recorder, aws):
    # global.anthropic.claude-sonnet-4-5: $3 input, $3.75 5-minute writes, $6 1-hour writes, $15 output
    aws.converse(B.CONVERSE_CACHE_1H)
    client(aws).converse(modelId=B.CLAUDE_45, messages=MESSAGES)
    event = recorder.one()
    if CACHE_FIELDS:
        expected = (12 * Decimal(3) + 1024 * Decimal("3.75") + 4096 * Decimal(6) + 210 * Decimal(15)) / M
    else:  # the cache writes are unknown: all 5,132 input tokens at the input rate
        expected = (5132 * Decimal(3) + 210 * Decimal(15)) / M
    assert event.priced and event.cost_usd == expected
    assert event.price_model == "aws/global.anthropic.claude-sonnet-4-5-20250929-v1:0"


def test_invoke_model_priced_at_the_regional_rates(recorder, aws):
    # us.anthropic.claude-sonnet-4-5 (regional, +10%): $3.30 input, $0.33 reads, $4.125 5-minute writes,
    # $6.60 1-hour writes, $16.50 output
    aws.invoke(B.ANTHROPIC_CACHED, B.ANTHROPIC_CACHED_HEADERS)
    client(aws).invoke_model(modelId=B.CLAUDE_45_US, body=invoke_body())
    event = recorder.one()
    expected = (12 * Decimal("3.3") + 48_213 * Decimal("0.33") + 254 * Decimal("4.125") + 2816 * Decimal("6.6")
                + 318 * Decimal("16.5")) / M
    assert event.cost_usd == expected == Decimal("0.04083024")


@pytest.mark.parametrize("model, chunks, expected", [
    # meta.llama3-1-70b-instruct: $0.72 input and output
    (B.LLAMA, B.LLAMA_STREAM, (31 + 54) * Decimal("0.72") / M),
    # us.amazon.nova-pro: $0.80 input, $0.20 cache reads, $3.20 output
    (B.NOVA, B.NOVA_STREAM, (180 * Decimal("0.8") + 1024 * Decimal("0.2") + 163 * Decimal("3.2")) / M),
], ids=["llama", "nova"])
def test_streams_priced(recorder, aws, model, chunks, expected):
    aws.invoke_stream(chunks)
    for _ in client(aws).invoke_model_with_response_stream(modelId=model, body=invoke_body())["body"]:
        pass
    assert recorder.one().cost_usd == expected


def test_the_limit_guard_sees_bedrock_requests(recorder, aws):
    """botocore passes the request positionally: the guard still estimates it (Converse's
    maxTokens, InvokeModel's JSON body) and refuses what would pass the limit."""
    from decimal import Decimal

    from tollmeter import LimitExceededException

    recorder.meter.set_limit("acme", Decimal("0.01"), frequency="per_day")
    model = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"  # $15/M output
    with recorder.meter.for_tenant("acme"):
        aws.converse(B.CONVERSE_NOVA)
        client(aws).converse(modelId=model, messages=MESSAGES, inferenceConfig={"maxTokens": 100})
        with pytest.raises(LimitExceededException):  # 1,000 x $15/M = $0.015 > $0.01
            client(aws).converse(modelId=model, messages=MESSAGES, inferenceConfig={"maxTokens": 1000})
        with pytest.raises(LimitExceededException):
            client(aws).invoke_model(modelId=model, body=invoke_body(max_tokens=1000))
    assert len(aws.requests) == 1  # the refused calls never left the process
