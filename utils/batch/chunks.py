"""Scoring one chunk, in the job's process or on a Dask worker: parse, validate, score and render its rows.

A chunk's rows that meet the data contract become output rows (CSV to CSV: the input records unchanged, plus the
fields the job adds, ``out_of_range`` among them: the fields outside the training data's ranges), its other rows
rejects (their input columns, ``input_row`` and every fault in ``reject_reason``), and, when the job logs payload,
its scored rows payload records (flagged like the output rows).
"""

from __future__ import annotations

import csv
import hashlib
import io
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from utils.batch.inputs import ENCODING, EOL, Chunk, CsvInput, ParquetInput
from utils.batch.parse import Parsed, parse
from utils.batch.spec import (
    FAULT_SEPARATOR,
    FIELD_SEPARATOR,
    OUTPUT_COLUMNS,
    REJECT_COLUMNS,
    BatchJobError,
    is_parquet,
)
from utils.contract import contract_faults, faults_by_row, out_of_range
from utils.data import FAVOURABLE, FEATURES, NUMERIC_RANGES, UNFAVOURABLE
from utils.registry import load_trusted
from utils.scoring import InputError, Scorer, records, valid_rows


@dataclass(frozen=True)
class ChunkLayout:
    """What scoring a chunk needs to know of its job; sent to the Dask workers with each chunk."""

    job_id: str
    model_id: str
    deployment_id: str | None
    columns: tuple[str, ...]
    header: str  # the CSV input's header line; "" for Parquet input
    text: bool  # CSV to CSV: output rows are the input records, unchanged, plus the new fields
    parquet_output: bool
    log_payload: bool
    #: The numbers' ranges in the training data (name, low, high), by which scored rows are flagged.
    observed: tuple[tuple[str, int, int], ...] = tuple((name, *bounds) for name, bounds in NUMERIC_RANGES.items())


def chunk_layout(
    source: CsvInput | ParquetInput,
    output: Path,
    *,
    job_id: str,
    model_id: str,
    deployment_id,
    log_payload: bool,
    observed: dict[str, tuple[int, int]] | None = None,
) -> ChunkLayout:
    """The layout of a job's chunks, once its input's columns are checked; ``observed`` are the training data's
    ranges (:func:`utils.contract.observed_ranges`; default :data:`utils.data.NUMERIC_RANGES`).

    Raises:
        BatchJobError: a feature column is missing, a column is named twice or is one the job adds.
    """
    columns = source.columns
    missing = [name for name in FEATURES if name not in columns]
    if missing:
        raise BatchJobError(f"{source.path}: missing column(s) {', '.join(missing)}")
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if repeated:
        raise BatchJobError(f"{source.path}: column(s) named twice: {', '.join(repeated)}")
    clashes = [name for name in (*OUTPUT_COLUMNS, *REJECT_COLUMNS) if name in columns]
    if clashes:
        raise BatchJobError(f"{source.path}: has column(s) {', '.join(clashes)}, which the job adds; rename them")
    parquet_output = is_parquet(output)
    return ChunkLayout(
        job_id=job_id,
        model_id=model_id,
        deployment_id=deployment_id,
        columns=columns,
        header=source.header,
        text=isinstance(source, CsvInput) and not parquet_output,
        parquet_output=parquet_output,
        log_payload=log_payload,
        observed=tuple((name, *bounds) for name, bounds in (observed or NUMERIC_RANGES).items()),
    )


@dataclass
class Scored:
    index: int
    first_row: int
    rows_read: int
    rows_scored: int
    rows_rejected: int
    output: bytes | pd.DataFrame
    rejects: bytes
    payload: list[dict] | None = field(default=None, repr=False)


@dataclass
class _Verdicts:
    """What scoring made of a chunk's parsed rows."""

    good: np.ndarray  # the frame rows the model scored
    positions: np.ndarray  # their positions in the chunk
    rows: np.ndarray  # their record numbers in the input
    labels: np.ndarray
    proba: np.ndarray
    rejected: dict[int, str]  # chunk position -> every fault of the row
    checked: dict[str, np.ndarray] | None  # the scored rows' contract columns, when output or payload need them
    flags: list[list[str] | None]  # per scored row, its fields outside the training data's ranges


