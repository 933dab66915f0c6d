"""The payload journal of a SQLite data mart: records appended are ingested exactly once (a drain that fails before
its commit ingests nothing, and the next one everything), an incomplete last frame waits for the rest, a dead
writer's file is ingested and removed while a live writer's stays, a read sees what was appended, a replaced data
mart file takes nothing, and a frame of another version is refused by name. The service's writer journals records,
commits them in a group while the journal cannot take them, and stores everything when it closes."""

from __future__ import annotations

import logging
import os
import struct
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from utils import datamart
from utils.data import FEATURES, generate_credit_data
from utils.datamart import journal
from utils.datamart.records import payload_driver_rows
from utils.serving.group_commit import CommitterClosed, GroupCommitter
from utils.serving.payload_writer import PayloadWriter

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path, monkeypatch):
    monkeypatch.delenv(datamart.DATAMART_URL_ENV, raising=False)
    made = datamart.connect(f"sqlite:///{tmp_path / 'mart' / 'datamart.sqlite'}")
    yield made
    journal.close_journal(made)  # this process's file closed: a dead writer's, as after an exit


def _records(count: int, seed: int = 1, minute: int = 0) -> list[dict]:
    """Scored records, the contract's inputs (typed columns and packed) and one of a declared schema (JSON)."""
    applicants = generate_credit_data(count, seed)[list(FEATURES)].astype(object).to_dict("records")
    made = [
        {
            "transaction_id": datamart.new_id(),
            "deployment_id": "d1",
            "model_id": "credit-risk-v1",
            "scored_at": T0 + timedelta(minutes=minute, seconds=number),
            "inputs": inputs,
            "prediction": "Risk" if number % 2 else "No Risk",
            "probability_no_risk": 0.25 + number / 1000,
            "probability_risk": 0.75 - number / 1000,
            "out_of_range": ["Age"] if number % 3 == 0 else None,
        }
        for number, inputs in enumerate(applicants)
    ]
    return [*made, {**made[0], "transaction_id": datamart.new_id(), "inputs": {"Age": 30, "Note": "declared"}}]


def _files(engine) -> list[str]:
    folder = journal.journal_folder(engine)
    return sorted(name for name in os.listdir(folder) if name.endswith(".journal")) if os.path.isdir(folder) else []


def _query(engine, sql: str) -> list:
    with sa.create_engine(engine.url).connect() as plain:  # an engine that does not drain: what is in the file
        return plain.exec_driver_sql(sql).all()


def _offsets(engine) -> dict[str, int]:
    return dict(_query(engine, "SELECT file_name, ingested_bytes FROM payload_journal_offsets"))


def _stored(engine) -> list[str]:
    return sorted(row[0] for row in _query(engine, "SELECT transaction_id FROM payload_records"))


def test_journaled_records_read_back_as_records_inserted_directly(engine, tmp_path):
    records = _records(8)
    assert journal.append(engine, records[:5]) == 5 and journal.append(engine, records[5:]) == 4
    assert journal.drain(engine) == 2  # two frames: two requests
    direct = datamart.connect(f"sqlite:///{tmp_path / 'direct.sqlite'}")
    datamart.insert_payload(direct, records)
    pd.testing.assert_frame_equal(datamart.read_payload(engine), datamart.read_payload(direct))
    assert journal.drain(engine) == 0  # nothing twice


def test_a_drain_that_fails_before_its_commit_ingests_nothing_and_the_next_one_everything_once(engine, monkeypatch):
    records = _records(6)
    journal.append(engine, records[:3])
    journal.append(engine, records[3:])
    checks = []

    def identity(checked):  # the check before the commit fails: the transaction is rolled back
        checks.append(checked)
        if len(checks) == 2:
            raise datamart.DatamartUnavailable("the file is gone")

    monkeypatch.setattr(journal, "check_identity", identity)
    with pytest.raises(datamart.DatamartUnavailable):
        journal.drain(engine)
    assert _stored(engine) == [] and _offsets(engine) == {}
    monkeypatch.undo()
    assert journal.drain(engine) == 2
    assert _stored(engine) == sorted(r["transaction_id"] for r in records)
    path = os.path.join(journal.journal_folder(engine), _files(engine)[0])
    assert list(_offsets(engine).values()) == [os.path.getsize(path)]


def test_an_incomplete_last_frame_waits_for_the_rest_then_is_ingested(engine):
    first, second = _records(2, seed=2), _records(3, seed=3)
    journal.append(engine, first)
    path = os.path.join(journal.journal_folder(engine), _files(engine)[0])
    frame = journal.encode(payload_driver_rows(engine.dialect, second)[1], journal._layout(engine.dialect))
    with open(path, "ab") as file:  # a write half copied, as a reader may see one
        file.write(frame[:40])
    assert journal.drain(engine) == 1
    assert _stored(engine) == sorted(r["transaction_id"] for r in first)
    with open(path, "ab") as file:
        file.write(frame[40:])
    assert journal.drain(engine) == 1
    assert _stored(engine) == sorted(r["transaction_id"] for r in first + second)


