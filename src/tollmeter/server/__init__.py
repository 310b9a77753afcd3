"""The ingest server (`pip install 'tollmeter[server]'`; `tollmeter serve`).

An ASGI app (FastAPI) over the store: events in (`POST /v1/ingest`), limits, spend, budget
leases and usage out, per project (an API key's scope). Stateless: any number of replicas
share one database (SQLite on one machine, PostgreSQL anywhere). See docs/server.md.

    app.py        create_app(): the app, its lifespan and error handlers
    settings.py   ServerSettings: database, rate card, payload limits (flags or environment)
    state.py      what the app holds while it runs: the store, the pricer, the settings
    auth.py       API keys: created, listed, revoked, looked up by hash
    deps.py       request dependencies: the server's state, the Bearer key's project
    body.py       reading a request body within limits; gzip decompressed as a stream; strict JSON
    validation.py one wire event checked field by field (content fields refused)
    pricing.py    pricing on arrival, and `reprice` of stored unpriced events
    wire.py       money, times and limit states as JSON
    models.py     request and response models (validation of small bodies, OpenAPI)
    retry.py      a transaction again after a PostgreSQL deadlock or serialization failure;
                  which writes failed because a total overflowed its column
    ingest.py     POST /v1/ingest
    limits.py     /v1/limits, /v1/rate-limits, /v1/tenants/{tenant}/spend
    leases.py     /v1/leases
    usage.py      /v1/usage
    business.py   /v1/customers, /v1/runs/{run_id}/resolve, /v1/margin, /v1/leaks
    commands.py   `tollmeter serve | keys | db | reprice`
"""

from __future__ import annotations

from .settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]


def __getattr__(name: str):
    if name == "create_app":  # FastAPI is imported only when an app is made
        from .app import create_app

        return create_app
    raise AttributeError(name)
