"""PostgreSQL's monthly partitions of the events (store/partitions.py), on a real PostgreSQL
(`TOLLMETER_TEST_POSTGRES`; skipped without it): created ahead and on demand, an event stored
once whatever batch or timestamp its copies come with (`event_ids`), retention dropping whole
months and deleting in batches inside the month the cutoff falls in, rollups equal to a
recomputation after all that, and migration 0006 from an unpartitioned table with data."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text

from tollmeter.server.commands import main
from tollmeter.server.state import open_store
from tollmeter.store import migrations, partitions, schema
from tollmeter.store.partitions import month_of, next_month, partition_name
from tollmeter.store.store import Store

from .margin_support import D, event
from .server_support import database_for
from .server_support import event as wire_event

pytest_plugins = ["tests.server_harness"]

UTC = timezone.utc


@pytest.fixture
def database():
    """A new PostgreSQL schema migrated to the newest revision: (url, store)."""
    url, drop = database_for("postgres")
    store = open_store(url)
    migrations.upgrade(store.engine)
    yield url, store
    store.close()
    drop()


def plain_revision() -> str:
    """The revision before 0006: the events in one plain table."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(migrations.alembic_config()).get_revision("0006").down_revision


def names(store) -> list[str]:
    with store.transaction() as conn:
        return [p.name for p in partitions.list_partitions(conn)]


def stored(view) -> dict[str, datetime]:
    e = schema.events
    with view.transaction() as conn:
        query = select(e.c.event_id, e.c.timestamp).where(e.c.project_id == view.project)
        return {r[0]: r[1] for r in conn.execute(query)}


def ids(view) -> set[str]:
    with view.transaction() as conn:
        return set(conn.execute(text("SELECT event_id FROM event_ids WHERE project_id = :p"),
                                {"p": view.project}).scalars())


def months_back(n: int, day: int = 10) -> datetime:
    month = month_of(datetime.now(UTC))
    for _ in range(n):
        month = (month.replace(day=1) - timedelta(days=1)).replace(day=1)
    return datetime(month.year, month.month, day, 12, tzinfo=UTC)


def rollups_agree(view) -> bool:
    return all(not (c["missing"] or c["extra"] or c["different"]) for c in view.check_rollups().values())


def test_partitions_are_created_ahead_by_the_migration_and_by_the_command(database, capsys):
    url, store = database
    month = month_of(datetime.now(UTC))
    ahead = [month]
    for _ in range(partitions.AHEAD + 2):
        ahead.append(next_month(ahead[-1]))
    assert names(store) == [partition_name(m) for m in ahead[:partitions.AHEAD + 1]]
    with store.transaction() as conn:
        assert partitions.is_partitioned(conn)
    assert main(["db", "partitions", "--db", url, "--ahead", "5"]) == 0
    out = capsys.readouterr().out
    assert names(store) == [partition_name(m) for m in ahead]
    assert f"{partition_name(ahead[-1])}  {ahead[-1]:%Y-%m-%d}" in out and "created" in out
    assert main(["db", "partitions", "--db", url]) == 0  # nothing to create: the list as it is
    assert "created" not in capsys.readouterr().out


def test_a_store_made_on_postgresql_is_partitioned_and_adopted_by_the_migrations():
    url, drop = database_for("postgres")
    store = Store(url)  # create_all, as a test or an embedded store on PostgreSQL does
    try:
        with store.transaction() as conn:
            assert partitions.is_partitioned(conn)
        store.add_events([event(months_back(2), D("0.5"))])
        assert migrations.upgrade(store.engine) == (None, migrations.HEAD)
        assert store.count_events() == 1 and len(ids(store)) == 1
    finally:
        store.close()
        drop()


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_batch_of_a_month_without_partition_creates_it_and_duplicates_are_stored_once(api):
    old = months_back(14)
    first = wire_event(timestamp=old.isoformat())
    assert partition_name(month_of(old)) not in names(api.server.store)
    answer = api.ingest([first, wire_event()]).json()
    assert (answer["accepted"], answer["rejected"]) == (2, [])
    assert partition_name(month_of(old)) in names(api.server.store)

    # the same event again in another batch; and again with another timestamp (another month)
    assert api.ingest([first]).json()["duplicates"] == 1
    moved = {**first, "timestamp": months_back(1).isoformat()}
    answer = api.ingest([moved, wire_event()]).json()
    assert (answer["accepted"], answer["duplicates"]) == (1, 1)
    view = api.server.store.for_project(api.project)
    rows = stored(view)
    assert len(rows) == 3 and rows[first["event_id"]] == old  # the first copy is the one kept
    assert ids(view) == set(rows)
    assert api.spend("acme")["spent"]["total"] == api.usage()[0]["cost_usd"]  # counted once
    assert rollups_agree(view)


