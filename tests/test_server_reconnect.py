"""The ingest server on PostgreSQL after its database connections are killed (as a database
restart or an administrator's `pg_terminate_backend` does): the next requests are answered as
usual on new connections, no event lost or stored twice, and no ping is sent per transaction
(the pool checks a connection's socket at checkout instead of a round trip)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from decimal import Decimal

import psycopg
import pytest
from sqlalchemy import create_engine, text

from tollmeter.store.store import Store

from .server_support import (EVENT_COST, POSTGRES_ENV, RATE_CARD, Api, Server, _WORK, database_for, event,
                             free_port, wait_ready, write_card)

pytestmark = pytest.mark.skipif(not os.environ.get(POSTGRES_ENV), reason=f"{POSTGRES_ENV} is not set")


def _admin():
    return create_engine(os.environ[POSTGRES_ENV].replace("postgresql://", "postgresql+psycopg://", 1))


def _kill(admin, application: str) -> int:
    """Terminate every backend of `application`; wait until they are gone. How many there were."""
    with admin.connect() as conn:
        killed = conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                   "WHERE application_name = :a"), {"a": application}).scalar_one()
        deadline = time.monotonic() + 10
        # pg_stat_activity is read once per transaction: its snapshot cleared before each look
        # (else the first one is seen until the deadline)
        while conn.execute(text("SELECT count(*) FROM pg_stat_activity, pg_stat_clear_snapshot() "
                                "WHERE application_name = :a"), {"a": application}).scalar_one() \
                and time.monotonic() < deadline:
            time.sleep(0.05)
    return killed


@pytest.fixture
def named_server():
    """A server whose database connections carry an application name of their own."""
    url, drop = database_for("postgres")
    application = f"tm-reconnect-{secrets.token_hex(3)}"
    url = f"{url}&application_name={application}"
    port = free_port()
    log = _WORK / f"server-reconnect-{port}.log"
    args = [sys.executable, "-m", "tollmeter.server", "serve", "--database-url", url, "--port", str(port),
            "--log-level", "warning", "--no-access-log", "--prices", write_card(f"prices-{port}.json", RATE_CARD)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLMETER_")}
    with open(log, "wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = wait_ready(Server("postgres", url, f"http://127.0.0.1:{port}", process, log, [drop]))
    yield server, application
    server.stop()


def test_ingest_after_the_servers_connections_are_killed(named_server):
    server, application = named_server
    api: Api = server.project()
    admin = _admin()
    try:
        sent = []
        for round_ in range(4):
            batch = [event(tenant_id="acme", run_id=f"r{round_}") for _ in range(20)]
            response = api.ingest(batch)
            assert response.status_code == 200, response.text
            assert response.json()["accepted"] == 20
            sent += batch
            assert Decimal(api.spend("acme")["spent"]["per_month"]) == Decimal(EVENT_COST) * len(sent)
            # Every connection the server holds is killed between requests (the next ones
            # would find them all dead in the pool).
            assert _kill(admin, application) >= 1
        again = api.ingest(sent[:20])  # a retry after the last kill: duplicates, nothing twice
        assert again.status_code == 200, again.text
        assert again.json()["accepted"] == 0 and again.json()["duplicates"] == 20
        assert api.count() == len(sent)
        assert [row["calls"] for row in api.usage(group_by="tenant_id")] == [len(sent)]
    finally:
        api.http.close()
        admin.dispose()


def test_a_killed_connection_is_replaced_at_checkout_without_a_ping(monkeypatch):
    url, drop = database_for("postgres")
    application = f"tm-reconnect-{secrets.token_hex(3)}"
    store = Store(f"{url}&application_name={application}")
    admin = _admin()
    try:
        store.set_limit("acme", "per_month", Decimal(100))  # migrated, a connection in the pool
        sent: list[str] = []  # every statement the driver sends (a ping included)
        execute = psycopg.Cursor.execute

        def counted(self, query, *args, **kwargs):
            sent.append(str(query))
            return execute(self, query, *args, **kwargs)

        monkeypatch.setattr(psycopg.Cursor, "execute", counted)
        for _ in range(3):
            assert _kill(admin, application) == 1
            sent.clear()
            assert store.limits_for("acme")[0].limit_usd == 100  # the dead connection replaced
            assert len(sent) == 1, sent  # the query alone: no ping before it
        sent.clear()
        assert store.limits_for("acme")[0].limit_usd == 100  # a live connection: the query alone too
        assert len(sent) == 1, sent
    finally:
        store.close()
        admin.dispose()
        drop()
