"""OpenTelemetry export: every event as a GenAI client span and as GenAI client metrics.

    pip install 'tollmeter[otel]'

    from tollmeter.otel import OtelExporter
    meter = Meter(MeterConfig(on_event=OtelExporter()))

`OtelExporter` is an `on_event` handler. It uses the tracer and meter providers you give it, or
the global ones your OpenTelemetry set-up installed (`opentelemetry-instrument`, or
`trace.set_tracer_provider(...)`), so the spans and metrics land where the rest of your telemetry
goes: an OTLP collector, Jaeger, Honeycomb, Datadog, Prometheus, ...

Each event becomes one span, kind CLIENT, named "{gen_ai.operation.name} {gen_ai.request.model}",
starting when the call started and lasting what it lasted, with the attributes of the GenAI
semantic conventions (`gen_ai.operation.name`, `gen_ai.provider.name` and its older name
`gen_ai.system`, `gen_ai.request.model`, `gen_ai.response.model`, `gen_ai.usage.*`,
`gen_ai.response.finish_reasons`, `error.type`) and tollmeter's own (`tollmeter.tenant_id`,
`tollmeter.run_id`, `tollmeter.agent_id`, `tollmeter.cost_usd`, `tollmeter.priced`, ...).
The metrics are the conventions' `gen_ai.client.token.usage` (by `gen_ai.token.type`),
`gen_ai.client.operation.duration` and `gen_ai.client.operation.time_to_first_chunk`, plus a
`tollmeter.cost` counter in USD. No prompt or completion content is ever exported (events have
none).

Events are handled on tollmeter's background worker, after the call: the spans are roots of
traces of their own (the request that made the call is not their parent); they carry the
tenant, run and agent to find them by.

Money: span attributes and metric points are doubles (what backends can sum and filter); the
exact Decimal stays in tollmeter's events, store and server.
"""

from __future__ import annotations

from datetime import timezone
from typing import TYPE_CHECKING, Any, Callable, Mapping

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace as otel_trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ._version import __version__

if TYPE_CHECKING:
    from .events import LLMEvent

__all__ = ["OtelExporter", "chain", "operation_name", "provider_name", "span_attributes"]

SCOPE = "tollmeter"

# -- the GenAI semantic conventions (https://opentelemetry.io/docs/specs/semconv/gen-ai/) ------

OPERATION_NAME = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
SYSTEM = "gen_ai.system"  # the provider's attribute before gen_ai.provider.name replaced it
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
REQUEST_STREAM = "gen_ai.request.stream"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
TOKEN_TYPE = "gen_ai.token.type"
ERROR_TYPE = "error.type"

TOKEN_USAGE = "gen_ai.client.token.usage"
OPERATION_DURATION = "gen_ai.client.operation.duration"
TIME_TO_FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"
COST = "tollmeter.cost"

#: Bucket boundaries the conventions advise for the token and duration histograms.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)

#: tollmeter's endpoint -> the conventions' operation name; other endpoints keep their name.
OPERATIONS: Mapping[str, str] = {
    "chat.completions": "chat",
    "responses": "chat",
    "messages": "chat",
    "chat": "chat",
    "converse": "chat",
    "converse_stream": "chat",
    "invoke_model": "chat",
    "generate_content": "generate_content",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "embed": "embeddings",
    "embed_content": "embeddings",
}

#: tollmeter's provider -> the conventions' well-known `gen_ai.provider.name`; others as they are.
PROVIDERS: Mapping[str, str] = {
    "aws": "aws.bedrock",
    "azure": "azure.ai.openai",
    "google": "gcp.gemini",
    "google-vertex": "gcp.vertex_ai",
    "mistral": "mistral_ai",
    "x-ai": "x_ai",
}


def operation_name(event: LLMEvent) -> str:
    endpoint = event.endpoint or "chat"
    return OPERATIONS.get(endpoint, endpoint)


def provider_name(event: LLMEvent) -> str:
    provider = event.provider or "unknown"
    return PROVIDERS.get(provider, provider)


def span_attributes(event: LLMEvent) -> dict[str, Any]:
    """The attributes of an event's span: the conventions' `gen_ai.*` and tollmeter's own.
    Attributes without a value are left out."""
    provider = provider_name(event)
    usage = event.usage
    values: dict[str, Any] = {
        OPERATION_NAME: operation_name(event),
        PROVIDER_NAME: provider,
        SYSTEM: provider,
        REQUEST_MODEL: event.request_model or event.model,
        RESPONSE_MODEL: event.model,
        REQUEST_STREAM: event.stream,
        RESPONSE_FINISH_REASONS: [event.finish_reason] if event.finish_reason else None,
        RESPONSE_TIME_TO_FIRST_CHUNK: _seconds(event.time_to_first_token_ms),
        USAGE_INPUT_TOKENS: usage.input_tokens,
        USAGE_OUTPUT_TOKENS: usage.output_tokens,
        USAGE_CACHE_READ_INPUT_TOKENS: usage.cache_read_tokens,
        USAGE_CACHE_CREATION_INPUT_TOKENS: usage.cache_write_tokens,
        USAGE_REASONING_OUTPUT_TOKENS: usage.reasoning_tokens,
        ERROR_TYPE: event.error,
        "tollmeter.event_id": event.event_id,
        "tollmeter.tenant_id": event.tenant_id,
        "tollmeter.run_id": event.run_id,
        "tollmeter.agent_id": event.agent_id,
        "tollmeter.provider": event.provider,
        "tollmeter.endpoint": event.endpoint,
        "tollmeter.cost_usd": float(event.cost_usd) if event.cost_usd is not None else None,
        "tollmeter.priced": event.priced,
        "tollmeter.price_source": event.price_source,
        "tollmeter.price_model": event.price_model,
        "tollmeter.request_id": event.request_id,
        "tollmeter.service_tier": event.service_tier,
        "tollmeter.tool_calls": event.tool_calls,
        "tollmeter.web_search_requests": event.web_search_requests,
        "tollmeter.partial": event.partial or None,
        "tollmeter.status_code": event.status_code,
    }
    for key, value in (event.tags or {}).items():
        values[f"tollmeter.tag.{key}"] = value
    return {k: v for k, v in values.items() if v is not None}


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000.0


