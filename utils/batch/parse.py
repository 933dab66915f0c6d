"""Parsing a CSV chunk's records into a DataFrame with pyarrow's CSV reader, the records it cannot take set apart:
those with the wrong number of fields (or a quote never closed), and those with bytes that are not UTF-8 in a
column the job reads."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
from pandas._libs.parsers import STR_NA_VALUES

from utils.batch.inputs import ENCODING, UNCLOSED, Chunk, not_utf8
from utils.batch.spec import FAULT_SEPARATOR, BatchJobError
from utils.data import CATEGORIES, FEATURES, NUMERIC_RANGES

#: The values read as null: those of pandas' CSV reader (pyarrow's own list lacks ``None`` and ``<NA>``).
_NULLS = sorted(STR_NA_VALUES)


@dataclass
class Parsed:
    frame: pd.DataFrame  # the well-formed rows, index 0..n-1
    positions: np.ndarray  # each frame row's position in the chunk
    malformed: dict[int, str]  # chunk position -> reason, for records with the wrong number of fields
    unreadable: dict[int, str] = field(default_factory=dict)  # chunk position -> reason, for bytes not UTF-8


def _malformed_reason(count: int, width: int, record: str) -> str:
    problem = (
        "a quote opened on this line is never closed"
        if count == UNCLOSED
        else f"{count} field{'' if count == 1 else 's'} where the header has {width}"
    )
    return f"malformed row: {problem}; the row reads {record!r}"


def malformed(chunk: Chunk, width: int) -> dict[int, str]:
    """The chunk's records the csv module read with a field count other than ``width``, by position, with the
    reason (in a chunk without quotes, pyarrow's parser finds them)."""
    if chunk.counts is None:
        return {}
    return {
        position: _malformed_reason(count, width, chunk.text(position))
        for position, count in enumerate(chunk.counts)
        if count != width
    }


def unreadable(chunk: Chunk, columns: tuple[str, ...], read: tuple[str, ...], positions: list[int]) -> dict[int, str]:
    """The well-formed records among ``positions`` with bytes that are not UTF-8 in one of the ``read`` columns, by
    position, with the reason naming each such column."""
    if not positions or chunk.data.isascii():
        return {}
    try:
        chunk.data.decode(ENCODING)
        return {}
    except UnicodeDecodeError:
        pass
    found = {}
    for position in positions:
        record = chunk.record(position)
        if not record.isascii() and (chunk.counts is not None or record.count(b",") + 1 == len(columns)):
            fields = not_utf8(record.decode(ENCODING, "surrogateescape"), columns)
            faults = [f"{name}: not valid UTF-8, reads {fields[name]!r}" for name in read if name in fields]
            if faults:
                found[position] = FAULT_SEPARATOR.join(faults)
    return found


def _types(columns: list[str], text_numbers: bool) -> dict[str, pa.DataType]:
    """How pyarrow reads each column: categories as dictionaries (pandas ``category``), numbers as int64 (as text
    when a chunk holds something else there), any other column as text."""
    number = pa.string() if text_numbers else pa.int64()
    return {
        name: pa.dictionary(pa.int32(), pa.string())
        if name in CATEGORIES
        else number
        if name in NUMERIC_RANGES
        else pa.string()
        for name in columns
    }


def _read(data: bytes, columns: tuple[str, ...], usecols: list[str]) -> tuple[pd.DataFrame, list[tuple[int, int]]]:
    """The records of ``data`` as a DataFrame of ``usecols``, and the records pyarrow found malformed (position
    and number of fields; none when the field counts were checked first, but pyarrow has the last word)."""
    rejected: list[tuple[int, int]] = []

    def invalid(row) -> str:  # row.number counts from 1
        rejected.append((row.number - 1, row.actual_columns))
        return "skip"

    def table(text_numbers: bool) -> pa.Table:
        rejected.clear()
        return pcsv.read_csv(
            io.BytesIO(data),
            read_options=pcsv.ReadOptions(column_names=list(columns), use_threads=False, block_size=len(data) + 1),
            parse_options=pcsv.ParseOptions(newlines_in_values=True, invalid_row_handler=invalid),
            convert_options=pcsv.ConvertOptions(
                column_types=_types(usecols, text_numbers),
                include_columns=usecols,
                null_values=_NULLS,
                strings_can_be_null=True,
            ),
        )

    try:
        frame = table(text_numbers=False).to_pandas()
    except pa.ArrowInvalid:  # text where a number belongs: read as text, for the contract's check to name
        frame = table(text_numbers=True).to_pandas()
    return _without_initial_spaces(frame), list(rejected)


def _without_initial_spaces(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with the spaces that begin a value dropped, as ``skipinitialspace`` reads CSV (a value that is then
    empty, or another of the null values, is null)."""

    def stripped(series: pd.Series) -> pd.Series:
        text = series.astype(object).str.lstrip(" ")
        return text.mask(text.isin(_NULLS), None)

    changed = {}
    for name, series in frame.items():
        if isinstance(series.dtype, pd.CategoricalDtype):
            if any(isinstance(c, str) and c.startswith(" ") for c in series.cat.categories):
                changed[name] = stripped(series).astype("category")
        elif series.dtype == object and series.str.startswith(" ").any():
            changed[name] = stripped(series)
    return frame.assign(**changed) if changed else frame


def parse(chunk: Chunk, columns: tuple[str, ...], text: bool) -> Parsed:
    """The chunk's rows as a DataFrame (only the features when ``text``: CSV to CSV); records with the wrong
    number of fields, or bytes that are not UTF-8 where the job reads them, are set apart."""
    if chunk.frame is not None:
        return Parsed(chunk.frame, np.arange(len(chunk.frame)), {})
    usecols = list(FEATURES) if text else list(columns)
    found = malformed(chunk, len(columns))
    wanted = np.arange(chunk.size)
    if found:
        wanted = np.setdiff1d(wanted, list(found))
    bad_bytes = unreadable(chunk, columns, FEATURES if text else columns, wanted.tolist())
    if bad_bytes:
        wanted = np.setdiff1d(wanted, list(bad_bytes))
    if not len(wanted):
        return Parsed(pd.DataFrame(columns=usecols), wanted, found, bad_bytes)
    data = chunk.data if len(wanted) == chunk.size else b"".join(chunk.record(p) for p in wanted.tolist())
    frame, rejected = _read(data, columns, usecols)
    for index, count in rejected:  # without quotes, pyarrow's parser finds the records of the wrong width
        found[int(wanted[index])] = _malformed_reason(count, len(columns), chunk.text(int(wanted[index])))
    if rejected:
        wanted = np.delete(wanted, [index for index, _ in rejected])
    if len(frame) != len(wanted):  # never score a row under another's number
        raise BatchJobError(f"chunk {chunk.index}: {len(wanted)} records parsed into {len(frame)} rows")
    return Parsed(frame, wanted, found, bad_bytes)
