"""Prices from genai-prices (Pydantic's price data), bundled with the installed package.

No network at import or pricing time. `refresh()` may fetch newer data on request; when it
fails, the bundled prices stay. Lookups are cached per (provider, model); compiled sheets per
(provider, model, service tier, price period).

`find` looks a model up at a provider the data knows. `infer` is for a call whose host the data
does not know (a gateway, a proxy, a server on your network): it names a model only when the
model id is unambiguously one vendor's own (`gpt-4o`, `claude-sonnet-4-5`, `gemini-2.5-flash`,
`openai/gpt-4o` as gateways write it), never a model with open weights that anyone can serve
(`OPEN_WEIGHTS`: llama, qwen, gemma, gpt-oss, Mistral's open models, DeepSeek's weights, ...).
"""

from __future__ import annotations

import logging
import re
import threading
from datetime import datetime
from typing import Any

import genai_prices
from genai_prices import data_snapshot

from .rates import RateSheet, sheet_from_model_price

logger = logging.getLogger("tollmeter")

#: tollmeter provider id -> genai-prices provider id.
_PROVIDER_IDS: dict[str, str] = {
    "google-vertex": "google",
}
#: Providers the bundled data never prices by provider: a server on your own network is not a
#: vendor's API (its calls may still be priced by `infer`, from an unambiguous model id).
NOT_BUNDLED = frozenset({"self-hosted"})

#: The vendors whose model ids `infer` may recognise (genai-prices provider ids): each sells its
#: own models under ids nobody else uses. Moonshot, MiniMax and Zhipu are left out: their
#: current models have open weights and are served under the same ids by others.
FIRST_PARTY = frozenset({"openai", "anthropic", "google", "x-ai", "mistral", "cohere", "deepseek", "voyageai",
                         "cloudflare", "elevenlabs", "meta", "databricks", "cursor"})
#: Model ids of open-weight models (self-hostable under the same name): never inferred.
OPEN_WEIGHTS = re.compile(
    r"gpt-oss|llama|qwen|gemma|phi-?\d|mixtral|open-mi[sx]tral|mistral-(?:7b|nemo|small|tiny)|ministral|"
    r"(?:devstral|magistral|voxtral)-(?:small|mini)|pixtral-12b|codestral-mamba|mathstral|distill|olmo|falcon|"
    r"c4ai-|command-r7b|aya-|grok-[12](?:$|[^.\d])")
#: DeepSeek's API names; its other ids (deepseek-r1, deepseek-v3, ...) name open weights.
DEEPSEEK_API = frozenset({"deepseek-chat", "deepseek-reasoner"})
#: The provider prefix of a gateway's "provider/model" id -> genai-prices provider id.
MODEL_PREFIXES = {
    "openai": "openai", "azure": "openai", "anthropic": "anthropic", "google": "google", "gemini": "google",
    "google-ai-studio": "google", "vertex_ai": "google", "vertex-ai": "google", "x-ai": "x-ai", "xai": "x-ai",
    "mistral": "mistral", "mistralai": "mistral", "cohere": "cohere", "deepseek": "deepseek",
}
#: An Ollama tag ("llama3:8b", "gpt-oss:20b"): a model pulled onto someone's own machine.
_OLLAMA_TAG = re.compile(r"^[^:/]+:[^:/]+$")


