"""PostgreSQL: the runs that may cost more than they earn, found by index
(`schema.COSTLY_RUN_INDEXES`): the leak rule on runs read every run active in the month (at a
month's end half a million rows, 70 ms); now the rows of those past the least a run earns.
SQLite keeps its decimal text, which does not order as numbers: nothing changes there.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from tollmeter.store import schema

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    bind = None if context.is_offline_mode() else op.get_bind()
    present = set() if bind is None else {i["name"] for i in sa.inspect(bind).get_indexes("runs")}
    for index in schema.COSTLY_RUN_INDEXES:
        if index.name not in present:
            op.create_index(index.name, "runs", [c.name for c in index.columns],
                            postgresql_where=index.dialect_options["postgresql"]["where"])


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for index in schema.COSTLY_RUN_INDEXES:
            op.drop_index(index.name, table_name="runs")
