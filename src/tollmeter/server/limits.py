"""Limits, rate limits and where a tenant stands: /v1/limits, /v1/rate-limits, /v1/tenants.

Tenant `*` holds the default limits of tenants without their own. Tenant ids are path
segments: percent-encode them (`/` as %2F, `*` may stay as it is). A changed limit revokes the
leases granted under the old one (as `meter.set_limit` does)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from ..limits.periods import FREQUENCIES
from ..limits.periods import frequency as check_frequency
from ..money import decimal_text
from ..store.store import DEFAULT_TENANT_LIMITS
from . import wire
from .body import StrictJSONRoute
from .deps import ProjectStore
from .models import LimitIn, RateLimitIn, RateLimitOut, Removed, StorableText, TenantLimits, TenantSpend

router = APIRouter(tags=["limits"], route_class=StrictJSONRoute)

TenantPath = Annotated[str, Path(min_length=1, max_length=255,
                                 description="tenant id (percent-encoded); `*` for the default limits"), StorableText]


def _limits(store: Any, tenant_id: str) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "limits": [wire.limit(lim) for lim in store.limits_for(tenant_id)]}


@router.get("/v1/limits", summary="Every limit of the project")
def all_limits(store: ProjectStore) -> wire.Answer:
    return wire.Answer({"limits": [{"tenant_id": lim.tenant_id, **wire.limit(lim)} for lim in store.all_limits()]})


@router.get("/v1/limits/{tenant_id:path}", response_model=TenantLimits,
            summary="A tenant's limits (or the default ones, marked default)")
def get_limits(tenant_id: TenantPath, store: ProjectStore) -> dict[str, Any]:
    return _limits(store, tenant_id)


@router.put("/v1/limits/{tenant_id:path}", response_model=TenantLimits,
            summary="Set a tenant's limit for one frequency (replaces that frequency's limit)")
def put_limit(tenant_id: TenantPath, body: LimitIn, store: ProjectStore) -> dict[str, Any]:
    store.set_limit(tenant_id, body.frequency, body.limit_usd)
    return _limits(store, tenant_id)


@router.delete("/v1/limits/{tenant_id:path}", response_model=Removed,
               summary="Remove a tenant's limits (one frequency, or all)")
def delete_limits(tenant_id: TenantPath, store: ProjectStore,
                  frequency: Annotated[str | None, Query(description=", ".join(FREQUENCIES))] = None) -> dict[str, int]:
    if frequency is not None:
        try:
            frequency = check_frequency(frequency)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
    return {"removed": store.remove_limit(tenant_id, frequency)}


@router.get("/v1/rate-limits/{tenant_id:path}", response_model=RateLimitOut, tags=["limits"],
            summary="A tenant's rate limits (nulls: none)")
def get_rate_limit(tenant_id: TenantPath, store: ProjectStore) -> dict[str, Any]:
    return wire.rate_limit(tenant_id, store.rate_limit_for(tenant_id))


@router.put("/v1/rate-limits/{tenant_id:path}", response_model=RateLimitOut,
            summary="Set a tenant's rate limits (both null: remove them)")
def put_rate_limit(tenant_id: TenantPath, body: RateLimitIn, store: ProjectStore) -> dict[str, Any]:
    if tenant_id == DEFAULT_TENANT_LIMITS:
        raise HTTPException(422, "rate limits are per tenant: there is no default rate limit")
    store.set_rate_limit(tenant_id, body.requests_per_minute, body.tokens_per_minute)
    return wire.rate_limit(tenant_id, store.rate_limit_for(tenant_id))


@router.get("/v1/tenants/{tenant_id:path}/spend", response_model=TenantSpend,
            summary="Where a tenant stands against each of its limits")
def get_spend(tenant_id: TenantPath, store: ProjectStore) -> dict[str, Any]:
    states = store.limit_states(tenant_id)
    spent = store.spent(tenant_id)
    return {"tenant_id": tenant_id, "limits": [wire.state(s) for s in states],
            "spent": {freq: decimal_text(amount) for freq, amount in spent.items()}}


