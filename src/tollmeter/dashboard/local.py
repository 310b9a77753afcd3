"""`tollmeter dashboard`: the dashboard over the embedded store, for one person on this machine.

Bound to 127.0.0.1 and answering only to Host 127.0.0.1 or localhost (a web page cannot reach
it through a rebound domain name); no sign-in, but its forms still carry CSRF tokens."""

from __future__ import annotations

import socket

from fastapi import FastAPI
from starlette.middleware.trustedhost import TrustedHostMiddleware

from .. import heap
from ..store.store import Store
from .access import DashboardConfig
from .sessions import Sessions

HOST = "127.0.0.1"
DEFAULT_PORT = 8731


def create_local_app(store: Store) -> FastAPI:
    from .routes import router

    app = FastAPI(title="tollmeter dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.dashboard = DashboardConfig(Sessions(), local_store=store)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=[HOST, "localhost"])
    app.include_router(router)
    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def serve(store: Store, port: int = DEFAULT_PORT, *, announce=print) -> None:
    """Serve until interrupted; `announce` is told the URL once the port is bound."""
    import uvicorn

    config = uvicorn.Config(create_local_app(store), host=HOST, port=port, log_level="warning", access_log=False)
    heap.for_serving()  # a process that only serves from here on
    server = uvicorn.Server(config)
    sock = config.bind_socket()  # port 0: the one the system chose
    sock.listen(config.backlog)  # listening before the URL is printed: a visit waits, never is refused
    port = sock.getsockname()[1]
    announce(f"tollmeter dashboard: http://{HOST}:{port}/  (Ctrl-C to stop)")
    server.run(sockets=[sock])
