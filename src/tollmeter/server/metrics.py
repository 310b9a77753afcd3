"""Prometheus metrics of the ingest server: `GET /metrics`, in the Prometheus text format
(or OpenMetrics when the scraper asks for it), through `prometheus-client`.

What is counted (docs/server.md lists the names):
- ingest requests by HTTP status, and their latency (a histogram), by `IngestMetrics`, an ASGI
  middleware around `POST /v1/ingest` (refusals before the handler, a 401 or a 413, included);
- events stored, duplicates, stored unpriced, and refused by reason, per project
  (`record_batch`, called with each batch's answer);
- budget leases granted and refused, per project (`record_lease`), and leases given back;
- notification deliveries by outcome (`record_delivery`, called by the notifier).

The metrics span every project, so an API key (one project's) does not open them: a dedicated
token does (`metrics_token`, `TOLLMETER_METRICS_TOKEN`), sent as `Authorization: Bearer <token>`;
without one set, `/metrics` answers 404.

Several worker processes (`tollmeter serve --workers N`): each process counts its own. With
`PROMETHEUS_MULTIPROC_DIR` set (to an empty directory, before the server starts) the workers
write their counts there and every scrape answers the sum over all of them
(prometheus-client's multiprocess mode); without it a scrape answers one worker's counts.
"""

from __future__ import annotations

import hmac
import os
import re
import time
from typing import Any, Awaitable, Callable, Mapping

from fastapi import APIRouter, HTTPException, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.exposition import choose_encoder

from ..events import EVENT_FIELDS

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
INGEST_PATH = "/v1/ingest"

#: Our metrics only (not the default registry's process and GC collectors: in multiprocess
#: mode those would describe whichever worker answered).
REGISTRY = CollectorRegistry(auto_describe=True)

INGEST_REQUESTS = Counter("tollmeter_ingest_requests", "Ingest requests answered, by HTTP status",
                          ["status"], registry=REGISTRY)
INGEST_SECONDS = Histogram("tollmeter_ingest_duration_seconds",
                           "Time to answer an ingest request, body read and database write included",
                           registry=REGISTRY,
                           buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
EVENTS_INGESTED = Counter("tollmeter_events_ingested", "Events stored (each event_id once)",
                          ["project"], registry=REGISTRY)
EVENTS_DUPLICATE = Counter("tollmeter_events_duplicate", "Events received again (already stored, or "
                           "repeated in their batch): not stored twice", ["project"], registry=REGISTRY)
EVENTS_UNPRICED = Counter("tollmeter_events_unpriced", "Events stored without a price (unknown model)",
                          ["project"], registry=REGISTRY)
EVENTS_REJECTED = Counter("tollmeter_events_rejected", "Events refused, by reason (the field at fault, "
                          "content, overflow, ...)", ["project", "reason"], registry=REGISTRY)
RESOLUTIONS_REJECTED = Counter("tollmeter_resolutions_rejected", "Run resolutions refused",
                               ["project"], registry=REGISTRY)
LEASES = Counter("tollmeter_leases", "Budget lease requests answered, by outcome (granted, refused)",
                 ["project", "outcome"], registry=REGISTRY)
LEASES_RELEASED = Counter("tollmeter_leases_released", "Leases given back", ["project"], registry=REGISTRY)
DELIVERIES = Counter("tollmeter_notification_deliveries", "Notification deliveries, by outcome",
                     ["outcome"], registry=REGISTRY)

_OUTCOME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
#: Reasons are a closed set (a label's values must be few): the wire fields, and these.
_FIELDS = frozenset(f.name for f in EVENT_FIELDS)
_LEADING_FIELD = re.compile(r"^([a-z_]+)[.:]")


def record_delivery(outcome: str) -> None:
    """Count one notification delivery attempt: `outcome` like "delivered", "failed",
    "retrying" (lower-case letters, digits and '_', at most 32: a label value)."""
    if not isinstance(outcome, str) or not _OUTCOME.match(outcome):
        raise ValueError(f"a delivery outcome is a short lower-case word like 'delivered', got {outcome!r}")
    DELIVERIES.labels(outcome=outcome).inc()


def record_batch(project: str, answer: Mapping[str, Any]) -> None:
    """Count what one ingest batch did, from the answer sent back (ingest.store_batch's)."""
    if answer.get("accepted"):
        EVENTS_INGESTED.labels(project=project).inc(answer["accepted"])
    if answer.get("duplicates"):
        EVENTS_DUPLICATE.labels(project=project).inc(answer["duplicates"])
    if answer.get("unpriced"):
        EVENTS_UNPRICED.labels(project=project).inc(answer["unpriced"])
    for item in answer.get("rejected") or ():
        EVENTS_REJECTED.labels(project=project, reason=rejection_reason(item.get("reason", ""))).inc()
    if answer.get("rejected_resolutions"):
        RESOLUTIONS_REJECTED.labels(project=project).inc(len(answer["rejected_resolutions"]))


def rejection_reason(message: str) -> str:
    """The label for a refused event's reason: one of a closed set, whatever the message says
    (messages name user-chosen keys, which must not become label values)."""
    if "content fields are not accepted" in message:
        return "content"
    if "nested deeper than" in message:
        return "too_deep"
    if "past the largest number it holds" in message:
        return "overflow"
    if "must be a JSON object" in message:
        return "not_an_object"
    match = _LEADING_FIELD.match(message)
    if match and match.group(1) in _FIELDS:
        return match.group(1)
    return "invalid"


def record_lease(project: str, answer: Mapping[str, Any]) -> None:
    """Count one lease request, from the answer sent back (wire.grant's)."""
    LEASES.labels(project=project, outcome="refused" if answer.get("refused") else "granted").inc()


def record_release(project: str) -> None:
    LEASES_RELEASED.labels(project=project).inc()


# -- exposition ------------------------------------------------------------------------------------


def exposition(accept: str | None) -> tuple[bytes, str]:
    """The metrics in the format the scraper accepts, and its content type: this process's
    counts, or every worker's when PROMETHEUS_MULTIPROC_DIR is set."""
    registry = REGISTRY
    if os.environ.get(MULTIPROCESS_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    token = request.app.state.server.settings.metrics_token
    if not token:
        raise HTTPException(404, "metrics are off: set TOLLMETER_METRICS_TOKEN (docs/server.md)")
    sent = request.headers.get("authorization", "")
    scheme, _, credentials = sent.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.strip().encode(), token.encode()):
        raise HTTPException(401, "send Authorization: Bearer <metrics token> (TOLLMETER_METRICS_TOKEN; "
                                 "API keys do not open the metrics)", headers={"WWW-Authenticate": "Bearer"})
    body, content_type = exposition(request.headers.get("accept"))
    return Response(body, media_type=content_type)


# -- the ingest middleware -------------------------------------------------------------------------

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


class IngestMetrics:
    """Times every `POST /v1/ingest` and counts it by the status answered (an exception that
    reaches here is a 500); every other request passes after one comparison."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]],
                       send: Callable[[dict], Awaitable[None]]) -> None:
        if scope["type"] != "http" or scope["path"] != INGEST_PATH:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_see(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_see)
        finally:
            INGEST_SECONDS.observe(time.perf_counter() - start)
            INGEST_REQUESTS.labels(status=str(status)).inc()
