"""Feature preparation: the scikit-learn preprocessing fitted on the training split."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from utils.data import CATEGORICAL_FEATURES, CATEGORIES, FEATURES, LABEL, NUMERIC_FEATURES, UNUSED_FEATURES, DataError
from utils.registry import load_trusted, save_skops


def split_features_label(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Features in contract order, and the label (``No Risk`` or ``Risk``)."""
    missing = [c for c in (*FEATURES, LABEL) if c not in frame.columns]
    if missing:
        raise DataError(f"missing columns: {', '.join(missing)}")
    return frame[list(FEATURES)], frame[LABEL]


def stratified_split(frame: pd.DataFrame, test_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train/test split that keeps the share of ``Risk`` equal in both parts."""
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be between 0 and 1, got {test_size}")
    if frame[LABEL].value_counts().min() < 2:
        raise DataError(f"each {LABEL} class needs at least 2 rows for a stratified split")
    train, test = train_test_split(frame, test_size=test_size, random_state=seed, stratify=frame[LABEL])
    return train.reset_index(drop=True), test.reset_index(drop=True)


def build_preprocessor() -> ColumnTransformer:
    """One-hot encoding for categories (over the contract's full domain) and scaling for numbers; the
    :data:`~utils.data.UNUSED_FEATURES` are left out, so no model can lean on them.

    Fixing the categories to the contract keeps the feature space the same whatever
    values a training sample happens to hold; a value outside the contract is an
    error at scoring time rather than a silent all-zero row.
    """
    categorical = [c for c in CATEGORICAL_FEATURES if c not in UNUSED_FEATURES]
    return ColumnTransformer(
        [
            (
                "categorical",
                OneHotEncoder(
                    categories=[list(CATEGORIES[c]) for c in categorical],
                    handle_unknown="error",
                    sparse_output=False,
                ),
                categorical,
            ),
            ("numeric", StandardScaler(), [c for c in NUMERIC_FEATURES if c not in UNUSED_FEATURES]),
        ],
        verbose_feature_names_out=False,
    )


def fit_preprocessor(train: pd.DataFrame) -> ColumnTransformer:
    """Fit the preprocessing on the training split only (no test information leaks in)."""
    features, _ = split_features_label(train)
    return build_preprocessor().fit(features)


def save_preprocessor(preprocessor: ColumnTransformer, path) -> Path:
    """Save the fitted preprocessing in skops format (safe to load)."""
    return save_skops(preprocessor, path)


def load_preprocessor(path) -> ColumnTransformer:
    """Load preprocessing saved by :func:`save_preprocessor`, trusting only known types."""
    return load_trusted(path)
