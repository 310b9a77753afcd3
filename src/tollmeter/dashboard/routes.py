"""The dashboard's pages: server-rendered HTML (Jinja2) with inline SVG charts, no script.

Mounted by `tollmeter serve` beside the API (the pages sign in with a project API key) and by
`tollmeter dashboard` on the embedded store (no sign-in: bound to 127.0.0.1). Every page reads
through views.py; every form carries the session's CSRF token; a limit is changed in two
steps (the form, then a confirmation page showing the old and new amounts)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from .._version import __version__
from ..business.report import percent
from ..limits.periods import FREQUENCIES
from ..money import decimal_text, usd_text
from ..server.models import LimitIn, Tenant
from ..store.store import DEFAULT_TENANT_LIMITS, Store
from . import access, views
from .ranges import BadRange, parse_range
from .sessions import Session, csrf_ok

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters.update(
    usd=usd_text,
    pct=lambda v: percent(v) if v is not None else "-",
    num=lambda v: f"{v:,}" if v is not None else "-",
    exact=lambda v: decimal_text(v) or "",  # as the API writes amounts
    url=lambda v: quote(str(v), safe=""),
)
templates.env.globals.update(version=__version__, frequencies=FREQUENCIES)

router = APIRouter(include_in_schema=False)

#: Headers on every page: no script at all, nothing from elsewhere, no framing, no caching.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_TENANT = TypeAdapter(Tenant)


@dataclass
class Viewer:
    """Who is looking: a project's store (only that project's rows), and the session."""
    store: Store
    project: str
    session: Session
    local: bool


def _viewer(request: Request) -> Viewer | Response:
    """The signed-in project, or a redirect to the sign-in page."""
    found = access.viewer_store(request)
    if isinstance(found, tuple):
        store, session = found
        return Viewer(store, store.project, session, access.config(request).local_store is not None)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = RedirectResponse("/signin?" + urlencode({"next": target}), status_code=303)
    return _finish(request, response, found)


def _finish(request: Request, response: Response, session: Session | None) -> Response:
    response.headers.update(SECURITY_HEADERS)
    if session is not None and session.fresh:
        access.config(request).sessions.save(response, session)
    return response


def _render(request: Request, viewer: Viewer | None, template: str, status: int = 200, *,
            session: Session | None = None, **context: Any) -> Response:
    session = session or (viewer.session if viewer else None)
    response = templates.TemplateResponse(request, template, {
        "viewer": viewer, "csrf": session.csrf if session else "", "active": template.split(".")[0],
        "notifications_enabled": viewer is not None and not viewer.local, **context,
    }, status_code=status)
    return _finish(request, response, session)


def _bad(request: Request, viewer: Viewer | None, message: str, status: int = 400) -> Response:
    return _render(request, viewer, "error.html", status, message=message)


def _viewer_and_range(request: Request) -> tuple[Viewer, Any] | Response:
    """A page's signed-in project and its range, or the response that stands instead
    (the sign-in redirect, a bad range's page)."""
    viewer = _viewer(request)
    if isinstance(viewer, Response):
        return viewer
    rng = _range(request, viewer)
    if isinstance(rng, Response):
        return rng
    return viewer, rng


def _range(request: Request, viewer: Viewer) -> Any:
    try:
        return parse_range(request.query_params)
    except BadRange as exc:
        return _bad(request, viewer, str(exc))


# -- pages -----------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def overview_page(request: Request) -> Response:
    found = _viewer_and_range(request)
    if isinstance(found, Response):
        return found
    viewer, rng = found
    return _render(request, viewer, "overview.html", view=views.overview(viewer.store, rng), rng=rng)


def _customer_rows(request: Request, viewer: Viewer, rng: Any) -> tuple[list[views.CustomerRow], dict[str, Any]]:
    params = request.query_params
    sort = params.get("sort") or "cost"
    if sort not in views.CUSTOMER_SORTS:
        sort = "cost"
    descending = params.get("dir", "desc") != "asc"
    chosen = {"q": (params.get("q") or "")[:200], "sort": sort, "dir": "desc" if descending else "asc",
              "leaking": params.get("leaking") == "1"}
    rows = views.customers(viewer.store, rng, query=chosen["q"], sort=sort, descending=descending,
                           leaking=chosen["leaking"])
    return rows, chosen


@router.get("/customers", response_class=HTMLResponse)
def customers_page(request: Request) -> Response:
    found = _viewer_and_range(request)
    if isinstance(found, Response):
        return found
    viewer, rng = found
    rows, chosen = _customer_rows(request, viewer, rng)
    return _render(request, viewer, "customers.html", rows=rows, rng=rng, chosen=chosen,
                   sorts=views.CUSTOMER_SORTS, filters=_filters(rng, chosen))


def _filters(rng: Any, chosen: dict[str, Any]) -> str:
    extra = {"q": chosen["q"]} if chosen["q"] else {}
    if chosen["leaking"]:
        extra["leaking"] = "1"
    return rng.query(**extra)


@router.get("/customers.csv")
def customers_csv(request: Request) -> Response:
    found = _viewer_and_range(request)
    if isinstance(found, Response):
        return found
    viewer, rng = found
    rows, _ = _customer_rows(request, viewer, rng)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for line in views.customer_csv_rows(rows):
        writer.writerow([_csv_safe(cell) for cell in line])
    name = f"customers-{rng.first.isoformat()}-{rng.last.isoformat()}.csv"
    response = Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
    return _finish(request, response, viewer.session)


def _csv_safe(cell: str) -> str:
    """A cell a spreadsheet will not run as a formula (tenant ids and names come from users)."""
    return "'" + cell if cell[:1] in ("=", "+", "@", "\t", "\r") or (cell[:1] == "-" and not _number(cell)) else cell


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


@router.get("/customers/{tenant_id:path}", response_class=HTMLResponse)
def customer_page(request: Request, tenant_id: str) -> Response:
    viewer = _viewer(request)
    if isinstance(viewer, Response):
        return viewer
    try:
        _TENANT.validate_python(tenant_id)
    except ValidationError:
        return _bad(request, viewer, "not a tenant id")
    rng = _range(request, viewer)
    if isinstance(rng, Response):
        return rng
    view = views.customer(viewer.store, tenant_id, rng)
    if view.customer is None and not view.total.calls and not view.limits:
        return _bad(request, viewer, f"no customer {tenant_id!r} and no usage in this range", 404)
    return _render(request, viewer, "customer.html", view=view, rng=rng)


@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request) -> Response:
    found = _viewer_and_range(request)
    if isinstance(found, Response):
        return found
    viewer, rng = found
    return _render(request, viewer, "models.html", view=views.models(viewer.store, rng), rng=rng)


