"""The rollups margin reads (`usage_rollup`, `run_rollup`) are kept at ingest: whatever the
batches, duplicates and repricing, they equal the sums recomputed from the raw events. A
database whose rollups are missing gets them back (`fill_missing_rollups`, on open). On SQLite
and on PostgreSQL (`TOLLMETER_TEST_POSTGRES`)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import delete, select

from tollmeter.pricing.pricer import load_pricer
from tollmeter.server.pricing import reprice
from tollmeter.store import schema
from tollmeter.store.ledger import Ledger
from tollmeter.store.store import Store, fill_missing_rollups

from .margin_support import D, add, at, event, fresh, store  # noqa: F401 (fixture)

#: Prices "tm-later-model" (USD per million tokens): what `reprice` finds once the card has it.
LATER_CARD = {"models": [{"model": "tm-later-model", "provider": "acme-ai", "input_mtok": 1, "output_mtok": 4}]}
MEASURES = schema.ROLLUP_MEASURES


def later_cost(input_tokens: int, output_tokens: int) -> Decimal:
    return (D(input_tokens) * 1 + D(output_tokens) * 4) / D(1_000_000)


def rollups(store: Store) -> tuple[dict, dict]:
    """The project's usage and run rollups: {key: measures}, keys as the store writes them."""
    out = []
    for table, keys in ((schema.usage_rollup, ("tenant_id", "day", "agent_id", "model")),
                        (schema.run_rollup, ("run_id", "tenant_id", "day", "agent_id", "model"))):
        with store.transaction() as conn:
            rows = conn.execute(select(table).where(table.c.project_id == store.project)).mappings().all()
        found = {}
        for row in rows:
            key = tuple(_day(row[k]) if k == "day" else row[k] for k in keys)
            assert key not in found
            found[key] = tuple(D(row[m]) if m == "cost_usd" else int(row[m]) for m in MEASURES)
        out.append(found)
    return out[0], out[1]


def recomputed(store: Store) -> tuple[dict, dict]:
    """The rollups as the raw events of the project say they should be, summed in Python."""
    e = schema.events
    with store.transaction() as conn:
        rows = conn.execute(select(e).where(e.c.project_id == store.project)).mappings().all()
    usage: dict = {}
    runs: dict = {}
    for row in rows:
        moment = row["timestamp"]
        moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
        key = (row["tenant_id"] or "", moment.date(), row["agent_id"] or "", row["model"] or "")
        measures = (1, row["input_tokens"] or 0, row["output_tokens"] or 0, row["cache_read_tokens"] or 0,
                    D(row["cost_usd"]) if row["cost_usd"] is not None else D(0), 0 if row["priced"] else 1,
                    1 if row["error"] is not None else 0)
        _add(usage, key, measures)
        if row["run_id"]:
            _add(runs, (row["run_id"], *key), measures)
    return usage, runs


def _add(into: dict, key: tuple, measures: tuple) -> None:
    current = into.get(key)
    into[key] = measures if current is None else tuple(a + b for a, b in zip(current, measures))


def _day(value: Any) -> date:
    return value if isinstance(value, date) and not isinstance(value, datetime) else date.fromisoformat(str(value)[:10])


def expected_from(generated: list[dict], costs: dict[str, Decimal | None]) -> dict:
    """The usage rollup from what the test generated (first copy of each event id), with the
    cost each event has now (`costs`: None for unpriced)."""
    usage: dict = {}
    for spec in generated:
        cost = costs[spec["event_id"]]
        key = (spec["tenant"] or "", spec["day"], spec["agent"] or "", spec["model"] or "")
        _add(usage, key, (1, spec["input_tokens"], spec["output_tokens"], spec["cache_read_tokens"] or 0,
                          cost if cost is not None else D(0), 0 if cost is not None else 1,
                          1 if spec["error"] else 0))
    return usage


def row_of(spec: dict) -> dict:
    return event(at(spec["day"], spec["hour"], spec["minute"]), spec["cost"], tenant=spec["tenant"], run=spec["run"],
                 agent=spec["agent"], model=spec["model"], input_tokens=spec["input_tokens"],
                 output_tokens=spec["output_tokens"], cache_read_tokens=spec["cache_read_tokens"],
                 event_id=spec["event_id"], error="rate_limited" if spec["error"] else None)


DAYS = [date(2025, 3, 30) + timedelta(days=n) for n in range(4)]



@st.composite
def cost_st(draw) -> Decimal:
    """0 to 5 USD with up to 15 decimals."""
    places = draw(st.integers(0, 15))
    return Decimal(draw(st.integers(0, 5 * 10**places))).scaleb(-places)


