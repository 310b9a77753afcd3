"""POST /v1/ingest: a batch of events, gzip or plain JSON `{"events": [...]}`, and optionally
the run resolutions the agent queued with them (`"resolutions": [...]`, `meter.resolve()`).

Each event is validated on its own (validation.py): the good ones are stored, the bad ones are
answered with their index and the reason. Idempotent on event_id, retries and concurrent
duplicates included (the insert is ON CONFLICT DO NOTHING): an event is stored, priced into its
tenant's spend and settled against its lease once, however often it arrives.

Resolutions are stored after the batch's events (so a run resolved in the batch that carries
its last events is known with them), each on its own: a run's first resolution stands, the
same one again is a duplicate, a contradicting one is refused with the reason."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..business.plans import PlanError
from ..store.ledger import Ledger
from ..store.rows import event_row
from ..store.store import Store
from .body import PayloadError, PayloadTooLarge, content_encoding, decode, parse_json, read_limited
from .deps import ProjectStore, State
from .models import IngestResult
from .pricing import price_on_arrival
from .retry import with_retries
from .state import ServerState
from .validation import Invalid, needs_pricing, validate_event, validate_resolution

logger = logging.getLogger("tollmeter.server")

router = APIRouter(tags=["ingest"])

_BODY_DOC = {
    "requestBody": {
        "required": True,
        "description": "`{\"events\": [...], \"resolutions\": [...]}`, plain or with `Content-Encoding: gzip`; "
                       "events as `LLMEvent.to_dict()` makes them (docs/events.md), resolutions (optional) as "
                       "`RunResolution.to_dict()` does.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IngestBatch"}}},
    },
}


@router.post(
    "/v1/ingest",
    response_model=IngestResult,
    summary="Store a batch of events",
    openapi_extra=_BODY_DOC,
    responses={400: {"description": "not JSON, or not {\"events\": [...]}"},
               401: {"description": "missing, unknown or revoked API key"},
               413: {"description": "body, decompressed body or batch over the limits"},
               415: {"description": "a Content-Encoding other than gzip"}},
)
async def ingest(request: Request, store: ProjectStore, state: State) -> Any:
    settings = state.settings
    try:
        encoding = content_encoding(request.headers.get("content-encoding"))
        body = await read_limited(request.stream(), settings.max_body_bytes, request.headers.get("content-length"))
        result = await run_in_threadpool(store_batch, state, store, body, encoding)
    except PayloadError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)
    return JSONResponse(result)


def store_batch(state: ServerState, store: Store, body: bytes, encoding: str) -> dict[str, Any]:
    """Decode, validate, price and store one batch (in a worker thread); the answer's JSON."""
    settings = state.settings
    payload = parse_json(decode(body, encoding, settings.max_decompressed_bytes))
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        raise PayloadError('expected a JSON object {"events": [...]}')
    events = payload["events"]
    resolutions = payload.get("resolutions")
    if resolutions is not None and not isinstance(resolutions, list):
        raise PayloadError('"resolutions" must be a list of run resolutions')
    items = len(events) + len(resolutions or ())
    if items > settings.max_batch_events:
        raise PayloadTooLarge(f"{items} events and resolutions in one batch, over the limit of "
                              f"{settings.max_batch_events}")
    now = datetime.now(timezone.utc)
    rows: list[dict[str, Any]] = []
    leases: dict[str, str] = {}
    rejected: list[dict[str, Any]] = []
    seen: set[str] = set()
    repeated = 0
    unpriced: set[str] = set()
    for index, raw in enumerate(events):
        try:
            event = validate_event(raw, now)
        except Invalid as exc:
            rejected.append({"index": index, "reason": str(exc)})
            continue
        event_id = event["event_id"]
        if event_id in seen:
            repeated += 1
            continue
        seen.add(event_id)
        if needs_pricing(event) and not price_on_arrival(state.pricer, event):
            unpriced.add(event_id)
        lease_id = event.get("lease_id")
        if lease_id is not None:
            leases[event_id] = lease_id
        rows.append(event_row(event))
    # One order for every writer: concurrent batches sharing events wait, never deadlock.
    rows.sort(key=lambda row: row["event_id"])
    inserted = with_retries(lambda: store.add_events(rows, event_leases=leases)) if rows else []
    still_unpriced = sum(1 for event_id in inserted if event_id in unpriced)
    if rejected:
        logger.info("project %s: %d events stored, %d rejected", store.project, len(inserted), len(rejected))
    answer: dict[str, Any] = {"accepted": len(inserted), "duplicates": len(rows) - len(inserted) + repeated,
                              "unpriced": still_unpriced, "rejected": rejected}
    if resolutions is not None:
        answer.update(store_resolutions(store, resolutions, now))
    return answer


def store_resolutions(store: Store, resolutions: list[Any], now: datetime) -> dict[str, Any]:
    """Validate and store a batch's resolutions, in their order; the answer's counts."""
    ledger = Ledger(store)
    accepted = duplicates = 0
    rejected: list[dict[str, Any]] = []
    for index, raw in enumerate(resolutions):
        try:
            r = validate_resolution(raw, now)
        except Invalid as exc:
            rejected.append({"index": index, "reason": str(exc)})
            continue
        try:
            stored = with_retries(lambda r=r: ledger.resolve(  # type: ignore[misc]
                r.run_id, r.outcome, revenue_usd=r.revenue_usd, tenant_id=r.tenant_id, agent_id=r.agent_id,
                at=r.resolved_at, key=r.key))
        except PlanError as exc:  # RunAlreadyResolved: the first resolution stands
            rejected.append({"index": index, "reason": str(exc)})
            continue
        if stored.duplicate:
            duplicates += 1
        else:
            accepted += 1
    if rejected:
        logger.info("project %s: %d resolutions stored, %d rejected", store.project, accepted, len(rejected))
    return {"resolutions_accepted": accepted, "resolutions_duplicates": duplicates,
            "rejected_resolutions": rejected}
