"""Run one query of a SQLite data mart through ADBC, and write its rows to a file as typed Arrow columns.

:func:`utils.datamart.columnar.read_window` runs this in a process of its own: the ADBC driver carries its own copy
of SQLite, and two copies of SQLite must never open the same file in one process (closing one copy's file drops the
POSIX locks the other holds, and its last connection may then checkpoint and delete the write-ahead log under the
other: SQLite's "multiple copies" hazard). In a process of its own it is one more reader, as SQLite expects, and it
works on a core of its own while its parent does something else: the monitors import their libraries meanwhile.

It is not a command line: the child runs :func:`main`, which reads its request on standard input as JSON:
``path``, ``sql`` (``?`` parameters), ``parameters``, ``batch_rows``, ``output`` (the Arrow IPC file to write) and
``kinds`` (how to type each column, see :func:`typed_batch`; None: as the driver gives them). It imports only
pyarrow (and numpy, which pyarrow loads anyway) and ADBC's driver manager (not its DB-API layer, which brings in
pandas): it starts in a fifth of a second.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: The Arrow type of each kind of column that is no category (a category becomes its code, :data:`CODE`).
TYPES = {"bool": pa.bool_(), "float": pa.float64(), "int": pa.int64()}
#: A category's code: its index in the column's categories, -1 for none of them.
CODE = pa.int8()


def _typed(column: pa.Array, kind: str | Sequence[str]) -> pa.Array:
    if isinstance(kind, str):  # a whole number as numpy's astype would make it (the columns hold no NULL)
        return pc.cast(column, TYPES[kind], safe=False)
    found = pc.index_in(column, value_set=pa.array(kind, type=column.type))
    return pc.cast(found.fill_null(-1), CODE)


def _row_type(kind: Mapping) -> np.dtype:
    """The numpy structured type of a column of packed rows (kind ``{"packed": [[name, numpy type], ...]}``)."""
    return np.dtype([(name, code) for name, code in kind["packed"]])


def _row_fields(row: np.dtype) -> list[pa.Field]:
    """The typed columns of a packed row's fields: a byte is a category's code, a wider field a 64-bit integer."""
    return [pa.field(name, CODE if row.fields[name][0].itemsize == 1 else TYPES["int"]) for name in row.names]


def _unpacked(column: pa.Array, row: np.dtype) -> list[pa.Array]:
    """A column of packed rows, each of ``row``'s bytes or empty (none), as one column per field (see
    :func:`_row_fields`; -1 for a code, 0 for a number where the row is empty), then whether each row was packed."""
    packed = pc.not_equal(pc.binary_length(column).fill_null(0), 0)
    rows = column if pc.all(packed).as_py() else column.filter(packed)
    try:
        rows = rows.cast(pa.binary(row.itemsize))
    except pa.ArrowInvalid as error:
        raise ValueError(f"a stored packed row is not {row.itemsize} bytes long, as this code packs them") from error
    values = np.frombuffer(rows.buffers()[1], row, count=len(rows), offset=rows.offset * row.itemsize)
    where = slice(None) if len(rows) == len(column) else packed.to_numpy(zero_copy_only=False)
    fields = []
    for field in _row_fields(row):
        array = np.full(len(column), -1 if field.type == CODE else 0, field.type.to_pandas_dtype())
        array[where] = values[field.name]
        fields.append(pa.array(array))
    return [*fields, packed]


def _fields(name: str, kind) -> list[pa.Field]:
    """The typed columns :func:`typed_batch` makes of the column ``name`` of that kind."""
    if isinstance(kind, Mapping):  # the fields of packed rows, then whether each row was packed
        return [*_row_fields(_row_type(kind)), pa.field(name, pa.bool_())]
    return [pa.field(name, TYPES[kind] if isinstance(kind, str) else CODE)]


def typed_schema(names: Sequence[str], kinds: Sequence) -> pa.Schema:
    """The schema of the batches :func:`typed_batch` makes."""
    return pa.schema([field for name, kind in zip(names, kinds) for field in _fields(name, kind)])


def typed_batch(batch: pa.RecordBatch, kinds: Sequence) -> pa.RecordBatch:
    """A batch's columns typed by ``kinds``, one per column: a list of categories (each value becomes its index in
    them, -1 for none of them, as 8-bit integers), ``"bool"``, ``"float"``, ``"int"``, or ``{"packed": fields}``
    (a column of packed rows, see :mod:`utils.datamart.packed`: it becomes one column per field, named and typed by
    ``fields``, each ``[name, numpy type]``, then whether the row was packed, under the column's name)."""
    columns = []
    for i, kind in enumerate(kinds):
        if isinstance(kind, Mapping):
            columns += _unpacked(batch.column(i), _row_type(kind))
        else:
            columns.append(_typed(batch.column(i), kind))
    return pa.RecordBatch.from_arrays(columns, schema=typed_schema(batch.schema.names, kinds))


def _write(statement, output: str, kinds: Sequence | None) -> None:
    """Run the statement and write its rows to the Arrow file ``output``: every batch is released on return, before
    the statement, the connection and the database are closed (a batch outliving its driver would crash)."""
    stream, _ = statement.execute_query()
    with pa.RecordBatchReader.from_stream(stream) as reader:
        schema = reader.schema if kinds is None else typed_schema(reader.schema.names, kinds)
        with pa.ipc.new_file(output, schema) as writer:
            for batch in reader:
                writer.write_batch(batch if kinds is None else typed_batch(batch, kinds))


def main() -> None:
    import adbc_driver_manager as manager
    import adbc_driver_sqlite

    request = json.load(sys.stdin)
    values = request["parameters"]
    batch_rows = {adbc_driver_sqlite.StatementOptions.BATCH_ROWS.value: str(request["batch_rows"])}
    with (
        adbc_driver_sqlite.connect(request["path"]) as database,
        manager.AdbcConnection(database) as connection,
        manager.AdbcStatement(connection) as statement,
    ):
        statement.set_sql_query(request["sql"])
        statement.set_options(**batch_rows)
        if values:  # one row of parameters, as ADBC's DB-API binds them
            statement.bind(pa.record_batch([[value] for value in values], names=[str(i) for i in range(len(values))]))
        _write(statement, request["output"], request.get("kinds"))
