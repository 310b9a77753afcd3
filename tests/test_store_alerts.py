"""`Store.claim_alert` (what makes the embedded `on_threshold` fire once per threshold and
period) on both databases: psycopg reports -1 as the rowcount of INSERT ... ON CONFLICT DO
NOTHING, so the claim is known by what the insert returns."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest

from tollmeter.store.store import Store

from .server_support import database_for

pytest_plugins = ["tests.server_harness"]


@pytest.fixture
def store(backend, tmp_path):
    """A store of its own: on PostgreSQL in a schema of its own (not the database's public schema,
    where tests running at once in other processes would create the same tables at once)."""
    url, drop = database_for(backend) if backend == "postgres" else (str(tmp_path / "alerts.db"), lambda: None)
    opened = Store(url, project=f"alerts-{secrets.token_hex(4)}")
    try:
        yield opened
    finally:
        opened.close()
        drop()


def test_an_alert_is_claimed_once(store):
    assert store.claim_alert("acme", "2026-12", "0.8") is True
    assert store.claim_alert("acme", "2026-12", "0.8") is False
    assert store.claim_alert("acme", "2026-12", "1.0") is True  # another threshold
    assert store.claim_alert("acme", "2027-01", "0.8") is True  # another period
    assert store.claim_alert("hooli", "2026-12", "0.8") is True  # another tenant


def test_one_claim_wins_among_threads(store):
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda _: store.claim_alert("acme", "2026-12", "0.8"), range(16)))
    assert won.count(True) == 1
