"""Payload and feedback inputs in typed columns (revision 0006) and packed rows (revision 0007): what goes where,
the packed format, a 0005 data mart upgraded with every record readable, and the window the monitors read (columns,
dtypes, order, values) through Arrow and through SQLAlchemy alike, packed or not, on SQLite and PostgreSQL."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa
from alembic import command

from utils import datamart
from utils.data import CATEGORIES, CLASS_ORDER, FEATURES, LABEL, generate_credit_data
from utils.datamart import arrow_reader, columnar, migrations, packed, schema
from utils.datamart.records import in_typed_columns

pytestmark = pytest.mark.datamarts

T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)
DECLARED = {"income": 1.5, "region": "north"}


def _applicants(count: int, seed: int) -> list[dict]:
    return generate_credit_data(count, seed)[list(FEATURES)].astype(object).to_dict("records")


def _payload(inputs: dict, at: datetime, deployment_id: str = "d1", **extra) -> dict:
    return {
        "transaction_id": datamart.new_id(),
        "deployment_id": deployment_id,
        "model_id": "credit-risk-v1",
        "scored_at": at,
        "inputs": inputs,
        "prediction": "Risk" if inputs.get("Sex") == "female" else "No Risk",
        "probability_no_risk": 0.4,
        "probability_risk": 0.6,
        **extra,
    }


@pytest.fixture
def empty_url(datamart_kind, tmp_path, request) -> Iterator[str]:
    """An empty database of the pass's kind, at no revision."""
    if datamart_kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.sqlite'}"
    else:
        yield request.getfixturevalue("postgres_url")


def test_only_the_contracts_fields_with_their_types_go_to_the_columns():
    [applicant] = _applicants(1, 2)
    assert in_typed_columns(applicant)
    assert not in_typed_columns({**applicant, "Age": float(applicant["Age"])})
    assert not in_typed_columns({**applicant, "Age": str(applicant["Age"])})
    assert not in_typed_columns({**applicant, "Age": True})
    assert not in_typed_columns({**applicant, "extra": 1})
    assert not in_typed_columns({name: applicant[name] for name in FEATURES[1:]})
    assert not in_typed_columns(DECLARED)


def _old_rows(engine) -> tuple[list[dict], list[dict]]:
    """Records stored at revision 0005, inputs as JSON: contract records, one with a number as text, a declared
    schema's."""
    credit = [_payload(inputs, T0 + timedelta(minutes=i)) for i, inputs in enumerate(_applicants(3, 5))]
    odd = _payload({**_applicants(1, 6)[0], "Age": "41"}, T0 + timedelta(minutes=5))
    declared = _payload(DECLARED, T0, deployment_id="s1")
    payload = [*credit, odd, declared]
    feedback = [
        {"feedback_id": f"f{i}", "deployment_id": r["deployment_id"], "recorded_at": r["scored_at"],
         "inputs": r["inputs"], "label": "Risk", "transaction_id": r["transaction_id"]}
        for i, r in enumerate(payload)
    ]  # fmt: skip
    time, text, number = sa.DateTime(timezone=True), sa.String, sa.Float
    old = sa.MetaData()  # the two tables as of revision 0005: inputs as JSON
    payload_table = sa.Table(
        "payload_records", old, *(sa.Column(n, text) for n in ("transaction_id", "deployment_id", "model_id")),
        sa.Column("scored_at", time), sa.Column("inputs", sa.JSON), sa.Column("prediction", text),
        sa.Column("probability_no_risk", number), sa.Column("probability_risk", number),
    )  # fmt: skip
    feedback_table = sa.Table(
        "feedback_records", old, sa.Column("feedback_id", text), sa.Column("deployment_id", text),
        sa.Column("recorded_at", time), sa.Column("inputs", sa.JSON), sa.Column("label", text),
        sa.Column("transaction_id", text),
    )  # fmt: skip
    with engine.begin() as connection:
        command.upgrade(migrations._config(connection), "0005")
        connection.execute(payload_table.insert(), payload)
        connection.execute(feedback_table.insert(), feedback)
    engine.dispose()
    return payload, feedback


