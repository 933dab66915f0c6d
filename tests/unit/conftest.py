"""Shared fixtures of the unit tests: small generated data and models trained once per session."""

from __future__ import annotations

import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from utils.data import generate_credit_data
from utils.features import fit_preprocessor, stratified_split
from utils.training import MODEL_TYPES, TrainingResult, train_model

SEED = 42


@pytest.fixture(scope="session", autouse=True)
def _single_threaded_numerics():
    """One OpenMP/BLAS thread: on a small busy machine, spinning thread pools make boosting 10x slower."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(autouse=True)
def _work_dir_outside_repo(tmp_path_factory, monkeypatch):
    """Anything that falls back on the working directory writes under pytest's tmp dir, never the repo."""
    monkeypatch.setenv("CREDIT_WORKDIR", str(tmp_path_factory.getbasetemp() / "credit-workdir"))


@pytest.fixture(scope="session")
def small_frame() -> pd.DataFrame:
    """600 clean rows honouring the contract (copy before changing it)."""
    return generate_credit_data(600, 7)


@pytest.fixture(scope="session")
def train_test() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A stratified 75/25 split of 1,500 generated rows: enough for stable metrics, quick to train."""
    return stratified_split(generate_credit_data(1500, SEED), 0.25, SEED)


@pytest.fixture(scope="session")
def preprocessor(train_test):
    return fit_preprocessor(train_test[0])


@pytest.fixture(scope="session")
def trained(train_test, preprocessor) -> dict[str, TrainingResult]:
    """Each model type trained once on the training split."""
    train, _ = train_test
    return {model_type: train_model(train, preprocessor, model_type, seed=SEED) for model_type in MODEL_TYPES}
