"""MeterConfig: defaults, environment variables, and bad values rejected with a clear message."""

from __future__ import annotations

import pytest

from tollmeter import ConfigError, Meter, MeterConfig


def test_defaults_need_nothing(monkeypatch):
    monkeypatch.delenv("TOLLMETER_URL", raising=False)
    monkeypatch.delenv("TOLLMETER_API_KEY", raising=False)
    config = MeterConfig()
    assert config.url is None and config.api_key is None
    assert config.flush_interval > 0 and config.max_batch_size >= 1
    assert config.stream_usage is None  # ask for stream usage where the provider's answer is known


def test_url_and_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("TOLLMETER_URL", "https://metering.example.com/v1/ingest")
    monkeypatch.setenv("TOLLMETER_API_KEY", "tm_env")
    config = MeterConfig()
    assert (config.url, config.api_key) == ("https://metering.example.com/v1/ingest", "tm_env")
    assert MeterConfig(api_key="tm_explicit").api_key == "tm_explicit"


@pytest.mark.parametrize("options, message", [
    ({"url": "metering.example.com"}, "url must be an http"),
    ({"url": "https://m.example.com/v1/ingest"}, "api_key is missing"),
    ({"flush_interval": 0}, "flush_interval must be a number > 0"),
    ({"flush_interval": "2"}, "flush_interval"),
    ({"timeout": -1}, "timeout"),
    ({"max_batch_size": 0}, "max_batch_size must be an int >= 1"),
    ({"max_queue_size": 2.5}, "max_queue_size"),
    ({"max_retries": -1}, "max_retries must be an int >= 0"),
    ({"max_retries": True}, "max_retries"),
    ({"retry_backoff": 0}, "retry_backoff"),
    ({"on_event": "print"}, "on_event must be callable"),
    ({"on_error": 3}, "on_error must be callable"),
    ({"providers": "openai"}, "providers must be a list"),
    ({"default_tenant": 7}, "default_tenant must be a str"),
    ({"provider_overrides": ["x"]}, "provider_overrides"),
    ({"default_tenant": "a\x00b"}, "default_tenant must not contain NUL"),
    ({"default_tenant": "x" * 256}, "default_tenant must be at most 255"),
    ({"stream_usage": "yes"}, "stream_usage must be"),
    ({"stream_usage": {"self-hosted": "on"}}, "stream_usage must be"),
])
def test_bad_values_are_rejected_with_a_clear_message(monkeypatch, options, message):
    monkeypatch.delenv("TOLLMETER_API_KEY", raising=False)
    with pytest.raises(ConfigError, match=message):
        MeterConfig(**options)


def test_meter_takes_keyword_options_too():
    meter = Meter(default_tenant="house")
    assert meter.config.default_tenant == "house"
    meter.shutdown()
    with pytest.raises(TypeError):
        Meter(MeterConfig(), default_tenant="x")
