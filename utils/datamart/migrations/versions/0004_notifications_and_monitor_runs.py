"""Alerts that reach people and scheduled monitor runs: notifications per receiver, the windows each monitor ran.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("notification_id", sa.String(64), primary_key=True),
        sa.Column("dedupe_key", sa.String(64), nullable=False, unique=True),
        sa.Column("deployment_id", sa.String(64), nullable=False),
        sa.Column("evaluation_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("monitor", sa.String(30), nullable=False),
        sa.Column("metric", sa.String(60), nullable=False),
        sa.Column("subject", sa.String(100)),
        sa.Column("receiver", sa.String(300), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
    )
    op.create_index("ix_notifications_deployment", "notifications", ["deployment_id", "created_at"])
    op.create_index("ix_notifications_status", "notifications", ["status"])
    op.create_table(
        "monitor_runs",
        sa.Column("deployment_id", sa.String(64), primary_key=True),
        sa.Column("monitor", sa.String(30), primary_key=True),
        sa.Column("window_start", _TIME, primary_key=True),
        sa.Column("window_end", _TIME, nullable=False),
        sa.Column("evaluation_id", sa.String(64), nullable=False),
        sa.Column("evaluated_at", _TIME, nullable=False),
    )


def downgrade() -> None:
    for table in ("monitor_runs", "notifications"):
        op.drop_table(table)
