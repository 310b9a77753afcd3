"""Each run's cost to date on its `runs` row (`runs.cost_usd`) instead of a table of its own
(`run_costs`): the leak rule on runs reads the month's runs and their costs from one table,
where the join of the two read both whole (its cost grew with the history). Filled from the
run rollup.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from tollmeter.store.schema import Money

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = None if context.is_offline_mode() else op.get_bind()
    if bind is None or "cost_usd" not in {c["name"] for c in sa.inspect(bind).get_columns("runs")}:
        with op.batch_alter_table("runs") as batch:
            batch.add_column(sa.Column("cost_usd", Money(), nullable=False, server_default="0"))
    if bind is not None:
        from tollmeter.store.store import run_costs_from_rollup

        for (project,) in bind.execute(sa.text("SELECT DISTINCT project_id FROM runs")).all():
            run_costs_from_rollup(bind, project)
    if bind is None or "run_costs" in sa.inspect(bind).get_table_names():
        op.drop_index("ix_run_costs_cost", table_name="run_costs")
        op.drop_table("run_costs")


def downgrade() -> None:
    op.create_table(
        "run_costs",
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=255), nullable=False),
        sa.Column("cost_usd", Money(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "run_id"),
    )
    op.create_index("ix_run_costs_cost", "run_costs", ["project_id", "cost_usd"])
    op.execute("INSERT INTO run_costs (project_id, run_id, cost_usd) SELECT project_id, run_id, cost_usd FROM runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("cost_usd")
