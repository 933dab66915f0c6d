"""Drift of the scored traffic away from the training data, and of the model's accuracy.

- :class:`DataDriftDetector`: per feature, the tests of alibi-detect's ``TabularDrift`` (Kolmogorov-Smirnov for
  numeric columns, chi-square for categorical ones, with a Bonferroni or false-discovery-rate correction over the
  20 tests) for the evidence, and an effect size for how much it moved (the Wasserstein distance in units of the
  reference's standard deviation for numbers, the Jensen-Shannon distance for categories, as Evidently does): a
  feature drifted when both speak, so that a tiny shift in a large window does not alert. Both are computed from
  each feature's counts of distinct values, which give exactly the statistics and p-values of the samples
  themselves (the tests compare them with ``TabularDrift``'s) in milliseconds for a million records.
- :class:`MultivariateDriftDetector`: alibi-detect's ``ClassifierDrift`` with its scikit-learn backend: a
  classifier learns to tell reference records from the window's; if it does better than chance on held-out folds,
  the joint distribution moved, even when no single feature did.
- :class:`ModelDriftEstimator`: the accuracy to expect on unlabelled records, from a model trained on labelled
  reference data to predict where the deployed model errs; its drop from the reference is the model drift.

This is the only module of the project that imports alibi-detect. alibi-detect 0.13 is under the Business
Source License 1.1: free for this workshop's educational use, not for most production use. To change the engine,
reimplement the three classes here with the same results; nothing else needs to change.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, kstwo, wasserstein_distance
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from utils.data import CATEGORIES, FEATURES, LABEL
from utils.decision import RISK_THRESHOLD, model_decisions, risk_probability

#: The columns the detectors compare, each with its categories (None: a numeric column): the credit contract's
#: 20 features by default; a declared schema gives its own (:mod:`utils.monitoring.declared`).
CREDIT_COLUMNS: dict[str, tuple | None] = {name: CATEGORIES.get(name) for name in FEATURES}
_CATEGORICAL_INDEX = [i for i, name in enumerate(FEATURES) if name in CATEGORIES]
#: The smallest effect size that counts as drift, for both measures (Evidently's default for each).
MIN_EFFECT = 0.1
_EFFECT_MEASURES = {"numeric": "Wasserstein / reference std", "categorical": "Jensen-Shannon distance"}
#: Records of the reference and of each window that take part in the classifier test, at most (seeded samples).
CLASSIFIER_TEST_RECORDS = 1000


@functools.cache
def _alibi() -> SimpleNamespace:
    """alibi-detect's detectors, imported once without the notice that ``transformers`` prints on import."""
    previous = os.environ.get("TRANSFORMERS_VERBOSITY")
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from alibi_detect.cd import ClassifierDrift, TabularDrift
    finally:
        if previous is None:
            os.environ.pop("TRANSFORMERS_VERBOSITY", None)
        else:
            os.environ["TRANSFORMERS_VERBOSITY"] = previous
    # The scikit-learn backend logs a warning about ``warm_start`` each time it clones its classifier.
    logging.getLogger("alibi_detect").setLevel(logging.ERROR)
    return SimpleNamespace(ClassifierDrift=ClassifierDrift, TabularDrift=TabularDrift)


def encode(frame: pd.DataFrame, columns: dict[str, tuple | None] = CREDIT_COLUMNS) -> np.ndarray:
    """The ``columns`` (by default the 20 features) as a float matrix: categories as their index in the column's
    domain, numbers as they are.

    A value outside the domain becomes -1, so that it shows up as a category of its own.
    """
    encoded = []
    for name, categories in columns.items():
        values = frame[name]
        if categories is not None:
            codes = pd.Categorical(values, categories=list(categories)).codes
            encoded.append(codes.astype(np.float64))
        else:
            encoded.append(values.to_numpy(dtype=np.float64))
    return np.column_stack(encoded) if encoded else np.empty((len(frame), 0))


def _categorical(columns: dict[str, tuple | None]) -> np.ndarray:
    """Which of ``columns`` are categorical, in order."""
    return np.array([categories is not None for categories in columns.values()], dtype=bool)


def _sample(frame: pd.DataFrame, size: int | None, seed: int) -> pd.DataFrame:
    if size is None or len(frame) <= size:
        return frame
    rows = np.sort(np.random.default_rng(seed).choice(len(frame), size=size, replace=False))
    return frame.iloc[rows]


