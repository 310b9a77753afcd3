"""Pricer: an exact, explained cost on every event.

Where a price comes from, in order: your rate card (an entry with prices), then the bundled
genai-prices data (with a rate card discount applied, if one matches). A cost the provider
reported itself (OpenRouter's `usage.cost`, a LiteLLM proxy's `x-litellm-response-cost`) or the
caller passed (`track_manually(cost_usd=)`) wins; the computed price is kept beside it. An
unknown model is never $0: its event stays unpriced (`priced=False`, `cost_usd=None`), a warning
names it once per process, and `stats()["unpriced"]` counts it. Runs on the background worker.

Which prices of the bundled data apply:

- a provider the data knows (`openai`, `azure`, `groq`, ...): that provider's price of the model;
- a gateway that says its upstream (`cloudflare-ai-gateway/openai`, `helicone/anthropic`,
  `litellm-proxy/openai`): the upstream provider's price;
- any other host (`self-hosted`, `openai-compatible`, `portkey`, a name from
  `provider_overrides`, ...): the model's own vendor's price when the model id names it
  unambiguously (`gpt-4o`, `claude-sonnet-4-5`, `openai/gpt-4o`), with the price source saying
  `..., inferred from the model id` (`BundledPrices.infer`); a model with open weights (llama,
  qwen, gpt-oss, ...) stays unpriced until your rate card prices it. `infer_prices=False`
  turns the inference off: such calls stay unpriced;
- no provider at all (`track_manually` without one): the model by its name alone.

A reported audio count that the matched prices cannot price at a rate of its own is priced
from the tollmeter supplement (pricing/supplement.py), or the event is left unpriced: never at
the text rate.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Mapping

from ..events import LLMEvent, Usage
from . import supplement
from .bundled import BundledPrices
from .ratecard import RateCard
from .rates import InconsistentUsage, RateSheet, usage_counts

logger = logging.getLogger("tollmeter")

#: The price source of a cost the provider reported, and of one given to track_manually().
PROVIDER_SOURCE = "provider"
MANUAL_SOURCE = "manual"
#: Ends the price source of a price found from the model id alone (the host is not a vendor's).
INFERRED = ", inferred from the model id"


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
    def __init__(self, rate_card: RateCard | None = None, bundled: BundledPrices | None = None, *,
                 infer_prices: bool = True) -> None:
        self.rate_card = rate_card
        self._bundled = bundled
        #: Price a call to a host the data does not know by its model id, when that names one
        #: vendor's model unambiguously (see the module's doc).
        self.infer_prices = infer_prices
        self._lock = threading.Lock()
        self._warned: set[tuple[str | None, str | None]] = set()
        self._recent: dict[tuple, PriceMatch] = {}
        self._source_seen: str | None = None
        self.unpriced = 0
        self._completed: dict[tuple, PriceMatch] = {}
        #: `match_counts`' answers for events (`_matched`), and the data's source they were found in.
        self._matched: dict[tuple, tuple[PriceMatch | None, str | None]] = {}
        self._matched_source: str | None = None

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
        found, inferred = self._find(provider, model)
        if found is None:
            return None
        genai_provider, genai_model = found
        sheet = self.bundled.sheet(found, timestamp, service_tier)
        source = self.bundled.source + (INFERRED if inferred else "")
        if entry is not None and entry.discount:
            sheet = sheet.scaled(1 - entry.discount)
            source += f" with a {(entry.discount * 100).normalize():f}% discount ({entry.origin})"
        match = PriceMatch(sheet, source, f"{genai_provider.id}/{genai_model.id}")
        self._remember(key, match)
        return match

    def _find(self, provider: str | None, model: str) -> tuple[tuple[Any, Any] | None, bool]:
        """(genai provider and model, inferred from the model id?) in the bundled data."""
        bundled = self.bundled
        if provider is None:
            return bundled.find(None, model), False
        gateway, _, upstream = provider.partition("/")
        if upstream and bundled.knows(upstream):  # a gateway that says where it sends the call
            found = bundled.find(upstream, model)
            if found is not None:
                return found, False
        elif bundled.knows(provider):
            return bundled.find(provider, model), False
        if not self.infer_prices:
            return None, False
        found = bundled.infer(model)
        return found, found is not None

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
        cost, match, _ = self._cost(provider, model, usage, timestamp=timestamp, service_tier=service_tier,
                                    web_searches=web_searches, units=units, request_model=request_model)
        return None if match is None else Quote(cost, match)  # type: ignore[arg-type]

    def _cost(self, provider: str | None, model: str | None, usage: Usage, *, timestamp: datetime | None,
              service_tier: str | None, web_searches: int | None, units: Mapping[str, float] | None,
              request_model: str | None) -> tuple[Decimal | None, PriceMatch | None, str | None]:
        """(the cost of `usage` and the prices that gave it; or None, None and why not when a
        price was found but cannot price the usage). A `Quote` is made of it by `quote` alone: a
        frozen dataclass costs a microsecond to make, and this runs for every event."""
        counts = usage_counts(usage, web_searches=web_searches, units=units)
        match, why = self._matched_counts(provider, model, counts, timestamp, service_tier, request_model)
        if match is None:
            return None, None, why
        return match.sheet.cost(counts), match, None

    def _matched_counts(self, provider: str | None, model: str | None, counts: Mapping[str, Any],
                        timestamp: datetime | None, service_tier: str | None,
                        request_model: str | None) -> tuple[PriceMatch | None, str | None]:
        """`match_counts`, remembered (on the background worker, for every event: one look-up for
        its several). Its answer depends on the call (provider, models, tier), the minute (as
        `match`'s), which counts are reported (`covers`) and which strict ones are not 0
        (`_complete`), never on their sizes; and on the price data, whose refresh forgets it."""
        if timestamp is None:  # priced as of now: not remembered
            return self.match_counts(provider, model, counts, timestamp=timestamp, service_tier=service_tier,
                                     request_model=request_model)
        source = self._bundled.source if self._bundled is not None else None  # (not loaded for it)
        key = (provider, model, request_model, service_tier, int(timestamp.timestamp()) // 60, tuple(counts),
               tuple(filter(counts.get, supplement.STRICT_KEYS)))
        found = self._matched.get(key)
        if found is None or self._matched_source is not source:
            found = self.match_counts(provider, model, counts, timestamp=timestamp, service_tier=service_tier,
                                      request_model=request_model)
            source = self._bundled.source if self._bundled is not None else None
            if self._matched_source is not source or len(self._matched) > 4096:
                self._matched.clear()
                self._matched_source = source
            self._matched[key] = found
        return found

    def match_counts(self, provider: str | None, model: str | None, counts: Mapping[str, Any], *,
                     timestamp: datetime | None, service_tier: str | None,
                     request_model: str | None = None) -> tuple[PriceMatch | None, str | None]:
        """The prices that price `counts` (genai-prices usage keys, `usage_counts`) of a call to
        `model` (else `request_model`); None and why not when a price was found but cannot
        price them. What applies depends on which counts are reported (and whether the audio
        ones are 0), never on their sizes: the server prices a batch's events of one model
        with one match (server/pricing.py)."""
        for candidate in dict.fromkeys(m for m in (model, request_model) if m):
            match = self.match(provider, candidate, timestamp=timestamp, service_tier=service_tier)
            if match is not None:
                if not match.sheet.covers(counts):
                    return None, None  # e.g. characters reported for a model priced per token
                match, missing = self._complete(match, candidate, counts)
                if missing:
                    return None, (f"no rate for {', '.join(missing)} in {match.source} "
                                  f"(add {', '.join(k.replace('_tokens', '_mtok') for k in missing)} to your rate card)")
                return match, None
        return None, None

    def _complete(self, match: PriceMatch, model: str, counts: Mapping[str, Any]) -> tuple[PriceMatch, list[str]]:
        """The match with the supplement's rates for the audio counts its bundled prices cannot
        price at a rate of their own (supplement.py); and what is still missing."""
        if match.source.startswith("rate card"):
            return match, []  # your own prices are taken as complete
        missing = [key for key in supplement.STRICT_KEYS
                   if counts.get(key) and match.sheet.rate(key.replace("_tokens", "_mtok")) is None]
        if not missing or match.model.split("/", 1)[0] not in supplement.AUDIO_APART:
            return match, []
        key = (match.sheet, match.source, model)  # the sheet itself: kept alive, never an id reused
        completed = self._completed.get(key)
        if completed is None:
            rates = supplement.rates_for(model, match.model)
            if not all(key.replace("_tokens", "_mtok") in rates for key in missing):
                return match, missing
            prices = {rate.price_key: rate.price for rate in match.sheet.rates}
            prices.update({k: v for k, v in rates.items() if k not in prices})
            completed = PriceMatch(RateSheet(prices), f"{match.source} + {supplement.SOURCE}", match.model)
            if len(self._completed) > 1024:
                self._completed.clear()
            self._completed[key] = completed
        return completed, []

    def price(self, event: LLMEvent) -> None:
        """Fill in the event's cost and its provenance. Never raises."""
        reported = event.provider_cost_usd
        match = why = None
        try:
            cost, match, why = self._cost_of(event)
        except InconsistentUsage as exc:
            logger.warning("tollmeter: cannot price %s/%s: %s", event.provider, event.model, exc)
        if match is not None:
            event.computed_cost_usd = cost
            event.price_model = match.model
        if reported is not None:
            event.cost_usd = reported
            event.priced = True
            event.price_source = event.price_source or PROVIDER_SOURCE
        elif match is not None:
            event.cost_usd = cost
            event.priced = True
            event.price_source = match.source
        elif event.usage.is_empty() and event.error is not None and not event.partial:
            # Refused before any usage (a 429, a 400): nothing was billed.
            event.cost_usd = Decimal(0)
            event.priced = True
            event.price_source = "nothing billed"
        else:
            event.priced = False
            event.cost_usd = None
            self._unpriced(event, why)

    def _cost_of(self, event: LLMEvent) -> tuple[Decimal | None, PriceMatch | None, str | None]:
        if event.usage.is_empty() and not event.web_search_requests and not event.units:
            return None, None, None  # nothing reported to price
        return self._cost(
            event.provider, event.model, event.usage, timestamp=event.timestamp,
            service_tier=event.service_tier, web_searches=event.web_search_requests, units=event.units,
            request_model=event.request_model,
        )

    def _unpriced(self, event: LLMEvent, why: str | None = None) -> None:
        key = (event.provider, event.model or event.request_model)
        with self._lock:
            self.unpriced += 1
            first = key not in self._warned
            self._warned.add(key)
        if not first:
            return
        if why is not None:
            logger.warning("tollmeter: cannot price %r (provider %r): %s; its calls are recorded unpriced",
                           key[1], event.provider, why)
        elif event.usage.is_empty():
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


def load_pricer(prices: Any, *, infer_prices: bool = True) -> Pricer:
    """A Pricer for `MeterConfig(prices=..., infer_prices=...)`: a rate card path, dict or
    list, or None; and whether a host the price data does not know is priced by model id."""
    return Pricer(RateCard.load(prices) if prices is not None else None, infer_prices=infer_prices)
