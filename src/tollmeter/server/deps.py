"""Request dependencies: the server's state, and the caller's project (its API key's scope)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..store.store import Store
from .auth import project_for
from .state import ServerState

bearer = HTTPBearer(auto_error=False, description="An API key: `tollmeter keys create --project NAME`")


def server_state(request: Request) -> ServerState:
    return request.app.state.server


def project_store(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Store:
    """The store as the key's project sees it; 401 for a missing, unknown or revoked key."""
    state = server_state(request)
    if credentials is None:
        raise missing_key()
    project = project_for(state.store, credentials.credentials)
    if project is None:
        raise invalid_key()
    return state.store.for_project(project)


def missing_key() -> HTTPException:
    return HTTPException(401, "missing API key: send Authorization: Bearer <key>",
                         headers={"WWW-Authenticate": "Bearer"})


def invalid_key() -> HTTPException:
    return HTTPException(401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})


ProjectStore = Annotated[Store, Depends(project_store)]
State = Annotated[ServerState, Depends(server_state)]
