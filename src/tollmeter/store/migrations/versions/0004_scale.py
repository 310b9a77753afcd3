"""The server at scale: usage rollups per UTC hour and per UTC day of every grouping GET
/v1/usage offers but run_id (`usage_hourly`, `usage_daily`), filled from the events already
stored, the retention mark (the midnight before which raw events were removed), and an index
of the day rollups by tenant.

On a database the embedded store made with `create_all`, tables already there are left as they are.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from tollmeter.store.schema import Money

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = ("usage_hourly", "usage_daily", "retention_marks")
KEYS = ("tenant_id", "agent_id", "model", "provider", "endpoint")


def _existing() -> set[str]:
    if context.is_offline_mode():
        return set()
    return set(sa.inspect(op.get_bind()).get_table_names())


def _indexes(table: str) -> set[str]:
    if context.is_offline_mode():
        return set()
    return {index["name"] for index in sa.inspect(op.get_bind()).get_indexes(table)}


def _usage_table(name: str, period: sa.Column) -> None:
    op.create_table(
        name,
        sa.Column("project_id", sa.String(length=64), nullable=False),
        period,
        *(sa.Column(key, sa.String(length=255 if key in ("tenant_id", "agent_id", "model") else 64), nullable=False)
          for key in KEYS),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_read_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", Money(), nullable=False),
        sa.Column("unpriced", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", period.name, *KEYS),
    )
    op.create_index(f"ix_{name}_tenant", name, ["project_id", "tenant_id", period.name])


def upgrade() -> None:
    existing = _existing()
    if "usage_hourly" not in existing:
        _usage_table("usage_hourly", sa.Column("hour", sa.DateTime(timezone=True), nullable=False))
    if "usage_daily" not in existing:
        _usage_table("usage_daily", sa.Column("day", sa.Date(), nullable=False))
    if "retention_marks" not in existing:
        op.create_table(
            "retention_marks",
            sa.Column("project_id", sa.String(length=64), nullable=False),
            sa.Column("removed_before", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("project_id"),
        )
    for table in ("usage_rollup", "run_rollup"):  # one tenant's days without a scan of every tenant's
        if f"ix_{table}_tenant" not in _indexes(table):
            op.create_index(f"ix_{table}_tenant", table, ["project_id", "tenant_id", "day"])
    if not context.is_offline_mode():
        from tollmeter.store.store import fill_missing_rollups

        fill_missing_rollups(op.get_bind())


def downgrade() -> None:
    for table in ("usage_rollup", "run_rollup"):
        op.drop_index(f"ix_{table}_tenant", table_name=table)
    for table in reversed(TABLES):
        if table != "retention_marks":
            op.drop_index(f"ix_{table}_tenant", table_name=table)
        op.drop_table(table)
