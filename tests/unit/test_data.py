"""The data contract, the generator that honours it, and the CSV loader."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from utils import config
from utils.data import (
    CATEGORICAL_FEATURES,
    CATEGORIES,
    CLASS_ORDER,
    COLUMNS,
    FAVOURABLE,
    FEATURES,
    LABEL,
    NUMERIC_FEATURES,
    NUMERIC_RANGES,
    UNFAVOURABLE,
    DataError,
    describe_training_data,
    file_sha256,
    generate_credit_data,
    in_monitored_group,
    load_credit_csv,
    main,
    write_csv,
)
from utils.registry import render_factsheet


def favourable_rate(frame: pd.DataFrame, mask) -> float:
    return float((frame.loc[mask, LABEL] == FAVOURABLE).mean())


# --- the contract itself -------------------------------------------------------------------


def test_contract_is_consistent():
    assert len(FEATURES) == 20
    assert COLUMNS == (*FEATURES, LABEL)
    assert set(CATEGORICAL_FEATURES) | set(NUMERIC_FEATURES) == set(FEATURES)
    assert not set(CATEGORICAL_FEATURES) & set(NUMERIC_FEATURES)
    assert CLASS_ORDER == (FAVOURABLE, UNFAVOURABLE) == ("No Risk", "Risk")


# --- the generator honours the contract ----------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"seed": 0},
        {"seed": 1},
        {"seed": 2, "drift": 1.0},
        {"seed": 3, "bias": 1.0, "bias_group": "Age"},
    ],
    ids=["seed0", "seed1", "full-drift", "full-age-bias"],
)
def test_generator_honours_contract(kwargs):
    frame = generate_credit_data(600, **kwargs)
    assert list(frame.columns) == list(COLUMNS)
    assert len(frame) == 600
    assert not frame.isna().any().any()
    for column, domain in CATEGORIES.items():
        assert set(frame[column]) <= set(domain), column
    for column, (low, high) in NUMERIC_RANGES.items():
        assert pd.api.types.is_integer_dtype(frame[column]), column
        assert frame[column].between(low, high).all(), column
    assert set(frame[LABEL]) == set(CLASS_ORDER)


def test_single_row():
    frame = generate_credit_data(1, 5)
    assert len(frame) == 1
    assert list(frame.columns) == list(COLUMNS)


def test_same_seed_gives_identical_frame():
    pd.testing.assert_frame_equal(generate_credit_data(600, 11), generate_credit_data(600, 11))


def test_other_seed_gives_different_frame():
    first, second = generate_credit_data(600, 11), generate_credit_data(600, 12)
    assert not first.equals(second)
    # Not just a different label here and there: the applicants differ.
    assert (first["LoanAmount"] != second["LoanAmount"]).mean() > 0.5


def test_about_one_third_risk():
    share = (generate_credit_data(5000, 42)[LABEL] == UNFAVOURABLE).mean()
    assert 0.28 <= share <= 0.40


@pytest.mark.parametrize(("rows", "extra_copies"), [(5000, 18), (600, 2), (100, 0)])
def test_exact_duplicate_rows_at_the_public_samples_rate(rows, extra_copies):
    frame = generate_credit_data(rows, 3)
    assert int(frame.duplicated().sum()) == extra_copies
    assert list(frame.index) == list(range(rows))


def test_realism_logistic_regression_auc():
    """The realism contract: as hard as the public sample (a logistic regression reaches about 0.86)."""
    frame = generate_credit_data(5000, 42)
    features = pd.get_dummies(frame[list(FEATURES)], columns=list(CATEGORICAL_FEATURES), dtype=float)
    target = (frame[LABEL] == UNFAVOURABLE).to_numpy()
    x_train, x_test, y_train, y_test = train_test_split(
        features, target, test_size=0.3, random_state=0, stratify=target
    )
    scaler = StandardScaler().fit(x_train)
    model = LogisticRegression(max_iter=2000).fit(scaler.transform(x_train), y_train)
    auc = roc_auc_score(y_test, model.predict_proba(scaler.transform(x_test))[:, 1])
    assert 0.80 <= auc <= 0.90


# --- drift and bias ------------------------------------------------------------------------


def test_drift_gives_larger_loans_and_younger_applicants():
    calm = generate_credit_data(2000, 3, drift=0.0)
    drifted = generate_credit_data(2000, 3, drift=1.0)
    assert drifted["LoanAmount"].mean() > 1.3 * calm["LoanAmount"].mean()
    assert drifted["LoanDuration"].mean() > calm["LoanDuration"].mean()
    young_calm = calm["Age"].between(19, 25).mean()
    young_drifted = drifted["Age"].between(19, 25).mean()
    assert young_drifted > young_calm + 0.15


def test_partial_drift_lies_between():
    amounts = [generate_credit_data(2000, 3, drift=d)["LoanAmount"].mean() for d in (0.0, 0.5, 1.0)]
    assert amounts[0] < amounts[1] < amounts[2]


def test_sex_bias_lowers_female_favourable_rate_only():
    fair = generate_credit_data(2000, 3)
    biased = generate_credit_data(2000, 3, bias=0.5, bias_group="Sex")
    # The applicants are the same; only labels of the monitored group change.
    pd.testing.assert_frame_equal(fair[list(FEATURES)], biased[list(FEATURES)])
    female = (fair["Sex"] == "female").to_numpy()
    assert favourable_rate(biased, female) < favourable_rate(fair, female) - 0.15
    pd.testing.assert_series_equal(fair.loc[~female, LABEL], biased.loc[~female, LABEL])
    # Bias only turns favourable outcomes into Risk, never the other way.
    assert not ((fair[LABEL] == UNFAVOURABLE) & (biased[LABEL] == FAVOURABLE)).any()


def test_age_bias_hits_ages_18_to_25():
    fair = generate_credit_data(2000, 3)
    biased = generate_credit_data(2000, 3, bias=0.5, bias_group="Age")
    young = fair["Age"].between(18, 25).to_numpy()
    assert young.any()
    changed = (fair[LABEL] != biased[LABEL]).to_numpy()
    assert changed.any()
    assert young[changed].all()
    assert favourable_rate(biased, young) < favourable_rate(fair, young) - 0.15
    pd.testing.assert_series_equal(fair.loc[~young, LABEL], biased.loc[~young, LABEL])


def test_full_bias_leaves_no_favourable_outcome_in_group():
    biased = generate_credit_data(1000, 4, bias=1.0, bias_group="Sex")
    assert favourable_rate(biased, biased["Sex"] == "female") == 0.0
    assert favourable_rate(biased, biased["Sex"] == "male") > 0.5


def test_in_monitored_group():
    frame = pd.DataFrame({"Sex": ["female", "male", "female"], "Age": [18, 25, 26]})
    assert in_monitored_group(frame, "Sex").tolist() == [True, False, True]
    assert in_monitored_group(frame, "Age").tolist() == [True, True, False]


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"drift": 1.5}, "drift"),
        ({"drift": -0.1}, "drift"),
        ({"bias": -0.1}, "bias"),
        ({"bias": 1.01}, "bias"),
        ({"bias_group": "Race"}, "bias_group"),
        ({"n_rows": 0}, "n_rows"),
        ({"n_rows": -5}, "n_rows"),
    ],
)
def test_invalid_knobs_raise_value_error_naming_argument(kwargs, argument):
    arguments = {"n_rows": 10, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=argument):
        generate_credit_data(**arguments)


def test_drift_keeps_labels_and_bias_keeps_applicants():
    calm, drifted = generate_credit_data(2000, 3), generate_credit_data(2000, 3, drift=1.0)
    pd.testing.assert_series_equal(calm[LABEL], drifted[LABEL])
    unchanged = [c for c in FEATURES if c not in ("LoanAmount", "LoanDuration", "Age")]
    pd.testing.assert_frame_equal(calm[unchanged], drifted[unchanged])


# --- the description of a data set ---------------------------------------------------------


def test_describe_training_data_computes_rows_duplicates_risk_and_group_rates():
    frame = pd.DataFrame(
        {
            "Sex": ["female", "female", "male", "male", "male"],
            "Age": [22, 22, 40, 75, 80],
            LABEL: [FAVOURABLE, FAVOURABLE, UNFAVOURABLE, FAVOURABLE, UNFAVOURABLE],
        }
    )
    assert describe_training_data(frame) == (
        "5 rows (1 of them exact copies of earlier rows); 40.0% of them `Risk`; favourable (`No Risk`) rates: "
        "female 1.000 vs male 0.333, ages 18-25 1.000 vs ages 26-75 0.500."
    )
    assert "none of them an exact copy" in describe_training_data(frame.drop(index=1))
    assert "ages 18-25 (none)" in describe_training_data(frame[frame["Age"] > 25])


def test_factsheet_states_the_computed_description():
    description = describe_training_data(generate_credit_data(400, 2))
    factsheet = render_factsheet(
        {"model_id": "credit-risk-v1", "training_data": {"rows": 400, "description": description}}
    )
    assert f"Training data: {description}" in factsheet
    assert "against women" not in render_factsheet({"model_id": "credit-risk-v1"})


# --- the bundled file ----------------------------------------------------------------------


def test_bundled_file_is_the_generator_output():
    bundled = pd.read_csv(config.BUNDLED_DATA)
    pd.testing.assert_frame_equal(bundled, generate_credit_data(5000, 42))


def test_command_line_reproduces_bundled_file(tmp_path, capsys):
    output = tmp_path / "out" / "german_credit.csv"
    main([str(output)])
    assert "5000 rows" in capsys.readouterr().out
    assert output.read_bytes() == config.BUNDLED_DATA.read_bytes()


def test_command_line_knobs(tmp_path):
    output = tmp_path / "drifted.csv"
    main([str(output), "--rows", "50", "--seed", "9", "--drift", "1", "--bias", "0.3", "--bias-group", "Age"])
    expected = generate_credit_data(50, 9, drift=1.0, bias=0.3, bias_group="Age")
    pd.testing.assert_frame_equal(pd.read_csv(output), expected)


# --- loading and hashing -------------------------------------------------------------------


def test_load_credit_csv_round_trip(tmp_path, small_frame):
    path = write_csv(small_frame, tmp_path / "sub" / "credit.csv")
    assert path == tmp_path / "sub" / "credit.csv"
    assert [p.name for p in path.parent.iterdir()] == ["credit.csv"]  # no temporary file left
    pd.testing.assert_frame_equal(load_credit_csv(path), small_frame)


def test_load_credit_csv_skips_spaces_after_commas(tmp_path):
    path = tmp_path / "spaced.csv"
    path.write_text("Sex, Age\nfemale, 30\n")
    frame = load_credit_csv(path)
    assert list(frame.columns) == ["Sex", "Age"]
    assert frame.loc[0, "Sex"] == "female"
    assert frame.loc[0, "Age"] == 30


def test_load_missing_file_raises_with_path(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="nope.csv"):
        load_credit_csv(path)


def test_load_directory_raises(tmp_path):
    with pytest.raises(DataError, match=re.escape(str(tmp_path))):
        load_credit_csv(tmp_path)


@pytest.mark.parametrize(("content", "reason"), [("", "empty"), ("\n\n", "empty"), ("Sex,Age\n", "no rows")])
def test_load_empty_or_header_only_raises_with_path(tmp_path, content, reason):
    path = tmp_path / "blank.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=reason) as caught:
        load_credit_csv(path)
    assert str(path) in str(caught.value)


def test_load_keeps_text_in_number_column(tmp_path, small_frame):
    frame = small_frame.copy()
    frame["LoanAmount"] = frame["LoanAmount"].astype(object)
    frame.loc[4, "LoanAmount"] = "a lot"
    path = tmp_path / "text.csv"
    frame.to_csv(path, index=False)
    loaded = load_credit_csv(path)
    assert loaded["LoanAmount"].dtype == object
    assert loaded.loc[4, "LoanAmount"] == "a lot"
    assert loaded.loc[5, "LoanAmount"] == str(small_frame.loc[5, "LoanAmount"])
    assert len(loaded) == len(small_frame)


@pytest.mark.parametrize("size", [0, 10, (1 << 20) + 123])  # empty, small, more than one read block
def test_file_sha256_matches_hashlib(tmp_path, size):
    data = np.random.default_rng(size).bytes(size)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    assert file_sha256(str(path)) == hashlib.sha256(data).hexdigest()


def test_file_sha256_changes_with_content(tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("Risk\nNo Risk\n")
    second.write_text("Risk\nRisk\n")
    assert file_sha256(first) != file_sha256(second)
