"""The classifier test of multivariate drift in a worker process gives the test run in this process."""

from __future__ import annotations

import pandas as pd
import pytest

from utils import drift
from utils.data import generate_credit_data
from utils.monitoring.classifier_worker import ClassifierTestWorker

pytestmark = pytest.mark.slow  # each test starts a process that imports alibi-detect

OPTIONS = {"p_value": 0.01, "max_records": 300, "seed": 5, "columns": drift.CREDIT_COLUMNS}


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return generate_credit_data(1000, 1)


def test_the_worker_gives_the_result_of_the_test_run_here(reference):
    here = drift.MultivariateDriftDetector(reference, **OPTIONS)
    same, drifted = generate_credit_data(2000, 2), generate_credit_data(2000, 3, drift=0.5)
    with ClassifierTestWorker() as worker:
        apart = worker.detector(reference, **OPTIONS)
        apart.begin(drifted)
        assert apart.check(drifted) == here.check(drifted)
        assert here.check(drifted).is_drift
        assert apart.check(same) == here.check(same), "a window not begun is checked when asked"
        apart.begin(same)
        assert apart.check(drifted) == here.check(drifted), "a check begun for other records is not taken"


def test_an_error_in_the_worker_is_raised_here_and_the_worker_goes_on(reference):
    window = generate_credit_data(100, 2)
    with ClassifierTestWorker() as worker:
        wrong = worker.detector(reference, **{**OPTIONS, "columns": {"Savings account": None}})
        with pytest.raises(RuntimeError, match="failed in its process(.|\n)*Savings account"):
            wrong.check(window)
        expected = drift.MultivariateDriftDetector(reference, **OPTIONS).check(window)
        assert worker.detector(reference, **OPTIONS).check(window) == expected
