"""The figures an evaluation compares: quality and fairness of one model's answers on labelled test data.

The same function measures the candidate (from the probabilities its endpoint answered and logged) and the
baseline (scored here from the registry), so the two are compared on exactly the same rows and by the same rules.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from utils.data import FAVOURABLE, LABEL, PROTECTED_GROUPS, UNFAVOURABLE
from utils.decision import decide
from utils.fairness import fairness_metrics
from utils.training import classification_metrics

#: Points of a ROC curve kept for the report's plot.
_ROC_POINTS = 200


def model_figures(frame: pd.DataFrame, probability_risk: np.ndarray) -> dict[str, float]:
    """Quality (ROC AUC, accuracy, precision, recall, F1, log loss) and, per protected attribute, the favourable
    rates and disparate impact (``disparate_impact[Sex]``) of the decisions that ``probability_risk`` gives on
    the labelled rows of ``frame``."""
    probability_risk = np.asarray(probability_risk, dtype=float)
    decided = decide(probability_risk)
    figures = classification_metrics(frame[LABEL].to_numpy(), decided, probability_risk)
    figures["favourable_rate"] = float(np.mean(decided == FAVOURABLE))
    judged = frame.assign(prediction=decided)
    for attribute in PROTECTED_GROUPS:
        fair = fairness_metrics(judged, attribute, label=LABEL)
        figures[f"disparate_impact[{attribute}]"] = fair["disparate_impact"]
        figures[f"favourable_rate[{attribute}={fair['monitored']}]"] = fair["favourable_rate_monitored"]
        figures[f"favourable_rate[{attribute}={fair['reference']}]"] = fair["favourable_rate_reference"]
        figures[f"equal_opportunity_difference[{attribute}]"] = fair["equal_opportunity_difference"]
    return {name: float(value) for name, value in figures.items()}


def roc_points(frame: pd.DataFrame, probability_risk: np.ndarray) -> pd.DataFrame:
    """At most a few hundred points of the ROC curve (``Risk`` positive): false and true positive rates."""
    fpr, tpr, _ = roc_curve(frame[LABEL].to_numpy() == UNFAVOURABLE, probability_risk)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), _ROC_POINTS)).round().astype(int))
    return pd.DataFrame({"false_positive_rate": fpr[keep], "true_positive_rate": tpr[keep]})
