"""Data validation with pandera: infer a schema from reference data, find anomalies.

The schema records what the reference (training) data look like: the contract's
columns and types, each category's observed values, each number's plausible range
(the contract's; the range the reference shows is noted beside it) and whether
nulls occur. Checking a data set against it returns one row per anomaly, by
column, with a count, example values and the first rows at fault. Duplicate rows
are reported too; whether they stop a run is a choice (:data:`DUPLICATE_POLICIES`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
from pandera import extensions
from pandera.errors import SchemaErrors

from utils.choices import DUPLICATE_POLICIES
from utils.data import CATEGORIES, CLASS_ORDER, CONTRACT_RANGES, FEATURES, LABEL, DataError

ANOMALY_COLUMNS = ["column", "anomaly", "count", "examples", "rows"]
_MAX_EXAMPLES = 5
DUPLICATE_ROWS = "duplicate rows"
_NO_EXAMPLES = ("null values", "missing column", "unexpected column")


def _as_numbers(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series, errors="coerce")


@extensions.register_check_method(check_type="element_wise")
def integer_valued(value) -> bool:
    """An integer, or a float with no fractional part (a column with nulls reads as float)."""
    if isinstance(value, bool):
        return False
    number = pd.to_numeric(value, errors="coerce")
    return pd.notna(number) and float(number).is_integer()


@extensions.register_check_method(statistics=["min_value", "max_value"], check_type="vectorized")
def numeric_range(series: pd.Series, *, min_value: float, max_value: float) -> pd.Series:
    """Numbers within [min_value, max_value]; text is left to ``integer_valued``."""
    numbers = _as_numbers(series)
    return numbers.isna() | numbers.between(min_value, max_value)


def _numeric_column(series: pd.Series | None, name: str) -> pa.Column:
    """Integers within the contract's plausible range; an inferred column notes the range its reference shows."""
    low, high = CONTRACT_RANGES[name]
    seen = (
        None if series is None else f"reference data: {_as_numbers(series).min():.0f} … {_as_numbers(series).max():.0f}"
    )
    return pa.Column(
        None,
        [pa.Check.integer_valued(), pa.Check.numeric_range(min_value=low, max_value=high)],
        nullable=bool(series is not None and series.isna().any()),
        name=name,
        description=seen,
    )


def _category_column(series: pd.Series | None, name: str) -> pa.Column:
    domain = CATEGORIES[name] if series is None else sorted(series.dropna().astype(str).unique())
    return pa.Column(
        str,
        pa.Check.isin(list(domain)),
        nullable=bool(series is not None and series.isna().any()),
        name=name,
    )


def _schema(columns: list[pa.Column], name: str) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {column.name: column for column in columns},
        strict=True,
        ordered=False,
        name=name,
    )


def contract_schema(*, label: bool = True) -> pa.DataFrameSchema:
    """The data contract as a schema: columns, integer types, plausible ranges and category domains."""
    columns = [_category_column(None, name) if name in CATEGORIES else _numeric_column(None, name) for name in FEATURES]
    if label:
        columns.append(pa.Column(str, pa.Check.isin(list(CLASS_ORDER)), name=LABEL))
    return _schema(columns, "credit-contract")


def infer_schema(reference: pd.DataFrame, *, label: bool = True) -> pa.DataFrameSchema:
    """Infer a schema from reference data that honours the contract (duplicate rows do not break it).

    Raises:
        DataError: the reference data break the contract (the anomalies are listed).
    """
    anomalies = blocking_anomalies(find_anomalies(reference, contract_schema(label=label)), "keep")
    if not anomalies.empty:
        raise DataError("reference data break the data contract:\n" + anomalies.to_string(index=False))
    columns = [
        _category_column(reference[name], name) if name in CATEGORIES else _numeric_column(reference[name], name)
        for name in FEATURES
    ]
    if label:
        columns.append(pa.Column(str, pa.Check.isin(sorted(reference[LABEL].unique())), name=LABEL))
    return _schema(columns, "credit-inferred")


def save_schema(schema: pa.DataFrameSchema, path: str | os.PathLike) -> Path:
    """Write a schema as YAML (readable, and loadable with :func:`load_schema`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(schema.to_yaml())
    tmp.replace(path)
    return path


def load_schema(path: str | os.PathLike) -> pa.DataFrameSchema:
    """Read a schema written by :func:`save_schema`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such schema file")
    return pa.DataFrameSchema.from_yaml(path)


def _describe(check: str, expected_type: object) -> str:
    if check == "column_in_dataframe":
        return "missing column"
    if check == "column_in_schema":
        return "unexpected column"
    if check == "not_nullable":
        return "null values"
    if check.startswith("isin"):
        return "unseen category"
    if check.startswith("numeric_range"):
        low, high = re.findall(r"-?[\d.]+", check.removeprefix("numeric_range"))
        return f"out of range [{low}, {high}]"
    if check.startswith("integer_valued"):
        return "wrong type (expected integers)"
    if check.startswith("dtype"):
        return f"wrong type (expected {expected_type})"
    return check


