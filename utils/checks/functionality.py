"""Minimum functionality: clear-cut applicants get the expected decision.

The applicants are a small table, ``data/model_checks.csv``: the 20 features, the ``expected`` decision and the
``reason`` it is clear-cut. They are chosen so that their decision follows from facts that hold in the public
German-credit sample and in the bundled data alike (see ``docs/model-checks.md``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from utils import config
from utils.checks.results import DEFAULT_THRESHOLDS, CheckResult, CheckThresholds, judged
from utils.data import CLASS_ORDER, FEATURES, DataError, load_credit_csv
from utils.decision import model_decisions, risk_probability
from utils.scoring import InputError, frame_columns, validate_columns

#: The clear-cut applicants shipped with the project.
CHECK_CASES = config.DATA_DIR / "model_checks.csv"
NAME = "minimum functionality"


def load_check_cases(path=CHECK_CASES) -> pd.DataFrame:
    """The clear-cut applicants, checked against the contract.

    Raises:
        DataError: a missing column, an ``expected`` decision that is not a class, or a feature that breaks the
            contract (the message names the column and the row).
    """
    cases = load_credit_csv(path)
    missing = [c for c in (*FEATURES, "expected", "reason") if c not in cases.columns]
    if missing:
        raise DataError(f"{path}: missing columns: {', '.join(missing)}")
    unknown = sorted(set(cases["expected"]) - set(CLASS_ORDER))
    if unknown:
        raise DataError(f"{path}: expected must be one of {', '.join(CLASS_ORDER)}, got {', '.join(unknown)}")
    try:
        validate_columns(frame_columns(cases))
    except InputError as error:
        raise DataError(f"{path}: {error.message}") from None
    return cases


def minimum_functionality(
    model, cases: pd.DataFrame | None = None, thresholds: CheckThresholds = DEFAULT_THRESHOLDS
) -> CheckResult:
    """Share of the clear-cut applicants that get their expected decision; at least ``min_functionality_share``."""
    cases = load_check_cases() if cases is None else cases
    decisions = model_decisions(model, cases)
    correct = decisions == cases["expected"].to_numpy()
    wrong = pd.DataFrame(
        {
            "row": np.flatnonzero(~correct),
            "expected": cases["expected"].to_numpy()[~correct],
            "probability_risk": risk_probability(model, cases)[~correct].round(4),
            "reason": cases["reason"].to_numpy()[~correct],
        }
    )
    return judged(
        NAME,
        "share of clear-cut applicants that get the expected decision",
        correct.mean(),
        ">=",
        thresholds.min_functionality_share,
        cases=len(cases),
        wrong=wrong,
    )
