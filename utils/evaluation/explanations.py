"""Explanations of a sample of the candidate's logged decisions, for the model-risk report."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Contributions listed per explained decision.
TOP_CONTRIBUTIONS = 3


def explain_sample(monitor, transaction_ids: Sequence[str], count: int, *, seed: int = 0) -> list[dict]:
    """shap contributions and the smallest change that flips the decision, for ``count`` transactions drawn
    (seeded) from ``transaction_ids``, by ``monitor`` (a :class:`utils.monitoring.DeploymentMonitor`)."""
    if count <= 0 or not transaction_ids:
        return []
    chosen = np.random.default_rng(seed).choice(len(transaction_ids), min(count, len(transaction_ids)), replace=False)
    return [_explained(monitor, transaction_ids[i]) for i in sorted(chosen)]


def _explained(monitor, transaction_id: str) -> dict:
    explanation, counterfactual = monitor.explain(transaction_id)
    top = explanation.contributions.head(TOP_CONTRIBUTIONS)
    return {
        "transaction_id": transaction_id,
        "prediction": explanation.prediction,
        "probability_risk": float(explanation.probability_risk),
        "explainer": explanation.explainer,
        "top_contributions": [
            {"feature": feature, "value": str(row["value"]), "contribution": float(row["contribution"])}
            for feature, row in top.iterrows()
        ],
        "flip": {
            "found": bool(counterfactual.found),
            "decision_after": counterfactual.decision_after,
            "probability_risk_after": float(counterfactual.probability_risk_after),
            "changes": [
                {"feature": str(feature), "before": str(row["before"]), "after": str(row["after"])}
                for feature, row in counterfactual.changes.iterrows()
            ],
        },
    }