def test_concurrent_copies_of_events_with_different_timestamps_are_stored_once(database):
    url, store = database
    view = store.for_project(f"p-{uuid.uuid4().hex[:8]}")
    shared = [str(uuid.uuid4()) for _ in range(200)]
    start, errors, inserted = threading.Barrier(4), [], []

    def send(months: int) -> None:
        try:
            rows = [event(months_back(months, day=1 + i % 27), D("0.01"), event_id=i_d) for i, i_d in enumerate(shared)]
            start.wait()
            inserted.extend(view.add_events(rows))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(m,)) for m in (0, 3, 3, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(inserted) == sorted(shared)  # each id stored by exactly one of the four
    assert len(stored(view)) == 200 and ids(view) == set(shared)
    assert view.usage(group_by=[])[0]["cost_usd"] == D("2.00")
    assert rollups_agree(view)


def test_retention_drops_whole_months_and_deletes_in_batches_inside_the_window_edge(database):
    url, store = database
    view = store.for_project(f"p-{uuid.uuid4().hex[:8]}")
    other = store.for_project(f"q-{uuid.uuid4().hex[:8]}")
    gone_month, edge = months_back(4), months_back(2, day=1)
    cutoff = edge + timedelta(days=14)  # mid-month: the month is cut in two
    cutoff = cutoff.replace(hour=0)
    rows = ([event(gone_month + timedelta(hours=h), D("0.1"), tenant="acme") for h in range(30)]
            + [event(edge + timedelta(days=d), D("0.2"), tenant="acme") for d in range(28)]
            + [event(months_back(0, day=1) + timedelta(hours=h), D("0.3"), tenant="beta") for h in range(5)])
    view.add_events(rows)
    other.add_events([event(gone_month, D("1"), tenant="zed"), event(months_back(0, day=1), D("1"))])
    before = view.usage(group_by=["tenant_id"])
    inside = {r["event_id"] for r in rows if r["timestamp"] >= cutoff}

    # another project keeps events in the old month: only this project's are deleted from it
    assert view.remove_events_before(cutoff, batch=7) == 30 + 14
    assert partition_name(month_of(gone_month)) in names(store)
    assert set(stored(view)) == inside and ids(view) == inside
    assert len(stored(other)) == 2

    # once the other project's mark passes it too, the month is dropped whole
    assert other.remove_events_before(cutoff) == 1
    assert partition_name(month_of(gone_month)) not in names(store)
    assert partition_name(month_of(edge)) in names(store)  # the cutoff's month stays
    assert len(stored(other)) == 1 and len(ids(other)) == 1
    assert set(stored(view)) == inside

    # the rollups keep the sums, agree with the raw events from the mark on, refuse the past
    assert view.usage(group_by=["tenant_id"]) == before
    assert rollups_agree(view) and rollups_agree(other)
    expired: list[str] = []
    assert view.add_events([event(gone_month, D("5"), event_id=rows[0]["event_id"])], expired=expired) == []
    assert expired == [rows[0]["event_id"]]
    assert view.usage(group_by=["tenant_id"]) == before


def test_a_cutoff_on_a_month_boundary_keeps_every_event_from_it_on(database):
    url, store = database
    view = store.for_project(f"p-{uuid.uuid4().hex[:8]}")
    cutoff = months_back(2, day=1).replace(hour=0)  # the first of a month, UTC midnight
    at = [cutoff - timedelta(days=20), cutoff - timedelta(microseconds=1), cutoff, cutoff + timedelta(microseconds=1),
          cutoff + timedelta(days=40)]
    rows = [event(moment, D("0.5")) for moment in at]
    view.add_events(rows)
    assert view.remove_events_before(cutoff + timedelta(hours=5), batch=1) == 2
    assert partition_name(month_of(cutoff - timedelta(days=1))) not in names(store)  # dropped whole
    assert sorted(stored(view).values()) == at[2:]
    assert ids(view) == {r["event_id"] for r in rows[2:]}
    assert rollups_agree(view) and view.usage(group_by=[])[0]["calls"] == 5


def test_retention_of_every_project_drops_the_months_they_all_leave(database, capsys):
    url, store = database
    a, b = (store.for_project(f"{p}-{uuid.uuid4().hex[:8]}") for p in "ab")
    old, kept = months_back(5), months_back(0, day=1)
    a.add_events([event(old + timedelta(hours=h), D("0.1")) for h in range(4)] + [event(kept, D("0.1"))])
    b.add_events([event(old + timedelta(days=d), D("0.1"), tenant="b") for d in range(3)] + [event(kept, D("0.1"))])
    capsys.readouterr()
    assert main(["db", "retention", "--db", url, "--keep-days", str((datetime.now(UTC) - months_back(1, 1)).days),
                 "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert f"{a.project}: 4 raw events" in out and f"{b.project}: 3 raw events" in out
    assert partition_name(month_of(old)) not in names(store)
    assert (a.count_events(), b.count_events()) == (1, 1) and (len(ids(a)), len(ids(b))) == (1, 1)
    assert rollups_agree(a) and rollups_agree(b)
    assert a.usage(group_by=[])[0]["calls"] == 5 and b.usage(group_by=[])[0]["calls"] == 4


def test_a_partition_left_detached_by_a_stopped_run_is_dropped_by_the_next(database):
    url, store = database
    view = store.for_project(f"p-{uuid.uuid4().hex[:8]}")
    old = months_back(6)
    view.add_events([event(old, D("0.1")), event(months_back(0, day=1), D("0.1"))])
    name = partition_name(month_of(old))
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"ALTER TABLE events DETACH PARTITION {name} CONCURRENTLY"))
    with store.transaction() as conn:
        assert [p.detached for p in partitions.list_partitions(conn) if p.name == name] == [True]
    assert view.remove_events_before(months_back(1, day=1)) == 1
    assert name not in names(store)
    with store.transaction() as conn:
        assert conn.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar() is None
    assert len(ids(view)) == 1


def test_the_migration_partitions_an_existing_table_with_its_data(capsys):
    url, drop = database_for("postgres")
    store = open_store(url)
    try:
        plain = plain_revision()
        migrations.upgrade(store.engine, plain)
        with store.transaction() as conn:  # today's code writes runs' costs on their rows, as from 0008 (which
            conn.execute(text("ALTER TABLE runs ADD COLUMN cost_usd NUMERIC(30, 15) NOT NULL DEFAULT 0"))  # then keeps it)
            schema.day_revisions.create(conn)  # and marks the closed days it writes to, as from 0010
            schema.usage_weekly.create(conn)  # and sums its weeks, as from 0011
        view = store.for_project(f"p-{uuid.uuid4().hex[:8]}")
        rows = [event(months_back(m, day=1 + m), D("0.25"), tenant=f"t{m % 3}", run=f"r{m % 2}") for m in range(9)]
        rows += [event(months_back(3, day=d), None, model="unknown") for d in (2, 3)]
        assert len(view.add_events(rows)) == 11  # into the plain table (its own ON CONFLICT)
        with store.transaction() as conn:
            assert not partitions.is_partitioned(conn)
        usage = view.usage(group_by=["day", "tenant_id"])

        assert migrations.upgrade(store.engine) == (plain, migrations.HEAD)
        with store.transaction() as conn:
            assert partitions.is_partitioned(conn)
            assert conn.execute(text("SELECT to_regclass('events_unpartitioned')")).scalar() is None
        have = names(store)
        assert {partition_name(month_of(r["timestamp"])) for r in rows} <= set(have)
        assert set(stored(view)) == {r["event_id"] for r in rows} == ids(view)
        assert view.usage(group_by=["day", "tenant_id"]) == usage and rollups_agree(view)
        assert view.add_events(rows[:3]) == []  # still idempotent
        assert view.add_events([event(months_back(0, day=3), D("1"))]) != []
        with store.engine.connect() as conn:  # rows are where their month says
            for name in have:
                bad = conn.execute(text(f"SELECT count(*) FROM {name} WHERE to_char(timestamp AT TIME ZONE 'UTC', "
                                        f"'\"events_y\"YYYY\"m\"MM') <> :n"), {"n": name}).scalar()
                assert bad == 0

        assert migrations.upgrade(store.engine) == (migrations.HEAD, migrations.HEAD)
        from alembic import command

        with store.engine.begin() as conn:  # and back down: one plain table with every event
            command.downgrade(migrations.alembic_config(conn), plain)
        with store.transaction() as conn:
            assert not partitions.is_partitioned(conn)
            assert conn.execute(select(func.count()).select_from(schema.events)
                                .where(schema.events.c.project_id == view.project)).scalar() == 12
        assert view.add_events(rows[:2]) == []
    finally:
        store.close()
        drop()


def test_sqlite_has_no_partitions(tmp_path, capsys):
    db = str(tmp_path / "plain.db")
    assert main(["db", "partitions", "--db", db]) == 0
    assert "not partitioned" in capsys.readouterr().out
    assert main(["db", "partitions", "--db", db, "--ahead", "-1"]) == 2
    store = open_store(db)
    try:
        with store.transaction() as conn:
            assert not partitions.is_partitioned(conn)
        assert store.add_events([event(months_back(3), D("1"))]) != []
    finally:
        store.close()