@pytest.mark.slow
def test_a_0005_data_mart_is_upgraded_with_every_record_readable(empty_url, monkeypatch):
    monkeypatch.setattr(columnar, "_ARROW_ROWS", 0)  # windows read through ADBC, however small
    payload, feedback = _old_rows(sa.create_engine(empty_url))
    engine = datamart.connect(empty_url)
    assert migrations.current(engine) == migrations.head()
    with engine.connect() as connection:
        for table in ("payload_records", "feedback_records"):
            counts = connection.execute(sa.text(f'SELECT count(inputs), count("Age") FROM {table}')).one()
            assert tuple(counts) == (2, 3)  # the odd and the declared record keep their JSON
    stored = datamart.read_payload(engine, "d1")
    assert stored["transaction_id"].tolist() == [r["transaction_id"] for r in payload[:4]]
    for record, (_, row) in zip(payload[:4], stored.iterrows(), strict=True):
        assert {name: row[name] for name in FEATURES} == record["inputs"]
    assert datamart.read_payload(engine, "s1")[["income", "region"]].values.tolist() == [[1.5, "north"]]
    assert datamart.read_transaction(engine, payload[1]["transaction_id"])["Job"] == payload[1]["inputs"]["Job"]
    labelled = datamart.read_feedback(engine, "d1")
    assert labelled["Age"].tolist() == [r["inputs"]["Age"] for r in feedback[:4]]
    window = datamart.read_window(engine, "d1")
    assert window["Age"].tolist() == [r["inputs"]["Age"] for r in payload[:4]]  # "41" read back as it was stored
    assert window["Housing"].astype(str).tolist() == [r["inputs"]["Housing"] for r in payload[:4]]
    assert datamart.read_window(engine, "d1", feedback=True)["logged_probability_risk"].tolist() == [0.6] * 4
    engine.dispose()


@pytest.fixture
def logged(datamart_url):
    """A data mart with 40 payload records of ``d1`` logged out of time order (two at the same moment), some
    flagged out of range, 12 feedback records (half naming a logged transaction), and records of ``d2``."""
    engine = datamart.connect(datamart_url)
    moments = [T0 + timedelta(minutes=(17 * i) % 40) for i in range(40)]
    moments[3] = moments[4]
    payload = [
        _payload(inputs, at, out_of_range=["Age"] if i % 7 == 0 else None)
        for i, (inputs, at) in enumerate(zip(_applicants(40, 8), moments, strict=True))
    ]
    datamart.insert_payload(engine, payload)
    datamart.insert_payload(engine, [_payload(inputs, T0) for inputs in _applicants(5, 9)])
    datamart.insert_payload(engine, [_payload(i, T0, deployment_id="d2") for i in _applicants(5, 10)])
    feedback = [
        {"feedback_id": datamart.new_id(), "deployment_id": "d1", "recorded_at": T0 + timedelta(minutes=i),
         "inputs": payload[i]["inputs"], "label": CLASS_ORDER[i % 2],
         "transaction_id": payload[i]["transaction_id"] if i % 2 else None}
        for i in range(12)
    ]  # fmt: skip
    datamart.insert_feedback(engine, feedback)
    return engine


