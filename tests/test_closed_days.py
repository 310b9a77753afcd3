"""The closed days' rows the leak rules keep between reports (business/closed_days.py): after
any writes to those days (late events, resolutions dated in the past, plans changed, rollups
rebuilt, repricing), a report from the rows kept flags exactly what a report made from scratch
(another engine on the same database: another process) flags. On SQLite and PostgreSQL."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from typing import Iterator

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tollmeter.business import margin as margin_module
from tollmeter.business.leaks import LeakSettings
from tollmeter.store import revisions, schema
from tollmeter.store.ledger import Ledger
from tollmeter.store.store import Store

from .margin_support import D, at, event, fresh, store  # noqa: F401 (fixtures)
from .test_margin import TENANTS, amounts, plans

# A month's end and the days after it: the report's days, all of them long settled.
DAYS = [date(2025, 4, 24) + timedelta(days=n) for n in range(12)]
TODAY = [date(2025, 4, 30), date(2025, 5, 4), date(2025, 5, 5)]
RUNS = ("r1", "r2", "r3", "r4", "r5")

some_events = st.lists(st.fixed_dictionaries({
    "tenant": st.sampled_from((*TENANTS, None)),
    "run": st.sampled_from((*RUNS, None)),
    "agent": st.sampled_from(("a1", "a2", None)),
    "day": st.sampled_from(DAYS),
    "hour": st.integers(0, 23),
    "cost": st.one_of(st.none(), amounts(3)),
    "model": st.sampled_from(("m1", "m2")),
    "minute": st.sampled_from((0, 7, 59)),
}), min_size=1, max_size=8)

writes = st.one_of(
    st.tuples(st.just("events"), some_events),
    st.tuples(st.just("resolve"), st.sampled_from(RUNS), st.sampled_from(("resolved", "escalated", "failed")),
              st.sampled_from(DAYS), st.one_of(st.none(), amounts(2)), st.sampled_from((*TENANTS, None))),
    st.tuples(st.just("plan"), st.sampled_from(TENANTS), st.sampled_from(DAYS), plans()),
    st.tuples(st.just("rebuild")),
)

leak_settings = st.builds(LeakSettings, margin_floor_pct=st.sampled_from((D(0), D(20), D(90))),
                          spike_factor=st.sampled_from((D("1.5"), D(3))), spike_window_days=st.integers(1, 4),
                          spike_min_usd=st.sampled_from((D(0), D("0.5"))), projection_days=st.integers(1, 3))


@contextmanager
def another_engine(view: Store) -> Iterator[Ledger]:
    """The project of `view` through another engine (another process would be): nothing kept."""
    other = Store(view.engine.url.render_as_string(hide_password=False), project=view.project, create=False)
    try:
        yield Ledger(other)
    finally:
        other.close()


def from_scratch(view: Store, chosen: LeakSettings, today: date) -> list[dict]:
    with another_engine(view) as other:
        return [leak.to_dict() for leak in other.leaks(chosen, today=today)]


def with_t1(store: Store, plan: dict) -> Ledger:
    """A new project of `store` whose customer t1 is under `plan` from 2025."""
    ledger = Ledger(fresh(store))
    ledger.upsert_customer("t1", plan=plan, effective_from=date(2025, 1, 1))
    return ledger


def margins_made(monkeypatch) -> list[tuple[tuple[str, ...], date, date]]:
    """The (groups, first, end) of every margin made from the database from now on."""
    made, asked = margin_module._margin, []

    def counted(ledger, groups, first, end, *args, **kwargs):
        asked.append((groups, first, end))
        return made(ledger, groups, first, end, *args, **kwargs)

    monkeypatch.setattr(margin_module, "_margin", counted)
    return asked


class Writer:
    """One of `writes` applied to a ledger's project (a run is resolved once)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.resolved: set[str] = set()
        #: The current day, for "current" (events of the current day: never marked).
        self.today: date | None = None

    @classmethod
    def started(cls, store: Store, plans: list, events: list, changes: list = ()) -> Writer:
        """A new project of `store` with the customers' `plans`, their `changes` of plan (tenant,
        day, plan) and the first `events`."""
        write = cls(Ledger(fresh(store)))
        for tenant, plan in plans:
            write.ledger.upsert_customer(tenant, plan=plan, seats=3, effective_from=DAYS[0] - timedelta(days=40))
        for tenant, day, plan in changes:
            write.ledger.upsert_customer(tenant, plan=plan, seats=2, effective_from=day)
        write("events", events)
        return write

    def __call__(self, kind, *args) -> None:
        ledger, view = self.ledger, self.ledger.store
        if kind == "current":
            kind, args = "events", ([{**e, "day": self.today} for e in args[0]],)
        if kind == "events":
            view.add_events([event(at(e["day"], e["hour"], e["minute"]), e["cost"], tenant=e["tenant"], run=e["run"],
                                   agent=e["agent"], model=e.get("model", "m1")) for e in args[0]])
        elif kind == "resolve":
            run_id, outcome, day, revenue, tenant = args
            if run_id not in self.resolved:
                self.resolved.add(run_id)
                ledger.resolve(run_id, outcome, revenue_usd=revenue, tenant_id=tenant, at=at(day, 9))
        elif kind == "plan":
            tenant, day, plan = args
            ledger.upsert_customer(tenant, plan=plan, seats=2, effective_from=day)
        elif kind == "retention":
            view.remove_events_before(at(args[0], 0))
        else:
            view.rebuild_rollups()


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(start=st.lists(st.tuples(st.sampled_from(TENANTS), plans()), min_size=1, max_size=3, unique_by=lambda p: p[0]),
       first=some_events, later=st.lists(writes, min_size=1, max_size=4), chosen=leak_settings,
       today=st.sampled_from(TODAY),
       changes=st.lists(st.tuples(st.sampled_from(TENANTS), st.sampled_from(DAYS), plans()), max_size=2))
