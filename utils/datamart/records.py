"""Payload and feedback records: what the deployments scored, and the outcomes that came back later.

Writes are one transaction each call. Reads come back as pandas DataFrames with timezone-aware UTC times;
:func:`read_window` is the fast, typed read of an evaluation window that the monitors use.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from utils.data import CATEGORIES, CLASS_ORDER, FEATURES, LABEL
from utils.datamart.schema import feedback_records, payload_records
from utils.times import as_utc, as_utc_or_none

_PAYLOAD_COLUMNS = ("transaction_id", "deployment_id", "model_id", "scored_at")
_PAYLOAD_OUTPUTS = ("prediction", "probability_no_risk", "probability_risk", "out_of_range")
_FEEDBACK_COLUMNS = ("feedback_id", "deployment_id", "recorded_at")
_CHUNK_ROWS = 200_000
#: Transaction ids looked up per statement: well under every database's limit of bound parameters.
_IDS_PER_QUERY = 500
#: The window columns that are not categories: probabilities (floats) and the out-of-range flag (booleans).
_TYPED_TAIL = ("probability_risk", "logged_probability_risk", "out_of_range")


def payload_rows(records: Iterable[Mapping]) -> list[dict]:
    """Payload records as rows of ``payload_records`` (times in UTC; no ``out_of_range`` fields stored as NULL)."""
    return [
        {**record, "scored_at": as_utc(record["scored_at"]), "out_of_range": record.get("out_of_range") or sa.null()}
        for record in records
    ]


def insert_payload(engine: Engine, records: Iterable[Mapping]) -> int:
    """Store scored records in one transaction; returns how many.

    Each record holds ``transaction_id``, ``deployment_id``, ``model_id``, ``scored_at``,
    ``inputs`` (a JSON-able mapping of field to value), ``prediction``,
    ``probability_no_risk`` and ``probability_risk``, and optionally ``out_of_range``: the names of the fields
    inside the contract but outside the training data's ranges (None or empty: none).
    """
    rows = payload_rows(records)
    if rows:
        with engine.begin() as connection:
            connection.execute(payload_records.insert(), rows)
    return len(rows)


def insert_feedback(engine: Engine, records: Iterable[Mapping]) -> int:
    """Store labelled feedback records in one transaction; returns how many.

    Each record holds ``feedback_id``, ``deployment_id``, ``recorded_at``, ``inputs`` and ``label``, and
    optionally ``transaction_id``: the payload record it labels (:func:`logged_transactions` checks them).
    """
    rows = [
        {**record, "recorded_at": as_utc(record["recorded_at"]), "transaction_id": record.get("transaction_id")}
        for record in records
    ]
    if rows:
        with engine.begin() as connection:
            connection.execute(feedback_records.insert(), rows)
    return len(rows)


def _table(feedback: bool) -> tuple[sa.Table, str]:
    return (feedback_records, "recorded_at") if feedback else (payload_records, "scored_at")


def _in_window(query: sa.Select, table: sa.Table, time_column: str, deployment_id, start, end) -> sa.Select:
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
    inputs = pd.DataFrame.from_records([row["inputs"] for row in rows])
    return pd.concat([base[list(head)], inputs, base[list(tail)]], axis=1)


def read_payload(
    engine: Engine, deployment_id: str | None = None, start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    """Scored records, oldest first: ids and time, one column per input field, prediction, probabilities.

    ``start`` is inclusive and ``end`` exclusive; naive datetimes are taken as UTC.
    """
    query = sa.select(payload_records).order_by(payload_records.c.record_id)
    query = _in_window(query, payload_records, "scored_at", deployment_id, start, end)
    return _read(engine, query, _PAYLOAD_COLUMNS, _PAYLOAD_OUTPUTS, "scored_at")


def read_feedback(
    engine: Engine, deployment_id: str | None = None, start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    """Feedback records, oldest first: ids and time, one column per input field, ``label`` and ``transaction_id``
    (the payload record it labels, None when it names none)."""
    query = sa.select(feedback_records).order_by(feedback_records.c.record_id)
    query = _in_window(query, feedback_records, "recorded_at", deployment_id, start, end)
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
    fields = {name: row["inputs"][name] for name in FEATURES}
    extra = ("transaction_id", "deployment_id", "model_id", "scored_at", "prediction", "probability_risk")
    return pd.Series({**fields, **{name: row[name] for name in extra}})


def restamp(engine: Engine, ids: Sequence[str], moments: Sequence, *, feedback: bool = False) -> int:
    """Set the time of payload (or ``feedback``) records by id, in one transaction; returns how many changed.

    For simulations only: it rewrites the log's history.
    """
    table, column = _table(feedback)
    key = "feedback_id" if feedback else "transaction_id"
    statement = table.update().where(table.c[key] == sa.bindparam("_key")).values({column: sa.bindparam("_at")})
    rows = [{"_key": i, "_at": as_utc(m)} for i, m in zip(ids, moments, strict=True)]
    if not rows:
        return 0
    with engine.begin() as connection:
        return connection.execute(statement, rows).rowcount


# ---------------------------------------------------------------- the monitors' fast read of a window


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    for name in FEATURES:
        if name in CATEGORIES:
            frame[name] = pd.Categorical(frame[name], categories=list(CATEGORIES[name]))
    return frame


def _parse_arrays(texts: tuple[str, ...]) -> pd.DataFrame | None:
    """Rows given as JSON arrays of the 20 values in contract order, parsed by pandas' C reader (None: fall back)."""
    data = "\n".join(texts).encode()
    if b"\\" in data or b"null" in data:
        return None
    dtypes = {n: pd.CategoricalDtype(list(CATEGORIES[n])) if n in CATEGORIES else "int64" for n in FEATURES}
    try:
        return pd.read_csv(io.BytesIO(data.translate(None, b'[]"')), header=None, names=list(FEATURES), dtype=dtypes)
    except (ValueError, pd.errors.ParserError):
        return None


