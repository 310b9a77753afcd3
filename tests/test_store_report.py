"""A report's transaction (`Store.report()`): on PostgreSQL its statements are planned for their
own values, however often the same statement ran before; the setting ends with the transaction.
psycopg prepares a statement from its fifth run, and PostgreSQL may then pick a generic plan
made for no range in particular (the leak rules took 2-4 s instead of 0.15-0.5 after a few
reports of other months)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import text

from tollmeter.store.ledger import Ledger

from .margin_support import D, at, event, fresh, store  # noqa: F401 (fixtures)


def test_a_reports_statements_are_planned_for_their_own_values(store):
    view = fresh(store)
    view.add_events([event(at(date(2025, 4, n)), "0.5", run=f"r{n}") for n in range(1, 4)])
    postgres = store.engine.dialect.name == "postgresql"
    with view.report() as conn:
        if postgres:
            assert conn.execute(text("SHOW plan_cache_mode")).scalar() == "force_custom_plan"
            assert conn.execute(text("SHOW work_mem")).scalar() == "32MB"
        assert conn.execute(text("SELECT 1")).scalar() == 1
    with view.transaction() as conn:
        if postgres:
            assert conn.execute(text("SHOW plan_cache_mode")).scalar() == "auto"
    # the same report asked many times over different ranges (prepared after the fifth) agrees
    # with itself asked once
    ledger = Ledger(view)
    for day in range(1, 9):
        ledger.margin(("tenant",), since=date(2025, 4, 1 + day % 3), until=date(2025, 4, 4))
    assert ledger.margin(("tenant",), since=date(2025, 4, 1), until=date(2025, 4, 4)).total.cost_usd == D("1.5")
