"""The monitors' read of an evaluation window: its records as typed columns, through Arrow.

The window's query is built and compiled by SQLAlchemy and run by an ADBC driver (``adbc-driver-sqlite`` in a
process of its own, see :mod:`utils.datamart.arrow_reader`; ``adbc-driver-postgresql``), which returns Arrow record
batches: no Python object per value. Each batch's columns
become numpy arrays at once (categories as codes of the contract's domains, numbers as integers, probabilities as
floats), from which the window's DataFrame is made at the end. A data mart that ADBC cannot open (an in-memory
SQLite database, another kind of database) is read through SQLAlchemy into the same record batches.

Inputs stored as JSON (not in the typed columns, see :func:`utils.datamart.records.in_typed_columns`) are filled
in from a second query; a window of the credit contract has none.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from utils.data import CATEGORIES, CLASS_ORDER, FEATURES, LABEL
from utils.datamart.engine import sqlite_file
from utils.datamart.records import in_window, record_table
from utils.datamart.schema import feedback_records, payload_records
from utils.times import as_utc, as_utc_or_none

#: Windows of more records than this are read through ADBC (smaller ones through SQLAlchemy, sooner than a child
#: process starts), and of more than ``_SPLIT_ROWS`` in two halves at once (:func:`_plan`).
_ARROW_ROWS, _SPLIT_ROWS = 50_000, 200_000
#: Rows per record batch: the unit of conversion, which bounds the memory of the Arrow data held at once.
_BATCH_ROWS = 65_536
#: The logged probability of a feedback record that names no payload record, as read (NaN in the frame). Not
#: NULL: the SQLite driver infers a column's type from its first batch, and a batch of NULLs reads as integers.
_NO_PROBABILITY = -1.0
#: The window columns that are no categories: probabilities (floats) and the out-of-range flag (booleans).
_TYPED_TAIL = ("probability_risk", "logged_probability_risk", "out_of_range")


def _window_tail(feedback: bool) -> tuple[sa.FromClause, list, list[str]]:
    """What a window read takes besides the inputs: its FROM, the columns, and their names in the frame.

    Feedback carries the logged probability of ``Risk`` of the payload record it names (NaN when it names none);
    payload carries whether any of its fields was outside the training data's ranges.
    """
    if feedback:
        table, logged = feedback_records, payload_records
        linked = (logged.c.transaction_id == table.c.transaction_id) & (logged.c.deployment_id == table.c.deployment_id)
        logged_risk = sa.func.coalesce(logged.c.probability_risk, _NO_PROBABILITY)
        columns = [table.c.label, logged_risk.label("logged_probability_risk")]
        return table.outerjoin(logged, linked), columns, [LABEL, "logged_probability_risk"]
    table = payload_records
    columns = [table.c.prediction, table.c.probability_risk, table.c.out_of_range.is_not(None).label("out_of_range")]
    return table, columns, ["prediction", "probability_risk", "out_of_range"]


def _window_query(feedback: bool, deployment_id: str, start, end) -> tuple[sa.Select, sa.Select, list[str]]:
    """The window's query (inputs, whether they are JSON, then the tail), the query of its JSON inputs alone, and
    the names of the tail's columns. Both in the order of the records' time: the (deployment, time) index gives it
    without sorting (its entries end with the record id)."""
    table, time_column = record_table(feedback)
    source, tail, names = _window_tail(feedback)
    inputs = [sa.func.coalesce(table.c[name], "" if name in CATEGORIES else 0).label(name) for name in FEATURES]
    as_json = table.c.inputs.is_not(None).label("as_json")
    order = (table.c[time_column], table.c.record_id)
    query = sa.select(*inputs, as_json, *tail).select_from(source).order_by(*order)
    query = in_window(query, table, time_column, deployment_id, start, end)
    json_query = sa.select(table.c.inputs).where(table.c.inputs.is_not(None)).order_by(*order)
    return query, in_window(json_query, table, time_column, deployment_id, start, end), names


def _parameters(compiled: sa.sql.compiler.SQLCompiler, dialect) -> list:
    """The compiled query's parameters in order, converted for the driver as SQLAlchemy does (SQLite's times)."""
    values = []
    for name in compiled.positiontup:
        process = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
        value = compiled.params[name]
        values.append(value if process is None else process(value))
    return values


def _sqlite_batches(engine: Engine, path: str, query: sa.Select) -> Iterator[pa.RecordBatch]:
    """The rows of ``query`` read by ADBC's SQLite driver in a process of its own (:mod:`arrow_reader` says why)."""
    compiled = query.compile(dialect=engine.dialect)
    request = {"path": path, "sql": str(compiled), "parameters": _parameters(compiled, engine.dialect)}
    command = [sys.executable, "-c", "from utils.datamart.arrow_reader import main; main()"]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
        child.stdin.write(json.dumps({**request, "batch_rows": _BATCH_ROWS}).encode())
        child.stdin.close()
        try:
            yield from pa.ipc.open_stream(child.stdout)
        except pa.ArrowInvalid:
            pass  # no stream: the child failed, and says why below
        problem = child.stderr.read().decode(errors="replace").strip()
        if child.wait() != 0:
            raise RuntimeError(f"reading the window through ADBC failed: {problem.splitlines()[-1:]}")