def test_a_dead_writers_file_is_ingested_and_removed_a_live_writers_stays(engine, caplog):
    live = _records(2, seed=4)
    journal.append(engine, live)
    journal.drain(engine)
    assert len(_files(engine)) == 1 and len(_offsets(engine)) == 1  # its writer (this process) holds it
    journal.close_journal(engine)  # the writer gone, as when its process dies
    dead = _records(3, seed=5)
    journal.append(engine, dead)  # a new file, live
    name = next(n for n in _files(engine) if n not in _offsets(engine))
    journal.close_journal(engine)
    with open(os.path.join(journal.journal_folder(engine), name), "ab") as file:
        file.write(b"\0" * 100)  # a tail torn by a power loss
    with caplog.at_level(logging.WARNING, logger="utils.datamart.journal"):
        assert journal.drain(engine) == 1
    assert "skipped" in caplog.text
    assert _files(engine) == [] and _offsets(engine) == {}
    assert _stored(engine) == sorted(r["transaction_id"] for r in live + dead)


def test_a_record_already_stored_is_not_stored_again_and_one_the_insert_would_refuse_is_not_journaled(engine):
    records = _records(3, seed=9)
    datamart.insert_payload(engine, records[:1])  # as in a data mart restored from a backup beside its journal
    journal.append(engine, records)
    assert journal.drain(engine) == 1
    assert _stored(engine) == sorted(r["transaction_id"] for r in records)
    with pytest.raises(ValueError, match="holds no prediction"):
        journal.append(engine, [{**_records(1, seed=10)[0], "prediction": None}])
    assert journal.drain(engine) == 0


def test_a_writer_moves_to_a_new_file_past_its_size_and_the_old_one_is_removed_once_ingested(engine, monkeypatch):
    monkeypatch.setattr(journal, "ROTATE_BYTES", 1)  # every append after the first opens a new file
    records = _records(3, seed=12)
    for record in records:
        journal.append(engine, [record])
    assert len(_files(engine)) == len(records)
    assert journal.drain(engine) == len(records)
    assert len(_files(engine)) == 1 and _stored(engine) == sorted(r["transaction_id"] for r in records)


def test_a_read_right_after_an_append_sees_the_records(engine):
    records = _records(3, seed=6)
    journal.append(engine, records)
    assert sorted(datamart.read_payload(engine)["transaction_id"]) == sorted(r["transaction_id"] for r in records)
    assert len(datamart.read_window(engine, "d1")) == len(records)


def test_a_replaced_data_mart_file_takes_nothing(engine):
    path = engine.url.database
    os.replace(path, f"{path}.old")
    with open(path, "wb"):
        pass
    with pytest.raises(datamart.DatamartUnavailable):
        journal.append(engine, _records(1))
    assert _files(engine) == []


def test_a_frame_of_another_version_is_refused_by_name(engine):
    journal.append(engine, _records(1))
    path = os.path.join(journal.journal_folder(engine), _files(engine)[0])
    with open(path, "r+b") as file:
        file.seek(2)
        file.write(struct.pack("<B", journal.FORMAT + 1))
    with pytest.raises(journal.JournalVersionError, match="format 2.*another version of the workshop"):
        journal.drain(engine)
    assert _stored(engine) == []


def test_the_service_writer_journals_falls_back_when_it_cannot_and_stores_everything_at_close(engine):
    committed = []

    def commit(rows):
        committed.extend(rows)
        return datamart.insert_payload(engine, rows)

    writer = PayloadWriter(engine, GroupCommitter(commit))
    records = _records(4, seed=7)
    assert writer.store(records[:1]) == 1 and committed == records[:1]  # not started: a group commit
    writer.start()
    assert writer.store_now(records[1:3]) and len(committed) == 1  # journaled, not committed
    blocker = f"{journal.journal_folder(engine)}-blocked"
    journal.close_journal(engine)  # the next append opens a new file, in a folder that cannot be made
    os.replace(journal.journal_folder(engine), blocker)
    with open(journal.journal_folder(engine), "w"):
        pass
    assert writer.store(records[3:]) == 2 and committed[1:] == records[3:]  # the append failed: committed
    assert writer.journal.problem is not None
    os.remove(journal.journal_folder(engine))
    os.replace(blocker, journal.journal_folder(engine))
    writer.close()
    assert _stored(engine) == sorted(r["transaction_id"] for r in records) and _files(engine) == []
    with pytest.raises(CommitterClosed):
        writer.store_now(_records(1, seed=8))
    again = PayloadWriter(engine, GroupCommitter(commit))  # another service of this process, on the same data mart
    again.start()
    assert again.store_now(_records(1, seed=11)) and len(committed) == 3  # journaled again
    again.close()
    assert PayloadWriter(datamart.connect("sqlite://"), GroupCommitter(commit)).journal is None  # in memory