def _failure_cases(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> pd.DataFrame:
    """One row per failure case pandera finds: the column, the anomaly, the value and the row."""
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
    else:
        return pd.DataFrame(columns=["column", "anomaly", "value", "row"])
    rows = []
    for _, case in cases.iterrows():
        check = str(case["check"])
        column = case["failure_case"] if check in ("column_in_dataframe", "column_in_schema") else case["column"]
        expected = schema.columns[column].dtype if column in schema.columns else None
        rows.append(
            {
                "column": str(column),
                "anomaly": _describe(check, expected),
                "value": case["failure_case"],
                "row": case["index"],
            }
        )
    return pd.DataFrame(rows)


def _duplicates(frame: pd.DataFrame) -> list[dict]:
    """The report row of exact duplicate rows: the extra copies, and which earlier row each one repeats."""
    copies = frame.duplicated(keep="first").to_numpy()
    if not copies.any():
        return []
    group = frame.groupby(list(frame.columns), dropna=False, sort=False).ngroup().to_numpy()
    first_of_group = pd.Series(frame.index).groupby(group).transform("first").to_numpy()
    extra = list(zip(frame.index[copies], first_of_group[copies]))[:_MAX_EXAMPLES]
    return [
        {
            "column": "(all columns)",
            "anomaly": DUPLICATE_ROWS,
            "count": int(copies.sum()),
            "examples": ", ".join(f"{row} repeats {first}" for row, first in extra),
            "rows": ", ".join(str(row) for row, _ in extra),
        }
    ]


def find_anomalies(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> pd.DataFrame:
    """Check ``frame`` against ``schema``; one row per (column, anomaly), empty when clean.

    Rows are the frame's index labels (the CSV line is the label plus 2); ``rows`` lists the first rows at fault,
    in order. For duplicate rows, ``count`` is the number of extra copies and ``examples`` names the row each
    copy repeats.
    """
    summary = []
    for (column, anomaly), group in _failure_cases(frame, schema).groupby(["column", "anomaly"], sort=False):
        values = group["value"].dropna().astype(str).unique()[:_MAX_EXAMPLES]
        indices = sorted(group["row"].dropna().unique())
        summary.append(
            {
                "column": column,
                "anomaly": anomaly,
                "count": int(len(indices)) if len(indices) else 1,
                "examples": ", ".join(values) if anomaly not in _NO_EXAMPLES else "",
                "rows": ", ".join(str(int(i)) for i in indices[:_MAX_EXAMPLES]),
            }
        )
    order = {name: position for position, name in enumerate([*FEATURES, LABEL])}
    result = pd.DataFrame(summary + _duplicates(frame), columns=ANOMALY_COLUMNS)
    return result.sort_values("column", key=lambda c: c.map(order).fillna(len(order)), kind="stable").reset_index(
        drop=True
    )


def blocking_anomalies(anomalies: pd.DataFrame, duplicates: str) -> pd.DataFrame:
    """The anomalies that stop a run: all of them, except duplicate rows unless ``duplicates`` is ``"fail"``.

    Raises:
        ValueError: ``duplicates`` is not one of :data:`DUPLICATE_POLICIES`.
    """
    if duplicates not in DUPLICATE_POLICIES:
        raise ValueError(f"duplicates must be one of {', '.join(DUPLICATE_POLICIES)}, got {duplicates!r}")
    if duplicates == "fail":
        return anomalies
    return anomalies[anomalies["anomaly"] != DUPLICATE_ROWS].reset_index(drop=True)


def duplicate_count(anomalies: pd.DataFrame) -> int:
    """The number of extra copies of rows that ``anomalies`` reports (0 when none)."""
    return int(anomalies.loc[anomalies["anomaly"] == DUPLICATE_ROWS, "count"].sum())


def drop_duplicate_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` without the extra copies of duplicate rows (the first of each stays, with its row label)."""
    return frame[~frame.duplicated(keep="first")]


def duplicates_note(anomalies: pd.DataFrame, duplicates: str) -> str:
    """One line saying what happens to the duplicate rows that ``anomalies`` reports, under policy ``duplicates``."""
    blocking_anomalies(anomalies, duplicates)  # checks the policy
    count = duplicate_count(anomalies)
    if count == 0:
        return "No duplicate rows."
    found = f"{count} duplicate rows (extra copies of earlier rows)"
    if duplicates == "keep":
        return f"Warning: {found} are kept; DUPLICATES = 'drop' removes them before the split, 'fail' stops here."
    if duplicates == "drop":
        return f"{found} are dropped before the split."
    return f"{found}: the run stops here (DUPLICATES = 'fail')."


def schema_table(schema: pa.DataFrameSchema) -> pd.DataFrame:
    """A readable view of a schema: one row per column with its type, domain, the range its reference data show
    (numbers of an inferred schema) and nullability."""
    rows = []
    for name, column in schema.columns.items():
        statistics = {check.name: check.statistics for check in column.checks}
        if "isin" in statistics:
            kind, domain = "category", ", ".join(map(str, statistics["isin"]["allowed_values"]))
        else:
            low, high = statistics["numeric_range"]["min_value"], statistics["numeric_range"]["max_value"]
            kind, domain = "integer", f"{low} … {high}"
        seen = (column.description or "").removeprefix("reference data: ")
        rows.append({"column": name, "type": kind, "allowed": domain, "seen": seen, "nullable": column.nullable})
    return pd.DataFrame(rows)


def summarize_anomalies(anomalies: pd.DataFrame) -> str:
    """One line naming each anomaly by column, for messages and logs."""
    return "; ".join(f"{row.column}: {row.anomaly} ({row.count})" for row in anomalies.itertuples())
