"""The bundled data behave like the public IBM sample: its figures, and models that transfer both ways.

The constants are figures measured on the public sample ("german_credit_data_biased_training.csv", 5,000 rows);
the project will be checked against that file, so a model trained on the bundled data must rank its applicants
about as well as a model trained on it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from utils import config
from utils.data import (
    COLUMNS,
    FAVOURABLE,
    LABEL,
    NUMERIC_FEATURES,
    UNFAVOURABLE,
    generate_credit_data,
    load_credit_csv,
)
from utils.features import fit_preprocessor, stratified_split
from utils.training import evaluate, train_model

#: Share of rows and share of ``Risk`` among them, per value.
SAMPLE_PROFILE = {
    "CheckingStatus": {
        "0_to_200": (0.261, 0.218),
        "greater_200": (0.061, 0.416),
        "less_0": (0.280, 0.093),
        "no_checking": (0.399, 0.566),
    },
    "CreditHistory": {
        "all_credits_paid_back": (0.154, 0.068),
        "credits_paid_to_date": (0.298, 0.214),
        "no_credits": (0.023, 0.000),
        "outstanding_credit": (0.188, 0.660),
        "prior_payments_delayed": (0.337, 0.403),
    },
    "LoanPurpose": {
        "appliances": (0.112, 0.512),
        "business": (0.029, 0.356),
        "car_new": (0.189, 0.125),
        "car_used": (0.162, 0.248),
        "education": (0.033, 0.419),
        "furniture": (0.171, 0.333),
        "other": (0.023, 0.646),
        "radio_tv": (0.151, 0.432),
        "repairs": (0.057, 0.565),
        "retraining": (0.033, 0.256),
        "vacation": (0.041, 0.283),
    },
    "ExistingSavings": {
        "100_to_500": (0.227, 0.328),
        "500_to_1000": (0.216, 0.480),
        "greater_1000": (0.112, 0.525),
        "less_100": (0.371, 0.138),
        "unknown": (0.075, 0.619),
    },
    "EmploymentDuration": {
        "1_to_4": (0.294, 0.239),
        "4_to_7": (0.280, 0.411),
        "greater_7": (0.186, 0.710),
        "less_1": (0.181, 0.082),
        "unemployed": (0.059, 0.030),
    },
    "Sex": {"female": (0.379, 0.296), "male": (0.621, 0.357)},
    "OthersOnLoan": {"co-applicant": (0.143, 0.678), "guarantor": (0.022, 0.718), "none": (0.835, 0.265)},
    "OwnsProperty": {
        "car_other": (0.308, 0.434),
        "real_estate": (0.217, 0.052),
        "savings_insurance": (0.332, 0.255),
        "unknown": (0.143, 0.731),
    },
    "InstallmentPlans": {"bank": (0.093, 0.176), "none": (0.703, 0.386), "stores": (0.203, 0.227)},
    "Housing": {"free": (0.148, 0.712), "own": (0.639, 0.321), "rent": (0.213, 0.112)},
    "Job": {
        "management_self-employed": (0.128, 0.392),
        "skilled": (0.680, 0.346),
        "unemployed": (0.057, 0.224),
        "unskilled": (0.135, 0.264),
    },
    "Telephone": {"none": (0.588, 0.194), "yes": (0.412, 0.534)},
    "ForeignWorker": {"no": (0.025, 0.561), "yes": (0.975, 0.328)},
    "InstallmentPercent": {
        1: (0.103, 0.064),
        2: (0.238, 0.148),
        3: (0.327, 0.311),
        4: (0.241, 0.502),
        5: (0.087, 0.761),
        6: (0.004, 0.944),
    },
    "CurrentResidenceDuration": {
        1: (0.128, 0.059),
        2: (0.249, 0.147),
        3: (0.335, 0.349),
        4: (0.216, 0.550),
        5: (0.071, 0.751),
        6: (0.001, 1.0),
    },
    "ExistingCreditsCount": {1: (0.569, 0.178), 2: (0.396, 0.516), 3: (0.035, 0.810)},
    "Dependents": {1: (0.835, 0.286), 2: (0.165, 0.578)},
}
#: p10, p25, p50, p75, p90 and the mean of each wide number, by outcome.
SAMPLE_NUMBERS = {
    "LoanDuration": {FAVOURABLE: (4, 10, 17, 25, 32, 17.9), UNFAVOURABLE: (15, 22, 29, 35, 41, 28.4)},
    "LoanAmount": {
        FAVOURABLE: (250, 574, 2324, 4212, 5835, 2687),
        UNFAVOURABLE: (1908, 3317, 5189, 6694, 7928, 5062),
    },
    "Age": {FAVOURABLE: (19, 25, 32, 39, 45, 32.5), UNFAVOURABLE: (30, 36, 43, 50, 55, 42.9)},
}
SAMPLE_RISK_SHARE = 0.334
SAMPLE_FAVOURABLE_RATES = {"female": 0.704, "male": 0.643, "18-25": 0.931, "26-75": 0.603}
SAMPLE_DUPLICATES = 18  # extra copies of rows in 5,000
SAMPLE_AUC = 0.855  # a logistic regression on the sample itself reaches about 0.85-0.86

SHARE_TOLERANCE = 0.03
PERCENTILE_TOLERANCE = 0.10  # relative
TRANSFER_FLOOR = 0.80
CORRELATED = ["LoanDuration", "LoanAmount", "InstallmentPercent", "CurrentResidenceDuration", "Age"]
CORRELATED += ["ExistingCreditsCount"]


@pytest.fixture(scope="module")
def bundled() -> pd.DataFrame:
    return load_credit_csv(config.BUNDLED_DATA)


@pytest.fixture(scope="module")
def stand_in() -> pd.DataFrame:
    """Applicants drawn to the public sample's figures, with another seed than the bundled file's."""
    return generate_credit_data(5000, seed=2026)


def risk_rate(frame: pd.DataFrame, rows) -> float:
    return float((frame.loc[rows, LABEL] == UNFAVOURABLE).mean())


def cramers_v(frame: pd.DataFrame, first: str, second: str) -> float:
    observed = pd.crosstab(frame[first], frame[second]).to_numpy(dtype=float)
    expected = observed.sum(axis=1, keepdims=True) * observed.sum(axis=0, keepdims=True) / observed.sum()
    chi2 = ((observed - expected) ** 2 / expected).sum()
    return float(np.sqrt(chi2 / observed.sum() / (min(observed.shape) - 1)))


def test_bundled_data_are_the_generator_output_for_the_sample(bundled):
    pd.testing.assert_frame_equal(bundled, generate_credit_data(5000, 42))


@pytest.mark.parametrize("column", list(SAMPLE_PROFILE))
def test_shares_and_risk_rates_per_value_are_the_samples(bundled, column):
    for value, (share, rate) in SAMPLE_PROFILE[column].items():
        rows = bundled[column] == value
        assert abs(rows.mean() - share) <= SHARE_TOLERANCE, (column, value, rows.mean())
        if share >= 0.01:  # a rate over a handful of rows says little
            assert abs(risk_rate(bundled, rows) - rate) <= SHARE_TOLERANCE, (column, value, risk_rate(bundled, rows))


def test_about_a_third_is_risk(bundled):
    assert abs((bundled[LABEL] == UNFAVOURABLE).mean() - SAMPLE_RISK_SHARE) <= 0.01


@pytest.mark.parametrize("column", list(SAMPLE_NUMBERS))
@pytest.mark.parametrize("outcome", [FAVOURABLE, UNFAVOURABLE])
def test_numbers_by_outcome_have_the_samples_percentiles_and_mean(bundled, column, outcome):
    values = bundled.loc[bundled[LABEL] == outcome, column]
    *percentiles, mean = SAMPLE_NUMBERS[column][outcome]
    measured = values.quantile([0.10, 0.25, 0.50, 0.75, 0.90]).to_numpy()
    assert np.allclose(measured, percentiles, rtol=PERCENTILE_TOLERANCE, atol=0), (measured, percentiles)
    assert values.mean() == pytest.approx(mean, rel=PERCENTILE_TOLERANCE)


def test_numbers_are_correlated_as_in_the_sample(bundled):
    ranks = bundled[[*CORRELATED, "Dependents"]].corr("spearman")
    among = ranks.loc[CORRELATED, CORRELATED].to_numpy()[np.triu_indices(len(CORRELATED), k=1)]
    assert among.min() >= 0.40 and among.max() <= 0.80, among  # the sample: 0.5-0.73
    with_dependents = ranks.loc[CORRELATED, "Dependents"]
    assert with_dependents.between(0.2, 0.45).all(), with_dependents  # the sample: about 0.3


def test_categories_are_tied_as_in_the_sample(bundled):
    assert cramers_v(bundled, "InstallmentPlans", "Job") >= 0.6  # the sample: 0.70
    others = ["CheckingStatus", "CreditHistory", "ExistingSavings", "EmploymentDuration", "OwnsProperty"]
    ties = [cramers_v(bundled, "Telephone", other) for other in others]
    assert min(ties) >= 0.3 and max(ties) <= 0.55, ties  # the sample: 0.4-0.47


def test_groups_favourable_rates_are_the_samples(bundled):
    favourable = bundled[LABEL] == FAVOURABLE
    measured = {
        "female": favourable[bundled["Sex"] == "female"].mean(),
        "male": favourable[bundled["Sex"] == "male"].mean(),
        "18-25": favourable[bundled["Age"].between(18, 25)].mean(),
        "26-75": favourable[bundled["Age"].between(26, 75)].mean(),
    }
    for group, rate in SAMPLE_FAVOURABLE_RATES.items():
        assert abs(measured[group] - rate) <= SHARE_TOLERANCE, (group, measured[group])


def test_duplicate_rows_at_the_samples_rate(bundled, stand_in):
    assert int(bundled.duplicated().sum()) == SAMPLE_DUPLICATES
    assert int(stand_in.duplicated().sum()) == SAMPLE_DUPLICATES


def independent_stand_in(rows: int, seed: int) -> pd.DataFrame:
    """Applicants drawn from the sample's figures above alone, each feature independently given the outcome: no
    code of the generator under test, so the bundled data must carry the sample's structure to transfer to them."""
    rng = np.random.default_rng(seed)
    risk = rng.random(rows) < SAMPLE_RISK_SHARE
    frame = pd.DataFrame(index=range(rows))
    for column, profile in SAMPLE_PROFILE.items():
        values = list(profile)
        for outcome, members in ((True, risk), (False, ~risk)):
            weights = np.array([share * (rate if outcome else 1 - rate) for share, rate in profile.values()])
            frame.loc[members, column] = rng.choice(values, size=members.sum(), p=weights / weights.sum())
    for column, (low, high) in {"LoanDuration": (4, 64), "LoanAmount": (250, 11676), "Age": (19, 74)}.items():
        for outcome, members in ((UNFAVOURABLE, risk), (FAVOURABLE, ~risk)):
            *percentiles, _ = SAMPLE_NUMBERS[column][outcome]
            levels = rng.random(members.sum())
            drawn = np.interp(levels, [0, 0.10, 0.25, 0.50, 0.75, 0.90, 1], [low, *percentiles, high])
            frame.loc[members, column] = np.round(drawn)
    frame[LABEL] = np.where(risk, UNFAVOURABLE, FAVOURABLE)
    return frame[list(COLUMNS)].astype({column: int for column in NUMERIC_FEATURES})


