"""The first tables: deployments, payload and feedback records, batch jobs and their chunks, measurements.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("deployment_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("space", sa.String(20), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.UniqueConstraint("name", "space", name="uq_deployment_name_space"),
    )
    op.create_table(
        "payload_records",
        sa.Column("record_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("transaction_id", sa.String(64), nullable=False, unique=True),
        sa.Column("deployment_id", sa.String(64), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("scored_at", _TIME, nullable=False),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("prediction", sa.String(50), nullable=False),
        sa.Column("probability_no_risk", sa.Float, nullable=False),
        sa.Column("probability_risk", sa.Float, nullable=False),
    )
    op.create_index("ix_payload_deployment_time", "payload_records", ["deployment_id", "scored_at"])
    op.create_table(
        "feedback_records",
        sa.Column("record_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("feedback_id", sa.String(64), nullable=False, unique=True),
        sa.Column("deployment_id", sa.String(64), nullable=False),
        sa.Column("recorded_at", _TIME, nullable=False),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("label", sa.String(50), nullable=False),
    )
    op.create_index("ix_feedback_deployment_time", "feedback_records", ["deployment_id", "recorded_at"])
    _create_batch_tables()
    _create_measurements()


def _counts() -> list[sa.Column]:
    return [sa.Column(name, sa.BigInteger, nullable=False) for name in ("rows_read", "rows_scored", "rows_rejected")]


def _create_batch_tables() -> None:
    op.create_table(
        "batch_jobs",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("deployment_id", sa.String(64)),
        sa.Column("input_path", sa.Text, nullable=False),
        sa.Column("output_path", sa.Text, nullable=False),
        sa.Column("rejects_path", sa.Text, nullable=False),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("rows_total", sa.BigInteger),
        *_counts(),
        sa.Column("chunks_done", sa.Integer, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("started_at", _TIME),
        sa.Column("finished_at", _TIME),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_batch_jobs_created", "batch_jobs", ["created_at"])
    op.create_table(
        "batch_job_chunks",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("chunk_index", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("first_row", sa.BigInteger, nullable=False),
        *_counts(),
        sa.Column("output_bytes", sa.BigInteger, nullable=False),
        sa.Column("rejects_bytes", sa.BigInteger, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("committed_at", _TIME, nullable=False),
    )


def _create_measurements() -> None:
    op.create_table(
        "measurements",
        sa.Column("measurement_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("evaluation_id", sa.String(64), nullable=False),
        sa.Column("deployment_id", sa.String(64), nullable=False),
        sa.Column("monitor", sa.String(30), nullable=False),
        sa.Column("metric", sa.String(60), nullable=False),
        sa.Column("subject", sa.String(100)),
        sa.Column("value", sa.Float),
        sa.Column("threshold", sa.Float),
        sa.Column("breached", sa.Boolean),
        sa.Column("records", sa.Integer, nullable=False),
        sa.Column("window_start", _TIME),
        sa.Column("window_end", _TIME),
        sa.Column("evaluated_at", _TIME, nullable=False),
    )
    op.create_index("ix_measurements_deployment_window", "measurements", ["deployment_id", "window_start"])


def downgrade() -> None:
    for table in ("measurements", "batch_job_chunks", "batch_jobs", "feedback_records", "payload_records"):
        op.drop_table(table)
    op.drop_table("deployments")