def test_kept_days_flag_what_a_fresh_report_flags(store, monkeypatch, start, first, later, chosen, today, changes):
    """`changes`: plans changed within the days before the first report (a run earns what the
    plan of its last day pays: a late event can move that day)."""
    monkeypatch.setattr(revisions, "now", lambda: at(today, 12))  # the report's day is the current one
    write = Writer.started(store, start, first, changes)
    view, ledger = write.ledger.store, write.ledger
    assert [leak.to_dict() for leak in ledger.leaks(chosen, today=today)] == from_scratch(view, chosen, today)
    for step, (kind, *args) in enumerate(later):
        write(kind, *args)
        kept = [leak.to_dict() for leak in ledger.leaks(chosen, today=today)]
        assert kept == from_scratch(view, chosen, today), (start, first, later[:step + 1], chosen, today, changes)


def test_a_second_report_reads_only_the_open_day(store, monkeypatch):
    """The closed days are kept: the second report asks the margin for its own day alone; a
    late event marks its day, which is read again with the days after it in its month."""
    ledger = with_t1(store, {"name": "u", "pricing_model": "per_unit", "unit_revenue_usd": "1"})
    view = ledger.store
    view.add_events([event(at(day), "0.5", tenant="t1", run=f"r{day.day}") for day in DAYS])
    asked = margins_made(monkeypatch)
    today = DAYS[-1]
    end = today + timedelta(days=1)
    first = ledger.leaks(today=today)
    month = today.replace(day=1)
    window = month - timedelta(days=LeakSettings().spike_window_days)
    by_agent, by_tenant = ("agent", "day"), ("tenant", "day")
    assert sorted(asked) == [(by_agent, month, end), (by_tenant, window, today), (by_tenant, today, end)]
    asked.clear()
    assert ledger.leaks(today=today) == first
    assert sorted(asked) == [(by_agent, today, end), (by_tenant, today, end)]
    asked.clear()

    late = DAYS[-3]
    marked = ledger.day_revisions(late, late + timedelta(days=1))[late]  # written after it ended, above
    view.add_events([event(at(late, 3), "7", tenant="t1", run="r-late")])
    assert ledger.day_revisions(late, late + timedelta(days=1)) == {late: marked + 1}
    again = ledger.leaks(today=today)
    # the days before it are kept; the customers' running figures are carried again from there
    assert sorted(asked) == [(by_agent, late, end), (by_tenant, late, today), (by_tenant, today, end)]
    assert [leak.to_dict() for leak in again] == from_scratch(view, LeakSettings(), today)
    assert again != first  # the late event's cost is in


