"""The initial schema: events, limits, rate_limits, spend, leases, alerts, api_keys.

Creates exactly `tollmeter.store.schema.metadata` as it stood at this revision. On a database
the embedded store made with `create_all` (the same tables, no alembic_version), the tables
already there are left as they are and only the missing ones are created.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from tollmeter.store.schema import Money

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = ("alerts", "api_keys", "events", "leases", "limits", "rate_limits", "spend")


def _existing() -> set[str]:
    if context.is_offline_mode():
        return set()
    return set(sa.inspect(op.get_bind()).get_table_names())


def upgrade() -> None:
    existing = _existing()
    if "alerts" not in existing:
        op.create_table(
            "alerts",
            sa.Column("project_id", sa.String(length=64), nullable=False),
            sa.Column("tenant_id", sa.String(length=255), nullable=False),
            sa.Column("period", sa.String(length=40), nullable=False),
            sa.Column("threshold", sa.String(length=16), nullable=False),
            sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("project_id", "tenant_id", "period", "threshold"),
        )
    if "api_keys" not in existing:
        op.create_table(
            "api_keys",
            sa.Column("key_id", sa.String(length=32), nullable=False),
            sa.Column("project_id", sa.String(length=64), nullable=False),
            sa.Column("key_hash", sa.String(length=128), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("note", sa.Text(), nullable=True),
            sa.PrimaryKeyConstraint("key_id"),
            sa.UniqueConstraint("key_hash"),
        )
    if "events" not in existing:
        op.create_table(
            "events",
            sa.Column("project_id", sa.String(length=64), nullable=False),
            sa.Column("event_id", sa.String(length=64), nullable=False),
            sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
            sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("tenant_id", sa.String(length=255), nullable=True),
            sa.Column("run_id", sa.String(length=255), nullable=True),
            sa.Column("agent_id", sa.String(length=255), nullable=True),
            sa.Column("tags", sa.JSON(), nullable=True),
            sa.Column("provider", sa.String(length=64), nullable=True),
            sa.Column("model", sa.String(length=255), nullable=True),
            sa.Column("request_model", sa.String(length=255), nullable=True),
            sa.Column("endpoint", sa.String(length=64), nullable=True),
            sa.Column("stream", sa.Boolean(), nullable=False),
            sa.Column("input_tokens", sa.BigInteger(), nullable=True),
            sa.Column("output_tokens", sa.BigInteger(), nullable=True),
            sa.Column("cache_read_tokens", sa.BigInteger(), nullable=True),
            sa.Column("cache_write_tokens", sa.BigInteger(), nullable=True),
            sa.Column("reasoning_tokens", sa.BigInteger(), nullable=True),
            sa.Column("usage", sa.JSON(), nullable=True),
            sa.Column("tool_calls", sa.Integer(), nullable=True),
            sa.Column("web_search_requests", sa.Integer(), nullable=True),
            sa.Column("service_tier", sa.String(length=32), nullable=True),
            sa.Column("finish_reason", sa.String(length=64), nullable=True),
            sa.Column("duration_ms", sa.Float(), nullable=True),
            sa.Column("time_to_first_token_ms", sa.Float(), nullable=True),
            sa.Column("request_id", sa.String(length=255), nullable=True),
            sa.Column("error", sa.String(length=255), nullable=True),
            sa.Column("status_code", sa.Integer(), nullable=True),
            sa.Column("partial", sa.Boolean(), nullable=False),
            sa.Column("cost_usd", Money(), nullable=True),
            sa.Column("priced", sa.Boolean(), nullable=False),
            sa.Column("price_source", sa.String(length=255), nullable=True),
            sa.Column("price_model", sa.String(length=255), nullable=True),
            sa.Column("provider_cost_usd", Money(), nullable=True),
            sa.Column("computed_cost_usd", Money(), nullable=True),
            sa.Column("units", sa.JSON(), nullable=True),
            sa.PrimaryKeyConstraint("project_id", "event_id"),
        )
        op.create_index("ix_events_tenant_time", "events", ["project_id", "tenant_id", "timestamp"], unique=False)
        op.create_index("ix_events_time", "events", ["project_id", "timestamp"], unique=False)
    if "leases" not in existing:
        op.create_table(
            "leases",
            sa.Column("lease_id", sa.String(length=64), nullable=False),
            sa.Column("project_id", sa.String(length=64), nullable=False),
            sa.Column("tenant_id", sa.String(length=255), nullable=False),
            sa.Column("holder", sa.String(length=255), nullable=False),
            sa.Column("remaining_usd", Money(), nullable=False),
            sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("lease_id"),
        )
        op.create_index("ix_leases_tenant", "leases", ["project_id", "tenant_id", "expires_at"], unique=False)
    if "limits" not in existing:
        op.create_table(
            "limits",
            sa.Column("project_id", sa.String(length=64), nullable=False),
            sa.Column("tenant_id", sa.String(length=255), nullable=False),
            sa.Column("frequency", sa.String(length=16), nullable=False),
            sa.Column("limit_usd", Money(), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("project_id", "tenant_id", "frequency"),
        )
    if "rate_limits" not in existing:
        op.create_table(
            "rate_limits",
            sa.Column("project_id", sa.String(length=64), nullable=False),
            sa.Column("tenant_id", sa.String(length=255), nullable=False),
            sa.Column("requests_per_minute", sa.Integer(), nullable=True),
            sa.Column("tokens_per_minute", sa.BigInteger(), nullable=True),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("project_id", "tenant_id"),
        )
    if "spend" not in existing:
        op.create_table(
            "spend",
            sa.Column("project_id", sa.String(length=64), nullable=False),
            sa.Column("tenant_id", sa.String(length=255), nullable=False),
            sa.Column("period", sa.String(length=40), nullable=False),
            sa.Column("spent_usd", Money(), nullable=False),
            sa.PrimaryKeyConstraint("project_id", "tenant_id", "period"),
        )


def downgrade() -> None:
    op.drop_table("spend")
    op.drop_table("rate_limits")
    op.drop_table("limits")
    op.drop_index("ix_leases_tenant", table_name="leases")
    op.drop_table("leases")
    op.drop_index("ix_events_time", table_name="events")
    op.drop_index("ix_events_tenant_time", table_name="events")
    op.drop_table("events")
    op.drop_table("api_keys")
    op.drop_table("alerts")
