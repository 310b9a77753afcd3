"""create_app(): the ingest server's ASGI app.

    uvicorn --factory tollmeter.server.app:create_app     # settings from TOLLMETER_* variables
    tollmeter serve --database-url postgresql://...        # the same, with flags

At start-up the app applies the database migrations (unless told not to), loads the rate card
and the price data; then it holds nothing but a connection pool, so replicas can come and go.
"""

from __future__ import annotations

import logging
import math
import re
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic.json_schema import models_json_schema
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.concurrency import run_in_threadpool

from .. import dashboard, heap
from .._version import __version__
from ..business.warm import ReportWarmer
from ..notifications.runner import start_notifier
from ..notifications.settings import NotifierSettings
from . import business, ingest, leases, limits, notifications, usage
from . import metrics
from .models import IngestBatch
from .settings import ServerSettings
from .state import ServerState, describe

logger = logging.getLogger("tollmeter.server")

DESCRIPTION = """\
Meters, prices and caps the LLM spend of every tenant: the agents post their events here, and
ask for budget leases; you set limits and read usage, and with your customers' plans and the
outcomes of their runs, revenue, margin and the customers that lose you money. Every request needs
`Authorization: Bearer <API key>` (`tollmeter keys create --project NAME`), and sees only that
key's project. Money is a decimal string, times are ISO 8601 UTC. See docs/server.md.
"""


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """The app over `settings` (default: from the TOLLMETER_* environment variables)."""
    settings = settings if settings is not None else ServerSettings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await run_in_threadpool(ServerState.open, settings)
        app.state.server = state
        logger.info("tollmeter server %s on %s", __version__, describe(settings.database_url))
        notifier = start_notifier(state.store, app.state.notifier_settings)
        if settings.freeze_heap:
            heap.for_serving()
        warmer = app.state.warmer = ReportWarmer(state.store) if settings.warm_reports else None
        if warmer is not None:
            warmer.start()
        try:
            yield
        finally:
            if warmer is not None:
                await run_in_threadpool(warmer.stop)
            if notifier is not None:
                await run_in_threadpool(notifier.stop)
            state.close()

    app = FastAPI(title="tollmeter", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    #: The background notifications' settings (TOLLMETER_NOTIFY_*), read once here.
    app.state.notifier_settings = NotifierSettings.from_env()
    for module in (ingest, limits, leases, usage, business, notifications):
        app.include_router(module.router)
    dashboard.install(app)  # the pages at /, signed in with a project's API key (docs/dashboard.md)
    app.include_router(metrics.router)
    app.add_middleware(metrics.IngestMetrics)  # times and counts POST /v1/ingest

    @app.get("/healthz", tags=["operations"], summary="The server and its database answer (no key needed)")
    def healthz(request: Request) -> dict[str, str]:
        with request.app.state.server.store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok"}

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer, except that what it echoes must be JSON that UTF-8 can carry:
        # a NaN or an Infinity in the body (Python's JSON reader takes them) is echoed as text,
        # an unpaired surrogate ("\ud800" in the body) as its escape.
        return JSONResponse({"detail": _echoable(jsonable_encoder(exc.errors()))}, status_code=422)

    @app.exception_handler(OperationalError)
    async def database_unavailable(request: Request, exc: OperationalError) -> JSONResponse:
        logger.error("database error on %s %s: %s", request.method, request.url.path, type(exc.orig).__name__)
        return JSONResponse({"detail": "database unavailable, retry later"}, status_code=503,
                            headers={"Retry-After": "1"})

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        logger.error("database error on %s %s: %s", request.method, request.url.path, type(exc.orig).__name__)
        return JSONResponse({"detail": "database error"}, status_code=500)

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _echoable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", value)
    if isinstance(value, dict):
        return {_echoable(k): _echoable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_echoable(v) for v in value]
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, plus the ingest body (read by hand, so FastAPI does not see its model)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        _, defs = models_json_schema([(IngestBatch, "validation")], ref_template="#/components/schemas/{model}")
        schema.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
        app.openapi_schema = schema
    return app.openapi_schema
