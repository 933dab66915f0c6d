"""The records of one evaluation window, as the monitors read them.

A :class:`Window` holds the payload records (the deployed model's logged decisions) and the feedback records
(labelled), with the feedback's decisions by the decision rule (:mod:`utils.decision`): from the probability logged
for the transaction a feedback record names, else from the monitored model scoring the record again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from utils.datamart.columnar import empty_window
from utils.decision import decide, risk_probability


def no_records(*, feedback: bool = False) -> pd.DataFrame:
    """The records of an empty window, with the columns and types :func:`utils.datamart.read_window` gives."""
    return empty_window(feedback=feedback)


def score_feedback(model, feedback: pd.DataFrame) -> pd.DataFrame:
    """The decision and probability of ``Risk`` for each feedback record (``prediction``, ``probability_risk``),
    in the records' order: the probability logged for the transaction the record names
    (``logged_probability_risk``), else that of ``model`` scoring the record again."""
    if not len(feedback):
        return pd.DataFrame({"prediction": [], "probability_risk": []})
    logged = feedback.get("logged_probability_risk")
    risk = np.full(len(feedback), np.nan) if logged is None else logged.to_numpy(dtype=float, copy=True)
    unlinked = np.isnan(risk)
    if unlinked.any():
        risk[unlinked] = risk_probability(model, feedback if unlinked.all() else feedback[unlinked])
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
        """The feedback records with the monitored model's decision as ``prediction`` (beside the label) and its
        probability of ``Risk`` as ``probability_risk``."""
        scored = self.scored
        return self.feedback.assign(
            prediction=scored["prediction"].to_numpy(), probability_risk=scored["probability_risk"].to_numpy()
        )
