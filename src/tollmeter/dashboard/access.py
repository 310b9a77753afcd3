"""Who may see what: on the server, the project of the API key a user signed in with (the key
checked again on every request: a revoked key ends its sessions); on `tollmeter dashboard`, the
embedded store's project, no sign-in (the server binds 127.0.0.1 only)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from starlette.requests import Request

from ..server.auth import project_for
from ..store import schema
from ..store.store import Store
from .sessions import Session, Sessions


@dataclass
class DashboardConfig:
    sessions: Sessions = field(default_factory=Sessions)
    #: `tollmeter dashboard`: the one store shown, no sign-in. None on the server.
    local_store: Store | None = None


def config(request: Request) -> DashboardConfig:
    return request.app.state.dashboard


def _server_store(request: Request) -> Store:
    return request.app.state.server.store


def viewer_store(request: Request) -> tuple[Store, Session] | Session:
    """(the store as the signed-in project sees it, the session), or the (anonymous) session
    when nobody is signed in."""
    cfg = config(request)
    session = cfg.sessions.load(request)
    if cfg.local_store is not None:
        return cfg.local_store, session
    if session.project is None or session.key_id is None:
        return session
    store = _server_store(request)
    if key_project(store, session.key_id) != session.project:
        return Session(session.csrf, fresh=True)  # the key was revoked: signed out
    return store.for_project(session.project), session


def sign_in(request: Request, key: str) -> Session | None:
    """A signed-in session for a valid, unrevoked API key; None otherwise."""
    store = _server_store(request)
    project = project_for(store, key)
    if project is None:
        return None
    key_id = key.split("_")[1]  # tm_<key id>_<secret>: project_for checked the shape
    return config(request).sessions.signed_in(project, key_id)


def key_project(store: Store, key_id: str) -> str | None:
    """The project of an unrevoked key, by its id."""
    t = schema.api_keys
    with store.transaction() as conn:
        return conn.execute(select(t.c.project_id).where(t.c.key_id == key_id, t.c.revoked_at.is_(None))).scalar()