spec_st = st.fixed_dictionaries({
    "tenant": st.sampled_from(("t1", "t2", None)),
    "run": st.sampled_from(("r1", "r2", "r3", None)),
    "agent": st.sampled_from(("a1", None)),
    # priced at ingest (m1, m2, no model), priced later by reprice (tm-later-model), never priced
    "model": st.sampled_from(("m1", "m2", None, "tm-later-model", "tm-unknown-model")),
    "day": st.sampled_from(DAYS),
    "hour": st.integers(0, 23),
    "minute": st.integers(0, 59),
    "cost": cost_st(),
    "input_tokens": st.integers(0, 100_000),
    "output_tokens": st.integers(0, 20_000),
    "cache_read_tokens": st.one_of(st.none(), st.integers(0, 1000)),
    "error": st.booleans(),
})


@st.composite
def batches(draw) -> tuple[list[dict], list[list[dict]]]:
    """Distinct events, and the batches they are sent in: some twice, in one batch or across."""
    specs = draw(st.lists(spec_st, min_size=1, max_size=30))
    for spec in specs:
        spec["event_id"] = str(uuid.uuid4())
        if spec["model"] in ("tm-later-model", "tm-unknown-model"):
            spec["cost"] = None  # arrives unpriced
        if spec["cache_read_tokens"] is not None:
            spec["cache_read_tokens"] = min(spec["cache_read_tokens"], spec["input_tokens"])
    return specs, sent_in_batches(draw, specs)


def sent_in_batches(draw, specs: list[dict]) -> list[list[dict]]:
    """The batches `specs` are sent in: some twice (retries), in one batch or across."""
    sends = list(specs) + draw(st.lists(st.sampled_from(specs), max_size=10))
    order = draw(st.permutations(sends))
    cuts = sorted(draw(st.lists(st.integers(0, len(order)), max_size=4)))
    bounds = [0, *cuts, len(order)]
    return [order[a:b] for a, b in zip(bounds, bounds[1:])]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=batches())
def test_rollups_equal_the_raw_events_after_duplicates_and_reprice(store, data):
    specs, sent = data
    view = fresh(store)
    stored = []
    for batch in sent:
        stored += view.add_events([row_of(spec) for spec in batch])
    assert sorted(stored) == sorted(spec["event_id"] for spec in specs)  # each stored once
    assert view.count_events() == len(specs)
    costs = {spec["event_id"]: spec["cost"] for spec in specs}
    usage, runs = rollups(view)
    assert (usage, runs) == recomputed(view)
    assert usage == expected_from(specs, costs)
    # reprice: the card now knows tm-later-model; tm-unknown-model stays unpriced
    result = reprice(view, load_pricer(LATER_CARD), project=view.project, batch=7)
    later = [s for s in specs if s["model"] == "tm-later-model"]
    assert result.priced == len(later)
    for spec in later:
        costs[spec["event_id"]] = later_cost(spec["input_tokens"], spec["output_tokens"])
    usage, runs = rollups(view)
    assert (usage, runs) == recomputed(view)
    assert usage == expected_from(specs, costs)
    # a rebuild from the raw events finds the same
    view.rebuild_rollups()
    assert rollups(view) == (usage, runs)
    # and margin reads them: its cost is that of the events
    report = Ledger(view).margin(("tenant", "run"), since=DAYS[0], until=DAYS[-1] + timedelta(days=1))
    assert report.total.cost_usd == sum((c for c in costs.values() if c is not None), D(0))
    assert report.total.calls == len(specs)
    assert report.total.unpriced == sum(1 for c in costs.values() if c is None)


def test_runs_first_and_last_seen_follow_their_events(store):
    add(store, event(at(DAYS[1], 10), "1", run="r"), event(at(DAYS[0], 9), "1", run="r"))
    add(store, event(at(DAYS[2], 23, 59), "1", run="r"), event(at(DAYS[1], 0), "1", run="r"))
    run = Ledger(store).run("r")
    first, last = (v.replace(tzinfo=timezone.utc) if v.tzinfo is None else v
                   for v in (run["first_seen"], run["last_seen"]))
    assert (first, last) == (at(DAYS[0], 9), at(DAYS[2], 23, 59))
    assert run["tenant_id"] == "acme" and run["outcome"] is None


def test_a_duplicate_in_one_batch_counts_once(store):
    one = event(at(DAYS[0]), "0.25", run="r", event_id=str(uuid.uuid4()))
    assert store.add_events([one, one]) == [one["event_id"]]
    assert store.add_events([one]) == []
    usage, runs = rollups(store)
    assert usage == {("acme", DAYS[0], "", "m1"): (1, 0, 0, 0, D("0.25"), 0, 0)}
    assert runs == {("r", "acme", DAYS[0], "", "m1"): (1, 0, 0, 0, D("0.25"), 0, 0)}
    assert store.spent("acme", at(DAYS[0]))["total"] == D("0.25")


