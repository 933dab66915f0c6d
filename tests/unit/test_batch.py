"""Batch jobs: output, rejects, the reject limit, payload logging, resuming, engines and the command line."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from utils import batch, datamart
from utils.batch import (
    OUTPUT_COLUMNS,
    REJECT_COLUMNS,
    BatchJobError,
    BatchJobSpec,
    create_batch_job,
    get_job,
    list_jobs,
    resume_batch_job,
    run_batch_job,
)
from utils.config import layout
from utils.data import CLASS_ORDER, FEATURES, generate_credit_data
from utils.datamart import batch_jobs
from utils.deployment import deploy
from utils.times import utc_now

pytestmark = pytest.mark.datamarts


@pytest.fixture
def model_id(work) -> str:
    return "credit-risk-v1"


@pytest.fixture
def logistic(workspace):
    return workspace.registry.load("credit-risk-v1")


def _running_job(job_id: str, now) -> dict:
    """A job row as the data mart stores it, running, with placeholder paths."""
    return {
        "job_id": job_id,
        "status": "running",
        "model_id": "m-v1",
        "input_path": "i",
        "output_path": "o",
        "rejects_path": "r",
        "parameters": {},
        "created_at": now,
    }


def write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def expected_proba(model, frame: pd.DataFrame) -> np.ndarray:
    proba = model.predict_proba(frame[list(FEATURES)])
    return proba[:, [list(model.classes_).index(c) for c in CLASS_ORDER]]


def without_transaction_ids(path: Path) -> list[str]:
    """The output's lines without the transaction id (the next to last field; ``out_of_range`` is kept)."""
    return [
        ",".join([*parts[:-2], parts[-1]]) for parts in (line.rsplit(",", 2) for line in path.read_text().splitlines())
    ]


def test_a_job_scores_every_row_in_order(work, workspace, tmp_path):
    frame = generate_credit_data(2500, 11)
    source = write(frame, tmp_path / "applicants.csv")

    job = run_batch_job(source, tmp_path / "out" / "scored.csv", model_id="credit-risk-latest", chunk_rows=1000)

    assert job.status == "completed" and job.model_id == "credit-risk-v2"  # the latest when the job was created
    assert (job.rows_read, job.rows_scored, job.rows_rejected, job.chunks_done) == (2500, 2500, 0, 3)
    assert job.attempts == 1 and job.seconds > 0 and job.finished_at >= job.started_at >= job.created_at
    scored = pd.read_csv(job.output_path)
    assert list(scored.columns) == [*frame.columns, *OUTPUT_COLUMNS]
    pd.testing.assert_frame_equal(scored[frame.columns], frame)
    proba = scored[["probability_no_risk", "probability_risk"]].to_numpy()
    np.testing.assert_allclose(proba, expected_proba(workspace.registry.load(job.model_id), frame), atol=1e-9)
    assert (scored["prediction"] == np.where(proba[:, 1] > 0.5, "Risk", "No Risk")).all()
    assert scored["transaction_id"].tolist() == [f"{job.job_id}:{row}" for row in range(2500)]
    assert job.rejects_path == tmp_path / "out" / "scored.rejects.csv"
    assert job.rejects_path.read_text() == ",".join([*frame.columns, *REJECT_COLUMNS]) + "\n"
    assert sorted(p.name for p in job.output_path.parent.iterdir()) == ["scored.csv", "scored.rejects.csv"]
    assert not (layout(work).batch / job.job_id).exists()  # the parts are gone
    assert get_job(job.job_id) == job
    assert list_jobs()["job_id"].tolist() == [job.job_id]


def bad_file(path: Path) -> Path:
    frame = generate_credit_data(300, 12).drop(columns="Risk")
    frame["LoanAmount"] = frame["LoanAmount"].astype(object)
    frame.loc[3, "LoanAmount"] = "twelve hundred"
    frame.loc[4, "LoanPurpose"] = "spaceship"
    frame.loc[5, "Age"] = 200
    frame.loc[6, "Housing"] = None
    frame.loc[7, "Sex"] = "x"
    frame["Dependents"] = frame["Dependents"].astype(object)
    frame.loc[7, "Dependents"] = 1.5
    lines = frame.to_csv(index=False).splitlines(keepends=True)
    lines[1 + 8] = lines[1 + 8].rstrip("\n") + ",surplus\n"  # row 8: a field too many
    path.write_text("".join(lines))
    return path


