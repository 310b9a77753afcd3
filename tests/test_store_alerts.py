"""`Store.claim_alert` (what makes the embedded `on_threshold` fire once per threshold and
period) on both databases: psycopg reports -1 as the rowcount of INSERT ... ON CONFLICT DO
NOTHING, so the claim is known by what the insert returns."""

from __future__ import annotations

import os
import secrets
from concurrent.futures import ThreadPoolExecutor

from tollmeter.store.store import Store

from .server_support import POSTGRES_ENV

pytest_plugins = ["tests.server_harness"]


def _store(backend: str, tmp_path) -> Store:
    url = os.environ[POSTGRES_ENV] if backend == "postgres" else str(tmp_path / "alerts.db")
    return Store(url, project=f"alerts-{secrets.token_hex(4)}")


def test_an_alert_is_claimed_once(backend, tmp_path):
    store = _store(backend, tmp_path)
    try:
        assert store.claim_alert("acme", "2026-12", "0.8") is True
        assert store.claim_alert("acme", "2026-12", "0.8") is False
        assert store.claim_alert("acme", "2026-12", "1.0") is True  # another threshold
        assert store.claim_alert("acme", "2027-01", "0.8") is True  # another period
        assert store.claim_alert("hooli", "2026-12", "0.8") is True  # another tenant
    finally:
        store.close()


def test_one_claim_wins_among_threads(backend, tmp_path):
    store = _store(backend, tmp_path)
    try:
        with ThreadPoolExecutor(8) as pool:
            won = list(pool.map(lambda _: store.claim_alert("acme", "2026-12", "0.8"), range(16)))
        assert won.count(True) == 1
    finally:
        store.close()
