"""Run one query of a SQLite data mart through ADBC and write its rows to standard output as an Arrow stream.

:func:`utils.datamart.columnar.read_window` runs this in a process of its own: the ADBC driver carries its own copy
of SQLite, and two copies of SQLite must never open the same file in one process (closing one copy's file drops the
POSIX locks the other holds, and its last connection may then checkpoint and delete the write-ahead log under the
other: SQLite's "multiple copies" hazard). In a process of its own it is one more reader, as SQLite expects.

It is not a command line: the child runs :func:`main`, which reads its request on standard input as JSON:
``path``, ``sql`` (``?`` parameters), ``parameters``, ``batch_rows``.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    import adbc_driver_sqlite.dbapi as driver
    import pyarrow as pa

    request = json.load(sys.stdin)
    with driver.connect(request["path"]) as connection, connection.cursor() as cursor:
        option = driver.adbc_driver_sqlite.StatementOptions.BATCH_ROWS.value
        cursor.adbc_statement.set_options(**{option: str(request["batch_rows"])})
        cursor.execute(request["sql"], request["parameters"])
        reader = cursor.fetch_record_batch()
        with pa.ipc.new_stream(sys.stdout.buffer, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
