"""The records of one evaluation window, as the monitors read them.

A :class:`Window` holds the payload records (the deployed model's logged decisions) and the feedback records
(labelled), with the feedback scored again by the monitored model through the decision rule (:mod:`utils.decision`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from utils.data import CATEGORIES, CLASS_ORDER, FEATURES, LABEL
from utils.decision import decide, risk_probability


def no_records(*, feedback: bool = False) -> pd.DataFrame:
    """The records of an empty window, with the columns and types :func:`utils.datamart.read_window` gives."""
    columns = {
        name: pd.Categorical([], list(CATEGORIES[name])) if name in CATEGORIES else pd.Series(dtype=object)
        for name in FEATURES
    }
    decided = pd.Categorical([], list(CLASS_ORDER))
    tail = {LABEL: decided} if feedback else {"prediction": decided, "probability_risk": pd.Series(dtype=float)}
    return pd.DataFrame({**columns, **tail})


def score_feedback(model, feedback: pd.DataFrame) -> pd.DataFrame:
    """The decision and probability of ``Risk`` of ``model`` for each feedback record (``prediction``,
    ``probability_risk``), in the records' order."""
    if not len(feedback):
        return pd.DataFrame({"prediction": [], "probability_risk": []})
    risk = risk_probability(model, feedback)
    return pd.DataFrame({"prediction": decide(risk), "probability_risk": risk})


@dataclass(frozen=True)
class Window:
    """One window's records: ``payload`` and ``feedback`` as :func:`utils.datamart.read_window` returns them, and
    ``scored``, the feedback scored by the monitored model (:func:`score_feedback`)."""

    payload: pd.DataFrame
    feedback: pd.DataFrame
    scored: pd.DataFrame

    @classmethod
    def of(cls, model, payload: pd.DataFrame, feedback: pd.DataFrame) -> Window:
        """The window of these records, its feedback scored by ``model``."""
        return cls(payload, feedback, score_feedback(model, feedback))

    @property
    def judged_feedback(self) -> pd.DataFrame:
        """The feedback records with the monitored model's decision as ``prediction`` (beside the label)."""
        return self.feedback.assign(prediction=self.scored["prediction"].to_numpy())
