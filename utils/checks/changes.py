"""Applicants changed in one respect, all else equal: the inputs of the behavioural checks.

Numbers stay whole and within the ranges seen in the public sample (``NUMERIC_RANGES``, what a model was trained
on), and a change never goes against its direction (a value already above the range is not lowered by a rise);
categories stay within their domains.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from utils.data import CATEGORIES, NUMERIC_RANGES


def scale_numbers(frame: pd.DataFrame, columns, factor: float) -> pd.DataFrame:
    """A copy of ``frame`` with each of ``columns`` multiplied by ``factor``, rounded, kept in its range."""
    changed = frame.copy()
    for column in columns:
        low, high = NUMERIC_RANGES[column]
        values = frame[column].to_numpy(dtype=float)
        scaled = np.clip(np.round(values * factor), low, high)
        bounded = np.maximum(scaled, values) if factor >= 1 else np.minimum(scaled, values)
        changed[column] = bounded.astype(int)
    return changed


def next_category(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """A copy of ``frame`` with each value of a categorical ``column`` replaced by the next one of its domain
    (the last by the first): for a two-valued field such as ``Telephone``, the other value."""
    domain = CATEGORIES[column]
    following = dict(zip(domain, (*domain[1:], domain[0]), strict=True))
    changed = frame.copy()
    changed[column] = frame[column].astype(object).map(following)
    return changed
