"""Scoring requests: parse and validate them against the data contract, and score them fast.

Parsing turns a Watson Machine Learning v4 ``fields``/``values`` block or Open
Inference Protocol (KServe V2) input tensors into *columns*: one list of values per
contract field, checked and normalised. Any fault raises :class:`InputError`, which
names the field and the row (0-based index into ``values`` or ``data``) at fault.
:func:`valid_rows` applies the same rules to a whole DataFrame at once, with numpy
(batch scoring uses it, and :func:`validate_columns` to name the faults of the rows
it fails).

:class:`Scorer` scores columns, or a DataFrame (:meth:`Scorer.predict_frame`), with a
registered pipeline. Instead of going through
pandas and the ``ColumnTransformer`` (about 10 ms a call), it encodes the columns with
numpy from the fitted encoder and scaler, and for a logistic regression computes the
probabilities directly; other classifiers get the encoded matrix, with OpenMP limited
to one thread per call. When it is built, the scorer checks that this path agrees
with ``model.predict_proba`` and falls back to the pipeline itself when it does not.
"""

from __future__ import annotations

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
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import ThreadpoolController

from utils.data import CATEGORIES, CLASS_ORDER, FEATURES, LABEL, NUMERIC_RANGES, generate_credit_data
from utils.decision import decide

#: Most rows one request may hold (all ``input_data`` blocks together).
MAX_ROWS = 1000
#: Largest difference from ``model.predict_proba`` the fast path may show at its self-check.
FAST_PATH_TOLERANCE = 1e-9

Columns = dict[str, list]
#: Encoded rows: the one-hot position of each category (one array per categorical column), and the scaled numbers.
Encoded = tuple[np.ndarray, np.ndarray]
_LOG = logging.getLogger(__name__)
_DOMAINS: dict[str, frozenset[str]] = {
    **{name: frozenset(values) for name, values in CATEGORIES.items()},
    LABEL: frozenset(CLASS_ORDER),
}
_V2_NUMBER_TYPES = frozenset(
    ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "FP16", "FP32", "FP64")
)


class InputError(ValueError):
    """A request that breaks the contract: the message, the field and row at fault, the HTTP status."""

    def __init__(self, message: str, *, field: str | None = None, row: int | None = None, status: int = 400):
        super().__init__(message)
        self.message = message
        self.field = field
        self.row = row
        self.status = status

    def as_dict(self) -> dict[str, Any]:
        """The JSON error body: ``{"error": ..., "field": ..., "row": ...}``."""
        return {"error": self.message, "field": self.field, "row": self.row}


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


def _category_column(name: str, values: list) -> list:
    domain = _DOMAINS[name]
    try:
        if domain.issuperset(values):
            return values
    except TypeError:  # an unhashable value such as a list: reported below
        pass
    for row, value in enumerate(values):
        if value is None:
            raise InputError(f"{name} is null in row {row}", field=name, row=row)
        if not isinstance(value, str):
            raise InputError(f"{name} must be text, got {value!r} in row {row}", field=name, row=row)
        if value not in domain:
            raise InputError(
                f"{name}: unseen category {value!r} in row {row}; expected one of {', '.join(sorted(domain))}",
                field=name,
                row=row,
            )
    return values


def _integer_column(name: str, values: list) -> list:
    low, high = NUMERIC_RANGES[name]
    if all(type(value) is int for value in values) and low <= min(values) and max(values) <= high:
        return values
    checked = []
    for row, value in enumerate(values):
        if value is None:
            raise InputError(f"{name} is null in row {row}", field=name, row=row)
        integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not integral:
            raise InputError(f"{name} must be an integer, got {value!r} in row {row}", field=name, row=row)
        if not low <= value <= high:
            raise InputError(f"{name} = {value} in row {row} is out of range [{low}, {high}]", field=name, row=row)
        checked.append(int(value))
    return checked


