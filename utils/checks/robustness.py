"""Robustness: small changes of the numeric inputs rarely flip a decision."""

from __future__ import annotations

import numpy as np
import pandas as pd

from utils.checks.changes import scale_numbers
from utils.checks.results import DEFAULT_THRESHOLDS, CheckResult, CheckThresholds, judged
from utils.data import NUMERIC_FEATURES
from utils.decision import model_decisions


def robustness(model, frame: pd.DataFrame, thresholds: CheckThresholds = DEFAULT_THRESHOLDS) -> CheckResult:
    """Share of applicants whose decision flips when all their numbers grow, or all shrink, by
    ``robustness_change`` (rounded to whole numbers, within the sample's ranges); at most
    ``robustness_max_flip_share``."""
    decisions = model_decisions(model, frame)
    change = thresholds.robustness_change
    flipped = np.zeros(len(frame), dtype=bool)
    for factor in (1 - change, 1 + change):
        flipped |= model_decisions(model, scale_numbers(frame, NUMERIC_FEATURES, factor)) != decisions
    return judged(
        "robustness",
        f"share of decisions that flip under ±{change:.0%} changes of the numeric inputs",
        flipped.mean() if len(frame) else np.nan,
        "<=",
        thresholds.robustness_max_flip_share,
        rows=len(frame),
        flipped=int(flipped.sum()),
    )