def test_a_late_event_folds_again_only_its_customer_and_decides_again_only_its_days_runs(store, monkeypatch):
    """After a late event of one customer on one closed day, the customers' figures kept are
    folded again for that customer alone, and the runs decided again are those active on that
    day, not the month's: what a report after a trickle of late events costs."""
    from tollmeter.business import leaks as leaks_module

    ledger = with_t1(store, {"name": "u", "pricing_model": "per_unit", "unit_revenue_usd": "1"})
    view = ledger.store
    for tenant in ("t2", "t3"):
        ledger.upsert_customer(tenant, plan={"name": "u", "pricing_model": "per_unit", "unit_revenue_usd": "1"},
                               effective_from=date(2025, 1, 1))
    view.add_events([event(at(day), "0.75", tenant=tenant, run=f"{tenant}-r{day.day}")
                     for day in DAYS for tenant in ("t1", "t2", "t3")])
    today = DAYS[-1]
    monkeypatch.setattr(revisions, "now", lambda: at(today, 12))
    folded, decided = [], []
    fold, costly = leaks_module._fold, Ledger.costly_runs

    def counted_fold(rows, span, *args, **kwargs):
        folded.append(({row.key["tenant"] for row in rows}, span[0], span[-1]))
        return fold(rows, span, *args, **kwargs)

    def counted_costly(self, first, end, **kwargs):
        decided.append((first, end, kwargs.get("run_ids")))
        return costly(self, first, end, **kwargs)

    monkeypatch.setattr(leaks_module, "_fold", counted_fold)
    monkeypatch.setattr(Ledger, "costly_runs", counted_costly)
    ledger.leaks(today=today)
    ledger.leaks(today=today)
    folded.clear(), decided.clear()

    late = DAYS[-3]
    view.add_events([event(at(late, 3), "9", tenant="t2", run="t2-late")])  # after its day ended: marked
    again = ledger.leaks(today=today)
    refolded, redecided = folded[:], decided[:]  # (not those of the report from scratch)
    assert [leak.to_dict() for leak in again] == from_scratch(view, LeakSettings(), today)
    assert "t2-late" in [leak.subject_id for leak in again if leak.subject == "run"]
    window = today.replace(day=1) - timedelta(days=LeakSettings().spike_window_days)
    assert sorted((sorted(tenants), since, last) for tenants, since, last in refolded) == [
        (["t1", "t2", "t3"], today, today),  # the current day
        (["t2"], window, today - timedelta(days=1))]  # t2 alone again
    end = today + timedelta(days=1)
    assert sorted(redecided) == [(late, late + timedelta(days=1), None),  # the late event's day
                                 (today, end, None)]  # the current day, as always


def test_a_late_event_that_moves_a_kept_runs_last_day_into_a_better_plan(store, monkeypatch):
    """A run earns what the plan of its last day pays: a late event after its last day, under
    a plan that pays more, can take a kept run's flag away; the runs active on the late day are
    decided again, and a flag they no longer earn is dropped, as from scratch."""
    ledger = with_t1(store, {"name": "u", "pricing_model": "per_unit", "unit_revenue_usd": "1"})
    view = ledger.store
    ledger.upsert_customer("t1", plan={"name": "u5", "pricing_model": "per_unit", "unit_revenue_usd": "5"},
                           effective_from=DAYS[9])
    today = DAYS[-1]
    monkeypatch.setattr(revisions, "now", lambda: at(today, 12))
    view.add_events([event(at(DAYS[7]), "3", tenant="t1", run="r1")])  # under the $1 plan: over
    assert [leak.subject_id for leak in ledger.leaks(today=today) if leak.subject == "run"] == ["r1"]
    ledger.leaks(today=today)  # kept
    view.add_events([event(at(DAYS[9]), "0.5", tenant="t1", run="r1")])  # late, under the $5 plan
    after = [leak.to_dict() for leak in ledger.leaks(today=today)]
    assert after == from_scratch(view, LeakSettings(), today)
    assert [leak["subject_id"] for leak in after if leak["subject"] == "run"] == []