def _reason(error: InputError) -> str:
    """A fault as the row's reason: the message of utils.scoring without its row number."""
    return error.message.replace(f" in row {error.row}", "") if error.row is not None else error.message


def _row_faults(rows: pd.DataFrame) -> dict[int, str]:
    """Every fault of each of ``rows`` by the contract's rules, by position among them (rows without a fault are
    left out: values of a type only the row by row check vouches for)."""
    values = {name: rows[name].astype(object).where(rows[name].notna(), None).tolist() for name in FEATURES}
    _, faults = contract_faults(values)
    return {row: FAULT_SEPARATOR.join(f.problem for f in found) for row, found in faults_by_row(faults).items()}


def _numbers_from_text(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with text that reads as a number taken as that number in the numeric columns that hold text."""
    changed = {}
    for name in NUMERIC_RANGES:
        series = frame[name]
        if series.dtype == object:
            numbers = pd.to_numeric(series, errors="coerce")
            changed[name] = series.where(~(series.map(type).eq(str) & numbers.notna()), numbers)
    return frame.assign(**changed) if changed else frame


def _check(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, dict[int, str]]:
    """Validate the rows: the frame as checked, the valid rows' positions, and the others' reasons.

    :func:`utils.scoring.valid_rows` checks every row at once; the faults of the rows it fails are
    named by :func:`utils.scoring.validate_columns`, one row at a time.
    """
    frame = _numbers_from_text(frame)
    valid = valid_rows(frame)
    reasons: dict[int, str] = {}
    failed = np.flatnonzero(~valid)
    if failed.size:
        faults = _row_faults(frame.iloc[failed])
        for i, position in enumerate(failed.tolist()):
            if i in faults:
                reasons[position] = faults[i]
            else:  # a value of a type only the row by row check can vouch for
                valid[position] = True
    return frame, np.flatnonzero(valid), reasons


def _predict(scorer: Scorer, frame: pd.DataFrame, good: np.ndarray, reasons: dict[int, str]):
    """The valid rows the model scored, their labels and probabilities; a row the model cannot encode is rejected."""
    while good.size:
        try:
            return good, *scorer.predict_frame(frame if good.size == len(frame) else frame.iloc[good])
        except InputError as error:  # e.g. a category the model was not trained with
            if error.row is None:
                raise
            reasons[int(good[error.row])] = _reason(error)
            good = np.delete(good, error.row)
    return good, np.empty(0, dtype=str), np.empty((0, 2))


def _checked_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The contract's columns of valid rows as :func:`utils.scoring.validate_columns` gives them: integers as int."""
    return {name: frame[name].to_numpy(dtype=np.int64 if name in NUMERIC_RANGES else object) for name in FEATURES}


def _texts(values: np.ndarray) -> pa.Array:
    """Each float as ``repr`` writes it: Arrow's shortest round-trip text, which is Python's in [1e-4, 1)."""
    texts = pc.cast(pa.array(values, pa.float64()), pa.large_string())
    odd = ~((values >= 1e-4) & (values < 1.0))  # 0, 1, tiny numbers and NaN: Arrow writes them otherwise
    if odd.any():
        texts = pc.replace_with_mask(
            texts, pa.array(odd), pa.array([repr(v) for v in values[odd].tolist()], pa.large_string())
        )
    return texts


def _flag_texts(flags: list[list[str] | None]) -> list[str | None]:
    """Each row's ``out_of_range`` field: the names joined by :data:`FIELD_SEPARATOR`, None when none."""
    return [FIELD_SEPARATOR.join(names) if names else None for names in flags]


def _without_line_ends(chunk: Chunk, positions: np.ndarray) -> pa.Array:
    """The chunk's records at ``positions`` without their line ends, as Arrow binary (read from the chunk's bytes
    without a Python object per record where all of them end alike)."""
    whole = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), chunk.size, [None, pa.py_buffer(chunk.offsets), pa.py_buffer(chunk.data)]
    )
    records = whole if len(positions) == chunk.size else whole.take(pa.array(positions))
    view = np.frombuffer(chunk.data, np.uint8)
    ends = chunk.offsets[positions + 1]
    last, before, third = (view[np.maximum(ends - back, 0)] for back in (1, 2, 3))
    line_end = np.frombuffer(EOL.encode(), np.uint8)
    if (last == ord("\n")).all():
        if not np.isin(before, line_end).any():
            return pc.binary_slice(records, 0, -1)
        if (before == ord("\r")).all() and not np.isin(third, line_end).any():
            return pc.binary_slice(records, 0, -2)
    return pa.array([chunk.record(p).rstrip(EOL.encode()) for p in positions.tolist()], pa.large_binary())


