"""What a tenant's limits look like at one moment: shared by the store, the server's API and
the agent's guard (no database imports here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True)
class Limit:
    tenant_id: str
    frequency: str
    limit_usd: Decimal
    #: True when this is the default limit, applied because the tenant has none of its own.
    default: bool = False


@dataclass(frozen=True)
class LimitState:
    """A limit at one moment: what is spent in its period and what is leased out."""

    limit: Limit
    spent_usd: Decimal
    leased_usd: Decimal
    resets_at: datetime | None

    @property
    def available_usd(self) -> Decimal:
        return self.limit.limit_usd - self.spent_usd - self.leased_usd


@dataclass(frozen=True)
class Grant:
    """The answer to a lease request."""

    lease_id: str | None
    granted_usd: Decimal
    #: The lease's budget not yet spent, after this grant.
    remaining_usd: Decimal
    expires_at: datetime | None
    #: Every limit of the tenant, as it stood (empty: the tenant has no limit).
    states: tuple[LimitState, ...] = field(default=())

    @property
    def unlimited(self) -> bool:
        return not self.states

    @property
    def binding(self) -> LimitState | None:
        """The limit with the least budget left."""
        return min(self.states, key=lambda s: s.available_usd) if self.states else None


@dataclass(frozen=True)
class RateLimit:
    tenant_id: str
    requests_per_minute: int | None
    tokens_per_minute: int | None