def test_an_event_of_the_current_day_that_moves_a_kept_runs_last_day_into_a_better_plan(store, monkeypatch):
    """The same on the current day (no mark): the runs active on it are decided again at
    every report, and a kept flag they no longer earn is dropped."""
    ledger = with_t1(store, {"name": "u", "pricing_model": "per_unit", "unit_revenue_usd": "1"})
    view = ledger.store
    today = DAYS[-1]
    ledger.upsert_customer("t1", plan={"name": "u5", "pricing_model": "per_unit", "unit_revenue_usd": "5"},
                           effective_from=today)
    monkeypatch.setattr(revisions, "now", lambda: at(today, 12))
    view.add_events([event(at(DAYS[7]), "3", tenant="t1", run="r1")])  # under the $1 plan: over
    assert [leak.subject_id for leak in ledger.leaks(today=today) if leak.subject == "run"] == ["r1"]
    ledger.leaks(today=today)  # kept
    view.add_events([event(at(today, 9), "0.5", tenant="t1", run="r1")])  # today: no mark, the $5 plan
    assert ledger.day_revisions(today, today + timedelta(days=1)) == {}
    after = [leak.to_dict() for leak in ledger.leaks(today=today)]
    assert after == from_scratch(view, LeakSettings(), today)
    assert [leak["subject_id"] for leak in after if leak["subject"] == "run"] == []


def test_the_plan_book_read_again_unchanged_is_the_same_object(store):
    """What a report keeps is kept under the plan book it was made with: read again and
    unchanged, the book is the same object (no thousand customers' plans compared each time);
    after a change, a new one."""
    ledger = with_t1(store, {"name": "u", "pricing_model": "per_unit", "unit_revenue_usd": "1"})
    book = ledger.plan_book()
    assert ledger.plan_book() is book
    assert ledger.plan_book(["t1"]) is not book  # one customer's: read apart
    ledger.upsert_customer("t1", plan={"name": "u", "pricing_model": "per_unit", "unit_revenue_usd": "2"},
                           effective_from=date(2025, 3, 1))
    changed = ledger.plan_book()
    assert changed is not book and len(changed.spans("t1")) == 2
    with another_engine(ledger.store) as other:
        assert other.plan_book() is not changed  # another engine (process) reads its own


def test_only_writes_to_ended_days_are_marked(store):
    view = fresh(store)
    today = datetime.now(timezone.utc).date()
    view.add_events([event(at(today, 0, 1), "1", tenant="t1")])  # the current day: no mark
    assert Ledger(view).day_revisions(date(2000, 1, 1), today + timedelta(days=1)) == {}
    yesterday = today - timedelta(days=1)
    view.add_events([event(at(yesterday), "1", tenant="t1", event_id="late-1"),
                     event(at(yesterday, 13), "1", tenant="t2", event_id="late-2")])
    view.add_events([event(at(yesterday), "1", tenant="t1", event_id="late-1")])  # stored already: no write
    assert Ledger(view).day_revisions(yesterday, today) == {yesterday: 1}
    tomorrow = today + timedelta(days=1)
    view.add_events([event(at(tomorrow), "1", tenant="t1", event_id="ahead")])  # a clock ahead: marked too
    assert Ledger(view).day_revisions(tomorrow, tomorrow + timedelta(days=1)) == {tomorrow: 1}
    view.rebuild_rollups()  # every day at once
    assert Ledger(view).day_revisions(yesterday, today)[revisions.EVERY_DAY] == 1


def test_a_transaction_rolled_back_marks_nothing(store):
    view = fresh(store)
    day = date(2025, 1, 2)
    try:
        with view.transaction() as conn:
            revisions.note(conn, view.project, [day])
            raise RuntimeError("the writer failed")
    except RuntimeError:
        pass
    with view.transaction() as conn:  # the next user of the pooled connection flushes nothing left
        pass
    assert Ledger(view).day_revisions(day, day + timedelta(days=1)) == {}
    with view.transaction() as conn:
        revisions.note(conn, view.project, [day])
    assert Ledger(view).day_revisions(day, day + timedelta(days=1)) == {day: 1}
    t = schema.day_revisions
    with view.transaction() as conn:
        assert conn.execute(t.select().where(t.c.project_id == view.project)).all()


def test_a_day_is_kept_once_it_ended_ten_minutes_ago():
    assert revisions.settled_before(datetime(2025, 5, 1, 0, 9, tzinfo=timezone.utc)) == date(2025, 4, 30)
    assert revisions.settled_before(datetime(2025, 5, 1, 0, 10, tzinfo=timezone.utc)) == date(2025, 5, 1)