def test_bad_rows_go_to_the_rejects_file_with_every_fault(work, model_id, tmp_path):
    source = bad_file(tmp_path / "bad.csv")

    job = run_batch_job(source, tmp_path / "scored.csv", model_id=model_id, max_reject_share=0.1, chunk_rows=128)

    assert (job.status, job.rows_read, job.rows_scored, job.rows_rejected) == ("completed", 300, 294, 6)
    rejects = pd.read_csv(job.rejects_path, dtype=str, keep_default_na=False)
    assert list(rejects.columns[-2:]) == list(REJECT_COLUMNS)
    reasons = dict(zip(rejects["input_row"].astype(int), rejects["reject_reason"]))
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8]
    assert reasons[3].startswith("LoanAmount") and "integer" in reasons[3] and "'twelve hundred'" in reasons[3]
    assert reasons[4].startswith("LoanPurpose") and "unseen category 'spaceship'" in reasons[4]
    assert reasons[5].startswith("Age") and "out of the contract's range [18, 100]" in reasons[5]
    assert reasons[6].startswith("Housing") and "null" in reasons[6]
    faults = reasons[7].split(batch.FAULT_SEPARATOR)
    assert [fault.split()[0].rstrip(":") for fault in faults] == ["Sex", "Dependents"]
    assert "malformed row: 21 fields where the header has 20" in reasons[8] and "surplus" in reasons[8]
    assert rejects.set_index("input_row").loc["3", "LoanAmount"] == "twelve hundred"  # as read
    assert " in row " not in " ".join(reasons.values())  # the row is in input_row, not in the reason
    scored = pd.read_csv(job.output_path)
    rows = [int(t.rsplit(":", 1)[1]) for t in scored["transaction_id"]]
    assert rows == [row for row in range(300) if row not in reasons]
    assert scored["LoanAmount"].dtype == np.int64  # numbers written as text in a chunk with bad values still score


def test_a_job_over_the_reject_limit_fails_and_says_why(work, model_id, tmp_path):
    source = bad_file(tmp_path / "bad.csv")

    with pytest.raises(BatchJobError, match=r"6 of 300 rows rejected \(2\.0%\).*limit of 1\.0%") as failure:
        run_batch_job(source, tmp_path / "scored.csv", model_id=model_id, max_reject_share=0.01)

    job = failure.value.job
    assert job.status == "failed" and "max_reject_share" in job.error and str(job.rejects_path) in job.error
    assert get_job(job.job_id).error == job.error
    assert not job.output_path.exists()
    assert len(pd.read_csv(job.rejects_path)) == 6

    job = resume_batch_job(job.job_id, max_reject_share=0.05)  # a higher limit: finishes without scoring again
    assert job.status == "completed" and job.rows_scored == 294 and job.attempts == 2


def test_a_job_stops_early_once_the_limit_cannot_be_met(work, model_id, tmp_path):
    frame = generate_credit_data(1000, 13)
    frame.loc[:99, "Sex"] = "unknown"
    source = write(frame, tmp_path / "bad.csv")

    with pytest.raises(BatchJobError, match=r"stopped after 100 of about 1,000 rows: 100 rows rejected"):
        run_batch_job(source, tmp_path / "scored.csv", model_id=model_id, max_reject_share=0.05, chunk_rows=100)
    assert len(pd.read_csv(tmp_path / "scored.rejects.csv")) == 100