def validate_columns(columns: Mapping[str, list], *, label: bool = False) -> Columns:
    """Check each column against the contract; returns them in contract order, integers as ``int``."""
    checked: Columns = {}
    for name in expected_fields(label=label):
        values = columns[name]
        checked[name] = _integer_column(name, values) if name in NUMERIC_RANGES else _category_column(name, values)
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
    within its range, and no value null. A value of a type it cannot vouch for (say, a numpy
    integer in an object column) counts as a fault: a row it passes always passes
    :func:`validate_columns`, which has the last word on the others and names their faults.
    """
    valid = np.ones(len(frame), dtype=bool)
    for name in FEATURES:
        series = frame[name]
        valid &= (
            _in_range(series, *NUMERIC_RANGES[name]) if name in NUMERIC_RANGES else _in_domain(series, _DOMAINS[name])
        )
    return valid


def _check_fields(fields: Sequence[str], *, label: bool) -> None:
    expected = expected_fields(label=label)
    allowed = set(expected)
    seen: set[str] = set()
    for name in fields:
        if name not in allowed:
            raise InputError(f"unknown field {name!r}; expected the fields {', '.join(expected)}", field=name)
        if name in seen:
            raise InputError(f"field {name!r} is given twice", field=name)
        seen.add(name)
    for name in expected:
        if name not in seen:
            raise InputError(f"missing field {name!r}", field=name)


def parse_fields_values(fields: Sequence[str], values: Sequence[Sequence], *, label: bool = False) -> Columns:
    """Columns from a WML ``fields``/``values`` block; fields may come in any order."""
    _check_fields(fields, label=label)
    if not values:
        raise InputError("values is empty: send at least one row", field="values")
    width = len(fields)
    for row, record in enumerate(values):
        if not isinstance(record, list) or len(record) != width:
            size = len(record) if isinstance(record, list) else type(record).__name__
            raise InputError(f"row {row} holds {size} values for {width} fields", field="values", row=row)
    transposed = list(zip(*values, strict=True))
    return validate_columns({name: list(transposed[i]) for i, name in enumerate(fields)}, label=label)


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
    categorical = tensor.name in _DOMAINS
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


class _Encoder:
    """The fitted ``ColumnTransformer`` (one-hot encoders, scalers) replayed with numpy."""

    def __init__(self, transformer: ColumnTransformer):
        self.categorical: list[tuple[str, dict[str, int]]] = []
        numeric: list[tuple[str, int, float, float]] = []
        offset = 0
        if getattr(transformer, "sparse_output_", False):
            raise TypeError("sparse output")
        for _, step, columns in transformer.transformers_:
            if isinstance(step, str) and step == "drop":
                continue
            if not all(isinstance(c, str) and c in FEATURES for c in columns):
                raise TypeError(f"column selection {columns!r}")
            if isinstance(step, OneHotEncoder):
                if step.drop_idx_ is not None or getattr(step, "_infrequent_enabled", False):
                    raise TypeError("one-hot encoder with dropped or infrequent categories")
                for name, categories in zip(columns, step.categories_, strict=True):
                    self.categorical.append((name, {str(c): offset + i for i, c in enumerate(categories)}))
                    offset += len(categories)
            elif isinstance(step, StandardScaler) or (isinstance(step, str) and step == "passthrough"):
                if any(name not in NUMERIC_RANGES for name in columns):
                    raise TypeError(f"non-numeric columns in {step}")
                scaler = step if isinstance(step, StandardScaler) else None
                for i, name in enumerate(columns):
                    mean = scaler.mean_[i] if scaler is not None and scaler.with_mean else 0.0
                    scale = scaler.scale_[i] if scaler is not None and scaler.with_std else 1.0
                    numeric.append((name, offset, float(mean), float(scale)))
                    offset += 1
            else:
                raise TypeError(f"transformer {type(step).__name__}")
        self.width = offset
        self.numeric_names = [name for name, *_ in numeric]
        self.numeric_positions = np.array([position for _, position, *_ in numeric], dtype=np.intp)
        self.means = np.array([mean for *_, mean, _ in numeric])
        self.scales = np.array([scale for *_, scale in numeric])

    @staticmethod
    def _unknown(name: str, value, row: int) -> InputError:
        message = f"{name}: category {value!r} in row {row} is unknown to this model"
        return InputError(message, field=name, row=row)

    def transform(self, columns: Columns) -> Encoded:
        """Validated columns encoded."""
        hot = []
        for name, mapping in self.categorical:
            try:
                hot.append([mapping[value] for value in columns[name]])
            except KeyError:
                row = next(r for r, value in enumerate(columns[name]) if value not in mapping)
                raise self._unknown(name, columns[name][row], row) from None
        numbers = [columns[name] for name in self.numeric_names]
        return self._encoded(len(columns[FEATURES[0]]), hot, numbers)

    def transform_frame(self, frame: pd.DataFrame) -> Encoded:
        """A DataFrame of valid rows encoded (categories as text or ``category`` dtype), from the category codes."""
        hot = []
        for name, mapping in self.categorical:
            series = (
                frame[name] if isinstance(frame[name].dtype, pd.CategoricalDtype) else frame[name].astype("category")
            )
            lookup = np.array([mapping.get(c, -1) for c in series.cat.categories] + [-1], dtype=np.intp)
            positions = lookup[series.cat.codes.to_numpy()]
            unknown = np.flatnonzero(positions < 0)
            if unknown.size:
                raise self._unknown(name, series.iloc[unknown[0]], int(unknown[0]))
            hot.append(positions)
        numbers = [frame[name].to_numpy(dtype=float) for name in self.numeric_names]
        return self._encoded(len(frame), hot, numbers)

    def _encoded(self, rows: int, hot: list, numbers: list) -> Encoded:
        scaled = (np.array(numbers, dtype=float).reshape(len(numbers), rows).T - self.means) / self.scales
        return np.asarray(hot, dtype=np.intp).reshape(len(hot), rows), scaled

    def matrix(self, encoded: Encoded) -> np.ndarray:
        """The encoded rows as the ``ColumnTransformer`` gives them: one-hot columns and scaled numbers."""
        hot, scaled = encoded
        matrix = np.zeros((len(scaled), self.width))
        matrix[np.tile(np.arange(len(scaled)), len(hot)), hot.ravel()] = 1.0
        matrix[:, self.numeric_positions] = scaled
        return matrix


class Scorer:
    """Scores validated columns with a fitted pipeline; probabilities in :data:`CLASS_ORDER`.

    ``fast`` tells whether the vectorised path is in use (else the pipeline's own
    ``predict_proba`` runs, correct but slower).
    """

    def __init__(self, model, model_id: str = ""):
        classes = [str(c) for c in model.classes_]
        if sorted(classes) != sorted(CLASS_ORDER):
            raise ValueError(f"model {model_id!r} predicts {classes}; expected the classes {list(CLASS_ORDER)}")
        self.model = model
        self.model_id = model_id
        self._order = [classes.index(c) for c in CLASS_ORDER]
        self._encoder: _Encoder | None = None
        self._logistic: tuple[np.ndarray, float] | None = None
        if isinstance(model, Pipeline) and len(model.steps) == 2 and isinstance(model[0], ColumnTransformer):
            try:
                self._encoder = _Encoder(model[0])
            except TypeError as reason:
                _LOG.warning("model %s: no fast path (%s)", model_id, reason)
            classifier = model[-1]
            if isinstance(classifier, LogisticRegression) and classifier.coef_.shape[0] == 1:
                self._logistic = (classifier.coef_[0].astype(float), float(classifier.intercept_[0]))
        self.fast = self._encoder is not None and self._self_check()

    def _self_check(self) -> bool:
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

    def predict(self, columns: Columns) -> tuple[list[str], np.ndarray]:
        """Predicted class of each record (``Risk`` when its probability exceeds 0.5) and the probabilities."""
        labels, proba = _labelled(self.predict_proba(columns))
        return labels.tolist(), proba

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
