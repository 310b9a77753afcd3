"""Notifications: webhook endpoints, the notifications that fired (one row per rule, tenant,
subject and period: the claim that makes replicas send each once), the delivery outbox with its
attempts, and the lease refusals counted per minute.

On a database the embedded store made with `create_all`, tables already there are left as they are.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("notification_endpoints", "notifications", "notification_deliveries", "notification_attempts",
          "lease_refusals")


def _existing() -> set[str]:
    if context.is_offline_mode():
        return set()
    return set(sa.inspect(op.get_bind()).get_table_names())


def upgrade() -> None:
    existing = _existing()
    if "notification_endpoints" not in existing:
        op.create_table(
            "notification_endpoints",
            sa.Column("project_id", sa.String(length=64), nullable=False),
            sa.Column("endpoint_id", sa.String(length=32), nullable=False),
            sa.Column("url", sa.String(length=2048), nullable=False),
            sa.Column("secret", sa.String(length=255), nullable=False),
            sa.Column("format", sa.String(length=16), nullable=False),
            sa.Column("rules", sa.JSON(), nullable=False),
            sa.Column("enabled", sa.Boolean(), nullable=False),
            sa.Column("description", sa.String(length=255), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("project_id", "endpoint_id"),
        )
    if "notifications" not in existing:
        op.create_table(
            "notifications",
            sa.Column("project_id", sa.String(length=64), nullable=False),
            sa.Column("rule", sa.String(length=32), nullable=False),
            sa.Column("tenant_id", sa.String(length=255), nullable=False),
            sa.Column("subject", sa.String(length=64), nullable=False),
            sa.Column("period", sa.String(length=40), nullable=False),
            sa.Column("state", sa.String(length=16), nullable=False),
            sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("detail", sa.JSON(), nullable=True),
            sa.PrimaryKeyConstraint("project_id", "rule", "tenant_id", "subject", "period"),
        )
        op.create_index("ix_notifications_state", "notifications", ["project_id", "state"])
    if "notification_deliveries" not in existing:
        op.create_table(
            "notification_deliveries",
            sa.Column("delivery_id", sa.String(length=32), nullable=False),
            sa.Column("project_id", sa.String(length=64), nullable=False),
            sa.Column("endpoint_id", sa.String(length=32), nullable=False),
            sa.Column("message_id", sa.String(length=64), nullable=False),
            sa.Column("event", sa.String(length=32), nullable=False),
            sa.Column("payload", sa.JSON(), nullable=False),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("attempts", sa.Integer(), nullable=False),
            sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
            sa.Column("last_status_code", sa.Integer(), nullable=True),
            sa.Column("last_error", sa.Text(), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
            sa.PrimaryKeyConstraint("delivery_id"),
        )
        op.create_index("ix_notification_deliveries_due", "notification_deliveries", ["status", "next_attempt_at"])
        op.create_index("ix_notification_deliveries_project", "notification_deliveries",
                        ["project_id", "created_at"])
    if "notification_attempts" not in existing:
        op.create_table(
            "notification_attempts",
            sa.Column("delivery_id", sa.String(length=32), nullable=False),
            sa.Column("attempt", sa.Integer(), nullable=False),
            sa.Column("project_id", sa.String(length=64), nullable=False),
            sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("status_code", sa.Integer(), nullable=True),
            sa.Column("error", sa.Text(), nullable=True),
            sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
            sa.PrimaryKeyConstraint("delivery_id", "attempt"),
        )
    if "lease_refusals" not in existing:
        op.create_table(
            "lease_refusals",
            sa.Column("project_id", sa.String(length=64), nullable=False),
            sa.Column("tenant_id", sa.String(length=255), nullable=False),
            sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
            sa.Column("refusals", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("project_id", "tenant_id", "minute"),
        )


def downgrade() -> None:
    for table in reversed(TABLES):
        if table == "notifications":
            op.drop_index("ix_notifications_state", table_name=table)
        op.drop_table(table)
