"""Faults in a batch job's input and model: each costs only what it spoils, and says what and where."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from utils import batch
from utils.batch import BatchJobError, UnusableModel, create_batch_job, list_jobs, resume_batch_job, run_batch_job
from utils.config import layout
from utils.data import generate_credit_data

ROWS = 20_000


@pytest.fixture(scope="module")
def applicants() -> pd.DataFrame:
    frame = generate_credit_data(ROWS, 41).drop(columns="Risk")
    frame.insert(0, "note", "n")
    return frame


def _lines(frame: pd.DataFrame) -> list[str]:
    return frame.to_csv(index=False).splitlines(keepends=True)  # the header, then row i on line 1 + i


def _check_all_but(job, frame: pd.DataFrame, spoiled: list[int]) -> pd.DataFrame:
    """The job scored every row but ``spoiled``, in order, each with its own number; its rejects."""
    kept = [row for row in range(len(frame)) if row not in spoiled]
    assert (job.status, job.rows_read, job.rows_scored, job.rows_rejected) == (
        "completed",
        len(frame),
        len(kept),
        len(spoiled),
    )
    scored = pd.read_csv(job.output_path, keep_default_na=False)
    assert scored["transaction_id"].tolist() == [f"{job.job_id}:{row}" for row in kept]
    expected = frame.iloc[kept].reset_index(drop=True)
    pd.testing.assert_frame_equal(scored[frame.columns], expected, check_dtype=False)
    rejects = pd.read_csv(job.rejects_path, dtype=str, keep_default_na=False)
    assert rejects["input_row"].astype(int).tolist() == spoiled
    return rejects


def _reasons(rejects: pd.DataFrame) -> dict[int, str]:
    """The rejects' reasons by input row."""
    return dict(zip(rejects["input_row"].astype(int), rejects["reject_reason"]))


@pytest.mark.parametrize(("row", "chunk_rows"), [(12_345, 5_000), (4_999, 5_000), (12_345, 50_000)])
def test_an_unclosed_quote_costs_its_own_row_only(work, applicants, tmp_path, row, chunk_rows):
    lines = _lines(applicants)
    lines[1 + row] = '"' + lines[1 + row]  # the note opens a quote that nothing closes
    source = tmp_path / "quote.csv"
    source.write_text("".join(lines))

    job = run_batch_job(source, tmp_path / "scored.csv", model_id="credit-risk-v1", chunk_rows=chunk_rows)

    rejects = _check_all_but(job, applicants, [row])
    reason = rejects["reject_reason"][0]
    assert reason.startswith("malformed row: a quote opened on this line is never closed")
    assert lines[1 + row].rstrip("\n")[:40] in reason


def test_an_unclosed_quote_and_a_stray_one_later_spoil_one_row(work, applicants, tmp_path):
    lines = _lines(applicants)
    lines[1 + 100] = '"' + lines[1 + 100]  # opens a quote ...
    lines[1 + 160] = 'a 5"' + lines[1 + 160][1:]  # ... that this stray one, before a comma, would close
    source = tmp_path / "quotes.csv"
    source.write_text("".join(lines))
    frame = applicants.copy()
    frame.loc[160, "note"] = 'a 5"'

    job = run_batch_job(source, tmp_path / "scored.csv", model_id="credit-risk-v1", chunk_rows=1_000)

    rejects = _check_all_but(job, frame, [100])
    assert "quote" in rejects["reject_reason"][0]


def test_quoted_fields_over_lines_still_make_one_row(work, applicants, tmp_path):
    frame = applicants.head(300).copy()
    frame.loc[[0, 149, 150, 299], "note"] = ["two\nlines", 'says "hi",\nthen "bye"', "x,\n\ny", "last\nrow"]
    source = tmp_path / "notes.csv"
    frame.to_csv(source, index=False)

    job = run_batch_job(source, tmp_path / "scored.csv", model_id="credit-risk-v1", chunk_rows=150)

    _check_all_but(job, frame, [])


