"""Schema inference and anomaly reports: every kind of bad data is named by column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from utils import config, pipeline
from utils.data import CONTRACT_RANGES, FEATURES, LABEL, DataError, generate_credit_data, load_credit_csv
from utils.validation import (
    ANOMALY_COLUMNS,
    DUPLICATE_POLICIES,
    blocking_anomalies,
    contract_schema,
    drop_duplicate_rows,
    duplicate_count,
    duplicates_note,
    find_anomalies,
    infer_schema,
    load_schema,
    save_schema,
    schema_table,
    summarize_anomalies,
)


@pytest.fixture(scope="module")
def clean_frame(small_frame) -> pd.DataFrame:
    """The generated rows without the few exact duplicates the generator makes, as real files hold."""
    return small_frame[~small_frame.duplicated()].reset_index(drop=True)


@pytest.fixture(scope="module")
def schema(clean_frame):
    return infer_schema(clean_frame)


@pytest.fixture
def frame(clean_frame) -> pd.DataFrame:
    return clean_frame.copy()


def only(anomalies: pd.DataFrame, column: str, anomaly_prefix: str) -> pd.Series:
    """The single report row of ``column`` whose anomaly starts with ``anomaly_prefix``."""
    rows = anomalies[(anomalies["column"] == column) & anomalies["anomaly"].str.startswith(anomaly_prefix)]
    assert len(rows) == 1, f"expected one {anomaly_prefix!r} row for {column!r} in\n{anomalies}"
    return rows.iloc[0]


def row_set(report_row: pd.Series) -> set[int]:
    return {int(i) for i in report_row["rows"].split(", ")} if report_row["rows"] else set()


def with_text_in_loan_amount(frame: pd.DataFrame, tmp_path) -> pd.DataFrame:
    """Text in a number column, as it arrives: through a CSV file."""
    frame["LoanAmount"] = frame["LoanAmount"].astype(object)
    frame.loc[3, "LoanAmount"] = "abc"
    path = tmp_path / "text.csv"
    frame.to_csv(path, index=False)
    return load_credit_csv(path)


# --- clean data ----------------------------------------------------------------------------


def test_clean_data_has_no_anomalies(clean_frame, schema):
    anomalies = find_anomalies(clean_frame, schema)
    assert anomalies.empty
    assert list(anomalies.columns) == ANOMALY_COLUMNS


def test_other_sample_passes_contract():
    assert blocking_anomalies(find_anomalies(generate_credit_data(600, 99), contract_schema()), "keep").empty


def test_bundled_data_honours_contract_with_its_duplicates_reported():
    anomalies = find_anomalies(load_credit_csv(config.BUNDLED_DATA), contract_schema())
    assert anomalies[["column", "anomaly", "count"]].values.tolist() == [["(all columns)", "duplicate rows", 18]]


def test_column_order_does_not_matter(clean_frame, schema):
    shuffled = clean_frame[list(reversed(clean_frame.columns))]
    assert find_anomalies(shuffled, schema).empty


# --- each kind of anomaly ------------------------------------------------------------------


def test_renamed_column_is_missing_and_unexpected(frame, schema):
    anomalies = find_anomalies(frame.rename(columns={"Telephone": "Phone"}), schema)
    assert len(anomalies) == 2
    assert only(anomalies, "Telephone", "missing column")["count"] == 1
    assert only(anomalies, "Phone", "unexpected column")["count"] == 1


def test_dropped_column_is_missing(frame, schema):
    anomalies = find_anomalies(frame.drop(columns="Age"), schema)
    assert anomalies["column"].tolist() == ["Age"]
    assert anomalies["anomaly"].tolist() == ["missing column"]


def test_text_in_number_column_is_wrong_type(frame, schema, tmp_path):
    anomalies = find_anomalies(with_text_in_loan_amount(frame, tmp_path), schema)
    assert len(anomalies) == 1
    report = only(anomalies, "LoanAmount", "wrong type")
    assert report["count"] == 1
    assert report["examples"] == "abc"
    assert row_set(report) == {3}


def test_unseen_category_shows_value(frame, schema):
    frame.loc[5, "LoanPurpose"] = "spaceship"
    frame.loc[6, "LoanPurpose"] = "spaceship"
    frame.loc[9, "LoanPurpose"] = "yacht"
    anomalies = find_anomalies(frame, schema)
    assert len(anomalies) == 1
    report = only(anomalies, "LoanPurpose", "unseen category")
    assert report["count"] == 3
    assert set(report["examples"].split(", ")) == {"spaceship", "yacht"}
    assert row_set(report) == {5, 6, 9}


def test_unseen_label(frame, schema):
    frame.loc[2, LABEL] = "Maybe"
    report = only(find_anomalies(frame, schema), LABEL, "unseen category")
    assert report["examples"] == "Maybe"
    assert row_set(report) == {2}


def test_out_of_range(frame, schema):
    frame.loc[7, "Age"] = 200
    anomalies = find_anomalies(frame, schema)
    assert len(anomalies) == 1
    report = only(anomalies, "Age", "out of range")
    low, high = CONTRACT_RANGES["Age"]
    assert report["anomaly"] == f"out of range [{low}, {high}]"
    assert report["examples"] == "200"
    assert row_set(report) == {7}


def test_fraction_in_integer_column_is_wrong_type(frame, schema):
    frame["Age"] = frame["Age"].astype(float)
    frame.loc[4, "Age"] = 30.5
    report = only(find_anomalies(frame, schema), "Age", "wrong type")
    assert report["examples"] == "30.5"
    assert row_set(report) == {4}


def test_nulls_are_listed_by_row(frame, schema):
    frame.loc[[8, 9], "Housing"] = None
    frame.loc[10, "Age"] = np.nan  # the column turns float, as a CSV with a gap reads
    anomalies = find_anomalies(frame, schema)
    housing = only(anomalies, "Housing", "null values")
    assert housing["count"] == 2
    assert row_set(housing) == {8, 9}
    assert housing["examples"] == ""
    age = only(anomalies, "Age", "null values")
    assert row_set(age) == {10}
    # A float column holding whole numbers and a gap is not also a type error.
    assert set(anomalies["anomaly"]) == {"null values"}


def test_duplicate_rows_count_extra_copies_and_name_the_rows_they_repeat(frame, schema):
    end = len(frame)
    duplicated = pd.concat([frame, frame.iloc[[2, 1, 2]]], ignore_index=True)
    anomalies = find_anomalies(duplicated, schema)
    assert len(anomalies) == 1
    report = only(anomalies, "(all columns)", "duplicate rows")
    assert report["count"] == 3  # the extra copies, not every row involved
    assert report["rows"] == f"{end}, {end + 1}, {end + 2}"
    assert report["examples"] == f"{end} repeats 2, {end + 1} repeats 1, {end + 2} repeats 2"
    assert duplicate_count(anomalies) == 3


def test_rows_list_the_first_rows_at_fault_in_order(frame, schema):
    at_fault = [40, 2, 33, 17, 5, 29, 8]
    frame.loc[at_fault, "LoanPurpose"] = [f"purpose-{i}" for i in range(len(at_fault))]
    report = only(find_anomalies(frame, schema), "LoanPurpose", "unseen category")
    assert report["rows"] == "2, 5, 8, 17, 29"
    assert report["count"] == len(at_fault)


@pytest.mark.parametrize(("policy", "stops"), [("keep", False), ("drop", False), ("fail", True)])
def test_duplicates_stop_a_run_only_when_asked(frame, schema, policy, stops):
    duplicated = pd.concat([frame, frame.iloc[[4]]], ignore_index=True)
    duplicated.loc[0, "Age"] = 200
    blocking = blocking_anomalies(find_anomalies(duplicated, schema), policy)
    assert ("(all columns)" in blocking["column"].tolist()) is stops
    assert only(blocking, "Age", "out of range")["rows"] == "0"  # other anomalies stop the run whatever the policy


def test_unknown_duplicate_policy_is_refused_naming_the_choices(frame, schema):
    with pytest.raises(ValueError, match="keep, drop, fail.*'ignore'"):
        blocking_anomalies(find_anomalies(frame, schema), "ignore")
    assert DUPLICATE_POLICIES == ("keep", "drop", "fail")


def test_drop_duplicate_rows_keeps_the_first_of_each(frame):
    duplicated = pd.concat([frame, frame.iloc[[3, 3, 9]]], ignore_index=True)
    dropped = drop_duplicate_rows(duplicated)
    assert len(dropped) == len(frame)
    assert list(dropped.index) == list(range(len(frame)))  # row labels of the file are kept
    assert not dropped.duplicated().any()


def test_duplicates_note_says_what_happens(frame, schema):
    anomalies = find_anomalies(pd.concat([frame, frame.iloc[[3, 3]]], ignore_index=True), schema)
    assert duplicates_note(anomalies, "keep").startswith("Warning: 2 duplicate rows (extra copies of earlier rows)")
    assert "are dropped before the split" in duplicates_note(anomalies, "drop")
    assert "the run stops here" in duplicates_note(anomalies, "fail")
    assert duplicates_note(find_anomalies(frame, schema), "keep") == "No duplicate rows."


def test_a_file_with_duplicates_trains_as_its_own_reference():
    """The documented recipe for the public sample, ``--input X --reference X``, on a file with duplicate rows."""
    sample = generate_credit_data(5000, 2026)
    assert sample.duplicated().sum() > 0
    anomalies = find_anomalies(sample, infer_schema(sample))
    assert blocking_anomalies(anomalies, "keep").empty
    assert duplicate_count(anomalies) == sample.duplicated().sum()


def test_input_outside_the_reference_range_but_inside_the_contract_is_no_anomaly(frame, schema):
    """``--input X`` alone: X is checked against the contract's ranges, not the bundled file's minimum."""
    frame.loc[0, "LoanAmount"] = CONTRACT_RANGES["LoanAmount"][0]
    frame.loc[1, "Age"] = CONTRACT_RANGES["Age"][1]
    assert frame["Age"].max() > frame["Age"].drop(index=1).max()
    assert find_anomalies(frame, schema).empty


def test_numbers_in_category_column_give_one_row_per_anomaly(frame, schema):
    """A whole column of the wrong type is one report row, not one per distinct value."""
    frame["Housing"] = frame["LoanAmount"]
    anomalies = find_anomalies(frame, schema)
    assert set(anomalies["column"]) == {"Housing"}
    wrong_type = only(anomalies, "Housing", "wrong type")
    assert wrong_type["count"] == len(frame)
    assert only(anomalies, "Housing", "unseen category")["count"] == len(frame)
    assert len(anomalies) == 2


def test_examples_and_rows_are_capped(frame, schema):
    frame.loc[0:19, "LoanPurpose"] = [f"purpose-{i}" for i in range(20)]
    report = only(find_anomalies(frame, schema), "LoanPurpose", "unseen category")
    assert report["count"] == 20
    assert len(report["examples"].split(", ")) == 5
    assert len(report["rows"].split(", ")) == 5


def test_all_anomalies_at_once(frame, schema, tmp_path):
    bad = with_text_in_loan_amount(frame, tmp_path)
    bad = pd.concat([bad, bad.iloc[[1, 2]]], ignore_index=True)
    bad = bad.rename(columns={"Telephone": "Phone"})
    bad.loc[5, "LoanPurpose"] = "spaceship"
    bad.loc[7, "Age"] = 200
    bad.loc[[8, 9], "Housing"] = None
    anomalies = find_anomalies(bad, schema)
    found = set(zip(anomalies["column"], anomalies["anomaly"].str.extract(r"^([a-z ]+)")[0].str.strip()))
    assert found == {
        ("Telephone", "missing column"),
        ("Phone", "unexpected column"),
        ("LoanAmount", "wrong type"),
        ("LoanPurpose", "unseen category"),
        ("Age", "out of range"),
        ("Housing", "null values"),
        ("(all columns)", "duplicate rows"),
    }
    assert only(anomalies, "LoanPurpose", "unseen category")["examples"] == "spaceship"
    assert row_set(only(anomalies, "Housing", "null values")) == {8, 9}
    # Contract columns come first, in contract order.
    contract_rows = [c for c in anomalies["column"] if c in FEATURES]
    assert contract_rows == sorted(contract_rows, key=list(FEATURES).index)


# --- what inference learns -----------------------------------------------------------------


def test_inferred_schema_learns_categories_and_notes_number_ranges(clean_frame):
    reference = clean_frame[(clean_frame["LoanPurpose"] != "vacation") & (clean_frame["Age"] <= 60)]
    reference = reference.reset_index(drop=True)
    inferred = infer_schema(reference)
    new = reference.copy()
    new.loc[0, "LoanPurpose"] = "vacation"
    new.loc[1, "Age"] = 61
    assert find_anomalies(new, contract_schema()).empty
    anomalies = find_anomalies(new, inferred)
    assert anomalies[["column", "anomaly"]].values.tolist() == [["LoanPurpose", "unseen category"]]
    assert only(anomalies, "LoanPurpose", "unseen category")["examples"] == "vacation"
    seen = schema_table(inferred).set_index("column")["seen"]
    assert seen["Age"] == f"{reference['Age'].min()} … 60"
    assert seen["Sex"] == ""


def test_infer_schema_rejects_data_breaking_contract(frame):
    frame.loc[5, "LoanPurpose"] = "spaceship"
    frame.loc[7, "Sex"] = None
    with pytest.raises(DataError) as caught:
        infer_schema(frame)
    message = str(caught.value)
    assert "LoanPurpose" in message and "unseen category" in message and "spaceship" in message
    assert "Sex" in message and "null values" in message


def test_infer_schema_rejects_out_of_contract_range(frame):
    frame.loc[3, "Age"] = 120  # the contract's ages end at 100
    with pytest.raises(DataError, match="Age"):
        infer_schema(frame)


def test_infer_schema_accepts_reference_with_duplicates(clean_frame):
    reference = pd.concat([clean_frame, clean_frame.iloc[[0, 0, 5]]], ignore_index=True)
    assert find_anomalies(clean_frame, infer_schema(reference)).empty


def test_contract_without_label_accepts_features(clean_frame):
    features = clean_frame.drop(columns=LABEL)
    assert find_anomalies(features, contract_schema(label=False)).empty
    assert find_anomalies(features, infer_schema(features, label=False)).empty
    with_label = find_anomalies(features, contract_schema())
    assert with_label[["column", "anomaly"]].values.tolist() == [[LABEL, "missing column"]]


# --- persistence ---------------------------------------------------------------------------


def test_save_load_round_trip_gives_same_verdicts(frame, schema, tmp_path):
    path = save_schema(schema, tmp_path / "nested" / "schema.yaml")
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["schema.yaml"]  # no temporary file left
    loaded = load_schema(path)
    assert find_anomalies(frame, loaded).empty
    frame.loc[5, "LoanPurpose"] = "spaceship"
    frame.loc[7, "Age"] = 200
    frame.loc[[8, 9], "Housing"] = None
    bad = frame.rename(columns={"Telephone": "Phone"})
    expected = find_anomalies(bad, schema)
    assert len(expected) == 5
    pd.testing.assert_frame_equal(find_anomalies(bad, loaded), expected)


def test_save_schema_overwrites(schema, tmp_path):
    path = tmp_path / "schema.yaml"
    save_schema(contract_schema(), path)
    save_schema(schema, path)
    assert load_schema(path).name == schema.name


def test_load_missing_schema_raises_with_path(tmp_path):
    with pytest.raises(DataError, match="missing.yaml"):
        load_schema(tmp_path / "missing.yaml")


# --- readable views ------------------------------------------------------------------------


def test_summarize_anomalies(frame, clean_frame, schema):
    frame.loc[5, "LoanPurpose"] = "spaceship"
    frame.loc[[8, 9], "Housing"] = None
    summary = summarize_anomalies(find_anomalies(frame, schema))
    assert "LoanPurpose: unseen category (1)" in summary
    assert "Housing: null values (2)" in summary
    assert summarize_anomalies(find_anomalies(clean_frame, schema)) == ""


def test_schema_table_lists_every_column(schema):
    table = schema_table(schema)
    assert table["column"].tolist() == [*FEATURES, LABEL]
    assert set(table.loc[table["column"] == "Age", "type"]) == {"integer"}
    assert set(table.loc[table["column"] == "Sex", "type"]) == {"category"}
    assert "female" in table.loc[table["column"] == "Sex", "allowed"].item()


# --- the policy reaches the validation step ------------------------------------------------


def test_pipeline_passes_the_duplicate_policy_to_validation(monkeypatch, tmp_path):
    validate = pipeline.STEPS[0]
    assert validate.parameters(pipeline.DEFAULT_SETTINGS, {})["DUPLICATES"] == "keep"
    seen = {}

    def stop_at_once(settings, **_):
        seen.update(settings)
        raise pipeline.PipelineStopped(validate.name, "stopped by the test", tmp_path / "01.ipynb")

    monkeypatch.setattr(pipeline, "run_pipeline", stop_at_once)
    monkeypatch.setattr(pipeline.datamart, "connect", lambda **_: None)
    assert pipeline.main(["--duplicates", "drop", "--work-dir", str(tmp_path)]) == 1
    assert validate.parameters({**pipeline.DEFAULT_SETTINGS, **seen}, {})["DUPLICATES"] == "drop"
    with pytest.raises(SystemExit):
        pipeline.main(["--duplicates", "ignore"])
