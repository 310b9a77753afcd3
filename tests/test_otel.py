"""The OpenTelemetry exporter: events as GenAI client spans and metrics.

Checked by reading what the OpenTelemetry SDK recorded (its in-memory span exporter and metric
reader), and by decoding what its OTLP/HTTP exporters sent to a receiver on 127.0.0.1 (the
protobuf export requests, read with `opentelemetry-proto`), as a collector would receive them.
"""

from __future__ import annotations

import gzip
import inspect
import threading
import time
from datetime import datetime, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("opentelemetry.sdk")

import openai  # noqa: E402
from opentelemetry import metrics as otel_metrics  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

from tollmeter import Meter, MeterConfig, Usage  # noqa: E402
from tollmeter.otel import OtelExporter, chain  # noqa: E402

from .bodies import openai_bodies as O  # noqa: E402

CHAT = "https://api.openai.com/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
CACHED_COST = (86 * Decimal("2.5") + 1920 * Decimal("1.25") + 300 * 10) / 1_000_000  # gpt-4o, O.CHAT_CACHED


class Otel:
    """An OpenTelemetry SDK set-up that keeps what it records in memory, and a meter exporting
    its events there."""

    def __init__(self, **options) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.exporter = OtelExporter(self.tracer_provider, self.meter_provider, **options)
        self.events = []
        self.errors = []
        self.meter = Meter(MeterConfig(on_event=chain(self.exporter, self.events.append),
                                       on_error=self.errors.append, flush_interval=0.05))

    def finished_spans(self):
        assert self.meter.flush(10)
        return self.spans.get_finished_spans()

    def metric_points(self):
        """{metric name: [(attributes, point)]} of everything recorded so far."""
        assert self.meter.flush(10)
        out: dict[str, list] = {}
        data = self.reader.get_metrics_data()
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                assert scope_metrics.scope.name == "tollmeter"
                for metric in scope_metrics.metrics:
                    out.setdefault(metric.name, []).extend(
                        (dict(p.attributes), p) for p in metric.data.data_points)
        return out

    def close(self) -> None:
        self.meter.shutdown()
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
        assert not self.errors, self.errors


@pytest.fixture
def otel():
    setup = Otel()
    setup.meter.patch("openai")
    yield setup
    setup.close()


def client():
    return openai.OpenAI(api_key="sk-test", max_retries=0)


def test_a_call_is_a_genai_client_span(otel, http_mock):
    http_mock.post(CHAT).respond(json=O.CHAT_CACHED, headers=O.HEADERS)
    with otel.meter.for_tenant("acme", run_id="ticket-9", agent_id="triage", tags={"plan": "pro"}):
        client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    (span,) = otel.finished_spans()
    (event,) = otel.events
    assert span.name == "chat gpt-4o" and span.kind is SpanKind.CLIENT
    assert span.parent is None and span.status.status_code is StatusCode.UNSET
    assert span.instrumentation_scope.name == "tollmeter"
    assert dict(span.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.request.stream": False,
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 2006,
        "gen_ai.usage.output_tokens": 300,
        "gen_ai.usage.cache_read.input_tokens": 1920,
        "gen_ai.usage.reasoning.output_tokens": 0,
        "tollmeter.event_id": event.event_id,
        "tollmeter.tenant_id": "acme",
        "tollmeter.run_id": "ticket-9",
        "tollmeter.agent_id": "triage",
        "tollmeter.tag.plan": "pro",
        "tollmeter.provider": "openai",
        "tollmeter.endpoint": "chat.completions",
        "tollmeter.cost_usd": float(CACHED_COST),
        "tollmeter.priced": True,
        "tollmeter.price_source": event.price_source,
        "tollmeter.price_model": event.price_model,
        "tollmeter.request_id": O.HEADERS["x-request-id"],
        "tollmeter.service_tier": "default",
        "tollmeter.tool_calls": 0,
    }
    # The span lasts what the call lasted, from when it started.
    start = int(event.timestamp.timestamp() * 1e6) * 1000
    assert abs(span.start_time - start) <= 1000
    assert abs((span.end_time - span.start_time) / 1e6 - event.duration_ms) < 0.01


def test_a_failed_call_is_an_error_span(otel, http_mock):
    http_mock.post(CHAT).respond(429, json=O.ERROR_429, headers=O.HEADERS)
    with otel.meter.for_tenant("acme"), pytest.raises(openai.RateLimitError):
        client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    (span,) = otel.finished_spans()
    assert span.status.status_code is StatusCode.ERROR and span.status.description == "RateLimitError"
    assert span.attributes["error.type"] == "RateLimitError"
    assert span.attributes["tollmeter.status_code"] == 429
    assert "gen_ai.usage.input_tokens" not in span.attributes  # nothing reported is not 0