def _nanoseconds(event: LLMEvent) -> tuple[int, int]:
    """The call's start and end, in ns since the epoch (the event's timestamp and duration)."""
    timestamp = event.timestamp
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=timezone.utc)
    start = round(timestamp.timestamp() * 1e6) * 1000  # a datetime holds microseconds
    end = start + round((event.duration_ms or 0.0) * 1e6)
    return start, end


class OtelExporter:
    """An `on_event` handler recording each event as a GenAI client span and metrics.

    `tracer_provider` / `meter_provider`: where spans and metrics go (default: the global ones).
    `spans` / `metrics`: turn either off. `tenant_in_metrics`: put `tollmeter.tenant_id` on the
    metric points too (per-tenant cost in your dashboards; one time series per tenant and model:
    turn it off if you have very many tenants). An exception it raises is caught by the meter
    and reported to `on_error`, like that of any `on_event` handler.
    """

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None, *, spans: bool = True,
                 metrics: bool = True, tenant_in_metrics: bool = True) -> None:
        self.tenant_in_metrics = tenant_in_metrics
        self._tracer = None
        if spans:
            provider = tracer_provider or otel_trace.get_tracer_provider()
            self._tracer = provider.get_tracer(SCOPE, __version__)
        self._tokens = self._duration = self._first_chunk = self._cost = None
        if metrics:
            provider = meter_provider or otel_metrics.get_meter_provider()
            meter = provider.get_meter(SCOPE, __version__)
            self._tokens = _histogram(meter, TOKEN_USAGE, "{token}", "Number of input and output tokens used.",
                                      TOKEN_BUCKETS)
            self._duration = _histogram(meter, OPERATION_DURATION, "s", "GenAI operation duration.",
                                        DURATION_BUCKETS)
            self._first_chunk = _histogram(meter, TIME_TO_FIRST_CHUNK, "s",
                                           "Time to receive the first chunk of a streamed response.", DURATION_BUCKETS)
            self._cost = meter.create_counter(
                COST, unit="USD", description="What the calls cost (priced calls only), as tollmeter priced them.")

    def __call__(self, event: LLMEvent) -> None:
        if self._tracer is not None:
            self.record_span(event)
        if self._tokens is not None:
            self.record_metrics(event)

    def record_span(self, event: LLMEvent) -> None:
        attributes = span_attributes(event)
        start, end = _nanoseconds(event)
        name = f"{attributes[OPERATION_NAME]} {attributes.get(REQUEST_MODEL) or ''}".rstrip()
        span = self._tracer.start_span(  # type: ignore[union-attr]
            name, kind=SpanKind.CLIENT, attributes=attributes, start_time=start,
            context=otel_trace.set_span_in_context(otel_trace.INVALID_SPAN),  # a root: not the worker's context
        )
        if event.error:
            span.set_status(Status(StatusCode.ERROR, event.error))
        span.end(end_time=end)

    def record_metrics(self, event: LLMEvent) -> None:
        common: dict[str, Any] = {
            OPERATION_NAME: operation_name(event),
            PROVIDER_NAME: provider_name(event),
        }
        if event.request_model or event.model:
            common[REQUEST_MODEL] = event.request_model or event.model
        if event.model:
            common[RESPONSE_MODEL] = event.model
        if self.tenant_in_metrics and event.tenant_id is not None:
            common["tollmeter.tenant_id"] = event.tenant_id
        usage = event.usage
        for kind, tokens in (("input", usage.input_tokens), ("output", usage.output_tokens)):
            if tokens is not None:
                self._tokens.record(tokens, {**common, TOKEN_TYPE: kind})  # type: ignore[union-attr]
        if event.duration_ms is not None:
            timing = {**common, ERROR_TYPE: event.error} if event.error else common
            self._duration.record(event.duration_ms / 1000.0, timing)  # type: ignore[union-attr]
        if event.time_to_first_token_ms is not None:
            self._first_chunk.record(event.time_to_first_token_ms / 1000.0, common)  # type: ignore[union-attr]
        if event.priced and event.cost_usd is not None:
            self._cost.add(float(event.cost_usd), common)  # type: ignore[union-attr]


def _histogram(meter: Any, name: str, unit: str, description: str, buckets: tuple[float, ...]) -> Any:
    """A histogram with the conventions' advised buckets (opentelemetry-api 1.23 and later take
    the advice; an older API makes it with the SDK's default buckets)."""
    try:
        return meter.create_histogram(name, unit=unit, description=description,
                                      explicit_bucket_boundaries_advisory=buckets)
    except TypeError:
        return meter.create_histogram(name, unit=unit, description=description)


def chain(*handlers: Callable[[LLMEvent], Any]) -> Callable[[LLMEvent], None]:
    """One `on_event` that hands each event to every handler in turn, for `OtelExporter` beside
    a handler of your own: `MeterConfig(on_event=chain(OtelExporter(), my_handler))`. A handler
    that raises does not keep the event from the others; the first error is raised after them
    all (the meter reports it to `on_error`)."""
    chosen = tuple(handlers)

    def on_event(event: LLMEvent) -> None:
        error: BaseException | None = None
        for handler in chosen:
            try:
                handler(event)
            except Exception as exc:
                if error is None:
                    error = exc
        if error is not None:
            raise error

    return on_event