@pytest.mark.parametrize("arrow_rows", [0, 10**9])  # through ADBC, and through SQLAlchemy
def test_the_window_reads_as_typed_columns_in_time_order(logged, monkeypatch, arrow_rows):
    monkeypatch.setattr(columnar, "_ARROW_ROWS", arrow_rows)
    start, end = T0, T0 + timedelta(minutes=30)
    window = datamart.read_window(logged, "d1", start, end)
    assert list(window.columns) == [*FEATURES, "prediction", "probability_risk", "out_of_range"]
    for name in FEATURES:
        if name in CATEGORIES:
            assert list(window[name].cat.categories) == list(CATEGORIES[name]), name
        else:
            assert window[name].dtype == np.int64, name
    assert list(window["prediction"].cat.categories) == list(CLASS_ORDER)
    assert (window["probability_risk"].dtype, window["out_of_range"].dtype) == (np.float64, np.bool_)
    stored = datamart.read_payload(logged, "d1", start, end)  # by record id
    expected = stored.sort_values("scored_at", kind="stable").reset_index(drop=True)  # by time, then record id
    assert len(window) == len(expected) == 35
    for name in (*FEATURES, "prediction"):
        assert window[name].astype(object).tolist() == expected[name].tolist(), name
    assert window["probability_risk"].tolist() == expected["probability_risk"].tolist()
    assert window["out_of_range"].tolist() == expected["out_of_range"].notna().tolist()


@pytest.mark.slow
def test_the_arrow_and_the_sqlalchemy_reads_agree(logged, monkeypatch):
    datamart.insert_payload(logged, [_payload({**_applicants(1, 11)[0], "Age": 33.0}, T0 + timedelta(minutes=1))])
    monkeypatch.setattr(columnar, "_ARROW_ROWS", 0)  # through ADBC, however small
    fast = [datamart.read_window(logged, "d1", feedback=f) for f in (False, True)]
    monkeypatch.setattr(columnar, "_SPLIT_ROWS", 10)  # read in two halves at once, as a large window is
    for whole, halves in zip(fast, [datamart.read_window(logged, "d1", feedback=f) for f in (False, True)]):
        pd.testing.assert_frame_equal(whole, halves)
    monkeypatch.setattr(columnar, "_adbc", lambda engine: None)
    for arrow, plain in zip(fast, [datamart.read_window(logged, "d1", feedback=f) for f in (False, True)]):
        pd.testing.assert_frame_equal(arrow, plain)
    assert fast[0]["Age"].dtype == np.float64 and 33.0 in fast[0]["Age"].tolist()  # its inputs were JSON


@pytest.mark.slow
def test_the_reader_child_imports_this_project_from_any_working_folder(logged, monkeypatch, tmp_path):
    """A working folder with a ``utils`` package of its own (a common name) does not change what the child runs."""
    (tmp_path / "utils").mkdir()
    (tmp_path / "utils" / "__init__.py").write_text("raise ImportError('another project of the same name')\n")
    monkeypatch.chdir(tmp_path)
    expected = datamart.read_window(logged, "d1")
    monkeypatch.setattr(columnar, "_ARROW_ROWS", 0)  # through ADBC's child on SQLite, however small
    pd.testing.assert_frame_equal(datamart.read_window(logged, "d1"), expected)


def test_feedback_carries_the_logged_probability_of_the_transaction_it_names(logged):
    window = datamart.read_window(logged, "d1", feedback=True)
    assert list(window.columns) == [*FEATURES, LABEL, "logged_probability_risk"]
    assert list(window[LABEL].cat.categories) == list(CLASS_ORDER)
    logged_risk = window["logged_probability_risk"].to_numpy()
    assert np.isnan(logged_risk[::2]).all() and (logged_risk[1::2] == 0.6).all()
    assert window[LABEL].astype(str).tolist() == [CLASS_ORDER[i % 2] for i in range(12)]


@pytest.mark.slow
def test_a_read_begun_early_gives_the_same_records_and_leaves_no_file_behind(logged, monkeypatch, tmp_path):
    monkeypatch.setattr(columnar, "_ARROW_ROWS", 0)  # through ADBC, however small
    monkeypatch.setattr(columnar, "_SPLIT_ROWS", 10)  # a large window: two readers at once, unless asked for one
    (temporary := tmp_path / "temporary").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))  # where the readers write
    for feedback in (False, True):
        expected = datamart.read_window(logged, "d1", feedback=feedback)
        with datamart.WindowRead(logged, "d1", feedback=feedback, halves=False) as read:
            pd.testing.assert_frame_equal(read.result(), expected)
    datamart.WindowRead(logged, "d1").close()  # its records not wanted: the readers stopped
    assert list(temporary.iterdir()) == []