def test_span_times_are_the_events(otel):
    started = datetime(2026, 3, 14, 15, 9, 26, 535897, tzinfo=timezone.utc)
    otel.meter.track_manually(provider="anthropic", model="claude-sonnet-4-6", endpoint="messages",
                              input_tokens=1200, output_tokens=80, tenant_id="globex", timestamp=started,
                              duration_ms=1234.5)
    (span,) = otel.finished_spans()
    assert span.name == "chat claude-sonnet-4-6"
    assert span.start_time == 1773500966535897000
    assert span.end_time - span.start_time == 1_234_500_000
    assert span.attributes["tollmeter.tenant_id"] == "globex"


def test_an_unpriced_call_says_so(otel):
    otel.meter.track_manually(provider="self-hosted", model="my-finetune", input_tokens=10, output_tokens=5)
    (span,) = otel.finished_spans()
    assert span.attributes["tollmeter.priced"] is False
    assert "tollmeter.cost_usd" not in span.attributes
    assert "tollmeter.cost" not in otel.metric_points()  # no cost counted for it


def test_metrics(otel, http_mock):
    http_mock.post(CHAT).respond(json=O.CHAT_CACHED, headers=O.HEADERS)
    for tenant in ("acme", "acme", "globex"):
        with otel.meter.for_tenant(tenant):
            client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    otel.meter.track_manually(provider="openai", model="gpt-4o", endpoint="chat.completions",
                              input_tokens=100, output_tokens=10, tenant_id="acme", error="APITimeoutError",
                              duration_ms=30_000)
    points = otel.metric_points()
    common = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}
    served = {**common, "gen_ai.response.model": "gpt-4o-2024-08-06"}
    tokens = {(a["tollmeter.tenant_id"], a["gen_ai.token.type"], a["gen_ai.response.model"]): (p.count, p.sum)
              for a, p in points["gen_ai.client.token.usage"]}
    assert tokens == {
        ("acme", "input", "gpt-4o-2024-08-06"): (2, 4012), ("acme", "output", "gpt-4o-2024-08-06"): (2, 600),
        ("globex", "input", "gpt-4o-2024-08-06"): (1, 2006), ("globex", "output", "gpt-4o-2024-08-06"): (1, 300),
        ("acme", "input", "gpt-4o"): (1, 100), ("acme", "output", "gpt-4o"): (1, 10),
    }
    token_points = [p for a, p in points["gen_ai.client.token.usage"]]
    if "explicit_bucket_boundaries_advisory" in inspect.signature(otel_metrics.Meter.create_histogram).parameters:
        assert token_points[0].explicit_bounds[:4] == (1, 4, 16, 64)  # the conventions' advised buckets
    assert all(set(a) - {"tollmeter.tenant_id", "gen_ai.token.type"} <= set(served)
               for a, _ in points["gen_ai.client.token.usage"])
    durations = {(a["tollmeter.tenant_id"], a.get("error.type")): p.count
                 for a, p in points["gen_ai.client.operation.duration"]}
    assert durations == {("acme", None): 2, ("globex", None): 1, ("acme", "APITimeoutError"): 1}
    cost: dict[str, float] = {}
    for a, p in points["tollmeter.cost"]:  # one series per tenant and model
        cost[a["tollmeter.tenant_id"]] = cost.get(a["tollmeter.tenant_id"], 0.0) + p.value
    manual = (100 * Decimal("2.5") + 10 * 10) / 1_000_000
    assert cost["acme"] == pytest.approx(float(2 * CACHED_COST + manual))
    assert cost["globex"] == pytest.approx(float(CACHED_COST))
    assert len(points["tollmeter.cost"]) == 3


