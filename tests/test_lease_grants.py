"""Store.grant on SQLite and PostgreSQL: a lease extended adds exactly, a lapsed lease is not
extended (a new one is made, and lapsed ones are removed then), a refused extension keeps the
lease, the tenant's rate limits come back with the grant (one transaction), and a limit
changed as a lease is granted revokes that lease too (PostgreSQL: it waits for the grant), and a
grant made with an API key stands only while the key is valid."""

from __future__ import annotations

import secrets
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select, text

from tollmeter.limits.states import RateLimit
from tollmeter.store import schema
from tollmeter.server.auth import create_key, key_hash, revoke_key
from tollmeter.store.store import DEFAULT_TENANT_LIMITS, KeyRevoked, Store

from .server_support import database_for

D = Decimal


@pytest.fixture(params=["sqlite", "postgres"])
def store(request):
    url, drop = database_for(request.param)
    opened = Store(url, project="grants")
    yield opened
    opened.close()
    drop()


def leases_stored(store: Store) -> set[str]:
    with store.transaction() as conn:
        return set(conn.execute(select(schema.leases.c.lease_id)
                                .where(schema.leases.c.project_id == store.project)).scalars())


def test_an_extension_adds_exactly_and_a_lapsed_lease_is_made_anew(store):
    store.set_limit("acme", "per_day", D(10))
    first = store.grant("acme", "w1", D("0.1"), need=D("0.1"), ttl=60)
    more = store.grant("acme", "w1", D("0.2"), need=D("0.2"), ttl=60, lease_id=first.lease_id)
    assert more.lease_id == first.lease_id
    assert (more.granted_usd, more.remaining_usd) == (D("0.2"), D("0.3"))  # not 0.30000000000000004
    [state] = store.limit_states("acme")
    assert state.leased_usd == D("0.3")

    an_hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    lapsed = store.grant("acme", "w2", D("1"), need=D("1"), ttl=60, at=an_hour_ago)
    assert lapsed.lease_id in leases_stored(store)
    assert store.limit_states("acme")[0].leased_usd == D("0.3")  # a lapsed lease counts for nothing
    again = store.grant("acme", "w2", D("0.5"), need=D("0.5"), ttl=60, lease_id=lapsed.lease_id)
    assert again.lease_id != lapsed.lease_id and again.remaining_usd == D("0.5")
    assert leases_stored(store) == {first.lease_id, again.lease_id}  # the lapsed one removed as it was made
    assert store.limit_states("acme")[0].leased_usd == D("0.8")


def test_a_refused_extension_keeps_the_lease_and_its_budget(store):
    store.set_limit("acme", "per_day", D(1))
    whole = store.grant("acme", "w1", D(1), need=D(1), ttl=30)
    assert whole.granted_usd == D(1)
    refused = store.grant("acme", "w1", D("0.5"), need=D("0.5"), ttl=60, lease_id=whole.lease_id)
    assert (refused.lease_id, refused.granted_usd, refused.remaining_usd) == (whole.lease_id, D(0), D(1))
    assert refused.expires_at > whole.expires_at  # the lease lives on, with the new expiry
    assert store.grant("acme", "w2", D("0.5"), need=D("0.5"), ttl=60).lease_id is None  # nothing left


def test_another_tenants_lease_is_not_extended(store):
    store.set_limit("acme", "per_day", D(1))
    store.set_limit("globex", "per_day", D(1))
    acme = store.grant("acme", "w1", D("0.5"), need=D("0.5"), ttl=60)
    other = store.grant("globex", "w1", D("0.25"), need=D("0.25"), ttl=60, lease_id=acme.lease_id)
    assert other.lease_id not in (None, acme.lease_id) and other.remaining_usd == D("0.25")
    assert store.limit_states("acme")[0].leased_usd == D("0.5")


def test_the_rate_limits_and_the_default_limits_come_with_the_grant(store):
    assert store.grant_with_rate_limit("acme", "w1", D(1), ttl=30) == (store.grant("acme", "w1", D(1), ttl=30), None)
    store.set_rate_limit("acme", 60, 200_000)
    grant, rate = store.grant_with_rate_limit("acme", "w1", D(1), ttl=30)
    assert grant.unlimited and rate == RateLimit("acme", 60, 200_000)

    store.set_limit(DEFAULT_TENANT_LIMITS, "per_month", D(40))
    store.set_limit(DEFAULT_TENANT_LIMITS, "per_day", D(4))
    grant, rate = store.grant_with_rate_limit("acme", "w1", D(1), need=D(1), ttl=30)
    assert [(s.limit.frequency, s.limit.limit_usd, s.limit.default) for s in grant.states] == [
        ("per_day", D(4), True), ("per_month", D(40), True)]
    assert grant.granted_usd == D(1) and rate.requests_per_minute == 60
    store.set_limit("acme", "total", D(2))  # its own limit: the defaults no longer apply
    grant = store.grant("acme", "w1", D("0.5"), need=D("0.5"), ttl=30)
    assert [(s.limit.frequency, s.leased_usd) for s in grant.states] == [("total", D(0))]  # leases revoked


