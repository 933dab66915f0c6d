"""The decision rule: how a model's probability of ``Risk`` becomes the decision on an application.

Scoring, batch jobs, fairness, monitoring and explanations all decide through this module, so that a decision
logged by the service, re-computed by a monitor and explained to a loan officer is always the same decision.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from utils.data import FAVOURABLE, FEATURES, UNFAVOURABLE

#: An application is refused (``Risk``) when its probability of ``Risk`` is above this.
RISK_THRESHOLD = 0.5


def decide(probability_risk) -> np.ndarray:
    """The decisions (``Risk`` / ``No Risk``) for probabilities of ``Risk``."""
    return np.where(np.asarray(probability_risk, dtype=float) > RISK_THRESHOLD, UNFAVOURABLE, FAVOURABLE)


def decision(probability_risk: float) -> str:
    """The decision for one probability of ``Risk``, as :func:`decide` gives it."""
    return UNFAVOURABLE if probability_risk > RISK_THRESHOLD else FAVOURABLE


def risk_probability(model, frame: pd.DataFrame) -> np.ndarray:
    """A fitted classifier's probability of ``Risk`` for each row of ``frame`` (its 20 features are used)."""
    proba = model.predict_proba(frame[list(FEATURES)])
    return proba[:, list(model.classes_).index(UNFAVOURABLE)]


def model_decisions(model, frame: pd.DataFrame) -> np.ndarray:
    """A fitted classifier's decisions for each row of ``frame``, by :data:`RISK_THRESHOLD`."""
    return decide(risk_probability(model, frame))
