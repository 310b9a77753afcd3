"""Gateways and proxies: who a call through one is attributed to, how it is priced, and the
cost a gateway reports (tests/bodies/gateway_bodies.py). One test per host kind: a LiteLLM
proxy on localhost:4000, Cloudflare AI Gateway, Portkey, Helicone, Vercel AI Gateway, Azure
API Management, a company proxy (OpenAI and Anthropic clients); self-hosted open models
(Ollama, vLLM) unpriced; the limit guard's reservation at the inferred price; inference off
(`MeterConfig(infer_prices=False)`)."""

from __future__ import annotations

import json
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest

from tollmeter import LimitExceededException, Usage
from tollmeter.pricing.pricer import Pricer

from .bodies import gateway_bodies as G
from .conftest import Recorder

pytestmark = pytest.mark.sdk

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
INFERRED = "inferred from the model id"
M = Decimal(1_000_000)


def oai(base_url: str, **kw) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test", base_url=base_url, max_retries=0, **kw)


# -- LiteLLM proxy (localhost:4000) --------------------------------------------------------------


def test_litellm_proxy_is_recognised_and_its_cost_wins(recorder, http_mock):
    http_mock.post("http://localhost:4000/chat/completions").respond(json=G.LITELLM_CHAT, headers=G.LITELLM_HEADERS)
    response = oai("http://localhost:4000").chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert response.choices[0].message.content == "Paris is the capital of France."
    event = recorder.one()
    # Attributed to the proxy, with the upstream its x-litellm-model-api-base names.
    assert event.provider == "litellm-proxy/openai"
    assert event.usage == Usage(input_tokens=14, output_tokens=9, cache_read_tokens=0, reasoning_tokens=0,
                                output_audio_tokens=0, accepted_prediction_tokens=0, rejected_prediction_tokens=0)
    assert event.provider_cost_usd == Decimal("0.000125") == event.cost_usd
    assert event.price_source == "provider"
    # Our own price is kept beside it: the upstream's (the header said where the call went).
    assert event.computed_cost_usd == (14 * Decimal("2.5") + 9 * Decimal(10)) / M
    assert event.price_model == "openai/gpt-4o"


async def test_litellm_proxy_async(recorder, http_mock):
    http_mock.post("http://localhost:4000/chat/completions").respond(json=G.LITELLM_CHAT, headers=G.LITELLM_HEADERS)
    client = openai.AsyncOpenAI(api_key="sk-test", base_url="http://localhost:4000", max_retries=0)
    await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    event = recorder.one()
    assert event.provider == "litellm-proxy/openai" and event.cost_usd == Decimal("0.000125")


def test_litellm_proxy_stream_is_priced_by_us(recorder, http_mock):
    """A streamed call carries no cost header (headers go out first): tollmeter prices it."""
    http_mock.post("http://localhost:4000/chat/completions").respond(
        text=G.LITELLM_STREAM, headers=G.LITELLM_STREAM_HEADERS)
    stream = oai("http://localhost:4000").chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True})
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Paris is the capital."
    event = recorder.one()
    assert event.provider == "litellm-proxy/openai" and event.provider_cost_usd is None
    assert event.usage == Usage(input_tokens=14, output_tokens=7)
    assert event.cost_usd == (14 * Decimal("2.5") + 7 * Decimal(10)) / M
    assert event.price_source.startswith("genai-prices")


def test_anthropic_client_through_a_litellm_proxy(recorder, http_mock):
    http_mock.post("http://localhost:4000/v1/messages").respond(json=G.LITELLM_MESSAGE,
                                                              headers=G.LITELLM_MESSAGE_HEADERS)
    client = anthropic.Anthropic(api_key="sk-test", base_url="http://localhost:4000", max_retries=0)
    client.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=MESSAGES)
    event = recorder.one()
    assert event.provider == "litellm-proxy/anthropic"
    assert event.cost_usd == Decimal("0.0021102") and event.price_source == "provider"
    assert event.usage.input_tokens == 1200 and event.usage.cache_read_tokens == 1024


def test_a_server_on_localhost_without_gateway_headers_stays_self_hosted(recorder, http_mock):
    http_mock.post("http://localhost:8000/v1/chat/completions").respond(json=G.OPENAI_CHAT)
    oai("http://localhost:8000/v1").chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    event = recorder.one()
    assert event.provider == "self-hosted"
    assert event.price_source.endswith(INFERRED) and event.price_model == "openai/gpt-4o-mini"


