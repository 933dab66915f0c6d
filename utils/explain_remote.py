"""Explanations of a decision of a model served elsewhere, through its scoring URL (model-agnostic).

shap's ``KernelExplainer`` needs nothing from the model but its answers: the record's features are encoded as
numbers (a category by its position in the contract's domain), every coalition the explainer builds is decoded
back to applicants and scored by the engine (:class:`utils.remote.RemoteModel`), in the log-odds of ``Risk`` as
:func:`utils.explain.feature_contributions` gives them. The cost is bounded: ``samples`` coalitions times
``background`` reference rows are scored, in requests of at most :data:`utils.remote.BATCH_ROWS` rows (2,012 rows
by default: 0.6 to 2 s against a local MLServer). The contributions add up to the output minus the base value.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from utils.data import CATEGORIES, FEATURES, UNFAVOURABLE
from utils.decision import decide
from utils.explain import Explanation, _shap
from utils.remote import RemoteModel

#: Reference rows the explainer compares with, and coalitions it scores: their product is the rows scored.
BACKGROUND_ROWS, SAMPLES = 10, 200


def _encode(frame: pd.DataFrame) -> np.ndarray:
    columns = []
    for name in FEATURES:
        if name in CATEGORIES:
            columns.append(pd.Categorical(frame[name].astype(str), categories=list(CATEGORIES[name])).codes)
        else:
            columns.append(frame[name].to_numpy(dtype=float))
    return np.column_stack(columns).astype(float)


def _decode(matrix: np.ndarray) -> pd.DataFrame:
    frame = {}
    for position, name in enumerate(FEATURES):
        values = matrix[:, position]
        if name in CATEGORIES:
            frame[name] = np.asarray(CATEGORIES[name], dtype=object)[np.rint(values).astype(int)]
        else:
            frame[name] = np.rint(values).astype("int64")
    return pd.DataFrame(frame)


def remote_contributions(
    model: RemoteModel,
    record: pd.DataFrame,
    reference: pd.DataFrame,
    *,
    background: int = BACKGROUND_ROWS,
    samples: int = SAMPLES,
    seed: int = 0,
) -> Explanation:
    """shap KernelExplainer contributions of each feature to the engine's decision on ``record`` (one row)."""
    if len(record) != 1:
        raise ValueError(f"explain one record at a time, got {len(record)}")
    shap = _shap()
    risk = list(model.classes_).index(UNFAVOURABLE)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(reference), min(background, len(reference)), replace=False))
    z_background = _encode(reference.iloc[rows])
    z = _encode(record)

    def risk_of(matrix: np.ndarray) -> np.ndarray:
        return model.predict_proba(_decode(np.atleast_2d(matrix)))[:, risk]

    state = np.random.get_state()  # the explainer draws its coalitions from numpy's global generator
    try:
        np.random.seed(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            explainer = shap.KernelExplainer(risk_of, z_background, link="logit")
            values = np.asarray(explainer.shap_values(z, nsamples=samples, silent=True), dtype=float).reshape(-1)
    finally:
        np.random.set_state(state)
    probability = float(risk_of(z)[0])
    base = float(np.asarray(explainer.expected_value).reshape(-1)[0])
    frame = pd.DataFrame(
        {"value": record[list(FEATURES)].iloc[0].astype(object), "contribution": values}, index=FEATURES
    )
    frame.index.name = "feature"
    frame = frame.reindex(frame["contribution"].abs().sort_values(ascending=False, kind="stable").index)
    output = base + float(values.sum())
    return Explanation(frame, base, output, str(decide(probability)), probability, "KernelExplainer (remote)")
