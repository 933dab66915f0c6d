"""Scoring requests: parse and validate them against the data contract, and score them fast.

Parsing turns a Watson Machine Learning v4 ``fields``/``values`` block or Open
Inference Protocol (KServe V2) input tensors into *columns*: one list of values per
contract field, checked and normalised by :mod:`utils.contract`. Feedback may also come
as a JSON list of row objects or as CSV text, each record optionally naming the
``transaction_id`` of the logged prediction it labels. A request that breaks the contract
raises :class:`InputError`, which names every fault of the rows at fault, each with its
field and row (0-based index into ``values``, ``data``, the list or the CSV records).

:class:`Scorer` scores columns, or a DataFrame (:meth:`Scorer.predict_frame`), with a
registered pipeline. Instead of going through
pandas and the ``ColumnTransformer`` (about 10 ms a call), it encodes the columns with
numpy from the fitted encoder and scaler (:mod:`utils.encoding`), and for a logistic regression computes the
probabilities directly, row by row in plain Python for a few records (:mod:`utils.logistic_rows`); other
classifiers get the encoded matrix, with OpenMP limited to one thread per call. When it is built, the scorer
checks that these paths agree with ``model.predict_proba`` and falls back to the pipeline itself when they do not.
"""

from __future__ import annotations

import csv
import functools
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from threadpoolctl import ThreadpoolController

from utils.contract import (
    DOMAINS,
    Columns,
    Fault,
    InputError,
    Ranges,
    check_identifier,
    contract_error,
    contract_faults,
    out_of_range,
    shown,
    valid_rows,
    validate_columns,
)
from utils.data import CATEGORIES, CLASS_ORDER, CONTRACT_RANGES, FEATURES, LABEL, NUMERIC_RANGES, generate_credit_data
from utils.decision import decide, decision
from utils.encoding import Encoded, Encoder
from utils.logistic_rows import FEW_ROWS, LogisticRows

__all__ = [  # the contract's checks, importable from here as before
    "Columns",
    "InputError",
    "out_of_range",
    "valid_rows",
    "validate_columns",
]

#: Most rows one request may hold (all ``input_data`` blocks together).
MAX_ROWS = 1000
#: Largest difference from ``model.predict_proba`` the fast path may show at its self-check.
FAST_PATH_TOLERANCE = 1e-9

#: The optional field of a feedback record: the transaction id of the logged prediction it labels.
TRANSACTION_FIELD = "transaction_id"
_LOG = logging.getLogger(__name__)
_V2_NUMBER_TYPES = frozenset(
    ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "FP16", "FP32", "FP64")
)


def expected_fields(*, label: bool = False) -> tuple[str, ...]:
    """The fields a request must send: the 20 features, and the label for feedback."""
    return (*FEATURES, LABEL) if label else FEATURES


def check_row_count(rows: int, max_rows: int = MAX_ROWS, field: str = "values") -> None:
    """Refuse an empty request and one over the row limit (HTTP 413)."""
    if rows == 0:
        raise InputError(f"{field} is empty: send at least one row", field=field)
    if rows > max_rows:
        raise InputError(
            f"{rows} rows in one request; the limit is {max_rows}: split the request",
            field=field,
            row=max_rows,
            status=413,
        )


def _check_fields(fields: Sequence[str], *, label: bool, optional: tuple[str, ...] = ()) -> None:
    expected = expected_fields(label=label)
    if tuple(fields) == expected:  # the common case, in the contract's order: nothing to look for
        return
    allowed = {*expected, *optional}
    seen: set[str] = set()
    for name in fields:
        if name not in allowed:
            raise InputError(f"unknown field {shown(name)}; expected the fields {', '.join(expected)}", field=name)
        if name in seen:
            raise InputError(f"field {name!r} is given twice", field=name)
        seen.add(name)
    for name in expected:
        if name not in seen:
            raise InputError(f"missing field {name!r}", field=name)