def test_an_open_model_on_a_gateway_stays_unpriced(recorder, http_mock):
    http_mock.post("http://localhost:4000/chat/completions").respond(
        json=G.LLAMA_CHAT, headers={k: v for k, v in G.LITELLM_HEADERS.items() if k != "x-litellm-response-cost"}
        | {"x-litellm-model-api-base": "http://vllm.internal:8000/v1"})
    oai("http://localhost:4000").chat.completions.create(model="llama-3.3-70b", messages=MESSAGES)
    event = recorder.one()
    assert event.provider == "litellm-proxy"  # its upstream is no vendor's API
    assert not event.priced and event.cost_usd is None


# -- Cloudflare AI Gateway -------------------------------------------------------------------------

CF = "https://gateway.ai.cloudflare.com/v1/3f9a1c7e5b2d4a6c8e0f1a2b3c4d5e6f/prod-gateway"


def test_cloudflare_openai_route(recorder, http_mock):
    http_mock.post(f"{CF}/openai/chat/completions").respond(json=G.OPENAI_CHAT, headers=G.CLOUDFLARE_HEADERS)
    oai(f"{CF}/openai").chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    event = recorder.one()
    assert event.provider == "cloudflare-ai-gateway/openai"  # the /openai path segment
    assert event.price_model == "openai/gpt-4o-mini" and not event.price_source.endswith(INFERRED)
    assert event.cost_usd == (19 * Decimal("0.15") + 10 * Decimal("0.6")) / M


def test_cloudflare_openai_stream_is_asked_for_its_usage(recorder, http_mock):
    """Cloudflare passes the request to OpenAI as written: the stream is asked for its usage as
    OpenAI's is, and the extra chunk stays hidden from the caller."""
    asked = []

    def respond(request):
        options = json.loads(request.content).get("stream_options") or {}
        asked.append(options.get("include_usage"))
        body = G.CLOUDFLARE_STREAM if options.get("include_usage") else G.CLOUDFLARE_STREAM_NO_USAGE
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    http_mock.post(f"{CF}/openai/chat/completions").mock(side_effect=respond)
    chunks = list(oai(f"{CF}/openai").chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert asked == [True] and all(c.choices for c in chunks)  # the usage chunk is not the caller's
    event = recorder.one()
    assert event.usage.input_tokens == 19 and event.usage.output_tokens == 10 and event.priced


def test_cloudflare_unified_endpoint_names_the_provider_in_the_model(recorder, http_mock):
    http_mock.post(f"{CF}/compat/chat/completions").respond(
        json={**G.OPENAI_CHAT, "model": "openai/gpt-4o-mini"}, headers=G.CLOUDFLARE_HEADERS)
    oai(f"{CF}/compat").chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES)
    event = recorder.one()
    assert event.provider == "cloudflare-ai-gateway"
    assert event.price_model == "openai/gpt-4o-mini" and event.price_source.endswith(INFERRED)


def test_cloudflare_anthropic_route(recorder, http_mock):
    http_mock.post(f"{CF}/anthropic/v1/messages").respond(json=G.HELICONE_MESSAGE, headers=G.CLOUDFLARE_HEADERS)
    client = anthropic.Anthropic(api_key="sk-ant-test", base_url=f"{CF}/anthropic", max_retries=0)
    client.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=MESSAGES)
    event = recorder.one()
    assert event.provider == "cloudflare-ai-gateway/anthropic"
    assert event.price_model == "anthropic/claude-haiku-4-5" and event.priced


# -- Portkey ----------------------------------------------------------------------------------------


def test_portkey_upstream_from_its_provider_header(recorder, http_mock):
    http_mock.post("https://api.portkey.ai/v1/chat/completions").respond(
        json=G.PORTKEY_ANTHROPIC_CHAT, headers=G.PORTKEY_HEADERS)
    client = oai("https://api.portkey.ai/v1", default_headers={"x-portkey-api-key": "pk-test",
                                                                "x-portkey-provider": "anthropic"})
    client.chat.completions.create(model="claude-sonnet-4-5-20250929", messages=MESSAGES, max_tokens=64)
    event = recorder.one()
    assert event.provider == "portkey/anthropic"
    assert event.price_model == "anthropic/claude-sonnet-4-5" and not event.price_source.endswith(INFERRED)
    assert event.cost_usd == (31 * Decimal(3) + 12 * Decimal(15)) / M


