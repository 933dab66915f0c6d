"""The model's life across spaces: deployment history, monitor configuration per deployment, evaluations, approvals.

Every existing deployment gets one open period of history, from its last change (``updated_at``) on.

Revision ID: 0003
Revises: 0002
"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)
#: Why the periods this revision opens have no known author: they were recorded before history was kept.
_BACKFILL_REASON = "in service when deployment history began (data mart revision 0003)"


def upgrade() -> None:
    history = op.create_table(
        "deployment_history",
        sa.Column("history_id", sa.String(64), primary_key=True),
        sa.Column("deployment_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("space", sa.String(20), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("started_at", _TIME, nullable=False),
        sa.Column("ended_at", _TIME),
        sa.Column("deployed_by", sa.String(64)),
        sa.Column("reason", sa.Text),
    )
    op.create_index("ix_history_deployment_start", "deployment_history", ["deployment_id", "started_at"])
    op.create_index("ix_history_model", "deployment_history", ["model_id"])
    op.create_table(
        "monitor_configs",
        sa.Column("deployment_id", sa.String(64), primary_key=True),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("updated_by", sa.String(64)),
        sa.Column("updated_at", _TIME, nullable=False),
    )
    _create_evaluations_and_approvals()
    _open_history_of_existing_deployments(history)


def _create_evaluations_and_approvals() -> None:
    op.create_table(
        "evaluations",
        sa.Column("evaluation_id", sa.String(64), primary_key=True),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("deployment_id", sa.String(64), nullable=False),
        sa.Column("space", sa.String(20), nullable=False),
        sa.Column("baseline_model_id", sa.String(200)),
        sa.Column("verdict", sa.String(10), nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.Column("report_html", sa.String(300), nullable=False),
        sa.Column("report_json", sa.String(300), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
    )
    op.create_index("ix_evaluations_model", "evaluations", ["model_id", "created_at"])
    op.create_index("ix_evaluations_deployment", "evaluations", ["deployment_id", "created_at"])
    op.create_table(
        "approvals",
        sa.Column("record_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("approval_id", sa.String(64), nullable=False, unique=True),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("evaluation_id", sa.String(64), nullable=False),
        sa.Column("approver", sa.String(64), nullable=False),
        sa.Column("decision", sa.String(10), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
    )
    op.create_index("ix_approvals_evaluation", "approvals", ["evaluation_id"])
    op.create_index("ix_approvals_model", "approvals", ["model_id"])


def _open_history_of_existing_deployments(history: sa.Table) -> None:
    deployments = sa.table(
        "deployments",
        sa.column("deployment_id"),
        sa.column("name"),
        sa.column("space"),
        sa.column("model_id"),
        sa.column("updated_at", _TIME),
    )
    connection = op.get_bind()
    rows = connection.execute(sa.select(deployments)).mappings().all()
    if rows:
        op.bulk_insert(
            history,
            [
                {
                    "history_id": str(uuid.uuid4()),
                    "deployment_id": row["deployment_id"],
                    "name": row["name"],
                    "space": row["space"],
                    "model_id": row["model_id"],
                    "started_at": row["updated_at"],
                    "ended_at": None,
                    "deployed_by": None,
                    "reason": _BACKFILL_REASON,
                }
                for row in rows
            ],
        )


def downgrade() -> None:
    for table in ("approvals", "evaluations", "monitor_configs", "deployment_history"):
        op.drop_table(table)
