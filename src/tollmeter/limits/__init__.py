"""Per-tenant spend limits."""

from .exceptions import LimitExceededException

__all__ = ["LimitExceededException"]