def test_portkey_model_catalog_slug_is_inferred(recorder, http_mock):
    http_mock.post("https://api.portkey.ai/v1/chat/completions").respond(json=G.OPENAI_CHAT, headers=G.PORTKEY_HEADERS)
    client = oai("https://api.portkey.ai/v1", default_headers={"x-portkey-api-key": "pk-test"})
    client.chat.completions.create(model="@openai-prod/gpt-4o-mini", messages=MESSAGES)
    event = recorder.one()
    assert event.provider == "portkey" and event.request_model == "@openai-prod/gpt-4o-mini"
    assert event.price_model == "openai/gpt-4o-mini" and event.price_source.endswith(INFERRED)


# -- Helicone, Vercel, Azure API Management, a company proxy -----------------------------------------


def test_helicone_anthropic_host(recorder, http_mock):
    http_mock.post("https://anthropic.helicone.ai/v1/messages").respond(
        json=G.HELICONE_MESSAGE, headers=G.HELICONE_HEADERS)
    client = anthropic.Anthropic(api_key="sk-ant-test", base_url="https://anthropic.helicone.ai",
                                 default_headers={"Helicone-Auth": "Bearer sk-helicone-test"}, max_retries=0)
    client.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=MESSAGES)
    event = recorder.one()
    assert event.provider == "helicone/anthropic"
    assert event.cost_usd == (25 * Decimal(1) + 9 * Decimal(5)) / M and event.price_model == "anthropic/claude-haiku-4-5"


def test_helicone_openai_host(recorder, http_mock):
    http_mock.post("https://oai.helicone.ai/v1/chat/completions").respond(json=G.OPENAI_CHAT)
    oai("https://oai.helicone.ai/v1").chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert recorder.one().provider == "helicone/openai"


def test_vercel_ai_gateway(recorder, http_mock):
    http_mock.post("https://ai-gateway.vercel.sh/v1/chat/completions").respond(json=G.VERCEL_CHAT)
    oai("https://ai-gateway.vercel.sh/v1").chat.completions.create(model="anthropic/claude-sonnet-4.5",
                                                                    messages=MESSAGES)
    event = recorder.one()
    assert event.provider == "vercel-ai-gateway"
    assert event.price_model == "anthropic/claude-sonnet-4-5" and event.price_source.endswith(INFERRED)
    assert event.cost_usd == (40 * Decimal(3) + 6 * Decimal(15)) / M


def test_azure_api_management(recorder, http_mock):
    http_mock.post(url__regex=r"https://contoso-apim\.azure-api\.net/openai/deployments/gpt-4o-mini/chat/completions.*"
                   ).respond(json=G.OPENAI_CHAT)
    client = openai.AzureOpenAI(api_key="k", api_version="2024-10-21", azure_endpoint="https://contoso-apim.azure-api.net",
                                max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    event = recorder.one()
    assert event.provider == "azure" and event.priced and not event.price_source.endswith(INFERRED)


def test_company_proxy(recorder, http_mock):
    http_mock.post("https://llm-proxy.corp.example.com/v1/chat/completions").respond(json=G.OPENAI_CHAT)
    http_mock.post("https://llm-proxy.corp.example.com/v2/chat/completions").respond(json=G.LLAMA_CHAT)
    oai("https://llm-proxy.corp.example.com/v1").chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    oai("https://llm-proxy.corp.example.com/v2").chat.completions.create(
        model="meta-llama/Llama-3.3-70B-Instruct", messages=MESSAGES)
    first, second = recorder.recorded()
    assert first.provider == second.provider == "openai-compatible"
    assert first.priced and first.price_source.endswith(INFERRED) and first.price_model == "openai/gpt-4o-mini"
    assert not second.priced  # an open model: your own rate card prices it


# -- limits reserve at the inferred price ---------------------------------------------------------


def test_the_guard_reserves_a_gateway_call_at_the_inferred_price(http_mock):
    """With unpriced calls blocked, a call the guard cannot price is refused: the gateway's
    gpt-4o-mini goes out (the guard asked the pricer's match, which inferred it), an open
    model does not."""
    rec = Recorder(unpriced_calls="block", limits_wait=30)  # waits for the store, never fails open
    rec.meter.patch("openai")
    try:
        rec.meter.set_limit("acme", limit_usd=5, frequency="per_day")
        http_mock.post("http://localhost:4000/chat/completions").respond(json=G.OPENAI_CHAT)
        client = oai("http://localhost:4000")
        with rec.meter.for_tenant("acme"):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=100)
            with pytest.raises(LimitExceededException):
                client.chat.completions.create(model="qwen2.5-72b-instruct", messages=MESSAGES, max_tokens=100)
        event = rec.one()
        assert event.tenant_id == "acme" and event.price_source.endswith(INFERRED)
    finally:
        rec.meter.shutdown()