@dataclass
class DataDrift:
    """Per-feature drift of one window.

    ``features`` has one row per feature: ``kind`` (numeric or categorical), ``test`` (Kolmogorov-Smirnov or
    chi-square), ``statistic`` (the KS distance, or the chi-square statistic), ``p_value``, ``significant``
    (p-value under the corrected ``threshold``), ``effect_measure`` and ``effect`` (the Wasserstein distance divided
    by the reference's standard deviation, or the Jensen-Shannon distance of the category shares, base 2: 0 to 1),
    and ``drifted``: significant and an effect over ``min_effect``. ``drifted_share`` is the share of drifted
    features.
    """

    features: pd.DataFrame
    threshold: float
    records: int
    min_effect: float = MIN_EFFECT

    @property
    def drifted(self) -> list[str]:
        """The drifted features, most significant first."""
        found = self.features[self.features["drifted"]].sort_values("p_value")
        return found.index.tolist()

    @property
    def drifted_share(self) -> float:
        return float(self.features["drifted"].mean())

    @property
    def is_drift(self) -> bool:
        return bool(self.features["drifted"].any())


def _counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of a column, sorted, and how many times each occurs (integers in a range no wider than
    a few times their number counted by ``bincount``, without sorting)."""
    if values.dtype.kind in "iu" and len(values):
        low, high = int(values.min()), int(values.max())
        if high - low <= max(4 * len(values), 1 << 16):
            counts = np.bincount(values - low)
            present = np.flatnonzero(counts)
            return (present + low).astype(np.float64), counts[present]
    return np.unique(values.astype(np.float64), return_counts=True)


def _on(points: np.ndarray, values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``counts`` of ``values`` placed on ``points`` (which hold every value), zero elsewhere."""
    placed = np.zeros(len(points))
    placed[np.searchsorted(points, values)] = counts
    return placed


def _ks_test(reference: tuple, window: tuple) -> tuple[float, float]:
    """Two-sided Kolmogorov-Smirnov distance and asymptotic p-value of two samples given by their counts: the
    statistic of ``scipy.stats.ks_2samp(..., method="asymp")`` on the samples (the largest difference of their
    empirical distributions, reached at one of their values), and its p-value by Smirnov's distribution."""
    points = np.union1d(reference[0], window[0])
    n_reference, n_window = int(reference[1].sum()), int(window[1].sum())
    gaps = np.cumsum(_on(points, *reference)) / n_reference - np.cumsum(_on(points, *window)) / n_window
    distance = max(float(gaps.max()), float(np.clip(-gaps.min(), 0, 1)))
    larger, smaller = sorted([float(n_reference), float(n_window)], reverse=True)
    p_value = float(np.clip(kstwo.sf(distance, np.round(larger * smaller / (larger + smaller))), 0, 1))
    return distance, p_value


def _chi_square_test(reference: np.ndarray, window: np.ndarray) -> tuple[float, float]:
    """Chi-square test of the counts per category code (-1 first) of two samples, over the categories either holds,
    as ``TabularDrift`` makes its contingency table."""
    seen = (reference + window) > 0
    statistic, p_value, _, _ = chi2_contingency(np.vstack((reference[seen], window[seen])))
    return float(statistic), float(p_value)


def _threshold(p_values: np.ndarray, p_value: float, correction: str) -> float:
    """The p-value under which a feature's test is significant: Bonferroni's, or the false discovery rate's
    (Benjamini-Hochberg, as alibi-detect sets it: its smallest level when no test is significant)."""
    if correction == "bonferroni":
        return p_value / len(p_values)
    levels = p_value * np.arange(1, len(p_values) + 1) / len(p_values)
    below = np.flatnonzero(np.sort(p_values) < levels)
    return float(levels[below.max()] if len(below) else levels[0])


@dataclass
class _Feature:
    """What a window's feature is compared by: the counts per category code (-1 first), or the distinct values and
    their counts."""

    codes: np.ndarray | None = None
    values: tuple | None = None


def _feature(frame: pd.DataFrame, name: str, categories: tuple | None) -> _Feature:
    if categories is None:
        return _Feature(values=_counts(frame[name].to_numpy()))
    column, categories = frame[name], list(categories)
    same = isinstance(column.dtype, pd.CategoricalDtype) and list(column.cat.categories) == categories
    codes = column.cat.codes.to_numpy() if same else pd.Categorical(column, categories=categories).codes
    return _Feature(codes=np.bincount(codes.astype(np.int64) + 1, minlength=len(categories) + 1))


