"""The lease route runs at most `lease_concurrency` grants at once (the next ones wait their
turn): the app called in-process (ASGI) with 8 requests at once, each grant held a moment for
one more to come in, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from tollmeter.server.app import create_app
from tollmeter.server.auth import create_key
from tollmeter.server.settings import ServerSettings
from tollmeter.store.store import Store

from .server_support import database_for


@pytest.fixture(params=["sqlite", "postgres"])
def url(request):
    url, drop = database_for(request.param)
    yield url
    drop()


@pytest.mark.parametrize("turns", [1, 3])
async def test_no_more_grants_at_once_than_lease_concurrency(url, turns, monkeypatch):
    inside, most = 0, 0
    changed = threading.Condition()
    grant = Store.grant_with_rate_limit

    def held(self, *args, **kwargs):
        nonlocal inside, most
        with changed:
            inside += 1
            most = max(most, inside)
            changed.notify_all()
            # Held a moment for one more to come in: none may while `turns` are inside.
            changed.wait_for(lambda: inside > turns, timeout=0.25)
        try:
            return grant(self, *args, **kwargs)
        finally:
            with changed:
                inside -= 1

    monkeypatch.setattr(Store, "grant_with_rate_limit", held)
    app = create_app(ServerSettings(database_url=url, lease_concurrency=turns))
    async with app.router.lifespan_context(app):
        key = create_key(app.state.server.store, "turns")[1]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test",
                                     headers={"Authorization": f"Bearer {key}"}) as http:
            (await http.put("/v1/limits/acme", json={"limit_usd": "100", "frequency": "per_day"})).raise_for_status()
            answers = await asyncio.gather(*(
                http.post("/v1/leases", json={"tenant_id": "acme", "holder": f"agent-{i}", "want_usd": "1",
                                              "need_usd": "1"}) for i in range(8)))
    assert [a.status_code for a in answers] == [200] * 8
    assert sorted(a.json()["granted_usd"] for a in answers) == ["1"] * 8
    assert most == turns
