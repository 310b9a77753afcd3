"""Which provider a client talks to, from its base URL.

The `openai` client is used for many OpenAI-compatible APIs (Azure, DeepSeek, OpenRouter, Groq,
Together, a local vLLM, ...), and the `anthropic` client for a few Anthropic-compatible ones.
The provider is what pricing and reports need, so it is read from the base URL, once per URL.

A known gateway is attributed to itself, with the upstream provider after a slash where the
URL says it: `cloudflare-ai-gateway/openai` (Cloudflare's `/openai` path segment),
`helicone/anthropic` (anthropic.helicone.ai); `portkey`, `helicone`, `vercel-ai-gateway` and
`cloudflare-ai-gateway` alone when the model id says it (`openai/gpt-4o`). Pricing takes the
upstream's prices, or infers the model's vendor from its id. A LiteLLM proxy has no host of its
own: it is recognised by its response headers (`gateway_from_headers`), as is Portkey's upstream.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import Mapping
from urllib.parse import urlsplit

# Host suffix -> provider id (the ids genai-prices uses, so that prices can be looked up).
_HOST_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("api.openai.com", "openai"),
    ("openai.azure.com", "azure"),
    ("services.ai.azure.com", "azure"),
    ("cognitiveservices.azure.com", "azure"),
    ("azure-api.net", "azure"),
    ("api.anthropic.com", "anthropic"),
    ("api.deepseek.com", "deepseek"),
    ("openrouter.ai", "openrouter"),
    ("api.groq.com", "groq"),
    ("api.together.xyz", "together"),
    ("api.together.ai", "together"),
    ("api.fireworks.ai", "fireworks"),
    ("api.mistral.ai", "mistral"),
    ("api.x.ai", "x-ai"),
    ("api.perplexity.ai", "perplexity"),
    ("api.cerebras.ai", "cerebras"),
    ("api.cohere.ai", "cohere"),
    ("api.cohere.com", "cohere"),
    ("generativelanguage.googleapis.com", "google"),
    ("aiplatform.googleapis.com", "google-vertex"),
    ("api.moonshot.ai", "moonshotai"),
    ("api.moonshot.cn", "moonshotai"),
    ("api.minimax.io", "minimax"),
    ("api.z.ai", "zai"),
    ("router.huggingface.co", "huggingface"),
    ("inference.baseten.co", "baseten"),
    ("api.novita.ai", "novita"),
)
_BEDROCK = re.compile(r"bedrock(-runtime)?(-fips)?\.[a-z0-9-]+\.amazonaws\.com$")

#: Host suffix -> gateway attribution (checked before the providers' hosts).
_GATEWAY_HOSTS: tuple[tuple[str, str], ...] = (
    ("gateway.ai.cloudflare.com", "cloudflare-ai-gateway"),
    ("api.portkey.ai", "portkey"),
    ("oai.helicone.ai", "helicone/openai"),
    ("oai.hconeai.com", "helicone/openai"),
    ("anthropic.helicone.ai", "helicone/anthropic"),
    ("anthropic.hconeai.com", "helicone/anthropic"),
    ("groq.helicone.ai", "helicone/groq"),
    ("helicone.ai", "helicone"),  # gateway.helicone.ai, ai-gateway.helicone.ai
    ("ai-gateway.vercel.sh", "vercel-ai-gateway"),
)
#: Cloudflare AI Gateway URLs are /v1/{account}/{gateway}/{provider}/...: provider segment ->
#: upstream provider (`compat`, the unified endpoint, names it in the model id instead).
CLOUDFLARE_UPSTREAMS = {
    "openai": "openai", "anthropic": "anthropic", "google-ai-studio": "google", "google-vertex-ai": "google-vertex",
    "aws-bedrock": "aws", "azure-openai": "azure", "groq": "groq", "deepseek": "deepseek", "mistral": "mistral",
    "openrouter": "openrouter", "workers-ai": "cloudflare", "cerebras": "cerebras", "perplexity-ai": "perplexity",
    "grok": "x-ai", "cohere": "cohere", "huggingface": "huggingface",
}
#: Portkey's `x-portkey-provider` request header -> upstream provider.
PORTKEY_UPSTREAMS = {
    "openai": "openai", "anthropic": "anthropic", "google": "google", "vertex-ai": "google-vertex",
    "bedrock": "aws", "azure-openai": "azure", "groq": "groq", "mistral-ai": "mistral", "deepseek": "deepseek",
    "together-ai": "together", "fireworks-ai": "fireworks", "cohere": "cohere", "perplexity-ai": "perplexity",
    "x-ai": "x-ai", "openrouter": "openrouter", "cerebras": "cerebras",
}
#: A LiteLLM proxy, recognised by its `x-litellm-*` response headers.
LITELLM_PROXY = "litellm-proxy"
GATEWAYS = frozenset({"cloudflare-ai-gateway", "portkey", "helicone", "vercel-ai-gateway", LITELLM_PROXY})

#: Attribution of a server on this machine or a private network (vLLM, Ollama, LM Studio, ...).
SELF_HOSTED = "self-hosted"


def provider_for_base_url(
    base_url: object, default: str, overrides: Mapping[str, str] | None = None
) -> str:
    url = str(base_url)
    if overrides:
        for prefix, provider in overrides.items():
            if url.startswith(prefix):
                return provider
    return _from_host(url, default)


@lru_cache(maxsize=256)
def _from_host(url: str, default: str) -> str:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        return default
    for suffix, gateway in _GATEWAY_HOSTS:
        if host == suffix or host.endswith("." + suffix):
            if gateway == "cloudflare-ai-gateway":
                segments = [s for s in parts.path.split("/") if s]
                upstream = CLOUDFLARE_UPSTREAMS.get(segments[3]) if len(segments) > 3 else None
                return f"{gateway}/{upstream}" if upstream else gateway
            return gateway
    for suffix, provider in _HOST_SUFFIXES:
        if host == suffix or host.endswith("." + suffix):
            return provider
    if _BEDROCK.search(host):
        return "aws"
    if _is_local(host):
        return SELF_HOSTED
    # Some other host speaking this SDK's protocol: a gateway or proxy we do not know.
    return f"{default}-compatible"


#: Every provider the base URL alone attributes to a vendor's own API.
KNOWN_PROVIDERS = frozenset(p for _, p in _HOST_SUFFIXES) | {"aws"}


def may_be_gateway(provider: str) -> bool:
    """Whether a call to this provider may pass a gateway whose response headers say more
    (a LiteLLM proxy, Portkey's upstream): anything but a vendor's own API."""
    return provider not in KNOWN_PROVIDERS


def gateway_from_headers(provider: str, headers: Mapping[str, str], request_headers: Mapping[str, str] | None,
                         ) -> str | None:
    """The attribution a response's headers reveal, or None: a LiteLLM proxy (`x-litellm-*`),
    with the upstream its `x-litellm-model-api-base` names; Portkey's upstream from the
    `x-portkey-provider` the request carried."""
    if headers.get("x-litellm-call-id") is not None or headers.get("x-litellm-model-id") is not None \
            or headers.get("x-litellm-response-cost") is not None or headers.get("x-litellm-version") is not None:
        api_base = headers.get("x-litellm-model-api-base")
        upstream = _from_host(api_base, "") if api_base else ""
        return f"{LITELLM_PROXY}/{upstream}" if upstream in KNOWN_PROVIDERS else LITELLM_PROXY
    if provider == "portkey" and request_headers is not None:
        upstream = PORTKEY_UPSTREAMS.get((request_headers.get("x-portkey-provider") or "").lower())
        if upstream:
            return f"portkey/{upstream}"
    return None


def upstream_of(provider: str | None) -> str | None:
    """The upstream provider of a gateway attribution (`helicone/openai` -> `openai`)."""
    if not provider or "/" not in provider:
        return None
    return provider.split("/", 1)[1] or None


def _is_local(host: str) -> bool:
    if host == "localhost" or host.endswith((".local", ".internal", ".localhost")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_loopback