class DataDriftDetector:
    """Per-feature drift tests of windows against reference data (normally the training data)."""

    def __init__(
        self,
        reference: pd.DataFrame,
        *,
        p_value: float = 0.01,
        correction: str = "bonferroni",
        min_effect: float = MIN_EFFECT,
        columns: dict[str, tuple | None] = CREDIT_COLUMNS,
    ):
        """``p_value``: the family-wise error rate (Bonferroni) or false discovery rate (``correction="fdr"``);
        ``min_effect``: the effect size a significant feature needs to count as drifted; ``columns``: the columns
        compared and their categories (see :data:`CREDIT_COLUMNS`)."""
        if not 0 < p_value < 1:
            raise ValueError(f"p_value must be between 0 and 1, got {p_value}")
        if not min_effect >= 0:
            raise ValueError(f"min_effect must be 0 or more, got {min_effect}")
        if correction not in ("bonferroni", "fdr"):
            raise ValueError(f"correction must be 'bonferroni' or 'fdr', got {correction!r}")
        self.p_value = p_value
        self.correction = correction
        self.min_effect = min_effect
        self.columns = dict(columns)
        self.reference_records = len(reference)
        self._reference = self._features(reference)
        spread = encode(reference, self.columns).std(axis=0) if len(reference) else np.ones(len(self.columns))
        self._scale = np.where(spread > 0, spread, 1.0)  # a constant reference column: plain units

    def _features(self, frame: pd.DataFrame) -> dict[str, _Feature]:
        return {name: _feature(frame, name, categories) for name, categories in self.columns.items()}

    def _effects(self, window: dict[str, _Feature]) -> np.ndarray:
        effects = np.full(len(self.columns), np.nan)
        for i, (name, categories) in enumerate(self.columns.items()):
            reference, found = self._reference[name], window[name]
            if categories is not None:  # shares per category, values outside the domain last
                shares = [np.roll(f.codes, -1) / max(f.codes.sum(), 1) for f in (reference, found)]
                effects[i] = jensenshannon(*shares, base=2)
            else:
                (u, u_counts), (v, v_counts) = reference.values, found.values
                effects[i] = wasserstein_distance(u, v, u_counts, v_counts) / self._scale[i]
        return effects

    def effect_sizes(self, frame: pd.DataFrame) -> np.ndarray:
        """Per feature, how far ``frame`` moved from the reference, whatever the number of records."""
        if not len(frame):
            return np.full(len(self.columns), np.nan)
        return self._effects(self._features(frame))

    def check(self, frame: pd.DataFrame) -> DataDrift:
        """Test every feature of ``frame`` against the reference."""
        if not (len(frame) and self.reference_records):
            raise ValueError("data drift needs records in both the reference and the window")
        window = self._features(frame)
        tests = [
            _chi_square_test(self._reference[name].codes, window[name].codes)
            if categories is not None
            else _ks_test(self._reference[name].values, window[name].values)
            for name, categories in self.columns.items()
        ]
        # As TabularDrift reports them: single precision.
        statistics, p_values = (np.asarray(column, dtype=np.float32).astype(float) for column in zip(*tests))
        threshold = _threshold(p_values, self.p_value, self.correction)
        categorical = _categorical(self.columns)
        kind = np.where(categorical, "categorical", "numeric")
        effect = self._effects(window)
        significant = p_values < threshold
        features = pd.DataFrame(
            {
                "kind": kind,
                "test": np.where(categorical, "chi-square", "Kolmogorov-Smirnov"),
                "statistic": statistics,
                "p_value": p_values,
                "significant": significant,
                "effect_measure": [_EFFECT_MEASURES[k] for k in kind],
                "effect": effect,
                "drifted": significant & (effect > self.min_effect),
            },
            index=pd.Index(list(self.columns), name="feature"),
        )
        return DataDrift(features, threshold, len(frame), self.min_effect)


def window_sample(frame: pd.DataFrame, max_records: int | None, seed: int) -> pd.DataFrame:
    """The window's records the classifier test of ``seed`` takes part with (at most ``max_records``)."""
    return _sample(frame, max_records, seed + 1)


@dataclass
class MultivariateDrift:
    """The classifier test of one window: ``distance`` is the KS distance between the out-of-fold drift scores of
    reference and window records (0: indistinguishable), ``p_value`` its p-value, ``is_drift`` below ``threshold``."""

    p_value: float
    distance: float
    threshold: float
    records: int
    reference_records: int

    @property
    def is_drift(self) -> bool:
        return bool(self.p_value < self.threshold)


