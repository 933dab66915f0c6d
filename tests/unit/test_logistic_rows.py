"""The few-record path of a logistic regression against the vectorised path and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from utils.data import CLASS_ORDER, FEATURES, generate_credit_data
from utils.decision import decide
from utils.encoding import Encoder
from utils.logistic_rows import FEW_ROWS, _logistic
from utils.scoring import Scorer, frame_columns


@pytest.fixture(scope="module")
def applicants():
    return generate_credit_data(300, seed=41)


def _rows_of(model):
    classifier = model[-1]
    order = [list(classifier.classes_).index(c) for c in CLASS_ORDER]
    encoder = Encoder(model[0])
    return encoder, encoder.logistic_rows(classifier.coef_[0], float(classifier.intercept_[0]), order), order


def test_records_scored_row_by_row_agree_with_scikit_learn(trained, applicants):
    model = trained["logistic_regression"].model
    _, rows, order = _rows_of(model)
    expected = model.predict_proba(applicants[list(FEATURES)])[:, order]
    probabilities = np.array(rows.probabilities(frame_columns(applicants)))
    assert np.abs(probabilities - expected).max() < 1e-12
    assert np.allclose(probabilities.sum(axis=1), 1.0)


@pytest.mark.parametrize("count", [1, 2, FEW_ROWS, FEW_ROWS + 1])
def test_the_scorer_answers_a_few_records_as_its_vectorised_path_does(trained, applicants, count):
    scorer = Scorer(trained["logistic_regression"].model, "logistic")
    columns = frame_columns(applicants.head(count))
    labels, probabilities = scorer.predict(columns)
    vectorised = scorer.predict_proba(columns)
    assert np.abs(np.array(probabilities) - vectorised).max() < 1e-12
    assert labels == decide(vectorised[:, 1]).tolist()
    assert all(type(p) is float for pair in probabilities for p in pair)  # answered as JSON numbers


@pytest.mark.parametrize("z", [-1000.0, -745.0, -709.0, -30.0, 0.0, 1e-3, 30.0, 1000.0])
def test_the_logistic_function_is_scipys_even_where_the_exponential_overflows(z):
    assert _logistic(z) == pytest.approx(float(expit(z)), rel=1e-15, abs=0.0)
