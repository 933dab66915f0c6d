"""Model training and evaluation.

Two model types: a logistic regression and gradient-boosted trees. Training holds
out a validation split and records the loss on both parts, along a learning curve
for the logistic regression and per boosting iteration for the trees, so that a
person can see whether training converged. Evaluation uses ``Risk`` as the positive
class: a score is the probability of ``Risk``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
import skops
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.pipeline import Pipeline

from utils.data import CLASS_ORDER, FEATURES, RISK_RISES_WITH, UNFAVOURABLE, file_sha256
from utils.decision import decide, risk_probability
from utils.features import split_features_label, stratified_split

#: Model types and their default hyperparameters.
MODEL_TYPES: dict[str, dict] = {
    "logistic_regression": {"C": 1.0, "max_iter": 1000},
    "gradient_boosting": {
        "learning_rate": 0.05,
        "max_iter": 500,
        "max_leaf_nodes": 15,
        "l2_regularization": 1.0,
        "n_iter_no_change": 20,
    },
}
_ESTIMATORS = {"logistic_regression": LogisticRegression, "gradient_boosting": HistGradientBoostingClassifier}
_LEARNING_CURVE_SHARES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass
class TrainingResult:
    """A fitted model with the record of how it trained."""

    model: Pipeline
    model_type: str
    hyperparameters: dict
    loss_curve: pd.DataFrame  # columns: step, train_loss, validation_loss
    step_name: str  # what ``step`` counts: training rows or boosting iterations
    converged: bool
    convergence_note: str
    validation_rows: int
    fit_rows: int
    extra: dict = field(default_factory=dict)


def make_classifier(model_type: str, hyperparameters: dict | None, seed: int):
    """A fresh classifier of ``model_type`` with defaults overridden by ``hyperparameters``."""
    if model_type not in MODEL_TYPES:
        raise ValueError(f"unknown model type {model_type!r}; choose one of {sorted(MODEL_TYPES)}")
    params = {**MODEL_TYPES[model_type], **(hyperparameters or {})}
    estimator = _ESTIMATORS[model_type]
    unknown = sorted(set(params) - set(estimator().get_params()))
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) for {model_type}: {', '.join(unknown)}")
    if model_type == "gradient_boosting":
        params |= {"early_stopping": True, "scoring": "loss"}
    return estimator(**params, random_state=seed), params


def _logistic_learning_curve(classifier, x_fit, y_fit, x_val, y_val, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y_fit))
    rows = []
    for share in _LEARNING_CURVE_SHARES:
        idx = order[: max(int(share * len(order)), 20)]
        model = clone(classifier).fit(x_fit[idx], y_fit[idx])
        rows.append(
            {
                "step": len(idx),
                "train_loss": log_loss(y_fit[idx], model.predict_proba(x_fit[idx]), labels=model.classes_),
                "validation_loss": log_loss(y_val, model.predict_proba(x_val), labels=model.classes_),
            }
        )
    return pd.DataFrame(rows)


def _fit_logistic(classifier, params: dict, x_fit, y_fit, x_val, y_val, seed: int) -> tuple:
    """Fit a logistic regression; its learning curve over training rows, whether it converged, and why."""
    curve = _logistic_learning_curve(classifier, x_fit, y_fit, x_val, y_val, seed)
    classifier.fit(x_fit, y_fit)
    iterations = int(np.max(classifier.n_iter_))
    converged = iterations < params["max_iter"]
    note = (
        f"the solver converged in {iterations} iterations (limit {params['max_iter']})"
        if converged
        else f"the solver stopped at its limit of {params['max_iter']} iterations: raise max_iter"
    )
    return curve, converged, note, "training rows"


def _fit_boosting(classifier, params: dict, x_fit, y_fit, x_val, y_val, seed: int) -> tuple:
    """Fit gradient boosting with early stopping on the validation part; its loss curve over trees, and why it
    stopped."""
    classifier.fit(x_fit, y_fit, X_val=x_val, y_val=y_val)
    # Scores are negative losses; entry 0 is the model before the first tree.
    curve = pd.DataFrame(
        {
            "step": np.arange(1, len(classifier.train_score_)),
            "train_loss": -classifier.train_score_[1:],
            "validation_loss": -classifier.validation_score_[1:],
        }
    )
    iterations = int(classifier.n_iter_)
    converged = iterations < params["max_iter"]
    note = (
        f"early stopping after {iterations} trees: the validation loss stopped improving"
        if converged
        else f"all {iterations} trees used and the validation loss still falls: raise max_iter"
    )
    return curve, converged, note, "boosting iterations"


def rising_constraints(preprocessor: ColumnTransformer) -> list[int]:
    """Gradient boosting's monotonic constraints over the preprocessed columns: the probability of ``Risk`` (the
    positive class) may only rise along :data:`~utils.data.RISK_RISES_WITH`, other columns are free."""
    return [int(name in RISK_RISES_WITH) for name in preprocessor.get_feature_names_out()]


def train_model(
    train: pd.DataFrame,
    preprocessor: ColumnTransformer,
    model_type: str = "logistic_regression",
    hyperparameters: dict | None = None,
    *,
    seed: int = 42,
    validation_size: float = 0.2,
) -> TrainingResult:
    """Fit a classifier on the training split, holding out ``validation_size`` of it.

    ``preprocessor`` is the fitted preprocessing; the returned model chains it with
    the classifier, so it takes raw applicant rows.
    """
    classifier, params = make_classifier(model_type, hyperparameters, seed)
    if model_type == "gradient_boosting" and "monotonic_cst" not in params:
        params["monotonic_cst"] = rising_constraints(preprocessor)
        classifier.set_params(monotonic_cst=params["monotonic_cst"])
    fit_part, validation_part = stratified_split(train, validation_size, seed)
    x_fit_raw, y_fit = split_features_label(fit_part)
    x_val_raw, y_val = split_features_label(validation_part)
    x_fit, x_val = preprocessor.transform(x_fit_raw), preprocessor.transform(x_val_raw)
    y_fit, y_val = y_fit.to_numpy(), y_val.to_numpy()

    fit = _fit_logistic if model_type == "logistic_regression" else _fit_boosting
    curve, converged, note, step_name = fit(classifier, params, x_fit, y_fit, x_val, y_val, seed)
    model = Pipeline([("preprocess", preprocessor), ("classifier", classifier)])
    return TrainingResult(
        model=model,
        model_type=model_type,
        hyperparameters=params,
        loss_curve=curve,
        step_name=step_name,
        converged=converged,
        convergence_note=note,
        validation_rows=len(y_val),
        fit_rows=len(y_fit),
    )


def classification_metrics(y_true, y_pred, risk_score) -> dict[str, float]:
    """ROC AUC, accuracy, precision, recall, F1 (``Risk`` positive) and log loss."""
    positive = np.asarray(y_true) == UNFAVOURABLE
    predicted = np.asarray(y_pred) == UNFAVOURABLE
    score = np.asarray(risk_score, dtype=float)
    if positive.all() or not positive.any():
        raise ValueError("both classes are needed to compute ROC AUC")
    return {
        "auc_roc": float(roc_auc_score(positive, score)),
        "accuracy": float(accuracy_score(positive, predicted)),
        "precision": float(precision_score(positive, predicted, zero_division=0)),
        "recall": float(recall_score(positive, predicted, zero_division=0)),
        "f1": float(f1_score(positive, predicted, zero_division=0)),
        "log_loss": float(log_loss(positive, np.clip(score, 1e-15, 1 - 1e-15), labels=[False, True])),
    }


def evaluate(model, test: pd.DataFrame) -> tuple[dict[str, float], pd.DataFrame]:
    """Metrics on labelled data and the confusion matrix (rows: actual, columns: predicted)."""
    features, labels = split_features_label(test)
    scores = risk_probability(model, features)
    predictions = decide(scores)
    metrics = classification_metrics(labels, predictions, scores)
    matrix = confusion_matrix(labels, predictions, labels=list(CLASS_ORDER))
    return metrics, pd.DataFrame(
        matrix,
        index=pd.Index(CLASS_ORDER, name="actual"),
        columns=pd.Index(CLASS_ORDER, name="predicted"),
    )


def training_metadata(
    result: TrainingResult,
    metrics: dict[str, float],
    *,
    train_path: Path,
    schema_path: Path,
    preprocessor_path: Path,
) -> dict:
    """What the registry records with a model: parameters, metrics and lineage (file hashes)."""
    return {
        "model_type": result.model_type,
        "hyperparameters": result.hyperparameters,
        "metrics": metrics,
        "convergence_note": result.convergence_note,
        "classes": list(result.model.classes_),
        "features": list(FEATURES),
        "training_data": {"sha256": file_sha256(train_path), "rows": result.fit_rows + result.validation_rows},
        "schema": {"sha256": file_sha256(schema_path)},
        "preprocessing": {"sha256": file_sha256(preprocessor_path)},
        "library_versions": {"scikit-learn": sklearn.__version__, "skops": skops.__version__},
    }
