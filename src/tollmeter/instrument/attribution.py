"""Which provider a client talks to, from its base URL.

The `openai` client is used for many OpenAI-compatible APIs (Azure, DeepSeek, OpenRouter, Groq,
Together, a local vLLM, ...), and the `anthropic` client for a few Anthropic-compatible ones.
The provider is what pricing and reports need, so it is read from the base URL, once per URL.
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
    host = (urlsplit(url).hostname or "").lower()
    if not host:
        return default
    for suffix, provider in _HOST_SUFFIXES:
        if host == suffix or host.endswith("." + suffix):
            return provider
    if _BEDROCK.search(host):
        return "aws"
    if _is_local(host):
        return SELF_HOSTED
    # Some other host speaking this SDK's protocol: a gateway or proxy we do not know.
    return f"{default}-compatible"


def _is_local(host: str) -> bool:
    if host == "localhost" or host.endswith((".local", ".internal", ".localhost")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_loopback
