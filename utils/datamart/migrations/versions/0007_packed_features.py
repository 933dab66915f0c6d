"""Payload and feedback inputs of the credit contract also as one fixed-width binary row, ``packed_features``
(:mod:`utils.datamart.packed`), so that a window reads one column of inputs rather than 20.

Records already stored keep NULL: the window's read takes their inputs from the typed columns.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_TABLES = ("payload_records", "feedback_records")


def upgrade() -> None:
    for table in _TABLES:
        op.add_column(table, sa.Column("packed_features", sa.LargeBinary))


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("packed_features")
