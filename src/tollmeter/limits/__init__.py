"""Per-tenant spend limits: periods, the pre-call guard with budget leases, the estimates."""

from .exceptions import LimitExceededException, RateLimitExceededException

__all__ = ["LimitExceededException", "RateLimitExceededException"]