def test_inference_can_be_turned_off(http_mock):
    """MeterConfig(infer_prices=False): a gateway or proxy call is unpriced (and a limit
    reserves it as unpriced_calls says); a vendor's own API, and a gateway that names its
    upstream, are still priced: that is not inference."""
    rec = Recorder(infer_prices=False, unpriced_calls="block", limits_wait=30)
    rec.meter.patch_all()
    try:
        http_mock.post("http://localhost:4000/chat/completions").respond(json=G.OPENAI_CHAT)
        http_mock.post("https://llm-proxy.corp.example.com/v1/chat/completions").respond(json=G.OPENAI_CHAT)
        http_mock.post("https://api.openai.com/v1/chat/completions").respond(json=G.OPENAI_CHAT)
        http_mock.post(f"{CF}/openai/chat/completions").respond(json=G.OPENAI_CHAT, headers=G.CLOUDFLARE_HEADERS)
        oai("http://localhost:4000").chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        oai("https://llm-proxy.corp.example.com/v1").chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        oai("https://api.openai.com/v1").chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        oai(f"{CF}/openai").chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        local, proxy, direct, cloudflare = rec.recorded()
        assert (local.provider, local.priced, local.cost_usd) == ("self-hosted", False, None)
        assert (proxy.provider, proxy.priced, proxy.cost_usd) == ("openai-compatible", False, None)
        assert direct.provider == "openai" and direct.priced and not direct.price_source.endswith(INFERRED)
        assert cloudflare.provider == "cloudflare-ai-gateway/openai" and cloudflare.priced
        assert not cloudflare.price_source.endswith(INFERRED)
        # Limits: the proxy's gpt-4o-mini has no price now, so "block" refuses it before sending.
        rec.meter.set_limit("acme", limit_usd=5, frequency="per_day")
        with rec.meter.for_tenant("acme"), pytest.raises(LimitExceededException):
            oai("https://llm-proxy.corp.example.com/v1").chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, max_tokens=10)
        assert len(http_mock.calls) == 4
    finally:
        rec.meter.shutdown()


# -- self-hosted open models ------------------------------------------------------------------------

#: Ollama's OpenAI-compatible endpoint (`ollama serve`, port 11434), a model pulled as llama3.2:3b.
OLLAMA_CHAT = {
    "id": "chatcmpl-417", "object": "chat.completion", "created": 1795700090, "model": "llama3.2:3b",
    "system_fingerprint": "fp_ollama",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 33, "completion_tokens": 3, "total_tokens": 36},
}


@pytest.mark.parametrize("base_url, body", [
    ("http://localhost:11434/v1", OLLAMA_CHAT),  # Ollama
    ("http://10.0.4.17:8000/v1", G.LLAMA_CHAT),  # vLLM on a private network
    ("http://vllm.internal:8000/v1", G.LLAMA_CHAT),
], ids=["ollama", "vllm_private_ip", "vllm_internal_host"])
def test_a_self_hosted_open_model_stays_unpriced(recorder, http_mock, base_url, body):
    http_mock.post(f"{base_url}/chat/completions").respond(json=body)
    oai(base_url).chat.completions.create(model=body["model"], messages=MESSAGES)
    event = recorder.one()
    assert event.provider == "self-hosted" and event.model == body["model"]
    assert not event.priced and event.cost_usd is None and event.price_model is None
    assert event.usage.input_tokens == body["usage"]["prompt_tokens"]


