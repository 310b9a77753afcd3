"""POST /v1/ingest: a batch of events, gzip or plain JSON `{"events": [...]}`, and optionally
the run resolutions the agent queued with them (`"resolutions": [...]`, `meter.resolve()`).

Each event is validated on its own (validation.py): the good ones are stored, the bad ones are
answered with their index and the reason. An event whose counts or cost would take one of the
totals the database keeps (a tenant's spend in a period, a day's usage of a tenant, agent and
model) past the largest number its column holds is refused the same way, with the rest of the
batch stored: the batch is stored in halves until the events that overflow are found.

Idempotent on event_id, retries and concurrent duplicates included (the insert is ON CONFLICT
DO NOTHING): an event is stored, priced into its tenant's spend and settled against its lease
once, however often it arrives. An event older than the project's retention mark (`tollmeter db
retention`) is refused with its reason: its raw copy may be gone, so a retry could not be told
from a new event.

Resolutions are stored after the batch's events (so a run resolved in the batch that carries
its last events is known with them), each on its own: a run's first resolution stands, the
same one again is a duplicate, a contradicting one is refused with the reason."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Annotated, Any, Iterator

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..business.plans import PlanError
from ..store.ledger import Ledger
from ..store.rows import valid_event_row
from ..store.store import KeyRevoked, Store
from .auth import project_for, project_of_hash
from .body import (PayloadError, PayloadTooLarge, StrictJSONRoute, content_encoding, decode, parse_json,
                   read_limited)
from .deps import bearer, invalid_key, missing_key, server_state
from .metrics import record_batch
from .models import IngestResult
from .pricing import BatchPricing
from .retry import out_of_range, with_retries
from .state import ServerState
from .typed_events import decode_batch
from .validation import Invalid, check_priced, needs_pricing, validate_event, validate_resolution

logger = logging.getLogger("tollmeter.server")

router = APIRouter(tags=["ingest"], route_class=StrictJSONRoute)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]

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
async def ingest(request: Request, credentials: Credentials) -> Any:
    # One trip to a worker thread for the key and the batch together, and no transaction of its
    # own for the key: the project of a key this process found valid is kept (`KnownKeys`), and
    # the batch's transaction checks that the key is still unrevoked in the read it makes
    # anyway (the retention mark). A sync dependency and its look-up cost a thread handoff and
    # three round trips per batch.
    state = server_state(request)
    if credentials is None:
        raise missing_key()
    settings = state.settings
    try:
        encoding = content_encoding(request.headers.get("content-encoding"))
        body = await read_limited(request.stream(), settings.max_body_bytes, request.headers.get("content-length"))
    except PayloadError as exc:
        # A key that is not valid is answered 401 whatever its body (as the key was checked first).
        if await run_in_threadpool(project_for, state.store, credentials.credentials) is None:
            raise invalid_key() from None
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)
    try:
        project, result = await run_in_threadpool(_store_with_key, state, credentials.credentials, body, encoding)
    except PayloadError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)
    record_batch(project, result)
    return JSONResponse(result)


def _store_with_key(state: ServerState, key: str, body: bytes, encoding: str) -> tuple[str, dict[str, Any]]:
    """`store_batch` for the project of `key` (401 for a key unknown or revoked)."""
    known = state.known_keys.project(state.store, key)
    if known is None:
        raise invalid_key()
    project, digest = known
    try:
        return project, store_batch(state, state.store.for_project(project), body, encoding, key_hash=digest)
    except KeyRevoked:
        state.known_keys.forget(digest)
        raise invalid_key() from None


class Phases:
    """CPU seconds spent in each phase of `store_batch` (parse, validate, price, write), summed
    over the batches it is given to: what benchmarks/ingest.py reports per event."""

    NAMES = ("parse", "validate", "price", "write")

    def __init__(self) -> None:
        self.cpu = dict.fromkeys(self.NAMES, 0.0)
        self.events = 0

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.thread_time()
        try:
            yield
        finally:
            self.cpu[name] += time.thread_time() - start


@contextmanager
def _untimed(name: str) -> Iterator[None]:
    yield


def store_batch(state: ServerState, store: Store, body: bytes, encoding: str,
                phases: Phases | None = None, key_hash: str | None = None) -> dict[str, Any]:
    """Decode, validate, price and store one batch (in a worker thread); the answer's JSON.
    `phases`: where to add the CPU time of each phase (the benchmark's breakdown). `key_hash`:
    the API key the batch came with, checked unrevoked as it is stored (KeyRevoked)."""
    settings = state.settings
    phase = phases or _untimed
    with phase("parse"):
        data = decode(body, encoding, settings.max_decompressed_bytes)
        batch = decode_batch(data)  # typed: most of validation done by the decoder
        payload = parse_json(data) if batch is None else None
    if batch is not None:
        count, resolutions = batch.events, batch.resolutions
    else:
        if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
            raise PayloadError('expected a JSON object {"events": [...]}')
        events = payload["events"]
        count, resolutions = len(events), payload.get("resolutions")
    if resolutions is not None and not isinstance(resolutions, list):
        raise PayloadError('"resolutions" must be a list of run resolutions')
    items = count + len(resolutions or ())
    if items > settings.max_batch_events:
        raise PayloadTooLarge(f"{items} events and resolutions in one batch, over the limit of "
                              f"{settings.max_batch_events}")
    now = datetime.now(timezone.utc)
    rows: list[dict[str, Any]] = []
    leases: dict[str, str] = {}
    seen: set[str] = set()
    repeated = 0
    unpriced: set[str] = set()
    index_of: dict[str, int] = {}
    with phase("validate"):
        if batch is not None:
            checked, rejected = batch.rows(now)
        else:
            checked, rejected = [], []
            for index, raw in enumerate(events):
                try:
                    checked.append((index, valid_event_row(validate_event(raw, now))))
                except Invalid as exc:
                    rejected.append({"index": index, "reason": str(exc)})
    with phase("price"):
        pricing = BatchPricing(state.pricer)
        priced: list[tuple[int, dict[str, Any]]] = []
        for index, event in checked:
            if event["event_id"] in seen:  # a repeat of an event priced already: its first copy stands
                priced.append((index, event))
                continue
            try:
                if needs_pricing(event):
                    if not pricing.price(event):
                        unpriced.add(event["event_id"])
                    check_priced(event)
            except Invalid as exc:
                rejected.append({"index": index, "reason": str(exc)})
                continue
            seen.add(event["event_id"])
            priced.append((index, event))
        if rejected and checked:
            rejected.sort(key=lambda item: item["index"])
    with phase("validate"):
        kept: set[str] = set()
        for index, event in priced:
            event_id = event["event_id"]
            if event_id in kept:
                repeated += 1
                continue
            kept.add(event_id)
            index_of[event_id] = index
            lease_id = event.get("lease_id")
            if lease_id is not None:
                leases[event_id] = lease_id
            rows.append(event)
    # One order for every writer: concurrent batches sharing events wait, never deadlock.
    rows.sort(key=lambda row: row["event_id"])
    overflowing: list[str] = []
    expired: list[str] = []
    with phase("write"):
        if rows:
            inserted = _store_apart(store, rows, leases, overflowing, expired, key_hash)
        else:
            inserted = []
            if key_hash is not None and project_of_hash(store, key_hash) != store.project:
                raise KeyRevoked("invalid or revoked API key")  # no transaction of the batch checked it
    if phases is not None:
        phases.events += count
    expired = list(dict.fromkeys(expired))  # a retried transaction names them again
    if overflowing or expired:
        rejected += [{"index": index_of[event_id], "reason": OVERFLOW_REASON} for event_id in overflowing]
        rejected += [{"index": index_of[event_id], "reason": EXPIRED_REASON} for event_id in expired]
        rejected.sort(key=lambda item: item["index"])
    still_unpriced = sum(1 for event_id in inserted if event_id in unpriced)
    if rejected:
        logger.info("project %s: %d events stored, %d rejected", store.project, len(inserted), len(rejected))
    duplicates = len(rows) - len(inserted) - len(overflowing) - len(expired) + repeated
    answer: dict[str, Any] = {"accepted": len(inserted), "duplicates": duplicates, "unpriced": still_unpriced,
                              "rejected": rejected}
    if resolutions is not None:
        answer.update(store_resolutions(store, resolutions, now))
    return answer


EXPIRED_REASON = ("older than the server's retention window (its raw events before that day were removed, "
                  "so it could not be told from one already counted)")
OVERFLOW_REASON = ("its counts or cost would take a total the database keeps (its tenant's spend in a period, "
                   "or the day's usage of its tenant, agent and model) past the largest number it holds")


def _store_apart(store: Store, rows: list[dict[str, Any]], leases: dict[str, str], overflowing: list[str],
                 expired: list[str], key_hash: str | None = None) -> list[str]:
    """Store `rows` in one transaction; if a total overflows, store each half apart (the
    good events of the batch are stored, the events that overflow are added to `overflowing`,
    those older than the retention mark to `expired`). Returns the ids stored now."""
    try:
        return with_retries(lambda: store.add_events(rows, event_leases=leases, expired=expired, key_hash=key_hash))
    except Exception as exc:
        if not out_of_range(exc):
            raise
    if len(rows) == 1:
        overflowing.append(rows[0]["event_id"])
        return []
    middle = len(rows) // 2
    return (_store_apart(store, rows[:middle], leases, overflowing, expired, key_hash)
            + _store_apart(store, rows[middle:], leases, overflowing, expired, key_hash))


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
