"""Pricer: an exact, explained cost on every event.

Where a price comes from, in order: your rate card (an entry with prices), then the bundled
genai-prices data (with a rate card discount applied, if one matches). A cost the provider
reported itself (OpenRouter's `usage.cost`) or the caller passed (`track_manually(cost_usd=)`)
wins; the computed price is kept beside it. An unknown model is never $0: its event stays
unpriced (`priced=False`, `cost_usd=None`), a warning names it once per process, and
`stats()["unpriced"]` counts it. Runs on the background worker.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Mapping

from ..events import LLMEvent, Usage
from .bundled import BundledPrices
from .ratecard import RateCard
from .rates import InconsistentUsage, RateSheet, usage_counts

logger = logging.getLogger("tollmeter")

#: The price source of a cost the provider reported, and of one given to track_manually().
PROVIDER_SOURCE = "provider"
MANUAL_SOURCE = "manual"


@dataclass(frozen=True)
class PriceMatch:
    """The prices that apply to one (provider, model, tier, time)."""

    sheet: RateSheet
    source: str  # "genai-prices 0.2.3", "rate card rates.yaml:12", "... with a 15% discount"
    model: str  # the entry that matched, "openai/gpt-4o"


@dataclass(frozen=True)
class Quote:
    cost_usd: Decimal
    match: PriceMatch


class Pricer:
    def __init__(self, rate_card: RateCard | None = None, bundled: BundledPrices | None = None) -> None:
        self.rate_card = rate_card
        self._bundled = bundled
        self._lock = threading.Lock()
        self._warned: set[tuple[str | None, str | None]] = set()
        self._recent: dict[tuple, PriceMatch] = {}
        self._source_seen: str | None = None
        self.unpriced = 0

    @property
    def bundled(self) -> BundledPrices:
        if self._bundled is None:  # genai-prices takes a few hundred ms to import: only when needed
            self._bundled = BundledPrices()
        return self._bundled

    def match(self, provider: str | None, model: str, *, timestamp: datetime | None = None,
              service_tier: str | None = None) -> PriceMatch | None:
        timestamp = timestamp or datetime.now(timezone.utc)
        # Prices change at most at a minute boundary (dated prices, time-of-day discounts).
        key = (provider, model, service_tier, int(timestamp.timestamp()) // 60)
        match = self._recent.get(key)
        if match is not None and self._source_seen is self.bundled.source:
            return match
        entry = self.rate_card.find(provider, model) if self.rate_card else None
        if entry is not None and entry.sheet is not None:
            sheet = entry.sheet.scaled(1 - entry.discount) if entry.discount else entry.sheet
            match = PriceMatch(sheet, f"rate card {entry.origin}", entry.label)
            self._remember(key, match)
            return match
        found = self.bundled.find(provider, model)
        if found is None:
            return None
        genai_provider, genai_model = found
        sheet = self.bundled.sheet(found, timestamp, service_tier)
        source = self.bundled.source
        if entry is not None and entry.discount:
            sheet = sheet.scaled(1 - entry.discount)
            source += f" with a {(entry.discount * 100).normalize():f}% discount ({entry.origin})"
        match = PriceMatch(sheet, source, f"{genai_provider.id}/{genai_model.id}")
        self._remember(key, match)
        return match

    def _remember(self, key: tuple, match: PriceMatch) -> None:
        """Matches are kept per (provider, model, tier, minute) until the data is refreshed."""
        if self._source_seen is not self.bundled.source:
            self._recent.clear()
            self._source_seen = self.bundled.source
        if len(self._recent) > 4096:
            self._recent.clear()
        self._recent[key] = match

    def quote(self, provider: str | None, model: str | None, usage: Usage, *,
              timestamp: datetime | None = None, service_tier: str | None = None,
              web_searches: int | None = None, units: Mapping[str, float] | None = None,
              request_model: str | None = None) -> Quote | None:
        """The cost of `usage`; None when no price is known for the model."""
        for candidate in dict.fromkeys(m for m in (model, request_model) if m):
            match = self.match(provider, candidate, timestamp=timestamp, service_tier=service_tier)
            if match is not None:
                counts = usage_counts(usage, web_searches=web_searches, units=units)
                if not match.sheet.covers(counts):
                    return None  # e.g. characters reported for a model priced per token
                return Quote(match.sheet.cost(counts), match)
        return None

    def price(self, event: LLMEvent) -> None:
        """Fill in the event's cost and its provenance. Never raises."""
        reported = event.provider_cost_usd
        try:
            quote = self._quote_event(event)
        except InconsistentUsage as exc:
            logger.warning("tollmeter: cannot price %s/%s: %s", event.provider, event.model, exc)
            quote = None
        if quote is not None:
            event.computed_cost_usd = quote.cost_usd
            event.price_model = quote.match.model
        if reported is not None:
            event.cost_usd = reported
            event.priced = True
            event.price_source = event.price_source or PROVIDER_SOURCE
        elif quote is not None:
            event.cost_usd = quote.cost_usd
            event.priced = True
            event.price_source = quote.match.source
        elif event.usage.is_empty() and event.error is not None and not event.partial:
            # Refused before any usage (a 429, a 400): nothing was billed.
            event.cost_usd = Decimal(0)
            event.priced = True
            event.price_source = "nothing billed"
        else:
            event.priced = False
            event.cost_usd = None
            self._unpriced(event)

    def _quote_event(self, event: LLMEvent) -> Quote | None:
        if event.usage.is_empty() and not event.web_search_requests and not event.units:
            return None  # nothing reported to price
        return self.quote(
            event.provider, event.model, event.usage, timestamp=event.timestamp,
            service_tier=event.service_tier, web_searches=event.web_search_requests, units=event.units,
            request_model=event.request_model,
        )

    def _unpriced(self, event: LLMEvent) -> None:
        key = (event.provider, event.model or event.request_model)
        with self._lock:
            self.unpriced += 1
            first = key not in self._warned
            self._warned.add(key)
        if not first:
            return
        if event.usage.is_empty():
            logger.warning(
                "tollmeter: %s returned no usage for %r: its calls are recorded unpriced",
                event.provider, key[1],
            )
        else:
            logger.warning(
                "tollmeter: no price for model %r (provider %r): its calls are recorded unpriced. "
                "Add it to your rate card, e.g. MeterConfig(prices={'models': [{'model': %r, "
                "'provider': %r, 'input_mtok': ..., 'output_mtok': ...}]}); see docs/pricing.md",
                key[1], event.provider, key[1], event.provider,
            )


def load_pricer(prices: Any) -> Pricer:
    """A Pricer for `MeterConfig(prices=...)`: a rate card path, dict or list, or None."""
    return Pricer(RateCard.load(prices) if prices is not None else None)