def test_a_late_resolution_reranks_the_later_days_of_its_month(store):
    """A hybrid plan's included units go to the month's first runs: a run resolved late on an
    earlier day moves the later days' revenue, which the kept rows must not hide."""
    ledger = with_t1(store, {"name": "h", "pricing_model": "hybrid", "base_revenue_usd": "0", "unit_revenue_usd": "5", "included_units": 1})
    view = ledger.store
    view.add_events([event(at(day), "3", tenant="t1", run=f"r{day.day}") for day in DAYS[6:10]])
    ledger.resolve("r2", "resolved", at=at(DAYS[10], 8))  # on May 4th: the month's first run (included)
    today = DAYS[-1]
    before = [leak.to_dict() for leak in ledger.leaks(today=today)]
    ledger.resolve("r1", "resolved", at=at(DAYS[7], 8))  # on May 1st, late: r2 is now the second, paid
    after = [leak.to_dict() for leak in ledger.leaks(today=today)]
    assert after == from_scratch(view, LeakSettings(), today)
    assert after != before


def test_a_late_event_of_a_month_before_raises_a_runs_cost_to_date(store):
    """A run's flag reads its cost to date, whatever day it was spent on: a late event of the
    month before, for a run active this month, can make it cost more than it earns."""
    ledger = with_t1(store, {"name": "u", "pricing_model": "per_unit", "unit_revenue_usd": "1"})
    view = ledger.store
    view.add_events([event(at(date(2025, 5, 2)), "0.5", tenant="t1", run="r1")])
    today = date(2025, 5, 4)
    before = [leak.to_dict() for leak in ledger.leaks(today=today) if leak.subject == "run"]
    assert before == []
    view.add_events([event(at(date(2025, 4, 27)), "0.75", tenant="t1", run="r1")])  # late, in April
    after = [leak.to_dict() for leak in ledger.leaks(today=today)]
    assert after == from_scratch(view, LeakSettings(), today)
    assert [leak["subject_id"] for leak in after if leak["subject"] == "run"] == ["r1"]


def test_a_run_resolved_after_the_reports_day(store, monkeypatch):
    """A kept run resolved later than the report's day (a clock ahead; a report of a past day)
    is decided again over the report's range, as from scratch."""
    ledger = with_t1(store, {"name": "r", "pricing_model": "per_resolution", "unit_revenue_usd": "2"})
    view = ledger.store
    view.add_events([event(at(date(2025, 4, 24)), "1", tenant="t1", run="r1")])
    today = date(2025, 4, 30)
    for clock in (at(today, 12), datetime.now(timezone.utc)):  # the current day, then a past one
        monkeypatch.setattr(revisions, "now", lambda clock=clock: clock)
        assert [leak.subject_id for leak in ledger.leaks(today=today) if leak.subject == "run"] == []
    monkeypatch.setattr(revisions, "now", lambda: at(today, 12))
    ledger.resolve("r1", "failed", at=at(date(2025, 5, 1)))  # earns nothing now
    flagged = [leak.to_dict() for leak in ledger.leaks(today=today)]
    assert flagged == from_scratch(view, LeakSettings(), today)
    assert [leak["subject_id"] for leak in flagged if leak["subject"] == "run"] == ["r1"]


def test_a_kept_run_resolved_on_the_current_day_for_more_than_it_cost(store, monkeypatch):
    ledger = with_t1(store, {"name": "u", "pricing_model": "per_unit", "unit_revenue_usd": "1"})
    view = ledger.store
    view.add_events([event(at(date(2025, 4, 24)), "2", tenant="t1", run="r1")])
    today = date(2025, 4, 30)
    monkeypatch.setattr(revisions, "now", lambda: at(today, 12))
    assert [leak.subject_id for leak in ledger.leaks(today=today) if leak.subject == "run"] == ["r1"]
    ledger.resolve("r1", "resolved", revenue_usd="5", at=at(today, 13))  # the current day: no mark
    assert ledger.day_revisions_total() == 1  # the event's day alone
    flagged = [leak.to_dict() for leak in ledger.leaks(today=today)]
    assert flagged == from_scratch(view, LeakSettings(), today)
    assert [leak["subject_id"] for leak in flagged if leak["subject"] == "run"] == []


def test_a_past_days_report_sees_the_current_days_resolutions_of_its_runs(store):
    """A resolution made now (on the current day: no mark) can make a run active on a past
    day cost more than it earns: a report of a past day keeps no run flags."""
    ledger = with_t1(store, {"name": "r", "pricing_model": "per_resolution", "unit_revenue_usd": "1"})
    view = ledger.store
    view.add_events([event(at(date(2025, 4, 24)), "0.5", tenant="t1", run="r1")])
    today = date(2025, 4, 30)
    assert [leak.subject_id for leak in ledger.leaks(today=today) if leak.subject == "run"] == []
    ledger.resolve("r1", "escalated")  # now: earns nothing
    flagged = [leak.to_dict() for leak in ledger.leaks(today=today)]
    assert flagged == from_scratch(view, LeakSettings(), today)
    assert [leak["subject_id"] for leak in flagged if leak["subject"] == "run"] == ["r1"]


