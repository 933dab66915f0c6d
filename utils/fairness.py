"""Fairness of a deployed model's decisions, measured with aif360's classic API.

The configuration is the original workshop's (see ``PROTECTED_GROUPS`` in :mod:`utils.data`): the favourable
outcome is ``No Risk``; for ``Sex`` the monitored group is ``female`` and the reference group ``male``; for ``Age``
the monitored group is 18-25 and the reference group 26-75.

- :func:`fairness_metrics`: favourable rate per group, disparate impact and statistical parity difference of the
  decisions; with labels, equal opportunity difference and average odds difference as well.
- :func:`disparate_impact_test`: a confidence interval for disparate impact and the p-value of "it is below the
  threshold", so that a monitor does not alert on the noise of a small window.
- :func:`perturbation_check`: score each record again with the protected attribute switched to the other group and
  count the decisions that change: how much the model uses the attribute directly.
- :func:`debiased_companion`: aif360's Reject Option Classification around the deployed model's threshold, its
  fairness and accuracy beside the deployed model's.

aif360 is imported on first use, with the warnings it logs about optional packages silenced.
"""

from __future__ import annotations

import functools
import logging
import warnings
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pandas as pd
from scipy.stats import norm

from utils.data import FAVOURABLE, FEATURES, NUMERIC_RANGES, PROTECTED_GROUPS, UNFAVOURABLE
from utils.decision import RISK_THRESHOLD, decide, model_decisions, risk_probability

#: The decision threshold on the favourable class's score, the scale aif360 works on (:mod:`utils.decision`).
_FAVOURABLE_THRESHOLD = 1.0 - RISK_THRESHOLD
_UNPRIVILEGED = [{"group": 0.0}]
_PRIVILEGED = [{"group": 1.0}]


def _favourable(scores: np.ndarray) -> np.ndarray:
    """1 where the decision on a favourable-class score is favourable, by the one decision rule."""
    return (decide(1.0 - scores) == FAVOURABLE).astype(int)


@functools.cache
def _aif360() -> SimpleNamespace:
    """aif360's classic API, imported once without the warnings it logs about packages this project leaves out."""
    root = logging.getLogger()
    guard = None
    if not root.handlers:  # the warnings go through logging.warning(), which would install a stderr handler
        guard = logging.NullHandler()
        root.addHandler(guard)
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from aif360.algorithms.postprocessing import RejectOptionClassification
            from aif360.datasets import BinaryLabelDataset
            from aif360.metrics import BinaryLabelDatasetMetric, ClassificationMetric
    finally:
        logging.disable(previous)
        if guard is not None:
            root.removeHandler(guard)
    logging.getLogger("aif360").setLevel(logging.ERROR)
    return SimpleNamespace(
        BinaryLabelDataset=BinaryLabelDataset,
        BinaryLabelDatasetMetric=BinaryLabelDatasetMetric,
        ClassificationMetric=ClassificationMetric,
        RejectOptionClassification=RejectOptionClassification,
    )


def _group_name(group) -> str:
    if isinstance(group, tuple):
        return f"{group[0]}-{group[1]}"
    if isinstance(group, dict):
        (key, value), *_ = group.items()
        listed = "/".join(map(str, value)) if isinstance(value, list) else f"{value:g}"
        return {"below": f"under {listed}", "at_least": f"{listed} or more", "other_than": f"not {listed}"}[key]
    return "/".join(map(str, group)) if isinstance(group, list) else str(group)


def group_names(attribute: str, groups: dict | None = None) -> tuple[str, str]:
    """Readable names of the monitored and reference groups, e.g. ``("female", "male")`` or ``("18-25", "26-75")``.

    ``groups``: the groups of each protected attribute, by default the credit contract's ``PROTECTED_GROUPS``; a
    group is a range ``(low, high)`` (a tuple, inclusive), ``{"below": x}``, ``{"at_least": x}``, a list of values,
    ``{"other_than": [values]}``, or one value.
    """
    found = (groups or PROTECTED_GROUPS)[attribute]
    return _group_name(found["monitored"]), _group_name(found["reference"])


def _in_group(values: pd.Series, group) -> np.ndarray:
    if isinstance(group, tuple):
        return values.between(*group).to_numpy()
    if isinstance(group, dict):
        (key, value), *_ = group.items()
        if key == "other_than":
            return (~values.isin(value) & values.notna()).to_numpy()
        return (values < value if key == "below" else values >= value).to_numpy()
    return values.isin(group if isinstance(group, list) else [group]).to_numpy()


