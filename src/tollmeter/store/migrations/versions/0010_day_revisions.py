"""The revisions of closed days (`day_revisions`): which UTC days were written to after they
ended, for the reports that keep closed days' figures between calls (the leak rules).

On a database the embedded store made with `create_all`, a table already there is left as it is.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if context.is_offline_mode() or "day_revisions" not in sa.inspect(op.get_bind()).get_table_names():
        op.create_table(
            "day_revisions",
            sa.Column("project_id", sa.String(length=64), nullable=False),
            sa.Column("day", sa.Date(), nullable=False),
            sa.Column("revision", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("project_id", "day"),
        )


def downgrade() -> None:
    op.drop_table("day_revisions")
