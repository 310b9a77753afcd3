"""MeterConfig: every setting of the agent, with defaults, environment variables and validation."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from .rules import check_id

if TYPE_CHECKING:
    from .events import LLMEvent

ENV_API_KEY = "TOLLMETER_API_KEY"
ENV_URL = "TOLLMETER_URL"


class ConfigError(ValueError):
    """A MeterConfig value is invalid."""


@dataclass
class MeterConfig:
    #: Bearer key for the ingest endpoint (default: `$TOLLMETER_API_KEY`).
    api_key: str | None = None
    #: Ingest endpoint, e.g. `https://metering.example.com/v1/ingest` (default: `$TOLLMETER_URL`).
    #: Without one, nothing touches the network.
    url: str | None = None
    #: Seconds between background flushes.
    flush_interval: float = 2.0
    #: A batch is sent as soon as this many events are queued.
    max_batch_size: int = 500
    #: Events held in memory at most; beyond it new events are dropped and counted.
    max_queue_size: int = 10_000
    #: HTTP timeout of one delivery attempt, in seconds.
    timeout: float = 10.0
    #: Delivery retries after the first attempt (429, 5xx and network errors only).
    max_retries: int = 5
    #: First delivery backoff in seconds; doubled on each retry (with jitter), at most 30 s.
    retry_backoff: float = 0.5
    #: Called with every `LLMEvent`, on the background worker, after pricing.
    on_event: Callable[["LLMEvent"], object] | None = None
    #: Called with every instrumentation or delivery fault (an exception); never re-raised.
    on_error: Callable[[BaseException], object] | None = None
    #: Providers `patch_all()` patches; `None` means every registered provider.
    providers: Sequence[str] | None = None
    #: Tenant recorded for calls made outside any `for_tenant` scope.
    default_tenant: str | None = None
    #: Whether to ask an OpenAI-style stream for its usage (`stream_options.include_usage`) when
    #: the caller did not (the extra usage chunk is hidden again). None: only where the
    #: provider's answer is known (OpenAI, Azure OpenAI; docs/providers.md); every
    #: other host gets the request exactly as written. True: every OpenAI-compatible host;
    #: False: none. A mapping of provider names to True/False overrides the default per
    #: provider, e.g. `{"self-hosted": True}` for a vLLM server.
    stream_usage: bool | Mapping[str, bool] | None = None
    #: Provider name by base-URL prefix, checked before the built-in attribution,
    #: e.g. `{"https://llm.internal.example.com": "vllm"}`.
    provider_overrides: Mapping[str, str] = field(default_factory=dict)
    #: Price every event (on the background worker). Off: events carry usage only.
    pricing: bool = True
    #: Your rate card: a YAML/JSON/TOML file path, or a dict / list of entries (docs/pricing.md).
    prices: Any = None
    #: Price a call to a gateway or an unknown host at the first-party model its id names
    #: (`gpt-4o` through a proxy: OpenAI's prices, provenance "inferred from the model id").
    #: Off: such calls stay unpriced unless your rate card prices them (docs/providers.md).
    infer_prices: bool = True
    #: Fetch the newest genai-prices data in the background at start-up (the bundled data is
    #: used until it arrives, and kept if the fetch fails). Off by default: no network.
    refresh_prices: bool = False
    #: The embedded store of events, limits and spend when there is no `url`: a SQLite file
    #: path, ":memory:", or None for `$TOLLMETER_DB` or ~/.local/share/tollmeter/tollmeter.db.
    #: False keeps no events (limits then live in memory, for this process only).
    store: Any = None
    #: What limits reserve for a call whose model has no price: "estimate" (at
    #: `fallback_prices`, and settled at them), "block" (refuse it), "allow" (reserve nothing).
    unpriced_calls: str = "estimate"
    #: Conservative prices for that estimate (genai-prices keys, USD per unit).
    fallback_prices: Mapping[str, Any] = field(default_factory=lambda: {"input_mtok": "15", "output_mtok": "75"})
    #: What a call reserves against its tenant's limit: "adaptive" (the worst case when the
    #: budget covers it, else what recent calls of the model used; small limits work) or
    #: "worst_case" (always the worst case: a strict bound). See docs/limits.md.
    reservation: str = "adaptive"
    #: Seconds a budget lease lives unless renewed (limits; see docs/limits.md).
    lease_ttl: float = 30.0
    #: When the server (with a `url`) or the embedded store (locked, say) cannot be asked for
    #: budget within `limits_wait`: "open" lets calls through judged by the last known state and
    #: this process's own spend since; "closed" refuses them. See docs/limits.md.
    limits_unreachable: str = "open"
    #: Seconds a call waits at most for a budget lease from the server or the embedded store;
    #: past it the call is decided by `limits_unreachable` (the request goes on in the
    #: background and its answer serves the next calls). 0: never wait. Requests that keep
    #: failing open a circuit: calls then decide at once until the server answers again.
    #: For a hard cap: limits_unreachable="closed" and a wait above the source's answer time
    #: at peak load (docs/limits.md, "When the server does not answer").
    limits_wait: float = 0.05
    #: Fractions of a limit at which `on_threshold` is called, once per period.
    alert_thresholds: Sequence[float] = (0.8, 1.0)
    #: Called on the background worker as `on_threshold(tenant_id, limit, fraction)`.
    on_threshold: Callable[[str, Any, float], object] | None = None
    #: Where batches the ingest server could not take wait until it can (also across restarts):
    #: a directory, None for ~/.local/share/tollmeter/spool/<url hash>, False for no spool.
    spool_dir: Any = None
    #: The spool's size bound; past it the oldest batches are dropped (counted and reported).
    spool_max_bytes: int = 100 * 1024 * 1024
    #: Log every event and delivery on the `tollmeter` logger at DEBUG.
    debug: bool = False

    def __post_init__(self) -> None:
        if self.api_key is None:
            self.api_key = os.environ.get(ENV_API_KEY) or None
        if self.url is None:
            self.url = os.environ.get(ENV_URL) or None
        self.validate()

    def validate(self) -> None:
        if self.url is not None:
            if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
                raise ConfigError(f"url must be an http:// or https:// URL, got {self.url!r}")
            if not self.api_key:
                raise ConfigError(
                    f"url is set but api_key is missing: pass api_key= or set ${ENV_API_KEY}"
                )
        _positive_number("flush_interval", self.flush_interval)
        _positive_number("timeout", self.timeout)
        _positive_number("retry_backoff", self.retry_backoff)
        _positive_int("max_batch_size", self.max_batch_size)
        _positive_int("max_queue_size", self.max_queue_size)
        _positive_int("spool_max_bytes", self.spool_max_bytes)
        if not isinstance(self.max_retries, int) or isinstance(self.max_retries, bool) or self.max_retries < 0:
            raise ConfigError(f"max_retries must be an int >= 0, got {self.max_retries!r}")
        if self.unpriced_calls not in ("estimate", "block", "allow"):
            raise ConfigError(f"unpriced_calls must be 'estimate', 'block' or 'allow', got {self.unpriced_calls!r}")
        if self.reservation not in ("adaptive", "worst_case"):
            raise ConfigError(f"reservation must be 'adaptive' or 'worst_case', got {self.reservation!r}")
        _positive_number("lease_ttl", self.lease_ttl)
        if self.limits_unreachable not in ("open", "closed"):
            raise ConfigError(f"limits_unreachable must be 'open' or 'closed', got {self.limits_unreachable!r}")
        if (isinstance(self.limits_wait, bool) or not isinstance(self.limits_wait, (int, float))
                or not 0 <= self.limits_wait <= 60):
            raise ConfigError(f"limits_wait must be a number of seconds from 0 to 60, got {self.limits_wait!r}")
        thresholds = tuple(self.alert_thresholds or ())
        if any(isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t <= 10 for t in thresholds):
            raise ConfigError(f"alert_thresholds must be fractions of a limit like (0.8, 1.0), got {self.alert_thresholds!r}")
        self.alert_thresholds = tuple(sorted(thresholds))
        for name in ("on_event", "on_error", "on_threshold"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise ConfigError(f"{name} must be callable, got {type(value).__name__}")
        if self.providers is not None:
            if isinstance(self.providers, str):
                raise ConfigError("providers must be a list of names, e.g. ['openai'], not a string")
            self.providers = tuple(self.providers)
        if self.default_tenant is not None:
            try:
                check_id(self.default_tenant, "default_tenant")
            except (TypeError, ValueError) as exc:
                raise ConfigError(str(exc)) from None
        if self.stream_usage is not None and not isinstance(self.stream_usage, bool):
            if not isinstance(self.stream_usage, Mapping) or not all(
                    isinstance(k, str) and isinstance(v, bool) for k, v in self.stream_usage.items()):
                raise ConfigError("stream_usage must be None, True, False or a mapping of provider names to "
                                  f"True/False, got {self.stream_usage!r}")
            self.stream_usage = dict(self.stream_usage)
        if not isinstance(self.provider_overrides, Mapping):
            raise ConfigError("provider_overrides must map a base-URL prefix to a provider name")


def _positive_number(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{name} must be a number > 0, got {value!r}")


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an int >= 1, got {value!r}")