def test_the_projects_asked_least_recently_are_forgotten(store):
    from tollmeter.business import closed_days

    views = [fresh(store) for _ in range(closed_days.PROJECTS + 1)]
    for view in views:
        view.add_events([event(at(DAYS[0]), "1", tenant="t1")])
        Ledger(view).leaks(today=DAYS[-1])
    kept = closed_days._kept[store.engine]
    assert list(kept) == [view.project for view in views[1:]]  # the first one is gone
    Ledger(views[1]).leaks(today=DAYS[-1])
    assert list(kept)[-1] == views[1].project


def test_one_kept_customers_part_whatever_the_days_asked(store, monkeypatch):
    """Reports of successive days (a serving process, day after day) replace what is kept of
    the customers' figures: it does not pile up a copy per day."""
    from tollmeter.business import closed_days

    view = fresh(store)
    ledger = Ledger(view)
    view.add_events([event(at(day), "1", tenant="t1") for day in DAYS])
    for today in DAYS[-4:]:
        monkeypatch.setattr(revisions, "now", lambda today=today: at(today, 12))
        ledger.leaks(today=today)
    kept = closed_days._kept[store.engine][view.project]
    assert sorted(name for name in kept if isinstance(name, str)) == ["customers", "runs"]


# -- margin reports (`Ledger.margin`: the API's, the CLI's and the dashboard's) ------------------

GROUPINGS = [("tenant",), ("tenant", "model"), ("agent",), ("run",), ("day",), ("model", "week"),
             ("tenant", "agent", "month"), ()]


def margin_from_scratch(view: Store, groups, first: date, end: date, tenant_id: str | None) -> dict:
    with another_engine(view) as other:
        return margin_module.margin(other, groups, since=first, until=end, tenant_id=tenant_id).to_dict()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(start=st.lists(st.tuples(st.sampled_from(TENANTS), plans()), min_size=1, max_size=3, unique_by=lambda p: p[0]),
       first=some_events, later=st.lists(writes, min_size=1, max_size=4), today=st.sampled_from(DAYS[2:]),
       asked=st.lists(st.tuples(st.sampled_from(GROUPINGS), st.sampled_from(DAYS[:6]), st.integers(1, 12),
                                st.sampled_from((None, *TENANTS))), min_size=1, max_size=3))
def test_kept_margin_reports_are_the_reports_made_from_scratch(store, monkeypatch, start, first, later, today, asked):
    """Margin reports of ranges ending before, on or after the current day, asked again after
    each write: equal to those another engine makes from nothing, row for row."""
    monkeypatch.setattr(revisions, "now", lambda: at(today, 12))
    write = Writer.started(store, start, first)
    view, ledger = write.ledger.store, write.ledger
    for step in range(len(later) + 1):
        if step:
            write(*later[step - 1])
        for groups, since, length, tenant in asked:
            until = since + timedelta(days=length)
            kept = ledger.margin(groups, since=since, until=until, tenant_id=tenant).to_dict()
            assert kept == margin_from_scratch(view, groups, since, until, tenant), (groups, since, until, tenant,
                                                                                    later[:step])


