"""Fairness metrics against values computed by hand, the perturbation check and the debiased companion."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from utils import fairness
from utils.data import FAVOURABLE, UNFAVOURABLE
from utils.decision import model_decisions
from utils.traffic import applicants
from utils.training import train_model

F, U = FAVOURABLE, UNFAVOURABLE


@pytest.fixture
def table() -> pd.DataFrame:
    """4 women (1 favourable decision), 6 men (3 favourable), with true outcomes."""
    return pd.DataFrame(
        {
            "Sex": ["female"] * 4 + ["male"] * 6,
            "Age": [22, 30, 45, 19, 25, 26, 33, 60, 41, 24],
            "prediction": [F, U, U, U, F, F, F, U, U, U],
            "Risk": [F, F, U, U, F, U, F, F, U, U],
        }
    )


def test_disparate_impact_and_parity_by_hand(table):
    found = fairness.fairness_metrics(table, "Sex")
    assert (found["monitored"], found["reference"]) == ("female", "male")
    assert (found["records_monitored"], found["records_reference"]) == (4, 6)
    assert found["favourable_rate_monitored"] == pytest.approx(1 / 4)
    assert found["favourable_rate_reference"] == pytest.approx(3 / 6)
    assert found["disparate_impact"] == pytest.approx((1 / 4) / (3 / 6))
    assert found["statistical_parity_difference"] == pytest.approx(1 / 4 - 3 / 6)


def test_equal_opportunity_and_average_odds_by_hand(table):
    found = fairness.fairness_metrics(table, "Sex", label="Risk")
    # Favourable is the positive class. Women: truly favourable rows 0, 1 -> decided favourable 1 of 2 (TPR 1/2);
    # truly unfavourable rows 2, 3 -> decided favourable 0 of 2 (FPR 0).
    # Men: truly favourable rows 4, 6, 7 -> 2 of 3 (TPR 2/3); truly unfavourable rows 5, 8, 9 -> 1 of 3 (FPR 1/3).
    tpr_f, fpr_f, tpr_m, fpr_m = 1 / 2, 0.0, 2 / 3, 1 / 3
    assert found["equal_opportunity_difference"] == pytest.approx(tpr_f - tpr_m)
    assert found["average_odds_difference"] == pytest.approx(0.5 * ((fpr_f - fpr_m) + (tpr_f - tpr_m)))


def test_age_groups_follow_the_contract(table):
    found = fairness.fairness_metrics(table, "Age")
    # 18-25: ages 22, 19, 25, 24 (rows 0, 3, 4, 9) -> favourable rows 0, 4: 2 of 4; 26-75: 6 rows, 2 favourable.
    assert (found["monitored"], found["reference"]) == ("18-25", "26-75")
    assert (found["records_monitored"], found["records_reference"]) == (4, 6)
    assert found["disparate_impact"] == pytest.approx((2 / 4) / (2 / 6))


def test_an_empty_group_gives_no_number(table):
    found = fairness.fairness_metrics(table[table["Sex"] == "male"], "Sex", label="Risk")
    assert found["records_monitored"] == 0
    assert math.isnan(found["disparate_impact"]) and math.isnan(found["equal_opportunity_difference"])


def test_disparate_impact_test_interval_and_evidence():
    low, high, p = fairness.disparate_impact_test(300, 1000, 700, 1000, 0.8)
    ratio = 0.3 / 0.7
    se = math.sqrt(1 / 300 - 1 / 1000 + 1 / 700 - 1 / 1000)
    assert (low, high) == pytest.approx((ratio * math.exp(-1.959964 * se), ratio * math.exp(1.959964 * se)))
    assert p < 1e-6  # far below 0.8 with a thousand records per group: real evidence
    _, _, p_small = fairness.disparate_impact_test(3, 10, 7, 10, 0.8)
    assert p_small > 0.05  # the same ratio on ten records per group is not evidence
    assert fairness.disparate_impact_test(90, 100, 90, 100, 0.8)[2] > 0.99
    assert all(math.isnan(v) for v in fairness.disparate_impact_test(0, 0, 5, 10, 0.8))


def test_perturb_moves_each_record_to_the_other_group(table):
    swapped = fairness.perturb(table, "Sex")
    assert (swapped["Sex"] != table["Sex"]).all() and set(swapped["Sex"]) == {"female", "male"}
    moved = fairness.perturb(table, "Age", seed=3)
    young_before = table["Age"].between(18, 25)
    assert moved.loc[young_before, "Age"].between(26, 74).all()
    assert moved.loc[~young_before, "Age"].between(19, 25).all()
    assert moved.drop(columns="Age").equals(table.drop(columns="Age"))
    assert fairness.perturb(table, "Age", seed=3).equals(moved)


class _ByColumn:
    """A stand-in model whose decision depends on one column only."""

    classes_ = np.array([F, U])

    def __init__(self, column: str, favoured):
        self.column, self.favoured = column, favoured

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        risk = np.where(frame[self.column] == self.favoured, 0.1, 0.9)
        return np.column_stack([1 - risk, risk])


def test_perturbation_check_counts_decisions_that_depend_on_the_attribute(small_frame):
    by_sex = fairness.perturbation_check(_ByColumn("Sex", "male"), small_frame, "Sex")
    assert by_sex["changed"] == by_sex["records"] == len(small_frame) and by_sex["changed_share"] == 1.0
    women = int((small_frame["Sex"] == "female").sum())
    assert by_sex["to_favourable"] == by_sex["changed_monitored"] == women
    blind = fairness.perturbation_check(_ByColumn("Housing", "own"), small_frame, "Sex")
    assert blind["changed"] == 0


def test_debiased_companion_closes_the_gap(small_frame, preprocessor):
    model = train_model(small_frame, preprocessor, seed=1).model
    biased = applicants(1500, 9, group_drift=1.0)
    biased["prediction"] = model_decisions(model, biased)
    companion = fairness.debiased_companion(model, biased.iloc[:600], biased, "Sex")
    table = companion.comparison
    assert list(table.index) == ["deployed", "debiased"]
    deployed_di = fairness.fairness_metrics(biased, "Sex")["disparate_impact"]
    assert table.loc["deployed", "disparate_impact"] == pytest.approx(deployed_di)
    assert deployed_di < 0.8
    assert abs(1 - table.loc["debiased", "disparate_impact"]) < abs(1 - deployed_di)
    assert 0 < companion.margin <= 0.5 and 0 < companion.changed_share < 0.5
    assert 0.5 < table.loc["debiased", "accuracy"] <= 1


@pytest.mark.slow  # starts processes
def test_aif360_is_imported_without_a_word():
    code = "from utils import fairness; fairness._aif360(); import logging; logging.getLogger().warning('after')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == "after\n"  # nothing from aif360, and the root logger is left as it was
