"""Per-group regression: against the champion, no protected group and no important slice does much worse.

The groups are the contract's protected groups (``PROTECTED_GROUPS``: ``Sex`` female and male, ``Age`` 18-25 and
26-75); the slices are the values of ``LoanPurpose``. A group or slice with fewer than ``regression_min_rows``
held-out rows is listed but not judged: on a few dozen rows a ROC AUC moves by more than the threshold by chance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from utils.checks.results import DEFAULT_THRESHOLDS, CheckResult, CheckThresholds, judged, skipped
from utils.data import CATEGORIES, FAVOURABLE, LABEL, PROTECTED_GROUPS, UNFAVOURABLE
from utils.decision import decide, risk_probability
from utils.fairness import group_masks, group_names

#: The column whose values are the important slices.
SLICE_FIELD = "LoanPurpose"
_AUC = ("per-group regression: ROC AUC", "largest fall of ROC AUC in a protected group or slice, against the champion")
_RATE = (
    "per-group regression: favourable rate",
    "largest fall of the favourable (No Risk) rate in a protected group or slice, against the champion",
)


def groups(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Row masks of the protected groups and the slices, named like ``Sex=female`` or ``LoanPurpose=car_new``."""
    masks = {}
    for attribute in PROTECTED_GROUPS:
        for name, mask in zip(group_names(attribute), group_masks(frame, attribute), strict=True):
            masks[f"{attribute}={name}"] = mask
    for value in CATEGORIES[SLICE_FIELD]:
        masks[f"{SLICE_FIELD}={value}"] = (frame[SLICE_FIELD] == value).to_numpy()
    return masks


def _auc(risk: np.ndarray, probability: np.ndarray) -> float:
    return float(roc_auc_score(risk, probability)) if 0 < risk.sum() < len(risk) else np.nan


def group_figures(model, frame: pd.DataFrame) -> pd.DataFrame:
    """Rows, ROC AUC (``Risk`` positive; NaN with one class only) and favourable rate per group and slice."""
    probability = risk_probability(model, frame)
    favourable = decide(probability) == FAVOURABLE
    risk = (frame[LABEL] == UNFAVOURABLE).to_numpy()
    rows = [
        {
            "group": name,
            "rows": int(mask.sum()),
            "auc_roc": _auc(risk[mask], probability[mask]) if mask.any() else np.nan,
            "favourable_rate": float(favourable[mask].mean()) if mask.any() else np.nan,
        }
        for name, mask in groups(frame).items()
    ]
    return pd.DataFrame(rows).set_index("group")


def group_comparison(model, champion, frame: pd.DataFrame, min_rows: int) -> pd.DataFrame:
    """The figures of ``model`` and ``champion`` side by side, each fall (champion minus model) and whether the
    group is judged (at least ``min_rows`` rows)."""
    mine, theirs = group_figures(model, frame), group_figures(champion, frame)
    table = mine.join(theirs.drop(columns="rows"), rsuffix="_champion")
    table["auc_drop"] = table["auc_roc_champion"] - table["auc_roc"]
    table["favourable_drop"] = table["favourable_rate_champion"] - table["favourable_rate"]
    table["judged"] = table["rows"] >= min_rows
    return table.reset_index()


def _worst(name: str, measures: str, table: pd.DataFrame, column: str, threshold: float) -> CheckResult:
    judged_rows = table[table["judged"] & table[column].notna()]
    if judged_rows.empty:
        return skipped(name, measures, "no protected group or slice has enough rows to compare", groups=table)
    worst = judged_rows.loc[judged_rows[column].idxmax()]
    return judged(name, measures, worst[column], "<=", threshold, worst_group=worst["group"], groups=table)


def per_group_regression(
    model, champion, frame: pd.DataFrame, thresholds: CheckThresholds = DEFAULT_THRESHOLDS
) -> list[CheckResult]:
    """Two results: the largest fall of ROC AUC (at most ``regression_max_auc_drop``) and of the favourable rate
    (at most ``regression_max_favourable_drop``) over the groups and slices; both skipped without a champion."""
    if champion is None:
        reason = "no champion: nothing to compare with (give one to run this check)"
        return [skipped(*_AUC, reason), skipped(*_RATE, reason)]
    table = group_comparison(model, champion, frame, thresholds.regression_min_rows)
    return [
        _worst(*_AUC, table, "auc_drop", thresholds.regression_max_auc_drop),
        _worst(*_RATE, table, "favourable_drop", thresholds.regression_max_favourable_drop),
    ]