@pytest.mark.parametrize("by", [("tenant", "day"), ("tenant", "model")])
def test_a_margin_report_asked_again_reads_only_the_open_days(store, monkeypatch, by):
    """The month to date asked three times: the first report is made in one pass. By period
    (tenant and day): the second keeps the settled days (the last two apart), the third reads
    the current day alone, a late event on one of the last two settled days makes those again.
    Without a period (tenant and model): the settled days but the last two are kept, those two
    read with the current day each time, so a late event on the day before makes nothing
    again. A late event on an earlier day makes the kept parts again."""
    today = DAYS[-1]
    monkeypatch.setattr(revisions, "now", lambda: at(today, 12))
    ledger = with_t1(store, {"name": "u", "pricing_model": "usage_based", "markup": "0.5"})
    view = ledger.store
    view.add_events([event(at(day), "0.5", tenant="t1", model=f"m{day.day % 3}") for day in DAYS])
    asked = margins_made(monkeypatch)
    first, end = DAYS[0], today + timedelta(days=1)
    recent = today - timedelta(days=2)
    if "day" in by:
        split = [(by, first, recent), (by, recent, today), (by, today, end)]
        again, after_late = [(by, today, end)], [(by, recent, today), (by, today, end)]
    else:
        split = [(by, first, recent), (by, recent, end)]
        again = after_late = [(by, recent, end)]
    report = ledger.margin(by, since=first, until=end)
    assert asked == [(by, first, end)]
    asked.clear()
    assert ledger.margin(by, since=first, until=end).to_dict() == report.to_dict()
    assert asked == split
    asked.clear()
    assert ledger.margin(by, since=first, until=end).to_dict() == report.to_dict()
    assert asked == again
    asked.clear()
    view.add_events([event(at(today - timedelta(days=1), 3), "5", tenant="t1", model="m2")])  # yesterday, late
    late = ledger.margin(by, since=first, until=end)
    assert asked == after_late
    assert late.to_dict() == margin_from_scratch(view, by, first, end, None)
    asked.clear()
    view.add_events([event(at(DAYS[3], 3), "7", tenant="t1", model="m1")])
    late = ledger.margin(by, since=first, until=end)
    assert asked == split
    assert late.to_dict() == margin_from_scratch(view, by, first, end, None)
    assert late.total.cost_usd == report.total.cost_usd + 5 + 7


def test_kept_margin_reports_stay_within_their_rows(store, monkeypatch):
    """Reports asked for many tenants (a dashboard's customer pages) keep at most
    `_REPORT_ROWS` rows per project, the least recently asked forgotten first."""
    from tollmeter.business import closed_days

    monkeypatch.setattr(closed_days, "_REPORT_ROWS", 8)
    view = fresh(store)
    ledger = Ledger(view)
    view.add_events([event(at(day), "1", tenant=tenant) for day in DAYS[:4] for tenant in ("t1", "t2", "t3")])
    for tenant in ("t1", "t2", "t3"):
        for _ in range(2):  # kept from the second time on: its parts of 2 and 2 days, and the two joined
            ledger.margin(("day",), since=DAYS[0], until=DAYS[4], tenant_id=tenant)  # 2 + 2 + 4 rows each
    kept = closed_days._kept[store.engine][view.project]
    assert [name[2] for name, found in kept.items() if found.rows] == ["t3"]
    for _ in range(2):
        ledger.margin(("day", "tenant"), since=DAYS[0], until=DAYS[4])  # 6 + 6 + 12 rows: not kept
    assert [name[2] for name, found in kept.items() if found.rows] == ["t3"]


def test_margin_reports_known_are_bounded(store, monkeypatch):
    """Reports asked once each (a customer page per tenant) are remembered up to `_REPORTS`
    per project, the least recently asked forgotten first."""
    from tollmeter.business import closed_days

    monkeypatch.setattr(closed_days, "_REPORTS", 3)
    view = fresh(store)
    ledger = Ledger(view)
    view.add_events([event(at(DAYS[0]), "1", tenant="t1")])
    for tenant in ("t1", "t2", "t3", "t4", "t2"):
        ledger.margin(("day",), since=DAYS[0], until=DAYS[4], tenant_id=tenant)
    kept = closed_days._kept[store.engine][view.project]
    assert [name[2] for name in kept if closed_days._is_report(name)] == ["t3", "t4", "t2"]


# -- usage reports (GET /v1/usage, the dashboard) -------------------------------------------------

USAGE_GROUPS = [["tenant_id"], ["model"], ["day"], ["tenant_id", "model"], ["run_id"], ["run_id", "agent_id"],
                ["provider"], []]


def usage_from_scratch(view: Store, groups, since, until, tenant_id) -> list[dict]:
    with another_engine(view) as other:
        return other.store.usage(group_by=groups, since=since, until=until, tenant_id=tenant_id)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(first=some_events, later=st.lists(st.one_of(writes, st.tuples(st.just("current"), some_events),
                                                   st.tuples(st.just("retention"), st.sampled_from(DAYS))),
                                         min_size=1, max_size=4),
       today=st.sampled_from(DAYS[2:]),
       asked=st.lists(st.tuples(st.sampled_from(USAGE_GROUPS), st.sampled_from(DAYS[:8]), st.sampled_from((0, 3, 23)),
                                st.sampled_from((0, 7, 59)), st.integers(1, 300), st.sampled_from((None, *TENANTS))),
                      min_size=1, max_size=3))
