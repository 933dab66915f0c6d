"""Training converged: the validation loss at the end of the loss curve declines or is flat.

The curve comes from the model's metadata (key ``loss_curve``: ``step``, ``train_loss``, ``validation_loss``, as
``utils.training`` records it in ``TrainingResult.loss_curve``); a model registered without one is judged on what
the fitted estimator itself keeps: gradient boosting its per-iteration validation (else training) scores, a
logistic regression its solver's iteration count against the limit. The validation loss is the one that tells:
along a learning curve the training loss rises with more rows while the validation loss falls.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import linregress

from utils.checks.results import DEFAULT_THRESHOLDS, CheckResult, CheckThresholds, judged, skipped

#: Key of a model's metadata holding its loss curve (columns ``step``, ``train_loss``, ``validation_loss``).
LOSS_CURVE_KEY = "loss_curve"
NAME = "artifact: training converged"
_MIN_TAIL_POINTS = 3


def _classifier(model):
    steps = getattr(model, "steps", None)
    return steps[-1][1] if steps else model


def _estimator_curve(model) -> pd.Series | None:
    """The loss per boosting iteration that gradient boosting keeps (scores are negative losses; entry 0 is the
    model before the first tree), validation scores first."""
    classifier = _classifier(model)
    for attribute in ("validation_score_", "train_score_"):
        scores = np.asarray(getattr(classifier, attribute, []), dtype=float)
        if scores.size > _MIN_TAIL_POINTS:
            return pd.Series(-scores[1:], index=np.arange(1, scores.size), name=attribute)
    return None


def _tail_rise(losses: pd.Series, thresholds: CheckThresholds) -> tuple[float, int]:
    """The rise of the line fitted to the curve's last part, relative to that part's mean loss, and its length."""
    points = max(_MIN_TAIL_POINTS, math.ceil(thresholds.convergence_tail_share * len(losses)))
    tail = losses.iloc[-points:]
    steps = tail.index.to_numpy(dtype=float)
    slope = linregress(steps, tail.to_numpy(dtype=float)).slope
    return float(slope * (steps[-1] - steps[0]) / tail.mean()), len(tail)


def convergence(model, metadata: dict, thresholds: CheckThresholds = DEFAULT_THRESHOLDS) -> CheckResult:
    """The relative rise of the validation loss across the loss curve's last ``convergence_tail_share``; at most
    ``convergence_max_rise``. Without a curve, a logistic regression's solver must stop before its limit."""
    measures = f"rise of the validation loss across the last {thresholds.convergence_tail_share:.0%} of its curve"
    recorded = metadata.get(LOSS_CURVE_KEY)
    if recorded:
        curve = pd.DataFrame(recorded)
        losses, source = curve.set_index("step")["validation_loss"], "the model's metadata"
    else:
        losses, source = _estimator_curve(model), "the fitted estimator"
    if losses is not None and len(losses) >= _MIN_TAIL_POINTS:
        rise, points = _tail_rise(losses, thresholds)
        return judged(NAME, measures, rise, "<=", thresholds.convergence_max_rise, source=source, points=points)
    classifier = _classifier(model)
    iterations, limit = getattr(classifier, "n_iter_", None), getattr(classifier, "max_iter", None)
    if iterations is not None and limit is not None:
        measures = f"iterations the solver used (it stops at its limit of {limit} when it has not converged)"
        return judged(NAME, measures, int(np.max(iterations)), "<=", limit - 1, source="the fitted estimator")
    return skipped(NAME, measures, "the model records no loss curve and its estimator keeps no training record")