def test_streams_record_time_to_first_chunk(otel, http_mock):
    http_mock.post(CHAT).respond(text=O.CHAT_STREAM_WITH_USAGE, headers=O.SSE_HEADERS)
    list(client().chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    (span,) = otel.finished_spans()
    assert span.attributes["gen_ai.request.stream"] is True
    assert 0 <= span.attributes["gen_ai.response.time_to_first_chunk"] <= (span.end_time - span.start_time) / 1e9
    (first_chunk,) = otel.metric_points()["gen_ai.client.operation.time_to_first_chunk"]
    assert first_chunk[1].count == 1


def test_tenants_can_be_left_out_of_metrics():
    setup = Otel(tenant_in_metrics=False, spans=False)
    try:
        setup.meter.track_manually(provider="openai", model="gpt-4o", input_tokens=10, output_tokens=2,
                                   tenant_id="acme")
        points = setup.metric_points()
        assert setup.spans.get_finished_spans() == ()
        assert points["gen_ai.client.token.usage"]
        assert not any("tollmeter.tenant_id" in a for series in points.values() for a, _ in series)
    finally:
        setup.close()


def test_chain_hands_every_event_to_every_handler():
    seen, errors = [], []

    def broken(event):
        raise RuntimeError("boom")

    meter = Meter(MeterConfig(on_event=chain(broken, seen.append), on_error=errors.append, flush_interval=0.05))
    try:
        meter.track_manually(provider="openai", model="gpt-4o", input_tokens=1)
        assert meter.flush(5)
    finally:
        meter.shutdown()
    assert len(seen) == 1  # the broken handler did not keep the event from the next one
    assert [str(e) for e in errors] == ["boom"]  # and its error was reported


# -- OTLP/HTTP, to a receiver on 127.0.0.1 -------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    """A collector's OTLP/HTTP endpoint: keeps the decoded protobuf export requests."""

    def do_POST(self):  # noqa: N802
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceRequest, ExportMetricsServiceResponse)
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest, ExportTraceServiceResponse)

        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        assert self.headers.get("content-type") == "application/x-protobuf"
        if self.path == "/v1/traces":
            request, response = ExportTraceServiceRequest(), ExportTraceServiceResponse()
        elif self.path == "/v1/metrics":
            request, response = ExportMetricsServiceRequest(), ExportMetricsServiceResponse()
        else:
            self.send_error(404)
            return
        request.ParseFromString(body)
        self.server.received.append((self.path, request))
        data = response.SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def collector():
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _value(any_value):
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(v) for v in any_value.array_value.values)
    return getattr(any_value, kind)


def _attributes(key_values):
    return {kv.key: _value(kv.value) for kv in key_values}


def test_spans_and_metrics_land_in_an_otlp_collector(collector):
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    base = f"http://127.0.0.1:{collector.server_address[1]}"
    resource = Resource.create({"service.name": "support-bot"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces")))
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{base}/v1/metrics"),
                                           export_interval_millis=3_600_000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter = Meter(MeterConfig(on_event=OtelExporter(tracer_provider, meter_provider), flush_interval=0.05))
    try:
        meter.track_manually(provider="anthropic", model="claude-sonnet-4-6", endpoint="messages",
                             usage=Usage(input_tokens=51295, output_tokens=318, cache_read_tokens=48213,
                                         cache_write_tokens=3070),
                             tenant_id="acme", run_id="ticket-9", duration_ms=2314.0)
        assert meter.flush(10)
        assert meter_provider.force_flush(10_000) and tracer_provider.force_flush(10_000)
    finally:
        meter.shutdown()
        tracer_provider.shutdown()
        meter_provider.shutdown()
    deadline = time.monotonic() + 5
    while {p for p, _ in collector.received} != {"/v1/traces", "/v1/metrics"}:
        assert time.monotonic() < deadline, collector.received
        time.sleep(0.01)

    traces = [r for p, r in collector.received if p == "/v1/traces"]
    spans = [(_attributes(rs.resource.attributes), ss.scope.name, span)
             for request in traces for rs in request.resource_spans
             for ss in rs.scope_spans for span in ss.spans]
    (resource_attributes, scope, span) = spans[0]
    assert len(spans) == 1 and scope == "tollmeter" and resource_attributes["service.name"] == "support-bot"
    assert span.name == "chat claude-sonnet-4-6" and span.kind == span.SPAN_KIND_CLIENT
    assert span.end_time_unix_nano - span.start_time_unix_nano == 2_314_000_000
    attributes = _attributes(span.attributes)
    assert {k: attributes[k] for k in ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model",
                                       "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
                                       "gen_ai.usage.cache_read.input_tokens",
                                       "gen_ai.usage.cache_creation.input_tokens",
                                       "tollmeter.tenant_id", "tollmeter.run_id", "tollmeter.priced")} == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-6", "gen_ai.usage.input_tokens": 51295,
        "gen_ai.usage.output_tokens": 318, "gen_ai.usage.cache_read.input_tokens": 48213,
        "gen_ai.usage.cache_creation.input_tokens": 3070, "tollmeter.tenant_id": "acme",
        "tollmeter.run_id": "ticket-9", "tollmeter.priced": True}
    assert attributes["tollmeter.cost_usd"] > 0

    metrics = {m.name: m for request in (r for p, r in collector.received if p == "/v1/metrics")
               for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    usage = {_attributes(p.attributes)["gen_ai.token.type"]: p.sum for p in metrics["gen_ai.client.token.usage"].histogram.data_points}
    assert usage == {"input": 51295, "output": 318}
    assert metrics["gen_ai.client.token.usage"].unit == "{token}"
    (cost,) = metrics["tollmeter.cost"].sum.data_points
    assert metrics["tollmeter.cost"].unit == "USD" and metrics["tollmeter.cost"].sum.is_monotonic
    assert cost.as_double == pytest.approx(attributes["tollmeter.cost_usd"])
    assert _attributes(cost.attributes)["tollmeter.tenant_id"] == "acme"