@router.get("/limits", response_class=HTMLResponse)
def limits_page(request: Request) -> Response:
    viewer = _viewer(request)
    if isinstance(viewer, Response):
        return viewer
    return _render(request, viewer, "limits.html", rows=views.limits(viewer.store),
                   changed=request.query_params.get("changed"), default=DEFAULT_TENANT_LIMITS,
                   form={"tenant_id": request.query_params.get("tenant_id", ""), "frequency": "per_month",
                         "limit_usd": ""})


async def _posted(request: Request) -> tuple[Viewer, dict[str, str]] | Response:
    """A signed-in POST with the session's CSRF token: its viewer and form fields; else 403
    (or the sign-in redirect)."""
    viewer = await run_in_threadpool(_viewer, request)
    if isinstance(viewer, Response):
        return viewer
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    if not csrf_ok(viewer.session, fields.get("csrf")):
        return _bad(request, viewer, "this form has expired or did not come from this dashboard (CSRF token "
                                     "missing or wrong): reload the page and try again", 403)
    return viewer, fields


def _limit_change(fields: dict[str, str]) -> tuple[dict[str, Any], str | None]:
    """The limit a form asks for, checked as the API checks `PUT /v1/limits/{tenant}`."""
    form = {"tenant_id": fields.get("tenant_id", "").strip(), "frequency": fields.get("frequency", ""),
            "limit_usd": fields.get("limit_usd", "").strip()}
    try:
        _TENANT.validate_python(form["tenant_id"])
    except ValidationError:
        return form, "tenant: 1 to 255 characters (`*` for the default limit of every tenant without one)"
    try:
        checked = LimitIn.model_validate({"limit_usd": form["limit_usd"], "frequency": form["frequency"]})
    except ValidationError as exc:
        return form, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    if checked.limit_usd < 0:
        return form, "limit_usd: a limit is 0 or more"
    form.update(frequency=checked.frequency, amount=checked.limit_usd)
    return form, None


@router.post("/limits/confirm", response_class=HTMLResponse)
async def confirm_limit(request: Request) -> Response:
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    viewer, fields = posted
    form, error = _limit_change(fields)
    if error:
        rows = await run_in_threadpool(views.limits, viewer.store)
        return _render(request, viewer, "limits.html", 400, rows=rows, error=error, form=form,
                       default=DEFAULT_TENANT_LIMITS, changed=None)
    current = await run_in_threadpool(viewer.store.limits_for, form["tenant_id"])
    old = next((lim for lim in current if lim.frequency == form["frequency"] and not lim.default), None)
    return _render(request, viewer, "limit_confirm.html", form=form, old=old)


