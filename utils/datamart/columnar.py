"""The monitors' read of an evaluation window: its records as typed columns, through Arrow.

The window's query is built and compiled by SQLAlchemy and run by an ADBC driver (``adbc-driver-sqlite`` in a
process of its own, see :mod:`utils.datamart.arrow_reader`; ``adbc-driver-postgresql``), which returns Arrow record
batches: no Python object per value. A record's 20 inputs are read as one column, their packed rows
(:mod:`utils.datamart.packed`). Each batch's columns are typed at once (the packed rows unpacked into one column of
category codes or integers per field, the predictions as codes, probabilities as floats; in the child process, for
SQLite), and the window's DataFrame is made of them at the end. A data mart that ADBC cannot open (an in-memory
SQLite database, another kind of database) is read through SQLAlchemy into the same record batches.

A read begins when a :class:`WindowRead` is made, and its child processes work while the caller does something
else: :func:`utils.monitoring.evaluate_all` sets up the monitors meanwhile.

The inputs of the records that have no packed row are filled in afterwards: those in the typed columns (a record
stored before revision 0007, or with a number outside 32 bits) read by a second reader, as the window is, and
inputs stored as JSON (not in the typed columns, see :func:`utils.datamart.records.in_typed_columns`) from a third
query. A window of the credit contract logged since revision 0007 has none.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from utils.child_process import start_child
from utils.data import CATEGORIES, CLASS_ORDER, FEATURES, LABEL
from utils.datamart.arrow_reader import typed_batch
from utils.datamart.engine import sqlite_file
from utils.datamart.journal import catch_up
from utils.datamart.packed import unpacking
from utils.datamart.records import in_window, record_table
from utils.datamart.schema import feedback_records, payload_records
from utils.times import as_utc, as_utc_or_none

#: Windows of more records than this are read through ADBC (smaller ones through SQLAlchemy, sooner than a child
#: process starts), and of more than ``_SPLIT_ROWS`` in two halves at once (:func:`_plan`).
_ARROW_ROWS, _SPLIT_ROWS = 50_000, 200_000
#: Rows per record batch: the unit of typing, which bounds the memory of the Arrow data held at once.
_BATCH_ROWS = 65_536
#: The logged probability of a feedback record that names no payload record, as read (NaN in the frame). Not
#: NULL: the SQLite driver infers a column's type from its first batch, and a batch of NULLs reads as integers.
_NO_PROBABILITY = -1.0
#: The window's columns that are probabilities (floats); the others of its tail are categories or flags (booleans).
_PROBABILITIES = ("probability_risk", "logged_probability_risk")
#: The window's column of packed inputs; once typed, whether each record's inputs were packed.
_PACKED = "packed_features"


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


def _window_query(feedback: bool, deployment_id: str, start, end) -> tuple[sa.Select, list[str]]:
    """The window's query (the packed inputs, then the tail) and the names of the tail's columns, in the order of
    the records' time: the (deployment, time) index gives it without sorting (its entries end with the record id).

    A missing packed row reads as an empty one: ADBC's SQLite driver types a column by its first batch, and a batch
    of NULLs reads as integers."""
    table, time_column = record_table(feedback)
    source, tail, names = _window_tail(feedback)
    empty = sa.cast(sa.literal_column("''"), sa.LargeBinary)
    packed = sa.func.coalesce(table.c.packed_features, empty, type_=sa.LargeBinary).label(_PACKED)
    query = sa.select(packed, *tail).select_from(source).order_by(table.c[time_column], table.c.record_id)
    return in_window(query, table, time_column, deployment_id, start, end), names


def _unpacked_queries(feedback: bool, deployment_id: str, start, end) -> tuple[sa.Select, sa.Select]:
    """The queries of the window's records without a packed row, in the window's order: their typed columns and
    whether their inputs are JSON; the JSON inputs alone."""
    table, time_column = record_table(feedback)
    order = (table.c[time_column], table.c.record_id)
    inputs = [sa.func.coalesce(table.c[name], "" if name in CATEGORIES else 0).label(name) for name in FEATURES]
    typed = sa.select(*inputs, table.c.inputs.is_not(None).label("as_json"))
    typed = typed.where(table.c.packed_features.is_(None)).order_by(*order)
    as_json = sa.select(table.c.inputs).where(table.c.inputs.is_not(None)).order_by(*order)
    return tuple(in_window(query, table, time_column, deployment_id, start, end) for query in (typed, as_json))


def _parameters(compiled: sa.sql.compiler.SQLCompiler, dialect) -> list:
    """The compiled query's parameters in order, converted for the driver as SQLAlchemy does (SQLite's times)."""
    values = []
    for name in compiled.positiontup:
        process = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
        value = compiled.params[name]
        values.append(value if process is None else process(value))
    return values


class _Child:
    """ADBC's SQLite driver running one query in a process of its own (:mod:`arrow_reader` says why), started at
    once; it writes the rows, typed by ``kinds``, to the Arrow file ``output``."""

    def __init__(self, engine: Engine, query: sa.Select, kinds: list | None, output: str):
        compiled = query.compile(dialect=engine.dialect)
        request = {
            "path": os.path.abspath(sqlite_file(engine)),
            "sql": str(compiled),
            "parameters": _parameters(compiled, engine.dialect),
        }
        request.update(batch_rows=_BATCH_ROWS, kinds=kinds, output=os.path.abspath(output))
        self.output, self.errors = output, tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop)
        pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.DEVNULL, "stderr": self.errors}
        self.process = start_child("utils.datamart.arrow_reader", **pipes)
        with self.process.stdin as request_file:
            request_file.write(json.dumps(request).encode())

    def batches(self) -> list[pa.RecordBatch]:
        """Wait for the child, and read what it wrote."""
        if self.process.wait() != 0:
            self.errors.seek(0)
            problem = self.errors.read().decode(errors="replace").strip()
            raise RuntimeError(f"reading the window through ADBC failed: {problem.splitlines()[-1:]}")
        with pa.OSFile(self.output) as source:
            return pa.ipc.open_file(source).read_all().to_batches()

    def stop(self) -> None:
        """Stop the child if it still runs (its rows are not wanted)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.errors.close()


