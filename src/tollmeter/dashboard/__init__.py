"""The dashboard: spend, revenue, margin, leaks and limits as web pages (needs the `server`
extra). See docs/dashboard.md.

    routes.py    the pages and forms (server-rendered Jinja2 templates, inline SVG charts)
    views.py     what each page shows, read through the functions the API answers with
    charts.py    pygal charts as inline SVG (no script, nothing fetched)
    ranges.py    the range picker (days, and day / week / month buckets)
    sessions.py  signed-cookie sessions that expire, and CSRF tokens
    access.py    who sees which project (an API key's on the server; the embedded store's locally)
    local.py     `tollmeter dashboard`: the pages over the embedded store, on 127.0.0.1
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .access import DashboardConfig
from .sessions import Sessions

if TYPE_CHECKING:
    from fastapi import FastAPI

#: Set to 1 when the server is reached over HTTPS: the session cookie is then marked Secure.
HTTPS_ENV = "TOLLMETER_DASHBOARD_HTTPS"


def install(app: FastAPI) -> None:
    """Serve the dashboard's pages from the ingest server's app (sign-in with an API key)."""
    from .routes import router

    secure = os.environ.get(HTTPS_ENV, "").strip().lower() in ("1", "true", "yes", "on")
    app.state.dashboard = DashboardConfig(Sessions(https_only=secure))
    app.include_router(router)