def test_anthropic_client_through_a_company_proxy(recorder, http_mock):
    """An Anthropic-compatible proxy of unknown host: claude-haiku-4-5 priced as Anthropic's."""
    http_mock.post("https://llm-proxy.corp.example.com/anthropic/v1/messages").respond(json=G.HELICONE_MESSAGE)
    client = anthropic.Anthropic(api_key="sk-ant-test", base_url="https://llm-proxy.corp.example.com/anthropic",
                                 max_retries=0)
    client.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=MESSAGES)
    event = recorder.one()
    assert event.provider == "anthropic-compatible"
    assert event.price_model == "anthropic/claude-haiku-4-5" and event.price_source.endswith(INFERRED)
    assert event.cost_usd == (25 * Decimal(1) + 9 * Decimal(5)) / M


def test_pricer_inference_setting():
    usage = Usage(input_tokens=1000, output_tokens=100)
    assert Pricer().quote("openai-compatible", "gpt-4o", usage) is not None
    off = Pricer(infer_prices=False)
    assert off.quote("openai-compatible", "gpt-4o", usage) is None
    assert off.quote("self-hosted", "claude-sonnet-4-5", usage) is None
    # Known providers and gateways that name their upstream are not inference: still priced.
    assert off.quote("openai", "gpt-4o", usage) is not None
    assert off.quote("cloudflare-ai-gateway/openai", "gpt-4o", usage) is not None


@pytest.mark.parametrize("model, vendor", [
    ("gpt-4o", "openai/gpt-4o"),
    ("gpt-4o-2024-08-06", "openai/gpt-4o"),
    ("o3-mini", "openai/o3-mini"),
    ("text-embedding-3-small", "openai/text-embedding-3-small"),
    ("claude-sonnet-4-5", "anthropic/claude-sonnet-4-5"),
    ("claude-sonnet-4.5", "anthropic/claude-sonnet-4-5"),
    ("gemini-2.5-flash", "google/gemini-2.5-flash"),
    ("mistral-large-latest", "mistral/mistral-large"),
    ("deepseek-chat", "deepseek/deepseek-chat"),
    ("openai/gpt-4o-mini", "openai/gpt-4o-mini"),
    ("google-ai-studio/gemini-2.5-flash", "google/gemini-2.5-flash"),
    ("@openai-prod/gpt-4o", "openai/gpt-4o"),
    # Open weights, self-hostable under these very ids: never inferred.
    ("gpt-oss-120b", None),
    ("openai/gpt-oss-20b", None),
    ("llama-3.3-70b-instruct", None),
    ("meta-llama/Llama-3.3-70B-Instruct", None),
    ("Qwen/Qwen2.5-72B-Instruct", None),
    ("gemma-3-27b-it", None),
    ("mistral-small-latest", None),
    ("open-mistral-7b", None),
    ("mixtral-8x7b-instruct", None),
    ("deepseek-r1", None),
    ("deepseek-r1:14b", None),
    ("llama3:8b", None),
    ("kimi-k2", None),
])
def test_which_model_ids_are_inferred(model, vendor):
    match = Pricer().match("openai-compatible", model)
    assert (match.model if match else None) == vendor
    if match:
        assert match.source.endswith(INFERRED)


@pytest.mark.parametrize("environ, priced", [({}, True), ({"TOLLMETER_INFER_PRICES": "0"}, False)])
def test_the_server_infers_unless_told_not_to(tmp_path, environ, priced):
    """The server prices what arrives unpriced; with TOLLMETER_INFER_PRICES=0 it leaves a
    proxy's gpt-4o-mini unpriced, as an agent with infer_prices=False did."""
    from datetime import datetime, timezone

    from tollmeter.server.pricing import price_on_arrival
    from tollmeter.server.settings import ServerSettings
    from tollmeter.server.state import ServerState
    from tollmeter.server.validation import validate_event

    from .server_support import event as wire_event

    settings = ServerSettings.from_env({**environ, "TOLLMETER_DATABASE_URL": str(tmp_path / "server.db")})
    state = ServerState.open(settings)
    try:
        arrived = validate_event(wire_event(provider="openai-compatible", model="gpt-4o-mini",
                                            request_model="gpt-4o-mini"), datetime.now(timezone.utc))
        assert price_on_arrival(state.pricer, arrived) is priced
        if priced:
            assert arrived["price_source"].endswith(INFERRED) and arrived["cost_usd"] > 0
        else:
            assert arrived["cost_usd"] is None
    finally:
        state.close()