def trained_on(frame: pd.DataFrame):
    train, test = stratified_split(frame, 0.2, 42)
    model = train_model(train, fit_preprocessor(train), "logistic_regression", seed=42).model
    return model, test


@pytest.mark.parametrize(("source", "target"), [("bundled", "stand_in"), ("stand_in", "bundled")])
def test_a_model_transfers_between_bundled_and_sample_like_data(request, source, target):
    model, own_test = trained_on(request.getfixturevalue(source))
    own_auc = evaluate(model, own_test)[0]["auc_roc"]
    transfer_auc = evaluate(model, request.getfixturevalue(target))[0]["auc_roc"]
    assert own_auc == pytest.approx(SAMPLE_AUC, abs=0.04)  # as hard as the sample: not far easier or harder
    assert transfer_auc >= TRANSFER_FLOOR
    assert transfer_auc >= own_auc - 0.03  # nearly as well as a model trained on the target itself


def test_bundled_data_transfer_to_data_drawn_from_the_samples_figures_alone(bundled):
    model, _ = trained_on(bundled)
    assert evaluate(model, independent_stand_in(5000, 7))[0]["auc_roc"] >= TRANSFER_FLOOR
    model, _ = trained_on(independent_stand_in(5000, 8))
    assert evaluate(model, bundled)[0]["auc_roc"] >= TRANSFER_FLOOR
