"""Margin and leaks without a read of every run, and reports by customer and day without a read
of every agent and model: each run's cost to date (`run_costs`), the usage rollup of the events
that belong to runs (`run_usage_rollup`), both filled from the run rollup already stored, and
usage per tenant and day (`tenant_rollup`), filled from the usage rollup.

On a database the embedded store made with `create_all`, tables already there are left as they are.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from tollmeter.store.schema import Money

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _existing() -> set[str]:
    if context.is_offline_mode():
        return set()
    return set(sa.inspect(op.get_bind()).get_table_names())


def _measures() -> list[sa.Column]:
    return [sa.Column(name, Money() if name == "cost_usd" else sa.BigInteger(), nullable=False)
            for name in ("calls", "input_tokens", "output_tokens", "cache_read_tokens", "cost_usd", "unpriced",
                         "errors")]


def upgrade() -> None:
    existing = _existing()
    if "run_usage_rollup" not in existing:
        keys = ("tenant_id", "day", "agent_id", "model")
        op.create_table(
            "run_usage_rollup",
            sa.Column("project_id", sa.String(length=64), nullable=False),
            sa.Column("tenant_id", sa.String(length=255), nullable=False),
            sa.Column("day", sa.Date(), nullable=False),
            sa.Column("agent_id", sa.String(length=255), nullable=False),
            sa.Column("model", sa.String(length=255), nullable=False),
            *_measures(),
            sa.PrimaryKeyConstraint("project_id", *keys),
        )
        op.create_index("ix_run_usage_rollup_day", "run_usage_rollup", ["project_id", "day"])
        op.create_index("ix_run_usage_rollup_tenant", "run_usage_rollup", ["project_id", "tenant_id", "day"])
    if "tenant_rollup" not in existing:
        op.create_table(
            "tenant_rollup",
            sa.Column("project_id", sa.String(length=64), nullable=False),
            sa.Column("tenant_id", sa.String(length=255), nullable=False),
            sa.Column("day", sa.Date(), nullable=False),
            *_measures(),
            sa.PrimaryKeyConstraint("project_id", "tenant_id", "day"),
        )
        op.create_index("ix_tenant_rollup_day", "tenant_rollup", ["project_id", "day"])
    if "run_costs" not in existing:
        op.create_table(
            "run_costs",
            sa.Column("project_id", sa.String(length=64), nullable=False),
            sa.Column("run_id", sa.String(length=255), nullable=False),
            sa.Column("cost_usd", Money(), nullable=False),
            sa.PrimaryKeyConstraint("project_id", "run_id"),
        )
        op.create_index("ix_run_costs_cost", "run_costs", ["project_id", "cost_usd"])
    if not context.is_offline_mode():
        from tollmeter.store.store import fill_missing_rollups

        fill_missing_rollups(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_run_costs_cost", table_name="run_costs")
    op.drop_table("run_costs")
    op.drop_index("ix_tenant_rollup_day", table_name="tenant_rollup")
    op.drop_table("tenant_rollup")
    op.drop_index("ix_run_usage_rollup_tenant", table_name="run_usage_rollup")
    op.drop_index("ix_run_usage_rollup_day", table_name="run_usage_rollup")
    op.drop_table("run_usage_rollup")
