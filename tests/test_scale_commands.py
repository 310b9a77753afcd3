"""`tollmeter db retention` and `tollmeter db check-rollups` on a real database (a SQLite file,
and PostgreSQL when `TOLLMETER_TEST_POSTGRES` is set): retention keeps every raw event inside
its window and the sums of those before it; the check finds a rollup that disagrees with the
raw events and --repair rebuilds it."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from tollmeter.server.commands import main
from tollmeter.server.state import open_store
from tollmeter.store import migrations, schema

from .margin_support import D, event
from .server_support import BACKENDS, database_for


@pytest.fixture(params=BACKENDS)
def database(request):
    url, drop = database_for(request.param)
    store = open_store(url)
    migrations.upgrade(store.engine)
    yield url, store
    store.close()
    drop()


def test_retention_removes_only_events_before_the_window_and_keeps_their_sums(database, capsys):
    url, store = database
    now = datetime.now(timezone.utc)
    view = store.for_project(f"p-{uuid.uuid4().hex[:8]}")
    ages = [0, 1, 2, 5, 9, 40]  # days ago
    view.add_events([event(now - timedelta(days=age, minutes=5), D("0.25"), tenant="acme") for age in ages])
    total_before = view.usage(group_by=[])[0]
    assert total_before["calls"] == 6

    assert main(["db", "retention", "--db", url, "--keep-days", "3", "--batch", "2", "--project", view.project]) == 0
    cutoff = (now - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert view.retention_mark() == cutoff
    kept = [age for age in ages if now - timedelta(days=age, minutes=5) >= cutoff]
    assert view.count_events() == len(kept) >= 3  # today, yesterday, two days ago at least
    assert "raw events before" in capsys.readouterr().out

    # the rollups keep the sums of the removed events: the whole history is still answered
    total_after = view.usage(group_by=[])[0]
    assert (total_after["calls"], total_after["cost_usd"]) == (6, D("1.50"))
    assert sum(r["calls"] for r in view.usage(group_by=["day"])) == 6
    assert main(["db", "check-rollups", "--db", url, "--project", view.project]) == 0

    # run again: nothing more to remove, the mark stays
    assert main(["db", "retention", "--db", url, "--keep-days", "3", "--project", view.project]) == 0
    assert view.count_events() == len(kept)
    assert main(["db", "retention", "--db", url]) == 2  # no --keep-days and no TOLLMETER_RETENTION_DAYS


def test_check_rollups_finds_and_repairs_a_rollup_that_disagrees(database, capsys):
    url, store = database
    view = store.for_project(f"p-{uuid.uuid4().hex[:8]}")
    now = datetime.now(timezone.utc)
    view.add_events([event(now - timedelta(hours=h), D("0.1"), tenant="acme", run="r1") for h in range(3)])
    assert main(["db", "check-rollups", "--db", url, "--project", view.project]) == 0
    t = schema.usage_daily
    with view.transaction() as conn:
        conn.execute(update(t).where(t.c.project_id == view.project).values(calls=t.c.calls + 7))
    capsys.readouterr()
    assert main(["db", "check-rollups", "--db", url, "--project", view.project]) == 1
    out = capsys.readouterr().out
    assert "usage_daily" in out and "differ" in out
    assert main(["db", "check-rollups", "--db", url, "--project", view.project, "--repair"]) == 0
    assert main(["db", "check-rollups", "--db", url, "--project", view.project]) == 0
    assert view.usage(group_by=[])[0]["calls"] == 3