def _scored_lines(
    chunk: Chunk, positions: np.ndarray, labels: np.ndarray, proba: np.ndarray, prefix: str, rows: np.ndarray, flags
) -> bytes:
    """The output records, built by Arrow: each input record (its line end dropped), then the fields the job adds."""
    if not len(positions):
        return b""
    records = _without_line_ends(chunk, positions)
    text = pa.large_string()  # the offsets' width of the records: no copy when the types meet
    ids = pc.binary_join_element_wise(
        pa.scalar(prefix, text), pc.cast(pa.array(rows, pa.int64()), text), pa.scalar("", text)
    )
    flagged = (
        pc.binary_join_element_wise(
            pc.fill_null(pa.array(_flag_texts(flags), text), ""), pa.scalar("\n", text), pa.scalar("", text)
        )
        if any(flags)
        else pa.scalar("\n", text)  # the common case: no field to flag in the chunk
    )
    risk = pa.array((labels == UNFAVOURABLE).astype(np.int8))  # two labels: each made text once
    label_texts = pa.DictionaryArray.from_arrays(risk, pa.array([FAVOURABLE, UNFAVOURABLE], text))
    added = (label_texts.dictionary_decode(), _texts(proba[:, 0]), _texts(proba[:, 1]), ids, flagged)
    joined = pc.binary_join_element_wise(records, *(a.cast(records.type) for a in added), pa.scalar(b",", records.type))
    offsets = np.frombuffer(joined.buffers()[1], np.int64, len(joined) + 1, joined.offset * 8)
    return memoryview(joined.buffers()[2])[offsets[0] : offsets[-1]].tobytes()


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def csv_text(frame: pd.DataFrame) -> str:
    """The frame's rows as CSV records (no header), nulls as empty fields."""
    buffer = io.StringIO()
    values = frame.astype(object).where(frame.notna(), None)
    csv.writer(buffer, lineterminator="\n").writerows(values.itertuples(index=False, name=None))
    return buffer.getvalue()


def _judge(scorer: Scorer, chunk: Chunk, layout: ChunkLayout, parsed: Parsed) -> _Verdicts:
    """Validate and score the parsed rows."""
    frame, good, reasons = _check(parsed.frame)
    good, labels, proba = _predict(scorer, frame, good, reasons)
    positions = parsed.positions[good]
    rejected = {int(parsed.positions[p]): reason for p, reason in reasons.items()} | parsed.malformed
    rejected |= parsed.unreadable
    scored = frame if good.size == len(frame) else frame.iloc[good]
    checked = _checked_columns(scored) if not layout.text or layout.log_payload else None
    flags = out_of_range(scored, {name: (low, high) for name, low, high in layout.observed})
    return _Verdicts(good, positions, positions + chunk.first_row, labels, proba, rejected, checked, flags)


