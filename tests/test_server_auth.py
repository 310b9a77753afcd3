"""API keys on a real server: missing, wrong and revoked keys get 401 on every endpoint; a key
sees and writes only its own project's data; `tollmeter keys create | list | revoke`."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from sqlalchemy import select

from tollmeter.server.auth import list_keys, project_for, revoke_key
from tollmeter.server.commands import main
from tollmeter.store import schema

from .server_support import event

#: The fixtures (backend, server, api): a real server per database, and a project on it.
pytest_plugins = ["tests.server_harness"]

ENDPOINTS = [
    ("POST", "/v1/ingest"),
    ("GET", "/v1/limits"),
    ("GET", "/v1/limits/acme"),
    ("PUT", "/v1/limits/acme"),
    ("DELETE", "/v1/limits/acme"),
    ("GET", "/v1/rate-limits/acme"),
    ("PUT", "/v1/rate-limits/acme"),
    ("GET", "/v1/tenants/acme/spend"),
    ("POST", "/v1/leases"),
    ("DELETE", "/v1/leases/abc"),
    ("GET", "/v1/usage"),
]


def call(http: httpx.Client, method: str, path: str) -> httpx.Response:
    body = {"limit_usd": "1"} if path.startswith("/v1/limits") else (
        {"tenant_id": "acme", "want_usd": "1"} if path == "/v1/leases" else {"events": []})
    return http.request(method, path, json=body if method in ("POST", "PUT") else None)


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer tm_000000000000_wrongwrongwrongwrongwrongwrongwrong"},
    {"Authorization": "Bearer nonsense"},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Bearer"},
], ids=["missing", "wrong", "malformed", "basic", "empty"])
def test_requests_without_a_valid_key_get_401_everywhere(server, headers):
    with server.client(headers=headers) as http:
        for method, path in ENDPOINTS:
            response = call(http, method, path)
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
    assert httpx.get(server.base + "/healthz").status_code == 200  # no key needed
    assert httpx.get(server.base + "/openapi.json").status_code == 200


def test_a_revoked_key_stops_working_at_once(server):
    api = server.project()
    assert api.ingest([event()]).status_code == 200
    record = revoke_key(server.store, api.key)
    assert record is not None and record.project_id == api.project
    response = api.ingest([event()])
    assert response.status_code == 401 and response.json()["detail"] == "invalid or revoked API key"
    assert api.http.get("/v1/usage").status_code == 401
    assert api.count() == 1


def test_a_key_known_to_the_server_is_refused_ingest_once_revoked(server):
    """The ingest route keeps the projects of the keys it found valid too; the batch's own
    transaction sees a revocation, and a batch that stores no event checks the key apart."""
    api = server.project()
    other = server.key(api.project)
    for _ in range(2):  # known now
        assert api.ingest([event()]).status_code == 200
    revoke_key(server.store, api.key)
    for events in ([event()], [], [event(event_id="")]):  # stored, none, none valid
        response = api.ingest(events)
        assert response.status_code == 401 and response.json()["detail"] == "invalid or revoked API key"
    assert api.count() == 2
    with server.client(other) as http:  # the project's other key still ingests
        assert http.post("/v1/ingest", json={"events": [event()]}).json()["accepted"] == 1
    assert api.count() == 3


def test_a_key_known_to_the_server_is_refused_leases_once_revoked(server):
    """The lease route keeps the projects of the keys it found valid; a revocation made by
    another process (here, this one on the server's database) is seen by the next grant."""
    api = server.project()
    other = server.key(api.project)  # a second key of the same project
    lease = {"tenant_id": "acme", "want_usd": "1", "ttl_seconds": 60}
    api.http.put("/v1/limits/acme", json={"limit_usd": "10", "frequency": "per_day"}).raise_for_status()
    for _ in range(3):  # known now
        assert api.http.post("/v1/leases", json=lease).json()["granted_usd"] == "1"
    revoke_key(server.store, api.key)
    for _ in range(2):
        response = api.http.post("/v1/leases", json=lease)
        assert response.status_code == 401 and response.json()["detail"] == "invalid or revoked API key"
        assert response.headers["www-authenticate"] == "Bearer"
    with server.client(other) as http:  # the project's other key still leases, from what is left
        assert http.post("/v1/leases", json={**lease, "want_usd": "7", "need_usd": "7"}).json()["granted_usd"] == "7"
    assert api.http.get("/v1/tenants/acme/spend").status_code == 401


def test_a_project_sees_and_writes_only_its_own_data(server):
    a, b = server.project("a"), server.project("b")
    a.http.put("/v1/limits/acme", json={"limit_usd": "10", "frequency": "per_day"}).raise_for_status()
    a.http.put("/v1/limits/*", json={"limit_usd": "3"}).raise_for_status()
    a.http.put("/v1/rate-limits/acme", json={"requests_per_minute": 5}).raise_for_status()
    lease = a.http.post("/v1/leases", json={"tenant_id": "acme", "want_usd": "1", "ttl_seconds": 60}).json()
    assert lease["granted_usd"] == "1"
    assert a.ingest([event(), event()]).json()["accepted"] == 2

    # B reads nothing of A's.
    assert b.usage(group_by="tenant_id") == []
    assert b.http.get("/v1/limits/acme").json() == {"tenant_id": "acme", "limits": []}
    assert b.http.get("/v1/limits").json() == {"limits": []}
    assert b.http.get("/v1/rate-limits/acme").json()["requests_per_minute"] is None
    assert b.spend("acme")["limits"] == [] and b.spend("acme")["spent"]["total"] == "0"

    # B writes nothing of A's: not its limits, not its lease (release, settle, extend).
    assert b.http.delete("/v1/limits/acme").json() == {"removed": 0}
    assert b.http.delete(f"/v1/leases/{lease['lease_id']}").status_code == 204
    assert b.ingest([event(lease_id=lease["lease_id"])]).json()["accepted"] == 1
    b.http.put("/v1/limits/acme", json={"limit_usd": "100"}).raise_for_status()
    extended = b.http.post("/v1/leases", json={"tenant_id": "acme", "want_usd": "5", "lease_id": lease["lease_id"]})
    assert extended.json()["lease_id"] != lease["lease_id"]

    [state] = a.spend("acme")["limits"]
    assert state["limit_usd"] == "10" and state["leased_usd"] == "1"  # A's lease untouched
    assert state["spent_usd"] == "0.0056"
    assert a.http.get("/v1/limits/globex").json()["limits"][0]["limit_usd"] == "3"
    assert b.http.get("/v1/limits/globex").json()["limits"] == []
    assert a.count() == 2 and b.count() == 1


def test_keys_are_stored_hashed(server):
    api = server.project()
    digest = hashlib.sha256(api.key.encode()).hexdigest()
    t = schema.api_keys
    with server.store.transaction() as conn:
        rows = conn.execute(select(t).where(t.c.project_id == api.project)).mappings().all()
    [row] = rows
    assert row["key_hash"] == digest and api.key not in str(dict(row))
    assert project_for(server.store, api.key) == api.project
    assert project_for(server.store, api.key + "x") is None
    assert project_for(server.store, "") is None


def test_keys_commands(tmp_path, capsys):
    db = str(tmp_path / "keys.db")
    assert main(["keys", "create", "--project", "acme", "--note", "prod agents", "--db", db]) == 0
    out, err = capsys.readouterr()
    key = out.strip()
    assert key.startswith("tm_") and len(key) > 50 and "shown once" in err
    assert main(["keys", "create", "--project", "acme", "--db", db]) == 0
    second = capsys.readouterr().out.strip()
    assert main(["keys", "create", "--project", "bad name", "--db", db]) == 2
    assert "project name" in capsys.readouterr().err

    assert main(["keys", "list", "--db", db]) == 0
    listing = capsys.readouterr().out
    key_id = key.split("_")[1]
    assert key_id in listing and "prod agents" in listing and f"tm_{key_id}_..." in listing
    assert key not in listing and second not in listing

    assert main(["keys", "revoke", key_id, "--db", db]) == 0
    assert f"revoked key {key_id}" in capsys.readouterr().out
    assert main(["keys", "revoke", second, "--db", db]) == 0  # by the key itself
    capsys.readouterr()
    assert main(["keys", "revoke", "000000000000", "--db", db]) == 2
    assert "no such key" in capsys.readouterr().err
    assert main(["keys", "list", "--project", "acme", "--db", db]) == 0
    assert capsys.readouterr().out.count("T") >= 2  # both revoked (timestamps in the revoked column)

    from tollmeter.server.state import open_store

    store = open_store(db)
    try:
        assert all(k.revoked_at is not None for k in list_keys(store, "acme"))
        assert project_for(store, key) is None
    finally:
        store.close()
