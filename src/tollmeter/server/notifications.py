"""Notification webhooks of the key's project: /v1/notifications/endpoints (create, list, show,
change, remove, send a test) and /v1/notifications/deliveries (the delivery log, and one delivery's
attempts). The rules and the sending are in notifications/; see docs/notifications.md.

A new endpoint's answer carries its secret (generated when not given): the only time it is
shown. Bad input is a 422 naming the field."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from ..notifications import log
from ..notifications.endpoints import RULES
from .body import StrictJSONRoute
from .deps import ProjectStore
from .models import StorableText, Strict

router = APIRouter(tags=["notifications"], route_class=StrictJSONRoute)

Rule = Literal[RULES]  # type: ignore[valid-type]
Url = Annotated[str, Field(min_length=1, max_length=2048, examples=["https://hooks.example.com/tollmeter"]),
                StorableText]
Secret = Annotated[str, Field(min_length=16, max_length=255), StorableText]
Description = Annotated[str, Field(max_length=255), StorableText]
Threshold = Annotated[float, Field(gt=0, le=1000, description="percent of a limit")]
EndpointId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$"), StorableText]


class EndpointIn(Strict):
    url: Url
    secret: Secret | None = Field(None, description="HMAC key; generated (and answered once) when not given")
    format: Literal["json", "slack"] = "json"
    rules: list[Rule] = Field(default_factory=lambda: list(RULES), min_length=1, max_length=len(RULES))
    thresholds: list[Threshold] = Field(default_factory=lambda: [80, 100], min_length=1, max_length=10)
    refusal_count: int = Field(10, ge=1, le=1_000_000, description="refused leases that make a burst...")
    refusal_window_minutes: int = Field(5, ge=1, le=1440, description="...within this many minutes")
    enabled: bool = True
    description: Description | None = None


class EndpointPatch(Strict):
    url: Url | None = None
    secret: Secret | None = None
    format: Literal["json", "slack"] | None = None
    rules: list[Rule] | None = Field(None, min_length=1, max_length=len(RULES))
    thresholds: list[Threshold] | None = Field(None, min_length=1, max_length=10)
    refusal_count: int | None = Field(None, ge=1, le=1_000_000)
    refusal_window_minutes: int | None = Field(None, ge=1, le=1440)
    enabled: bool | None = None
    description: Description | None = None


class EndpointOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    endpoint_id: str
    url: str
    format: str
    rules: list[str]
    thresholds: list[int | float]
    refusal_count: int
    refusal_window_minutes: int
    enabled: bool
    description: str | None
    secret_hint: str
    secret: str | None = Field(None, description="only in the answer that set it")
    created_at: str
    updated_at: str


class EndpointsOut(BaseModel):
    endpoints: list[EndpointOut]


class DeliveryOut(BaseModel):
    delivery_id: str
    endpoint_id: str
    message_id: str
    event: str
    status: str
    notification_status: str | None
    tenant_id: str | None
    text: str | None
    attempts: int
    last_status_code: int | None
    last_error: str | None
    answers: list[str] = Field(description="each attempt's status code or error kind, in order: [\"503\", \"200\"]")
    next_attempt_at: str | None
    created_at: str | None
    delivered_at: str | None


class DeliveriesOut(BaseModel):
    deliveries: list[DeliveryOut]


class AttemptOut(BaseModel):
    attempt: int
    attempted_at: str | None
    status_code: int | None
    error: str | None
    next_attempt_at: str | None


class AttemptsOut(BaseModel):
    delivery_id: str
    attempts: list[AttemptOut]


def _save(store: Any, **fields: Any) -> dict[str, Any]:
    try:
        return log.save_endpoint(store, **fields)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("/v1/notifications/endpoints", response_model=EndpointsOut, summary="The project's webhook endpoints")
def list_endpoints(store: ProjectStore) -> dict[str, Any]:
    return {"endpoints": log.list_endpoints(store)}


@router.post("/v1/notifications/endpoints", response_model=EndpointOut, status_code=201,
             summary="Add a webhook endpoint (its secret is in this answer only)")
def create_endpoint(body: EndpointIn, store: ProjectStore) -> dict[str, Any]:
    return _save(store, **body.model_dump())


@router.get("/v1/notifications/endpoints/{endpoint_id}", response_model=EndpointOut, summary="One endpoint")
def get_endpoint(endpoint_id: EndpointId, store: ProjectStore) -> dict[str, Any]:
    found = log.get_endpoint(store, endpoint_id)
    if found is None:
        raise HTTPException(404, f"no endpoint {endpoint_id!r} in this project")
    return found


@router.patch("/v1/notifications/endpoints/{endpoint_id}", response_model=EndpointOut,
              summary="Change an endpoint (the fields given)")
def patch_endpoint(endpoint_id: EndpointId, body: EndpointPatch, store: ProjectStore) -> dict[str, Any]:
    if log.get_endpoint(store, endpoint_id) is None:
        raise HTTPException(404, f"no endpoint {endpoint_id!r} in this project")
    fields = body.model_dump(exclude_unset=True)
    for name in list(fields):
        if fields[name] is None and name != "description":
            raise HTTPException(422, f"{name}: give a value, or leave it out to keep it")
    return _save(store, endpoint_id=endpoint_id, **fields)


@router.delete("/v1/notifications/endpoints/{endpoint_id}", status_code=204, response_class=Response,
               summary="Remove an endpoint (its deliveries not sent yet are given up)")
def delete_endpoint(endpoint_id: EndpointId, store: ProjectStore) -> Response:
    if not log.delete_endpoint(store, endpoint_id):
        raise HTTPException(404, f"no endpoint {endpoint_id!r} in this project")
    return Response(status_code=204)


class TestOut(BaseModel):
    message_id: str
    endpoint_id: str
    queued: bool


@router.post("/v1/notifications/endpoints/{endpoint_id}/test", response_model=TestOut, status_code=202,
             summary="Queue a notification.test message to an endpoint (sent by the next round)")
def test_endpoint(endpoint_id: EndpointId, store: ProjectStore) -> dict[str, Any]:
    message = log.send_test(store, endpoint_id)
    if message is None:
        raise HTTPException(404, f"no endpoint {endpoint_id!r} in this project")
    return {"message_id": message["id"], "endpoint_id": endpoint_id, "queued": True}


@router.get("/v1/notifications/deliveries", response_model=DeliveriesOut,
            summary="The delivery log, newest first: attempts, last status code or error, next retry")
def deliveries(store: ProjectStore,
               limit: Annotated[int, Query(ge=1, le=log.MAX_DELIVERIES)] = 100,
               endpoint_id: Annotated[str | None, Query(max_length=32), StorableText] = None,
               status: Annotated[Literal["pending", "delivered", "failed"] | None, Query()] = None) -> dict[str, Any]:
    return {"deliveries": log.recent_deliveries(store, limit, endpoint_id=endpoint_id, status=status)}


@router.get("/v1/notifications/deliveries/{delivery_id}/attempts", response_model=AttemptsOut,
            summary="Every attempt of one delivery")
def attempts(delivery_id: Annotated[str, Path(min_length=1, max_length=32), StorableText],
             store: ProjectStore) -> dict[str, Any]:
    return {"delivery_id": delivery_id, "attempts": log.delivery_attempts(store, delivery_id)}
