"""GET /v1/usage reads rollups (`usage_weekly`, `usage_daily`, `usage_hourly`) and raw events only at the ends
of its range: whatever the batches, duplicates, repricing and retention, every grouping over
every range equals the sums of the events the test generated; `check_rollups` (an independent
SQL recomputation from the raw events) finds nothing to report; retention removes exactly the
raw events before its midnight, the rollups keep their sums, and an event resent after it
is refused rather than counted twice. On SQLite and on PostgreSQL
(`TOLLMETER_TEST_POSTGRES`)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from tollmeter.pricing.pricer import load_pricer
from tollmeter.server.pricing import reprice
from tollmeter.store.store import Store

from .margin_support import D, event, fresh, store  # noqa: F401 (fixture)
from .test_rollups import cost_st, sent_in_batches

LATER_CARD = {"models": [{"model": "tm-later-model", "provider": "acme-ai", "input_mtok": 1, "output_mtok": 4}]}
#: Four days in a row (a Sunday to a Wednesday), and days of the three weeks after: ranges
#: that hold whole ISO weeks (`usage_weekly`) and most of one, and retention inside a week.
DAYS = [date(2025, 3, 30) + timedelta(days=n) for n in (0, 1, 2, 3, 8, 13, 19, 22)]
GROUPS = ("tenant_id", "day", "model", "provider", "agent_id", "run_id", "endpoint")
MEASURES = ("calls", "input_tokens", "output_tokens", "cache_read_tokens", "cost_usd", "unpriced", "errors")


@st.composite
def moment_st(draw) -> datetime:
    day = draw(st.sampled_from(DAYS))
    seconds = draw(st.one_of(st.integers(0, 86_399), st.sampled_from((0, 3599, 3600, 86_399))))
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(seconds=seconds)


spec_st = st.fixed_dictionaries({
    "tenant": st.sampled_from(("t1", "t2", None)),
    "run": st.sampled_from(("r1", "r2", None)),
    "agent": st.sampled_from(("a1", None)),
    "model": st.sampled_from(("m1", None, "tm-later-model", "tm-unknown-model")),
    "endpoint": st.sampled_from(("chat.completions", "responses", None)),
    "when": moment_st(),
    "cost": cost_st(),
    "input_tokens": st.integers(0, 100_000),
    "output_tokens": st.integers(0, 20_000),
    "cache_read_tokens": st.one_of(st.none(), st.integers(0, 1000)),
    "error": st.booleans(),
})


@st.composite
def histories(draw) -> tuple[list[dict], list[list[dict]]]:
    """Distinct events, and the batches they are sent in (some twice, in one batch or across)."""
    specs = draw(st.lists(spec_st, min_size=1, max_size=30))
    for spec in specs:
        spec["event_id"] = str(uuid.uuid4())
        if spec["model"] in ("tm-later-model", "tm-unknown-model"):
            spec["cost"] = None
        if spec["cache_read_tokens"] is not None:
            spec["cache_read_tokens"] = min(spec["cache_read_tokens"], spec["input_tokens"])
    return specs, sent_in_batches(draw, specs)


def row_of(spec: dict) -> dict:
    row = event(spec["when"], spec["cost"], tenant=spec["tenant"], run=spec["run"], agent=spec["agent"],
                model=spec["model"], input_tokens=spec["input_tokens"], output_tokens=spec["output_tokens"],
                cache_read_tokens=spec["cache_read_tokens"], event_id=spec["event_id"],
                error="rate_limited" if spec["error"] else None)
    row["endpoint"] = spec["endpoint"]
    return row


def key_of(spec: dict, group_by: tuple[str, ...]) -> tuple:
    values = {"tenant_id": spec["tenant"], "day": spec["when"].date().isoformat(), "model": spec["model"],
              "provider": "acme-ai", "agent_id": spec["agent"], "run_id": spec["run"], "endpoint": spec["endpoint"]}
    return tuple(values[g] for g in group_by)


def expected(specs: list[dict], costs: dict, group_by: tuple[str, ...], since: datetime | None,
             until: datetime | None, tenant: str | None) -> dict:
    out: dict[tuple, list] = {}
    for spec in specs:
        if (since is not None and spec["when"] < since) or (until is not None and spec["when"] >= until):
            continue
        if tenant is not None and spec["tenant"] != tenant:
            continue
        cost = costs[spec["event_id"]]
        measures = [1, spec["input_tokens"], spec["output_tokens"], spec["cache_read_tokens"] or 0,
                    cost if cost is not None else D(0), 0 if cost is not None else 1, 1 if spec["error"] else 0]
        current = out.setdefault(key_of(spec, group_by), [0, 0, 0, 0, D(0), 0, 0])
        for i, m in enumerate(measures):
            current[i] += m
    if not group_by and not out:
        out[()] = [0, 0, 0, 0, D(0), 0, 0]
    return {k: tuple(v) for k, v in out.items()}


def answered(store: Store, group_by: tuple[str, ...], since: datetime | None, until: datetime | None,
             tenant: str | None) -> dict:
    rows = store.usage(group_by=list(group_by), since=since, until=until, tenant_id=tenant)
    out = {}
    for row in rows:
        key = tuple(row[g] for g in group_by)
        assert key not in out
        out[key] = tuple(D(row[m]) if m == "cost_usd" else int(row[m]) for m in MEASURES)
    return out


def clean(report: dict) -> bool:
    return all(r["missing"] == r["extra"] == r["different"] == 0 for r in report.values())


query_st = st.tuples(
    st.lists(st.sampled_from(GROUPS), unique=True, max_size=3).map(tuple),
    st.one_of(st.none(), moment_st()),
    st.one_of(st.none(), moment_st()),
    st.sampled_from((None, "t1", "t2")),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(history=histories(), queries=st.lists(query_st, min_size=1, max_size=6), keep_from=st.sampled_from(DAYS))
def test_usage_from_rollups_equals_the_events_after_duplicates_repricing_and_retention(store, history, queries,
                                                                                      keep_from):
    specs, sent = history
    view = fresh(store)
    for batch in sent:
        view.add_events([row_of(spec) for spec in batch])
    costs = {spec["event_id"]: spec["cost"] for spec in specs}
    for group_by, since, until, tenant in queries:
        assert answered(view, group_by, since, until, tenant) == expected(specs, costs, group_by, since, until,
                                                                          tenant)
    assert clean(view.check_rollups())

    reprice(view, load_pricer(LATER_CARD), project=view.project, batch=7)
    for spec in specs:
        if spec["model"] == "tm-later-model":
            costs[spec["event_id"]] = (D(spec["input_tokens"]) + D(spec["output_tokens"]) * 4) / D(1_000_000)
    assert clean(view.check_rollups())

    # retention: raw events before `keep_from` go, the ones from that midnight on all stay
    mark = datetime(keep_from.year, keep_from.month, keep_from.day, tzinfo=timezone.utc)
    removed = view.remove_events_before(mark + timedelta(hours=7), batch=3)  # the midnight on or before
    kept = [s for s in specs if s["when"] >= mark]
    assert removed == len(specs) - len(kept)
    assert view.count_events() == len(kept)
    assert view.retention_mark() == mark
    assert sorted(r["event_id"] for r in _event_ids(view)) == sorted(s["event_id"] for s in kept)
    assert clean(view.check_rollups())
    view.rebuild_rollups()  # a rebuild leaves the days before the mark as they were
    assert clean(view.check_rollups())
    expired: list[str] = []
    for batch in sent:  # everything sent again (an agent's spool): nothing counts twice
        assert view.add_events([row_of(spec) for spec in batch], expired=expired) == []
    assert set(expired) == {s["event_id"] for s in specs if s["when"] < mark}
    assert clean(view.check_rollups())
    for group_by, since, until, tenant in queries:
        # ranges whose raw ends are inside the window are answered as before; whole days and
        # hours before it come from the rollups
        since = since if since is None or since >= mark else None
        until = until if until is None or until >= mark else None
        if "run_id" in group_by and {"provider", "endpoint"} & set(group_by):
            since = max(since or mark, mark)  # no rollup has runs by provider or endpoint: raw events only
        assert answered(view, group_by, since, until, tenant) == expected(specs, costs, group_by, since, until,
                                                                          tenant)


def _event_ids(store: Store) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from tollmeter.store import schema

    e = schema.events
    with store.transaction() as conn:
        return list(conn.execute(select(e.c.event_id).where(e.c.project_id == store.project)).mappings())


def test_check_rollups_reports_a_rollup_that_disagrees(store):
    from sqlalchemy import delete, insert, update

    from tollmeter.store import schema

    view = fresh(store)
    view.add_events([row_of({"tenant": "t1", "run": "r1", "agent": None, "model": "m1", "endpoint": "responses",
                             "when": datetime(2025, 3, 30, 10, 5, tzinfo=timezone.utc), "cost": D("0.5"),
                             "input_tokens": 10, "output_tokens": 2, "cache_read_tokens": None, "error": False,
                             "event_id": str(uuid.uuid4())})])
    assert clean(view.check_rollups())
    t = schema.usage_hourly
    with view.transaction() as conn:
        conn.execute(update(t).where(t.c.project_id == view.project).values(calls=t.c.calls + 1))
    report = view.check_rollups()
    assert report["usage_hourly"] == {"rows": 1, "missing": 0, "extra": 0, "different": 1}
    assert report["usage_daily"]["different"] == 0
    view.rebuild_rollups()
    assert clean(view.check_rollups())
    d = schema.usage_daily
    with view.transaction() as conn:  # a row lost, and a row for a day without events
        conn.execute(delete(d).where(d.c.project_id == view.project))
        conn.execute(insert(d).values(project_id=view.project, day=date(2025, 3, 29), tenant_id="t9", agent_id="",
                                      model="", provider="", endpoint="", calls=1, input_tokens=0, output_tokens=0,
                                      cache_read_tokens=0, cost_usd=D(0), unpriced=0, errors=0))
    assert view.check_rollups()["usage_daily"] == {"rows": 1, "missing": 1, "extra": 1, "different": 0}
    view.rebuild_rollups()
    assert clean(view.check_rollups())
    w = schema.usage_weekly
    with view.transaction() as conn:  # a week's cost off by a picodollar: against the days summed by week
        conn.execute(update(w).where(w.c.project_id == view.project).values(cost_usd=w.c.cost_usd + D("1e-12")))
    report = view.check_rollups()
    assert report["usage_weekly"] == {"rows": 1, "missing": 0, "extra": 0, "different": 1}
    assert clean({k: v for k, v in report.items() if k != "usage_weekly"})
    [row] = view.usage(group_by=["model"], since=datetime(2025, 3, 24, tzinfo=timezone.utc),
                       until=datetime(2025, 3, 31, tzinfo=timezone.utc))  # the week, read whole
    assert row["cost_usd"] == D("0.5") + D("1e-12")
    view.rebuild_rollups()
    assert clean(view.check_rollups())


def test_a_database_from_before_the_usage_rollups_gets_them_on_open(store):
    from sqlalchemy import delete

    from tollmeter.store import schema
    from tollmeter.store.store import fill_missing_rollups

    view = fresh(store)
    when = datetime(2025, 3, 31, 9, 30, tzinfo=timezone.utc)
    view.add_events([row_of({"tenant": "t1", "run": None, "agent": "a1", "model": "m1", "endpoint": "responses",
                             "when": when + timedelta(minutes=n), "cost": D("0.1"), "input_tokens": 5,
                             "output_tokens": 1, "cache_read_tokens": None, "error": False,
                             "event_id": str(uuid.uuid4())}) for n in range(3)])
    with view.transaction() as conn:  # as a database made before migration 0004 would be
        for table in (schema.usage_hourly, schema.usage_daily, schema.usage_weekly):
            conn.execute(delete(table).where(table.c.project_id == view.project))
    assert view.usage(group_by=["endpoint"]) == []
    with view.transaction() as conn:
        assert view.project in fill_missing_rollups(conn)
    [row] = view.usage(group_by=["endpoint"])
    assert (row["endpoint"], row["calls"], row["cost_usd"]) == ("responses", 3, D("0.3"))
    assert clean(view.check_rollups())
