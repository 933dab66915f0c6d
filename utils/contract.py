"""Records checked against the data contract, in two levels, and the identifiers that requests carry.

The *contract* (:mod:`utils.data`: types, category domains, :data:`~utils.data.CONTRACT_RANGES`) decides whether a
record can be scored at all. A record that breaks it is refused with every fault of the row, each naming its
field and row (:class:`Fault`); a request with several such rows lists each of them, up to
:data:`MAX_LISTED_ROWS`, and says how many more there are.

The *observed ranges* are the numbers' ranges in the training data (:func:`observed_ranges`: those of the
training split that notebook 01 writes, else :data:`~utils.data.NUMERIC_RANGES`). A value inside the contract
but outside them is scored; :func:`out_of_range` names such fields of each record, for the payload log and the
data-quality monitor.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from utils.data import CATEGORIES, CLASS_ORDER, CONTRACT_RANGES, FEATURES, LABEL, NUMERIC_FEATURES, NUMERIC_RANGES

#: Most rows at fault that one error lists with their faults (the others are counted).
MAX_LISTED_ROWS = 20
#: Longest identifier (deployment id, transaction id) a request may send, as the data mart stores them.
MAX_ID_LENGTH = 64
#: Longest value shown in an error message.
_SHOWN = 60

Columns = dict[str, list]
Ranges = Mapping[str, tuple[int, int]]
DOMAINS: dict[str, frozenset[str]] = {
    **{name: frozenset(values) for name, values in CATEGORIES.items()},
    LABEL: frozenset(CLASS_ORDER),
}
#: An identifier: ASCII letters, digits, '.', '_', ':' and '-', starting with a letter or digit (matched whole).
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")


def shown(value: object) -> str:
    """``repr(value)``, cut short for an error message."""
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}... ({len(text)} characters)"


@dataclass(frozen=True)
class Fault:
    """One fault of a record: the field, the row (0-based) and what is wrong (the text does not repeat the row)."""

    field: str
    row: int | None
    problem: str

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "row": self.row, "error": self.problem}


class InputError(ValueError):
    """A request that breaks the contract: the message, the field and row at fault, the HTTP status.

    ``faults`` lists every fault of the rows at fault when there are several (the first is ``field``/``row``),
    and ``rows_omitted`` how many more rows at fault are not listed.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        row: int | None = None,
        status: int = 400,
        faults: Sequence[Fault] = (),
        rows_omitted: int = 0,
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        self.row = row
        self.status = status
        self.faults = tuple(faults)
        self.rows_omitted = rows_omitted

    def as_dict(self) -> dict[str, Any]:
        """The JSON error body: ``{"error", "field", "row"}``, and ``faults`` and ``rows_omitted`` when listed."""
        body: dict[str, Any] = {"error": self.message, "field": self.field, "row": self.row}
        if self.faults:
            body |= {"faults": [fault.as_dict() for fault in self.faults], "rows_omitted": self.rows_omitted}
        return body


def faults_by_row(faults: Sequence[Fault]) -> dict[int | None, list[Fault]]:
    """The faults grouped by row, rows in order (faults without a row first), each row's in field order."""
    grouped: dict[int | None, list[Fault]] = {}
    for fault in sorted(faults, key=lambda f: -1 if f.row is None else f.row):
        grouped.setdefault(fault.row, []).append(fault)
    return grouped


def contract_error(
    faults: Sequence[Fault], *, limit: int = MAX_LISTED_ROWS, rule: str = "the data contract"
) -> InputError:
    """One error for the faults of a request: every fault of the first ``limit`` rows at fault, in row order;
    ``rule`` is what the rows break."""
    grouped = faults_by_row(faults)
    rows = list(grouped)[:limit]
    omitted = len(grouped) - len(rows)
    listed = [fault for row in rows for fault in grouped[row]]
    lines = "; ".join(f"row {row}: " + ", ".join(f.problem for f in grouped[row]) for row in rows)
    many = f"{len(grouped)} rows break" if len(grouped) > 1 else "a row breaks"
    more = f"; {omitted} more rows at fault are not listed" if omitted else ""
    first = listed[0]
    return InputError(
        f"{many} {rule}: {lines}{more}",
        field=first.field,
        row=first.row,
        faults=listed,
        rows_omitted=omitted,
    )


