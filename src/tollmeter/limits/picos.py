"""The guard's amounts as whole picodollars (10^-12 USD): integers on the caller's thread.

Decimal arithmetic looks up its context on every operation and allocates its result; the guard
does a comparison and an addition before every call of a tenant with a limit, so it keeps its
leases and reservations as integers and converts at its edges. What is reserved or spent is
rounded up to a whole picodollar and what the store grants rounded down, so this process's view
of a lease is never more than the store's (the bound holds), and the store's own accounts, kept
in Decimal, are untouched. A price in whole micro-dollars per million tokens (every listed price
so far) is a whole number of picodollars per token, so reservations and settlements are exact.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal

#: Picodollars in a dollar.
PER_USD = 10**12

#: Wide enough that no amount the rules allow (below 10^15 USD, with any number of decimals a
#: price times a count produces) is rounded before the picodollar.
_EXACT = Context(prec=80)


def up(usd: Decimal) -> int:
    """`usd` in picodollars, rounded up (what is reserved or spent)."""
    return int(_EXACT.scaleb(usd, 12).to_integral_value(ROUND_CEILING))


def down(usd: Decimal) -> int:
    """`usd` in picodollars, rounded down (what is granted or left)."""
    return int(_EXACT.scaleb(usd, 12).to_integral_value(ROUND_FLOOR))


def usd(picos: int) -> Decimal:
    """Picodollars as USD, exactly (without trailing zeros: 5, not 5.000000000000)."""
    value = _EXACT.scaleb(Decimal(picos), -12).normalize(_EXACT)
    return value.quantize(_ONE, context=_EXACT) if value.as_tuple().exponent > 0 else value


_ONE = Decimal(1)
