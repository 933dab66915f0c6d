"""Reading a batch job's CSV input: chunks cut from the bytes give the records the csv module reads, wherever the
cuts fall; pyarrow's parse reads values as the CSV rules say; the writer thread hands its error back."""

from __future__ import annotations

import threading

import pandas as pd
import pytest

from utils.batch import inputs as batch_inputs
from utils.batch import run_batch_job
from utils.batch.inputs import CsvInput
from utils.batch.threads import behind
from utils.data import generate_credit_data

HEADER = "note,a,b\n"
RECORDS = [
    "plain,1,2\n",
    "crlf,3,4\r\n",
    'quoted,"two\nlines",5\n',
    "caf\udce9,6,7\n",  # a byte that is not UTF-8, carried as a surrogate
    'a 5" screen,8,9\n',
    '"never closed,10,11\n',
    "last,12,13",  # no line end at the end of the file
]
BLANKS = {1: "\n", 3: "   \r\n", 5: "\n"}  # blank lines before these records: skipped, not numbered


def _source(tmp_path) -> CsvInput:
    lines = []
    for number, record in enumerate(RECORDS):
        lines += [BLANKS.get(number, ""), record]
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (HEADER + "".join(lines)).encode("utf-8", "surrogateescape"))
    return CsvInput(path)


@pytest.mark.parametrize("block", [5, 64, 1 << 22])
@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 1000])
def test_chunks_cut_from_bytes_give_every_record_once_in_order(tmp_path, monkeypatch, block, chunk_rows):
    monkeypatch.setattr(batch_inputs._Lines, "BLOCK", block)
    source = _source(tmp_path)

    chunks = list(source.chunks(chunk_rows))

    assert source.columns == ("note", "a", "b")
    records = [chunk.record(p).decode("utf-8", "surrogateescape") for chunk in chunks for p in range(chunk.size)]
    assert records == RECORDS
    firsts = [chunk.first_row for chunk in chunks]
    assert firsts == [sum(chunk.size for chunk in chunks[:i]) for i in range(len(chunks))]
    assert [chunk.text(p) for chunk in chunks for p in range(chunk.size)][:2] == ["plain,1,2", "crlf,3,4"]


@pytest.mark.parametrize("block", [5, 1 << 22])
def test_a_file_with_carriage_returns_alone_is_cut_into_chunks_of_its_lines(tmp_path, monkeypatch, block):
    monkeypatch.setattr(batch_inputs._Lines, "BLOCK", block)
    path = tmp_path / "mac.csv"
    path.write_bytes(b"a,b\r" + b"".join(b"%d,%d\r" % (row, row) for row in range(10)))

    chunks = list(CsvInput(path).chunks(3))

    assert [chunk.size for chunk in chunks] == [3, 3, 3, 1]  # memory bounded by the chunk, as for any file
    assert [chunk.text(p) for chunk in chunks for p in range(chunk.size)] == [f"{row},{row}" for row in range(10)]


def test_values_are_read_as_csv_with_spaces_after_commas_and_nulls(work, tmp_path):
    frame = generate_credit_data(40, 23).drop(columns="Risk")
    text = frame.to_csv(index=False).replace(",", ", ")  # a space after every comma, as some tools write
    lines = text.splitlines(keepends=True)
    for row, (column, value) in {5: ("Age", ""), 9: ("Housing", "None")}.items():
        fields = lines[1 + row].split(", ")
        fields[list(frame.columns).index(column)] = value
        lines[1 + row] = ", ".join(fields)
    source = tmp_path / "spaced.csv"
    source.write_text("".join(lines))

    job = run_batch_job(source, tmp_path / "scored.csv", model_id="credit-risk-v1", chunk_rows=16, progress=False)

    assert (job.rows_read, job.rows_scored, job.rows_rejected) == (40, 38, 2)
    rejects = pd.read_csv(job.rejects_path, dtype=str, keep_default_na=False)
    assert dict(zip(rejects["input_row"], rejects["reject_reason"])) == {"5": "Age is null", "9": "Housing is null"}
    assert job.output_path.read_text().splitlines()[1].startswith(lines[1].rstrip("\n"))  # records unchanged


def test_the_writer_thread_consumes_in_order_and_hands_its_error_back():
    seen, threads = [], set()

    def consume(item: int) -> None:
        threads.add(threading.current_thread().name)
        if item == 3:
            raise ValueError("disk full")
        seen.append(item)

    with pytest.raises(ValueError, match="disk full"), behind(consume, depth=1) as writer:
        for item in range(10):
            writer.put(item)

    assert seen == [0, 1, 2] and threads == {"batch-writer"}
