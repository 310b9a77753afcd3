"""Prices from genai-prices (Pydantic's price data), bundled with the installed package.

No network at import or pricing time. `refresh()` may fetch newer data on request; when it
fails, the bundled prices stay. Lookups are cached per (provider, model); compiled sheets per
(provider, model, service tier, price period).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

import genai_prices
from genai_prices import data_snapshot

from .rates import RateSheet, sheet_from_model_price

logger = logging.getLogger("tollmeter")

#: tollmeter provider id -> genai-prices provider id; None: find the model by its name alone.
_PROVIDER_IDS: dict[str, str | None] = {
    "google-vertex": "google",
    "openai-compatible": None,
    "anthropic-compatible": None,
}
#: Providers the bundled data must not price: your own servers cost what your rate card says.
NOT_BUNDLED = frozenset({"self-hosted"})


class BundledPrices:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[tuple[str | None, str], Any] = {}
        self._sheets: dict[tuple, RateSheet] = {}
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
        for pid in (provider_id, None) if provider_id else (None,):
            try:
                found = snapshot.find_provider_model(model, None, pid, None)
                break
            except LookupError:
                # A provider genai-prices does not know (a gateway we attributed): by name alone.
                if pid is None or _knows_provider(snapshot, pid):
                    break
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
            self.source = f"genai-prices data fetched {snapshot.timestamp.isoformat(timespec='seconds')}"
        return True


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
