"""Explanations of single decisions: what pushed the model, and what would have changed its mind.

- :func:`feature_contributions`: shap values of one record, in the log-odds of ``Risk``, summed over the
  one-hot columns of each feature so that there is one contribution per original feature. Logistic regressions
  get shap's exact ``LinearExplainer``, tree models its ``TreeExplainer`` (both interventional, against a seeded
  background sample of reference data), other classifiers the seeded ``PermutationExplainer``. The
  contributions add up to the model's output minus the background's mean output.
- :func:`counterfactual`: the smallest change to the applicant's features that flips the decision, found by a
  deterministic, exhaustive search over single changes and a beam search over combinations of them.
- :func:`explain_transaction`: the same, for a transaction id of the payload log.

shap is imported on first use.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder
from threadpoolctl import threadpool_limits

from utils import datamart
from utils.data import CATEGORIES, FEATURES, NUMERIC_RANGES, UNFAVOURABLE
from utils.decision import decide, risk_probability
from utils.registry import ModelRegistry, registry_for

#: Features a counterfactual leaves alone by default: the protected attributes, and what an applicant cannot change.
FROZEN_FEATURES: tuple[str, ...] = ("Sex", "Age", "ForeignWorker")
#: Most distinct values tried per numeric feature.
_NUMERIC_GRID = 250


@functools.cache
def _shap():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import shap
    return shap


@dataclass
class Explanation:
    """The contribution of each feature to one decision.

    ``contributions`` is indexed by feature, with the record's ``value`` and its ``contribution`` to the log-odds
    of ``Risk`` (positive: towards ``Risk``), largest magnitude first. ``base_value`` is the mean log-odds over the
    background sample and ``output`` the record's log-odds: ``base_value + contributions.sum() == output``.
    """

    contributions: pd.DataFrame
    base_value: float
    output: float
    prediction: str
    probability_risk: float
    explainer: str
    transaction_id: str | None = None

    def table(self) -> pd.DataFrame:
        """The contributions with the base value and the output as first and last rows, for display."""
        rows = [{"feature": "(base value)", "value": "", "contribution": self.base_value}]
        rows += [{"feature": name, **row} for name, row in self.contributions.iterrows()]
        rows.append({"feature": "(log-odds of Risk)", "value": "", "contribution": self.output})
        return pd.DataFrame(rows).set_index("feature")


def feature_of_each_column(preprocess: ColumnTransformer) -> list[str]:
    """The original feature of each column the fitted ``ColumnTransformer`` outputs."""
    owners: list[str] = []
    for _, step, columns in preprocess.transformers_:
        if isinstance(step, str) and step == "drop":
            continue
        if isinstance(step, OneHotEncoder):
            if step.drop is not None:
                raise TypeError("one-hot encoders that drop a category are not supported")
            for column, categories in zip(columns, step.categories_, strict=True):
                owners += [column] * len(categories)
        else:
            owners += list(columns)
    return owners


def _split(model) -> tuple[ColumnTransformer, object, float]:
    steps = getattr(model, "steps", None)
    if not steps or len(steps) != 2 or not isinstance(steps[0][1], ColumnTransformer):
        raise TypeError("expected a Pipeline of a ColumnTransformer and a classifier, as the registry stores")
    classifier = steps[1][1]
    sign = 1.0 if list(classifier.classes_).index(UNFAVOURABLE) == 1 else -1.0
    return steps[0][1], classifier, sign


def _permutation_explainer(shap, classifier, z_background: np.ndarray, seed: int):
    def log_odds(matrix: np.ndarray) -> np.ndarray:
        p = np.clip(classifier.predict_proba(matrix)[:, 1], 1e-12, 1 - 1e-12)
        return np.log(p / (1 - p))

    masker = shap.maskers.Independent(z_background, max_samples=len(z_background))
    return shap.explainers.Permutation(log_odds, masker, seed=seed), "shap.PermutationExplainer"


def _explainer(shap, classifier, z_background: np.ndarray, seed: int):
    """shap's exact explainer for the classifier's kind (on the log-odds scale), and its name."""
    if isinstance(classifier, LogisticRegression):
        masker = shap.maskers.Independent(z_background, max_samples=len(z_background))
        return shap.LinearExplainer(classifier, masker), "shap.LinearExplainer"
    if hasattr(classifier, "n_iter_") or hasattr(classifier, "estimators_"):
        explainer = shap.TreeExplainer(
            classifier, data=z_background, feature_perturbation="interventional", model_output="raw"
        )
        return explainer, "shap.TreeExplainer"
    return _permutation_explainer(shap, classifier, z_background, seed)


def feature_contributions(
    model, record: pd.DataFrame, background: pd.DataFrame, *, max_background: int = 200, seed: int = 0
) -> Explanation:
    """shap contributions of each feature to the decision on ``record`` (one row), against ``background`` rows; a
    feature the model does not use (:data:`~utils.data.UNUSED_FEATURES`) contributes 0."""
    if len(record) != 1:
        raise ValueError(f"explain one record at a time, got {len(record)}")
    shap = _shap()
    preprocess, classifier, sign = _split(model)
    rng = np.random.default_rng(seed)
    if len(background) > max_background:
        background = background.iloc[np.sort(rng.choice(len(background), max_background, replace=False))]
    z_background = preprocess.transform(background[list(FEATURES)])
    z = preprocess.transform(record[list(FEATURES)])
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore")
        explainer, name = _explainer(shap, classifier, z_background, seed)
        try:
            values = explainer(z)
        except shap.utils._exceptions.ExplainerError:
            # shap's tree walk can differ from the fitted model for a value on a split threshold (its additivity
            # check then fails): the permutation explainer calls the model itself, so its values add up exactly.
            explainer, name = _permutation_explainer(shap, classifier, z_background, seed)
            values = explainer(z)
        probability = classifier.predict_proba(z)[0, list(classifier.classes_).index(UNFAVOURABLE)]
        prediction = str(decide(probability))
    shap_values = sign * np.asarray(values.values, dtype=float).reshape(-1)
    base = sign * float(np.asarray(values.base_values, dtype=float).reshape(-1)[0])
    owners = feature_of_each_column(preprocess)
    if len(owners) != len(shap_values):
        raise TypeError("the preprocessing's output columns could not be traced back to features")
    per_feature = pd.Series(shap_values).groupby(pd.Series(owners)).sum()
    frame = pd.DataFrame(
        {
            "value": record[list(FEATURES)].iloc[0].astype(object),
            "contribution": per_feature.reindex(FEATURES, fill_value=0.0),
        }
    )
    frame.index.name = "feature"
    frame = frame.reindex(frame["contribution"].abs().sort_values(ascending=False, kind="stable").index)
    return Explanation(
        frame, base, base + float(shap_values.sum()), prediction, float(probability), name, transaction_id=None
    )


def explain_transaction(
    transaction_id: str,
    background: pd.DataFrame,
    *,
    engine=None,
    registry: ModelRegistry | None = None,
    work: str | os.PathLike | None = None,
    seed: int = 0,
    load_model: Callable[[str], object] | None = None,
) -> tuple[Explanation, Counterfactual]:
    """The shap contributions and the counterfactual of a logged transaction, with the model that scored it
    (loaded from the registry, or by ``load_model(model_id)``: a server passes the models it keeps loaded)."""
    engine = engine or datamart.connect(work=work)
    stored = datamart.read_transaction(engine, transaction_id)
    model = (load_model or (registry or registry_for(work)).load)(stored["model_id"])
    record = pd.DataFrame([stored[list(FEATURES)].to_dict()])
    explanation = feature_contributions(model, record, background, seed=seed)
    explanation.transaction_id = transaction_id
    return explanation, counterfactual(model, record)


@dataclass
class Counterfactual:
    """The smallest change found that flips a decision.

    ``changes`` lists each changed feature with its value ``before`` and ``after``; ``cost`` is the size of the
    change (1 per changed category, plus each numeric change as a share of the feature's range). ``found`` is
    false when no change within ``max_changes`` features flips the decision (then ``after`` is the original).
    """

    found: bool
    changes: pd.DataFrame
    cost: float
    decision_before: str
    decision_after: str
    probability_risk_before: float
    probability_risk_after: float
    record: pd.DataFrame


def _candidates(record: pd.Series, frozen: tuple[str, ...]) -> list[tuple[str, object, float]]:
    found: list[tuple[str, object, float]] = []
    for name in FEATURES:
        if name in frozen:
            continue
        current = record[name]
        if name in CATEGORIES:
            found += [(name, value, 1.0) for value in CATEGORIES[name] if value != current]
            continue
        low, high = NUMERIC_RANGES[name]
        grid = np.unique(np.linspace(low, high, min(high - low + 1, _NUMERIC_GRID)).round().astype(int))
        found += [(name, int(value), abs(int(value) - current) / (high - low)) for value in grid if value != current]
    return found


def counterfactual(
    model, record: pd.DataFrame, *, frozen: tuple[str, ...] = FROZEN_FEATURES, max_changes: int = 3, beam: int = 20
) -> Counterfactual:
    """The cheapest change to ``record`` (one row) that makes ``model`` decide the other way.

    Every single change is tried (each other category, and each value on a grid of up to 250 values over a
    numeric feature's range), so the best one-feature answer is exact on that grid. When no single change flips
    the decision, or a combination could be cheaper, combinations are searched by a beam of the ``beam`` most
    promising partial changes, up to ``max_changes`` features. Features in ``frozen`` are never changed.
    """
    if len(record) != 1:
        raise ValueError(f"explain one record at a time, got {len(record)}")
    original = record[list(FEATURES)].iloc[0]
    with threadpool_limits(limits=1):
        before_proba = float(risk_probability(model, record)[0])
    before = str(decide(before_proba))
    candidates = _candidates(original, frozen)
    frontier: list[tuple[dict, float]] = [({}, 0.0)]
    best: tuple[dict, float, float, float] | None = None  # changes, cost, probability of Risk, margin
    for _ in range(max_changes):
        states: dict[frozenset, tuple[dict, float]] = {}
        for changes, cost in frontier:
            for name, value, step in candidates:
                if name in changes or (best is not None and cost + step >= best[1]):
                    continue
                new = {**changes, name: value}
                states.setdefault(frozenset(new.items()), (new, cost + step))
        if not states:
            break
        options = list(states.values())
        rows = pd.DataFrame([{**original.to_dict(), **changes} for changes, _ in options])[list(FEATURES)]
        with threadpool_limits(limits=1):
            proba = risk_probability(model, rows)
        decided = decide(proba)
        away = proba if before != UNFAVOURABLE else 1 - proba  # progress towards the other decision
        for i in np.flatnonzero(decided != before):
            changes, cost = options[i]
            if best is None or cost < best[1] or (cost == best[1] and away[i] > best[3]):
                best = (changes, cost, float(proba[i]), float(away[i]))
        by_features: dict[frozenset, int] = {}
        for i in np.flatnonzero(decided == before):
            key = frozenset(options[i][0])
            if key not in by_features or away[i] > away[by_features[key]]:
                by_features[key] = i
        ranked = sorted(by_features.values(), key=lambda i: (-away[i], options[i][1]))[:beam]
        frontier = [options[i] for i in ranked]
    if best is None:
        changes = pd.DataFrame(columns=["before", "after"], index=pd.Index([], name="feature"))
        return Counterfactual(False, changes, np.nan, before, before, before_proba, before_proba, record.copy())
    new_changes, cost, proba_after, _ = best
    changed = record[list(FEATURES)].copy()
    for name, value in new_changes.items():
        changed[name] = value
    after = str(decide(proba_after))
    table = pd.DataFrame(
        {"before": [original[n] for n in new_changes], "after": list(new_changes.values())},
        index=pd.Index(list(new_changes), name="feature"),
    )
    order = [name for name in FEATURES if name in new_changes]
    return Counterfactual(True, table.loc[order], float(cost), before, after, before_proba, proba_after, changed)
