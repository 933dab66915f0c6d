"""A job's folder of part files, two per chunk (output rows, rejected rows), and their joining into the job's files.

A part is written to a temporary name and renamed; a joined file is written next to its target under a
temporary name (``.<name>.<job id>.tmp``), flushed to disk and renamed, so that no reader sees half a file.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from utils.batch.chunks import ChunkLayout
from utils.batch.inputs import ENCODING, EOL, ParquetInput, open_input
from utils.batch.spec import OUTPUT_COLUMNS, REJECT_COLUMNS, BatchJobError
from utils.data import FEATURES, NUMERIC_RANGES

#: The kinds of part: a chunk's output rows and its rejected rows.
OUTPUT, REJECTS = "out", "rej"


def output_schema(input_path: Path) -> pa.Schema:
    """The Parquet output's schema: the input's columns and types, the features as int64 and text, the added ones."""
    source = open_input(input_path)
    if isinstance(source, ParquetInput):
        fields = {f.name: f.type for f in source.file.schema_arrow}
    else:
        fields = {name: pa.string() for name in source.columns}
    for name in FEATURES:
        fields[name] = pa.int64() if name in NUMERIC_RANGES else pa.string()
    fields |= {
        "prediction": pa.string(),
        "probability_no_risk": pa.float64(),
        "probability_risk": pa.float64(),
        "transaction_id": pa.string(),
        "out_of_range": pa.string(),
    }
    return pa.schema(list(fields.items()))


def _header(layout: ChunkLayout, added: tuple[str, ...]) -> bytes:
    """A CSV file's header: the input's header line (or its columns), then the columns the job adds."""
    if layout.header:
        text = f"{layout.header.rstrip(EOL)},{','.join(added)}\n"
    else:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow([*layout.columns, *added])
        text = buffer.getvalue()
    return text.encode(ENCODING, "surrogateescape")


def _append(path: Path, target: int) -> None:
    """Append a file to the open file ``target``, inside the kernel where it can (``copy_file_range``)."""
    with open(path, "rb") as part:
        size, copied = os.fstat(part.fileno()).st_size, 0
        try:
            while copied < size:
                done = os.copy_file_range(part.fileno(), target, size - copied)
                if not done:
                    break
                copied += done
        except (AttributeError, OSError):  # not on this system or between these file systems
            pass
        if copied < size:
            part.seek(copied)
            while block := memoryview(part.read(1 << 22)):
                while block:
                    block = block[os.write(target, block) :]


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every system can open a folder
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


class JobFolder:
    """The part files of one job, in ``path``; ``input_path`` is the job's input (for the Parquet schema)."""

    def __init__(self, path: Path, job_id: str, input_path: Path):
        self.path = path
        self.job_id = job_id
        self.input_path = input_path

    def part(self, index: int, kind: str) -> Path:
        return self.path / f"{index:08d}.{kind}"

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    @functools.cached_property
    def schema(self) -> pa.Schema:
        return output_schema(self.input_path)

    def intact(self, chunk) -> bool:
        """Whether a committed chunk's two parts are there, of the sizes its commit recorded."""
        for kind, size in ((OUTPUT, chunk.output_bytes), (REJECTS, chunk.rejects_bytes)):
            part = self.part(chunk.chunk_index, kind)
            if not part.is_file() or part.stat().st_size != size:
                return False
        return True

    def check(self, chunks: pd.DataFrame) -> None:
        """Refuse to join when a committed chunk's parts are missing or damaged."""
        for chunk in chunks.itertuples():
            if not self.intact(chunk):
                raise BatchJobError(f"the parts of chunk {chunk.chunk_index} in {self.path} are missing or damaged")

    def write(self, index: int, kind: str, data: bytes | pd.DataFrame) -> int:
        """Write a part (bytes, or a DataFrame as Parquet) through a temporary file; its size in bytes."""
        path = self.part(index, kind)
        partial = path.with_name(path.name + ".tmp")
        if isinstance(data, pd.DataFrame):
            table = pa.Table.from_pandas(data, schema=self.schema, preserve_index=False)
            pq.write_table(table.replace_schema_metadata(None), partial)
        else:
            partial.write_bytes(data)
        os.replace(partial, path)
        return path.stat().st_size

    def join_rejects(self, target: Path, indices: Iterable[int], layout: ChunkLayout) -> None:
        """Join the chunks' rejects parts, in order, into the rejects file (always CSV)."""
        self._join(target, indices, REJECTS, _header(layout, REJECT_COLUMNS))

    def join_output(self, target: Path, indices: Iterable[int], layout: ChunkLayout) -> None:
        """Join the chunks' output parts, in order, into the output file: CSV, or Parquet with one writer."""
        if not layout.parquet_output:
            self._join(target, indices, OUTPUT, _header(layout, OUTPUT_COLUMNS))
            return

        def write(partial: Path, parts: list[Path]) -> None:
            with pq.ParquetWriter(partial, self.schema) as writer:
                for part in parts:
                    writer.write_table(pq.read_table(part))

        self._join(target, indices, OUTPUT, b"", write)

    def _join(self, target: Path, indices: Iterable[int], kind: str, header: bytes, write: Callable | None = None):
        """Join the parts into ``target`` through a temporary file, renamed when complete."""
        parts = [self.part(index, kind) for index in indices]
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{self.job_id}.tmp")
        try:
            if write is not None:
                write(partial, parts)
            else:
                with open(partial, "wb") as joined:
                    joined.write(header)
                    joined.flush()
                    for path in parts:
                        _append(path, joined.fileno())
                    os.fsync(joined.fileno())
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        _fsync_folder(target.parent)