def _postgresql_batches(engine: Engine, query: sa.Select) -> Iterator[pa.RecordBatch]:
    """The rows of ``query`` read by ADBC's PostgreSQL driver (libpq), in this process."""
    import adbc_driver_postgresql.dbapi as driver

    compiled = query.compile(dialect=type(engine.dialect)(paramstyle="numeric_dollar"))
    uri = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with driver.connect(uri) as connection, connection.cursor() as cursor:
        cursor.execute(str(compiled), _parameters(compiled, engine.dialect))
        yield from cursor.fetch_record_batch()


def _adbc(engine: Engine) -> Callable[[sa.Select], Iterator[pa.RecordBatch]] | None:
    """How ADBC reads a query of the data mart as record batches; None when it cannot (an in-memory SQLite
    database, another kind of database)."""
    if engine.dialect.name == "sqlite" and (path := sqlite_file(engine)) is not None:
        return functools.partial(_sqlite_batches, engine, path)
    if engine.dialect.name == "postgresql":
        return functools.partial(_postgresql_batches, engine)
    return None


def _batches(engine: Engine, query: sa.Select, adbc: Callable | None) -> Iterator[pa.RecordBatch]:
    """The rows of ``query`` as Arrow record batches: through ``adbc`` (see :func:`_adbc`), else SQLAlchemy."""
    if adbc is not None:
        yield from adbc(query)
        return
    with engine.connect() as connection:
        result = connection.execution_options(yield_per=_BATCH_ROWS).execute(query)
        names = list(result.keys())
        for rows in result.partitions():
            yield pa.RecordBatch.from_arrays([pa.array(column) for column in zip(*rows)], names=names)


def read_window_columns(engine: Engine, deployment_id: str, start=None, end=None, *, feedback=False) -> pa.Table:
    """The columns :func:`read_window` reads, as the database gives them (in halves at once when it does), in one
    Arrow table: the cost of reading a window from the store alone (the monitoring benchmark's reference)."""
    start, end = as_utc_or_none(start), as_utc_or_none(end)

    adbc, halves = _plan(engine, feedback, deployment_id, start, end)

    def read(bounds: tuple) -> list[pa.RecordBatch]:
        return list(_batches(engine, _window_query(feedback, deployment_id, *bounds)[0], adbc))

    with ThreadPoolExecutor(len(halves)) as pool:
        batches = [batch for half in pool.map(read, halves) for batch in half]
    return pa.Table.from_batches(batches) if batches else pa.table({})


def _codes(column: pa.Array, categories) -> np.ndarray:
    """Each value's index in ``categories`` (-1: none of them), as small integers."""
    found = pc.index_in(column, value_set=pa.array(categories, type=column.type))
    return found.fill_null(-1).to_numpy().astype(np.int8)


def _converted(batch: pa.RecordBatch, names: list[str]) -> list[np.ndarray]:
    """A batch's columns as numpy arrays: the features, whether the inputs are JSON, then the tail of ``names``."""
    arrays = []
    for index, name in enumerate([*FEATURES, "as_json", *names]):
        column = batch.column(index)
        if name in CATEGORIES:
            arrays.append(_codes(column, CATEGORIES[name]))
        elif name in (LABEL, "prediction"):
            arrays.append(_codes(column, CLASS_ORDER))
        elif name in ("as_json", "out_of_range"):
            arrays.append(column.to_numpy(zero_copy_only=False).astype(bool))
        elif name in _TYPED_TAIL:
            arrays.append(column.to_numpy(zero_copy_only=False).astype(float))
        else:
            arrays.append(column.to_numpy(zero_copy_only=False).astype(np.int64))
    return arrays