class BundledPrices:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[tuple[str | None, str], Any] = {}
        self._sheets: dict[tuple, RateSheet] = {}
        self._known: dict[str, bool] = {}
        self.source = f"genai-prices {genai_prices.__version__}"

    def find(self, provider: str | None, model: str) -> tuple[Any, Any] | None:
        """(genai provider, genai model) for a model id, or None when the data has no price for it."""
        if provider in NOT_BUNDLED:
            return None
        provider_id = _PROVIDER_IDS.get(provider, provider) if provider else None
        key = (provider_id, model)
        try:
            return self._models[key]
        except KeyError:
            pass
        snapshot = data_snapshot.get_snapshot()
        found = None
        # No provider (track_manually without one): by the model's name alone. A provider the
        # data does not know: nothing here (the pricer may `infer`).
        if provider_id is None or _knows_provider(snapshot, provider_id):
            try:
                found = snapshot.find_provider_model(model, None, provider_id, None)
            except LookupError:
                pass
        with self._lock:
            self._models[key] = found
        return found

    def knows(self, provider: str) -> bool:
        """Whether the data has prices of this provider's own (so a lookup there is not a guess)."""
        known = self._known.get(provider)
        if known is None:
            known = provider not in NOT_BUNDLED and _knows_provider(
                data_snapshot.get_snapshot(), _PROVIDER_IDS.get(provider, provider))
            self._known[provider] = known
        return known

    def infer(self, model: str) -> tuple[Any, Any] | None:
        """(genai provider, genai model) for a model id that names one vendor's own model
        unambiguously, whoever served the call; None for anything else (see `FIRST_PARTY`,
        `OPEN_WEIGHTS`)."""
        key = ("?inferred", model)
        try:
            return self._models[key]
        except KeyError:
            pass
        found = _infer(data_snapshot.get_snapshot(), model)
        with self._lock:
            self._models[key] = found
        return found

    def sheet(self, found: tuple[Any, Any], timestamp: datetime, service_tier: str | None) -> RateSheet:
        provider, model = found
        context = _price_context(service_tier)
        key = (provider.id, model.id, service_tier, _period(model, timestamp))
        sheet = self._sheets.get(key)
        if sheet is None:
            if context and not any(model is m for m in provider.models):
                prices = model.get_prices(timestamp)  # a model borrowed from another provider
            else:
                prices = model.get_prices(timestamp, context)
            sheet = sheet_from_model_price(prices)
            with self._lock:
                if len(self._sheets) > 4096:
                    self._sheets.clear()
                self._sheets[key] = sheet
        return sheet

    def refresh(self, timeout: float = 10.0) -> bool:
        """Fetch the newest genai-prices data. False (bundled prices kept) when that fails."""
        from genai_prices.update_prices import UpdatePrices

        try:
            import httpx2

            updater = UpdatePrices(request_timeout=httpx2.Timeout(timeout=timeout, connect=min(5.0, timeout)))
            snapshot = updater.fetch()
        except Exception as exc:  # network, HTTP status, bad JSON: keep what we have
            logger.warning("tollmeter: could not refresh prices (%s); keeping %s", exc, self.source)
            return False
        if snapshot is None:
            return False
        data_snapshot.set_custom_snapshot(snapshot)
        with self._lock:
            self._models.clear()
            self._sheets.clear()
            self._known.clear()
            self.source = f"genai-prices data fetched {snapshot.timestamp.isoformat(timespec='seconds')}"
        return True


def _infer(snapshot: Any, model: str) -> tuple[Any, Any] | None:
    ref = model.strip().lower()
    if not ref or (_OLLAMA_TAG.match(ref) and not ref.startswith("ft:")):
        return None
    provider_id = None
    if ref.startswith("@") and not ref.startswith("@cf/") and "/" in ref:
        ref = ref.split("/", 1)[1]  # Portkey's "@provider-slug/model"
    if "/" in ref and not ref.startswith("@cf/"):
        prefix, ref = ref.split("/", 1)
        provider_id = MODEL_PREFIXES.get(prefix)
        if provider_id is None:  # "meta-llama/Llama-3.3-70B-Instruct": a repository id, open weights
            return None
    found = None
    try:
        found = snapshot.find_provider_model(ref, None, provider_id, None)
    except LookupError:
        # No vendor's id pattern matched ("text-embedding-3-small"): the vendors' own lists.
        for provider in snapshot.providers:
            if provider.id in FIRST_PARTY and provider_id in (None, provider.id):
                match = provider.find_model(ref, all_providers=snapshot.providers)
                if match is not None:
                    found = (provider, match)
                    break
    if found is None:
        return None
    provider, match = found
    if provider.id not in FIRST_PARTY or OPEN_WEIGHTS.search(ref) or OPEN_WEIGHTS.search(match.id.lower()):
        return None
    if provider.id == "deepseek" and ref not in DEEPSEEK_API:
        return None
    return found


def _knows_provider(snapshot: Any, provider_id: str) -> bool:
    return any(p.id == provider_id for p in snapshot.providers)


def _price_context(service_tier: str | None) -> dict[str, str] | None:
    if not service_tier:
        return None
    if service_tier == "batch":
        return {"processing": "batch", "service_tier": service_tier}
    return {"service_tier": service_tier}


def _period(model: Any, timestamp: datetime) -> tuple:
    """Which of a model's dated or timed prices apply at `timestamp` (a cache key part)."""
    prices = model.prices
    active: list[int] = []
    if not isinstance(prices, list):
        if not model.price_variants:
            return ()
    else:
        active += [i for i, p in enumerate(prices) if p.constraint is not None and p.constraint.active(timestamp)]
    for i, variant in enumerate(model.price_variants or ()):
        if variant.constraint is not None and variant.constraint.active(timestamp):
            active.append(-1 - i)
    return tuple(active)