@router.post("/limits", response_class=HTMLResponse)
async def set_limit(request: Request) -> Response:
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    viewer, fields = posted
    form, error = _limit_change(fields)
    if error or fields.get("confirmed") != "yes":
        return _bad(request, viewer, error or "a limit is changed from its confirmation page")
    await run_in_threadpool(viewer.store.set_limit, form["tenant_id"], form["frequency"], form["amount"])
    target = "/limits?" + urlencode({"changed": f"{form['tenant_id']} {form['frequency']}"})
    return _finish(request, RedirectResponse(target, status_code=303), viewer.session)


# -- notifications ----------------------------------------------------------------------------------


@router.get("/notifications", response_class=HTMLResponse)
def notifications_page(request: Request) -> Response:
    viewer = _viewer(request)
    if isinstance(viewer, Response):
        return viewer
    if viewer.local:
        return _bad(request, viewer, "notifications are sent by the server (tollmeter serve); the embedded store "
                                     "has its on_threshold callback instead (docs/notifications.md)", 404)
    return _render(request, viewer, "notifications.html", view=views.notifications(viewer.store), form={},
                   saved=request.query_params.get("saved"))


@router.post("/notifications/endpoints", response_class=HTMLResponse)
async def save_endpoint(request: Request) -> Response:
    from ..notifications.log import save_endpoint as save

    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    viewer, fields = posted
    if viewer.local:
        return _bad(request, viewer, "notifications are sent by the server (tollmeter serve)", 404)
    form = await request.form()
    if fields.get("endpoint_id"):  # turn an endpoint on or off
        change: dict[str, Any] = {"endpoint_id": fields["endpoint_id"], "enabled": fields.get("enabled") == "yes"}
    else:
        change = {"url": fields.get("url", "").strip(), "format": fields.get("format", "json"),
                  "rules": [r for r in form.getlist("rule") if isinstance(r, str)],
                  "thresholds": fields.get("thresholds", ""), "description": fields.get("description", "").strip()}
    try:
        saved = await run_in_threadpool(lambda: save(viewer.store, **change))
    except ValueError as exc:
        view = await run_in_threadpool(views.notifications, viewer.store)
        return _render(request, viewer, "notifications.html", 400, view=view, error=str(exc), form=change)
    if "secret" not in saved:
        target = "/notifications?" + urlencode({"saved": saved["endpoint_id"]})
        return _finish(request, RedirectResponse(target, status_code=303), viewer.session)
    view = await run_in_threadpool(views.notifications, viewer.store)
    return _render(request, viewer, "notifications.html", view=view, created=saved, form={})


# -- sign-in ---------------------------------------------------------------------------------------


@router.get("/signin", response_class=HTMLResponse)
def signin_page(request: Request) -> Response:
    if access.config(request).local_store is not None:
        return _finish(request, RedirectResponse("/", status_code=303), None)
    session = access.config(request).sessions.load(request)
    return _render(request, None, "signin.html", session=session, next=_local_path(request.query_params.get("next")))


@router.post("/signin", response_class=HTMLResponse)
async def signin(request: Request) -> Response:
    cfg = access.config(request)
    if cfg.local_store is not None:
        return _finish(request, RedirectResponse("/", status_code=303), None)
    session = cfg.sessions.load(request)
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    target = _local_path(fields.get("next"))
    if not csrf_ok(session, fields.get("csrf")):
        return _render(request, None, "signin.html", 403, session=session, next=target,
                       error="the sign-in form expired: try again")
    signed = await run_in_threadpool(access.sign_in, request, fields.get("key", "").strip())
    if signed is None:
        return _render(request, None, "signin.html", 401, session=session, next=target,
                       error="this key is not valid (unknown or revoked)")
    return _finish(request, RedirectResponse(target, status_code=303), signed)


@router.post("/signout")
async def signout(request: Request) -> Response:
    cfg = access.config(request)
    session = cfg.sessions.load(request)
    form = await request.form()
    if not csrf_ok(session, form.get("csrf")):
        return _render(request, None, "error.html", 403, session=session, message="CSRF token missing or wrong")
    response = RedirectResponse("/signin" if cfg.local_store is None else "/", status_code=303)
    cfg.sessions.clear(response)
    return _finish(request, response, None)


def _local_path(target: str | None) -> str:
    """Where to go after signing in: a path of this site only (never `//elsewhere`)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/static/dashboard.css")
def stylesheet() -> Response:
    response = FileResponse(HERE / "static" / "dashboard.css", media_type="text/css")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
