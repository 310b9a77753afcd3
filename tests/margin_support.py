"""Shared by the margin and rollup tests: a store on SQLite or PostgreSQL, and events written
straight into it with explicit timestamps and costs.

`store` is parametrized over both databases: SQLite is a file in the test's tmp_path; PostgreSQL
is `TOLLMETER_TEST_POSTGRES` (skipped when unset) in a schema of its own, dropped afterwards
(server_support.database_for). Property tests reset between examples by taking a fresh project
of the same database (`store.for_project(...)`): every table is keyed by project.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Any

import pytest

from tollmeter.events import LLMEvent, Usage
from tollmeter.store.ledger import Ledger
from tollmeter.store.rows import event_row
from tollmeter.store.store import Store

from .server_support import BACKENDS, database_for

D = Decimal
UTC = timezone.utc


@pytest.fixture(params=BACKENDS)
def store(request: Any, tmp_path: Any) -> Any:
    if request.param == "sqlite":
        target, drop = str(tmp_path / "margin.db"), (lambda: None)
    else:
        target, drop = database_for("postgres")
    opened = Store(target)
    try:
        yield opened
    finally:
        opened.close()
        drop()


@pytest.fixture
def ledger(store: Store) -> Ledger:
    return Ledger(store)


def fresh(store: Store) -> Store:
    """The same database as a new, empty project (a reset between property-test examples)."""
    return store.for_project(f"p-{uuid.uuid4().hex[:12]}")


def at(day: date, hour: int = 12, minute: int = 0) -> datetime:
    """A moment on a UTC day (noon by default)."""
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


def event(when: date | datetime, cost: Any = None, *, tenant: str | None = "acme", run: str | None = None,
          agent: str | None = None, model: str | None = "m1", input_tokens: int | None = 0,
          output_tokens: int | None = 0, priced: bool | None = None, event_id: str | None = None,
          error: str | None = None, cache_read_tokens: int | None = None) -> dict[str, Any]:
    """A stored event row: priced at `cost` (exact), unpriced when `cost` is None."""
    moment = when if isinstance(when, datetime) else at(when)
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cache_read_tokens)
    fields: dict[str, Any] = dict(provider="acme-ai", model=model, request_model=model, endpoint="chat.completions",
                                  usage=usage, tenant_id=tenant, run_id=run, agent_id=agent, timestamp=moment,
                                  error=error, cost_usd=None if cost is None else D(str(cost)),
                                  priced=(cost is not None) if priced is None else priced)
    if event_id is not None:
        fields["event_id"] = event_id
    return event_row(LLMEvent(**fields).to_dict())


def add(store: Store, *rows: dict[str, Any]) -> list[str]:
    return store.add_events(list(rows))
