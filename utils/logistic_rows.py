"""A logistic regression's probabilities for a few records, computed in plain Python.

A one-record scoring request through numpy costs about ten calls of a microsecond or more each (arrays built from
lists, fancy indexing, a matrix product, the logistic function), and several times that within a busy server,
where each call finds its code and data out of the processor's caches. Row by row in Python, a record is a sum of
20 weights and a division. :class:`LogisticRows` holds the weights of a fitted pipeline's one-hot categories and
scaled numbers (as :class:`utils.scoring.Scorer` reads them from its encoder and classifier) and scores up to
:data:`FEW_ROWS` records; :class:`~utils.scoring.Scorer` uses it for such requests once it agrees with the
pipeline. Its probabilities agree with the vectorised path's to within a unit or two of the last binary digit, as
numpy's own results do between one record scored alone and in a batch (they sum in another order).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from utils.data import FEATURES

#: Most records a request may hold to be scored row by row (beyond, numpy's vectorised path is faster).
FEW_ROWS = 10


def _logistic(z: float) -> float:
    """1 / (1 + e^-z), 0.0 where e^-z overflows (as ``scipy.special.expit`` gives)."""
    try:
        return 1.0 / (1.0 + math.exp(-z))
    except OverflowError:
        return 0.0


class LogisticRows:
    """Probabilities of a binary logistic regression over one-hot categories and standardised numbers.

    ``categorical`` maps each category field to its one-hot positions (value to column); ``numeric`` lists each
    number's field, column, mean and scale; ``coef`` and ``intercept`` are the classifier's; ``order`` picks the
    pair (model's first class, second class) into the order probabilities are given in. ``unknown(name, value,
    row)`` is the error raised for a category the model was not trained with.
    """

    def __init__(
        self,
        categorical: Sequence[tuple[str, Mapping[str, int]]],
        numeric: Sequence[tuple[str, int, float, float]],
        coef: Sequence[float],
        intercept: float,
        order: Sequence[int],
        unknown: Callable[[str, object, int], Exception],
    ):
        self.weights = [
            (name, {value: float(coef[at]) for value, at in columns.items()}) for name, columns in categorical
        ]
        self.numbers = [(name, float(mean), float(scale), float(coef[at])) for name, at, mean, scale in numeric]
        self.intercept = float(intercept)
        self.order = tuple(order)
        self.unknown = unknown

    def _category_sums(self, columns: Mapping[str, Sequence], rows: int) -> list[float]:
        sums = [0.0] * rows
        for name, weights in self.weights:
            for row, value in enumerate(columns[name]):
                weight = weights.get(value)
                if weight is None:
                    raise self.unknown(name, value, row)
                sums[row] += weight
        return sums

    def probabilities(self, columns: Mapping[str, Sequence]) -> list[list[float]]:
        """Per record of validated ``columns``, its probabilities in ``order``.

        Raises:
            InputError: a category the model was not trained with (see ``unknown``).
        """
        categories = self._category_sums(columns, len(columns[FEATURES[0]]))
        probabilities = []
        for row, weighted in enumerate(categories):
            numbers = sum((columns[name][row] - mean) / scale * weight for name, mean, scale, weight in self.numbers)
            risk = _logistic(weighted + numbers + self.intercept)
            pair = (1.0 - risk, risk)  # the model's classes in its order
            probabilities.append([pair[at] for at in self.order])
        return probabilities