def test_a_resent_event_with_other_content_keeps_the_stored_one_everywhere(store):
    """The same event id twice in one batch with different content (a client bug): the store
    keeps one copy, and the rollups and the spend must be that copy's, not the other's."""
    event_id = str(uuid.uuid4())
    first = event(at(DAYS[0]), "0.25", model="m1", event_id=event_id)
    other = event(at(DAYS[1]), "9.75", model="m2", event_id=event_id)
    assert store.add_events([first, other]) == [event_id]
    assert rollups(store) == recomputed(store)
    e = schema.events
    with store.transaction() as conn:
        kept = conn.execute(select(e.c.cost_usd).where(e.c.project_id == store.project)).scalar_one()
    assert store.spent("acme", at(DAYS[0]))["total"] == kept


def test_fill_missing_rollups_rebuilds_a_database_without_them(store):
    views = [fresh(store), fresh(store)]
    for n, view in enumerate(views):
        add(view, event(at(DAYS[0]), "0.1", run="r1", agent="a"), event(at(DAYS[1], 23), "0.000000000000001", run="r1"),
            event(at(DAYS[1]), None, model="tm-unknown-model", input_tokens=10, tenant=None),
            event(at(DAYS[2]), str(n + 1), tenant="t2", error="boom"))
    before = [rollups(view) for view in views]
    assert all(b == recomputed(v) for b, v in zip(before, views))
    # one project loses its rollups: fill_missing_rollups finds it (and only it)
    with store.transaction() as conn:
        for table in (schema.usage_rollup, schema.run_rollup):
            conn.execute(delete(table).where(table.c.project_id == views[0].project))
    assert rollups(views[0]) == ({}, {})
    with store.transaction() as conn:
        assert fill_missing_rollups(conn, quick=True) == []  # quick: some rollups exist, look no further
        assert fill_missing_rollups(conn) == [views[0].project]
        assert fill_missing_rollups(conn) == []
    assert [rollups(view) for view in views] == before
    # a database without any rollups (as before they existed): filled when a store opens it
    with store.transaction() as conn:
        for table in (schema.usage_rollup, schema.run_rollup):
            conn.execute(delete(table))
    reopened = Store(store.url)
    try:
        assert [rollups(reopened.for_project(view.project)) for view in views] == before
    finally:
        reopened.close()
    margin = Ledger(views[1]).margin("tenant", since=DAYS[0], until=DAYS[-1])
    assert margin.total.cost_usd == D("2.100000000000001") and margin.total.calls == 4


def test_tables_made_from_rollups_are_filled_for_a_database_from_before_them(store):
    """run_usage_rollup and tenant_rollup came after the rollups they are sums of: a database
    without them (emptied here as one from before them) gets them on open, equal to what
    ingest keeps, and check_rollups agrees (runs' costs, kept on their rows, too)."""
    view = fresh(store)
    add(view, event(at(DAYS[0]), "0.1", run="r1", agent="a"), event(at(DAYS[1], 23), "0.000000000000001", run="r1"),
        event(at(DAYS[1]), "0.5", run="r2", agent="b", tenant="t2"), event(at(DAYS[2]), "3", tenant="t2"))
    made = (schema.run_usage_rollup, schema.tenant_rollup)

    def contents() -> list:
        with store.transaction() as conn:
            return [sorted(tuple(r) for r in conn.execute(select(t).where(t.c.project_id == view.project)))
                    for t in made]

    kept = contents()
    assert all(kept)
    with store.transaction() as conn:
        r = schema.runs
        assert dict(conn.execute(select(r.c.run_id, r.c.cost_usd).where(r.c.project_id == view.project)).all()) == {
            "r1": D("0.100000000000001"), "r2": D("0.5")}
        for table in made:
            conn.execute(delete(table))
    assert contents() == [[], []]
    reopened = Store(store.url)
    try:
        assert contents() == kept
        report = reopened.for_project(view.project).check_rollups()
        assert all(not (r["missing"] or r["extra"] or r["different"]) for r in report.values()), report
        assert report["run_costs"]["rows"] == 2 and report["tenant_rollup"]["rows"] == 4
    finally:
        reopened.close()


@settings(max_examples=25, deadline=None)
@given(amounts=st.lists(st.one_of(st.none(), cost_st()), max_size=20), copies=st.sampled_from((1, 4099)))
def test_sqlite_decimal_sum_is_exact_over_any_number_of_rows(tmp_path_factory, amounts, copies):
    """`decimal_sum`, SQLite's exact SUM of money (decimal text), folds its values every 4,096
    rows: the sum of 0 to 81,980 amounts, NULLs among them, is the exact one."""
    opened = Store(str(tmp_path_factory.mktemp("sum") / "s.db"))
    try:
        values = [None if a is None else format(a, "f") for a in amounts] * copies
        with opened.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TEMP TABLE amounts (v TEXT)")
            if values:
                conn.exec_driver_sql("INSERT INTO amounts VALUES (?)", [(v,) for v in values])
            got = conn.exec_driver_sql("SELECT decimal_sum(v) FROM amounts").scalar_one()
        present = [a for a in amounts if a is not None] * copies
        assert got == (format(sum(present, D(0)), "f") if present else None)
    finally:
        opened.close()
