"""Resolved runs counted per tenant, UTC day of resolution, agent and outcome (`run_outcomes`):
what margin reads the revenue of runs from, instead of a GROUP BY of every run resolved in the
range.

A run is counted once, when it is resolved, under the tenant and agent it has then. A resolved
run whose tenant or agent was unknown and is learnt later (its first event arrives after its
resolution) moves its count in the transaction that learns it (`moves_learnt`). The table can
always be made again from the runs (`from_runs`), and `check_rollups` compares it with them.
This module says what the counts are; the store applies them with `accumulate`.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Iterable, Iterator, Sequence

from sqlalchemy import Date, and_, delete, func, insert, or_, select
from sqlalchemy.engine import Connection

from . import schema

KEYS = ("tenant_id", "day", "agent_id", "outcome")
MEASURES = ("runs", "given", "given_usd")
_ZERO = Decimal(0)


def day_of(moment: datetime) -> date:
    """The UTC day a run resolved at `moment` is counted on (naive: UTC, as stored on SQLite)."""
    return (moment if moment.tzinfo is None else moment.astimezone(timezone.utc)).date()


def counted(tenant_id: str | None, agent_id: str | None, resolved_at: datetime, outcome: str,
            revenue_usd: Decimal | None, sign: int = 1) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The key and the increments of one resolved run (`sign=-1`: taken out)."""
    key = (tenant_id or schema.NONE_KEY, day_of(resolved_at), agent_id or schema.NONE_KEY, outcome)
    given = revenue_usd is not None
    return key, (sign, sign if given else 0, (revenue_usd if given else _ZERO) * sign)


def add(into: dict[tuple[Any, ...], list[Any]], key: tuple[Any, ...], values: Sequence[Any]) -> None:
    current = into.get(key)
    if current is None:
        into[key] = list(values)
    else:
        for i, value in enumerate(values):
            current[i] += value


def moves_learnt(conn: Connection, project: str,
                 seen: Iterable[tuple[str, str | None, str | None]]) -> dict[tuple[Any, ...], list[Any]]:
    """The count moves of resolved runs whose tenant or agent a batch of events is about to
    fill in (`seen`: run id, tenant and agent of its events; the store sets the run's missing
    ones to those). Call before that update, in its transaction, and add the moves after it.

    On PostgreSQL every run of the batch is locked here, in run id order (the order the update
    takes them in), so a resolution committed meanwhile is seen as the update will see it, and
    two batches sharing runs take them in one order. Runs are locked before counts, in this
    transaction as in a resolution's: no cycle."""
    seen = list(seen)
    giving = {run_id: (tenant, agent) for run_id, tenant, agent in seen if tenant or agent}
    moves: dict[tuple[Any, ...], list[Any]] = {}
    locking = conn.dialect.name == "postgresql"
    if not giving and not locking:
        return moves
    r = schema.runs
    ids = sorted({run_id for run_id, _, _ in seen} if locking else giving)
    for at in range(0, len(ids), 500):
        chunk = ids[at:at + 500]
        query = select(r.c.run_id, r.c.tenant_id, r.c.agent_id, r.c.outcome, r.c.resolved_at, r.c.revenue_usd).where(
            r.c.project_id == project, r.c.run_id.in_(chunk))
        if locking:
            query = query.order_by(r.c.run_id.collate("C")).with_for_update()  # code point order, as `ids`
        else:  # SQLite: the store's transactions take the whole database; only the runs that may move
            query = query.where(or_(r.c.tenant_id.is_(None), r.c.agent_id.is_(None)), r.c.outcome.is_not(None))
        for run_id, tenant, agent, outcome, resolved_at, revenue in conn.execute(query):
            if (outcome is None or resolved_at is None or (tenant is not None and agent is not None)
                    or run_id not in giving):
                continue
            new_tenant, new_agent = tenant or giving[run_id][0], agent or giving[run_id][1]
            if (new_tenant, new_agent) == (tenant, agent):
                continue
            key, values = counted(tenant, agent, resolved_at, outcome, revenue, -1)
            add(moves, key, values)
            key, values = counted(new_tenant, new_agent, resolved_at, outcome, revenue)
            add(moves, key, values)
    return moves


def _day_expr(conn: Connection) -> Any:
    r = schema.runs
    if conn.dialect.name == "postgresql":
        return func.cast(func.timezone("UTC", r.c.resolved_at), Date)
    return func.substr(func.cast(r.c.resolved_at, schema.String), 1, 10)


def from_runs(conn: Connection, project: str) -> None:
    """Make `project`'s counts again from its runs."""
    t, r = schema.run_outcomes, schema.runs
    conn.execute(delete(t).where(t.c.project_id == project))
    tenant, agent = func.coalesce(r.c.tenant_id, schema.NONE_KEY), func.coalesce(r.c.agent_id, schema.NONE_KEY)
    day = _day_expr(conn)
    keys = [r.c.project_id, tenant, day, agent, r.c.outcome]
    conn.execute(insert(t).from_select(
        ["project_id", *KEYS, *MEASURES],
        select(*keys, func.count(), func.count(r.c.revenue_usd),
               func.coalesce(schema.money_sum(r.c.revenue_usd), _ZERO if conn.dialect.name == "postgresql" else "0"))
        .where(r.c.project_id == project, r.c.outcome.is_not(None), r.c.resolved_at.is_not(None))
        .group_by(*keys)))


def streams(conn: Connection, project: str, ordered: Any
            ) -> tuple[Iterator[tuple[tuple[Any, ...], tuple[Any, ...]]], Iterator[tuple[tuple[Any, ...], tuple[Any, ...]]]]:
    """The stored counts and those the runs say, each as (key, measures) in one key order (keys
    as text, `ordered` making text order the same on both databases): for `check_rollups`."""
    t, r = schema.run_outcomes, schema.runs
    streaming = conn.execution_options(stream_results=True, yield_per=5000)
    stored_day = (func.to_char(t.c.day, "YYYY-MM-DD") if conn.dialect.name == "postgresql"
                  else func.substr(func.cast(t.c.day, schema.String), 1, 10))
    run_day = (func.to_char(func.timezone("UTC", r.c.resolved_at), "YYYY-MM-DD") if conn.dialect.name == "postgresql"
               else _day_expr(conn))
    stored_keys = ordered([t.c.tenant_id, stored_day, t.c.agent_id, t.c.outcome])
    run_keys = ordered([func.coalesce(r.c.tenant_id, schema.NONE_KEY), run_day,
                        func.coalesce(r.c.agent_id, schema.NONE_KEY), r.c.outcome])

    def rows(result: Any, skip_zero: bool) -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...]]]:
        for row in result:
            values = (int(row[4] or 0), int(row[5] or 0), Decimal(str(row[6])) if row[6] is not None else _ZERO)
            if skip_zero and not any(values):  # a count moved away entirely is no row
                continue
            yield tuple(row[:4]), values

    stored = rows(streaming.execute(select(*stored_keys, t.c.runs, t.c.given, t.c.given_usd).where(
        t.c.project_id == project).order_by(*stored_keys)), True)
    expected = rows(streaming.execute(
        select(*run_keys, func.count(), func.count(r.c.revenue_usd), schema.money_sum(r.c.revenue_usd))
        .where(and_(r.c.project_id == project, r.c.outcome.is_not(None), r.c.resolved_at.is_not(None)))
        .group_by(*run_keys).order_by(*run_keys)), False)
    return stored, expected
