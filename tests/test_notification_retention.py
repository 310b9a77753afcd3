"""Pruning of notifications and deliveries (notifications/retention.py): what is done and old
goes, in bounded batches; what the once-per-threshold-per-period rule still needs stays (rows of
a period not over, rows still firing), so nothing is sent twice after a pruning. SQLite and
PostgreSQL, driven through the real rules, outbox and notifier."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from tollmeter.cli import main as cli_main
from tollmeter.notifications import log
from tollmeter.notifications.retention import prune
from tollmeter.notifications.rules import evaluate
from tollmeter.notifications.runner import Notifier
from tollmeter.notifications.settings import NotifierSettings
from tollmeter.store import schema
from tollmeter.store.rows import event_row

from .server_support import event, free_port
from .test_notifications import FAST, SECRET, Receiver, receiver, rounds, store  # noqa: F401 - fixtures

pytest_plugins = ["tests.server_harness"]

#: A month of the past (fixed, so that its periods, a month's end included, are the test's).
T0 = datetime(2025, 3, 10, 12, tzinfo=timezone.utc)


def spend(store, amount: str, tenant: str, at: datetime) -> None:
    store.add_events([event_row(event(tenant_id=tenant, cost_usd=amount, priced=True, timestamp=at.isoformat()))])


def rows(store) -> dict[tuple[str, str, str], str]:
    """The notifications table: (tenant, subject, period) -> state, every project's."""
    t = schema.notifications
    with store.transaction() as conn:
        found = conn.execute(select(t.c.tenant_id, t.c.subject, t.c.period, t.c.state)).all()
    return {(tenant, subject, period): state for tenant, subject, period, state in found}


def count(store, table) -> int:
    with store.transaction() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


def test_pruning_keeps_what_once_per_period_needs(store, receiver):
    """A month of one project's limits, pruned with keep_days=7 as it goes."""
    other = store.for_project("other")
    store.set_limit("acme", "per_month", 1)
    store.set_limit("acme", "per_day", 1)
    store.set_limit("initech", "per_day", 1)
    other.set_limit("hooli", "per_day", 1)
    log.save_endpoint(store, url=receiver.url, secret=SECRET, rules=["limit"], thresholds=[100])
    off = log.save_endpoint(other, url=receiver.url, secret=SECRET, rules=["limit"], thresholds=[100])
    n = Notifier(store.for_project("default"), NotifierSettings(**{**FAST.__dict__, "keep_days": 7}))

    def at(when: datetime, messages: int) -> None:
        rounds(n, lambda: len(receiver.messages()) == messages, now=when)

    try:
        spend(store, "1.5", "acme", T0)
        spend(other, "1.5", "hooli", T0)
        at(T0, 3)  # acme's month and day, hooli's day
        store.set_limit("acme", "per_month", 10)
        store.set_limit("acme", "per_day", 10)
        at(T0 + timedelta(hours=1), 5)  # both resolved
        store.set_limit("acme", "per_month", 1)  # past 100 % again, in the same month: not notified again
        n.run_once(now=T0 + timedelta(hours=2))
        assert len(receiver.messages()) == 5
        log.save_endpoint(other, endpoint_id=off["endpoint_id"], enabled=False)  # hooli's stays firing
        spend(store, "2", "initech", T0 + timedelta(days=6))
        at(T0 + timedelta(days=6), 6)
        store.set_limit("initech", "per_day", 10)
        at(T0 + timedelta(days=6, hours=1), 7)
        assert rows(store) == {
            ("acme", "per_month:100", "per_month:2025-03"): "resolved",
            ("acme", "per_day:100", "per_day:2025-03-10"): "resolved",
            ("hooli", "per_day:100", "per_day:2025-03-10"): "firing",
            ("initech", "per_day:100", "per_day:2025-03-16"): "resolved",
        }
        assert count(store, schema.notification_deliveries) == 7

        # 2025-03-20: acme's day resolved 10 days ago goes with its deliveries; its month (not
        # over), hooli's firing day and initech's day resolved 4 days ago stay
        n.run_once(now=T0 + timedelta(days=10))
        assert rows(store) == {
            ("acme", "per_month:100", "per_month:2025-03"): "resolved",
            ("hooli", "per_day:100", "per_day:2025-03-10"): "firing",
            ("initech", "per_day:100", "per_day:2025-03-16"): "resolved",
        }
        assert count(store, schema.notification_deliveries) == 2  # initech's
        assert count(store, schema.notification_attempts) == 2
        for day in range(10, 22):  # rounds to the month's end: acme stays past 100 % of its month
            n.run_once(now=T0 + timedelta(days=day, hours=11))
        assert len(receiver.messages()) == 7  # nothing sent twice
        assert ("acme", "per_month:100", "per_month:2025-03") in rows(store)

        # 2025-04-01 00:30: the month ended half an hour ago, within the day of grace: kept
        n.run_once(now=datetime(2025, 4, 1, 0, 30, tzinfo=timezone.utc))
        assert ("acme", "per_month:100", "per_month:2025-03") in rows(store)

        # hooli's endpoint on again: its owed resolution is sent, from the row pruning left
        log.save_endpoint(other, endpoint_id=off["endpoint_id"], enabled=True)
        at(datetime(2025, 4, 1, 1, tzinfo=timezone.utc), 8)
        resolved = receiver.messages()[-1]
        assert (resolved["tenant_id"], resolved["status"], resolved["data"]["reason"]) == (
            "hooli", "resolved", "period_ended")

        # 2025-04-05: the month ended days ago, the rest was resolved long enough ago
        n.run_once(now=datetime(2025, 4, 5, tzinfo=timezone.utc))
        assert rows(store) == {("hooli", "per_day:100", "per_day:2025-03-10"): "resolved"}  # resolved 4 days ago
        assert count(store, schema.notification_deliveries) == 1
        n.run_once(now=datetime(2025, 4, 9, tzinfo=timezone.utc))
        assert rows(store) == {}
        assert count(store, schema.notification_deliveries) == 0
        assert count(store, schema.notification_attempts) == 0
        assert len(receiver.messages()) == 8
    finally:
        n.stop()


