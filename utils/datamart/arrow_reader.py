"""Run one query of a SQLite data mart through ADBC, and write its rows to a file as typed Arrow columns.

:func:`utils.datamart.columnar.read_window` runs this in a process of its own: the ADBC driver carries its own copy
of SQLite, and two copies of SQLite must never open the same file in one process (closing one copy's file drops the
POSIX locks the other holds, and its last connection may then checkpoint and delete the write-ahead log under the
other: SQLite's "multiple copies" hazard). In a process of its own it is one more reader, as SQLite expects, and it
works on a core of its own while its parent does something else: the monitors import their libraries meanwhile.

It is not a command line: the child runs :func:`main`, which reads its request on standard input as JSON:
``path``, ``sql`` (``?`` parameters), ``parameters``, ``batch_rows``, ``output`` (the Arrow IPC file to write) and
``kinds`` (how to type each column, see :func:`typed_batch`; None: as the driver gives them). It imports only
pyarrow and ADBC's driver manager (not its DB-API layer, which brings in pandas): it starts in a fifth of a second.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

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


def typed_schema(names: Sequence[str], kinds: Sequence) -> pa.Schema:
    """The schema of the batches :func:`typed_batch` makes."""
    return pa.schema([(name, TYPES[kind] if isinstance(kind, str) else CODE) for name, kind in zip(names, kinds)])


def typed_batch(batch: pa.RecordBatch, kinds: Sequence) -> pa.RecordBatch:
    """A batch's columns typed by ``kinds``, one per column: a list of categories (each value becomes its index in
    them, -1 for none of them, as 8-bit integers), or ``"bool"``, ``"float"``, ``"int"``."""
    columns = [_typed(batch.column(i), kind) for i, kind in enumerate(kinds)]
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
