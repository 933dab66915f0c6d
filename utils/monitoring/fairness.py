"""The fairness monitor: the deployed model's decisions towards each protected attribute's groups (aif360).

On the payload: favourable rate per group, disparate impact (with its interval and the one-sided test of
"below the threshold") and statistical parity difference; on the feedback, scored by the monitored model: equal
opportunity and average odds differences; on a seeded sample of the payload: the perturbation check and the
debiased companion. Disparate impact alerts (see :class:`~utils.monitoring.results.Thresholds`). The metrics
themselves are :mod:`utils.fairness`; this module names them and judges them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from utils.data import LABEL
from utils.decision import model_decisions
from utils.fairness import (
    _aif360,
    debiased_companion,
    disparate_impact_test,
    fairness_metrics,
    group_names,
    perturbation_check,
)
from utils.monitoring.results import Measurements, MonitorResult, Thresholds
from utils.monitoring.window import Window

#: Most labelled records the debiased companion is fitted on.
_COMPANION_FEEDBACK = 5000
_VERDICTS = {True: "ALERT", False: "ok", None: "no verdict"}


def sample_records(frame: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """``frame`` itself when it holds at most ``size`` records, else a seeded sample of ``size`` in their order."""
    if len(frame) <= size:
        return frame
    rows = np.sort(np.random.default_rng(seed).choice(len(frame), size, replace=False))
    return frame.iloc[rows].reset_index(drop=True)


def _indexed(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows).set_index("attribute") if rows else pd.DataFrame()


class FairnessMonitor:
    """Judges a window's decisions for each protected attribute of ``attributes``.

    ``sample_size`` bounds the records of the per-record checks (perturbation, debiased companion), a sample
    seeded by ``seed``; the fairness metrics always use every record. ``groups``: each attribute's monitored and
    reference group (:func:`utils.fairness.group_names`), by default the credit contract's.
    """

    name = "fairness"

    def __init__(
        self,
        model,
        thresholds: Thresholds,
        attributes: tuple[str, ...],
        *,
        sample_size: int,
        seed: int,
        groups: dict | None = None,
    ):
        self.model = model
        self.groups = groups
        self.thresholds = thresholds
        self.attributes = tuple(attributes)
        self.sample_size = sample_size
        self.seed = seed

    def set_up(self) -> None:
        """Import aif360 now rather than at the first window."""
        _aif360()

    def run(self, window: Window, *, debias: bool = True) -> MonitorResult:
        """The fairness measurements of ``window`` (``debias``: with the debiased companion, given feedback)."""
        t, payload, feedback = self.thresholds, window.payload, window.judged_feedback
        out = Measurements(self.name)
        rows, perturbed, companions = [], [], {}
        sample = sample_records(payload, self.sample_size, self.seed)
        scored = bool(len(sample)) and self.model is not None
        decisions = model_decisions(self.model, sample) if scored else None  # the same for every attribute
        for attribute in self.attributes:
            rows.append(self._group_metrics(out, payload, feedback, attribute))
            if scored:
                perturbed.append(self._perturbation(out, sample, decisions, attribute))
            if debias and self.model is not None and len(feedback) >= t.min_feedback and len(payload):
                companions[attribute] = self._companion(out, feedback, sample, attribute, records=len(payload))
        details = {"fairness": _indexed(rows), "perturbation": _indexed(perturbed), "companions": companions}
        n = len(payload)
        status = f"{n} payload records, {t.min_records} needed" if n < t.min_records else None
        return MonitorResult(self.name, tuple(out.rows), details, status)

    def _disparate_impact(self, found: dict, records: int) -> tuple[float, float, float, float, bool | None]:
        """Disparate impact, its interval, the p-value of "below the threshold", and the verdict."""
        t = self.thresholds
        di = found.get("disparate_impact", np.nan)
        low, high, p_value = disparate_impact_test(
            found.get("favourable_monitored", 0),
            found.get("records_monitored", 0),
            found.get("favourable_reference", 0),
            found.get("records_reference", 0),
            t.min_disparate_impact,
        )
        smallest_group = min(found.get("records_monitored", 0), found.get("records_reference", 0))
        enough = records >= t.min_records and smallest_group >= t.min_group_records
        significant = t.fairness_alpha is None or (not math.isnan(p_value) and p_value < t.fairness_alpha)
        breached = None
        if enough and not math.isnan(di):
            breached = bool(di < t.min_disparate_impact and significant)
        return di, low, high, p_value, breached

    def _group_metrics(self, out: Measurements, payload, feedback, attribute: str) -> dict:
        """Name the group metrics of ``attribute``; returns its row of the fairness table."""
        n, n_feedback = len(payload), len(feedback)
        found = fairness_metrics(payload, attribute, groups=self.groups)
        labelled = fairness_metrics(feedback, attribute, label=LABEL, groups=self.groups)
        di, low, high, p_value, breached = self._disparate_impact(found, n)
        threshold = self.thresholds.min_disparate_impact
        out.add("disparate_impact", di, records=n, subject=attribute, threshold=threshold, breached=breached)
        out.add("disparate_impact_low", low, records=n, subject=attribute)
        out.add("disparate_impact_high", high, records=n, subject=attribute)
        out.add("disparate_impact_p_value", p_value, records=n, subject=attribute)
        parity = found.get("statistical_parity_difference")
        out.add("statistical_parity_difference", parity, records=n, subject=attribute)
        monitored, reference = group_names(attribute, self.groups)
        for group, key in ((monitored, "monitored"), (reference, "reference")):
            rate = found.get(f"favourable_rate_{key}")
            out.add("favourable_rate", rate, records=n, subject=f"{attribute}={group}")
        for name in ("equal_opportunity_difference", "average_odds_difference"):
            out.add(name, labelled.get(name), records=n_feedback, subject=attribute)
        return {
            **found,
            "disparate_impact_low": low,
            "disparate_impact_high": high,
            "p_value": p_value,
            "equal_opportunity_difference": labelled.get("equal_opportunity_difference", np.nan),
            "average_odds_difference": labelled.get("average_odds_difference", np.nan),
            "verdict": _VERDICTS[breached],
        }

    def _perturbation(self, out: Measurements, sample: pd.DataFrame, decisions, attribute: str) -> dict:
        """The share of decisions that change when only ``attribute`` changes (named and returned)."""
        check = perturbation_check(self.model, sample, attribute, seed=self.seed, decisions=decisions)
        out.add("perturbation_changed_share", check["changed_share"], records=check["records"], subject=attribute)
        return check

    def _companion(self, out: Measurements, feedback, sample, attribute: str, *, records: int):
        """The debiased companion for ``attribute``, fitted on the feedback and applied to the payload sample."""
        labelled_sample = feedback.iloc[: min(len(feedback), _COMPANION_FEEDBACK)]
        companion = debiased_companion(self.model, labelled_sample, sample, attribute)
        table = companion.comparison
        out.add(
            "debiased_disparate_impact", table.loc["debiased", "disparate_impact"], records=records, subject=attribute
        )
        accuracy = table.loc["debiased", "accuracy"]
        out.add("debiased_accuracy", accuracy, records=len(labelled_sample), subject=attribute)
        return companion