def test_kept_usage_reports_are_the_reports_made_from_scratch(store, monkeypatch, first, later, today, asked):
    """Usage reports from and to any minute, asked again after each write (late events,
    resolutions, rebuilt rollups, retention): equal to those another engine makes from nothing."""
    from tollmeter.business.closed_days import usage_kept

    monkeypatch.setattr(revisions, "now", lambda: at(today, 12))
    write = Writer.started(store, [], first)
    write.today = today
    view = write.ledger.store
    for step in range(len(later) + 1):
        if step:
            write(*later[step - 1])
        for groups, day, hour, minute, hours, tenant in asked:
            since = at(day, hour, minute)
            until = since + timedelta(hours=hours)
            kept = usage_kept(view, groups, since, until, tenant)
            assert kept == usage_from_scratch(view, groups, since, until, tenant), (groups, since, until, tenant,
                                                                                   later[:step])


def test_a_usage_report_asked_again_reads_only_the_open_days(store, monkeypatch):
    """The first report is one statement over every piece; the second keeps the pieces before
    the last two settled days; the third reads only the pieces after them; a late event on
    the day before makes nothing again, one on an earlier day the kept pieces."""
    from tollmeter.business.closed_days import usage_kept
    from tollmeter.store import usage

    today = DAYS[-1]
    monkeypatch.setattr(revisions, "now", lambda: at(today, 12))
    view = fresh(store)
    view.add_events([event(at(day, 5), "0.5", tenant="t1") for day in DAYS])
    read: list[list] = []
    made = usage.summed

    def counted(conn, project, group_by, parts, tenant_id):
        read.append(parts)
        return made(conn, project, group_by, parts, tenant_id)

    monkeypatch.setattr(usage, "summed", counted)
    since, until = at(DAYS[0], 0, 7), at(today, 11, 58)
    midnight = at(today - timedelta(days=2), 0)
    report = usage_kept(view, ["tenant_id"], since, until)
    assert read == [usage.plan(["tenant_id"], since, until)]
    read.clear()
    assert usage_kept(view, ["tenant_id"], since, until) == report
    closed, after = usage.cut(usage.plan(["tenant_id"], since, until), midnight)
    assert read == [closed, after] and all(p[3] is None or p[3] <= midnight for p in closed)
    read.clear()
    assert usage_kept(view, ["tenant_id"], since, until) == report
    assert read == [after]
    assert report[0]["calls"] == len(DAYS)  # 05:00 of each day, the first after 00:07, the last before 11:58
    read.clear()
    view.add_events([event(at(today - timedelta(days=1), 7), "0.5", tenant="t1")])  # the day before, late
    assert usage_kept(view, ["tenant_id"], since, until)[0]["calls"] == len(DAYS) + 1
    assert read == [after]
    read.clear()
    view.add_events([event(at(DAYS[1], 7), "0.5", tenant="t1")])  # an earlier day
    assert usage_kept(view, ["tenant_id"], since, until)[0]["calls"] == len(DAYS) + 2
    assert read == [closed, after]


def test_retention_past_a_kept_usage_reports_edge(store, monkeypatch):
    """A kept report read the raw events of its first minutes; retention removing them (no
    day is marked: the rollups stay) makes the next report read them again, as a fresh one does."""
    from tollmeter.business.closed_days import usage_kept

    monkeypatch.setattr(revisions, "now", lambda: at(DAYS[-1], 12))
    view = fresh(store)
    view.add_events([event(at(DAYS[1], 0, 3), "1", tenant="t1"), event(at(DAYS[1], 0, 30), "2", tenant="t1"),
                     event(at(DAYS[5]), "4", tenant="t1")])
    since, until = at(DAYS[1], 0, 10), at(DAYS[-1], 0)  # the edge: the day less its first 10 minutes
    for _ in range(2):  # kept from the second report on
        assert [row["cost_usd"] for row in usage_kept(view, ["tenant_id"], since, until)] == [D(6)]
    view.remove_events_before(at(DAYS[2], 0))
    fresh_report = usage_from_scratch(view, ["tenant_id"], since, until, None)
    assert usage_kept(view, ["tenant_id"], since, until) == fresh_report