def _category_faults(name: str, values: list) -> list[Fault]:
    domain = DOMAINS[name]
    try:
        if domain.issuperset(values):
            return []
    except TypeError:  # an unhashable value such as a list: reported below
        pass
    faults = []
    for row, value in enumerate(values):
        if value is None:
            faults.append(Fault(name, row, f"{name} is null"))
        elif not isinstance(value, str):
            faults.append(Fault(name, row, f"{name} must be text, got {shown(value)}"))
        elif value not in domain:
            expected = ", ".join(sorted(domain))
            faults.append(Fault(name, row, f"{name}: unseen category {shown(value)}; expected one of {expected}"))
    return faults


def _number_problem(name: str, value: object) -> str | None:
    low, high = CONTRACT_RANGES[name]
    if value is None:
        return f"{name} is null"
    integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not integral:
        return f"{name} must be an integer, got {shown(value)}"
    if not low <= value <= high:
        return f"{name} = {value} is out of the contract's range [{low}, {high}]"
    return None


def _integer_column(name: str, values: list) -> tuple[list, list[Fault]]:
    low, high = CONTRACT_RANGES[name]
    if all(type(value) is int for value in values) and (not values or low <= min(values) and max(values) <= high):
        return values, []
    checked, faults = [], []
    for row, value in enumerate(values):
        problem = _number_problem(name, value)
        if problem:
            faults.append(Fault(name, row, problem))
        checked.append(value if problem else int(value))
    return checked, faults


def contract_faults(columns: Mapping[str, list], *, label: bool = False) -> tuple[Columns, list[Fault]]:
    """Every fault of every row, each column checked on its own; and the columns in contract order, integers as
    ``int`` (values at fault as they came)."""
    checked: Columns = {}
    faults: list[Fault] = []
    for name in (*FEATURES, LABEL) if label else FEATURES:
        if name in CONTRACT_RANGES:
            checked[name], found = _integer_column(name, columns[name])
        else:
            checked[name], found = columns[name], _category_faults(name, columns[name])
        faults += found
    return checked, faults


#: Most records :func:`validate_columns` checks value by value first (:func:`_plainly_valid`).
_FEW_ROWS = 10
#: Each field of the contract with its domain (a category) or its range (an integer), in contract order.
_LABELLED = (*FEATURES, LABEL)
_CHECKS = tuple((name, DOMAINS.get(name), CONTRACT_RANGES.get(name)) for name in _LABELLED)


def _plainly_valid(columns: Mapping[str, list], fields: int) -> bool:
    """Whether every value of the first ``fields`` fields of the contract is in its domain or an ``int`` in its
    range: a few records' common case, checked in one pass with none of the fault-finding's calls per field."""
    for name, domain, bounds in _CHECKS[:fields]:
        for value in columns[name]:
            if domain is not None:
                if value.__class__ is not str or value not in domain:
                    return False
            elif value.__class__ is not int or not bounds[0] <= value <= bounds[1]:
                return False
    return True


def validate_columns(columns: Mapping[str, list], *, label: bool = False) -> Columns:
    """Check each column against the contract; returns them in contract order, integers as ``int``.

    Raises:
        InputError: the rows that break the contract, each with all of its faults (:func:`contract_error`).
    """
    names = _LABELLED if label else FEATURES
    if len(columns[FEATURES[0]]) <= _FEW_ROWS and _plainly_valid(columns, len(names)):
        return dict(columns) if tuple(columns) == names else {name: columns[name] for name in names}
    checked, faults = contract_faults(columns, label=label)
    if faults:
        raise contract_error(faults)
    return checked


def _in_domain(series: pd.Series, domain: frozenset[str]) -> np.ndarray:
    if isinstance(series.dtype, pd.CategoricalDtype):  # check each category once, then look the codes up
        known = np.array([isinstance(c, str) and c in domain for c in series.cat.categories] + [False])
        return known[series.cat.codes.to_numpy()]  # code -1 (null) picks the last, False
    try:
        return series.isin(list(domain)).to_numpy(dtype=bool)
    except TypeError:  # unhashable values: left to validate_columns
        return np.zeros(len(series), dtype=bool)


