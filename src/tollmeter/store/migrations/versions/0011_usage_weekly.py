"""Usage per ISO week (`usage_weekly`), summed from `usage_daily`: a month's usage report reads
its whole weeks from it (store/usage.py).

On a database the embedded store made with `create_all`, a table already there is left as it is.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from tollmeter.store.schema import Money

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

KEYS = ("tenant_id", "agent_id", "model", "provider", "endpoint")


def upgrade() -> None:
    if context.is_offline_mode() or "usage_weekly" not in sa.inspect(op.get_bind()).get_table_names():
        op.create_table(
            "usage_weekly",
            sa.Column("project_id", sa.String(length=64), nullable=False),
            sa.Column("week", sa.Date(), nullable=False),
            *(sa.Column(key, sa.String(length=255 if key in ("tenant_id", "agent_id", "model") else 64),
                        nullable=False) for key in KEYS),
            sa.Column("calls", sa.BigInteger(), nullable=False),
            sa.Column("input_tokens", sa.BigInteger(), nullable=False),
            sa.Column("output_tokens", sa.BigInteger(), nullable=False),
            sa.Column("cache_read_tokens", sa.BigInteger(), nullable=False),
            sa.Column("cost_usd", Money(), nullable=False),
            sa.Column("unpriced", sa.BigInteger(), nullable=False),
            sa.Column("errors", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("project_id", "week", *KEYS),
        )
        op.create_index("ix_usage_weekly_tenant", "usage_weekly", ["project_id", "tenant_id", "week"])
    if not context.is_offline_mode():
        from tollmeter.store.store import fill_missing_rollups

        fill_missing_rollups(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_usage_weekly_tenant", table_name="usage_weekly")
    op.drop_table("usage_weekly")
