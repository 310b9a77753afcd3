"""Budget leases for agents: POST /v1/leases, DELETE /v1/leases/{lease_id}.

An agent's guard reserves calls against a lease in memory and asks for more when short
(limits/guard.py, limits/remote.py): the store grants `need_usd` at least, or nothing when the
limits do not leave that much, and up to `want_usd` (at most a quarter of what is left beyond
the need). Grants of one tenant are serialised (SQLite: BEGIN IMMEDIATE; PostgreSQL: an
advisory lock per tenant), so replicas never lease the same budget twice. A refused lease is a
200 with `refused: true`, `granted_usd: "0"` and the limits as they stand.

A grant is one transaction: the API key's project comes from the keys this process found valid
(`KnownKeys`), and the grant's own read checks that the key is still unrevoked, so a key
revoked anywhere is refused by every replica from the revocation's commit on, with no look-up
of its own. Grants run on a few worker threads in turn (`lease_concurrency`)."""

from __future__ import annotations

from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from fastapi.security import HTTPAuthorizationCredentials

from ..notifications.refusals import count_refusal
from ..store.store import DEFAULT_TENANT_LIMITS, KeyRevoked
from . import metrics, wire
from .body import StrictJSONRoute
from .deps import ProjectStore, bearer, invalid_key, missing_key, server_state
from .models import LeaseIn, LeaseOut, StorableText
from .retry import with_retries
from .state import ServerState

router = APIRouter(tags=["leases"], route_class=StrictJSONRoute)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


@router.post("/v1/leases", response_model=LeaseOut, summary="Lease budget (a new lease, or more on yours)",
             responses={401: {"description": "missing, unknown or revoked API key"}})
async def grant_lease(body: LeaseIn, request: Request, credentials: Credentials) -> dict[str, Any]:
    # One trip to a worker thread for the key and the grant together: a sync dependency and a
    # sync endpoint would take three (each a thread handoff that, on a busy machine, costs more
    # than the grant's statements).
    state = server_state(request)
    return await to_thread.run_sync(_grant, body, state, credentials, limiter=state.grant_turns)


def _grant(body: LeaseIn, state: ServerState, credentials: HTTPAuthorizationCredentials | None) -> dict[str, Any]:
    if credentials is None:
        raise missing_key()
    known = state.known_keys.project(state.store, credentials.credentials)
    if known is None:
        raise invalid_key()
    project, digest = known
    store = state.store.for_project(project)
    if body.tenant_id == DEFAULT_TENANT_LIMITS:
        raise HTTPException(422, "leases are per tenant: '*' holds default limits, not a tenant")
    if body.need_usd > body.want_usd:
        raise HTTPException(422, "need_usd must not exceed want_usd")
    ttl = min(body.ttl_seconds, state.settings.max_lease_ttl)
    if body.want_fraction is not None and body.want_fraction > 1:
        raise HTTPException(422, "want_fraction is a fraction of a limit: at most 1")
    try:
        grant, rate = with_retries(lambda: store.grant_with_rate_limit(
            body.tenant_id, body.holder, body.want_usd, ttl=ttl, need=body.need_usd, lease_id=body.lease_id,
            want_fraction=body.want_fraction, key_hash=digest))
    except KeyRevoked:
        state.known_keys.forget(digest)
        raise invalid_key() from None
    answer = wire.grant(grant, rate, want=body.want_usd)
    metrics.record_lease(store.project, answer)
    if answer["refused"]:
        count_refusal(store, body.tenant_id)  # what the refusal-burst notification reads
    return answer


@router.delete("/v1/leases/{lease_id}", status_code=204, response_class=Response,
               summary="Give a lease's unspent budget back")
def release_lease(lease_id: Annotated[str, Path(min_length=1, max_length=64), StorableText],
                  store: ProjectStore) -> Response:
    store.release(lease_id)  # only the project's own leases; unknown or lapsed: nothing to do
    metrics.record_release(store.project)
    return Response(status_code=204)