def _in_range(series: pd.Series, low: int, high: int) -> np.ndarray:
    if series.dtype.kind in "iu":  # numpy integers: no nulls, nothing else to check
        values = series.to_numpy()
        return (values >= low) & (values <= high)
    if pd.api.types.is_bool_dtype(series):
        return np.zeros(len(series), dtype=bool)
    if series.dtype == object:  # only plain int and float values are vouched for here
        series = pd.to_numeric(series.where(series.map(type).isin((int, float))), errors="coerce")
    elif not pd.api.types.is_numeric_dtype(series):
        return np.zeros(len(series), dtype=bool)
    fine = series.between(low, high)
    if not pd.api.types.is_integer_dtype(series):
        fine &= series % 1 == 0
    return fine.to_numpy(dtype=bool, na_value=False)


def valid_rows(frame: pd.DataFrame) -> np.ndarray:
    """Which rows of ``frame`` meet the contract for the features: :func:`validate_columns`'s rules, vectorised.

    A category must be text in its domain, a number an integer (or integral float, not a bool)
    within its contract range, and no value null. A value of a type it cannot vouch for (say, a numpy
    integer in an object column) counts as a fault: a row it passes always passes
    :func:`validate_columns`, which has the last word on the others and names their faults.
    """
    valid = np.ones(len(frame), dtype=bool)
    for name in FEATURES:
        series = frame[name]
        valid &= (
            _in_range(series, *CONTRACT_RANGES[name]) if name in CONTRACT_RANGES else _in_domain(series, DOMAINS[name])
        )
    return valid


def observed_ranges(training: str | os.PathLike | None = None) -> dict[str, tuple[int, int]]:
    """The numbers' ranges in the training data: the smallest and largest value of each integer column of the
    training split (``training``, the CSV notebook 01 writes), else :data:`~utils.data.NUMERIC_RANGES`.

    A column the file lacks, or holds no integers in, keeps its ``NUMERIC_RANGES`` range.
    """
    ranges = dict(NUMERIC_RANGES)
    if training is None or not Path(training).is_file():
        return ranges
    header = pd.read_csv(training, nrows=0).columns
    present = [name for name in NUMERIC_FEATURES if name in header]
    numbers = pd.read_csv(training, usecols=present).apply(pd.to_numeric, errors="coerce")
    for name in present:
        low, high = numbers[name].min(), numbers[name].max()
        if pd.notna(low) and pd.notna(high):
            ranges[name] = (int(low), int(high))
    return ranges


def out_of_range(columns: Mapping[str, Sequence], ranges: Ranges) -> list[list[str] | None]:
    """Per record of contract-valid ``columns`` (lists, arrays or a DataFrame), the numeric fields whose value
    lies outside ``ranges``, in contract order; None for a record with none."""
    rows = len(columns[FEATURES[0]])
    flagged: list[list[str] | None] = [None] * rows
    for name in NUMERIC_FEATURES:
        if name not in ranges or not rows:
            continue
        low, high = ranges[name]
        values = columns[name]
        if isinstance(values, list):  # a request's few values: Python's min and max cost less than numpy's
            smallest, largest = (min(values), max(values)) if values else (low, high)
        else:
            values = np.asarray(values)
            smallest, largest = values.min(), values.max()
        if low <= smallest and largest <= high:  # the common case: nothing to flag in this column
            continue
        values = np.asarray(values)
        for row in np.flatnonzero((values < low) | (values > high)).tolist():
            flagged[row] = [*(flagged[row] or []), name]
    return flagged


def check_identifier(value: object, field: str, *, max_length: int = MAX_ID_LENGTH, status: int = 400) -> str:
    """Refuse an identifier that no record can have: empty, over ``max_length`` characters, or holding anything
    but ASCII letters, digits, '.', '_', ':' and '-' (so no NUL, no line end), the same on every database.

    Raises:
        InputError: with ``status`` (404 where the identifier names something to look up), naming ``field``.
    """
    if isinstance(value, str) and len(value) <= max_length and _ID.fullmatch(value):
        return value
    reason = "too long" if isinstance(value, str) and len(value) > max_length else "malformed"
    raise InputError(
        f"{field} {shown(value)} is {reason}: an identifier has 1 to {max_length} characters, ASCII letters, "
        "digits, '.', '_', ':' and '-'",
        field=field,
        status=status,
    )
