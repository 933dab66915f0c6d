"""How far each payload journal file of a SQLite data mart is ingested (:mod:`utils.datamart.journal`):
``payload_journal_offsets``, one row per file, updated in the transaction that inserts the file's records.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payload_journal_offsets",
        sa.Column("file_name", sa.String(100), primary_key=True),
        sa.Column("ingested_bytes", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("payload_journal_offsets")
