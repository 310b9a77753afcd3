"""A serving process warms its kept reports at start (business/warm.py): the month's leak report
of its busiest projects is made on a thread of its own, so that the first one asked reads only
the open day, as a second report would, and flags what a report from scratch flags."""

from __future__ import annotations

import logging
from datetime import timedelta

from fastapi.testclient import TestClient

from tollmeter.business.leaks import LeakSettings
from tollmeter.business.warm import ReportWarmer
from tollmeter.server.app import create_app
from tollmeter.server.settings import ServerSettings
from tollmeter.store import revisions
from tollmeter.store.ledger import Ledger

from .margin_support import at, event, fresh, store  # noqa: F401 (fixtures)
from .test_closed_days import DAYS, from_scratch, margins_made, with_t1

TODAY = DAYS[-1]
PLAN = {"name": "u", "pricing_model": "per_unit", "unit_revenue_usd": "1"}


def busy(store, calls_today: int, days_ago: int = 0):
    """A new project of `store` whose customer t1 made `calls_today` calls `days_ago` days before
    the report's day, and one on each of the days before."""
    ledger = with_t1(store, PLAN)
    day = TODAY - timedelta(days=days_ago)
    ledger.store.add_events([event(at(d), "0.5", tenant="t1", run=f"r{d.day}") for d in DAYS if d < day]
                            + [event(at(day, 1, n % 60), "0.5", tenant="t1") for n in range(calls_today)])
    return ledger


def test_the_busiest_projects_are_warmed_most_calls_first(store, monkeypatch):
    monkeypatch.setattr(revisions, "now", lambda: at(TODAY, 12))
    quiet, busiest, idle = busy(store, 2), busy(store, 5), busy(store, 9, days_ago=4)
    no_plans = fresh(store)  # calls, but no customer with a plan: no revenue for the leak rules to weigh
    no_plans.add_events([event(at(TODAY, 1, n), "0.5", tenant="t1") for n in range(20)])
    warmer = ReportWarmer(store)
    chosen = warmer.busiest()
    # idle's calls were days ago; other tests' projects of this database may be among them
    assert chosen.index(busiest.project) < chosen.index(quiet.project)
    assert idle.project not in chosen and no_plans.project not in chosen
    assert ReportWarmer(store, projects=1).busiest() == chosen[:1]


def test_a_warmed_process_reads_only_the_open_day_at_its_first_report(store, monkeypatch):
    monkeypatch.setattr(revisions, "now", lambda: at(TODAY, 12))
    ledger = busy(store, 3)
    warmer = ReportWarmer(ledger.store, projects=1)
    assert warmer.busiest() == [ledger.project]
    asked = margins_made(monkeypatch)
    assert warmer.run() == [ledger.project] and warmer.done.is_set()
    month, end = TODAY.replace(day=1), TODAY + timedelta(days=1)
    window = month - timedelta(days=LeakSettings().spike_window_days)
    assert sorted(asked) == [(("agent", "day"), month, end), (("tenant", "day"), window, TODAY),
                             (("tenant", "day"), TODAY, end)]
    asked.clear()
    first = Ledger(ledger.store).leaks(today=TODAY)  # another Ledger of the project: what a request makes
    assert sorted(asked) == [(("agent", "day"), TODAY, end), (("tenant", "day"), TODAY, end)]
    assert first and [leak.to_dict() for leak in first] == from_scratch(ledger.store, LeakSettings(), TODAY)


def test_a_project_whose_report_fails_is_logged_and_the_others_are_warmed(store, monkeypatch, caplog):
    monkeypatch.setattr(revisions, "now", lambda: at(TODAY, 12))
    failing, fine = busy(store, 7), busy(store, 6)
    made = Ledger.leaks

    def leaks(self, *args, **kwargs):
        if self.project == failing.project:
            raise RuntimeError("the database went away")
        return made(self, *args, **kwargs)

    monkeypatch.setattr(Ledger, "leaks", leaks)
    warmer = ReportWarmer(store)
    chosen = warmer.busiest()
    with caplog.at_level(logging.ERROR, logger="tollmeter.business"):
        warmed = warmer.run()
    assert fine.project in warmed and failing.project not in warmed
    assert warmed == [project for project in chosen if project != failing.project]
    assert f"warming the leak report of project {failing.project} failed" in caplog.text


def test_a_stopped_warmer_makes_no_more_reports(store, monkeypatch):
    monkeypatch.setattr(revisions, "now", lambda: at(TODAY, 12))
    busy(store, 4), busy(store, 3)
    warmer = ReportWarmer(store)
    warmer.stop()
    assert warmer.run() == [] and warmer.done.is_set()


def test_an_app_with_warm_reports_warms_at_start(tmp_path):
    path = str(tmp_path / "warm.db")
    for warm in (True, False):
        app = create_app(ServerSettings(database_url=path, warm_reports=warm))
        with TestClient(app) as client:
            assert client.get("/healthz").status_code == 200
            warmer = app.state.warmer
            if warm:
                assert warmer.done.wait(60) and warmer.warmed == []  # an empty database: nothing to warm
            else:
                assert warmer is None


def test_an_app_warms_its_busiest_project(tmp_path, monkeypatch):
    """Through the app: its store, its start and stop (the days are today's, as in a server)."""
    from tollmeter.store.store import Store

    path = str(tmp_path / "warm.db")
    opened = Store(path)
    try:
        view = fresh(opened)
        ledger = Ledger(view)
        today = revisions.now().date()
        ledger.upsert_customer("t1", plan=PLAN, effective_from=today - timedelta(days=90))
        view.add_events([event(at(today - timedelta(days=n)), "0.5", tenant="t1") for n in range(5)])
    finally:
        opened.close()
    app = create_app(ServerSettings(database_url=path, warm_reports=True))
    with TestClient(app):
        assert app.state.warmer.done.wait(60)
        assert app.state.warmer.warmed == [view.project]
