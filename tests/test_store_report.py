"""A report's transaction (`Store.report()`): on PostgreSQL its statements are planned for their
own values, however often the same statement ran before; the setting ends with the transaction.
psycopg prepares a statement from its fifth run, and PostgreSQL may then pick a generic plan
made for no range in particular (the leak rules took 2-4 s instead of 0.15-0.5 after a few
reports of other months)."""

from __future__ import annotations

from sqlalchemy import text

from .margin_support import fresh, store  # noqa: F401 (fixtures)


def test_a_reports_statements_are_planned_for_their_own_values(store):
    view = fresh(store)
    postgres = store.engine.dialect.name == "postgresql"
    with view.report() as conn:
        if postgres:
            assert conn.execute(text("SHOW plan_cache_mode")).scalar() == "force_custom_plan"
            assert conn.execute(text("SHOW work_mem")).scalar() == "32MB"
        assert conn.execute(text("SELECT 1")).scalar() == 1
    with view.transaction() as conn:
        if postgres:
            assert conn.execute(text("SHOW plan_cache_mode")).scalar() == "auto"
