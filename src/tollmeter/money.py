"""Exact money arithmetic. Amounts have at most 15 decimals and stay below 10^15 USD; their
sums and products (a cost times a markup) need more than the 28 digits of Python's default
decimal context, so reports and the store's sums compute in `EXACT`."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal

#: Enough digits for any sum or product of amounts of the store's precision, exactly.
EXACT = Context(prec=100)


#: The store's precision of amounts: NUMERIC(30, 15).
PLACES = Decimal("1e-15")


def at_places(value: Decimal) -> Decimal:
    """A derived amount (a mean, a share, a projection: a division, up to 100 digits in
    `EXACT`) at the store's precision, for what is shown; rules compare the exact value."""
    return value.quantize(PLACES, rounding=ROUND_HALF_EVEN, context=EXACT)


def decimal_text(amount: Decimal | None) -> str | None:
    """Exact decimal text, without exponent or trailing zeros (what the API and its CSV give
    for money): `Decimal("50.000000000000000")` -> "50", `Decimal("1E-7")` -> "0.0000001";
    None for None. Normalized in `EXACT`: the default context's 28 digits would round an
    amount of the store's 30."""
    if amount is None:
        return None
    if not amount:
        return "0"
    exact = amount.normalize(EXACT)
    text = str(exact)  # plain, unless with an exponent (5E+1, 1E-7): a third of format()'s time
    return format(exact, "f") if "E" in text else text


def usd_text(amount: Decimal | None) -> str:
    """For people: `$1,234.57`, `-$0.72`, and small amounts to the millionth (`$0.000226`)
    rather than a misleading `$0.00`; `-` for none."""
    if amount is None:
        return "-"
    size = abs(amount)
    if size >= 1 or not size or size == size.quantize(_CENT):
        shown = f"{size.quantize(_CENT, rounding=ROUND_HALF_EVEN):,}"
    else:
        shown = format(size.quantize(_MICRO, rounding=ROUND_HALF_EVEN).normalize(), "f")
        shown = shown if len(shown.partition(".")[2]) >= 2 else f"{float(shown):.2f}"
    return f"{'-' if amount < 0 else ''}${shown}"


_CENT = Decimal("0.01")
_MICRO = Decimal("0.000001")
