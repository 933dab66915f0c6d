"""Training and evaluation: both model types train, converge, score, and report honestly."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from utils.data import CLASS_ORDER, FAVOURABLE, LABEL, UNFAVOURABLE, file_sha256
from utils.decision import model_decisions, risk_probability
from utils.features import fit_preprocessor
from utils.training import (
    MODEL_TYPES,
    classification_metrics,
    evaluate,
    fairness_at_training,
    make_classifier,
    train_model,
    training_metadata,
)

ALL_TYPES = sorted(MODEL_TYPES)


@pytest.mark.parametrize("model_type", ALL_TYPES)
def test_model_trains_converges_and_scores(trained, train_test, model_type):
    result = trained[model_type]
    _, test = train_test
    assert result.model_type == model_type
    assert result.converged, result.convergence_note
    assert "raise max_iter" not in result.convergence_note
    assert list(result.model.classes_) == list(CLASS_ORDER)
    metrics, _ = evaluate(result.model, test)
    assert metrics["auc_roc"] > 0.75


@pytest.mark.parametrize("model_type", ALL_TYPES)
def test_fit_and_validation_rows(trained, train_test, model_type):
    result = trained[model_type]
    train, _ = train_test
    assert result.fit_rows + result.validation_rows == len(train)
    assert result.validation_rows == pytest.approx(0.2 * len(train), abs=1)


@pytest.mark.parametrize("model_type", ALL_TYPES)
def test_loss_curve(trained, model_type):
    result = trained[model_type]
    curve = result.loss_curve
    assert list(curve.columns) == ["step", "train_loss", "validation_loss"]
    assert len(curve) >= 2
    assert curve["step"].is_monotonic_increasing
    assert (curve[["train_loss", "validation_loss"]] > 0).all().all()
    assert curve["validation_loss"].iloc[-1] < curve["validation_loss"].iloc[0]
    assert result.step_name in ("training rows", "boosting iterations")


def test_logistic_learning_curve_ends_on_all_fit_rows(trained):
    result = trained["logistic_regression"]
    assert result.step_name == "training rows"
    assert result.loss_curve["step"].iloc[-1] == result.fit_rows


def test_boosting_curve_counts_trees(trained):
    result = trained["gradient_boosting"]
    classifier = result.model.named_steps["classifier"]
    assert result.step_name == "boosting iterations"
    assert result.loss_curve["step"].tolist() == list(range(1, classifier.n_iter_ + 1))


@pytest.mark.parametrize("model_type", ALL_TYPES)
def test_model_takes_raw_rows(trained, train_test, model_type):
    _, test = train_test
    probabilities = trained[model_type].model.predict_proba(test.drop(columns=LABEL))
    assert probabilities.shape == (len(test), 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    ("model_type", "hyperparameters"),
    [("logistic_regression", {"max_iter": 2}), ("gradient_boosting", {"max_iter": 3})],
)
def test_stopping_at_the_limit_is_reported(small_frame, model_type, hyperparameters):
    result = train_model(small_frame, fit_preprocessor(small_frame), model_type, hyperparameters, seed=0)
    assert not result.converged
    assert "raise max_iter" in result.convergence_note


def test_convergence_warning_is_visible_to_user(small_frame):
    with pytest.warns(ConvergenceWarning):
        train_model(small_frame, fit_preprocessor(small_frame), "logistic_regression", {"max_iter": 2}, seed=0)


# --- model types and hyperparameters --------------------------------------------------------


def test_unknown_model_type_raises_naming_it():
    with pytest.raises(ValueError, match="random_forest"):
        make_classifier("random_forest", None, 0)


def test_unknown_model_type_in_train_model(small_frame):
    with pytest.raises(ValueError, match="svm"):
        train_model(small_frame, fit_preprocessor(small_frame), "svm")


@pytest.mark.parametrize(
    ("model_type", "hyperparameters", "names"),
    [
        ("logistic_regression", {"depth": 3}, ["depth"]),
        ("gradient_boosting", {"C": 0.5, "n_trees": 10}, ["C", "n_trees"]),
    ],
)
def test_unknown_hyperparameter_raises_naming_it(model_type, hyperparameters, names):
    with pytest.raises(ValueError) as caught:
        make_classifier(model_type, hyperparameters, 0)
    for name in names:
        assert name in str(caught.value)


def test_hyperparameters_override_defaults(train_test, preprocessor):
    defaults_before = {k: dict(v) for k, v in MODEL_TYPES.items()}
    train, _ = train_test
    result = train_model(train, preprocessor, "logistic_regression", {"C": 0.05}, seed=1)
    assert result.hyperparameters == {"C": 0.05, "max_iter": MODEL_TYPES["logistic_regression"]["max_iter"]}
    classifier = result.model.named_steps["classifier"]
    assert classifier.C == 0.05
    assert classifier.max_iter == MODEL_TYPES["logistic_regression"]["max_iter"]
    assert MODEL_TYPES == defaults_before  # the defaults are not changed by a run


def test_boosting_defaults_and_early_stopping():
    classifier, params = make_classifier("gradient_boosting", {"learning_rate": 0.1}, 7)
    assert classifier.learning_rate == 0.1
    assert classifier.max_leaf_nodes == MODEL_TYPES["gradient_boosting"]["max_leaf_nodes"]
    assert classifier.early_stopping is True
    assert classifier.random_state == 7
    assert params["learning_rate"] == 0.1


# --- metrics -------------------------------------------------------------------------------


def test_classification_metrics_agree_with_sklearn():
    rng = np.random.default_rng(0)
    y_true = np.where(rng.random(200) < 0.35, UNFAVOURABLE, FAVOURABLE)
    score = np.clip((y_true == UNFAVOURABLE) * 0.3 + rng.random(200) * 0.7, 0, 1)
    y_pred = np.where(score > 0.5, UNFAVOURABLE, FAVOURABLE)
    positive, predicted = y_true == UNFAVOURABLE, y_pred == UNFAVOURABLE
    metrics = classification_metrics(y_true, y_pred, score)
    assert set(metrics) == {"auc_roc", "accuracy", "precision", "recall", "f1", "log_loss"}
    assert all(isinstance(value, float) for value in metrics.values())
    assert metrics["auc_roc"] == pytest.approx(roc_auc_score(positive, score))
    assert metrics["accuracy"] == pytest.approx(accuracy_score(positive, predicted))
    assert metrics["precision"] == pytest.approx(precision_score(positive, predicted))
    assert metrics["recall"] == pytest.approx(recall_score(positive, predicted))
    assert metrics["f1"] == pytest.approx(f1_score(positive, predicted))
    assert metrics["log_loss"] == pytest.approx(log_loss(positive, np.clip(score, 1e-15, 1 - 1e-15)))


def test_classification_metrics_risk_is_positive():
    y_true = [FAVOURABLE, FAVOURABLE, UNFAVOURABLE, UNFAVOURABLE]
    metrics = classification_metrics(
        y_true, [FAVOURABLE, UNFAVOURABLE, UNFAVOURABLE, UNFAVOURABLE], [0.1, 0.6, 0.8, 0.9]
    )
    assert metrics["auc_roc"] == 1.0
    assert metrics["recall"] == 1.0
    assert metrics["precision"] == pytest.approx(2 / 3)


def test_classification_metrics_accepts_pandas():
    y_true = pd.Series([FAVOURABLE, UNFAVOURABLE, FAVOURABLE])
    metrics = classification_metrics(y_true, y_true, pd.Series([0.2, 0.7, 0.4]))
    assert metrics["accuracy"] == 1.0


@pytest.mark.parametrize("label", [FAVOURABLE, UNFAVOURABLE])
def test_classification_metrics_needs_both_classes(label):
    with pytest.raises(ValueError, match="both classes"):
        classification_metrics([label] * 4, [label] * 4, [0.1, 0.2, 0.3, 0.4])


@pytest.mark.parametrize("model_type", ALL_TYPES)
def test_evaluate_confusion_matrix(trained, train_test, model_type):
    _, test = train_test
    model = trained[model_type].model
    metrics, matrix = evaluate(model, test)
    assert list(matrix.index) == list(CLASS_ORDER)
    assert list(matrix.columns) == list(CLASS_ORDER)
    assert matrix.index.name == "actual" and matrix.columns.name == "predicted"
    assert int(matrix.to_numpy().sum()) == len(test)
    assert matrix.sum(axis=1).to_dict() == test[LABEL].value_counts().reindex(list(CLASS_ORDER)).to_dict()
    predictions = model.predict(test.drop(columns=LABEL))
    assert matrix.sum(axis=0).to_dict() == pd.Series(predictions).value_counts().reindex(list(CLASS_ORDER)).to_dict()
    correct = matrix.loc[FAVOURABLE, FAVOURABLE] + matrix.loc[UNFAVOURABLE, UNFAVOURABLE]
    assert metrics["accuracy"] == pytest.approx(correct / len(test))


def test_evaluate_needs_labels(trained, train_test):
    from utils.data import DataError

    _, test = train_test
    with pytest.raises(DataError, match=LABEL):
        evaluate(trained["logistic_regression"].model, test.drop(columns=LABEL))


@pytest.mark.parametrize("model_type", ALL_TYPES)
def test_risk_probability_ignore_label_and_column_order(trained, train_test, model_type):
    _, test = train_test
    model = trained[model_type].model
    with_label = risk_probability(model, test)
    assert with_label.shape == (len(test),)
    assert ((with_label >= 0) & (with_label <= 1)).all()
    np.testing.assert_array_equal(with_label, risk_probability(model, test.drop(columns=LABEL)))
    reordered = test[list(reversed(test.columns))].assign(note="x")
    np.testing.assert_array_equal(with_label, risk_probability(model, reordered))
    risk_column = list(model.classes_).index(UNFAVOURABLE)
    np.testing.assert_array_equal(with_label, model.predict_proba(test.drop(columns=LABEL))[:, risk_column])


@pytest.mark.parametrize("model_type", ALL_TYPES)
def test_same_seed_gives_identical_predictions(trained, train_test, model_type):
    train, test = train_test
    again = train_model(train, fit_preprocessor(train), model_type, seed=42)
    np.testing.assert_array_equal(
        trained[model_type].model.predict_proba(test.drop(columns=LABEL)),
        again.model.predict_proba(test.drop(columns=LABEL)),
    )
    pd.testing.assert_frame_equal(trained[model_type].loss_curve, again.loss_curve)


def test_training_metadata_records_lineage(trained, tmp_path):
    result = trained["logistic_regression"]
    files = {}
    for name in ("train_path", "schema_path", "preprocessor_path"):
        files[name] = tmp_path / f"{name}.bin"
        files[name].write_text(name)
    metrics = {"auc_roc": 0.85}
    record = training_metadata(result, metrics, **files)
    assert record["model_type"] == "logistic_regression"
    assert record["hyperparameters"] == result.hyperparameters
    assert record["metrics"] == metrics
    assert record["classes"] == list(CLASS_ORDER)
    assert record["training_data"] == {
        "file": "train_path.bin",
        "sha256": file_sha256(files["train_path"]),
        "rows": result.fit_rows + result.validation_rows,
    }
    assert record["fairness"] == {}  # recorded only when the splits are given
    assert record["schema"]["sha256"] == file_sha256(files["schema_path"])
    assert record["preprocessing"]["sha256"] == file_sha256(files["preprocessor_path"])
    json.dumps(record)  # plain JSON, as the registry writes it


def test_training_metadata_records_the_fairness_of_the_data_and_of_the_models_test_decisions(
    trained, train_test, tmp_path
):
    train, test = train_test
    result = trained["logistic_regression"]
    files = {name: tmp_path / name for name in ("train_path", "schema_path", "preprocessor_path")}
    for path in files.values():
        path.write_text("x")
    record = training_metadata(result, {"auc_roc": 0.85}, **files, train=train, test=test)
    assert record["training_data"]["description"].startswith(f"{len(train):,} rows")
    women = train[train["Sex"] == "female"]
    data_sex = record["fairness"]["training_data"]["Sex"]
    assert data_sex["monitored"] == "female" and data_sex["records_monitored"] == len(women)
    assert data_sex["favourable_rate_monitored"] == pytest.approx((women[LABEL] == FAVOURABLE).mean())
    assert data_sex["disparate_impact"] == pytest.approx(
        data_sex["favourable_rate_monitored"] / data_sex["favourable_rate_reference"]
    )
    decided = model_decisions(result.model, test) == FAVOURABLE
    young = test["Age"].between(18, 25).to_numpy()
    model_age = record["fairness"]["test_decisions"]["Age"]
    assert model_age["favourable_rate_monitored"] == pytest.approx(decided[young].mean())
    assert model_age["equal_opportunity_difference"] is not None
    json.dumps(record, allow_nan=False)  # plain JSON: NumPy numbers and NaN converted


def test_fairness_figures_that_cannot_be_computed_are_none(trained, train_test):
    _, test = train_test
    older = test[test["Age"] > 25]  # nobody in the monitored age group
    figures = fairness_at_training(trained["logistic_regression"].model, test=older)["test_decisions"]["Age"]
    assert figures["records_monitored"] == 0
    assert figures["disparate_impact"] is None and figures["favourable_rate_monitored"] is None
