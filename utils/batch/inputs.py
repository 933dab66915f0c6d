"""Reading a job's input in chunks: a CSV file as text records (a quoted record is never split; a quote left
open costs its own line only), Parquet as frames."""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from utils.batch.spec import BatchJobError, is_parquet

#: Line ends stripped from a CSV record; the encoding of every CSV file a job reads and writes.
EOL = "\r\n"
ENCODING = "utf-8"


@dataclass
class Chunk:
    """Consecutive input rows: CSV records (each with its line end) or, for Parquet, a DataFrame."""

    index: int
    first_row: int
    records: list[str] | None = None
    counts: list[int] | None = None  # fields per record, when a quote made the csv module read them
    frame: pd.DataFrame | None = None

    @property
    def size(self) -> int:
        return len(self.records) if self.records is not None else len(self.frame)


class CsvInput:
    """A CSV file read as text records, ``chunk_rows`` lines at a time (a quoted record is never split)."""

    def __init__(self, path: Path):
        self.path = path
        with self._open() as handle:
            header = handle.readline()
        if not header.strip():
            raise BatchJobError(f"{path}: the file is empty")
        self.header = header if header.endswith("\n") else header + "\n"
        self.columns = tuple(next(csv.reader([header], skipinitialspace=True)))

    def _open(self):
        # utf-8-sig drops a byte order mark; surrogateescape carries any non-UTF-8 byte through unchanged.
        return open(self.path, encoding="utf-8-sig", errors="surrogateescape", newline="")

    def count_rows(self) -> int:
        """Lines after the header: the number of records, or more when fields hold line ends."""
        lines, last = 0, b"\n"
        with open(self.path, "rb") as handle:
            while block := handle.read(1 << 24):
                lines += block.count(b"\n")
                last = block[-1:]
        return max(lines + (last != b"\n") - 1, 0)

    def chunks(self, chunk_rows: int) -> Iterator[Chunk]:
        width = len(self.columns)
        with self._open() as handle:
            handle.readline()
            index = first_row = 0
            while lines := list(itertools.islice(handle, chunk_rows)):
                if any('"' in line for line in lines):  # quoted fields may hold commas and line ends
                    found, counts = _quoted_records(lines, handle, chunk_rows, width)
                    kept = [i for i, record in enumerate(found) if not record.isspace()]
                    found, counts = [found[i] for i in kept], [counts[i] for i in kept]
                else:
                    found, counts = [line for line in lines if not line.isspace()], None
                yield Chunk(index, first_row, records=found, counts=counts)  # blank lines skipped, as pandas does
                index += 1
                first_row += len(found)


#: Field count of a line whose quote is not closed on it (and does not open a well-formed multi-line record).
UNCLOSED = -1


def _quoted_records(lines: list[str], more: Iterator[str], limit: int, width: int) -> tuple[list[str], list[int]]:
    """The records in ``lines`` and their numbers of fields, as the csv module reads them.

    A record still open at the end of ``lines`` goes on into ``more``, for at most ``limit`` lines in all.
    A record spanning lines is kept only when it is well-formed: strict CSV, ``width`` fields. Otherwise
    the quote that opened it is broken: its first line alone becomes a record of :data:`UNCLOSED` fields and
    reading starts again on the next line, so that a broken quote costs one line, never the lines after it.
    """
    buffer, extra = list(lines), itertools.islice(more, limit)
    found: list[str] = []
    counts: list[int] = []
    start = 0
    while start < len(buffer):
        start = _read_records(buffer, start, extra, width, found, counts)
    return found, counts