def empty_window(*, feedback: bool = False) -> pd.DataFrame:
    """The records of an empty window, with the columns and types :func:`read_window` gives (numbers: objects)."""
    frame = {
        name: pd.Categorical([], list(CATEGORIES[name])) if name in CATEGORIES else pd.Series(dtype=object)
        for name in FEATURES
    }
    decided = pd.Categorical([], list(CLASS_ORDER))
    if feedback:
        return pd.DataFrame({**frame, LABEL: decided, "logged_probability_risk": pd.Series(dtype=float)})
    tail = {"prediction": decided, "probability_risk": pd.Series(dtype=float), "out_of_range": pd.Series(dtype=bool)}
    return pd.DataFrame({**frame, **tail})


def _fill_json(engine: Engine, json_query: sa.Select, columns: dict, rows: np.ndarray) -> None:
    """Set the inputs of the records at ``rows`` (whose inputs are JSON) from ``json_query``, in place."""
    with engine.connect() as connection:
        stored = connection.execute(json_query).scalars().all()
    part = pd.DataFrame.from_records(stored, columns=list(FEATURES))
    for name in FEATURES:
        if name in CATEGORIES:
            columns[name][rows] = pd.Categorical(part[name], categories=list(CATEGORIES[name])).codes
            continue
        values = part[name].to_numpy()
        kind = np.result_type(columns[name], values) if values.dtype.kind in "iuf" else np.dtype(object)
        columns[name] = columns[name].astype(kind, copy=False)
        columns[name][rows] = values


def _plan(engine: Engine, feedback: bool, deployment_id: str, start, end) -> tuple[Callable | None, list[tuple]]:
    """How to read the window: the ADBC reader (None: SQLAlchemy) and the bounds of the window, or of its two
    halves (in records), each then read on a core of its own (see :data:`_ARROW_ROWS`)."""
    adbc = _adbc(engine)
    if adbc is None:
        return None, [(start, end)]
    table, time_column = record_table(feedback)
    times = in_window(sa.select(table.c[time_column]), table, time_column, deployment_id, start, end)
    with engine.connect() as connection:
        count = connection.execute(sa.select(sa.func.count()).select_from(times.subquery())).scalar()
        if count <= _SPLIT_ROWS:
            return (adbc if count > _ARROW_ROWS else None), [(start, end)]
        middle = connection.execute(times.order_by(table.c[time_column]).offset(count // 2).limit(1)).scalar()
    middle = as_utc(middle)
    return adbc, [(start, middle), (middle, end)]


def read_window(engine: Engine, deployment_id: str, start=None, end=None, *, feedback: bool = False) -> pd.DataFrame:
    """The payload (or ``feedback``) records of a window, fast: one column per feature (categories as pandas
    categoricals of the contract's domains, numbers as integers), then ``prediction``, ``probability_risk`` and
    ``out_of_range`` (payload: whether a field lies outside the training data's ranges) or ``Risk`` and
    ``logged_probability_risk`` (feedback: the probability logged for the transaction it names, NaN when it names
    none), in the order of the records' time. ``start`` is inclusive and ``end`` exclusive.
    """
    start, end = as_utc_or_none(start), as_utc_or_none(end)
    _, json_query, names = _window_query(feedback, deployment_id, start, end)

    adbc, halves = _plan(engine, feedback, deployment_id, start, end)

    def read(bounds: tuple) -> list[list[np.ndarray]]:
        query, _, _ = _window_query(feedback, deployment_id, *bounds)
        return [_converted(batch, names) for batch in _batches(engine, query, adbc) if batch.num_rows]

    with ThreadPoolExecutor(len(halves)) as pool:  # the drivers and the conversion let go of the GIL
        parts = [part for half in pool.map(read, halves) for part in half]
    if not parts:
        return empty_window(feedback=feedback)
    columns = {name: np.concatenate(arrays) for name, arrays in zip([*FEATURES, "as_json", *names], zip(*parts))}
    as_json = columns.pop("as_json")
    if as_json.any():
        _fill_json(engine, json_query, columns, np.flatnonzero(as_json))
    frame = {}
    for name, values in columns.items():
        if name in CATEGORIES or name in (LABEL, "prediction"):
            categories = CATEGORIES.get(name, CLASS_ORDER)
            frame[name] = pd.Categorical.from_codes(values, categories=list(categories))
        else:
            frame[name] = values
    if "logged_probability_risk" in frame:
        frame["logged_probability_risk"][frame["logged_probability_risk"] == _NO_PROBABILITY] = np.nan
    return pd.DataFrame(frame)