class _InProcess:
    """One query read in this process when its batches are asked for: by ADBC's PostgreSQL driver (``adbc``),
    else through SQLAlchemy."""

    def __init__(self, engine: Engine, query: sa.Select, kinds: list | None, *, adbc: bool):
        self.engine, self.query, self.kinds, self.adbc = engine, query, kinds, adbc

    def batches(self) -> list[pa.RecordBatch]:
        read = _postgresql_batches if self.adbc else _sqlalchemy_batches
        found = read(self.engine, self.query)
        return [batch if self.kinds is None else typed_batch(batch, self.kinds) for batch in found]

    def stop(self) -> None:
        pass


def _postgresql_batches(engine: Engine, query: sa.Select) -> Iterator[pa.RecordBatch]:
    """The rows of ``query`` read by ADBC's PostgreSQL driver (libpq), in this process."""
    import adbc_driver_postgresql.dbapi as driver

    compiled = query.compile(dialect=type(engine.dialect)(paramstyle="numeric_dollar"))
    uri = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with driver.connect(uri) as connection, connection.cursor() as cursor:
        cursor.execute(str(compiled), _parameters(compiled, engine.dialect))
        yield from cursor.fetch_record_batch()


def _sqlalchemy_batches(engine: Engine, query: sa.Select) -> Iterator[pa.RecordBatch]:
    """The rows of ``query`` read through SQLAlchemy, as Arrow record batches."""
    with engine.connect() as connection:
        result = connection.execution_options(yield_per=_BATCH_ROWS).execute(query)
        names = list(result.keys())
        for rows in result.partitions():
            yield pa.RecordBatch.from_arrays([pa.array(column) for column in zip(*rows)], names=names)


def _adbc(engine: Engine) -> str | None:
    """The ADBC driver that can read the data mart: ``"sqlite"`` (a SQLite file) or ``"postgresql"``; None when
    none can (an in-memory SQLite database, another kind of database)."""
    if engine.dialect.name == "sqlite" and sqlite_file(engine) is not None:
        return "sqlite"
    return "postgresql" if engine.dialect.name == "postgresql" else None


