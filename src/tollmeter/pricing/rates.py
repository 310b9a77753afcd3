"""RateSheet: one model's prices, compiled for pricing many events quickly and exactly.

Prices are per unit of genai-prices' usage keys (`input_mtok` is USD per million
`input_tokens`, `web_searches_kcount` USD per thousand `web_searches`, ...). Usage is
inclusive, as in tollmeter's events: the price of a count is charged on its *leaf* value, the
count minus the counts of more specific priced units inside it (cache reads inside input, the
1-hour writes inside cache writes). A model that does not price cache writes charges them at
the input rate, because they stay in the input leaf. Tiered prices (long context) pick their
tier by the call's total input tokens. Everything is `Decimal`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Mapping

from genai_prices.types import TieredPrices
from genai_prices.units import _get_registry  # the bundled unit registry

from ..events import Usage, compile_function

_ZERO = Decimal(0)

class InconsistentUsage(ValueError):
    """A detail count exceeds the total it is part of (e.g. cache reads above input)."""


@dataclass(frozen=True)
class Rate:
    usage_key: str
    price_key: str
    price: Any  # Decimal | TieredPrices
    per: int
    #: Priced usage keys strictly inside this one, whose leaves are charged on their own.
    inside: tuple[str, ...]

    def unit_price(self, input_tokens: int) -> Decimal:
        price = self.price
        if isinstance(price, TieredPrices):
            chosen = price.base
            for tier in reversed(price.tiers):
                if input_tokens > tier.start:
                    chosen = tier.price
                    break
            return chosen
        return price


#: tollmeter Usage field -> genai-prices usage key.
USAGE_KEYS = {
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cache_read_tokens": "cache_read_tokens",
    "cache_write_tokens": "cache_write_tokens",
    "cache_write_1h_tokens": "cache_write_1h_tokens",
    "input_audio_tokens": "input_audio_tokens",
    "input_image_tokens": "input_image_tokens",
    "input_video_tokens": "input_video_tokens",
    "tool_use_prompt_tokens": "input_tool_tokens",
    "reasoning_tokens": "output_reasoning_tokens",
    "output_audio_tokens": "output_audio_tokens",
    "output_image_tokens": "output_image_tokens",
}


def price_keys() -> frozenset[str]:
    """Every price key a rate may use (`input_mtok`, `cache_write_1h_mtok`, `web_searches_kcount`, ...)."""
    return frozenset(unit.price_key for unit in _get_registry().units.values())


class RateSheet:
    """The compiled prices of one model (for one service tier, at one time)."""

    __slots__ = ("rates", "by_price_key", "_flat")

    def __init__(self, prices: Mapping[str, Any]) -> None:
        """`prices`: price key -> Decimal or TieredPrices (None values are skipped)."""
        registry = _get_registry()
        units = {}
        for price_key, price in prices.items():
            if price is None:
                continue
            unit = registry.unit_for_price_key(price_key)  # KeyError: not a price key
            units[unit.usage_key] = (unit, price)
        rates = []
        for usage_key, (unit, price) in units.items():
            inside = tuple(
                other.usage_key
                for other, _ in units.values()
                if other is not unit and unit.dimensions.items() <= other.dimensions.items()
            )
            rates.append(Rate(usage_key, unit.price_key, price, unit.per, inside))
        # The most specific first, so that every leaf inside a rate is known before it.
        rates.sort(key=lambda r: -len(registry.units[r.usage_key].dimensions))
        self.rates: tuple[Rate, ...] = tuple(rates)
        self.by_price_key = {r.price_key: r for r in rates}
        self._flat = self._flat_worst_case()

    def _flat_worst_case(self) -> tuple[Decimal, Decimal, Decimal] | None:
        """(USD per input token, per output token, per request) when none of the prices the
        worst case uses has tiers: `worst_case` is then two multiplications."""
        keys = ("input_mtok", "output_mtok", "output_reasoning_mtok", "requests_kcount")
        used = [self.by_price_key.get(key) for key in keys]
        if any(rate is not None and isinstance(rate.price, TieredPrices) for rate in used):
            return None
        inp, out, reasoning, requests = used
        per_input = inp.price / inp.per if inp is not None else _ZERO
        outputs = [r.price / r.per for r in (out, reasoning) if r is not None]
        per_output = max(outputs) if outputs else _ZERO
        per_request = requests.price / requests.per if requests is not None else _ZERO
        return per_input, per_output, per_request

    @property
    def worst_case_rates(self) -> tuple[Decimal, Decimal, Decimal] | None:
        """(USD per input token, per output token, per request) of `worst_case` when it is
        linear (no tiered price), for a caller on the hot path; None otherwise."""
        return self._flat

    def most_per_token(self) -> tuple[Decimal, Decimal, Decimal] | None:
        """(USD per input token, per output token, per request) at the highest of this sheet's
        token rates on each side: what a call's input and output tokens cost at most whatever
        their kinds (cache writes, audio, reasoning: each is counted inside the input or the
        output total), as long as it reports nothing priced otherwise (web searches, seconds:
        `cost` prices those apart). None when a token or request price has tiers."""
        registry = _get_registry()
        most = {"input": _ZERO, "output": _ZERO}
        per_request = _ZERO
        for rate in self.rates:
            unit = registry.units[rate.usage_key]
            if rate.usage_key == "requests" or unit.dimensions.get("family") == "tokens":
                if isinstance(rate.price, TieredPrices):
                    return None
                if rate.usage_key == "requests":
                    per_request = rate.price / rate.per
                else:
                    side = unit.dimensions["direction"]
                    most[side] = max(most[side], rate.price / rate.per)
        return most["input"], most["output"], per_request

    def covers(self, counts: Mapping[str, int | float]) -> bool:
        """Whether any reported quantity (other than the request itself) has a rate here: a
        sheet of token prices says nothing about characters or seconds, and pricing those at
        $0 would be wrong."""
        registry = _get_registry()
        priced = {rate.usage_key for rate in self.rates}
        for key, value in counts.items():
            if value is None or key == "requests":
                continue
            if key in priced:
                return True
            try:
                if registry.ancestor_usage_keys(key) & priced:
                    return True
            except KeyError:  # a unit genai-prices does not know (an event's own `units`): no rate here
                continue
        return False

    def cost(self, counts: Mapping[str, int | float]) -> Decimal:
        """The exact cost of `counts` (genai-prices usage keys; `requests` is 1 per call)."""
        input_tokens = int(counts.get("input_tokens") or 0)
        leaves: dict[str, int | float] = {}
        total = Decimal(0)
        for rate in self.rates:
            value = counts.get(rate.usage_key) or 0
            leaf = value - sum(leaves[key] for key in rate.inside) if rate.inside else value
            if leaf < 0:
                raise InconsistentUsage(
                    f"{rate.usage_key} ({value}) is less than the counts inside it "
                    + ", ".join(f"{k}={counts.get(k) or 0}" for k in rate.inside)
                )
            leaves[rate.usage_key] = leaf
            if leaf:
                # a float (seconds of audio) as the decimal it prints as, not its binary expansion
                amount = Decimal(leaf) if isinstance(leaf, int) else Decimal(str(leaf))
                total += rate.unit_price(input_tokens) * amount / rate.per
        return total

    def worst_case(self, input_tokens: int, output_tokens: int) -> Decimal:
        """The most `input_tokens` in and `output_tokens` out can cost: all input at the plain
        input rate (cache reads and writes are not assumed), all output at the output or the
        reasoning rate, whichever is higher, plus a per-request fee. For reservations."""
        flat = self._flat
        if flat is not None:
            return flat[0] * input_tokens + flat[1] * output_tokens + flat[2]
        total = _ZERO
        rate = self.by_price_key.get("input_mtok")
        if rate is not None and input_tokens:
            total += rate.unit_price(input_tokens) * input_tokens / rate.per
        output = self.by_price_key.get("output_mtok")
        reasoning = self.by_price_key.get("output_reasoning_mtok")
        if output_tokens and (output is not None or reasoning is not None):
            prices = [r.unit_price(input_tokens) for r in (output, reasoning) if r is not None]
            total += max(prices) * output_tokens / 1_000_000
        requests = self.by_price_key.get("requests_kcount")
        if requests is not None:
            total += requests.unit_price(input_tokens) / requests.per
        return total

    def scaled(self, factor: Decimal) -> RateSheet:
        """The same sheet with every price multiplied by `factor` (a negotiated discount)."""
        prices: dict[str, Any] = {}
        for rate in self.rates:
            price = rate.price
            if isinstance(price, TieredPrices):
                tiers = [type(t)(start=t.start, price=t.price * factor) for t in price.tiers]
                prices[rate.price_key] = TieredPrices(base=price.base * factor, tiers=tiers)
            else:
                prices[rate.price_key] = price * factor
        return RateSheet(prices)

    def describe(self) -> list[tuple[str, str]]:
        """(price key, price) pairs for display, tiers included."""
        out = []
        for rate in sorted(self.rates, key=lambda r: r.price_key):
            price = rate.price
            if isinstance(price, TieredPrices):
                tiers = ", ".join(f"{t.price} above {t.start:,} input tokens" for t in price.tiers)
                out.append((rate.price_key, f"{price.base} ({tiers})"))
            else:
                out.append((rate.price_key, str(price)))
        return out

    def rate(self, price_key: str, input_tokens: int = 0) -> Decimal | None:
        rate = self.by_price_key.get(price_key)
        return None if rate is None else rate.unit_price(input_tokens)


def _usage_counts_source() -> str:
    """`usage_counts`, written out: a reported count (a 0 too) is a quantity, and the call is
    priced (at $0 for it); an unreported one (None) is not."""
    lines = ["def usage_counts(usage, *, web_searches=None, units=None):", "    counts = {'requests': 1}"]
    for name, key in USAGE_KEYS.items():
        lines += [f"    value = usage.{name}", "    if value is not None:", f"        counts[{key!r}] = value"]
    lines += ["    if web_searches:", "        counts['web_searches'] = web_searches",
              "    if units:", "        counts.update({k: v for k, v in units.items() if v})", "    return counts", ""]
    return "\n".join(lines)


if TYPE_CHECKING:
    def usage_counts(usage: Usage, *, web_searches: int | None = None,
                     units: Mapping[str, float] | None = None) -> dict[str, int | float]:
        """A tollmeter Usage (and the event's other billable quantities) as genai-prices counts."""
else:
    usage_counts = compile_function(
        "usage_counts", _usage_counts_source(),
        "A tollmeter Usage (and the event's other billable quantities) as genai-prices counts (for every event "
        "priced: the reads of `USAGE_KEYS` written out).", module=__name__)


def sheet_from_model_price(model_price: Any) -> RateSheet:
    """Compile a genai-prices ModelPrice (its set attributes are the price keys)."""
    return RateSheet({k: v for k, v in vars(model_price).items() if not k.startswith("_")})
