"""Invariance: a field that should not matter to a credit decision barely moves the probability of ``Risk``.

``Telephone`` (whether a telephone is registered in the applicant's name) says nothing about repaying a loan,
although in the data it goes together with other fields; a model should not lean on it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from utils.checks.changes import next_category
from utils.checks.results import DEFAULT_THRESHOLDS, CheckResult, CheckThresholds, judged
from utils.decision import risk_probability

#: Fields that should not matter to the decision.
INVARIANT_FIELDS: tuple[str, ...] = ("Telephone",)


def invariance(
    model, frame: pd.DataFrame, field: str = "Telephone", thresholds: CheckThresholds = DEFAULT_THRESHOLDS
) -> CheckResult:
    """Share of applicants whose probability of ``Risk`` moves by more than ``invariance_epsilon`` when ``field``
    takes its other value; at most ``invariance_max_share``."""
    moved = np.abs(risk_probability(model, next_category(frame, field)) - risk_probability(model, frame))
    return judged(
        f"invariance: {field}",
        f"share of applicants whose probability of Risk moves by more than {thresholds.invariance_epsilon:g} "
        f"when {field} changes",
        np.mean(moved > thresholds.invariance_epsilon),
        "<=",
        thresholds.invariance_max_share,
        largest_move=float(moved.max()),
        mean_move=float(moved.mean()),
        rows=len(frame),
    )