def _plan(engine: Engine, feedback: bool, deployment_id: str, start, end, halves: bool) -> tuple[str | None, list]:
    """How to read the window: the ADBC driver (None: SQLAlchemy, see :func:`_adbc`) and the bounds of the window,
    or (``halves``) of its two halves (in records), each then read on a core of its own (see :data:`_ARROW_ROWS`)."""
    adbc = _adbc(engine)
    if adbc is None:
        return None, [(start, end)]
    table, time_column = record_table(feedback)
    times = in_window(sa.select(table.c[time_column]), table, time_column, deployment_id, start, end)
    with engine.connect() as connection:
        count = connection.execute(sa.select(sa.func.count()).select_from(times.subquery())).scalar()
        if count <= _SPLIT_ROWS or not halves:
            return (adbc if count > _ARROW_ROWS else None), [(start, end)]
        middle = connection.execute(times.order_by(table.c[time_column]).offset(count // 2).limit(1)).scalar()
    middle = as_utc(middle)
    return adbc, [(start, middle), (middle, end)]


def _categories(name: str) -> list[str] | None:
    """The contract's domain of a window column read as category codes (None: the column is no category)."""
    return list(CATEGORIES.get(name, CLASS_ORDER)) if name in CATEGORIES or name in (LABEL, "prediction") else None


def _kinds(names: list[str]) -> list:
    """How to type each column of a window's query (:func:`arrow_reader.typed_batch`): the packed inputs unpacked,
    categories as codes of the contract's domains, flags as booleans, probabilities as floats."""
    tail = [_categories(name) or ("float" if name in _PROBABILITIES else "bool") for name in names]
    return [{"packed": unpacking()}, *tail]


def _unpacked_kinds() -> list:
    """How to type the typed columns of the records without a packed row (:func:`_unpacked_queries`)."""
    return [*(_categories(name) or "int" for name in FEATURES), "bool"]


def _table(readers: list[_Child | _InProcess]) -> pa.Table:
    """What the readers read, in order, in one Arrow table (no columns when they read no record)."""
    with ThreadPoolExecutor(len(readers)) as pool:  # the drivers and the typing let go of the GIL
        batches = [batch for part in pool.map(lambda reader: reader.batches(), readers) for batch in part]
    batches = [batch for batch in batches if batch.num_rows]
    return pa.Table.from_batches(batches) if batches else pa.table({})


class WindowRead:
    """The read of a window's records (see :func:`read_window`), begun when it is made: a large window of a SQLite
    data mart is read by child processes, which work on the other cores while this process does something else.
    :meth:`result` waits for the records; :meth:`close` (or the end of a ``with`` block) stops the readers whose
    records are no longer wanted and removes what they wrote.

    ``halves=False`` reads a large window with one reader rather than two at once, which leaves a core to a caller
    that works meanwhile. ``typed=False`` reads the columns as the database gives them (:meth:`table` only): the
    monitoring benchmark's reference, the cost of reading the window from the store alone.
    """

    def __init__(
        self, engine: Engine, deployment_id: str, start=None, end=None, *, feedback=False, halves=True, typed=True
    ):
        start, end = as_utc_or_none(start), as_utc_or_none(end)
        catch_up(engine)  # the payload journal's records first: the child processes read the file itself
        self.engine, self.feedback = engine, feedback
        self._names = _window_query(feedback, deployment_id, start, end)[1]
        self._unpacked = _unpacked_queries(feedback, deployment_id, start, end)
        kinds = _kinds(self._names) if typed else None
        self._adbc, bounds = _plan(engine, feedback, deployment_id, start, end, halves)
        self._folder = tempfile.TemporaryDirectory(prefix="window-") if self._adbc == "sqlite" else None
        self._readers: list[_Child | _InProcess] = []
        try:
            for number, (first, last) in enumerate(bounds):
                query = _window_query(feedback, deployment_id, first, last)[0]
                self._readers.append(self._reader(query, kinds, str(number), self._adbc))
        except BaseException:
            self.close()
            raise

    def _reader(self, query: sa.Select, kinds: list | None, name: str, adbc: str | None) -> _Child | _InProcess:
        """A reader of ``query`` through ``adbc`` (see :func:`_adbc`; None: SQLAlchemy), begun at once."""
        if adbc == "sqlite":
            return _Child(self.engine, query, kinds, os.path.join(self._folder.name, f"{name}.arrow"))
        return _InProcess(self.engine, query, kinds, adbc=adbc == "postgresql")

    def __enter__(self) -> WindowRead:
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def close(self) -> None:
        """Stop the readers still running, and remove what they wrote."""
        for reader in self._readers:
            reader.stop()
        if self._folder is not None:
            self._folder.cleanup()

    def table(self) -> pa.Table:
        """The window's columns in one Arrow table (no columns when it holds no record), once they are read."""
        return _table(self._readers)

    def result(self) -> pd.DataFrame:
        """The window's records (see :func:`read_window`), once they are read."""
        table = self.table()
        if not table.num_columns:
            return empty_window(feedback=self.feedback)
        names = [*FEATURES, _PACKED, *self._names]  # the tail as the frame names it (``label``: ``Risk``)
        columns = {name: _array(column) for name, column in zip(names, table.columns, strict=True)}
        packed = columns.pop(_PACKED)
        if not packed.all():
            self._fill(columns, np.flatnonzero(~packed))
        frame = {}
        for name, values in columns.items():
            categories = _categories(name)
            frame[name] = values if categories is None else pd.Categorical.from_codes(values, categories=categories)
        if "logged_probability_risk" in frame:
            frame["logged_probability_risk"][frame["logged_probability_risk"] == _NO_PROBABILITY] = np.nan
        return pd.DataFrame(frame, copy=False)  # the arrays are the frame's own: not copied into blocks again

    def _fill(self, columns: dict, rows: np.ndarray) -> None:
        """Set the inputs of the records at ``rows``, which have no packed row, in place: from their typed columns,
        read as the window is (through ADBC when they are many), then from their JSON where they have it."""
        typed_query, json_query = self._unpacked
        adbc = self._adbc if len(rows) > _ARROW_ROWS else None  # a few records: no child process
        reader = self._reader(typed_query, _unpacked_kinds(), "unpacked", adbc)
        try:
            table = _table([reader])
        finally:
            reader.stop()
        if table.num_rows != len(rows):
            raise RuntimeError("the window's records changed while it was read: read it again")
        found = {name: _array(column) for name, column in zip([*FEATURES, "as_json"], table.columns, strict=True)}
        as_json = found.pop("as_json")
        for name, values in found.items():
            columns[name][rows] = values
        if as_json.any():
            _fill_json(self.engine, json_query, columns, rows[as_json])


def _array(column: pa.ChunkedArray) -> np.ndarray:
    """A column's values in one numpy array of its own (writable, not a view of Arrow's memory)."""
    return np.concatenate([chunk.to_numpy(zero_copy_only=False) for chunk in column.chunks])


def read_window_columns(engine: Engine, deployment_id: str, start=None, end=None, *, feedback=False) -> pa.Table:
    """The columns :func:`read_window` reads, as the database gives them (in halves at once when it does), in one
    Arrow table: the cost of reading a window from the store alone (the monitoring benchmark's reference)."""
    with WindowRead(engine, deployment_id, start, end, feedback=feedback, typed=False) as read:
        return read.table()


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


def read_window(engine: Engine, deployment_id: str, start=None, end=None, *, feedback: bool = False) -> pd.DataFrame:
    """The payload (or ``feedback``) records of a window, fast: one column per feature (categories as pandas
    categoricals of the contract's domains, numbers as integers), then ``prediction``, ``probability_risk`` and
    ``out_of_range`` (payload: whether a field lies outside the training data's ranges) or ``Risk`` and
    ``logged_probability_risk`` (feedback: the probability logged for the transaction it names, NaN when it names
    none), in the order of the records' time. ``start`` is inclusive and ``end`` exclusive.

    To do something else while a large window is read, make a :class:`WindowRead` and ask for its result later.
    """
    with WindowRead(engine, deployment_id, start, end, feedback=feedback) as read:
        return read.result()
