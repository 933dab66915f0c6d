"""Subscriptions (deployments to monitor, served here or by another engine) and the request log of the
performance monitor.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("subscription_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("engine", sa.String(20), nullable=False),
        sa.Column("scoring_url", sa.String(500)),
        sa.Column("deployment_id", sa.String(64), unique=True),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
    )
    op.create_table(
        "request_log",
        sa.Column("request_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("deployment_id", sa.String(64), nullable=False),
        sa.Column("endpoint", sa.String(20), nullable=False),
        sa.Column("received_at", _TIME, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("records", sa.Integer, nullable=False),
        sa.Column("rejected_rows", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(100)),
    )
    op.create_index("ix_request_log_deployment_time", "request_log", ["deployment_id", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_request_log_deployment_time", table_name="request_log")
    op.drop_table("request_log")
    op.drop_table("subscriptions")