def block_columns(
    fields: Sequence[str], values: Sequence[Sequence], *, label: bool = False, optional: tuple[str, ...] = ()
) -> dict[str, list]:
    """The columns of a WML ``fields``/``values`` block as sent (fields in any order, ``optional`` ones may be
    missing); the layout is checked, not the values."""
    _check_fields(fields, label=label, optional=optional)
    if not values:
        raise InputError("values is empty: send at least one row", field="values")
    width = len(fields)
    for row, record in enumerate(values):
        if not isinstance(record, list) or len(record) != width:
            size = len(record) if isinstance(record, list) else type(record).__name__
            raise InputError(f"row {row} holds {size} values for {width} fields", field="values", row=row)
    transposed = list(zip(*values, strict=True))
    return {name: list(transposed[i]) for i, name in enumerate(fields)}


def parse_fields_values(fields: Sequence[str], values: Sequence[Sequence], *, label: bool = False) -> Columns:
    """Columns from a WML ``fields``/``values`` block; fields may come in any order."""
    return validate_columns(block_columns(fields, values, label=label), label=label)


def row_object_columns(rows: Sequence[object]) -> dict[str, list]:
    """The columns of feedback sent as a JSON list of row objects (the 20 fields, ``Risk`` and optionally
    ``transaction_id`` in each); the layout is checked, not the values."""
    if not rows:
        raise InputError("the list of feedback records is empty: send at least one row", field="body")
    names = (*expected_fields(label=True), TRANSACTION_FIELD)
    columns: dict[str, list] = {name: [] for name in names}
    for row, record in enumerate(rows):
        if not isinstance(record, dict):
            raise InputError(f"row {row} is {type(record).__name__}, not an object of fields", field="body", row=row)
        unknown = [name for name in record if name not in columns]
        if unknown:
            raise InputError(f"unknown field {shown(unknown[0])} in row {row}", field=shown(unknown[0]), row=row)
        for name in names:
            if name not in record and name != TRANSACTION_FIELD:
                raise InputError(f"missing field {name!r} in row {row}", field=name, row=row)
            columns[name].append(record.get(name))
    return columns


def _csv_value(name: str, text: str):
    """A CSV field as the JSON value it stands for: empty is null; text that reads as a number is that number in
    the numeric columns."""
    if text == "":
        return None
    if name in CONTRACT_RANGES:
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                continue
    return text


def csv_columns(data: bytes | str) -> dict[str, list]:
    """The columns of feedback sent as CSV (UTF-8): a header naming the fields (any order; ``transaction_id``
    optional), then one record per line; rows are numbered from 0 at the first record after the header."""
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    except UnicodeDecodeError as error:
        raise InputError(f"the CSV body is not UTF-8 text (byte {error.start})", field="body") from None
    try:
        lines = list(csv.reader(text.splitlines()))
    except csv.Error as error:
        raise InputError(f"the CSV body cannot be read: {error}", field="body") from None
    header = [name.strip() for name in lines[0]] if lines else []
    if len(lines) < 2:
        raise InputError("the CSV body is empty: send a header line and at least one record", field="body")
    _check_fields(header, label=True, optional=(TRANSACTION_FIELD,))
    columns: dict[str, list] = {name: [] for name in header}
    for row, record in enumerate(lines[1:]):
        if len(record) != len(header):
            raise InputError(f"row {row} holds {len(record)} values for {len(header)} fields", field="body", row=row)
        for name, value in zip(header, record, strict=True):
            columns[name].append(_csv_value(name, value.strip()))
    return columns


def feedback_columns(columns: Mapping[str, list]) -> tuple[Columns, list[str | None]]:
    """Feedback columns checked: the contract's (with ``Risk``), and the optional ``transaction_id`` of each
    record; returns the columns and the transaction ids (None where a record names none).

    Raises:
        InputError: every fault of the rows at fault, transaction ids among them.
    """
    checked, faults = contract_faults(columns, label=True)
    links = list(columns.get(TRANSACTION_FIELD) or [None] * len(checked[LABEL]))
    for row, value in enumerate(links):
        if value is None or value == "":
            links[row] = None
            continue
        try:
            check_identifier(value, TRANSACTION_FIELD)
        except InputError as error:
            faults.append(Fault(TRANSACTION_FIELD, row, error.message))
    if faults:
        raise contract_error(faults)
    return checked, links


