"""The write of an ingest batch (store.py add_events): rollups and spend exact for costs of
the columns' 30 digits, and the batch's ids claimed in `event_ids` whatever they hold (one
joined text when they allow it, an array otherwise). SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select

from tollmeter.store import schema
from tollmeter.store.rows import event_row
from tollmeter.store.store import Store

from .server_support import database_for

AT = datetime(2026, 12, 5, 10, 15, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request):
    url, drop = database_for(request.param)
    opened = Store(url).for_project(uuid.uuid4().hex)
    try:
        yield opened
    finally:
        opened.close()
        drop()


def _row(event_id: str, cost: str | None, tenant: str | None = "t1", **fields) -> dict:
    return event_row({"event_id": event_id, "timestamp": AT.isoformat(), "tenant_id": tenant, "agent_id": "a",
                      "model": "m", "run_id": "r1", "cost_usd": cost, "priced": cost is not None,
                      "usage": {"input_tokens": 2}, **fields})


def _rollup_cost(store: Store, table) -> Decimal:
    with store.transaction() as conn:
        return Decimal(str(conn.execute(select(table.c.cost_usd).where(table.c.project_id == store.project))
                           .scalar_one()))


def test_costs_of_thirty_digits_add_up_exactly(store):
    """123456789012345.123456789012345 + 0.000000000000001 has 30 digits: Python's default
    decimal context (28) would round the sum before it reaches the database."""
    big, tiny = "123456789012345.123456789012345", "0.000000000000001"
    assert sorted(store.add_events([_row("e1", big), _row("e2", tiny), _row("e3", None)])) == ["e1", "e2", "e3"]
    exact = Decimal("123456789012345.123456789012346")
    for table in (schema.usage_rollup, schema.tenant_rollup, schema.runs):
        assert _rollup_cost(store, table) == exact, table.name
    assert store.spent("t1", AT)["per_day"] == exact
    assert all(not (c["missing"] or c["extra"] or c["different"]) for c in store.check_rollups().values())


def test_an_empty_tenant_is_spend_of_its_own_and_none_is_no_spend(store):
    """A tenant "" pays spend as any tenant; an event without one pays none; in the rollups
    both are the same "no tenant" key."""
    store.add_events([_row("e1", "1.5", tenant=""), _row("e2", "2.25", tenant=None), _row("e3", None, tenant="")])
    assert store.spent("", AT)["per_day"] == Decimal("1.5")
    with store.transaction() as conn:
        t = schema.tenant_rollup
        rows = conn.execute(select(t.c.tenant_id, t.c.calls, t.c.cost_usd, t.c.unpriced)
                            .where(t.c.project_id == store.project)).all()
    assert [(tenant, calls, Decimal(str(cost)), unpriced) for tenant, calls, cost, unpriced in rows] == [
        ("", 3, Decimal("3.75"), 1)]


@pytest.mark.parametrize("ids", [["a,b", "c"], ["", "x"], ["solo"], ["a", "b", "c"], [",", ",,"]])
def test_ids_are_claimed_once_whatever_they_hold(store, ids):
    rows = [_row(event_id, "0.1") for event_id in sorted(ids)]
    assert sorted(store.add_events(rows)) == sorted(ids)
    assert store.add_events(rows) == []  # every id known now: nothing stored twice
    assert sorted(store.add_events(rows + [_row("new", "0.1")])) == ["new"]
    with store.transaction() as conn:
        e = schema.events
        stored = conn.execute(select(e.c.event_id).where(e.c.project_id == store.project)).scalars().all()
    assert sorted(stored) == sorted([*ids, "new"])
