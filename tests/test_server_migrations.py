"""Migrations (Alembic, store/migrations): the initial revision creates exactly
`schema.metadata`, on SQLite and PostgreSQL, once even when replicas start together; a database
the embedded store made is adopted; `tollmeter db upgrade | current`."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select, text

from tollmeter.server.commands import main
from tollmeter.server.settings import ServerSettings
from tollmeter.server.state import SchemaNotReady, ServerState, open_store
from tollmeter.store import migrations, schema
from tollmeter.store.rows import event_row
from tollmeter.store.store import Store

from .server_support import database_for, event

#: The fixtures (backend, server, api): a real server per database, and a project on it.
pytest_plugins = ["tests.server_harness"]


@pytest.fixture
def fresh(backend):
    url, drop = database_for(backend)
    store = open_store(url)
    yield store
    store.close()
    drop()


def differences(store) -> list:
    with store.engine.connect() as conn:
        return migrations.differences(conn)


def test_the_initial_revision_is_exactly_the_schema(fresh):
    assert migrations.current(fresh.engine) is None
    assert migrations.upgrade(fresh.engine) == (None, migrations.HEAD)
    assert differences(fresh) == []
    assert migrations.upgrade(fresh.engine) == (migrations.HEAD, migrations.HEAD)
    fresh.set_limit("acme", "per_day", 5)  # the store works on it
    assert fresh.limits_for("acme")[0].limit_usd == 5


def test_replicas_starting_together_migrate_once(fresh):
    errors, start = [], threading.Barrier(4)

    def run():
        try:
            start.wait()
            migrations.upgrade(fresh.engine)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with fresh.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    assert differences(fresh) == []


def test_a_database_of_the_embedded_store_is_adopted(tmp_path):
    path = tmp_path / "embedded.db"
    embedded = Store(path)  # create_all, as the agent does
    embedded.add_events([event_row(event(cost_usd="0.5", priced=True))])
    embedded.close()
    store = open_store(str(path))
    try:
        assert migrations.upgrade(store.engine) == (None, migrations.HEAD)
        assert differences(store) == [] and store.count_events() == 1
        assert store.spent("acme")["total"] == 0.5
    finally:
        store.close()


def test_missing_tables_are_created(tmp_path):
    store = open_store(str(tmp_path / "partial.db"))
    try:
        schema.events.create(store.engine)
        migrations.upgrade(store.engine)
        assert differences(store) == []
    finally:
        store.close()


def test_db_commands(tmp_path, capsys):
    db = str(tmp_path / "cmd.db")
    assert main(["db", "current", "--db", db]) == 1
    assert capsys.readouterr().out.strip() == f"none (newest: {migrations.HEAD})"
    assert main(["db", "upgrade", "--db", db]) == 0
    assert capsys.readouterr().out.strip() == f"database at revision {migrations.HEAD} (was empty)"
    assert main(["db", "upgrade", "--db", db]) == 0
    assert "(up to date)" in capsys.readouterr().out
    assert main(["db", "current", "--db", db]) == 0
    assert main(["db", "upgrade", "--sql", "--db", "postgresql://u@localhost/x"]) == 0
    sql = capsys.readouterr().out
    assert "CREATE TABLE events" in sql and "NUMERIC(30, 15)" in sql and "alembic_version" in sql
    assert main(["db", "upgrade", "--db", "postgresql://nobody@127.0.0.1:1/none"]) == 2
    assert "tollmeter db: migration failed: connection failed" in capsys.readouterr().err


def test_the_server_applies_migrations_or_refuses_an_old_schema(tmp_path):
    db = str(tmp_path / "start.db")
    with pytest.raises(SchemaNotReady, match="tollmeter db upgrade"):
        ServerState.open(ServerSettings(database_url=db, migrate=False))
    state = ServerState.open(ServerSettings(database_url=db))
    try:
        assert migrations.current(state.store.engine) == migrations.HEAD
        with state.store.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(schema.api_keys)).scalar() == 0
    finally:
        state.close()
    state = ServerState.open(ServerSettings(database_url=db, migrate=False))  # now it is at head
    state.close()
