"""Directional expectations: a larger loan, or a longer one, all else equal, does not make an applicant less risky.

In the public German-credit sample (and the bundled data made to behave like it), refused applicants ask for
larger loans (mean 5,062 against 2,687) and longer ones (mean 28 months against 18): risk rises with both.
Each direction gives two results: the probability of ``Risk`` falls for (almost) no applicant, and it rises on
average, so that a model that ignores the field fails too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from utils.checks.changes import scale_numbers
from utils.checks.results import DEFAULT_THRESHOLDS, CheckResult, CheckThresholds, judged
from utils.data import NUMERIC_RANGES, RISK_RISES_WITH
from utils.decision import risk_probability

#: Numeric fields along which the probability of ``Risk`` must not fall as they grow.
RISING_FIELDS: tuple[str, ...] = RISK_RISES_WITH


def directional(
    model, frame: pd.DataFrame, field: str = "LoanAmount", thresholds: CheckThresholds = DEFAULT_THRESHOLDS
) -> list[CheckResult]:
    """Multiply ``field`` by ``directional_factor`` (within the sample's range: :mod:`utils.checks.changes`) and
    compare the probabilities.

    Returns two results: the share of applicants whose probability of ``Risk`` falls by more than
    ``invariance_epsilon`` (at most ``directional_max_share``), and the mean rise (at least
    ``directional_min_mean_rise``). Applicants already at the range's top are left out.
    """
    movable = frame[frame[field] < NUMERIC_RANGES[field][1]]
    change = risk_probability(model, scale_numbers(movable, [field], thresholds.directional_factor))
    change = change - risk_probability(model, movable)
    epsilon = thresholds.invariance_epsilon
    grown = f"{field} × {thresholds.directional_factor:g}"
    details = {"rows": len(movable), "largest_fall": float(max(-change.min(), 0.0)) if len(change) else np.nan}
    return [
        judged(
            f"directional: {field} (no fall)",
            f"share of applicants whose probability of Risk falls by more than {epsilon:g} for {grown}",
            np.mean(change < -epsilon) if len(change) else np.nan,
            "<=",
            thresholds.directional_max_share,
            **details,
        ),
        judged(
            f"directional: {field} (rises)",
            f"mean change of the probability of Risk for {grown}",
            change.mean() if len(change) else np.nan,
            ">=",
            thresholds.directional_min_mean_rise,
            **details,
        ),
    ]
