"""Malformed batch input that tests/batch/test_batch_faults.py does not already cover (an unclosed quote and
bytes that are not UTF-8 are covered there): a file cut off in its last row, and one row in ten bad."""

from __future__ import annotations

import pandas as pd
import pytest

from utils.batch import run_batch_job
from utils.data import generate_credit_data

pytestmark = pytest.mark.slow

ROWS = 3_000
CHUNK_ROWS = 700  # several chunks, the last one short


@pytest.fixture(scope="module")
def applicants() -> pd.DataFrame:
    return generate_credit_data(ROWS, 43).drop(columns="Risk")


def _scored_all_but(job, frame: pd.DataFrame, spoiled: list[int]) -> dict[int, str]:
    """Every row but ``spoiled`` scored in order under its own number; the rejects' reasons by input row."""
    kept = [row for row in range(len(frame)) if row not in spoiled]
    assert (job.status, job.rows_read, job.rows_scored, job.rows_rejected) == (
        "completed",
        len(frame),
        len(kept),
        len(spoiled),
    )
    scored = pd.read_csv(job.output_path, keep_default_na=False)
    assert scored["transaction_id"].tolist() == [f"{job.job_id}:{row}" for row in kept]
    pd.testing.assert_frame_equal(scored[frame.columns], frame.iloc[kept].reset_index(drop=True), check_dtype=False)
    rejects = pd.read_csv(job.rejects_path, dtype=str, keep_default_na=False)
    assert rejects["input_row"].astype(int).tolist() == spoiled
    return dict(zip(rejects["input_row"].astype(int), rejects["reject_reason"]))


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

    job = run_batch_job(source, tmp_path / "scored.csv", model_id="credit-risk-v1", chunk_rows=CHUNK_ROWS)

    reasons = _scored_all_but(job, applicants, [ROWS - 1])
    assert reasons[ROWS - 1].startswith("malformed row"), reasons


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
        source, tmp_path / "scored.csv", model_id="credit-risk-v1", chunk_rows=CHUNK_ROWS, max_reject_share=0.15
    )

    reasons = _scored_all_but(job, applicants, bad)
    for number, row in enumerate(bad):
        assert reasons[row].startswith(columns[number % len(columns)]), (row, reasons[row])
    print(f"{job.rows_read} rows read, {job.rows_scored} scored, {job.rows_rejected} rejected")