def test_spend_counts_in_the_grant(store):
    store.set_limit("acme", "per_day", D(1))
    store.add_events([{"event_id": "e1", "timestamp": datetime.now(timezone.utc), "tenant_id": "acme",
                       "provider": "openai", "model": "gpt-4o", "cost_usd": D("0.75"), "priced": True}])
    grant = store.grant("acme", "w1", D(1), need=D("0.1"), ttl=30)
    [state] = grant.states
    assert state.spent_usd == D("0.75")
    assert grant.granted_usd == D("0.1") + (D("0.25") - D("0.1")) / 4  # a quarter of what is left beyond the need
    with store.transaction() as conn:
        assert conn.execute(select(func.count()).select_from(schema.leases)).scalar() == 1


def test_a_grant_with_a_key_stands_only_while_the_key_is_the_projects_and_unrevoked(store):
    """The server's check of a key it knows, made by the grant's read: a revoked key, an
    unknown one or another project's key grants nothing and writes nothing."""
    store.set_limit("acme", "per_day", D(10))
    _, key = create_key(store, "grants")
    _, other = create_key(store, "another-project")
    granted = store.grant_with_rate_limit("acme", "w1", D(1), need=D(1), ttl=60, key_hash=key_hash(key))[0]
    assert granted.granted_usd == D(1)
    for refused in (other, "tm_000000000000_" + "x" * 43, key):
        if refused == key:
            revoke_key(store, key)
        with pytest.raises(KeyRevoked):
            store.grant_with_rate_limit("acme", "w1", D(1), need=D(1), ttl=60, key_hash=key_hash(refused),
                                        lease_id=granted.lease_id)
        with pytest.raises(KeyRevoked):
            store.grant_with_rate_limit("acme", "w2", D(1), need=D(1), ttl=60, key_hash=key_hash(refused))
    assert leases_stored(store) == {granted.lease_id}
    assert store.limit_states("acme")[0].leased_usd == D(1)  # not extended either
    assert store.grant("acme", "w2", D(1), need=D(1), ttl=60).granted_usd == D(1)  # no key: no check


@pytest.mark.parametrize("limited", ["acme", DEFAULT_TENANT_LIMITS])
def test_a_limit_changed_as_a_lease_is_granted_revokes_that_lease(limited):
    """PostgreSQL: a grant paused after writing its lease (under the old limit) and before its
    commit; the limit changed meanwhile waits for it, then revokes its lease with the others."""
    url, drop = database_for("postgres")
    application = f"tm-grants-{secrets.token_hex(3)}"  # this test's connections, not other processes'
    store = Store(f"{url}&application_name={application}", project="grants")
    paused, resume = threading.Event(), threading.Event()
    granting = threading.Thread(target=store.grant, args=("acme", "w1", D(1)), kwargs={"need": D(1), "ttl": 60})
    changing = threading.Thread(target=store.set_limit, args=(limited, "per_day", D(2)))

    def pause(conn, cursor, statement, *args):
        if threading.current_thread() is granting and statement.startswith("INSERT INTO leases"):
            paused.set()
            resume.wait(60)

    event.listen(store.engine, "after_cursor_execute", pause)
    try:
        store.set_limit(limited, "per_day", D(10))
        granting.start()
        assert paused.wait(60)
        changing.start()
        with store.engine.connect() as watcher:  # the change waits for the grant's lock
            for _ in range(600):
                waiting = watcher.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                                               " AND wait_event = 'advisory' AND datname = current_database()"
                                               " AND application_name = :a AND query LIKE '%pg_advisory_xact_lock%'"),
                                          {"a": application}).scalar()
                if waiting or not changing.is_alive():
                    break
                watcher.rollback()
                time.sleep(0.05)
        assert changing.is_alive(), "the limit changed under a grant under way, without waiting for it"
        resume.set()
        granting.join(60)
        changing.join(60)
        assert store.limit_states("acme")[0].leased_usd == 0  # the lease of the old limit is gone
        assert store.grant("acme", "w2", D(3), need=D(3), ttl=60).granted_usd == 0  # the new limit holds
    finally:
        resume.set()
        event.remove(store.engine, "after_cursor_execute", pause)
        store.close()
        drop()