def test_a_crashed_job_resumes_without_losing_or_repeating_rows_or_payload(work, model_id, tmp_path, monkeypatch):
    deployment = deploy(model_id, work=work)
    frame = generate_credit_data(2000, 14)
    frame.loc[1234, "Age"] = 5
    source = write(frame, tmp_path / "applicants.csv")
    engine = datamart.connect(work=work)
    commit = datamart.commit_batch_chunk
    commits = []

    def crash_on_the_third(*args, **kwargs):
        if len(commits) == 2:  # the third chunk's parts are written, its commit never happens
            raise KeyboardInterrupt
        commits.append(commit(*args, **kwargs))

    monkeypatch.setattr(datamart, "commit_batch_chunk", crash_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        run_batch_job(
            source,
            tmp_path / "scored.csv",
            deployment_id=deployment.deployment_id,
            chunk_rows=500,
            log_payload=True,
            max_reject_share=0.01,
        )
    monkeypatch.setattr(datamart, "commit_batch_chunk", commit)
    (job,) = [get_job(job_id) for job_id in list_jobs()["job_id"]]
    assert (job.status, job.error, job.rows_read, job.chunks_done) == ("failed", "interrupted", 1000, 2)
    assert len(datamart.read_payload(engine, deployment.deployment_id)) == 1000
    assert not (tmp_path / "scored.csv").exists()
    folder = layout(work).batch / job.job_id
    (folder / "00000001.out").write_bytes(b"damaged")  # a committed part lost: scored again, not logged again

    job = resume_batch_job(job.job_id)

    assert (job.status, job.rows_read, job.rows_scored, job.rows_rejected, job.attempts) == (
        "completed",
        2000,
        1999,
        1,
        2,
    )
    scored = pd.read_csv(job.output_path)
    expected = frame.drop(index=1234).reset_index(drop=True)
    pd.testing.assert_frame_equal(scored[frame.columns], expected)
    rows = [row for row in range(2000) if row != 1234]
    assert scored["transaction_id"].tolist() == [f"{job.job_id}:{row}" for row in rows]
    payload = datamart.read_payload(engine, deployment.deployment_id)
    assert len(payload) == 1999 and payload["transaction_id"].is_unique
    assert sorted(payload["transaction_id"]) == sorted(scored["transaction_id"])
    assert (payload["model_id"] == model_id).all()
    assert payload.set_index("transaction_id").loc[scored["transaction_id"], "Age"].tolist() == scored["Age"].tolist()
    uninterrupted = run_batch_job(
        source, tmp_path / "again.csv", model_id=model_id, max_reject_share=0.01, chunk_rows=500
    )
    assert without_transaction_ids(uninterrupted.output_path) == without_transaction_ids(job.output_path)


@pytest.mark.slow
def test_the_dask_engine_writes_the_same_output(work, model_id, tmp_path):
    source = bad_file(tmp_path / "bad.csv")
    options = {"model_id": model_id, "chunk_rows": 64, "max_reject_share": 0.1}
    local = run_batch_job(source, tmp_path / "local.csv", **options)
    on_dask = run_batch_job(source, tmp_path / "dask.csv", engine="dask", workers=1, progress=False, **options)

    assert on_dask.engine == "dask" and on_dask.status == "completed"
    assert without_transaction_ids(on_dask.output_path) == without_transaction_ids(local.output_path)
    assert on_dask.rejects_path.read_text() == local.rejects_path.read_text()


def test_quoted_fields_line_ends_and_blank_lines_pass_through(work, model_id, logistic, tmp_path):
    frame = generate_credit_data(7, 15).drop(columns="Risk")
    frame.insert(0, "note", ["plain", 'says "hi", twice', "two\nlines", "", "a,b", "x", "three\nline\nnote"])
    text = frame.to_csv(index=False, lineterminator="\r\n")
    lines = text.split("\r\n")
    text = "\r\n".join([*lines[:3], "", *lines[3:]])  # a blank line between records
    source = tmp_path / "notes.csv"
    source.write_bytes(text.encode())

    job = run_batch_job(source, tmp_path / "scored.csv", model_id=model_id, chunk_rows=2)

    assert (job.rows_read, job.rows_scored) == (7, 7)
    scored = pd.read_csv(job.output_path, keep_default_na=False)
    assert scored["note"].str.replace("\r\n", "\n").tolist() == frame["note"].tolist()
    np.testing.assert_allclose(
        scored[["probability_no_risk", "probability_risk"]].to_numpy(), expected_proba(logistic, frame), atol=1e-9
    )
    assert scored["transaction_id"].tolist() == [f"{job.job_id}:{row}" for row in range(7)]


def test_bytes_that_are_not_utf8_pass_through_unchanged(work, model_id, tmp_path):
    frame = generate_credit_data(5, 19).drop(columns="Risk")
    frame.insert(0, "note", ["a", "b", "c", "d", "e"])
    data = frame.to_csv(index=False).encode().replace(b"\nb,", b"\n\xe9t\xe9,")  # Latin-1 in row 1
    source = tmp_path / "latin1.csv"
    source.write_bytes(data)

    job = run_batch_job(source, tmp_path / "scored.csv", model_id=model_id)

    assert (job.rows_read, job.rows_scored) == (5, 5)
    lines = job.output_path.read_bytes().splitlines()
    assert lines[2].startswith(b"\xe9t\xe9,") and lines[2].rsplit(b",", 2)[1] == f"{job.job_id}:1".encode()
    assert [line.rsplit(b",", 5)[0] for line in lines] == data.splitlines()


def test_a_stray_quote_is_text_and_an_unclosed_one_is_rejected(work, model_id, tmp_path):
    rows = generate_credit_data(4, 18).drop(columns="Risk").to_csv(index=False, header=False).splitlines()
    header = "note," + ",".join(FEATURES)
    text = "\n".join([header, f"ok,{rows[0]}", f'a 5" screen,{rows[1]}', f"ok,{rows[2]}", f'"never closed,{rows[3]}'])
    source = tmp_path / "quotes.csv"
    source.write_text(text + "\n")

    job = run_batch_job(source, tmp_path / "scored.csv", model_id=model_id, chunk_rows=2, max_reject_share=0.5)

    assert (job.rows_read, job.rows_scored, job.rows_rejected) == (4, 3, 1)
    assert pd.read_csv(job.output_path)["note"].tolist() == ["ok", 'a 5" screen', "ok"]
    rejects = pd.read_csv(job.rejects_path)
    assert rejects["input_row"].tolist() == [3]
    assert rejects["reject_reason"][0].startswith("malformed row: a quote opened on this line is never closed")


def test_a_gradient_boosting_model_scores_like_its_pipeline(work, workspace, tmp_path):
    frame = generate_credit_data(500, 16)

    job = run_batch_job(
        write(frame, tmp_path / "in.csv"), tmp_path / "out.csv", model_id="credit-risk-v2", chunk_rows=200
    )

    scored = pd.read_csv(job.output_path)
    model = workspace.registry.load("credit-risk-v2")
    np.testing.assert_allclose(
        scored[["probability_no_risk", "probability_risk"]].to_numpy(), expected_proba(model, frame), atol=1e-9
    )


def test_job_definition_errors_are_refused_before_a_job_exists(work, model_id, tmp_path):
    source = write(generate_credit_data(10, 1), tmp_path / "in.csv")
    out = tmp_path / "out.csv"
    cases = [
        ({"input_path": tmp_path / "none.csv", "model_id": model_id}, "no such input file"),
        ({"model_id": model_id, "deployment_id": "d"}, "either a model id or a deployment id"),
        ({}, "either a model id or a deployment id"),
        ({"model_id": model_id, "log_payload": True}, "payload logging needs a deployment id"),
        ({"model_id": "credit-risk-v9"}, "not in the registry"),
        ({"deployment_id": "nope"}, "no deployment"),
        ({"model_id": model_id, "max_reject_share": 1.5}, "between 0 and 1"),
        ({"model_id": model_id, "chunk_rows": 0}, "at least 1"),
        ({"model_id": model_id, "rejects_path": tmp_path / "r.parquet"}, "always CSV"),
        ({"model_id": model_id, "output_path": source}, "three different files"),
        ({"model_id": model_id, "engine": "local", "scheduler": "tcp://h:8786"}, "needs the dask engine"),
        ({"model_id": model_id, "engine": "spark"}, "unknown engine"),
    ]
    for overrides, message in cases:
        arguments = {"input_path": source, "output_path": out, **overrides}
        with pytest.raises(BatchJobError, match=message):
            create_batch_job(**arguments)
    assert list_jobs().empty
    with pytest.raises(BatchJobError, match="no batch job"):
        get_job("nope")
    with pytest.raises(BatchJobError, match="no batch job"):
        resume_batch_job("nope")


def test_an_unreadable_input_fails_the_job_and_records_why(work, model_id, tmp_path):
    frame = generate_credit_data(20, 1).drop(columns="Telephone").rename(columns={"Risk": "prediction"})
    source = write(frame, tmp_path / "in.csv")
    with pytest.raises(BatchJobError, match="missing column.*Telephone") as failure:
        run_batch_job(source, tmp_path / "out.csv", model_id=model_id)
    assert get_job(failure.value.job.job_id).status == "failed"

    source = write(generate_credit_data(20, 1).rename(columns={"Risk": "prediction"}), tmp_path / "in2.csv")
    with pytest.raises(BatchJobError, match="prediction, which the job adds"):
        run_batch_job(source, tmp_path / "out.csv", model_id=model_id)

    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(BatchJobError, match="empty"):
        run_batch_job(empty, tmp_path / "out.csv", model_id=model_id)


def test_a_header_only_file_gives_a_header_only_output(work, model_id, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text(",".join(FEATURES) + "\n")
    job = run_batch_job(source, tmp_path / "out.csv", model_id=model_id)
    assert (job.status, job.rows_read) == ("completed", 0)
    assert job.output_path.read_text() == ",".join([*FEATURES, *OUTPUT_COLUMNS]) + "\n"


def test_resume_refuses_a_changed_input_and_a_job_running_elsewhere(work, model_id, tmp_path):
    fcntl = pytest.importorskip("fcntl")
    source = write(generate_credit_data(50, 1), tmp_path / "in.csv")
    job = create_batch_job(source, tmp_path / "out.csv", model_id=model_id)
    assert job.status == "queued"

    folder = layout(work).batch / job.job_id
    folder.mkdir(parents=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(BatchJobError, match="running in another process"):
            resume_batch_job(job.job_id)
    assert get_job(job.job_id).status == "queued"  # not marked failed by the refused attempt

    os.utime(source, ns=(0, 0))
    with pytest.raises(BatchJobError, match="changed since the job started"):
        resume_batch_job(job.job_id)
    assert get_job(job.job_id).status == "failed"


def test_a_chunk_is_committed_once_with_its_payload(work):
    engine = datamart.connect(work=work)
    now = utc_now()
    datamart.insert_batch_job(engine, _running_job("j", now))
    chunk = {
        "job_id": "j",
        "chunk_index": 0,
        "first_row": 0,
        "rows_read": 2,
        "rows_scored": 1,
        "rows_rejected": 1,
        "output_bytes": 10,
        "rejects_bytes": 5,
        "seconds": 0.5,
        "committed_at": now,
    }
    record = {
        "transaction_id": "j:0",
        "deployment_id": "d",
        "model_id": "m-v1",
        "scored_at": now,
        "inputs": {},
        "prediction": "Risk",
        "probability_no_risk": 0.4,
        "probability_risk": 0.6,
    }
    assert datamart.commit_batch_chunk(engine, chunk, [record]) == 1
    with pytest.raises(sa.exc.IntegrityError):
        datamart.commit_batch_chunk(engine, chunk, [{**record, "transaction_id": "j:1"}])

    job = datamart.read_batch_job(engine, "j")
    assert (job["rows_read"], job["rows_scored"], job["rows_rejected"], job["chunks_done"]) == (2, 1, 1, 1)
    assert job["seconds"] == 0.5 and job["updated_at"] == now
    assert datamart.read_payload(engine)["transaction_id"].tolist() == ["j:0"]
    assert datamart.read_batch_chunks(engine, "j")["chunk_index"].tolist() == [0]
    assert datamart.update_batch_job(engine, "j", status="completed") and not datamart.update_batch_job(engine, "x")
    assert datamart.read_batch_jobs(engine)["status"].tolist() == ["completed"]


def _chunk_without_payload(engine, job_id: str, rows: int) -> dict:
    """A running job ``job_id`` in the data mart, and its chunk 0 of ``rows`` rows, not committed."""
    now = utc_now()
    datamart.insert_batch_job(engine, _running_job(job_id, now))
    return {
        "job_id": job_id,
        "chunk_index": 0,
        "first_row": 0,
        "rows_read": rows,
        "rows_scored": rows,
        "rows_rejected": 0,
        "output_bytes": 10,
        "rejects_bytes": 5,
        "seconds": 0.5,
        "committed_at": now,
    }


def _stop_after(monkeypatch, transactions: int) -> list[int]:
    """Make the data mart's payload transactions raise KeyboardInterrupt once, after ``transactions`` of them;
    the sizes of those before the stop."""
    store = batch_jobs._replace_payload
    done: list[int] = []
    stopped: list[bool] = []

    def stop(engine, rows):
        if len(done) == transactions and not stopped:
            stopped.append(True)
            raise KeyboardInterrupt
        store(engine, rows)
        if not stopped:
            done.append(len(rows))

    monkeypatch.setattr(batch_jobs, "_replace_payload", stop)
    return done


def test_a_chunk_interrupted_between_payload_transactions_ends_with_one_record_per_row(work, monkeypatch):
    engine = datamart.connect(work=work)
    chunk = _chunk_without_payload(engine, "k", 10)
    scored_at = utc_now()
    records = [
        {
            "transaction_id": f"k:{row}",
            "deployment_id": "d",
            "model_id": "m-v1",
            "scored_at": scored_at,
            "inputs": {"row": row},
            "prediction": "Risk",
            "probability_no_risk": 0.4,
            "probability_risk": 0.6,
        }
        for row in range(10)
    ]
    done = _stop_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        datamart.commit_batch_chunk(engine, chunk, records, batch_rows=3)
    assert done == [3, 3]  # two transactions of three records each, then the stop
    assert datamart.read_payload(engine)["transaction_id"].tolist() == [f"k:{row}" for row in range(6)]
    assert datamart.read_batch_chunks(engine, "k").empty and datamart.read_batch_job(engine, "k")["rows_read"] == 0

    assert datamart.commit_batch_chunk(engine, chunk, records, batch_rows=3) == 10  # the chunk again, whole

    payload = datamart.read_payload(engine)
    assert sorted(payload["transaction_id"]) == sorted(f"k:{row}" for row in range(10))
    assert payload["row"].tolist() == sorted(payload["row"].tolist())  # the partial records were replaced
    assert datamart.read_batch_chunks(engine, "k")["chunk_index"].tolist() == [0]
    job = datamart.read_batch_job(engine, "k")
    assert (job["rows_read"], job["rows_scored"], job["chunks_done"]) == (10, 10, 1)
    with pytest.raises(sa.exc.IntegrityError, match="already committed"):
        datamart.commit_batch_chunk(engine, chunk, records)
    assert len(datamart.read_payload(engine)) == 10


def test_a_job_killed_between_payload_transactions_resumes_exactly(work, model_id, tmp_path, monkeypatch):
    deployment = deploy(model_id, work=work)
    frame = generate_credit_data(2000, 23)
    source = write(frame, tmp_path / "applicants.csv")
    engine = datamart.connect(work=work)
    monkeypatch.setattr(batch_jobs, "PAYLOAD_COMMIT_ROWS", 100)
    done = _stop_after(monkeypatch, 7)  # chunk 0's five transactions, two of chunk 1's, then the stop
    with pytest.raises(KeyboardInterrupt):
        run_batch_job(
            source,
            tmp_path / "scored.csv",
            deployment_id=deployment.deployment_id,
            log_payload=True,
            chunk_rows=500,
            progress=False,
        )
    assert done == [100] * 7
    (job,) = [get_job(job_id) for job_id in list_jobs()["job_id"]]
    assert (job.status, job.chunks_done, job.rows_scored) == ("failed", 1, 500)
    assert len(datamart.read_payload(engine, deployment.deployment_id)) == 700  # chunk 1 stored in part

    job = resume_batch_job(job.job_id, progress=False)

    assert (job.status, job.rows_scored, job.chunks_done) == ("completed", 2000, 4)
    scored = pd.read_csv(job.output_path)
    assert scored["transaction_id"].tolist() == [f"{job.job_id}:{row}" for row in range(2000)]
    payload = datamart.read_payload(engine, deployment.deployment_id)
    assert len(payload) == 2000 and payload["transaction_id"].is_unique
    assert set(payload["transaction_id"]) == set(scored["transaction_id"])
    assert payload.set_index("transaction_id").loc[scored["transaction_id"], "Age"].tolist() == scored["Age"].tolist()


def test_the_command_line_runs_shows_and_resumes_jobs(work, model_id, tmp_path, capsys):
    source = write(generate_credit_data(300, 1), tmp_path / "in.csv")
    out = tmp_path / "out.csv"

    assert batch.main(["--input", str(source), "--model-id", model_id, "--output", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    job_id = printed.split()[2].rstrip(":")
    assert f"batch job {job_id} completed: 300 rows read, 300 scored, 0 rejected" in printed
    assert len(pd.read_csv(out)) == 300

    assert batch.main(["--status", job_id]) == 0
    assert "completed" in capsys.readouterr().out
    assert batch.main(["--list"]) == 0
    assert job_id in capsys.readouterr().out
    assert batch.main(["--resume", job_id, "--no-progress"]) == 0  # a completed job: nothing to do
    assert batch.main(["--input", str(tmp_path / "x.csv"), "--model-id", model_id, "--output", str(out)]) == 1
    assert "no such input file" in capsys.readouterr().err
    for wrong in (["--resume", job_id, "--input", str(source)], ["--input", str(source)]):
        with pytest.raises(SystemExit) as exit_:
            batch.main(wrong)
        assert exit_.value.code == 2


def test_parquet_in_and_out(work, model_id, logistic, tmp_path):
    frame = generate_credit_data(1000, 17)
    source = tmp_path / "in.parquet"
    frame.to_parquet(source, row_group_size=300)
    job = run_batch_job(source, tmp_path / "out.parquet", model_id=model_id, chunk_rows=400)
    scored = pd.read_parquet(job.output_path)
    pd.testing.assert_frame_equal(scored[frame.columns], frame)
    np.testing.assert_allclose(
        scored[["probability_no_risk", "probability_risk"]].to_numpy(), expected_proba(logistic, frame), atol=1e-9
    )


def test_a_spec_describes_the_job_and_is_checked_before_the_job_exists(work, tmp_path):
    source = write(generate_credit_data(30, 2), tmp_path / "in.csv")
    spec = BatchJobSpec(source, tmp_path / "out" / "scored.parquet", model_id="credit-risk-latest", chunk_rows=10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.chunk_rows = 5  # type: ignore[misc]

    checked = spec.checked()

    assert checked.input_path == source.resolve() and checked.output_path == (tmp_path / "out/scored.parquet").resolve()
    assert checked.rejects_path == (tmp_path / "out" / "scored.rejects.csv").resolve()
    assert (checked.engine, checked.max_reject_share, checked.model_id) == ("local", 0.05, "credit-risk-latest")
    assert dataclasses.replace(spec, scheduler="tcp://h:8786").checked().engine == "dask"
    with pytest.raises(BatchJobError, match="at least 1"):
        dataclasses.replace(spec, chunk_rows=0).checked()

    job = run_batch_job(spec, progress=False)  # a spec instead of the keyword arguments

    assert (job.status, job.model_id, job.chunk_rows, job.chunks_done, job.rows_scored) == (
        "completed",
        "credit-risk-v2",
        10,
        3,
        30,
    )
    assert (job.output_path, job.rejects_path) == (checked.output_path, checked.rejects_path)
    assert len(pd.read_parquet(job.output_path)) == 30
    with pytest.raises(TypeError, match="either a BatchJobSpec"):
        create_batch_job(spec, tmp_path / "other.csv")
    with pytest.raises(TypeError, match="either a BatchJobSpec"):
        create_batch_job(spec, chunk_rows=5)
    with pytest.raises(TypeError, match="output path"):
        create_batch_job(source, model_id="credit-risk-v1")


def test_rows_inside_the_contract_but_outside_the_training_ranges_are_scored_and_flagged(work, model_id, tmp_path):
    train = generate_credit_data(300, 5)
    train["LoanAmount"] = train["LoanAmount"].clip(upper=9000)
    layout(work).data.mkdir(parents=True, exist_ok=True)
    train.to_csv(layout(work).train, index=False)
    deployment = deploy(model_id, work=work)
    frame = generate_credit_data(6, 21).drop(columns="Risk")
    frame[["LoanAmount", "Age", "LoanDuration"]] = [1000, 40, 12]
    frame.loc[1, "LoanAmount"] = 9500  # above the training split's largest amount, inside the contract
    frame.loc[2, ["Age", "LoanDuration"]] = [99, 90]
    frame.loc[3, "Age"] = 101  # outside the contract: rejected
    source = write(frame, tmp_path / "applicants.csv")

    job = run_batch_job(
        source, tmp_path / "scored.csv", deployment_id=deployment.deployment_id, log_payload=True, max_reject_share=0.5
    )

    assert (job.rows_scored, job.rows_rejected) == (5, 1)
    scored = pd.read_csv(job.output_path, keep_default_na=False)
    rows = scored["transaction_id"].str.rsplit(":", n=1).str[1].astype(int)
    flags = dict(zip(rows, scored["out_of_range"], strict=True))
    assert flags == {0: "", 1: "LoanAmount", 2: "LoanDuration;Age", 4: "", 5: ""}
    payload = datamart.read_payload(datamart.connect(work=work), deployment.deployment_id).set_index("transaction_id")
    assert payload.loc[f"{job.job_id}:2", "out_of_range"] == ["LoanDuration", "Age"]
    assert payload.loc[f"{job.job_id}:0", "out_of_range"] is None
    rejects = pd.read_csv(job.rejects_path)
    assert rejects["reject_reason"].tolist() == ["Age = 101 is out of the contract's range [18, 100]"]