class MultivariateDriftDetector:
    """alibi-detect's ``ClassifierDrift`` (scikit-learn backend) with gradient-boosted trees, seeded."""

    def __init__(
        self,
        reference: pd.DataFrame,
        *,
        p_value: float = 0.01,
        max_records: int = CLASSIFIER_TEST_RECORDS,
        folds: int = 5,
        seed: int = 0,
        columns: dict[str, tuple | None] = CREDIT_COLUMNS,
    ):
        """Up to ``max_records`` records of the reference and of each window take part (a seeded sample);
        ``columns``: the columns compared and their categories (see :data:`CREDIT_COLUMNS`)."""
        self.p_value = p_value
        self.columns = dict(columns)
        self.max_records = max_records
        self.seed = seed
        sample = _sample(reference, max_records, seed)
        self.reference_records = len(sample)
        classifier = HistGradientBoostingClassifier(
            max_iter=50,
            learning_rate=0.1,
            max_leaf_nodes=15,
            categorical_features=_categorical(self.columns),
            early_stopping=False,
            random_state=seed,
        )
        self._detector = _alibi().ClassifierDrift(
            encode(sample, self.columns), classifier, backend="sklearn", p_val=p_value, n_folds=folds, seed=seed
        )

    def check(self, frame: pd.DataFrame) -> MultivariateDrift:
        """Test whether a classifier can tell ``frame``'s records from the reference's."""
        sample = window_sample(frame, self.max_records, self.seed)
        with warnings.catch_warnings(), threadpool_limits(limits=1):  # small fits: threads cost more than they give
            warnings.simplefilter("ignore")
            found = self._detector.predict(encode(sample, self.columns))["data"]
        return MultivariateDrift(
            float(found["p_val"]), float(found["distance"]), self.p_value, len(sample), self.reference_records
        )


@dataclass
class ModelDrift:
    """Accuracy expected on a window without labels, against the same estimate on the reference data.

    ``estimated_drop`` is ``reference_estimate - estimated_accuracy``: how much accuracy the window is expected
    to lose. ``reference_accuracy`` is the deployed model's measured accuracy on the reference data.
    """

    estimated_accuracy: float
    reference_estimate: float
    reference_accuracy: float
    records: int

    @property
    def estimated_drop(self) -> float:
        return self.reference_estimate - self.estimated_accuracy


class ModelDriftEstimator:
    """Estimates the deployed model's accuracy on unlabelled records.

    A gradient-boosted "judge" learns, on labelled reference data, whether the deployed model's decision is right,
    from the features, the model's probability of ``Risk`` and its distance from the decision threshold. Its mean
    predicted probability of "right" over a window estimates the accuracy there; the same estimate on the
    reference data is the baseline. It sees covariate drift (applicants moving to where the model errs more),
    not a change in the outcomes themselves: only labelled feedback shows that.
    """

    def __init__(self, model, reference: pd.DataFrame, *, max_records: int | None = 50_000, seed: int = 0):
        """``reference`` holds the features and the label; use data the model was not trained on when you can."""
        self.model = model
        self.max_records = max_records
        self.seed = seed
        features = self._features(reference)
        right = model_decisions(model, reference) == reference[LABEL].to_numpy()
        self.reference_accuracy = float(right.mean())
        judge = HistGradientBoostingClassifier(
            max_iter=100,
            learning_rate=0.05,
            max_leaf_nodes=8,
            min_samples_leaf=40,
            categorical_features=[*np.isin(np.arange(len(FEATURES)), _CATEGORICAL_INDEX), False, False],
            early_stopping=False,
            random_state=seed,
        )
        with threadpool_limits(limits=1):
            self._judge = judge.fit(features, right)
            self.reference_estimate = float(self._judge.predict_proba(features)[:, 1].mean())

    def _features(self, frame: pd.DataFrame) -> np.ndarray:
        if "probability_risk" in frame:
            risk = frame["probability_risk"].to_numpy(dtype=float)
        else:
            risk = risk_probability(self.model, frame)
        return np.column_stack([encode(frame), risk, np.abs(risk - RISK_THRESHOLD)])

    def estimate(self, frame: pd.DataFrame) -> ModelDrift:
        """The expected accuracy on ``frame`` (features, and ``probability_risk`` when already scored)."""
        sample = _sample(frame, self.max_records, self.seed)
        if not len(sample):
            return ModelDrift(np.nan, self.reference_estimate, self.reference_accuracy, 0)
        with threadpool_limits(limits=1):
            expected = float(self._judge.predict_proba(self._features(sample))[:, 1].mean())
        return ModelDrift(expected, self.reference_estimate, self.reference_accuracy, len(frame))
