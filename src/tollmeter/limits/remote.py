"""RemoteBudgets: the ingest server's limits and budget leases, for the guard of an agent whose
events go to a server (`MeterConfig(url=...)`).

It answers the same questions as the embedded `Store` (grant, release, limits, spend) over the
server's API, so that every instance of an app shares one set of limits: each instance spends
the leases the server grants it, locally, and asks for more in the background or when short.
Settlement happens on the server: each event carries the lease it was reserved against, and the
server takes its cost off that lease as it stores the event. A server that cannot be reached
(or answers what is not JSON) raises `BudgetsUnavailable`; the guard then applies
`MeterConfig(limits_unreachable=...)`. The guard asks on background threads and makes no
caller wait longer than `MeterConfig(limits_wait=...)` (guard.py); `timeout` here bounds the
request itself, in the background.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx

from ..transport.api import ServerApi, segment
from .states import Grant, Limit, LimitState, RateLimit


_ZERO = Decimal(0)


class BudgetsUnavailable(Exception):
    """The server could not be asked (network error, timeout, 5xx)."""


class RemoteBudgets:
    #: Events are stored by the server, not here.
    remote = True

    def __init__(self, ingest_url: str, api_key: str, *, timeout: float = 5.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._api = ServerApi(ingest_url, api_key, timeout=timeout, transport=transport)
        self.base = self._api.base
        self._rates: dict[str, RateLimit | None] = {}

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._api.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise BudgetsUnavailable(f"{method} {path}: {exc}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise BudgetsUnavailable(f"{method} {path}: HTTP {response.status_code}")
        if response.status_code >= 400:
            raise ValueError(f"{method} {path}: HTTP {response.status_code}: {response.text[:200]}")
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:  # a proxy's error page with a 200, a cut-off body
            raise BudgetsUnavailable(f"{method} {path}: the answer is not JSON ({exc})") from exc

    # -- what the guard asks --------------------------------------------------------------------

    def grant(self, tenant_id: str, holder: str, want: Decimal, *, ttl: float, need: Decimal = _ZERO,
              lease_id: str | None = None, at: datetime | None = None,
              want_fraction: Decimal | None = None, wait: float | None = None) -> Grant:
        """Lease budget (POST /v1/leases); `wait`: this request's timeout, if not the client's."""
        body: dict[str, Any] = {"tenant_id": tenant_id, "holder": holder, "want_usd": str(want),
                                "need_usd": str(need), "ttl_seconds": ttl}
        if want_fraction is not None:
            body["want_fraction"] = str(want_fraction)
        if lease_id is not None:
            body["lease_id"] = lease_id
        data = self._call("POST", "/v1/leases", json=body, **({"timeout": wait} if wait is not None else {}))
        if not isinstance(data, dict):
            raise BudgetsUnavailable(f"POST /v1/leases: unexpected answer {str(data)[:100]!r}")
        rate = data.get("rate_limit")
        self._rates[tenant_id] = (
            RateLimit(tenant_id, rate.get("requests_per_minute"), rate.get("tokens_per_minute")) if rate else None
        )
        states = tuple(_state(tenant_id, s) for s in data.get("limits") or ())
        if data.get("unlimited"):
            states = ()
        return Grant(data.get("lease_id"), Decimal(data.get("granted_usd") or "0"),
                     Decimal(data.get("remaining_usd") or "0"), _time(data.get("expires_at")), states)

    def rate_limit_for(self, tenant_id: str, wait: float | None = None) -> RateLimit | None:
        """As the last lease answer said (it carries the tenant's rate limits): no request."""
        return self._rates.get(tenant_id)

    def release(self, lease_id: str) -> None:
        self._call("DELETE", f"/v1/leases/{segment(lease_id)}")

    # -- the Meter's API ------------------------------------------------------------------------

    def set_limit(self, tenant_id: str, frequency: str, limit_usd: Decimal) -> None:
        self._call("PUT", f"/v1/limits/{_tenant(tenant_id)}", json={"limit_usd": str(limit_usd), "frequency": frequency})

    def remove_limit(self, tenant_id: str, frequency: str | None = None) -> int:
        params = {"frequency": frequency} if frequency else None
        data = self._call("DELETE", f"/v1/limits/{_tenant(tenant_id)}", params=params)
        return int((data or {}).get("removed", 0))

    def limits_for(self, tenant_id: str) -> list[Limit]:
        data = self._call("GET", f"/v1/limits/{_tenant(tenant_id)}")
        return [Limit(tenant_id, item["frequency"], Decimal(item["limit_usd"]), bool(item.get("default")))
                for item in data.get("limits") or ()]

    def set_rate_limit(self, tenant_id: str, requests_per_minute: int | None, tokens_per_minute: int | None) -> None:
        self._call("PUT", f"/v1/rate-limits/{_tenant(tenant_id)}",
                   json={"requests_per_minute": requests_per_minute, "tokens_per_minute": tokens_per_minute})

    def limit_states(self, tenant_id: str, at: datetime | None = None) -> list[LimitState]:
        data = self._call("GET", f"/v1/tenants/{_tenant(tenant_id)}/spend")
        return [_state(tenant_id, item) for item in data.get("limits") or ()]

    def close(self) -> None:
        self._api.close()

    def after_fork(self) -> None:
        self._api.after_fork()


def _tenant(tenant_id: str) -> str:
    return segment(tenant_id)


def _state(tenant_id: str, item: dict[str, Any]) -> LimitState:
    limit = Limit(tenant_id, item["frequency"], Decimal(item["limit_usd"]), bool(item.get("default")))
    return LimitState(limit, Decimal(item.get("spent_usd") or "0"), Decimal(item.get("leased_usd") or "0"),
                      _time(item.get("resets_at")))


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) and value else None
