"""A RateSheet in integer arithmetic: the same cost as `RateSheet.cost`, Decimal for Decimal.

`RateSheet.cost` adds `price * count / per` in Decimals, a handful of Decimal operations per
event. Here each price is an integer in units of 10^-S USD (S: the finest scale of the sheet's
prices divided by their `per`), so an event's cost is a sum of integer products, made into one
Decimal at the end. The Decimal is the one `RateSheet.cost` returns, its exponent included
(stored as text on SQLite, the text must not change): Python's decimal module gives an exact
quotient the exponent nearest to the ideal one (the price's), and an exact sum the smaller
exponent of its terms; both rules are applied below. Where `RateSheet.cost` would round (more
than the context's 28 digits), or a count is not an int, or a price is tiered or per a unit
that is not a power of ten, `cost` answers None and the caller prices the Decimal way.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Mapping

from .rates import USAGE_KEYS, RateSheet

#: Decimal's default context holds 28 digits: a coefficient below this is exact in it.
_EXACT_BELOW = 10 ** 28
#: genai-prices usage key -> the event's usage field that reports it.
_FIELD_OF = {key: name for name, key in USAGE_KEYS.items()}


class FixedPointSheet:
    """`sheet`'s prices as integers, for pricing the token counts of events (`usage` dicts
    of tollmeter's field names; no units, no web searches)."""

    __slots__ = ("sheet", "_rates", "_scale")

    def __init__(self, sheet: RateSheet) -> None:
        self.sheet = sheet
        index = {rate.usage_key: i for i, rate in enumerate(sheet.rates)}
        parts = []
        for rate in sheet.rates:
            price, per = rate.price, rate.per
            digits = len(str(per)) - 1
            exact = (isinstance(price, Decimal) and price.is_finite() and not price.is_signed()
                     and per == 10 ** digits)
            if exact:
                sign, coefficient, exponent = price.as_tuple()
                parts.append((rate.usage_key, int("".join(map(str, coefficient))), int(exponent), digits))
            else:
                parts.append((rate.usage_key, None, 0, 0))
        scale = max([0, *(digits - exponent for _, c, exponent, digits in parts if c is not None)])
        self._scale = scale
        #: Per rate: the usage field it reads ("" for requests, None for a key events never
        #: report here), its price coefficient, its price's exponent, log10(per), its price in
        #: units of 10^-scale per count (None: not exact in integers), and the indexes of the
        #: rates inside it, whose leaves it does not charge.
        self._rates = tuple(
            ("" if key == "requests" else _FIELD_OF.get(key), c, exponent, digits,
             None if c is None else c * 10 ** (exponent - digits + scale),
             tuple(index[k] for k in sheet.rates[i].inside))
            for i, (key, c, exponent, digits) in enumerate(parts))

    def cost(self, usage: Mapping[str, int]) -> Decimal | None:
        """The cost `sheet.cost(usage_counts(usage))` returns, or None: the counts are
        inconsistent (a detail above its total), or not exact in integers here."""
        leaves: list[int] = []
        total = 0
        exponent = 0
        for field, coefficient, price_exponent, digits, units, inside in self._rates:
            if field is None:
                value = 0
            elif field:
                value = usage.get(field) or 0
                if value.__class__ is not int:
                    return None
            else:
                value = 1  # requests: one per call
            leaf = value
            for i in inside:
                leaf -= leaves[i]
            leaves.append(leaf)
            if not leaf:
                continue
            if leaf < 0 or units is None:
                return None
            total += units * leaf
            # Decimal's exponent of price * leaf / per: the price's, lowered by at most log10(per)
            # as far as the product's trailing zeros do not cover the division.
            product, shift = coefficient * leaf, digits
            while shift and not product % 10:
                product //= 10
                shift -= 1
            if price_exponent - shift < exponent:
                exponent = price_exponent - shift
        if total >= _EXACT_BELOW:
            return None
        return Decimal(total // 10 ** (self._scale + exponent)).scaleb(exponent)
