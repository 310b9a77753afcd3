"""`run_outcomes`, the resolved runs counted per tenant, day, agent and outcome that margin reads
the revenue of runs from, always equals a count of the runs themselves: whatever the order of
resolutions and of the events that tell a run's tenant and agent (before, after, in several
batches), with duplicates, a rebuild, a database from before the table, and threads resolving
and ingesting the same runs at once. On SQLite and on PostgreSQL (`TOLLMETER_TEST_POSTGRES`)."""

from __future__ import annotations

import threading
import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import delete, inspect, text

from tollmeter.business.plans import PlanError
from tollmeter.store import schema
from tollmeter.store.ledger import Ledger
from tollmeter.store.store import Store, fill_missing_rollups

from .margin_support import D, at, event, fresh, store  # noqa: F401 (fixture)

DAYS = [date(2025, 3, 30) + timedelta(days=n) for n in range(3)]
RUNS = ("r1", "r2", "r3", "r4")


def counts_of_runs(ledger: Ledger) -> dict[tuple[Any, ...], tuple[int, int, Decimal]]:
    """What run_counts must say, from the runs read one by one."""
    out: dict[tuple[Any, ...], list[Any]] = {}
    for run in ledger.resolved_runs(DAYS[0], DAYS[-1] + timedelta(days=1)):
        cell = out.setdefault((run.tenant_id, run.day, run.agent_id, run.outcome), [0, 0, D(0)])
        cell[0] += 1
        if run.revenue_override is not None:
            cell[1] += 1
            cell[2] += run.revenue_override
    return {key: tuple(cell) for key, cell in out.items()}


def counted(ledger: Ledger, tenant_id: str | None = None) -> dict[tuple[Any, ...], tuple[int, int, Decimal]]:
    return {(c.tenant_id, c.day, c.agent_id, c.outcome): (c.runs, c.given, c.given_usd)
            for c in ledger.run_counts(DAYS[0], DAYS[-1] + timedelta(days=1), tenant_id=tenant_id)}


def agree(view: Store) -> None:
    ledger = Ledger(view)
    expected = counts_of_runs(ledger)
    assert counted(ledger) == expected
    assert counted(ledger, "t1") == {key: value for key, value in expected.items() if key[0] == "t1"}
    report = view.check_rollups()["run_outcomes"]
    assert not (report["missing"] or report["extra"] or report["different"]), report


