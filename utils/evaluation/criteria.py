"""The comparison criteria of a risk evaluation, in the style of MLflow's ``MetricThreshold`` and TFMA's thresholds.

Each criterion names one figure of :mod:`utils.evaluation.figures` and sets two bars a candidate must clear:

- an absolute bound (``threshold``): the figure must be at least it (at most it, when lower is better);
- a change against the baseline (``min_change``): the candidate's figure minus the baseline's, counted in the
  direction in which the figure is better, must be at least it. A negative ``min_change`` is a tolerance: ``-0.02``
  lets the candidate be at most 0.02 worse than the baseline; ``0.0`` asks for no loss; a positive value asks for
  a gain. Without a baseline, only the absolute bound is judged.

A figure with an ``ideal`` value counts no better beyond it: disparate impact (the monitored group's favourable rate
over the reference group's) is judged by its shortfall from parity, 1.0, as the fairness monitor judges it. 0.95 is
better than 0.85, and 1.10, 1.30 and 1.0 are alike: a candidate fails the change when it gives the monitored group a
lower rate, relative to the reference group, than the champion did, not when it favours that group more.

The change is judged against a **champion** only: a new version must not be worse than the one it would replace. A
**challenger** is a what-if: its figures stand beside the candidate's for the model validator to weigh, and the
verdict does not depend on them (as the per-group regression check is judged against a champion only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import pandas as pd


@dataclass(frozen=True)
class MetricThreshold:
    """The bars one figure must clear (either may be None: not judged)."""

    metric: str
    threshold: float | None = None
    min_change: float | None = None
    greater_is_better: bool = True
    ideal: float | None = None

    def _gain(self, candidate: float, baseline: float) -> float:
        """How much better the candidate is than the baseline, each counted up to the ideal value when there is one."""
        if self.ideal is not None:
            cap = min if self.greater_is_better else max
            candidate, baseline = cap(candidate, self.ideal), cap(baseline, self.ideal)
        return (candidate - baseline) * (1.0 if self.greater_is_better else -1.0)

    def judge(self, candidate: float | None, baseline: float | None) -> tuple[bool | None, str]:
        """Whether the candidate's figure clears the bars, and why not (``None``: the figure is missing)."""
        if candidate is None or math.isnan(candidate):
            return None, "not measured"
        sign = 1.0 if self.greater_is_better else -1.0
        problems = []
        if self.threshold is not None and sign * (candidate - self.threshold) < 0:
            bound = "under the floor" if self.greater_is_better else "over the ceiling"
            problems.append(f"{candidate:.3f} is {bound} {self.threshold:.3f}")
        usable = baseline is not None and not math.isnan(baseline)
        if self.min_change is not None and usable and self._gain(candidate, baseline) < self.min_change:
            problems.append(f"changes by {candidate - baseline:+.3f} against the baseline's {baseline:.3f}")
        return not problems, "; ".join(problems)


#: The default criteria: the original workshop's quality floor (ROC AUC 0.80) and the four-fifths rule for
#: disparate impact, with small tolerances against the baseline; the test data must not drift from training.
DEFAULT_CRITERIA: tuple[MetricThreshold, ...] = (
    MetricThreshold("auc_roc", threshold=0.80, min_change=-0.02),
    MetricThreshold("accuracy", threshold=0.70, min_change=-0.03),
    MetricThreshold("log_loss", min_change=-0.03, greater_is_better=False),
    MetricThreshold("disparate_impact[Sex]", threshold=0.80, min_change=-0.05, ideal=1.0),
    MetricThreshold("disparate_impact[Age]", threshold=0.80, min_change=-0.05, ideal=1.0),
)


def criteria_from(overrides: Mapping[str, Mapping] | None) -> tuple[MetricThreshold, ...]:
    """The default criteria with some replaced: ``{"auc_roc": {"threshold": 0.85}}`` (a metric not among the
    defaults is added).

    Raises:
        ValueError: an unknown field of a criterion.
    """
    chosen = {c.metric: c for c in DEFAULT_CRITERIA}
    for metric, fields in (overrides or {}).items():
        unknown = sorted(set(fields) - {"threshold", "min_change", "greater_is_better", "ideal"})
        if unknown:
            raise ValueError(f"criterion {metric!r}: unknown field(s) {', '.join(unknown)}")
        base = chosen.get(metric, MetricThreshold(metric))
        chosen[metric] = replace(base, **fields)
    return tuple(chosen.values())


def _better(criterion: MetricThreshold) -> str:
    """Which way the figure is better, in words: "higher", "lower", "higher, up to 1"."""
    if criterion.greater_is_better:
        return "higher" if criterion.ideal is None else f"higher, up to {criterion.ideal:g}"
    return "lower" if criterion.ideal is None else f"lower, down to {criterion.ideal:g}"


def compare(
    candidate: Mapping[str, float],
    baseline: Mapping[str, float] | None,
    criteria: Sequence[MetricThreshold],
    *,
    judge_change: bool = True,
) -> pd.DataFrame:
    """One row per criterion: the metric, both figures, the change, the bars, ``passed`` and the reason.

    With ``judge_change`` False the baseline's figures are shown but only the absolute bounds are judged (a
    challenger is compared with for information; only a champion's figures are bars to clear)."""
    rows = []
    for criterion in criteria:
        mine = candidate.get(criterion.metric)
        theirs = None if baseline is None else baseline.get(criterion.metric)
        passed, reason = criterion.judge(mine, theirs if judge_change else None)
        rows.append(
            {
                "metric": criterion.metric,
                "candidate": mine,
                "baseline": theirs,
                "change": None if mine is None or theirs is None else mine - theirs,
                "threshold": criterion.threshold,
                "min_change": criterion.min_change,
                "better": _better(criterion),
                "passed": passed,
                "reason": reason,
            }
        )
    return pd.DataFrame(rows)
