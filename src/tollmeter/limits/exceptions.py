"""LimitExceededException: the one exception tollmeter raises into the application, on purpose."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal


class LimitExceededException(Exception):
    """A call was refused before it was sent: it would take `tenant_id` past a limit."""

    def __init__(
        self,
        tenant_id: str | None,
        *,
        limit: str,
        limit_usd: Decimal | None = None,
        spent_usd: Decimal | None = None,
        reserved_usd: Decimal | None = None,
        estimated_cost_usd: Decimal | None = None,
        period: str | None = None,
        resets_at: datetime | None = None,
        message: str | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.limit = limit
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
        self.reserved_usd = reserved_usd
        self.estimated_cost_usd = estimated_cost_usd
        self.period = period
        self.resets_at = resets_at
        if message is None:
            message = f"tenant {tenant_id!r} would exceed its {limit} limit"
            if limit_usd is not None:
                message += f" of ${limit_usd}"
            if spent_usd is not None:
                message += f" (spent ${spent_usd}"
                if reserved_usd:
                    message += f", ${reserved_usd} reserved"
                if estimated_cost_usd is not None:
                    message += f", this call up to ${estimated_cost_usd}"
                message += ")"
            if resets_at is not None:
                message += f"; resets at {resets_at.isoformat()}"
        super().__init__(message)


class RateLimitExceededException(LimitExceededException):
    """A call was refused before it was sent: the tenant is over its requests or tokens per minute."""
