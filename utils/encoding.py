"""The fitted ``ColumnTransformer`` of a registered pipeline (one-hot encoders, standard scalers) replayed with
numpy: :class:`Encoder` encodes validated columns, or a DataFrame, as the scorer's fast path
(:class:`utils.scoring.Scorer`) feeds them to the classifier, and gives a logistic regression's few-record path
(:mod:`utils.logistic_rows`) its one-hot positions and scalings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from utils.contract import Columns, InputError
from utils.data import FEATURES, NUMERIC_RANGES
from utils.logistic_rows import LogisticRows

#: Encoded rows: the one-hot position of each category (one array per categorical column), and the scaled numbers.
Encoded = tuple[np.ndarray, np.ndarray]


class Encoder:
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

    def logistic_rows(self, coef: np.ndarray, intercept: float, order: Sequence[int]) -> LogisticRows:
        """The few-record path of a logistic regression on these encoded columns (:mod:`utils.logistic_rows`)."""
        numeric = zip(self.numeric_names, self.numeric_positions, self.means, self.scales, strict=True)
        return LogisticRows(self.categorical, list(numeric), coef, intercept, order, self._unknown)

    def matrix(self, encoded: Encoded) -> np.ndarray:
        """The encoded rows as the ``ColumnTransformer`` gives them: one-hot columns and scaled numbers."""
        hot, scaled = encoded
        matrix = np.zeros((len(scaled), self.width))
        matrix[np.tile(np.arange(len(scaled)), len(hot)), hot.ravel()] = 1.0
        matrix[:, self.numeric_positions] = scaled
        return matrix
