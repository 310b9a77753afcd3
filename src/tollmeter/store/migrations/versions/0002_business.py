"""The business side: customers and their plans, runs, and the usage and run rollups that
margin reads, filled from the events already stored.

On a database the embedded store made with `create_all` (the tables may already be there), the
tables already there are left as they are; rollups are filled only for projects that have
none yet.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from tollmeter.store.schema import Money

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = ("customers", "customer_plans", "runs", "usage_rollup", "run_rollup")


def _existing() -> set[str]:
    if context.is_offline_mode():
        return set()
    return set(sa.inspect(op.get_bind()).get_table_names())


def _measures() -> list[sa.Column]:
    return [
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_read_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", Money(), nullable=False),
        sa.Column("unpriced", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
    ]


def upgrade() -> None:
    existing = _existing()
    if "customers" not in existing:
        op.create_table(
            "customers",
            sa.Column("project_id", sa.String(length=64), nullable=False),
            sa.Column("tenant_id", sa.String(length=255), nullable=False),
            sa.Column("name", sa.String(length=255), nullable=True),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("project_id", "tenant_id"),
        )
    if "customer_plans" not in existing:
        op.create_table(
            "customer_plans",
            sa.Column("project_id", sa.String(length=64), nullable=False),
            sa.Column("tenant_id", sa.String(length=255), nullable=False),
            sa.Column("effective_from", sa.Date(), nullable=False),
            sa.Column("plan", sa.JSON(), nullable=False),
            sa.Column("seats", sa.Integer(), nullable=True),
            sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("project_id", "tenant_id", "effective_from"),
        )
    if "runs" not in existing:
        op.create_table(
            "runs",
            sa.Column("project_id", sa.String(length=64), nullable=False),
            sa.Column("run_id", sa.String(length=255), nullable=False),
            sa.Column("tenant_id", sa.String(length=255), nullable=True),
            sa.Column("agent_id", sa.String(length=255), nullable=True),
            sa.Column("first_seen", sa.DateTime(timezone=True), nullable=True),
            sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True),
            sa.Column("outcome", sa.String(length=16), nullable=True),
            sa.Column("revenue_usd", Money(), nullable=True),
            sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("resolution_key", sa.String(length=255), nullable=True),
            sa.PrimaryKeyConstraint("project_id", "run_id"),
        )
        op.create_index("ix_runs_resolved", "runs", ["project_id", "resolved_at"])
    if "usage_rollup" not in existing:
        op.create_table(
            "usage_rollup",
            sa.Column("project_id", sa.String(length=64), nullable=False),
            sa.Column("tenant_id", sa.String(length=255), nullable=False),
            sa.Column("day", sa.Date(), nullable=False),
            sa.Column("agent_id", sa.String(length=255), nullable=False),
            sa.Column("model", sa.String(length=255), nullable=False),
            *_measures(),
            sa.PrimaryKeyConstraint("project_id", "tenant_id", "day", "agent_id", "model"),
        )
        op.create_index("ix_usage_rollup_day", "usage_rollup", ["project_id", "day"])
    if "run_rollup" not in existing:
        op.create_table(
            "run_rollup",
            sa.Column("project_id", sa.String(length=64), nullable=False),
            sa.Column("run_id", sa.String(length=255), nullable=False),
            sa.Column("tenant_id", sa.String(length=255), nullable=False),
            sa.Column("day", sa.Date(), nullable=False),
            sa.Column("agent_id", sa.String(length=255), nullable=False),
            sa.Column("model", sa.String(length=255), nullable=False),
            *_measures(),
            sa.PrimaryKeyConstraint("project_id", "run_id", "tenant_id", "day", "agent_id", "model"),
        )
        op.create_index("ix_run_rollup_day", "run_rollup", ["project_id", "day"])
    if not context.is_offline_mode():
        from tollmeter.store.store import fill_missing_rollups

        fill_missing_rollups(op.get_bind())


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
