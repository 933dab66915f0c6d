"""Which data a retrained version's drift monitor should compare traffic with, measured rather than assumed.

A retrained version records as its drift reference the labelled production records of the alerting windows, each
distinct record once (:attr:`TrainingSet.reference`): the population it was retrained and evaluated for.
:func:`reference_options` builds that reference beside the two others one could choose, and
:func:`drift_by_reference` runs the drift monitor on the same window against each, so that a notebook shows the
choice with its sizes and effects."""

from __future__ import annotations

import os

import pandas as pd
from sqlalchemy.engine import Engine

from utils.monitoring import DeploymentMonitor
from utils.monitoring.window import no_records
from utils.retraining.training_set import TrainingSet

#: The reference a retrained version records, by the name :func:`reference_options` gives it.
CHOSEN = "production records of the alerting windows"


def reference_options(training_set: TrainingSet, *, seed: int) -> dict[str, pd.DataFrame]:
    """The candidate drift references of a retrained version: its whole training set (mostly the original,
    pre-drift rows), its production records beside an equal-size seeded sample of the original training data, and
    the production records alone (:data:`CHOSEN`); the production records each distinct record once."""
    production = training_set.reference
    original = training_set.train.iloc[: training_set.original_rows]
    sample = original.sample(n=min(len(production), len(original)), random_state=seed)
    return {
        "new training set": training_set.train,
        "production records + equal sample of the original": pd.concat([production, sample], ignore_index=True),
        CHOSEN: production,
    }


def drift_by_reference(
    deployment_id: str,
    payload: pd.DataFrame,
    references: dict[str, pd.DataFrame],
    *,
    seed: int = 0,
    engine: Engine | None = None,
    work: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """The drift monitor of ``deployment_id`` (its model and stored thresholds) on the window ``payload`` against
    each of ``references``: its rows, the alerting metrics, the largest per-feature effect and whether it alerts."""
    rows = []
    for name, reference in references.items():
        monitor = DeploymentMonitor(deployment_id, reference=reference, engine=engine, work=work, seed=seed)
        (result,) = monitor.run(payload, no_records(feedback=True), monitors=("drift",))
        measured = pd.DataFrame(result.measurements)
        overall = measured[measured["subject"].isna()].set_index("metric")["value"]
        effects = measured[measured["metric"] == "effect"]
        rows.append(
            {
                "reference": name,
                "rows": len(reference),
                "drifted_share": overall["drifted_share"],
                "largest_effect": effects["value"].max(),
                "largest_effect_feature": effects.loc[effects["value"].idxmax(), "subject"],
                "classifier_drift_p_value": overall["classifier_drift_p_value"],
                "classifier_drift_distance": overall["classifier_drift_distance"],
                "estimated_accuracy_drop": overall["estimated_accuracy_drop"],
                "alert": bool(result.verdict),
            }
        )
    return pd.DataFrame(rows).set_index("reference")
