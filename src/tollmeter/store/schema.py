"""The store's tables, shared by the embedded store (SQLite) and the ingest server (SQLite or
PostgreSQL).

Money is exact on both: `NUMERIC` on PostgreSQL; on SQLite, which has no decimal type, the
decimal text, summed by an exact `decimal_sum` aggregate registered on every connection.
Every row belongs to a project (an API key's scope on the server; "default" embedded).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    and_,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction
from sqlalchemy.types import TypeDecorator

from ..business.plans import UNPAID_OUTCOMES
from ..events import EVENT_FIELDS, USAGE_FIELDS, EventField, Kind

metadata = MetaData()

DEFAULT_PROJECT = "default"


#: PostgreSQL's type oid of NUMERIC, the type code psycopg gives a result column of it.
_PG_NUMERIC = 1700


class Money(TypeDecorator):
    """USD as an exact Decimal: NUMERIC(30, 15), or decimal text on SQLite."""

    impl = Numeric(30, 15)
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(30, 15, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        value = value if isinstance(value, Decimal) else Decimal(str(value))
        return format(value, "f") if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        if dialect.name == "sqlite":  # decimal text, read straight (reports read tens of thousands)
            return _sqlite_decimal
        if coltype == _PG_NUMERIC:  # psycopg's Decimal as it is: no Python call a value
            return None
        return super().result_processor(dialect, coltype)


def _sqlite_decimal(value: Any) -> Decimal | None:
    """SQLite's decimal text (or a number that SQL made) as an exact Decimal."""
    if value is None:
        return None
    return Decimal(value) if value.__class__ is str else Decimal(str(value))


class money_sum(GenericFunction):  # noqa: N801 - SQL function name
    """SUM of a Money column, exact on every dialect."""

    type = Money()
    inherit_cache = True


@compiles(money_sum)
def _money_sum_default(element: Any, compiler: Any, **kw: Any) -> str:
    return f"sum({compiler.process(element.clauses, **kw)})"


@compiles(money_sum, "sqlite")
def _money_sum_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    return f"decimal_sum({compiler.process(element.clauses, **kw)})"


class count_sum(GenericFunction):  # noqa: N801 - SQL function name
    """SUM of a count column (tokens, calls) that never overflows, whatever the rows add up to.

    PostgreSQL's SUM of a BIGINT is NUMERIC already. SQLite's sum() raises "integer overflow"
    past 2^63 - 1, so the high and the low 24 bits are added apart (neither sum can overflow:
    a count is below 2^63, so its high part is below 2^39, and a table would need 2^24 rows of
    counts that large) and put together: exact while the total fits 64 bits, past that SQLite
    gives it as a REAL, never an error. For columns only (the column is named twice)."""

    type = BigInteger()
    inherit_cache = True


@compiles(count_sum)
def _count_sum_default(element: Any, compiler: Any, **kw: Any) -> str:
    return f"sum({compiler.process(element.clauses, **kw)})"


@compiles(count_sum, "sqlite")
def _count_sum_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"(sum(({column}) >> 24) * 16777216 + sum(({column}) & 16777215))"


def _event_columns() -> list[Column[Any]]:
    """The events table's columns, made from the description of an event's fields (events.py)
    in its order: `project_id` first, `received_at` after `timestamp`, and before `usage` (every
    count as reported, JSON) copies of the usage counts that have a column, for queries. Fields
    without a column (`schema_version`, `lease_id`) are not stored."""
    columns: list[Column[Any]] = [Column("project_id", String(64), primary_key=True)]
    for f in EVENT_FIELDS:
        if not f.column:
            continue
        if f.kind == Kind.USAGE:
            columns += [Column(u.name, _EVENT_TYPES[u.kind]) for u in USAGE_FIELDS if u.column]
        columns.append(_event_column(f))
        if f.kind == Kind.TIMESTAMP:
            columns.append(Column("received_at", DateTime(timezone=True), nullable=False))
    return columns


def _event_column(f: EventField) -> Column[Any]:
    if f.kind == Kind.ID:
        return Column(f.name, String(f.max_length), primary_key=True)
    if f.kind == Kind.TEXT:
        return Column(f.name, String(f.max_length))
    if f.kind == Kind.TIMESTAMP:
        return Column(f.name, DateTime(timezone=True), nullable=False)
    if f.kind == Kind.FLAG:
        return Column(f.name, Boolean, nullable=False, default=False)
    return Column(f.name, _EVENT_TYPES[f.kind])  # a new kind without a column type: KeyError at import


#: The column type of the other kinds (nullable columns).
_EVENT_TYPES: dict[Kind, Any] = {
    Kind.COUNT: Integer,
    Kind.TOKENS: BigInteger,
    Kind.STATUS: Integer,
    Kind.DURATION: Float,
    Kind.MONEY: Money,
    Kind.TAGS: JSON,
    Kind.UNITS: JSON,
    Kind.USAGE: JSON,
}