def _chunks(connection, query: sa.Select, raw: bool):
    """The rows of ``query`` in chunks: the driver's own tuples when ``raw`` (no column needs converting), else
    SQLAlchemy's rows."""
    if raw:
        result = connection.execute(query)
        try:
            while chunk := result.cursor.fetchmany(_CHUNK_ROWS):
                yield chunk
        finally:
            result.close()
    else:
        yield from connection.execution_options(yield_per=_CHUNK_ROWS).execute(query).partitions()


def _column(name: str, values) -> np.ndarray | Sequence:
    """A window column as the monitors take it: probabilities as floats (NaN: none), the flag as booleans."""
    if name.endswith("probability_risk"):
        return np.asarray(values, dtype=float)
    return np.asarray(values, dtype=bool) if name == "out_of_range" else values


def _empty(names: list[str]) -> pd.DataFrame:
    empty = _typed(pd.DataFrame({name: pd.Series(dtype=object) for name in FEATURES}))
    for name in names:
        empty[name] = _column(name, []) if name in _TYPED_TAIL else pd.Categorical([], list(CLASS_ORDER))
    return empty


def _window_tail(feedback: bool) -> tuple[sa.FromClause, list, list[str]]:
    """What a window read takes besides the inputs: its FROM, the columns, and their names in the frame.

    Feedback carries the logged probability of ``Risk`` of the payload record it names (NaN when it names none);
    payload carries whether any of its fields was outside the training data's ranges.
    """
    if feedback:
        table, logged = feedback_records, payload_records
        linked = (logged.c.transaction_id == table.c.transaction_id) & (logged.c.deployment_id == table.c.deployment_id)
        columns = [table.c.label, logged.c.probability_risk.label("logged_probability_risk")]
        return table.outerjoin(logged, linked), columns, [LABEL, "logged_probability_risk"]
    table = payload_records
    columns = [table.c.prediction, table.c.probability_risk, table.c.out_of_range.is_not(None).label("out_of_range")]
    return table, columns, ["prediction", "probability_risk", "out_of_range"]


def _part(values: tuple, fast: bool) -> pd.DataFrame:
    part = _parse_arrays(values) if fast else None
    if part is None:
        records = [json.loads(v) if isinstance(v, str) else v for v in values]
        if fast:
            records = [dict(zip(FEATURES, v, strict=True)) for v in records]
        part = _typed(pd.DataFrame.from_records(records, columns=list(FEATURES)))
    return part


def read_window(engine: Engine, deployment_id: str, start=None, end=None, *, feedback: bool = False) -> pd.DataFrame:
    """The payload (or ``feedback``) records of a window, fast: one column per feature (categories as pandas
    categoricals), then ``prediction``, ``probability_risk`` and ``out_of_range`` (payload: whether a field lies
    outside the training data's ranges) or ``Risk`` and ``logged_probability_risk`` (feedback: the probability
    logged for the transaction it names, NaN when it names none).

    On SQLite the 20 values of each record are extracted by the database into one JSON array and parsed by
    pandas' CSV reader, which reads a million records in seconds; other databases and unusual values take the
    plain JSON path. Records are read in chunks to bound memory, in the order of their time.
    """
    table, time_column = _table(feedback)
    source, tail, names = _window_tail(feedback)
    fast = engine.dialect.name == "sqlite"
    if fast:
        inputs = sa.func.json_extract(table.c.inputs, *[f"$.{name}" for name in FEATURES]).label("values")
    else:
        inputs = table.c.inputs
    # In time order: the (deployment, time) index gives it without sorting (its entries end with the record id).
    query = sa.select(inputs, *tail).select_from(source).order_by(table.c[time_column], table.c.record_id)
    query = _in_window(query, table, time_column, deployment_id, as_utc_or_none(start), as_utc_or_none(end))
    parts = []
    with engine.connect() as connection:
        for chunk in _chunks(connection, query, raw=fast):
            values, *rest = zip(*chunk, strict=True)
            part = _part(values, fast)
            for name, column in zip(names, rest, strict=True):
                part[name] = _column(name, column)
            parts.append(part)
    if not parts:
        return _empty(names)
    frame = pd.concat(parts, ignore_index=True)
    for name in (LABEL, "prediction"):
        if name in frame:
            frame[name] = pd.Categorical(frame[name], categories=list(CLASS_ORDER))
    return frame