def _output(chunk: Chunk, layout: ChunkLayout, parsed: Parsed, verdicts: _Verdicts) -> bytes | pd.DataFrame:
    """The output rows: CSV bytes, or a DataFrame for Parquet output."""
    prefix, labels, proba = f"{layout.job_id}:", verdicts.labels, verdicts.proba
    if layout.text:
        return _scored_lines(chunk, verdicts.positions, labels, proba, prefix, verdicts.rows, verdicts.flags)
    scored = parsed.frame.iloc[verdicts.good].reset_index(drop=True)
    for name in FEATURES:
        scored[name] = verdicts.checked[name]
    scored["prediction"] = labels
    scored["probability_no_risk"] = proba[:, 0]
    scored["probability_risk"] = proba[:, 1]
    scored["transaction_id"] = [f"{prefix}{row}" for row in verdicts.rows.tolist()]
    scored["out_of_range"] = _flag_texts(verdicts.flags)
    return scored if layout.parquet_output else csv_text(scored).encode(ENCODING, "surrogateescape")


def _rejects(chunk: Chunk, layout: ChunkLayout, parsed: Parsed, rejected: dict[int, str]) -> bytes:
    """The rejected rows as CSV records: their input columns, ``input_row`` and ``reject_reason``."""
    first = chunk.first_row
    if chunk.data is not None:  # CSV input: rejected records as they were read
        empty = "," * (len(layout.columns) - 1)
        rejects = "".join(
            f"{empty if p in parsed.malformed else chunk.text(p)},{first + p},{_quote(reason)}\n"
            for p, reason in sorted(rejected.items())
        )
    else:  # Parquet input: every row is in the frame, at its chunk position
        bad = sorted(rejected)
        kept = parsed.frame.iloc[bad].reset_index(drop=True)
        kept["input_row"] = [first + p for p in bad]
        kept["reject_reason"] = [rejected[p] for p in bad]
        rejects = csv_text(kept)
    return rejects.encode(ENCODING, "surrogateescape")


def _payload(layout: ChunkLayout, verdicts: _Verdicts) -> list[dict]:
    """A payload record for each scored row (without ``scored_at``, which the commit sets)."""
    inputs = records({name: values.tolist() for name, values in verdicts.checked.items()})
    no_risk, risk = verdicts.proba[:, 0].tolist(), verdicts.proba[:, 1].tolist()
    return [
        {
            "transaction_id": f"{layout.job_id}:{row}",
            "deployment_id": layout.deployment_id,
            "model_id": layout.model_id,
            "inputs": inputs,
            "prediction": label,
            "probability_no_risk": a,
            "probability_risk": b,
            "out_of_range": flagged,
        }
        for row, inputs, label, a, b, flagged in zip(
            verdicts.rows.tolist(), inputs, verdicts.labels.tolist(), no_risk, risk, verdicts.flags
        )
    ]


def score_chunk(scorer: Scorer, chunk: Chunk, layout: ChunkLayout, parsed: Parsed | None = None) -> Scored:
    """Validate, score and render one chunk: the output rows, the rejected rows and the payload records."""
    parsed = parsed if parsed is not None else parse(chunk, layout.columns, layout.text)
    verdicts = _judge(scorer, chunk, layout, parsed)
    return Scored(
        index=chunk.index,
        first_row=chunk.first_row,
        rows_read=chunk.size,
        rows_scored=len(verdicts.labels),
        rows_rejected=len(verdicts.rejected),
        output=_output(chunk, layout, parsed, verdicts),
        rejects=_rejects(chunk, layout, parsed, verdicts.rejected),
        payload=_payload(layout, verdicts) if layout.log_payload else None,
    )


_WORKER_SCORERS: dict[str, Scorer] = {}


def score_on_worker(model_bytes: bytes, chunk: Chunk, layout: ChunkLayout) -> Scored:
    """A Dask task: score a chunk with the model sent as skops bytes (loaded once per worker, types checked)."""
    key = hashlib.sha256(model_bytes).hexdigest()
    scorer = _WORKER_SCORERS.get(key)
    if scorer is None:
        with tempfile.TemporaryDirectory(prefix="batch-model-") as folder:
            path = Path(folder) / "model.skops"
            path.write_bytes(model_bytes)
            scorer = Scorer(load_trusted(path, model_id=layout.model_id), layout.model_id)
        _WORKER_SCORERS.clear()
        _WORKER_SCORERS[key] = scorer
    return score_chunk(scorer, chunk, layout)