def group_masks(frame: pd.DataFrame, attribute: str, groups: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of the rows in the monitored group and in the reference group of ``attribute`` (``groups``:
    as for :func:`group_names`)."""
    groups = groups or PROTECTED_GROUPS
    if attribute not in groups:
        raise ValueError(f"unknown protected attribute {attribute!r}; choose one of {sorted(groups)}")
    found = groups[attribute]
    return _in_group(frame[attribute], found["monitored"]), _in_group(frame[attribute], found["reference"])


def _dataset(
    group: np.ndarray, favourable: np.ndarray, scores: np.ndarray | None = None, weights: np.ndarray | None = None
):
    """A BinaryLabelDataset of one protected column ``group`` (1 reference, 0 monitored) and the outcome."""
    frame = pd.DataFrame({"group": group.astype(float), "outcome": favourable.astype(float)})
    if weights is not None:
        frame["weight"] = weights.astype(float)
    dataset = _aif360().BinaryLabelDataset(
        df=frame,
        label_names=["outcome"],
        protected_attribute_names=["group"],
        instance_weights_name="weight" if weights is not None else None,
        favorable_label=1.0,
        unfavorable_label=0.0,
    )
    if scores is not None:
        dataset.scores = np.asarray(scores, dtype=float).reshape(-1, 1)
    # aif360 compares two datasets field by field at each of its metrics, a list element by element: the records'
    # names as one array compare at once (fitting the companion took twice as long).
    dataset.instance_names = np.asarray(dataset.instance_names)
    return dataset


def _counted(group: np.ndarray, decided: np.ndarray, truth: np.ndarray | None = None) -> tuple:
    """Datasets of the distinct (group, decision[, truth]) rows, each weighted by how many records it stands for.

    aif360's metrics weigh every record by its instance weight, so they come out exactly as on the records, but a
    million records cost four rows (eight with the truth).
    """
    codes = 4 * group.astype(np.int64) + 2 * decided + (0 if truth is None else truth)
    counts = np.bincount(codes, minlength=8)
    present = np.flatnonzero(counts)
    group_of, decided_of, truth_of = present // 4, present // 2 % 2, present % 2
    predicted = _dataset(group_of, decided_of, weights=counts[present])
    return predicted, (None if truth is None else _dataset(group_of, truth_of, weights=counts[present]))


def _rates(group: np.ndarray, favourable: np.ndarray) -> dict[str, float]:
    n_monitored, n_reference = int((group == 0).sum()), int((group == 1).sum())
    fav_monitored, fav_reference = int(favourable[group == 0].sum()), int(favourable[group == 1].sum())
    return {
        "records_monitored": n_monitored,
        "records_reference": n_reference,
        "favourable_monitored": fav_monitored,
        "favourable_reference": fav_reference,
        "favourable_rate_monitored": fav_monitored / n_monitored if n_monitored else np.nan,
        "favourable_rate_reference": fav_reference / n_reference if n_reference else np.nan,
    }


def fairness_metrics(
    frame: pd.DataFrame,
    attribute: str,
    *,
    prediction: str = "prediction",
    label: str | None = None,
    groups: dict | None = None,
) -> dict:
    """Fairness of the decisions in ``frame[prediction]`` towards the monitored group of ``attribute``.

    Returns the attribute and group names, records and favourable rate per group, ``disparate_impact``
    (favourable rate of the monitored group over the reference group's) and ``statistical_parity_difference``
    (their difference), computed by aif360's ``BinaryLabelDatasetMetric``. With ``label`` (a column of true
    outcomes), also ``equal_opportunity_difference`` (difference of the rates at which truly favourable
    applicants get the favourable decision) and ``average_odds_difference`` (the mean of that difference and of
    the false favourable rates' difference), from ``ClassificationMetric``. A metric that cannot be computed
    (an empty group, no favourable decision in the reference group) is NaN. Rows in neither group are left out.
    ``groups``: the groups of each protected attribute (:func:`group_names`), by default the credit contract's.
    """
    monitored, reference = group_masks(frame, attribute, groups)
    rows = monitored | reference
    group = reference[rows].astype(int)
    decided = (frame[prediction].to_numpy()[rows] == FAVOURABLE).astype(int)
    names = group_names(attribute, groups)
    result: dict = {"attribute": attribute, "monitored": names[0], "reference": names[1], **_rates(group, decided)}
    result |= dict.fromkeys(("disparate_impact", "statistical_parity_difference"), np.nan)
    if label is not None:
        result |= dict.fromkeys(("equal_opportunity_difference", "average_odds_difference"), np.nan)
    if not (result["records_monitored"] and result["records_reference"]):
        return result
    aif = _aif360()
    truth = None if label is None else (frame[label].to_numpy()[rows] == FAVOURABLE).astype(int)
    predicted, true = _counted(group, decided, truth)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        metric = aif.BinaryLabelDatasetMetric(
            predicted, unprivileged_groups=_UNPRIVILEGED, privileged_groups=_PRIVILEGED
        )
        result["disparate_impact"] = float(metric.disparate_impact())
        result["statistical_parity_difference"] = float(metric.statistical_parity_difference())
        if true is not None:
            classified = aif.ClassificationMetric(
                true, predicted, unprivileged_groups=_UNPRIVILEGED, privileged_groups=_PRIVILEGED
            )
            result["equal_opportunity_difference"] = float(classified.equal_opportunity_difference())
            result["average_odds_difference"] = float(classified.average_odds_difference())
    if not np.isfinite(result["disparate_impact"]):
        result["disparate_impact"] = np.nan
    return result


def disparate_impact_test(
    favourable_monitored: int,
    records_monitored: int,
    favourable_reference: int,
    records_reference: int,
    threshold: float,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """Confidence interval of disparate impact and the p-value that it is below ``threshold``.

    Uses the normal approximation of the log of a ratio of two proportions (with half a record added to empty
    counts). Returns ``(low, high, p_value)``; a small p-value means the window holds real evidence that
    disparate impact is under the threshold, not just the noise of a few records.
    """
    if not (records_monitored and records_reference):
        return np.nan, np.nan, np.nan
    fav_m = max(favourable_monitored, 0.5)
    fav_r = max(favourable_reference, 0.5)
    log_ratio = np.log((fav_m / records_monitored) / (fav_r / records_reference))
    se = np.sqrt(max(1 / fav_m - 1 / records_monitored, 0) + max(1 / fav_r - 1 / records_reference, 0))
    se = max(se, 1e-12)
    z = norm.ppf(0.5 + confidence / 2)
    p_value = float(norm.cdf((log_ratio - np.log(threshold)) / se))
    return float(np.exp(log_ratio - z * se)), float(np.exp(log_ratio + z * se)), p_value


def perturb(frame: pd.DataFrame, attribute: str, *, seed: int = 0) -> pd.DataFrame:
    """A copy of ``frame`` with each record moved to the other group of ``attribute``.

    ``Sex`` is switched (female to male and back); an ``Age`` in one range is replaced by an age drawn (seeded)
    uniformly from the other range, within the contract's ages. Rows in neither group stay as they are.
    """
    monitored, reference = group_masks(frame, attribute)
    changed = frame.copy()
    groups = PROTECTED_GROUPS[attribute]
    if attribute == "Age":
        rng = np.random.default_rng(seed)
        lowest, highest = NUMERIC_RANGES["Age"]
        ages = changed["Age"].to_numpy().copy()
        for mask, (low, high) in ((monitored, groups["reference"]), (reference, groups["monitored"])):
            ages[mask] = rng.integers(max(low, lowest), min(high, highest) + 1, size=int(mask.sum()))
        changed["Age"] = ages
    else:
        values = changed[attribute].astype(object).to_numpy().copy()
        values[monitored] = groups["reference"]
        values[reference] = groups["monitored"]
        changed[attribute] = values
    return changed


def perturbation_check(model, frame: pd.DataFrame, attribute: str, *, seed: int = 0, decisions=None) -> dict:
    """Score every record again with ``attribute`` moved to the other group; count the decisions that change
    (``decisions``: the model's decisions on ``frame`` when they are known, else scored).

    Returns ``records``, ``changed`` and ``changed_share`` (decisions that differ), ``to_favourable`` and
    ``to_unfavourable`` (the direction of the changes), and the same counts for the monitored group's records
    (``changed_monitored``, ``records_monitored``).
    """
    features = frame[list(FEATURES)]
    monitored, _ = group_masks(features, attribute)
    before = model_decisions(model, features) if decisions is None else np.asarray(decisions)
    after = model_decisions(model, perturb(features, attribute, seed=seed))
    changed = before != after
    records = len(features)
    return {
        "attribute": attribute,
        "records": records,
        "changed": int(changed.sum()),
        "changed_share": float(changed.mean()) if records else np.nan,
        "to_favourable": int((changed & (after == FAVOURABLE)).sum()),
        "to_unfavourable": int((changed & (after == UNFAVOURABLE)).sum()),
        "records_monitored": int(monitored.sum()),
        "changed_monitored": int((changed & monitored).sum()),
    }


@dataclass
class Companion:
    """A debiased companion of the deployed model and how it compares.

    ``comparison`` has one row per model (``deployed``, ``debiased``) and the columns disparate impact,
    statistical parity difference and favourable rate per group (on the scored payload), accuracy and balanced
    accuracy (on the labelled records). ``margin`` is the half-width of the reject-option band around the
    decision threshold; ``changed_share`` the share of payload decisions the companion changes;
    ``constraint_met`` whether the fairness bound could be met on the labelled records.
    """

    attribute: str
    comparison: pd.DataFrame
    margin: float
    changed_share: float
    constraint_met: bool


def _balanced_accuracy(truth: np.ndarray, decided: np.ndarray) -> float:
    rates = [np.mean(decided[truth == value] == value) for value in (0, 1) if (truth == value).any()]
    return float(np.mean(rates)) if rates else np.nan


def _favourable_scores(model, frame: pd.DataFrame) -> np.ndarray:
    """Scores of the favourable class: the logged probabilities where the frame has them, else the model's."""
    if "probability_no_risk" in frame:
        return frame["probability_no_risk"].to_numpy(dtype=float)
    if "probability_risk" in frame:
        return 1.0 - frame["probability_risk"].to_numpy(dtype=float)
    return 1.0 - risk_probability(model, frame)


def _in_groups(frame: pd.DataFrame, attribute: str) -> tuple[np.ndarray, np.ndarray]:
    """The rows in either group of ``attribute``, and for those rows 1 in the reference group, 0 in the monitored."""
    monitored, reference = group_masks(frame, attribute)
    rows = monitored | reference
    return rows, reference[rows].astype(int)


def _fit_reject_option(group: np.ndarray, truth: np.ndarray, scores: np.ndarray, bound: float, margins: int):
    """aif360's Reject Option Classification fitted at the deployed threshold; also whether ``bound`` was met."""
    roc = _aif360().RejectOptionClassification(
        unprivileged_groups=_UNPRIVILEGED,
        privileged_groups=_PRIVILEGED,
        low_class_thresh=_FAVOURABLE_THRESHOLD,
        high_class_thresh=_FAVOURABLE_THRESHOLD + 1e-9,  # aif360 wants low < high; one threshold is tried: low
        num_class_thresh=1,
        num_ROC_margin=margins,
        metric_name="Statistical parity difference",
        metric_ub=bound,
        metric_lb=-bound,
    )
    with warnings.catch_warnings(record=True) as caught, np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("always")
        roc.fit(_dataset(group, truth), _dataset(group, _favourable(scores), scores))
    return roc, not any("Unable to satisy" in str(w.message) for w in caught)


def _comparison(name: str, group: np.ndarray, on_payload: np.ndarray, on_labelled, truth: np.ndarray) -> dict:
    rates = _rates(group, on_payload)
    low, high = rates["favourable_rate_monitored"], rates["favourable_rate_reference"]
    return {
        "model": name,
        "disparate_impact": low / high if high else np.nan,
        "statistical_parity_difference": low - high,
        "favourable_rate_monitored": low,
        "favourable_rate_reference": high,
        "accuracy": float(np.mean(on_labelled == truth)) if len(truth) else np.nan,
        "balanced_accuracy": _balanced_accuracy(truth, on_labelled),
    }


def debiased_companion(
    model,
    labelled: pd.DataFrame,
    payload: pd.DataFrame,
    attribute: str,
    *,
    label: str = "Risk",
    bound: float = 0.05,
    margins: int = 50,
) -> Companion:
    """aif360's Reject Option Classification as a debiased companion of ``model``, beside the deployed decisions.

    Within a band around the deployed model's decision threshold, where the model is least sure, the companion
    gives the monitored group the favourable outcome and the reference group the unfavourable one. The band's
    width is fitted on ``labelled`` (records with their true outcome in ``label``): the width with the best
    balanced accuracy among those keeping the statistical parity difference within ``±bound`` (the threshold
    itself stays the deployed one). The companion is then applied to ``payload``, records scored by the deployed
    model with the column ``probability_no_risk`` or ``probability_risk`` (extra columns are ignored; without
    either, the scores are computed).
    Accuracy is measured on ``labelled``, on which the band was fitted: an optimistic figure for the companion.
    """
    rows_l, group_l = _in_groups(labelled, attribute)
    scores_l = _favourable_scores(model, labelled)[rows_l]
    truth = (labelled[label].to_numpy()[rows_l] == FAVOURABLE).astype(int)
    roc, constraint_met = _fit_reject_option(group_l, truth, scores_l, bound, margins)

    def decisions(group: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        deployed = _favourable(scores)
        debiased = roc.predict(_dataset(group, deployed, scores)).labels.ravel().astype(int)
        return deployed, debiased

    rows_p, group_p = _in_groups(payload, attribute)
    deployed_p, debiased_p = decisions(group_p, _favourable_scores(model, payload)[rows_p])
    deployed_l, debiased_l = decisions(group_l, scores_l)
    table = [
        _comparison("deployed", group_p, deployed_p, deployed_l, truth),
        _comparison("debiased", group_p, debiased_p, debiased_l, truth),
    ]
    changed = float(np.mean(deployed_p != debiased_p)) if len(deployed_p) else np.nan
    return Companion(attribute, pd.DataFrame(table).set_index("model"), float(roc.ROC_margin), changed, constraint_met)
