"""Ledger: the store's business tables (customers, their plans over time, runs and their
outcomes) and the rollups margin reads. Shared by the embedded store and the server; every
method is one short transaction through `Store.transaction()`."""

from __future__ import annotations

import json
import threading
import weakref
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, localcontext
from typing import Any, Iterable, Mapping, Sequence

from sqlalchemy import (Float, String, Text, and_, any_, bindparam, case, cast, func, null, or_, select, text as sql_text,
                        union_all, update)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Engine

from ..business.plans import Plan, PlanError, check_text, money, outcome as check_outcome, seats as check_seats
from ..business.revenue import PlanBook, PlanSpan, ResolvedRun, RunCount
from ..money import EXACT
from . import outcomes, revisions, schema, usage
from .revisions import as_date as _date
from .store import Store, _insert, accumulate

_ZERO = Decimal(0)
#: Every customer's plan book as last read, per engine and project (at most `_BOOKS` projects):
#: read again and the same, the same object comes back, so that what a report keeps under a
#: book (business/closed_days.py) is known to hold without comparing a thousand customers' plans.
_books: weakref.WeakKeyDictionary[Any, dict[str, tuple[tuple[Any, ...], PlanBook]]] = weakref.WeakKeyDictionary()
_books_lock = threading.Lock()
_BOOKS = 64


@dataclass(frozen=True)
class Customer:
    tenant_id: str
    name: str | None
    #: The plan and seats in force today (None: no plan yet, or one starting later).
    plan: Plan | None
    seats: int | None
    #: Every plan the customer had, oldest first.
    history: tuple[PlanSpan, ...] = field(default=())


@dataclass(frozen=True)
class Resolution:
    run_id: str
    tenant_id: str | None
    agent_id: str | None
    outcome: str
    revenue_usd: Decimal | None
    resolved_at: datetime
    #: True when the run was already resolved this way: nothing changed.
    duplicate: bool = False


class RunAlreadyResolved(PlanError):
    """A run resolved once cannot be resolved again differently."""