def test_a_total_limits_notification_is_never_pruned(store, receiver):
    """A `total` limit's period never ends: its row stays, however old, and a tenant crossing
    again after a raise and a cut is still not notified twice."""
    store.set_limit("acme", "total", 1)
    log.save_endpoint(store, url=receiver.url, secret=SECRET, rules=["limit"], thresholds=[100])
    spend(store, "1.5", "acme", T0)
    assert evaluate(store, T0) == 1
    store.set_limit("acme", "total", 10)
    assert evaluate(store, T0 + timedelta(hours=1)) == 1  # resolved
    store.set_limit("acme", "total", 1)
    later = T0 + timedelta(days=400)
    assert prune(store, later, keep_days=1).notifications == 0
    assert evaluate(store, later) == 0
    assert rows(store) == {("acme", "total:100", "total"): "resolved"}


def test_refusal_and_leak_rows_are_pruned_once_their_hour_or_month_is_over(store, receiver):
    from tollmeter.notifications.refusals import record_refusal

    log.save_endpoint(store, url=receiver.url, secret=SECRET, rules=["refusals"], refusal_count=2,
                      refusal_window_minutes=5)
    for _ in range(2):
        record_refusal(store, "acme", at=T0)
    assert evaluate(store, T0) == 1
    assert evaluate(store, T0 + timedelta(minutes=30)) == 1  # resolved at 12:30
    # a burst again in the same hour is the same notification: pruned or not, not sent again
    for _ in range(2):
        record_refusal(store, "acme", at=T0 + timedelta(minutes=40))
    assert prune(store, T0 + timedelta(minutes=41), keep_days=1).notifications == 0
    assert evaluate(store, T0 + timedelta(minutes=41)) == 0
    # past keep_days (resolved at 12:30) but the hour it is of ended less than a day ago: kept
    assert prune(store, T0 + timedelta(days=1, minutes=45), keep_days=1).notifications == 0
    assert prune(store, T0 + timedelta(days=1, hours=1), keep_days=1).notifications == 1
    assert rows(store) == {}
    # a leak row of a month (inserted as the leak rule does) goes once the month is a day over
    t = schema.notifications
    with store.transaction() as conn:
        conn.execute(t.insert().values(project_id=store.project, rule="leak", tenant_id="hooli",
                                       subject="cost_over_revenue:0123456789abcdef", period="2025-03",
                                       state="resolved", fired_at=T0, resolved_at=T0 + timedelta(days=1), detail={}))
        conn.execute(t.insert().values(project_id=store.project, rule="custom", tenant_id="hooli", subject="x",
                                       period="2025-03", state="resolved", fired_at=T0, resolved_at=T0, detail={}))
    assert prune(store, datetime(2025, 3, 31, 23, tzinfo=timezone.utc), keep_days=1).notifications == 0
    assert prune(store, datetime(2025, 4, 2, 1, tzinfo=timezone.utc), keep_days=1).notifications == 1
    assert list(rows(store)) == [("hooli", "x", "2025-03")]  # a rule it does not know: kept