def _with_bytes(frame: pd.DataFrame, path: Path, changes: dict[int, tuple[str, bytes]]) -> Path:
    """``frame`` as CSV with the field of each changed row and column replaced by raw bytes."""
    lines = [line.encode() for line in _lines(frame)]
    columns = list(frame.columns)
    for row, (column, raw) in changes.items():
        fields = lines[1 + row].rstrip(b"\n").split(b",")
        fields[columns.index(column)] = raw
        lines[1 + row] = b",".join(fields) + b"\n"
    path.write_bytes(b"".join(lines))
    return path


def test_bytes_that_are_not_utf8_in_a_feature_reject_that_row_only(work, applicants, tmp_path):
    frame = applicants.head(3_000)
    changes = {7: ("Sex", b"f\xe9male"), 1_234: ("Age", b"3\xff"), 2_999: ("note", b"caf\xe9")}
    source = _with_bytes(frame, tmp_path / "latin1.csv", changes)

    job = run_batch_job(source, tmp_path / "scored.csv", model_id="credit-risk-v1", chunk_rows=1_000)

    expected = frame.copy()
    expected["note"] = expected["note"].astype(object)
    spoiled = [7, 1_234]
    kept = [row for row in range(len(frame)) if row not in spoiled]
    assert (job.status, job.rows_read, job.rows_scored, job.rows_rejected) == ("completed", 3_000, 2_998, 2)
    rejects = pd.read_csv(job.rejects_path, dtype=str, keep_default_na=False, encoding="latin-1")
    assert rejects["input_row"].astype(int).tolist() == spoiled
    assert rejects["reject_reason"].tolist() == [
        "Sex: not valid UTF-8, reads b'f\\xe9male'",
        "Age: not valid UTF-8, reads b'3\\xff'",
    ]
    assert rejects["Sex"][0] == "f\xe9male"  # the rejected row as it was read
    lines = job.output_path.read_bytes().splitlines()
    assert (
        lines[-1].startswith(b"caf\xe9,") and lines[-1].rsplit(b",", 2)[1] == f"{job.job_id}:2999".encode()
    )  # not a feature
    scored = pd.read_csv(job.output_path, encoding="latin-1")
    assert scored["transaction_id"].tolist() == [f"{job.job_id}:{row}" for row in kept]


def test_bytes_that_are_not_utf8_cannot_go_to_parquet_and_reject_the_row(work, applicants, tmp_path):
    frame = applicants.head(500)
    source = _with_bytes(frame, tmp_path / "latin1.csv", {42: ("note", b"caf\xe9")})

    job = run_batch_job(source, tmp_path / "scored.parquet", model_id="credit-risk-v1", chunk_rows=200)

    assert (job.status, job.rows_scored, job.rows_rejected) == ("completed", 499, 1)
    rejects = pd.read_csv(job.rejects_path, dtype=str, keep_default_na=False, encoding="latin-1")
    assert rejects["input_row"].tolist() == ["42"] and rejects["reject_reason"][0].startswith("note: not valid UTF-8")
    scored = pq.read_table(job.output_path).to_pandas()
    assert scored["transaction_id"].tolist() == [f"{job.job_id}:{row}" for row in range(500) if row != 42]


def _damage(work: Path, model_id: str) -> None:
    (
        layout(work).registry / model_id.rsplit("-v", 1)[0] / f"v{model_id.rsplit('-v', 1)[1]}" / "model.skops"
    ).write_text("not a zip file")