events = Table(
    "events",
    metadata,
    *_event_columns(),
    Index("ix_events_tenant_time", "project_id", "tenant_id", "timestamp"),
    Index("ix_events_time", "project_id", "timestamp"),
)

limits = Table(
    "limits",
    metadata,
    Column("project_id", String(64), primary_key=True),
    #: "*" holds the default limits of tenants without their own.
    Column("tenant_id", String(255), primary_key=True),
    Column("frequency", String(16), primary_key=True),  # per_hour, per_day, per_month, total
    Column("limit_usd", Money, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

rate_limits = Table(
    "rate_limits",
    metadata,
    Column("project_id", String(64), primary_key=True),
    Column("tenant_id", String(255), primary_key=True),
    Column("requests_per_minute", Integer),
    Column("tokens_per_minute", BigInteger),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: Settled spend per tenant and period ("per_day:2026-11-26", "total"), kept as events arrive.
spend = Table(
    "spend",
    metadata,
    Column("project_id", String(64), primary_key=True),
    Column("tenant_id", String(255), primary_key=True),
    Column("period", String(40), primary_key=True),
    Column("spent_usd", Money, nullable=False),
)

#: Budget granted to one agent process and not yet spent (see limits/leases).
leases = Table(
    "leases",
    metadata,
    Column("lease_id", String(64), primary_key=True),
    Column("project_id", String(64), nullable=False),
    Column("tenant_id", String(255), nullable=False),
    Column("holder", String(255), nullable=False),
    Column("remaining_usd", Money, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_leases_tenant", "project_id", "tenant_id", "expires_at"),
)

#: Threshold alerts already sent, so that each fires once per period whatever the process.
alerts = Table(
    "alerts",
    metadata,
    Column("project_id", String(64), primary_key=True),
    Column("tenant_id", String(255), primary_key=True),
    Column("period", String(40), primary_key=True),
    Column("threshold", String(16), primary_key=True),
    Column("sent_at", DateTime(timezone=True), nullable=False),
)

#: The ingest server's API keys (stored hashed).
api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("project_id", String(64), nullable=False),
    Column("key_hash", String(128), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("note", Text),
)


# -- the business side: customers, plans, runs, and the rollups margin reads ----------------------

#: A customer is a tenant with a name; its plans (with seats) live in customer_plans.
customers = Table(
    "customers",
    metadata,
    Column("project_id", String(64), primary_key=True),
    Column("tenant_id", String(255), primary_key=True),
    Column("name", String(255)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: A customer's plan (business/plans.py, as JSON) and seats from a UTC day on: the row with the
#: latest `effective_from` on or before a day is the one in force that day.
customer_plans = Table(
    "customer_plans",
    metadata,
    Column("project_id", String(64), primary_key=True),
    Column("tenant_id", String(255), primary_key=True),
    Column("effective_from", Date, primary_key=True),
    Column("plan", JSON, nullable=False),
    Column("seats", Integer),
    Column("set_at", DateTime(timezone=True), nullable=False),
)

#: A run (one unit of work: a ticket, a report), open until resolved with an outcome. Its tenant
#: and agent are those of its first event (or given when it is resolved first).
runs = Table(
    "runs",
    metadata,
    Column("project_id", String(64), primary_key=True),
    Column("run_id", String(255), primary_key=True),
    Column("tenant_id", String(255)),
    Column("agent_id", String(255)),
    Column("first_seen", DateTime(timezone=True)),
    Column("last_seen", DateTime(timezone=True)),
    Column("outcome", String(16)),
    #: Revenue given when it was resolved: overrides what its plan says.
    Column("revenue_usd", Money),
    Column("resolved_at", DateTime(timezone=True)),
    Column("resolution_key", String(255)),
    #: Its cost to date (every event of it, whatever its day), kept with the rollups: the leak
    #: rule on runs reads the month's runs and their costs from this table alone.
    Column("cost_usd", Money, nullable=False, server_default="0"),
    #: The runs resolved in a range, with their last seen time: those resolved on other days than
    #: they were active are told apart in the index (the leak rule on runs, `Ledger.costly_runs`).
    Index("ix_runs_resolved_seen", "project_id", "resolved_at", "last_seen"),
    #: The runs active in a range, with ix_runs_resolved_seen (the leak rule on runs, on SQLite).
    Index("ix_runs_seen", "project_id", "last_seen"),
)
#: Indexes a later version replaced: dropped where the store finds them (table, index).
RETIRED_INDEXES = (("runs", "ix_runs_resolved"),)
#: PostgreSQL: the runs that may cost more than they earn, for the leak rule on runs (it reads
#: their rows, not every run of a month): past a cost (found in the index with their last seen
#: time, so that the rows read are those of the range), past their given revenue, and
#: escalated or failed with a cost (such a run earns nothing under a per_resolution plan). A
#: run's row is updated once per batch of its events, its last seen time with its cost: an
#: update that changes an indexed column already, and adds an entry to each index.
COSTLY_RUN_INDEXES = (
    Index("ix_runs_cost", runs.c.project_id, runs.c.cost_usd, runs.c.last_seen),
    Index("ix_runs_over_given", runs.c.project_id, runs.c.last_seen,
          postgresql_where=runs.c.cost_usd > runs.c.revenue_usd),
    Index("ix_runs_unpaid", runs.c.project_id, runs.c.last_seen,
          postgresql_where=and_(runs.c.outcome.in_(UNPAID_OUTCOMES), runs.c.cost_usd > 0)))
for _index in COSTLY_RUN_INDEXES:
    _index.ddl_if(dialect="postgresql")


def _measures() -> list[Column[Any]]:
    return [
        Column("calls", BigInteger, nullable=False),
        Column("input_tokens", BigInteger, nullable=False),
        Column("output_tokens", BigInteger, nullable=False),
        Column("cache_read_tokens", BigInteger, nullable=False),
        Column("cost_usd", Money, nullable=False),
        Column("unpriced", BigInteger, nullable=False),
        Column("errors", BigInteger, nullable=False),
    ]


#: What the rollups add up per key, in this order.
ROLLUP_MEASURES = ("calls", "input_tokens", "output_tokens", "cache_read_tokens", "cost_usd", "unpriced", "errors")
#: A rollup key column of an event that had no value ("" : no tenant, agent or model).
NONE_KEY = ""

def _rollup(name: str, *keys: Column[Any]) -> Table:
    return Table(
        name,
        metadata,
        Column("project_id", String(64), primary_key=True),
        *keys,
        Column("tenant_id", String(255), primary_key=True),
        Column("day", Date, primary_key=True),
        Column("agent_id", String(255), primary_key=True),
        Column("model", String(255), primary_key=True),
        *_measures(),
        Index(f"ix_{name}_day", "project_id", "day"),
        Index(f"ix_{name}_tenant", "project_id", "tenant_id", "day"),
    )


#: Usage per tenant, UTC day, agent and model, added to in the transaction that stores the
#: events (and when they are repriced): what margin and usage queries read, whatever the history.
usage_rollup = _rollup("usage_rollup")

#: The same for the events of runs, per run.
run_rollup = _rollup("run_rollup", Column("run_id", String(255), primary_key=True))

#: Usage per tenant and UTC day alone: what reports by customer and period read (a day's rows
#: of `usage_rollup`, one per tenant, agent and model, can be many times as many).
tenant_rollup = Table(
    "tenant_rollup",
    metadata,
    Column("project_id", String(64), primary_key=True),
    Column("tenant_id", String(255), primary_key=True),
    Column("day", Date, primary_key=True),
    *_measures(),
    Index("ix_tenant_rollup_day", "project_id", "day"),
)

#: The usage rollup of the events that belong to a run (no run key): what the runs of an agent
#: cost, for the leak rule on agents, without a read of every run.
run_usage_rollup = _rollup("run_usage_rollup")

#: Runs resolved per tenant, UTC day of their resolution, agent and outcome ("" : none), with
#: how many of them were given a revenue when resolved and its sum: what margin counts runs'
#: revenue from, without a GROUP BY of a month's runs. Kept where a run is resolved and where
#: a resolved run's tenant or agent is learnt later (store/outcomes.py).
run_outcomes = Table(
    "run_outcomes",
    metadata,
    Column("project_id", String(64), primary_key=True),
    Column("tenant_id", String(255), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("agent_id", String(255), primary_key=True),
    Column("outcome", String(16), primary_key=True),
    Column("runs", BigInteger, nullable=False),
    Column("given", BigInteger, nullable=False),
    Column("given_usd", Money, nullable=False),
    Index("ix_run_outcomes_day", "project_id", "day"),
)

#: The keys of the usage rollups GET /v1/usage reads (every grouping it offers but run_id).
USAGE_KEYS = ("tenant_id", "agent_id", "model", "provider", "endpoint")


def _usage_by(name: str, period: Column[Any]) -> Table:
    return Table(
        name,
        metadata,
        Column("project_id", String(64), primary_key=True),
        period,
        *(Column(key, String(255 if key in ("tenant_id", "agent_id", "model") else 64), primary_key=True)
          for key in USAGE_KEYS),
        *_measures(),
        Index(f"ix_{name}_tenant", "project_id", "tenant_id", period.name),
    )


#: Usage per UTC hour and per UTC day of every key of `USAGE_KEYS` ("" for none), added to in
#: the transaction that stores the events: GET /v1/usage reads whole days from the first, the
#: hours at the ends of its range from the second and only the minutes before the first whole
#: hour and after the last from the raw events, so its cost does not grow with the history.
usage_hourly = _usage_by("usage_hourly", Column("hour", DateTime(timezone=True), primary_key=True))
usage_daily = _usage_by("usage_daily", Column("day", Date, primary_key=True))
#: The same per ISO week (`week`: its Monday, UTC): a month's report by tenant and model reads
#: four or five rows per key from here and at most a few days' from `usage_daily`, not thirty
#: (`store/usage.py`). Kept with the others in the transaction that stores the events, and
#: equal to `usage_daily` summed by week (`check_rollups` compares the two).
usage_weekly = _usage_by("usage_weekly", Column("week", Date, primary_key=True))

#: Raw events before `removed_before` (a UTC midnight) were removed by retention: the rollups
#: keep their sums, and a consistency check compares rollups with raw events from there on.
retention_marks = Table(
    "retention_marks",
    metadata,
    Column("project_id", String(64), primary_key=True),
    Column("removed_before", DateTime(timezone=True), nullable=False),
)


#: How many times each UTC day was written to after it ended (by the writer's clock): late
#: events, repricing, resolutions dated in the past, counts moved when a run's tenant is learnt
#: (`store/revisions.py`); `revisions.EVERY_DAY` for every day at once (rollups rebuilt). The
#: reports that keep closed days' figures between calls (`business/closed_days.py`) read it to
#: know which of them still hold. A day written only while it is current has no row.
day_revisions = Table(
    "day_revisions",
    metadata,
    Column("project_id", String(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("revision", BigInteger, nullable=False),
)

# -- notifications (server side: notifications/) -----------------------------------------------

#: A webhook endpoint of a project: where notifications go, signed with its secret.
notification_endpoints = Table(
    "notification_endpoints",
    metadata,
    Column("project_id", String(64), primary_key=True),
    Column("endpoint_id", String(32), primary_key=True),
    Column("url", String(2048), nullable=False),
    Column("secret", String(255), nullable=False),
    #: "json" (the signed event) or "slack" (`{"text": ...}`, signed as well).
    Column("format", String(16), nullable=False),
    #: The rules it hears (JSON list of rule names).
    Column("rules", JSON, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("description", String(255)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: One row per (rule, tenant, subject, period) that fired: inserted by the one replica that
#: wins the primary key, moved to "resolved" by the one whose UPDATE finds it still firing.
notifications = Table(
    "notifications",
    metadata,
    Column("project_id", String(64), primary_key=True),
    Column("rule", String(32), primary_key=True),
    Column("tenant_id", String(255), primary_key=True),
    #: What crossed: "per_day:80" (a limit's frequency and threshold percent), a leak's kind.
    Column("subject", String(64), primary_key=True),
    Column("period", String(40), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("fired_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True)),
    Column("detail", JSON),
    Index("ix_notifications_state", "project_id", "state"),
)

#: The outbox: one delivery per (notification message, endpoint), retried with backoff until
#: delivered or given up; a replica sends a row only while its claim (`claimed_until`) holds.
notification_deliveries = Table(
    "notification_deliveries",
    metadata,
    Column("delivery_id", String(32), primary_key=True),
    Column("project_id", String(64), nullable=False),
    Column("endpoint_id", String(32), nullable=False),
    #: The message's id (the same for every endpoint it goes to; receivers deduplicate on it).
    Column("message_id", String(64), nullable=False),
    Column("event", String(32), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # pending, delivered, failed (gave up)
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("claimed_until", DateTime(timezone=True)),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True)),
    Index("ix_notification_deliveries_due", "status", "next_attempt_at"),
    Index("ix_notification_deliveries_project", "project_id", "created_at"),
)

#: Every attempt of a delivery: when, the answer's status code or the error, the next retry.
notification_attempts = Table(
    "notification_attempts",
    metadata,
    Column("delivery_id", String(32), primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("project_id", String(64), nullable=False),
    Column("attempted_at", DateTime(timezone=True), nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("next_attempt_at", DateTime(timezone=True)),
)

#: Budget leases the server refused, counted per tenant and UTC minute (the refusal-burst rule).
lease_refusals = Table(
    "lease_refusals",
    metadata,
    Column("project_id", String(64), primary_key=True),
    Column("tenant_id", String(255), primary_key=True),
    Column("minute", DateTime(timezone=True), primary_key=True),
    Column("refusals", Integer, nullable=False),
)