def _read_records(buffer: list[str], start: int, extra: Iterator[str], width: int, found: list, counts: list) -> int:
    """Append the records from ``buffer[start:]`` to ``found`` and ``counts`` until the buffer ends or a quote is
    broken; returns where to read on. A record open at the buffer's end takes more lines from ``extra``."""
    state = {"next": start, "record": start, "starved": False}

    def feed() -> Iterator[str]:
        while True:
            line = state["next"]
            if line == len(buffer):
                if line == state["record"]:  # between records: the chunk ends here
                    return
                more = next(extra, None)
                if more is None:
                    state["starved"] = True  # the open record can never close
                    return
                buffer.append(more)
            state["next"] = line + 1
            yield buffer[line]

    try:
        for fields in csv.reader(feed(), skipinitialspace=True):
            first, end = state["record"], state["next"]
            whole = not state["starved"] and (end - first == 1 or _well_formed(buffer[first:end], width))
            if not whole:
                break
            found.append(buffer[first] if end - first == 1 else "".join(buffer[first:end]))
            counts.append(len(fields))
            state["record"] = end
        else:
            if state["record"] == len(buffer):
                return state["record"]
    except csv.Error:  # e.g. a field larger than the csv module takes: a quote left open over many lines
        pass
    found.append(buffer[state["record"]])
    counts.append(UNCLOSED)
    return state["record"] + 1


def _well_formed(lines: list[str], width: int) -> bool:
    """Whether lines make one strict CSV record of ``width`` fields (each quoted field closed before a comma), and
    not rows of their own: a first line of ``width`` fields with its quotes taken as text, and a last line of
    ``width`` fields by itself, are two rows joined by a stray quote in each."""
    try:
        rows = list(csv.reader(lines, skipinitialspace=True, strict=True))
    except csv.Error:
        return False
    if len(rows) != 1 or len(rows[0]) != width:
        return False
    first = next(csv.reader(lines[:1], quoting=csv.QUOTE_NONE, skipinitialspace=True), [])
    last = next(csv.reader(lines[-1:], skipinitialspace=True), [])
    return not (len(first) == width and len(last) == width)


def not_utf8(record: str, columns: tuple[str, ...]) -> dict[str, bytes]:
    """The fields of a well-formed CSV record that hold bytes that are not UTF-8 (read as surrogates), by column."""
    try:
        record.encode(ENCODING)
        return {}
    except UnicodeEncodeError:
        pass
    fields = next(csv.reader(record.splitlines(keepends=True), skipinitialspace=True), [])
    return {
        name: raw
        for name, field in zip(columns, fields)
        if (raw := field.encode(ENCODING, "surrogateescape")) != field.encode(ENCODING, "replace")
    }


class ParquetInput:
    """A Parquet file read ``chunk_rows`` rows at a time, as DataFrames."""

    def __init__(self, path: Path):
        self.path = path
        self.file = pq.ParquetFile(path)
        self.header = ""
        self.columns = tuple(self.file.schema_arrow.names)

    def count_rows(self) -> int:
        return self.file.metadata.num_rows

    def chunks(self, chunk_rows: int) -> Iterator[Chunk]:
        pending: list[pd.DataFrame] = []
        size = index = first_row = 0
        for batch in self.file.iter_batches(batch_size=chunk_rows):
            pending.append(batch.to_pandas())
            size += batch.num_rows
            while size >= chunk_rows:  # batches may end at row group boundaries: re-cut them
                frame = pd.concat(pending, ignore_index=True)
                yield Chunk(index, first_row, frame=frame.iloc[:chunk_rows].reset_index(drop=True))
                rest = frame.iloc[chunk_rows:].reset_index(drop=True)
                pending, size = ([rest] if len(rest) else []), len(rest)
                index, first_row = index + 1, first_row + chunk_rows
        if size:
            yield Chunk(index, first_row, frame=pd.concat(pending, ignore_index=True))


def open_input(path: Path) -> CsvInput | ParquetInput:
    """The input file, Parquet or CSV by its suffix.

    Raises:
        BatchJobError: it cannot be read, or it is an empty CSV file.
    """
    try:
        return ParquetInput(path) if is_parquet(path) else CsvInput(path)
    except (OSError, ValueError, csv.Error) as error:
        raise BatchJobError(f"{path}: cannot be read ({error})") from error


def fingerprint(path: Path) -> str:
    """The file's size and modification time: a resumed job refuses an input that changed."""
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"