def test_pruning_goes_in_bounded_batches(store, receiver):
    """30 resolved notifications and 60 deliveries done (one pending besides): batches of 8, at
    most 2 a call, then until none is left."""
    store.set_limit("*", "per_day", 1)
    log.save_endpoint(store, url=receiver.url, secret=SECRET, rules=["limit"], thresholds=[100])
    store.add_events([event_row(event(tenant_id=f"t{i:02d}", cost_usd="2", priced=True, timestamp=T0.isoformat()))
                      for i in range(30)])
    assert evaluate(store, T0) == 30
    store.set_limit("*", "per_day", 100)
    assert evaluate(store, T0 + timedelta(hours=1)) == 30
    n = Notifier(store.for_project("default"), FAST)
    try:
        rounds(n, lambda: len(receiver.messages()) == 60, now=T0 + timedelta(hours=1))
    finally:
        n.stop()
    # deliveries are created at most at the clock's now: these 60 at T0 and T0 + 1 h; one more,
    # pending (its endpoint away), is never pruned
    down = log.save_endpoint(store, url=f"http://127.0.0.1:{free_port()}/hook", secret=SECRET)
    log.send_test(store, down["endpoint_id"])
    with store.transaction() as conn:
        d = schema.notification_deliveries
        conn.execute(d.update().where(d.c.status == "pending").values(created_at=T0))
    later = T0 + timedelta(days=3)
    done = prune(store, later, keep_days=1, batch=8, max_batches=2)
    assert (done.notifications, done.deliveries, done.attempts) == (16, 16, 16)
    assert (count(store, schema.notifications), count(store, schema.notification_deliveries)) == (14, 45)
    done = prune(store, later, keep_days=1, batch=8)  # until none is left
    assert (done.notifications, done.deliveries) == (14, 44)
    assert count(store, schema.notifications) == 0
    [left] = log.recent_deliveries(store)
    assert left["status"] == "pending" and left["endpoint_id"] == down["endpoint_id"]
    assert count(store, schema.notification_attempts) == 0
    for bad in ({"keep_days": 0}, {"keep_days": 1, "batch": 0}):
        with pytest.raises(ValueError):
            prune(store, later, **bad)


def test_the_notifier_prunes_every_prune_interval(store, receiver):
    log.save_endpoint(store, url=receiver.url, secret=SECRET)
    log.send_test(store, log.list_endpoints(store)[0]["endpoint_id"])
    n = Notifier(store.for_project("default"), NotifierSettings(**{**FAST.__dict__, "keep_days": 1,
                                                                   "prune_interval": 3600}))
    try:
        now = datetime.now(timezone.utc)
        rounds(n, lambda: len(receiver.messages()) == 1, now=now)
        n.run_once(now=now + timedelta(days=2))  # pruned
        assert log.recent_deliveries(store) == []
        log.send_test(store, log.list_endpoints(store)[0]["endpoint_id"])
        rounds(n, lambda: len(receiver.messages()) == 2, now=now + timedelta(days=2))
        n.run_once(now=now + timedelta(days=2, minutes=30))  # done two days "ago", but pruned half an hour ago
        assert len(log.recent_deliveries(store)) == 1
        n.run_once(now=now + timedelta(days=2, hours=1))
        assert log.recent_deliveries(store) == []
    finally:
        n.stop()


def test_the_cli_prunes(store, receiver, capsys, monkeypatch):
    log.save_endpoint(store, url=receiver.url, secret=SECRET)
    log.send_test(store, log.list_endpoints(store)[0]["endpoint_id"])
    n = Notifier(store.for_project("default"), FAST)
    try:
        rounds(n, lambda: len(receiver.messages()) == 1)
    finally:
        n.stop()
    d = schema.notification_deliveries
    with store.transaction() as conn:
        conn.execute(d.update().values(created_at=datetime.now(timezone.utc) - timedelta(days=3)))
    url = store.engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("TOLLMETER_NOTIFY_KEEP_DAYS", "5")
    assert cli_main(["db", "prune-notifications", "--db", url]) == 0
    assert "removed 0 notifications and 0 deliveries" in capsys.readouterr().out
    assert cli_main(["db", "prune-notifications", "--db", url, "--keep-days", "2"]) == 0
    assert "removed 0 notifications and 1 deliveries (1 attempts) done more than 2 days ago" in capsys.readouterr().out
    assert log.recent_deliveries(store) == []
    assert cli_main(["db", "prune-notifications", "--db", url, "--keep-days", "0"]) == 2
    assert "must be 1 or more" in capsys.readouterr().err