class Ledger:
    def __init__(self, store: Store) -> None:
        self.store = store

    @property
    def project(self) -> str:
        return self.store.project

    # -- customers and plans --------------------------------------------------------------------

    def upsert_customer(self, tenant_id: str, *, name: str | None = None, plan: Plan | dict | None = None,
                        seats: int | None = None, effective_from: date | None = None) -> Customer:
        """Create or update a customer. A plan or seats given take effect from `effective_from`
        (a UTC day; today by default); earlier days keep what was in force then."""
        check_text(tenant_id, "tenant_id")
        if name is not None:
            check_text(name, "name", empty=True)
        chosen = Plan.of(plan) if plan is not None else None
        count = check_seats(seats)
        if effective_from is not None and (not isinstance(effective_from, date) or isinstance(effective_from, datetime)):
            raise PlanError(f"effective_from must be a date, got {effective_from!r}")
        start = effective_from or datetime.now(timezone.utc).date()
        now = datetime.now(timezone.utc)
        c, p = schema.customers, schema.customer_plans
        with self.store.transaction() as conn:
            conn.execute(_insert(conn, c).on_conflict_do_nothing(index_elements=["project_id", "tenant_id"]),
                         {"project_id": self.project, "tenant_id": tenant_id, "name": name, "updated_at": now})
            values: dict[str, Any] = {"updated_at": now}
            if name is not None:
                values["name"] = name
            conn.execute(update(c).where(c.c.project_id == self.project, c.c.tenant_id == tenant_id).values(values))
            if chosen is not None or count is not None:
                current = self._span_on(conn, tenant_id, start)
                if chosen is None:
                    if current is None:
                        raise PlanError(f"{tenant_id!r} has no plan on {start}: give a plan with the seats")
                    chosen = current.plan
                if count is None and current is not None:
                    count = current.seats
                if chosen.pricing_model == "per_seat" and count is None:
                    raise PlanError("a per_seat plan needs seats")
                row = {"plan": chosen.to_dict(), "seats": count, "set_at": now}
                stmt = _insert(conn, p)
                conn.execute(stmt.on_conflict_do_update(index_elements=["project_id", "tenant_id", "effective_from"],
                                                        set_=row),
                             {"project_id": self.project, "tenant_id": tenant_id, "effective_from": start, **row})
        found = self.customer(tenant_id)
        assert found is not None
        return found

    def customer(self, tenant_id: str) -> Customer | None:
        customers = self.customers([tenant_id])
        return customers[0] if customers else None

    def customers(self, tenant_ids: Sequence[str] | None = None) -> list[Customer]:
        c = schema.customers
        query = select(c.c.tenant_id, c.c.name).where(c.c.project_id == self.project)
        if tenant_ids is not None:
            query = query.where(c.c.tenant_id.in_(list(tenant_ids)))
        with self.store.transaction() as conn:
            names = dict(conn.execute(query.order_by(c.c.tenant_id)).all())
            book = self._book(conn, list(names) if tenant_ids is not None else None)
        today = datetime.now(timezone.utc).date()
        out = []
        for tenant, name in names.items():
            span = book.on(tenant, today)
            out.append(Customer(tenant, name, span.plan if span else None, span.seats if span else None,
                                tuple(book.spans(tenant))))
        return out

    def plan_book(self, tenant_ids: Sequence[str] | None = None) -> PlanBook:
        with self.store.transaction() as conn:
            return self._book(conn, tenant_ids)

    def _book(self, conn: Any, tenant_ids: Sequence[str] | None) -> PlanBook:
        p = schema.customer_plans
        # the plan as its stored JSON text: customers share a few plans, each parsed once
        query = select(p.c.tenant_id, p.c.effective_from, cast(p.c.plan, Text), p.c.seats).where(
            p.c.project_id == self.project)
        if tenant_ids is not None:
            query = query.where(p.c.tenant_id.in_(list(tenant_ids)))
        rows = tuple(map(tuple, conn.execute(query.order_by(p.c.tenant_id, p.c.effective_from)).all()))
        if tenant_ids is None:  # every customer's: the same book again while the stored plans are
            with _books_lock:
                books = _books.setdefault(self.store.engine, {})
                held = books.pop(self.project, None)
                if held is not None and held[0] == rows:
                    books[self.project] = held  # the most recently asked last
                    return held[1]
        spans: dict[str, list[PlanSpan]] = {}
        plans: dict[str, Plan] = {}
        for tenant, start, text, seats in rows:
            chosen = plans.get(text)
            if chosen is None:
                chosen = plans[text] = Plan.of(json.loads(text))
            spans.setdefault(tenant, []).append(PlanSpan(_date(start), chosen, seats))
        book = PlanBook(spans)
        if tenant_ids is None:
            with _books_lock:
                books = _books.setdefault(self.store.engine, {})
                books[self.project] = (rows, book)
                while len(books) > _BOOKS:
                    del books[next(iter(books))]
        return book

    def _span_on(self, conn: Any, tenant_id: str, day: date) -> PlanSpan | None:
        return self._book(conn, [tenant_id]).on(tenant_id, day)

    # -- runs -------------------------------------------------------------------------------------

    def resolve(self, run_id: str, outcome: str, *, revenue_usd: Any = None, tenant_id: str | None = None,
                agent_id: str | None = None, at: datetime | None = None, key: str | None = None) -> Resolution:
        """Resolve a run once. Resolving it again the same way (or with the same `key`) changes
        nothing (`duplicate=True`); differently raises RunAlreadyResolved. A run not seen yet
        is recorded now, and its events add up when they arrive."""
        check_text(run_id, "run_id")
        check_outcome(outcome)
        revenue = money(revenue_usd, "revenue_usd")
        for name, value in (("tenant_id", tenant_id), ("agent_id", agent_id), ("key", key)):
            if value is not None:
                check_text(value, name)
        moment = _utc(at) if at is not None else datetime.now(timezone.utc)  # naive: UTC, like event times
        r = schema.runs
        where = and_(r.c.project_id == self.project, r.c.run_id == run_id)
        with self.store.transaction() as conn:
            conn.execute(_insert(conn, r).on_conflict_do_nothing(index_elements=["project_id", "run_id"]),
                         {"project_id": self.project, "run_id": run_id, "tenant_id": tenant_id, "agent_id": agent_id})
            won = conn.execute(update(r).where(where, r.c.outcome.is_(None)).values(
                outcome=outcome, revenue_usd=revenue, resolved_at=moment, resolution_key=key,
                tenant_id=func.coalesce(r.c.tenant_id, tenant_id), agent_id=func.coalesce(r.c.agent_id, agent_id),
            )).rowcount == 1
            row = conn.execute(select(r.c.tenant_id, r.c.agent_id, r.c.outcome, r.c.revenue_usd, r.c.resolved_at,
                                      r.c.resolution_key).where(where)).one()
            if won:
                key, values = outcomes.counted(row[0], row[1], moment, outcome, revenue)
                accumulate(conn, self.project, schema.run_outcomes, outcomes.KEYS, {key: values}, outcomes.MEASURES)
                revisions.note(conn, self.project, [outcomes.day_of(moment)])
        stored = Resolution(run_id, row[0], row[1], row[2], row[3], _utc(row[4]), duplicate=not won)
        if not won and not ((key is not None and key == row[5])
                            or (row[2] == outcome and (revenue is None or row[3] == revenue))):
            raise RunAlreadyResolved(
                f"run {run_id!r} was already resolved as {row[2]!r}"
                + (f" with revenue {row[3]}" if row[3] is not None else "") + f" at {stored.resolved_at.isoformat()}")
        return stored

    def run(self, run_id: str) -> dict[str, Any] | None:
        r = schema.runs
        with self.store.transaction() as conn:
            row = conn.execute(select(r).where(r.c.project_id == self.project, r.c.run_id == run_id)).mappings().first()
        return None if row is None else {k: v for k, v in row.items() if k != "project_id"}

    def resolved_runs(self, first: date, end: date, tenant_id: str | None = None) -> list[ResolvedRun]:
        """Runs resolved on days first <= day < end (of one tenant when given)."""
        r = schema.runs
        start, stop = _midnight(first), _midnight(end)
        query = select(r.c.run_id, r.c.tenant_id, r.c.agent_id, r.c.outcome, r.c.resolved_at, r.c.revenue_usd).where(
            r.c.project_id == self.project, r.c.resolved_at >= start, r.c.resolved_at < stop)
        if tenant_id is not None:
            query = query.where(r.c.tenant_id == tenant_id)
        with self.store.report() as conn:
            rows = conn.execute(query).all()
        out = []
        for run_id, tenant, agent, result, resolved_at, revenue in rows:
            moment = _utc(resolved_at)
            out.append(ResolvedRun(run_id, tenant, agent, result, moment.date(), (moment, run_id), revenue))
        return out

    def run_counts(self, first: date, end: date, tenant_id: str | None = None,
                   tenants: Sequence[str] | None = None) -> list[RunCount]:
        """Runs resolved on days first <= day < end, counted per tenant, day, agent and outcome:
        the counts kept as runs are resolved (`run_outcomes`, a row each), not a read of the runs.
        Of one tenant, or of `tenants`, when given."""
        t = schema.run_outcomes
        query = select(t.c.tenant_id, t.c.day, t.c.agent_id, t.c.outcome, t.c.runs, t.c.given, t.c.given_usd).where(
            t.c.project_id == self.project, t.c.day >= first, t.c.day < end)
        if tenant_id is not None:
            query = query.where(t.c.tenant_id == tenant_id)
        if tenants is not None:
            query = query.where(_among(self.store.engine, t.c.tenant_id, tenants))
        with self.store.report() as conn:
            rows = conn.execute(query).all()
        days: dict[Any, date] = {}
        none = schema.NONE_KEY
        out = []
        for tenant, text, agent, outcome, runs, given, given_usd in rows:
            if not runs:  # every run counted here was moved to another tenant or agent
                continue
            day = days.get(text)
            if day is None:
                day = days[text] = _date(text)
            out.append(RunCount(None if tenant == none else tenant, day, None if agent == none else agent, outcome,
                                runs, given, given_usd))
        return out

    def costly_runs(self, first: date, end: date, *, over: Mapping[str, Decimal], free: Sequence[str] = (),
                    free_outcomes: Sequence[str] = (), tenant_id: str | None = None,
                    run_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Runs with events or a resolution on days first <= day < end whose cost to date
        (`cost_usd` in what is returned) may be over what they earn: over their revenue given
        at resolve time, over `over[tenant]` for the others of the tenants in `over` (the least
        a run of that tenant can earn), and over zero for the runs of the tenants `free` with an
        outcome in `free_outcomes`. One read of the runs active in the range (their costs are
        kept on them); the caller decides exactly. On PostgreSQL the rows read are only those
        of such runs (found by `schema.runs`' indexes), not every run of the range. `run_ids`:
        of those runs only."""
        r = schema.runs
        start, stop = _midnight(first), _midnight(end)
        with self.store.report() as conn:
            if conn.dialect.name == "sqlite":  # decimal text: compared as floats, loosely (the caller decides)
                cost = func.cast(r.c.cost_usd, Float) * (1 + 1e-9) + 1e-12

                def above(value: Any) -> Any:
                    return cost > (func.cast(value, Float) if hasattr(value, "type") else float(value))
            else:
                def above(value: Any) -> Any:
                    return r.c.cost_usd > value
            def among(column: Any, values: Sequence[str]) -> Any:
                return _among(conn, column, values)

            chosen = [and_(r.c.revenue_usd.is_not(None), above(r.c.revenue_usd))]
            # One condition per threshold, on the tenants that have it (plans are few).
            alike: dict[Decimal, list[str]] = {}
            for tenant, least in over.items():
                alike.setdefault(least, []).append(tenant)
            for least, tenants in sorted(alike.items()):
                chosen.append(and_(r.c.revenue_usd.is_(None), among(r.c.tenant_id, sorted(tenants)), above(least)))
            if free and free_outcomes:
                chosen.append(and_(among(r.c.tenant_id, free), r.c.outcome.in_(list(free_outcomes)), above(0)))
            # The runs with events in the range, or resolved in it: three disjoint parts, each
            # found by index (schema.runs) for each way of being costly (`chosen`, a BitmapOr
            # on PostgreSQL): events in the range; resolved in it after them; resolved in it
            # before them (a run with no event costs nothing: never chosen).
            resolved = and_(r.c.resolved_at >= start, r.c.resolved_at < stop)
            parts = [and_(r.c.last_seen >= start, r.c.first_seen < stop),
                     and_(resolved, r.c.last_seen < start),
                     and_(resolved, r.c.last_seen >= stop, r.c.first_seen >= stop)]
            picked = [select(r.c.run_id, r.c.tenant_id, r.c.outcome, r.c.revenue_usd, r.c.resolved_at,
                             r.c.first_seen, r.c.last_seen, r.c.cost_usd).where(
                r.c.project_id == self.project, or_(*chosen), part,
                *([r.c.tenant_id == tenant_id] if tenant_id is not None else []),
                *([among(r.c.run_id, run_ids)] if run_ids is not None else [])) for part in parts]
            rows = conn.execute(union_all(*picked)).all()
        names = ("run_id", "tenant_id", "outcome", "revenue_usd", "resolved_at", "first_seen", "last_seen", "cost_usd")
        return [dict(zip(names, row)) for row in rows]

    def resolved_among(self, run_ids: Iterable[str]) -> set[str]:
        """Those of `run_ids` that are resolved."""
        ids = sorted(set(run_ids))
        r = schema.runs
        out: set[str] = set()
        with self.store.report() as conn:
            step = (len(ids) or 1) if conn.dialect.name == "postgresql" else 400  # SQLite: a parameter per id
            for at in range(0, len(ids), step):
                out.update(conn.execute(select(r.c.run_id).where(
                    r.c.project_id == self.project, _among(conn, r.c.run_id, ids[at:at + step]),
                    r.c.outcome.is_not(None))).scalars())
        return out

    def spike_days(self, first: date, end: date, *, window: int, factor: Decimal, least: Decimal,
                   tenant_id: str | None = None) -> list[tuple[str | None, date, Decimal, Decimal]]:
        """(tenant, day, cost, cost of the `window` days before it) of the days first <= day <
        end whose cost is at least `least` and may be over `factor` times the mean of the window
        (loosely: the caller decides exactly), from the tenant rollup. The window's sum is
        made by the database, exactly (PostgreSQL's NUMERIC; on SQLite, decimal text summed in
        Python for the days found)."""
        t = schema.tenant_rollup
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a whole number of days, got {window!r}")
        since = first - timedelta(days=window)
        where = "project_id = :project AND day >= :since AND day < :end" + (
            " AND tenant_id = :tenant" if tenant_id is not None else "")
        params = {"project": self.project, "since": since, "end": end, "first": first, "tenant": tenant_id,
                  "window": window, "factor": factor, "least": least}
        with self.store.report() as conn:
            exact = conn.dialect.name == "postgresql"  # NUMERIC; SQLite's decimal text, as floats
            if not exact:
                params.update(least=float(least) * (1 - 1e-9), factor=float(factor), since=since.isoformat(),
                              end=end.isoformat(), first=first.isoformat())
            cost = "cost_usd" if exact else "CAST(cost_usd AS REAL)"
            order = "day - DATE '2000-01-01'" if exact else "julianday(day)"  # days as numbers: a RANGE
            found = conn.execute(sql_text(
                f"SELECT tenant_id, day, cost, before FROM (SELECT tenant_id, day, {cost} AS cost, "
                f"SUM({cost}) OVER (PARTITION BY tenant_id "
                f"ORDER BY {order} "
                f"RANGE BETWEEN {window} PRECEDING AND 1 PRECEDING) AS before FROM {t.name} WHERE {where}) w "
                f"WHERE day >= :first AND cost >= :least AND before > 0 "
                f"AND cost * :window * 1.000000001 > :factor * before"), params).all()
            if exact:
                none = schema.NONE_KEY
                return [(None if tenant == none else tenant, _date(day), cost, before)
                        for tenant, day, cost, before in found]
            if not found:
                return []
            tenants = sorted({row[0] for row in found})
            costs: dict[str, dict[date, Decimal]] = {}
            for at in range(0, len(tenants), 400):
                for tenant, day, cost in conn.execute(select(t.c.tenant_id, t.c.day, t.c.cost_usd).where(
                        t.c.project_id == self.project, t.c.day >= since, t.c.day < end,
                        t.c.tenant_id.in_(tenants[at:at + 400]))):
                    costs.setdefault(tenant, {})[_date(day)] = cost
        out = []
        with localcontext(EXACT):
            for tenant, day, _, _ in found:
                day = _date(day)
                own = costs[tenant]
                before = sum((own.get(day - timedelta(days=n), _ZERO) for n in range(1, window + 1)), _ZERO)
                out.append((None if tenant == schema.NONE_KEY else tenant, day, own[day], before))
        return out

    def day_revisions(self, first: date, end: date) -> dict[date, int]:
        """How many times each of the days first <= day < end was written to when it was not
        the current day (those that were), and every day at once under `revisions.EVERY_DAY`."""
        with self.store.report() as conn:
            return revisions.read(conn, self.project, first, end)

    def day_revisions_total(self, before: date | None = None) -> int:
        """The marks of every day (before `before`, when given) added up (`revisions.total`)."""
        with self.store.report() as conn:
            return revisions.total(conn, self.project, before)

    # -- reports ----------------------------------------------------------------------------------

    def margin(self, group_by: Any = ("tenant",), since: Any = None, until: Any = None,
               tenant_id: str | None = None, book: PlanBook | None = None) -> Any:
        """`business.margin.margin`, its settled days kept between reports (`closed_days`)."""
        from ..business.closed_days import margin_kept
        from ..business.margin import check_groups, day_range

        return margin_kept(self, check_groups(group_by), *day_range(since, until), tenant_id, book)

    def leaks(self, settings: Any = None, today: date | None = None, tenant_id: str | None = None,
              daily: Any = None, book: PlanBook | None = None, subjects: Sequence[str] | None = None) -> Any:
        from ..business.leaks import SUBJECTS, leaks

        return leaks(self, settings, today=today, tenant_id=tenant_id, daily=daily, book=book,
                     subjects=SUBJECTS if subjects is None else subjects)

    # -- rollups ----------------------------------------------------------------------------------

    def usage(self, first: date, end: date, keys: Sequence[str], *, runs: bool = False, of_runs: bool = False,
              tenant_id: str | None = None, by_day: bool = True, tenants: Sequence[str] | None = None,
              exclude: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Rollup sums on days first <= day < end, grouped by tenant, day (unless not `by_day`:
        then "day" is None) and `keys` (any of agent_id, model, and run_id when `runs`): from
        the run rollup when `runs`, the events of runs only (no run key) when `of_runs`, else
        the usage rollup. Only `tenants`, or all but `exclude`, when given. Key columns come
        back as None for "none"."""
        names = ("tenant_id", "day", *keys, *schema.ROLLUP_MEASURES)
        return [dict(zip(names, row)) for row in self.usage_rows(
            first, end, keys, runs=runs, of_runs=of_runs, tenant_id=tenant_id, by_day=by_day, tenants=tenants,
            exclude=exclude)]

    def usage_rows(self, first: date, end: date, keys: Sequence[str], *, runs: bool = False, of_runs: bool = False,
                   tenant_id: str | None = None, by_day: bool = True, tenants: Sequence[str] | None = None,
                   exclude: Sequence[str] | None = None, by_tenant: bool = True,
                   cohorts: Sequence[Sequence[str]] | None = None) -> list[tuple[Any, ...]]:
        """`usage` as tuples: (tenant_id, day, *keys, *ROLLUP_MEASURES), made by the database
        (a month of a few hundred customers is tens of thousands of rows); not grouped by
        tenant when not `by_tenant` (tenant_id None). `cohorts` (lists of tenants, without a
        tenant key): summed apart in the same read, each row led by its cohort's index, the
        tenants of none of them last (index len(cohorts))."""
        table = schema.run_rollup if runs else schema.run_usage_rollup if of_runs else schema.usage_rollup
        engine = self.store.engine
        if table is schema.usage_rollup and not keys:
            table = schema.tenant_rollup  # the same sums, a row per tenant and day

        def within(t: Any, period: Any, lo: date, hi: date) -> list[Any]:
            where = [t.c.project_id == self.project, period >= lo, period < hi]
            if tenant_id is not None:
                where.append(t.c.tenant_id == tenant_id)
            if tenants is not None:
                where.append(_among(engine, t.c.tenant_id, tenants))
            if exclude:
                where.append(~_among(engine, t.c.tenant_id, exclude))
            return where

        weeks = usage.whole_weeks(first, end) if table is schema.usage_rollup and not by_day else None
        if weeks is not None:
            # Summed over the range: its whole ISO weeks from usage_weekly (a fifth of the rows
            # of a month), the days at each end from usage_rollup.
            w, (monday, last_monday) = schema.usage_weekly, weeks
            columns = ("tenant_id", *keys, *schema.ROLLUP_MEASURES)
            parts = [select(*(w.c[c] for c in columns)).where(*within(w, w.c.week, monday, last_monday))]
            parts += [select(*(table.c[c] for c in columns)).where(*within(table, table.c.day, lo, hi))
                      for lo, hi in ((first, monday), (last_monday, end)) if lo < hi]
            where: list[Any] = []
            table = union_all(*parts).subquery("summed")
        else:
            where = within(table, table.c.day, first, end)
        cohort = []
        if cohorts is not None:
            if by_tenant or not all(cohorts):
                raise ValueError("cohorts are lists of tenants, summed without a tenant key")
            cohort = [case(*((_among(engine, table.c.tenant_id, members), i) for i, members in enumerate(cohorts)),
                           else_=len(cohorts))]
        group = [*cohort, *([table.c.tenant_id] if by_tenant else []), *([table.c.day] if by_day else []),
                 *(table.c[k] for k in keys)]
        # Grouped by the table's own key, each group is one row: read as stored (no SUM, which
        # on SQLite adds money in Python).
        whole = by_day and by_tenant and {c.name for c in table.primary_key} == {"project_id", "tenant_id", "day",
                                                                                 *keys}
        if whole:
            measures = [table.c[m] for m in schema.ROLLUP_MEASURES]
        else:
            measures = [schema.money_sum(table.c[m]) if m == "cost_usd" else schema.count_sum(table.c[m])
                        for m in schema.ROLLUP_MEASURES]
            if engine.dialect.name == "postgresql":  # the counts' NUMERIC sums as text (usage._union)
                measures = [m if m.name == "money_sum" else cast(m, Text) for m in measures]
        none = schema.NONE_KEY  # "none" read as NULL
        shown = [*cohort, func.nullif(table.c.tenant_id, none) if by_tenant else null(),
                 table.c.day if by_day else null(), *(func.nullif(table.c[k], none) for k in keys)]
        query = select(*shown, *measures).where(*where)
        with self.store.report() as conn:
            rows = conn.execute(query if whole or not group else query.group_by(*group)).all()
        if not group:  # one row of sums, NULL where no row was summed
            rows = [row for row in rows if row[len(shown)] is not None]
        if not whole:  # sums of counts as int (PostgreSQL's SUM of integers is NUMERIC, read as text)
            width, cost = len(shown), len(shown) + schema.ROLLUP_MEASURES.index("cost_usd")
            return [(*row[:width], *map(int, row[width:cost]), row[cost], *map(int, row[cost + 1:])) for row in rows]
        return [tuple(row) for row in rows]

    def run_costs(self, run_ids: Iterable[str]) -> dict[str, list[tuple[date, Decimal]]]:
        """Each run's cost per day, all days (for leak rules on runs)."""
        ids = list(run_ids)
        t = schema.run_rollup
        out: dict[str, list[tuple[date, Decimal]]] = {}
        with self.store.report() as conn:
            for at in range(0, len(ids), 400):
                query = select(t.c.run_id, t.c.day, schema.money_sum(t.c.cost_usd)).where(
                    t.c.project_id == self.project, t.c.run_id.in_(ids[at:at + 400])).group_by(t.c.run_id, t.c.day)
                for run_id, day, cost in conn.execute(query):
                    out.setdefault(run_id, []).append((_date(day), cost or _ZERO))
        for costs in out.values():
            costs.sort()
        return out


def _among(conn: Connection | Engine, column: Any, values: Sequence[str]) -> Any:
    """`column IN values`: on PostgreSQL one array parameter (`= ANY`), not one per value (psycopg
    splitting a query of thousands of parameters took most of a read's time, and a query of
    more than a few kilobytes is parsed again each time)."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(String)))
    return column.in_(list(values))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
