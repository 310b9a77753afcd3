"""Exact money arithmetic. Amounts have at most 15 decimals and stay below 10^15 USD; their
sums and products (a cost times a markup) need more than the 28 digits of Python's default
decimal context, so reports and the store's sums compute in `EXACT`."""

from __future__ import annotations

from decimal import Context

#: Enough digits for any sum or product of amounts of the store's precision, exactly.
EXACT = Context(prec=100)
