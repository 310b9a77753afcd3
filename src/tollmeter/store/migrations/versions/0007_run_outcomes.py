"""Resolved runs counted per tenant, day, agent and outcome (`run_outcomes`, store/outcomes.py):
what margin reads the revenue of runs from, filled from the runs already resolved; and an
index of the runs by when they were last seen (`ix_runs_seen`: the leak rule on runs reads the
runs active in the month).

On a database the embedded store made with `create_all`, a table already there is left as it is.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from tollmeter.store.schema import Money

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if context.is_offline_mode() or "run_outcomes" not in sa.inspect(op.get_bind()).get_table_names():
        op.create_table(
            "run_outcomes",
            sa.Column("project_id", sa.String(length=64), nullable=False),
            sa.Column("tenant_id", sa.String(length=255), nullable=False),
            sa.Column("day", sa.Date(), nullable=False),
            sa.Column("agent_id", sa.String(length=255), nullable=False),
            sa.Column("outcome", sa.String(length=16), nullable=False),
            sa.Column("runs", sa.BigInteger(), nullable=False),
            sa.Column("given", sa.BigInteger(), nullable=False),
            sa.Column("given_usd", Money(), nullable=False),
            sa.PrimaryKeyConstraint("project_id", "tenant_id", "day", "agent_id", "outcome"),
        )
        op.create_index("ix_run_outcomes_day", "run_outcomes", ["project_id", "day"])
    if context.is_offline_mode() or "ix_runs_seen" not in {
            i["name"] for i in sa.inspect(op.get_bind()).get_indexes("runs")}:
        op.create_index("ix_runs_seen", "runs", ["project_id", "last_seen"])
    if not context.is_offline_mode():
        from tollmeter.store.store import fill_missing_rollups

        fill_missing_rollups(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_runs_seen", table_name="runs")
    op.drop_index("ix_run_outcomes_day", table_name="run_outcomes")
    op.drop_table("run_outcomes")