class TensorLike(Protocol):
    """An Open Inference Protocol input tensor."""

    name: str
    shape: list[int]
    datatype: str
    data: list


def _tensor_values(tensor: TensorLike) -> list:
    data = tensor.data
    if data and all(isinstance(item, list) and len(item) == 1 for item in data):
        data = [item[0] for item in data]  # shape [n, 1] sent nested
    shape = tensor.shape
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or shape[0] != len(data):
        raise InputError(
            f"input {tensor.name!r} has shape {shape} and {len(data)} values; expected shape [{len(data)}]",
            field=tensor.name,
        )
    categorical = tensor.name in DOMAINS
    if tensor.datatype not in ({"BYTES"} if categorical else _V2_NUMBER_TYPES):
        expected = "BYTES" if categorical else "a number type such as INT64"
        raise InputError(
            f"input {tensor.name!r} has datatype {tensor.datatype}; expected {expected}", field=tensor.name
        )
    return data


def parse_v2_inputs(tensors: Sequence[TensorLike], *, max_rows: int = MAX_ROWS) -> Columns:
    """Columns from Open Inference Protocol inputs: one tensor per field, all of the same length."""
    _check_fields([tensor.name for tensor in tensors], label=False)
    columns = {tensor.name: _tensor_values(tensor) for tensor in tensors}
    rows = len(columns[FEATURES[0]])
    for name, values in columns.items():
        if len(values) != rows:
            raise InputError(f"input {name!r} has {len(values)} values but {FEATURES[0]!r} has {rows}", field=name)
    check_row_count(rows, max_rows, field="inputs")
    return validate_columns(columns)


def records(columns: Columns) -> list[dict[str, Any]]:
    """The rows of ``columns`` as field-to-value mappings, fields in contract order."""
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def frame_columns(frame: pd.DataFrame) -> Columns:
    """Columns of the contract features from a DataFrame, as plain Python values."""
    return {name: frame[name].astype(object).tolist() for name in FEATURES}


def wml_request(frame: pd.DataFrame) -> dict:
    """The WML v4 scoring request body for the rows of ``frame`` (extra columns are left out)."""
    values = frame[list(FEATURES)].astype(object).to_numpy().tolist()
    return {"input_data": [{"fields": list(FEATURES), "values": values}]}


@functools.cache
def _threadpools() -> ThreadpoolController:
    return ThreadpoolController()


