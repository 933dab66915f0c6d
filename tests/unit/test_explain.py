"""Explanations: shap contributions add up to the model's output; counterfactuals really flip the decision."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from utils import datamart, explain
from utils.data import FEATURES, UNFAVOURABLE, generate_credit_data
from utils.decision import model_decisions
from utils.times import utc_now


@pytest.fixture(scope="module")
def applicants() -> pd.DataFrame:
    return generate_credit_data(8, 21)


def _log_odds_of_risk(model, record: pd.DataFrame) -> float:
    p = model.predict_proba(record[list(FEATURES)])[0, list(model.classes_).index(UNFAVOURABLE)]
    return float(np.log(p / (1 - p)))


def test_linear_contributions_add_up_to_the_model_output(trained, train_test, applicants):
    model = trained["logistic_regression"].model
    for i in range(3):
        record = applicants.iloc[[i]]
        found = explain.feature_contributions(model, record, train_test[0], seed=1)
        assert found.explainer == "shap.LinearExplainer"
        assert sorted(found.contributions.index) == sorted(FEATURES)
        assert found.base_value + found.contributions["contribution"].sum() == pytest.approx(found.output, abs=1e-9)
        assert found.output == pytest.approx(_log_odds_of_risk(model, record), abs=1e-9)
        assert found.prediction == model.predict(record[list(FEATURES)])[0]
        magnitudes = found.contributions["contribution"].abs().to_numpy()
        assert (np.diff(magnitudes) <= 1e-12).all()  # largest first
    table = found.table()
    assert table.index[0] == "(base value)" and table.index[-1] == "(log-odds of Risk)"


def test_tree_contributions_add_up_to_the_model_output(trained, train_test, applicants):
    model = trained["gradient_boosting"].model
    record = applicants.iloc[[0]]
    found = explain.feature_contributions(model, record, train_test[0], max_background=100, seed=1)
    assert found.explainer == "shap.TreeExplainer"
    assert found.base_value + found.contributions["contribution"].sum() == pytest.approx(found.output)
    assert found.output == pytest.approx(_log_odds_of_risk(model, record), abs=1e-2)


@pytest.mark.slow
def test_a_tree_walk_that_does_not_add_up_falls_back_to_the_permutation_explainer(
    trained, train_test, applicants, monkeypatch
):
    import shap

    class DisagreeingTreeExplainer:  # what shap raises when its walk of the trees differs from the model's own
        def __init__(self, *args, **kwargs):
            pass

        def __call__(self, z):
            raise shap.utils._exceptions.ExplainerError("Additivity check failed in TreeExplainer!")

    monkeypatch.setattr(shap, "TreeExplainer", DisagreeingTreeExplainer)
    model = trained["gradient_boosting"].model
    record = applicants.iloc[[0]]
    found = explain.feature_contributions(model, record, train_test[0], max_background=50, seed=1)
    assert found.explainer == "shap.PermutationExplainer"
    assert found.base_value + found.contributions["contribution"].sum() == pytest.approx(found.output)
    assert found.output == pytest.approx(_log_odds_of_risk(model, record), abs=1e-6)


def test_the_counterfactual_flips_the_decision(trained, applicants):
    model = trained["logistic_regression"].model
    for i in range(len(applicants)):
        record = applicants.iloc[[i]]
        found = explain.counterfactual(model, record)
        assert found.found
        before = model.predict(record[list(FEATURES)])[0]
        after = model.predict(found.record[list(FEATURES)])[0]
        assert (found.decision_before, found.decision_after) == (before, after) and after != before
        changed = [name for name in FEATURES if found.record[name].iloc[0] != record[name].iloc[0]]
        assert changed == list(found.changes.index) and 1 <= len(changed) <= 3
        assert not set(changed) & set(explain.FROZEN_FEATURES)
        assert found.cost > 0


def test_the_counterfactual_is_the_cheapest_single_change(trained, applicants):
    model = trained["logistic_regression"].model
    checked = 0
    for i in range(len(applicants)):
        record = applicants.iloc[[i]]
        found = explain.counterfactual(model, record, max_changes=1)
        if not found.found:  # no single change flips this one
            continue
        before = model.predict(record[list(FEATURES)])[0]
        candidates = explain._candidates(record.iloc[0], explain.FROZEN_FEATURES)
        cheaper = [record.assign(**{name: value}) for name, value, cost in candidates if cost < found.cost]
        if cheaper:
            rows = pd.concat(cheaper)
            assert (model.predict(rows[list(FEATURES)]) == before).all()  # nothing cheaper flips it
            checked += 1
    assert checked >= 3


def test_no_counterfactual_when_everything_is_frozen(trained, applicants):
    found = explain.counterfactual(trained["logistic_regression"].model, applicants.iloc[[0]], frozen=FEATURES)
    assert not found.found and found.changes.empty and found.decision_after == found.decision_before


def test_explain_a_logged_transaction(workspace, applicants):
    registry, engine, model = workspace.registry, workspace.engine, workspace.model
    model_id = workspace.deployment.model_id
    record = applicants.iloc[[2]]
    proba = model.predict_proba(record[list(FEATURES)])[0]
    transaction_id = datamart.new_id()
    datamart.insert_payload(
        engine,
        [
            {
                "transaction_id": transaction_id,
                "deployment_id": workspace.deployment.deployment_id,
                "model_id": model_id,
                "scored_at": utc_now(),
                "inputs": record[list(FEATURES)].astype(object).iloc[0].to_dict(),
                "prediction": str(model_decisions(model, record)[0]),
                "probability_no_risk": proba[0],
                "probability_risk": proba[1],
            }
        ],
    )
    stored = datamart.read_transaction(engine, transaction_id)
    assert stored["model_id"] == model_id and stored["Age"] == record["Age"].iloc[0]
    explanation, counterfactual = explain.explain_transaction(
        transaction_id, workspace.train, engine=engine, registry=registry
    )
    assert explanation.transaction_id == transaction_id
    assert explanation.output == pytest.approx(_log_odds_of_risk(model, record), abs=1e-9)
    assert counterfactual.found and counterfactual.decision_after != counterfactual.decision_before
    with pytest.raises(KeyError, match="no payload record"):
        datamart.read_transaction(engine, "no-such-id")
