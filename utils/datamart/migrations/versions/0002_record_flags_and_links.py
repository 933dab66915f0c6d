"""Payload records flag the fields outside the training data's ranges; feedback may name the transaction it labels.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The names of the fields of a scored record that lie inside the contract but outside the ranges observed in
    # the training data; NULL when none do (and for records logged before this revision).
    op.add_column("payload_records", sa.Column("out_of_range", sa.JSON))
    # The payload record a feedback record labels, when the sender names it.
    op.add_column("feedback_records", sa.Column("transaction_id", sa.String(64)))
    op.create_index("ix_feedback_transaction", "feedback_records", ["transaction_id"])


def downgrade() -> None:
    op.drop_index("ix_feedback_transaction", table_name="feedback_records")
    with op.batch_alter_table("feedback_records") as batch:
        batch.drop_column("transaction_id")
    with op.batch_alter_table("payload_records") as batch:
        batch.drop_column("out_of_range")