def test_an_empty_window_has_the_same_columns_and_types(logged):
    for feedback in (False, True):
        empty = datamart.read_window(logged, "nobody", feedback=feedback)
        pd.testing.assert_frame_equal(empty, columnar.empty_window(feedback=feedback))
        assert empty.empty
    assert columnar.read_window_columns(logged, "d1").num_rows == 45


def _codes(inputs: dict) -> tuple:
    """The packed row's values of ``inputs``, found another way: each category's index in its domain (-1: none)."""
    domains = {name: list(CATEGORIES.get(name, ())) for name in FEATURES}
    return tuple(
        (domains[name].index(value) if value in domains[name] else -1) if domains[name] else value
        for name, value in ((name, inputs[name]) for name in FEATURES)
    )


def _unpacked(row: bytes) -> tuple:
    return tuple(np.frombuffer(row, packed.ROW_DTYPE)[0].tolist())


def test_a_packed_row_holds_every_category_as_its_code_and_every_32_bit_number():
    [applicant] = _applicants(1, 3)
    assert packed.ROW.size == packed.ROW_DTYPE.itemsize == 41  # 13 categories of a byte, 7 numbers of 4 bytes
    assert _unpacked(packed.pack(applicant)) == _codes(applicant)
    for name, domain in CATEGORIES.items():
        for code, value in enumerate(domain):
            assert _unpacked(packed.pack({**applicant, name: value}))[FEATURES.index(name)] == code
        for unknown in ("no such value", ""):  # as the typed reader codes a value outside the domain
            assert _unpacked(packed.pack({**applicant, name: unknown}))[FEATURES.index(name)] == -1
    for bound in (-(2**31), 0, 2**31 - 1):
        assert _unpacked(packed.pack({**applicant, "LoanAmount": bound})) == _codes({**applicant, "LoanAmount": bound})
    for overflow in (2**31, -(2**31) - 1, 10**12):
        assert packed.pack({**applicant, "Age": overflow}) is None


def test_the_reader_unpacks_the_rows_and_tells_which_had_none():
    applicants = _applicants(4, 4)
    rows = [packed.pack(applicants[0]), b"", packed.pack(applicants[2]), packed.pack(applicants[3])]
    batch = pa.record_batch([pa.array(rows, pa.binary()), pa.array([0.1, 0.2, 0.3, 0.4])], names=["p", "risk"])
    kinds = [{"packed": packed.unpacking()}, "float"]
    for part, first in ((batch, 0), (batch.slice(1), 1), (batch.slice(2), 2)):  # a batch's slice starts further on
        typed = arrow_reader.typed_batch(part, kinds)
        assert typed.schema == arrow_reader.typed_schema(["p", "risk"], kinds)
        assert typed.schema.names == [*FEATURES, "p", "risk"]
        assert typed.column("p").to_pylist() == [row != b"" for row in rows[first:]]
        empty = tuple(-1 if name in CATEGORIES else 0 for name in FEATURES)
        expected = [_codes(a) if row else empty for a, row in zip(applicants[first:], rows[first:], strict=True)]
        assert list(zip(*(typed.column(name).to_pylist() for name in FEATURES))) == expected
        assert [typed.column(name).type for name in ("CheckingStatus", "Age")] == [pa.int8(), pa.int64()]
    wrong = pa.record_batch([pa.array([rows[0], rows[0][:40]], pa.binary())], names=["p"])
    with pytest.raises(ValueError, match="not 41 bytes long"):
        arrow_reader.typed_batch(wrong, kinds[:1])


