"""A report's reads (`Store.report()`): on PostgreSQL its statements are planned for their own
values, however often the same statement ran before, and run without a transaction around them;
the connection goes back to the pool as it was. psycopg prepares a statement from its fifth run,
and PostgreSQL may then pick a generic plan made for no range in particular (the leak rules took
2-4 s instead of 0.15-0.5 after a few reports of other months)."""

from __future__ import annotations

from sqlalchemy import text

from .margin_support import fresh, store  # noqa: F401 (fixtures)

#: One statement run again and again, found among the prepared ones by its comment.
PROBE = "SELECT count(*) /* tollmeter-probe */ FROM events WHERE project_id = :p"
PREPARED = "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%tollmeter-probe%'"


def test_a_reports_statements_are_planned_for_their_own_values(store):
    view = fresh(store)
    postgres = store.engine.dialect.name == "postgresql"
    with view.report() as conn:
        for _ in range(8):  # past psycopg's threshold for preparing a statement
            assert conn.execute(text(PROBE), {"p": view.project}).scalar() == 0
        if postgres:
            assert conn.execute(text(PREPARED)).scalar() == 0  # never prepared: planned for its own values
            assert conn.execute(text("SHOW work_mem")).scalar() == "32MB"
            driver = conn.connection.dbapi_connection
            assert driver.autocommit and driver.info.transaction_status == 0  # idle: no transaction
    if not postgres:
        return
    assert driver.prepare_threshold == 5 and not driver.autocommit  # back in the pool as it was
    with view.transaction() as conn:  # elsewhere statements are prepared as psycopg does
        for _ in range(8):
            conn.execute(text(PROBE), {"p": view.project})
        assert conn.execute(text(PREPARED)).scalar() == 1
        assert conn.connection.dbapi_connection.info.transaction_status != 0  # in a transaction
