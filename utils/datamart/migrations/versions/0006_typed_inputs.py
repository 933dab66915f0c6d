"""Payload and feedback inputs of the credit contract in typed columns, one per field, so that a window reads as
columns; ``inputs`` (JSON) becomes nullable and keeps the inputs of declared schemas.

Records already stored move to the columns when their inputs are exactly the contract's 20 fields with their
types (text for categories, integers for numbers); any other record keeps its inputs in ``inputs``.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TEXT, _INTEGER = "text", "integer"
#: The credit contract's fields as of this revision, in order, with the kind of each.
_FIELDS = (
    ("CheckingStatus", _TEXT),
    ("LoanDuration", _INTEGER),
    ("CreditHistory", _TEXT),
    ("LoanPurpose", _TEXT),
    ("LoanAmount", _INTEGER),
    ("ExistingSavings", _TEXT),
    ("EmploymentDuration", _TEXT),
    ("InstallmentPercent", _INTEGER),
    ("Sex", _TEXT),
    ("OthersOnLoan", _TEXT),
    ("CurrentResidenceDuration", _INTEGER),
    ("OwnsProperty", _TEXT),
    ("Age", _INTEGER),
    ("InstallmentPlans", _TEXT),
    ("Housing", _TEXT),
    ("ExistingCreditsCount", _INTEGER),
    ("Job", _TEXT),
    ("Dependents", _INTEGER),
    ("Telephone", _TEXT),
    ("ForeignWorker", _TEXT),
)
_TABLES = ("payload_records", "feedback_records")


def _columns() -> list[sa.Column]:
    return [sa.Column(name, sa.String(50) if kind == _TEXT else sa.Integer) for name, kind in _FIELDS]


def _quoted(name: str) -> str:
    return op.get_bind().dialect.identifier_preparer.quote(name)


def _sqlite_move(table: str) -> str:
    """SQLite: the fields of each record with exactly the contract's fields, typed, into the columns."""
    values = ", ".join(f"{_quoted(name)} = json_extract(inputs, '$.{name}')" for name, _ in _FIELDS)
    typed = " AND ".join(f"json_type(inputs, '$.{name}') = '{kind}'" for name, kind in _FIELDS)
    return (
        f"UPDATE {table} SET {values}, inputs = NULL WHERE json_type(inputs) = 'object' "
        f"AND (SELECT count(*) FROM json_each({table}.inputs)) = {len(_FIELDS)} AND {typed}"
    )


def _postgresql_move(table: str) -> str:
    """PostgreSQL: as :func:`_sqlite_move`; an integer is a JSON number of at most 9 digits and no fraction."""
    values = ", ".join(
        f"{_quoted(name)} = inputs->>'{name}'" if kind == _TEXT else f"{_quoted(name)} = (inputs->>'{name}')::integer"
        for name, kind in _FIELDS
    )
    typed = " AND ".join(
        f"json_typeof(inputs->'{name}') = 'string'"
        if kind == _TEXT
        else f"json_typeof(inputs->'{name}') = 'number' AND (inputs->>'{name}') ~ '^-?[0-9]{{1,9}}$'"
        for name, kind in _FIELDS
    )
    return (
        f"UPDATE {table} SET {values}, inputs = NULL WHERE json_typeof(inputs) = 'object' "
        f"AND (SELECT count(*) FROM json_object_keys(inputs)) = {len(_FIELDS)} AND {typed}"
    )


def upgrade() -> None:
    move = _postgresql_move if op.get_bind().dialect.name == "postgresql" else _sqlite_move
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column("inputs", existing_type=sa.JSON, nullable=True)
            for column in _columns():
                batch.add_column(column)
        op.execute(move(table))


def downgrade() -> None:
    build = "json_build_object" if op.get_bind().dialect.name == "postgresql" else "json_object"
    fields = ", ".join(f"'{name}', {_quoted(name)}" for name, _ in _FIELDS)
    for table in _TABLES:
        op.execute(f"UPDATE {table} SET inputs = {build}({fields}) WHERE inputs IS NULL")
        with op.batch_alter_table(table) as batch:
            for name, _ in _FIELDS:
                batch.drop_column(name)
            batch.alter_column("inputs", existing_type=sa.JSON, nullable=False)
