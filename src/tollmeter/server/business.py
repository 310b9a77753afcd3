"""Customers, run resolutions, margin and leaks: /v1/customers, /v1/runs/{run_id}/resolve,
/v1/margin and /v1/leaks (business/ computes them; this module reads and answers).

Tenant and run ids are path segments: percent-encode them (`/` as %2F). A value the business
rules refuse (a plan without its amounts, negative money, an unknown group, ...) is a 422 whose
`detail` names the field; resolving a run already resolved differently is a 409. `GET
/v1/margin` and `GET /v1/leaks` answer CSV to `Accept: text/csv`."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response

from ..business.leaks import LeakSettings
from ..business.margin import check_groups, day_range
from ..business.plans import PlanError, money
from ..business.report import CSV_MEDIA_TYPE, leaks_csv, margin_csv
from ..business.wire import customer_to_dict, parse_when, resolution_to_dict
from ..store.ledger import Ledger, RunAlreadyResolved
from .body import StrictJSONRoute
from .deps import ProjectStore
from .models import (CustomerIn, CustomerOut, CustomersOut, LeaksOut, MarginOut, ResolutionOut, ResolveIn,
                     StorableText)
from .retry import with_retries
from .validation import Invalid, validate_resolution
from .wire import Answer

router = APIRouter(route_class=StrictJSONRoute)

#: The longest range of days a margin report covers (ten years).
MAX_REPORT_DAYS = 3660
_CSV = {200: {"content": {"text/csv": {"schema": {"type": "string"}}},
              "description": "JSON, or CSV with `Accept: text/csv`"}}
# (GET /v1/margin answers its dict as it is, so that each row's group comes before its measures.)
_REFUSED = {422: {"description": "a value the business rules refuse; `detail` names it"}}

TenantPath = Annotated[str, Path(min_length=1, max_length=255, description="tenant id (percent-encoded)"),
                       StorableText]
RunPath = Annotated[str, Path(min_length=1, max_length=255, description="run id (percent-encoded)"), StorableText]


def _refused(exc: Exception) -> HTTPException:
    return HTTPException(422, str(exc))


# -- customers -------------------------------------------------------------------------------------


@router.get("/v1/customers", response_model=CustomersOut, tags=["customers"],
            summary="Every customer of the project, with its plan in force today and its plan history")
def list_customers(store: ProjectStore) -> Answer:
    return Answer({"customers": [customer_to_dict(c) for c in Ledger(store).customers()]})


@router.get("/v1/customers/{tenant_id:path}", response_model=CustomerOut, tags=["customers"],
            summary="A customer", responses={404: {"description": "no such customer"}})
def get_customer(tenant_id: TenantPath, store: ProjectStore) -> dict[str, Any]:
    found = Ledger(store).customer(tenant_id)
    if found is None:
        raise HTTPException(404, f"no customer {tenant_id!r}")
    return customer_to_dict(found)


@router.put("/v1/customers/{tenant_id:path}", response_model=CustomerOut, tags=["customers"], responses=_REFUSED,
            summary="Create or update a customer: its name, and its plan and seats from a day on")
def put_customer(tenant_id: TenantPath, body: CustomerIn, store: ProjectStore) -> dict[str, Any]:
    plan = body.plan.model_dump(exclude_none=True) if body.plan is not None else None
    ledger = Ledger(store)
    try:
        customer = with_retries(lambda: ledger.upsert_customer(tenant_id, name=body.name, plan=plan, seats=body.seats,
                                                               effective_from=body.effective_from))
    except PlanError as exc:
        raise _refused(exc) from None
    return customer_to_dict(customer)


# -- runs ------------------------------------------------------------------------------------------


@router.post("/v1/runs/{run_id:path}/resolve", response_model=ResolutionOut, tags=["runs"],
             summary="Resolve a run with its outcome (idempotent)",
             responses={**_REFUSED, 409: {"description": "the run was already resolved differently"}})
def resolve_run(run_id: RunPath, body: ResolveIn, store: ProjectStore) -> dict[str, Any]:
    raw = {"run_id": run_id, **body.model_dump(exclude_none=True)}
    if body.revenue_usd is not None:
        raw["revenue_usd"] = str(body.revenue_usd)  # (never "f": 1E+999999999 would be a billion digits)
    try:
        r = validate_resolution(raw, datetime.now(timezone.utc))
    except Invalid as exc:
        raise _refused(exc) from None
    ledger = Ledger(store)
    try:
        stored = with_retries(lambda: ledger.resolve(r.run_id, r.outcome, revenue_usd=r.revenue_usd,
                                                     tenant_id=r.tenant_id, agent_id=r.agent_id, at=r.resolved_at,
                                                     key=r.key))
    except RunAlreadyResolved as exc:
        raise HTTPException(409, str(exc)) from None
    except PlanError as exc:
        raise _refused(exc) from None
    return resolution_to_dict(stored)


# -- margin and leaks ------------------------------------------------------------------------------


@router.get("/v1/margin", response_model=None, tags=["margin"],
            responses={200: {**_CSV[200], "model": MarginOut}, **_REFUSED},
            summary="Revenue, cost and margin, grouped, over a range of UTC days")
def get_margin(
    request: Request,
    store: ProjectStore,
    group_by: Annotated[list[str] | None, Query(
        description="any of tenant, run, agent, model, day, week, month: repeated or comma-separated "
                    "(default tenant; empty for the total alone)")] = None,
    since: Annotated[str | None, Query(max_length=64, description="first day: 2026-11-01, a time (its "
                                                                  "next midnight), 7d; default: the 1st of "
                                                                  "this month")] = None,
    until: Annotated[str | None, Query(max_length=64, description="end (exclusive), same forms; default: "
                                                                  "tomorrow")] = None,
    tenant_id: Annotated[str | None, Query(max_length=255, description="one tenant only"), StorableText] = None,
) -> Any:
    groups = ["tenant"] if group_by is None else [g.strip() for item in group_by for g in item.split(",") if g.strip()]
    try:
        chosen = check_groups(groups)
        first, end = day_range(parse_when(since, "since"), parse_when(until, "until"))
    except (PlanError, OverflowError) as exc:
        raise HTTPException(422, str(exc) if isinstance(exc, PlanError) else "since/until: out of range") from None
    if (end - first).days > MAX_REPORT_DAYS:
        raise HTTPException(422, f"since/until: {(end - first).days} days, more than the {MAX_REPORT_DAYS} a report "
                                 "covers at most")
    report = Ledger(store).margin(chosen, since=first, until=end, tenant_id=tenant_id)
    if wants_csv(request.headers.get("accept")):
        return Response(margin_csv(report), media_type=CSV_MEDIA_TYPE)
    return Answer(report.to_dict())


@router.get("/v1/leaks", response_model=LeaksOut, tags=["margin"], responses={**_CSV, **_REFUSED},
            summary="Customers, runs and agents losing money this month (UTC), each with its rule and numbers")
def get_leaks(
    request: Request,
    store: ProjectStore,
    margin_floor_pct: Annotated[str | None, Query(max_length=64, description="default 20")] = None,
    spike_factor: Annotated[str | None, Query(max_length=64, description="default 3")] = None,
    spike_window_days: Annotated[int | None, Query(ge=1, le=366, description="default 14")] = None,
    spike_min_usd: Annotated[str | None, Query(max_length=64, description="default 1")] = None,
    projection_days: Annotated[int | None, Query(ge=1, le=366, description="default 7")] = None,
    tenant_id: Annotated[str | None, Query(max_length=255, description="one customer's flags alone"),
                         StorableText] = None,
) -> Any:
    given: dict[str, Any] = {}
    try:
        for name, value in (("margin_floor_pct", margin_floor_pct), ("spike_factor", spike_factor),
                            ("spike_min_usd", spike_min_usd)):
            if value is not None:
                given[name] = money(value, name)
        for name, days in (("spike_window_days", spike_window_days), ("projection_days", projection_days)):
            if days is not None:
                given[name] = days
        settings = LeakSettings(**given)
    except PlanError as exc:
        raise _refused(exc) from None
    found = Ledger(store).leaks(settings, tenant_id=tenant_id)
    if wants_csv(request.headers.get("accept")):
        return Response(leaks_csv(found), media_type=CSV_MEDIA_TYPE)
    return Answer({"leaks": [leak.to_dict() for leak in found]})


def wants_csv(accept: str | None) -> bool:
    """Whether the Accept header prefers text/csv to application/json (JSON unless CSV is asked for)."""
    if not accept:
        return False
    best: dict[str, tuple[float, int]] = {}
    for index, part in enumerate(accept.split(",")):
        media, *params = [p.strip() for p in part.split(";")]
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        kind = {"text/csv": "csv", "application/json": "json"}.get(media.lower())
        if kind is not None and (kind not in best or quality > best[kind][0]):
            best[kind] = (quality, -index)
    csv = best.get("csv", (0.0, 0))
    return csv[0] > 0 and csv >= best.get("json", (0.0, 0))