step_st = st.one_of(
    st.fixed_dictionaries({"kind": st.just("events"), "run": st.sampled_from(RUNS),
                           "tenant": st.sampled_from(("t1", "t2", None)), "agent": st.sampled_from(("a1", "a2", None)),
                           "day": st.sampled_from(DAYS), "copies": st.integers(1, 2)}),
    st.fixed_dictionaries({"kind": st.just("resolve"), "run": st.sampled_from(RUNS),
                           "tenant": st.sampled_from(("t1", "t2", None)), "agent": st.sampled_from(("a1", None)),
                           "day": st.sampled_from(DAYS), "hour": st.integers(0, 23),
                           "outcome": st.sampled_from(("resolved", "escalated", "failed")),
                           "revenue": st.one_of(st.none(), st.decimals(0, 50, places=15))}),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(steps=st.lists(step_st, min_size=1, max_size=14))
def test_the_counts_equal_the_runs_whatever_the_order(store, steps):
    view = fresh(store)
    ledger = Ledger(view)
    for step in steps:
        if step["kind"] == "events":
            row = event(step["day"], "0.01", run=step["run"], tenant=step["tenant"], agent=step["agent"])
            view.add_events([row] * step["copies"])
            view.add_events([row])  # sent again: stored once
        else:
            try:
                ledger.resolve(step["run"], step["outcome"], revenue_usd=step["revenue"], tenant_id=step["tenant"],
                               agent_id=step["agent"], at=at(step["day"], step["hour"]))
            except PlanError:  # resolved already, differently: the first stands
                pass
    agree(view)
    view.rebuild_rollups()
    agree(view)


def test_a_count_moves_when_the_tenant_and_agent_arrive_after_the_resolution(store):
    ledger = Ledger(store)
    ledger.resolve("r", "resolved", revenue_usd="2.5", at=at(DAYS[1], 23))
    assert counted(ledger) == {(None, DAYS[1], None, "resolved"): (1, 1, D("2.5"))}
    store.add_events([event(DAYS[0], "0.1", run="r", tenant=None, agent="a")])
    assert counted(ledger) == {(None, DAYS[1], "a", "resolved"): (1, 1, D("2.5"))}
    store.add_events([event(DAYS[2], "0.1", run="r", tenant="acme", agent="b")])  # the agent stays "a"
    assert counted(ledger) == {("acme", DAYS[1], "a", "resolved"): (1, 1, D("2.5"))}
    agree(store)
    margin = ledger.margin(("tenant", "agent"), since=DAYS[0], until=DAYS[-1] + timedelta(days=1))
    assert [(r.key, r.resolved, r.revenue_usd) for r in margin.rows if r.resolved] == [
        ({"tenant": "acme", "agent": "a"}, 1, D("2.5"))]


def test_a_database_from_before_the_table_gets_it_filled(store):
    view = fresh(store)
    ledger = Ledger(view)
    view.add_events([event(DAYS[0], "0.1", run="r1", agent="a"), event(DAYS[1], "0.2", run="r2", tenant="t2")])
    ledger.resolve("r1", "resolved", at=at(DAYS[1]))
    ledger.resolve("r2", "failed", revenue_usd="0", at=at(DAYS[2]))
    ledger.resolve("r3", "escalated", tenant_id="t3", revenue_usd="1.000000000000001", at=at(DAYS[2]))
    before = counted(ledger)
    assert len(before) == 3
    t = schema.run_outcomes
    with store.transaction() as conn:
        conn.execute(delete(t).where(t.c.project_id == view.project))
        assert fill_missing_rollups(conn, quick=True) == [view.project]
        assert fill_missing_rollups(conn) == []
    assert counted(ledger) == before
    agree(view)
    with store.transaction() as conn:  # check_rollups sees a count that disagrees
        conn.execute(t.update().where(t.c.project_id == view.project, t.c.tenant_id == "t3").values(runs=2))
    assert view.check_rollups()["run_outcomes"]["different"] == 1


def test_threads_resolving_and_ingesting_the_same_runs_keep_the_counts(store):
    """Resolutions without a tenant or agent race the events that bring them: each run's count
    ends under the tenant and agent the run has, whichever commits first, and no transaction
    deadlocks another."""
    view = fresh(store)
    runs = [f"run-{n:03d}" for n in range(60)]
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def resolving(part: list[str]) -> None:
        ledger = Ledger(view)
        start.wait()
        for run in part:
            ledger.resolve(run, "resolved", revenue_usd="1", at=at(DAYS[1]))

    def ingesting(part: list[str]) -> None:
        start.wait()
        for at_ in range(0, len(part), 5):
            view.add_events([event(DAYS[0], "0.01", run=run, tenant=f"t-{run[-1]}", agent="a",
                                   event_id=str(uuid.uuid4())) for run in part[at_:at_ + 5]])

    def guarded(target: Any, part: list[str]) -> None:
        try:
            target(part)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    # Two threads resolve half each; two ingest every run, in opposite orders, in batches of
    # five: batches that share runs, taken in one order (a deadlock would fail a batch).
    threads = [threading.Thread(target=guarded, args=(fn, runs[i::2] if fn is resolving else runs[::1 - 2 * i]))
               for fn in (resolving, ingesting) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    agree(view)
    counts = counted(Ledger(view))
    assert sum(c[0] for c in counts.values()) == len(runs)
    assert {key[0] for key in counts} == {f"t-{n}" for n in range(10)}  # every count moved to its tenant


def test_a_database_from_before_an_index_gets_it_on_open(store):
    """`create_all` makes missing tables only: an index added later (ix_runs_seen, which the leak
    rule on runs reads through) is made when the store opens a database without it."""
    with store.transaction() as conn:
        conn.execute(text("DROP INDEX ix_runs_seen"))
    assert "ix_runs_seen" not in index_names(store)
    reopened = Store(store.url)
    try:
        assert "ix_runs_seen" in index_names(reopened)
    finally:
        reopened.close()


def test_a_database_with_a_retired_index_has_it_replaced_on_open(store):
    """ix_runs_resolved (project, resolved_at) became ix_runs_resolved_seen (with last_seen):
    a database from before has the new one made and the old one dropped when the store opens it."""
    with store.transaction() as conn:
        conn.execute(text("DROP INDEX ix_runs_resolved_seen"))
        conn.execute(text("CREATE INDEX ix_runs_resolved ON runs (project_id, resolved_at)"))
    assert {"ix_runs_resolved"} <= index_names(store) and "ix_runs_resolved_seen" not in index_names(store)
    reopened = Store(store.url)
    try:
        names = index_names(reopened)
        assert "ix_runs_resolved_seen" in names and "ix_runs_resolved" not in names
    finally:
        reopened.close()


def index_names(opened: Store) -> set[str]:
    with opened.transaction() as conn:
        return {index["name"] for index in inspect(conn).get_indexes("runs")}
