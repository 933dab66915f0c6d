"""Reading a job's input in chunks: a CSV file as the bytes of its records (a quoted record is never split; a
quote left open costs its own line only), Parquet as frames.

A CSV chunk is cut by lines with numpy. Without a quote (the common case) its records are its non-blank lines,
found without a Python string per line; a chunk with a quote is read record by record with the csv module, so
that a broken quote spoils its own line and nothing after it.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from utils.batch.spec import BatchJobError, is_parquet

#: Line ends stripped from a CSV record; the encoding of every CSV file a job reads and writes.
EOL = "\r\n"
ENCODING = "utf-8"
_NEWLINE, _RETURN = 10, 13  # b"\n", b"\r"
_BLANK_START = np.frombuffer(b" \t\r\n\x0b\x0c", np.uint8)  # the bytes a blank line can begin with


@dataclass
class Chunk:
    """Consecutive input rows: for CSV the bytes of its records (each with its line end) and where each one
    starts; for Parquet a DataFrame."""

    index: int
    first_row: int
    data: bytes | None = None
    offsets: np.ndarray | None = None  # record i is data[offsets[i]:offsets[i + 1]]
    counts: list[int] | None = None  # fields per record, when a quote made the csv module read them
    frame: pd.DataFrame | None = None

    @property
    def size(self) -> int:
        return len(self.offsets) - 1 if self.offsets is not None else len(self.frame)

    def record(self, position: int) -> bytes:
        """A CSV record's bytes, with its line end."""
        return self.data[self.offsets[position] : self.offsets[position + 1]]

    def text(self, position: int) -> str:
        """A CSV record as text, without its line end (bytes that are not UTF-8 kept as surrogates)."""
        return self.record(position).decode(ENCODING, "surrogateescape").rstrip(EOL)


def _packed(records: list[bytes]) -> tuple[bytes, np.ndarray]:
    """Records joined into one bytes object, and where each starts (and the last ends)."""
    offsets = np.zeros(len(records) + 1, dtype=np.int64)
    np.cumsum([len(record) for record in records], out=offsets[1:])
    return b"".join(records), offsets


class _Lines:
    """A binary file's lines (each keeping its end), taken ``n`` at a time as one bytes object."""

    BLOCK = 1 << 22

    def __init__(self, handle):
        self.handle = handle
        self.pending = b""
        self.end = False

    def _read(self) -> None:
        more = self.handle.read(self.BLOCK)
        self.end = not more
        self.pending += more

    def _line_ends(self) -> np.ndarray:
        """Where the lines in the buffer end: at each ``\\n``, and at each ``\\r`` not followed by one (as Python
        reads text), the last byte only at the end of the file."""
        view = np.frombuffer(self.pending, np.uint8)
        if b"\r" not in self.pending:
            return np.flatnonzero(view == _NEWLINE)
        lone = view == _RETURN
        lone[:-1] &= view[1:] != _NEWLINE
        lone[-1] &= self.end
        return np.flatnonzero((view == _NEWLINE) | lone)

    def take(self, n: int) -> bytes:
        parts = []
        while n > 0:
            if not self.end and len(self.pending) < self.BLOCK:
                self._read()
            if not self.pending:
                break
            ends = self._line_ends()
            if len(ends) >= n:
                cut, n = int(ends[n - 1]) + 1, 0
            elif self.end:  # fewer lines than asked for are left: all of them
                cut, n = len(self.pending), 0
            elif not len(ends):  # a line longer than the buffer
                self._read()
                continue
            else:
                cut, n = int(ends[-1]) + 1, n - len(ends)
            parts.append(self.pending[:cut])
            self.pending = self.pending[cut:]
        return b"".join(parts)

    def texts(self) -> Iterator[str]:
        """The following lines one at a time, as text."""
        while line := self.take(1):
            yield line.decode(ENCODING, "surrogateescape")


def _plain_records(block: bytes) -> tuple[bytes, np.ndarray]:
    """A block without quotes or lone carriage returns: its non-blank lines, as bytes and where each starts."""
    view = np.frombuffer(block, np.uint8)
    ends = np.flatnonzero(view == _NEWLINE) + 1
    if not len(ends) or ends[-1] != len(block):
        ends = np.append(ends, len(block))
    offsets = np.concatenate(([0], ends)).astype(np.int64)
    maybe_blank = np.flatnonzero(np.isin(view[offsets[:-1]], _BLANK_START))  # blank lines begin with a space
    blank = [p for p in maybe_blank.tolist() if block[offsets[p] : offsets[p + 1]].isspace()]
    if not blank:
        return block, offsets
    kept = np.setdiff1d(np.arange(len(offsets) - 1), blank)
    return _packed([block[offsets[p] : offsets[p + 1]] for p in kept.tolist()])


def _has_lone_cr(block: bytes) -> bool:
    return block.count(b"\r") != block.count(b"\r\n")


class CsvInput:
    """A CSV file read as the bytes of its records, ``chunk_rows`` lines at a time (a quoted record is never
    split)."""

    def __init__(self, path: Path):
        self.path = path
        with self._open() as handle:
            header = handle.readline()
        if not header.strip():
            raise BatchJobError(f"{path}: the file is empty")
        with open(path, "rb") as handle:
            mark = len(_BOM) if handle.read(len(_BOM)) == _BOM else 0
        self.start = mark + len(header.encode(ENCODING, "surrogateescape"))  # where the first record begins
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
        with open(self.path, "rb") as handle:
            handle.seek(self.start)
            lines = _Lines(handle)
            index = first_row = 0
            while block := lines.take(chunk_rows):
                counts = None
                if b'"' not in block and not _has_lone_cr(block):
                    data, offsets = _plain_records(block)
                else:  # read by the csv module: quoted fields may hold commas and line ends
                    found, counts = _text_records(block, lines, chunk_rows, width)
                    data, offsets = _packed([record.encode(ENCODING, "surrogateescape") for record in found])
                yield Chunk(index, first_row, data=data, offsets=offsets, counts=counts)  # blank lines skipped
                index += 1
                first_row += len(offsets) - 1


_BOM = b"\xef\xbb\xbf"


def _text_records(block: bytes, lines: _Lines, limit: int, width: int) -> tuple[list[str], list[int] | None]:
    """The non-blank records of a block read as text, and their numbers of fields when it holds a quote."""
    text = list(io.StringIO(block.decode(ENCODING, "surrogateescape"), newline=""))
    if not any('"' in line for line in text):
        return [line for line in text if not line.isspace()], None
    found, counts = _quoted_records(text, lines.texts(), limit, width)
    kept = [i for i, record in enumerate(found) if not record.isspace()]
    return [found[i] for i in kept], [counts[i] for i in kept]


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