@pytest.mark.parametrize(
    ("model_id", "message"),
    [
        ("credit-risk-v1\n", "malformed model id"),
        ("credit-risk-latest\n", "malformed model id"),
        ("c" * 5_000 + "-v1", "too long"),
        ("c" * 5_000 + "-latest", "malformed model id"),
        ("credit-risk-v1" + "0" * 400, "too long"),
        ("credit-risk-v9", "not in the registry"),
        ("credit-risk-v2", "'credit-risk-v2': the model file is damaged"),
    ],
)
def test_the_command_line_refuses_a_model_it_cannot_use(work, applicants, tmp_path, capsys, model_id, message):
    _damage(work, "credit-risk-v2")
    source = tmp_path / "in.csv"
    applicants.head(20).to_csv(source, index=False)
    arguments = ["--input", str(source), "--output", str(tmp_path / "out.csv"), "--no-progress"]

    assert batch.main([*arguments, "--model-id", model_id]) == 2

    printed = capsys.readouterr()
    assert printed.err.startswith("error: ") and message in printed.err
    assert "Traceback" not in printed.err and "model.skops" not in printed.err and len(printed.err) < 400
    assert list_jobs().empty
    with pytest.raises(UnusableModel, match=message):
        create_batch_job(source, tmp_path / "out.csv", model_id=model_id)


def test_a_model_damaged_after_the_job_was_made_fails_it_without_a_traceback(
    work, applicants, tmp_path, capsys, caplog
):
    source = tmp_path / "in.csv"
    applicants.head(20).to_csv(source, index=False)
    job = create_batch_job(source, tmp_path / "out.csv", model_id="credit-risk-v1")
    _damage(work, "credit-risk-v1")

    with pytest.raises(BatchJobError, match="'credit-risk-v1': the model file is damaged") as failure:
        resume_batch_job(job.job_id, progress=False)
    assert failure.value.job.status == "failed" and "credit-risk-v1" in failure.value.job.error
    assert not caplog.records  # nothing logged with a traceback

    assert batch.main(["--resume", job.job_id, "--no-progress"]) == 1
    printed = capsys.readouterr().err
    assert printed.startswith("error: ") and "Traceback" not in printed and "--resume" in printed


@pytest.mark.slow
@pytest.mark.parametrize("cut", ["mid_field", "after_a_comma", "inside_a_quote"])
def test_a_file_cut_off_in_its_last_row_rejects_that_row_only(work, applicants, tmp_path, cut):
    text = applicants.to_csv(index=False)
    last_start = text.rstrip("\n").rindex("\n") + 1
    last = text[last_start:].rstrip("\n")
    ends = {
        "mid_field": last[: last.index(",", 20) - 1],
        "after_a_comma": last[: last.index(",", 20) + 1],
        "inside_a_quote": last[: last.index(",", 20) + 1] + '"car_n',
    }
    source = tmp_path / "cut.csv"
    source.write_text(text[:last_start] + ends[cut])  # no line end: the copy stopped there

    job = run_batch_job(source, tmp_path / "scored.csv", model_id="credit-risk-v1", chunk_rows=5_000)

    reasons = _reasons(_check_all_but(job, applicants, [ROWS - 1]))
    assert reasons[ROWS - 1].startswith("malformed row"), reasons


@pytest.mark.slow
def test_one_row_in_ten_bad_costs_those_rows_each_named_and_the_job_completes(work, applicants, tmp_path):
    frame = applicants.astype(object)
    bad = list(range(3, ROWS, 10))  # in every chunk, across chunk borders
    faults = {
        "Age": "old",  # not an integer
        "LoanPurpose": "spaceship",  # an unseen category
        "LoanAmount": -5,  # out of range
        "Housing": "",  # missing
    }
    columns = list(faults)
    for number, row in enumerate(bad):
        column = columns[number % len(columns)]
        frame.loc[row, column] = faults[column]
    source = tmp_path / "tenth.csv"
    frame.to_csv(source, index=False)

    job = run_batch_job(
        source, tmp_path / "scored.csv", model_id="credit-risk-v1", chunk_rows=5_000, max_reject_share=0.15
    )

    reasons = _reasons(_check_all_but(job, applicants, bad))
    for number, row in enumerate(bad):
        assert reasons[row].startswith(columns[number % len(columns)]), (row, reasons[row])
    print(f"{job.rows_read} rows read, {job.rows_scored} scored, {job.rows_rejected} rejected")
