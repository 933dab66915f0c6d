"""Payload and feedback records: what the deployments scored, and the outcomes that came back later.

A record's inputs of the credit contract are stored in typed columns, one per field (revision 0006), and again as
one fixed-width binary row (revision 0007, :mod:`utils.datamart.packed`), which the monitors read as a window's
columns (:mod:`utils.datamart.columnar`); the inputs of a declared schema are stored as a JSON object in
``inputs``. Callers see no difference: they give and get the inputs as mappings and columns.

Writes are one transaction each call, sent to the database driver as one batch of rows (the rows are converted
column by column, as SQLAlchemy would, without its per-row work). Reads come back as pandas DataFrames with
timezone-aware UTC times.
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from operator import itemgetter

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from utils.data import CATEGORIES, FEATURES
from utils.datamart.engine import (
    DatamartUnavailable,
    check_identity,
    forget_immediate_connection,
    immediate_connection,
    sqlite_file,
    writers_in_turn,
    writers_turn_if_free,
)
from utils.datamart.packed import FIELD_VALUES, pack
from utils.datamart.schema import feedback_records, payload_records
from utils.times import as_utc

_PAYLOAD_COLUMNS = ("transaction_id", "deployment_id", "model_id", "scored_at")
_PAYLOAD_OUTPUTS = ("prediction", "probability_no_risk", "probability_risk", "out_of_range")
_FEEDBACK_COLUMNS = ("feedback_id", "deployment_id", "recorded_at")
#: Transaction ids looked up per statement: well under every database's limit of bound parameters.
_IDS_PER_QUERY = 500
#: The Python type of each field of the credit contract, in its order: what the typed columns hold.
_FIELD_TYPES = tuple(str if name in CATEGORIES else int for name in FEATURES)
_NO_FIELDS = dict.fromkeys(FEATURES)
_JSON_COLUMNS = ("inputs", "out_of_range")


def in_typed_columns(inputs: Mapping) -> bool:
    """Whether a record's inputs go to the typed columns: exactly the contract's fields, text for categories and
    integers for numbers (anything else, such as a declared schema's fields, is kept as JSON in ``inputs``)."""
    try:
        return len(inputs) == len(FEATURES) and tuple(map(type, FIELD_VALUES(inputs))) == _FIELD_TYPES
    except (KeyError, TypeError):
        return False


def _stored(record: Mapping, time_column: str, extra: Mapping) -> dict:
    """A record as a row of its table: its time in UTC, its inputs in the typed columns and packed (see
    :mod:`utils.datamart.packed`), or in ``inputs``."""
    inputs, at = record["inputs"], as_utc(record[time_column])
    if in_typed_columns(inputs):
        return {**record, **inputs, "inputs": None, "packed_features": pack(inputs), time_column: at, **extra}
    return {**record, **_NO_FIELDS, "packed_features": None, time_column: at, **extra}


def payload_rows(records: Iterable[Mapping]) -> list[dict]:
    """Payload records as rows of ``payload_records``, every column given (times in UTC; the inputs in the typed
    columns when they are the credit contract's, see :func:`in_typed_columns`; no ``out_of_range`` fields: NULL)."""
    return [_stored(r, "scored_at", {"out_of_range": r.get("out_of_range") or None}) for r in records]


def _feedback_rows(records: Iterable[Mapping]) -> list[dict]:
    return [_stored(r, "recorded_at", {"transaction_id": r.get("transaction_id")}) for r in records]


def _processor(column: sa.Column, dialect):
    """The conversion SQLAlchemy applies to a column's values for the driver (None: none); JSON's None is NULL."""
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    if process is not None and column.name in _JSON_COLUMNS:
        return lambda value: None if value is None else process(value)
    return process


@functools.lru_cache(maxsize=16)
def _insert_plan(dialect, table: sa.Table) -> tuple[str, itemgetter, tuple]:
    """The INSERT of every column of ``table`` but its autoincrement key, with positional parameters; the getter of
    a row's parameters, in order; and the position and conversion of each parameter that has one."""
    names = [column.name for column in table.c if column is not table.autoincrement_column]
    positional = dialect if dialect.positional else type(dialect)(paramstyle="format")
    statement = table.insert().compile(dialect=positional, column_keys=names)
    conversions = ((at, _processor(table.c[name], dialect)) for at, name in enumerate(statement.positiontup))
    return str(statement), itemgetter(*statement.positiontup), tuple((at, c) for at, c in conversions if c)


def _driver_rows(dialect, table: sa.Table, rows: Sequence[Mapping]) -> tuple[str, list[list]]:
    """The INSERT of ``table`` and ``rows`` as the driver's positional parameters, converted as SQLAlchemy does
    (times, JSON) without its per-row work: the few columns that need a conversion, one after the other."""
    statement, parameters_of, conversions = _insert_plan(dialect, table)
    parameters = [list(parameters_of(row)) for row in rows]
    for at, convert in conversions:
        for values in parameters:
            values[at] = convert(values[at])
    return statement, parameters


#: The columns of ``payload_records`` whose INSERT refuses a NULL.
_PAYLOAD_REQUIRED = tuple(
    c.name for c in payload_records.c if not c.nullable and c is not payload_records.autoincrement_column
)


def payload_driver_rows(dialect, records: Iterable[Mapping]) -> tuple[str, list[list]]:
    """Payload records as the INSERT of ``payload_records`` and the driver's positional parameters of each record,
    converted as SQLAlchemy does (:func:`_driver_rows`): what the payload journal stores and ingests.

    Raises:
        ValueError: a record without a value the INSERT requires (which it would refuse when ingested).
    """
    rows = payload_rows(records)
    for row in rows:
        if missing := [name for name in _PAYLOAD_REQUIRED if row[name] is None]:
            raise ValueError(f"a payload record holds no {', '.join(missing)}")
    return _driver_rows(dialect, payload_records, rows)


#: Most rows one INSERT statement takes on SQLite (:func:`in_statements`).
ROWS_PER_STATEMENT = 200


@functools.lru_cache(maxsize=64)
def _statement_of(statement: str, count: int, suffix: str) -> str:
    head, _, values = statement.partition(" VALUES ")
    return f"{head} VALUES {', '.join([values] * count)}{suffix}"


def in_statements(driver_connection, statement: str, parameters: list, suffix: str = "") -> Iterator[tuple[str, list]]:
    """The one-row INSERT ``statement`` of SQLite and its rows' ``parameters`` as INSERTs of many rows each (up to
    :data:`ROWS_PER_STATEMENT`, within SQLite's limit of bound parameters), each with its flat parameters.

    ``executemany`` runs one step per row, and gives up the GIL and takes it back at each: while another thread runs
    Python (the event loop serving requests), every row then waits for it, and the insert costs ten times its CPU.
    """
    if not parameters:
        return
    limit = driver_connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    size, start = max(1, min(ROWS_PER_STATEMENT, limit // len(parameters[0]))), 0
    while start < len(parameters):
        # A remainder goes in statements of powers of two: a handful of INSERTs, each compiled once and then taken
        # from the driver's statement cache (compiling one of 137 rows took eight times as long as running it).
        left = len(parameters) - start
        count = size if left >= size else 1 << (left.bit_length() - 1)
        chunk = parameters[start : start + count]
        yield _statement_of(statement, count, suffix), list(itertools.chain.from_iterable(chunk))
        start += count


def insert_rows(connection: Connection, table: sa.Table, rows: Sequence[Mapping], *, beside_loop=False) -> None:
    """Insert ``rows`` (mappings holding every column of ``table`` but its autoincrement key) within the caller's
    transaction, converted column by column (:func:`_driver_rows`), in one ``executemany``: several times faster
    than SQLAlchemy's per-row processing. ``beside_loop`` (a thread of the service, beside its event loop): on
    SQLite, in statements of many rows instead (:func:`in_statements`)."""
    if not rows:
        return
    statement, parameters = _driver_rows(connection.dialect, table, rows)
    if connection.dialect.name != "sqlite" or not beside_loop:
        connection.exec_driver_sql(statement, list(map(tuple, parameters)))  # SQLAlchemy takes tuples, not lists
        return
    for many, flat in in_statements(connection.connection.driver_connection, statement, parameters):
        connection.exec_driver_sql(many, tuple(flat))


def _execute_and_commit(engine: Engine, connection, statement: str, parameters: list) -> None:
    """One ``executemany`` on a driver connection, the SQLite file's identity checked, and the commit."""
    cursor = connection.cursor()
    cursor.executemany(statement, parameters)
    cursor.close()
    check_identity(engine)  # as before every commit (engine.py): nothing acknowledged into a file that is gone
    connection.commit()


def _insert_committed(engine: Engine, table: sa.Table, rows: Sequence[Mapping]) -> None:
    """Insert ``rows`` in a transaction of their own, in the writers' turn, and commit it.

    The driver's connection is used directly (one ``executemany``, one commit): a scoring request's transaction
    takes half the time it takes through a SQLAlchemy ``Connection``. The SQLite file's identity is checked before
    the commit (:func:`~utils.datamart.engine.check_identity`), and a driver error is raised as SQLAlchemy's
    (say :class:`sqlalchemy.exc.OperationalError`), the connection discarded.
    """
    statement, parameters = _driver_rows(engine.dialect, table, rows)
    with writers_in_turn(engine):
        check_identity(engine)  # as when a transaction begins (engine.py)
        connection = engine.raw_connection()
        try:
            _execute_and_commit(engine, connection, statement, parameters)
        except engine.dialect.loaded_dbapi.Error as error:
            connection.invalidate()
            raise sa.exc.DBAPIError.instance(
                statement, None, error, engine.dialect.loaded_dbapi.Error, dialect=engine.dialect
            ) from error
        except BaseException:
            connection.invalidate()
            raise
        finally:
            connection.close()


def insert_payload(engine: Engine, records: Iterable[Mapping]) -> int:
    """Store scored records in one transaction, in the writers' turn (:func:`~utils.datamart.engine.writers_in_turn`);
    returns how many.

    Each record holds ``transaction_id``, ``deployment_id``, ``model_id``, ``scored_at``,
    ``inputs`` (a JSON-able mapping of field to value), ``prediction``,
    ``probability_no_risk`` and ``probability_risk``, and optionally ``out_of_range``: the names of the fields
    inside the contract but outside the training data's ranges (None or empty: none).
    """
    rows = payload_rows(records)
    if rows:
        _insert_committed(engine, payload_records, rows)
    return len(rows)


#: Commits of :func:`insert_payload_now` in a row on one connection, which never checkpoints the write-ahead log,
#: before it declines one so that the caller's :func:`insert_payload` commits on a connection that does.
IMMEDIATE_COMMITS = 200


def _roll_back(engine: Engine, connection) -> None:
    """Roll back what an immediate connection wrote; one that cannot is closed (closing rolls back)."""
    try:
        connection.rollback()
    except Exception:
        forget_immediate_connection(engine)


def insert_payload_now(engine: Engine, records: Iterable[Mapping]) -> int | None:
    """As :func:`insert_payload`, if that needs no wait: returns how many records were stored, or None when none
    was (store them with :func:`insert_payload`, which waits its turn and raises what is wrong).

    Only a SQLite data mart is written this way, and only when no other writer holds its writer turn or its lock,
    with :func:`~utils.datamart.engine.immediate_connection` (busy timeout zero; its commits write the
    write-ahead log, and wait for no disk). A PostgreSQL commit waits for the server's disk: always None.

    Raises:
        DatamartUnavailable: the SQLite file was removed or replaced (nothing was stored).
    """
    rows = payload_rows(records)
    if not rows or sqlite_file(engine) is None:
        return None
    check_identity(engine)  # before a connection is opened (or taken from the pool) for a file that is gone
    connection = immediate_connection(engine)
    commits = connection.info.get("commits", 0)
    if commits >= IMMEDIATE_COMMITS:
        connection.info["commits"] = 0  # this one commits where the log is checkpointed
        return None
    statement, parameters = _driver_rows(engine.dialect, payload_records, rows)
    with writers_turn_if_free(engine) as taken:
        if not taken:
            return None
        try:
            _execute_and_commit(engine, connection, statement, parameters)
        except Exception as error:  # say SQLITE_BUSY: another writer holds SQLite's lock
            _roll_back(engine, connection)
            if isinstance(error, DatamartUnavailable):
                raise
            return None
    connection.info["commits"] = commits + 1
    return len(rows)


def insert_feedback(engine: Engine, records: Iterable[Mapping]) -> int:
    """Store labelled feedback records in one transaction; returns how many.

    Each record holds ``feedback_id``, ``deployment_id``, ``recorded_at``, ``inputs`` and ``label``, and
    optionally ``transaction_id``: the payload record it labels (:func:`logged_transactions` checks them).
    """
    rows = _feedback_rows(records)
    if rows:
        _insert_committed(engine, feedback_records, rows)
    return len(rows)


def inputs_of(row: Mapping) -> Mapping:
    """A stored record's inputs as a mapping of field to value, wherever they are stored."""
    inputs = row["inputs"]
    return {name: row[name] for name in FEATURES} if inputs is None else inputs


def record_table(feedback: bool) -> tuple[sa.Table, str]:
    return (feedback_records, "recorded_at") if feedback else (payload_records, "scored_at")


def in_window(query: sa.Select, table: sa.Table, time_column: str, deployment_id, start, end) -> sa.Select:
    if deployment_id is not None:
        query = query.where(table.c.deployment_id == deployment_id)
    if start is not None:
        query = query.where(table.c[time_column] >= as_utc(start))
    if end is not None:
        query = query.where(table.c[time_column] < as_utc(end))
    return query


def _read(engine: Engine, query: sa.Select, head: tuple[str, ...], tail: tuple[str, ...], time_column: str):
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    base = pd.DataFrame([{c: row[c] for c in (*head, *tail)} for row in rows], columns=[*head, *tail])
    base[time_column] = pd.to_datetime(base[time_column], utc=True)
    if not rows:
        return base
    inputs = pd.DataFrame.from_records([inputs_of(row) for row in rows])
    return pd.concat([base[list(head)], inputs, base[list(tail)]], axis=1)


def read_payload(
    engine: Engine, deployment_id: str | None = None, start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    """Scored records, oldest first: ids and time, one column per input field, prediction, probabilities.

    ``start`` is inclusive and ``end`` exclusive; naive datetimes are taken as UTC.
    """
    query = sa.select(payload_records).order_by(payload_records.c.record_id)
    query = in_window(query, payload_records, "scored_at", deployment_id, start, end)
    return _read(engine, query, _PAYLOAD_COLUMNS, _PAYLOAD_OUTPUTS, "scored_at")


def read_feedback(
    engine: Engine, deployment_id: str | None = None, start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    """Feedback records, oldest first: ids and time, one column per input field, ``label`` and ``transaction_id``
    (the payload record it labels, None when it names none)."""
    query = sa.select(feedback_records).order_by(feedback_records.c.record_id)
    query = in_window(query, feedback_records, "recorded_at", deployment_id, start, end)
    return _read(engine, query, _FEEDBACK_COLUMNS, ("label", "transaction_id"), "recorded_at")


def logged_transactions(engine: Engine, deployment_id: str, transaction_ids: Iterable[str]) -> set[str]:
    """Which of ``transaction_ids`` are payload records of the deployment."""
    wanted = sorted(set(transaction_ids))
    found: set[str] = set()
    table = payload_records
    with engine.connect() as connection:
        for start in range(0, len(wanted), _IDS_PER_QUERY):
            piece = wanted[start : start + _IDS_PER_QUERY]
            query = sa.select(table.c.transaction_id).where(
                table.c.deployment_id == deployment_id, table.c.transaction_id.in_(piece)
            )
            found.update(connection.execute(query).scalars())
    return found


def read_transaction(engine: Engine, transaction_id: str) -> pd.Series:
    """One payload record by transaction id: its 20 features, ``prediction``, probabilities, ``model_id``,
    ``deployment_id`` and ``scored_at``.

    Raises:
        KeyError: no record with that transaction id.
    """
    query = sa.select(payload_records).where(payload_records.c.transaction_id == transaction_id)
    with engine.connect() as connection:
        row = connection.execute(query).mappings().first()
    if row is None:
        raise KeyError(f"no payload record with transaction id {transaction_id!r}")
    inputs = inputs_of(row)
    fields = {name: inputs[name] for name in FEATURES}
    extra = ("transaction_id", "deployment_id", "model_id", "scored_at", "prediction", "probability_risk")
    return pd.Series({**fields, **{name: row[name] for name in extra}})


def restamp(engine: Engine, ids: Sequence[str], moments: Sequence, *, feedback: bool = False) -> int:
    """Set the time of payload (or ``feedback``) records by id, in one transaction; returns how many changed.

    For simulations only: it rewrites the log's history.
    """
    table, column = record_table(feedback)
    key = "feedback_id" if feedback else "transaction_id"
    statement = table.update().where(table.c[key] == sa.bindparam("_key")).values({column: sa.bindparam("_at")})
    rows = [{"_key": i, "_at": as_utc(m)} for i, m in zip(ids, moments, strict=True)]
    if not rows:
        return 0
    with engine.begin() as connection:
        return connection.execute(statement, rows).rowcount