def _packed_rows(engine, feedback: bool = False) -> dict:
    table = schema.feedback_records if feedback else schema.payload_records
    key = table.c.feedback_id if feedback else table.c.transaction_id
    with engine.connect() as connection:
        return dict(connection.execute(sa.select(key, table.c.packed_features)).all())


def test_every_insert_path_stores_the_packed_row_of_the_contracts_inputs(datamart_url):
    engine = datamart.connect(datamart_url)
    inputs = _applicants(3, 12)
    payload = [_payload(inputs[0], T0), _payload(inputs[1], T0), _payload(inputs[2], T0), _payload(DECLARED, T0)]
    datamart.insert_payload(engine, payload[:1])
    datamart.store_batch_payload(engine, payload[1:2])  # a batch job's chunk
    if datamart.insert_payload_now(engine, payload[2:3]) is None:  # the service's direct commit: SQLite only
        assert engine.dialect.name != "sqlite"
        datamart.insert_payload(engine, payload[2:3])
    datamart.insert_payload(engine, payload[3:])
    feedback = [{**r, "feedback_id": r["transaction_id"], "recorded_at": T0, "label": "Risk"} for r in payload]
    datamart.insert_feedback(engine, feedback)
    expected = {r["transaction_id"]: packed.pack(r["inputs"]) for r in payload[:3]} | {
        payload[3]["transaction_id"]: None
    }
    assert _packed_rows(engine) == _packed_rows(engine, feedback=True) == expected


def _clear_packed_rows(engine, ids: list[str] | None = None) -> None:
    """Set records' packed rows to NULL, as a record stored before revision 0007 has it (None: every record)."""
    with engine.begin() as connection:
        for table, key in ((schema.payload_records, "transaction_id"), (schema.feedback_records, "feedback_id")):
            chosen = table.update() if ids is None else table.update().where(table.c[key].in_(ids))
            connection.execute(chosen.values(packed_features=None))


@pytest.mark.parametrize("arrow_rows", [pytest.param(0, marks=pytest.mark.slow), 10**9])  # ADBC, SQLAlchemy
def test_a_window_of_packed_unpacked_and_json_records_reads_as_from_the_typed_columns(logged, monkeypatch, arrow_rows):
    monkeypatch.setattr(columnar, "_ARROW_ROWS", arrow_rows)
    extra = [_payload({**_applicants(1, 13)[0], "Age": 33.0}, T0 + timedelta(minutes=2))]  # inputs as JSON
    if logged.dialect.name == "sqlite":  # PostgreSQL's integer columns refuse a number outside 32 bits
        extra.append(_payload({**_applicants(1, 14)[0], "LoanAmount": 2**31}, T0 + timedelta(minutes=3)))
    datamart.insert_payload(logged, extra)
    stored = datamart.read_payload(logged, "d1")
    _clear_packed_rows(logged, stored["transaction_id"].tolist()[::3])  # as records stored before revision 0007
    feedback_ids = datamart.read_feedback(logged, "d1")["feedback_id"].tolist()
    _clear_packed_rows(logged, feedback_ids[::3])
    assert 0 < sum(row is not None for row in _packed_rows(logged).values()) < len(stored)
    mixed = [datamart.read_window(logged, "d1", feedback=f) for f in (False, True)]
    _clear_packed_rows(logged)
    from_columns = [datamart.read_window(logged, "d1", feedback=f) for f in (False, True)]
    for window, expected in zip(mixed, from_columns, strict=True):
        pd.testing.assert_frame_equal(window, expected)
    by_time = stored.sort_values("scored_at", kind="stable").reset_index(drop=True)
    for name in FEATURES:
        assert mixed[0][name].astype(object).tolist() == by_time[name].tolist(), name
    assert 33.0 in mixed[0]["Age"].tolist() and mixed[0]["Age"].dtype == np.float64
