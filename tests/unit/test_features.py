"""Feature preparation: the split and the preprocessing fitted on the training part."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from utils.data import (
    CATEGORICAL_FEATURES,
    CATEGORIES,
    FEATURES,
    LABEL,
    NUMERIC_FEATURES,
    UNFAVOURABLE,
    UNUSED_FEATURES,
    DataError,
)
from utils.features import (
    build_preprocessor,
    fit_preprocessor,
    load_preprocessor,
    save_preprocessor,
    split_features_label,
    stratified_split,
)

USED_CATEGORIES = [c for c in CATEGORICAL_FEATURES if c not in UNUSED_FEATURES]
N_OUTPUTS = sum(len(CATEGORIES[c]) for c in USED_CATEGORIES) + len(NUMERIC_FEATURES)


def risk_share(frame: pd.DataFrame) -> float:
    return float((frame[LABEL] == UNFAVOURABLE).mean())


# --- split ---------------------------------------------------------------------------------


@pytest.mark.parametrize("test_size", [0.2, 0.25, 0.5])
def test_stratified_split_keeps_class_shares(small_frame, test_size):
    train, test = stratified_split(small_frame, test_size, seed=3)
    assert len(train) + len(test) == len(small_frame)
    assert len(test) == pytest.approx(test_size * len(small_frame), abs=1)
    overall = risk_share(small_frame)
    assert abs(risk_share(train) - overall) <= 0.01
    assert abs(risk_share(test) - overall) <= 0.01


def test_stratified_split_partitions_rows(small_frame):
    train, test = stratified_split(small_frame, 0.2, seed=3)
    assert list(train.index) == list(range(len(train)))
    assert list(test.index) == list(range(len(test)))
    together = pd.concat([train, test]).sort_values(list(small_frame.columns)).reset_index(drop=True)
    expected = small_frame.sort_values(list(small_frame.columns)).reset_index(drop=True)
    pd.testing.assert_frame_equal(together, expected)


def test_stratified_split_is_deterministic_per_seed(small_frame):
    first = stratified_split(small_frame, 0.2, seed=5)
    again = stratified_split(small_frame, 0.2, seed=5)
    other = stratified_split(small_frame, 0.2, seed=6)
    pd.testing.assert_frame_equal(first[0], again[0])
    pd.testing.assert_frame_equal(first[1], again[1])
    assert not first[1].equals(other[1])


def test_stratified_split_leaves_input_alone(small_frame):
    before = small_frame.copy()
    stratified_split(small_frame, 0.2, seed=5)
    pd.testing.assert_frame_equal(small_frame, before)


@pytest.mark.parametrize("test_size", [0.0, 1.0, -0.2, 1.5])
def test_invalid_test_size_raises(small_frame, test_size):
    with pytest.raises(ValueError, match="test_size"):
        stratified_split(small_frame, test_size, seed=0)


def test_class_with_one_row_raises(small_frame):
    no_risk = small_frame[small_frame[LABEL] != UNFAVOURABLE]
    one_risk = small_frame[small_frame[LABEL] == UNFAVOURABLE].head(1)
    with pytest.raises(DataError, match=LABEL):
        stratified_split(pd.concat([no_risk, one_risk]), 0.2, seed=0)


# --- features and label --------------------------------------------------------------------


def test_split_features_label_orders_features(small_frame):
    shuffled = small_frame[list(reversed(small_frame.columns))].assign(extra=1)
    features, label = split_features_label(shuffled)
    assert list(features.columns) == list(FEATURES)
    assert label.name == LABEL
    pd.testing.assert_series_equal(label, small_frame[LABEL])


@pytest.mark.parametrize("column", ["Age", "LoanPurpose", LABEL])
def test_split_features_label_names_missing_column(small_frame, column):
    with pytest.raises(DataError, match=column):
        split_features_label(small_frame.drop(columns=column))


def test_split_features_label_names_every_missing_column(small_frame):
    with pytest.raises(DataError) as caught:
        split_features_label(small_frame.drop(columns=["Age", "Sex"]))
    assert "Age" in str(caught.value) and "Sex" in str(caught.value)


# --- preprocessing -------------------------------------------------------------------------


def test_preprocessor_output_width(small_frame):
    preprocessor = fit_preprocessor(small_frame)
    features, _ = split_features_label(small_frame)
    transformed = preprocessor.transform(features)
    assert transformed.shape == (len(small_frame), N_OUTPUTS)
    assert len(preprocessor.get_feature_names_out()) == N_OUTPUTS
    assert np.isfinite(transformed).all()


def test_the_model_cannot_use_the_unused_features(small_frame):
    """Telephone says nothing about repayment: its values change nothing the preprocessing passes on."""
    preprocessor = fit_preprocessor(small_frame)
    features, _ = split_features_label(small_frame)
    flipped = features.assign(Telephone=features["Telephone"].map({"none": "yes", "yes": "none"}))
    assert (preprocessor.transform(features) == preprocessor.transform(flipped)).all()
    assert not any(name.startswith("Telephone") for name in preprocessor.get_feature_names_out())


def test_preprocessor_one_hot_and_scaling(small_frame):
    preprocessor = fit_preprocessor(small_frame)
    features, _ = split_features_label(small_frame)
    transformed = pd.DataFrame(preprocessor.transform(features), columns=preprocessor.get_feature_names_out())
    for column in USED_CATEGORIES:
        one_hot = transformed[[f"{column}_{value}" for value in CATEGORIES[column]]]
        assert (one_hot.sum(axis=1) == 1).all(), column
    numeric = transformed[list(NUMERIC_FEATURES)]
    assert np.allclose(numeric.mean(), 0, atol=1e-9)
    assert np.allclose(numeric.std(ddof=0), 1)


def test_preprocessor_uses_full_contract_domain(small_frame):
    without_vacation = small_frame[small_frame["LoanPurpose"] != "vacation"]
    assert len(without_vacation) < len(small_frame)
    preprocessor = fit_preprocessor(without_vacation)
    names = list(preprocessor.get_feature_names_out())
    assert len(names) == N_OUTPUTS
    assert "LoanPurpose_vacation" in names
    vacation = small_frame[small_frame["LoanPurpose"] == "vacation"].head(1)
    encoded = preprocessor.transform(split_features_label(vacation)[0])[0]
    assert encoded[names.index("LoanPurpose_vacation")] == 1.0


def test_unseen_category_at_transform_raises(small_frame):
    preprocessor = fit_preprocessor(small_frame)
    features, _ = split_features_label(small_frame.head(3).copy())
    features.loc[0, "LoanPurpose"] = "spaceship"
    with pytest.raises(ValueError, match="unknown categor"):
        preprocessor.transform(features)


def test_fit_uses_training_rows_only(small_frame):
    train, test = stratified_split(small_frame, 0.5, seed=1)
    preprocessor = fit_preprocessor(train)
    scaler = preprocessor.named_transformers_["numeric"]
    assert np.allclose(scaler.mean_, train[list(NUMERIC_FEATURES)].mean())
    assert not np.allclose(scaler.mean_, test[list(NUMERIC_FEATURES)].mean())


def test_fit_preprocessor_needs_label(small_frame):
    with pytest.raises(DataError, match=LABEL):
        fit_preprocessor(small_frame.drop(columns=LABEL))


def test_build_preprocessor_is_unfitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        build_preprocessor().transform(pd.DataFrame(columns=list(FEATURES)))


def test_save_and_load_preprocessor(small_frame, tmp_path):
    preprocessor = fit_preprocessor(small_frame)
    path = save_preprocessor(preprocessor, tmp_path / "prep" / "preprocessor.skops")
    assert [p.name for p in path.parent.iterdir()] == ["preprocessor.skops"]
    loaded = load_preprocessor(path)
    features, _ = split_features_label(small_frame)
    np.testing.assert_array_equal(loaded.transform(features), preprocessor.transform(features))
