"""What the limits know of a call about to be sent: plain values, no SDK objects."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from .estimate import RequestEstimate

#: Worst-case tokens of a request: `estimator(request keyword arguments, model)`.
Estimator = Callable[[Mapping[str, Any], "str | None"], RequestEstimate]


class CallRequest:
    """A tenant's call about to go out. Its worst-case tokens are worked out on first use
    (a tenant without a limit never pays for it)."""

    __slots__ = ("tenant_id", "provider", "model", "service_tier", "_kwargs", "_estimator", "_estimate")

    def __init__(self, tenant_id: str, provider: str | None, model: str | None, kwargs: Mapping[str, Any],
                 estimator: Estimator) -> None:
        self.tenant_id = tenant_id
        self.provider = provider
        self.model = model
        tier = kwargs.get("service_tier") if type(kwargs) is dict or hasattr(kwargs, "get") else None
        self.service_tier = tier if isinstance(tier, str) else None
        self._kwargs = kwargs
        self._estimator = estimator
        self._estimate: RequestEstimate | None = None

    def estimate(self) -> RequestEstimate:
        if self._estimate is None:
            self._estimate = self._estimator(self._kwargs, self.model)
            self._kwargs = {}  # the request is not kept past its estimate
        return self._estimate