class Scorer:
    """Scores validated columns with a fitted pipeline; probabilities in :data:`CLASS_ORDER`.

    ``fast`` tells whether the vectorised path is in use (else the pipeline's own
    ``predict_proba`` runs, correct but slower). ``observed`` are the numbers' ranges in the model's training
    data (:func:`utils.contract.observed_ranges`; default :data:`~utils.data.NUMERIC_RANGES`), by which
    :meth:`out_of_range` flags the records it scores.
    """

    def __init__(self, model, model_id: str = "", observed: Ranges | None = None):
        classes = [str(c) for c in model.classes_]
        if sorted(classes) != sorted(CLASS_ORDER):
            raise ValueError(f"model {model_id!r} predicts {classes}; expected the classes {list(CLASS_ORDER)}")
        self.model = model
        self.model_id = model_id
        self.observed = dict(NUMERIC_RANGES if observed is None else observed)
        self._order = [classes.index(c) for c in CLASS_ORDER]
        self._encoder: Encoder | None = None
        self._logistic: tuple[np.ndarray, float] | None = None
        if isinstance(model, Pipeline) and len(model.steps) == 2 and isinstance(model[0], ColumnTransformer):
            try:
                self._encoder = Encoder(model[0])
            except TypeError as reason:
                _LOG.warning("model %s: no fast path (%s)", model_id, reason)
            classifier = model[-1]
            if isinstance(classifier, LogisticRegression) and classifier.coef_.shape[0] == 1:
                self._logistic = (classifier.coef_[0].astype(float), float(classifier.intercept_[0]))
        self._rows: LogisticRows | None = None  # the few-record path (utils.logistic_rows)
        self.fast = self._encoder is not None and self._self_check()

    def _self_check(self) -> bool:
        """Whether the vectorised path agrees with the pipeline (and, for a logistic regression, whether the
        few-record path does too, which is then used)."""
        frame = generate_credit_data(64, seed=7)
        for name, mapping in self._encoder.categorical:  # only rows the model can encode
            frame = frame[frame[name].isin(list(mapping))]
        if frame.empty:
            return False
        probe = frame_columns(frame)
        expected = self._pipeline_proba(probe)
        as_categories = frame.astype({name: "category" for name in CATEGORIES})
        difference = max(
            np.abs(self._fast_proba(self._encoder.transform(probe)) - expected).max(),
            np.abs(self._fast_proba(self._encoder.transform_frame(as_categories)) - expected).max(),
        )
        if difference > FAST_PATH_TOLERANCE:
            _LOG.warning("model %s: fast path differs by %.2g; using the pipeline", self.model_id, difference)
            return False
        if self._logistic is not None:
            rows = self._encoder.logistic_rows(*self._logistic, self._order)
            if np.abs(np.array(rows.probabilities(probe)) - expected[:, self._order]).max() <= FAST_PATH_TOLERANCE:
                self._rows = rows
        return True

    def _pipeline_proba(self, columns: Columns) -> np.ndarray:
        with _threadpools().limit(limits=1, user_api="openmp"):
            return self.model.predict_proba(pd.DataFrame(columns, columns=list(FEATURES)))

    def _fast_proba(self, encoded: Encoded) -> np.ndarray:
        if self._logistic is not None:  # the one-hot columns' weights picked, not multiplied by a sparse matrix
            coef, intercept = self._logistic
            hot, scaled = encoded
            risk = expit(coef[hot].sum(axis=0) + scaled @ coef[self._encoder.numeric_positions] + intercept)
            return np.column_stack([1.0 - risk, risk])
        with _threadpools().limit(limits=1, user_api="openmp"):
            return self.model[-1].predict_proba(self._encoder.matrix(encoded))

    def predict_proba(self, columns: Columns) -> np.ndarray:
        """Probabilities, one row per record, columns in :data:`CLASS_ORDER`."""
        proba = self._fast_proba(self._encoder.transform(columns)) if self.fast else self._pipeline_proba(columns)
        return proba[:, self._order]

    def predict(self, columns: Columns) -> tuple[list[str], list[list[float]]]:
        """The decision on each record (:mod:`utils.decision`) and its probabilities in :data:`CLASS_ORDER`, as
        Python lists; up to :data:`~utils.logistic_rows.FEW_ROWS` records of a logistic regression are scored row
        by row (:mod:`utils.logistic_rows`)."""
        if self._rows is not None and len(columns[FEATURES[0]]) <= FEW_ROWS:
            probabilities = self._rows.probabilities(columns)
            return [decision(pair[1]) for pair in probabilities], probabilities  # as _labelled: column 1 is Risk
        labels, proba = _labelled(self.predict_proba(columns))
        return labels.tolist(), proba.tolist()

    def out_of_range(self, columns: Mapping[str, Sequence]) -> list[list[str] | None]:
        """Per record, the fields outside the training data's ranges (None: none); see :func:`out_of_range`."""
        return out_of_range(columns, self.observed)

    def predict_frame(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`predict` for the rows of a DataFrame that passed :func:`valid_rows`; labels as an array.

        Raises:
            InputError: a category the model was not trained with (``row`` is its position in ``frame``).
        """
        if self.fast:
            proba = self._fast_proba(self._encoder.transform_frame(frame))
        else:
            proba = self._pipeline_proba(frame_columns(frame))
        return _labelled(proba[:, self._order])


def _labelled(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return decide(proba[:, 1]), proba
