"""The drill-down of one evaluated window: fairness (rates per group, disparate impact with its interval, the
perturbed view) and drift (per-feature effect size and p-value, distributions against the training data).

The stored measurements give the numbers the monitors computed; the perturbed view and the distributions are
computed live from the window's payload records, with the model that scored them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from utils import datamart
from utils.contract import InputError, check_identifier
from utils.data import FAVOURABLE, NUMERIC_RANGES
from utils.decision import model_decisions
from utils.fairness import group_masks, group_names, perturb

#: Most drifted features whose distributions the drift page draws.
MAX_DISTRIBUTIONS = 4


@dataclass
class Window:
    """One stored evaluation of a deployment: its id, window and measurements."""

    evaluation_id: str
    deployment_id: str
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    measurements: pd.DataFrame

    def metric(self, monitor: str, metric: str) -> pd.DataFrame:
        """The rows of one metric, indexed by subject."""
        rows = self.measurements
        return rows[(rows["monitor"] == monitor) & (rows["metric"] == metric)].set_index("subject")


def stored_window(engine: Engine, deployment_id: str, evaluation_id: str) -> Window:
    """The stored evaluation ``evaluation_id`` of the deployment (404 when it has none by that id)."""
    check_identifier(evaluation_id, "evaluation_id", status=404)
    measured = datamart.read_measurements(engine, deployment_id)
    rows = measured[measured["evaluation_id"] == evaluation_id].reset_index(drop=True)
    if rows.empty:
        raise InputError(f"no evaluation {evaluation_id!r} of this deployment", field="evaluation_id", status=404)
    start, end = rows["window_start"].iloc[0], rows["window_end"].iloc[0]
    return Window(evaluation_id, deployment_id, None if pd.isna(start) else start, None if pd.isna(end) else end, rows)


def _value(rows: pd.DataFrame, subject: str) -> float | None:
    if subject not in rows.index or pd.isna(rows.loc[subject, "value"]):
        return None
    return float(rows.loc[subject, "value"])


def fairness_details(window: Window) -> list[dict]:
    """Per protected attribute: the favourable rate of each group, disparate impact with its interval, threshold,
    p-value and verdict, and the share of decisions that change when the attribute is flipped."""
    impact = window.metric("fairness", "disparate_impact")
    rates = window.metric("fairness", "favourable_rate")
    found = []
    for attribute in impact.index:
        monitored, reference = group_names(attribute)
        row = impact.loc[attribute]
        found.append(
            {
                "attribute": attribute,
                "groups": {
                    "monitored": {"name": monitored, "rate": _value(rates, f"{attribute}={monitored}")},
                    "reference": {"name": reference, "rate": _value(rates, f"{attribute}={reference}")},
                },
                "disparate_impact": None if pd.isna(row["value"]) else float(row["value"]),
                "interval": [
                    _value(window.metric("fairness", "disparate_impact_low"), attribute),
                    _value(window.metric("fairness", "disparate_impact_high"), attribute),
                ],
                "p_value": _value(window.metric("fairness", "disparate_impact_p_value"), attribute),
                "threshold": None if pd.isna(row["threshold"]) else float(row["threshold"]),
                "breached": None if pd.isna(row["breached"]) else bool(row["breached"]),
                "records": int(row["records"]),
                "perturbation_changed_share": _value(
                    window.metric("fairness", "perturbation_changed_share"), attribute
                ),
            }
        )
    return found


def window_payload(engine: Engine, window: Window) -> pd.DataFrame:
    """The payload records of the window."""
    return datamart.read_payload(engine, window.deployment_id, window.start, window.end)


def perturbed_rates(model, payload: pd.DataFrame, attribute: str) -> dict[str, dict[str, float | None]]:
    """The favourable rate of each group of ``attribute``, as scored and with each record moved to the other
    group (the perturbed, "balanced" view): a gap that closes when the attribute is flipped is the model's doing."""
    monitored, reference = group_names(attribute)
    masks = dict(zip((monitored, reference), group_masks(payload, attribute), strict=True))
    as_scored = payload["prediction"].to_numpy() == FAVOURABLE
    flipped = model_decisions(model, perturb(payload, attribute)) == FAVOURABLE if len(payload) else as_scored

    def rate(decided: np.ndarray, mask: np.ndarray) -> float | None:
        return float(decided[mask].mean()) if mask.any() else None

    return {
        group: {"as_scored": rate(as_scored, mask), "flipped": rate(flipped, mask)} for group, mask in masks.items()
    }


def drift_details(window: Window) -> pd.DataFrame:
    """Per feature: effect size and its threshold, p-value and its (Bonferroni) threshold, whether it drifted
    (significant and large), largest effect first."""
    effect = window.metric("drift", "effect")
    p_value = window.metric("drift", "p_value")
    if effect.empty:
        return pd.DataFrame(columns=["feature", "effect", "effect_threshold", "p_value", "p_threshold", "drifted"])
    table = pd.DataFrame(
        {
            "feature": effect.index,
            "effect": effect["value"].to_numpy(dtype=float),
            "effect_threshold": effect["threshold"].to_numpy(dtype=float),
            "p_value": p_value["value"].reindex(effect.index).to_numpy(dtype=float),
            "p_threshold": p_value["threshold"].reindex(effect.index).to_numpy(dtype=float),
        }
    )
    significant = p_value["breached"].reindex(effect.index).fillna(False).astype(bool).to_numpy()
    table["drifted"] = significant & effect["breached"].fillna(False).astype(bool).to_numpy()
    return table.sort_values(["drifted", "effect"], ascending=False, kind="stable").reset_index(drop=True)


def distributions(drift: pd.DataFrame, payload: pd.DataFrame, reference: pd.DataFrame) -> list[dict]:
    """The window's distribution of the most drifted features (up to :data:`MAX_DISTRIBUTIONS`) against the
    training data's: shares per category, or per bin over the contract's range of a number."""
    found = []
    for feature in drift["feature"].head(MAX_DISTRIBUTIONS):
        if feature in NUMERIC_RANGES:
            low, high = NUMERIC_RANGES[feature]
            edges = np.linspace(low, high + 1, min(high - low + 1, 12) + 1).round()
            labels = [
                f"{a:.0f}" if b - a <= 1 else f"{a:.0f}-{b - 1:.0f}" for a, b in zip(edges[:-1], edges[1:], strict=True)
            ]
            counts = {
                name: np.histogram(np.clip(frame[feature], low, high), bins=edges)[0]
                for name, frame in (("window", payload), ("training", reference))
            }
        else:
            labels = sorted(set(reference[feature].astype(str)) | set(payload[feature].astype(str)))
            counts = {
                "window": payload[feature].astype(str).value_counts().reindex(labels, fill_value=0).to_numpy(),
                "training": reference[feature].astype(str).value_counts().reindex(labels, fill_value=0).to_numpy(),
            }
        shares = {name: (c / c.sum() if c.sum() else c.astype(float)).tolist() for name, c in counts.items()}
        found.append({"feature": feature, "bins": labels, **shares})
    return found
