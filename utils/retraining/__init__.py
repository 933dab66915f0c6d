"""Metric-based retraining: when a prod deployment's monitors alert, learn from the labelled records of the
alerting windows and send the result back through the pre-prod evaluation (docs/retraining.md).

Parts, in the order they import each other: ``training_set`` (the alerting windows, their labelled records, the new
training set and its sizes) → ``run`` (retrain with the parent's model type and parameters, register with lineage,
stage the candidate in preprod, evaluate it against the champion) → ``reference`` (the drift reference a retrained
version records, measured beside the other choices) → ``cli`` (``python -m utils.retraining``).
Nothing here deploys to prod.
"""

from typing import TYPE_CHECKING

from utils.lazy import lazy_exports

#: Each public name and the module defining it, imported when the name is first used (see :mod:`utils.lazy`).
_EXPORTS = {
    "RETRAINING_AUTHOR": "utils.retraining.run",
    "RETRAIN_ON": "utils.retraining.training_set",
    "Retraining": "utils.retraining.run",
    "RetrainingError": "utils.retraining.training_set",
    "TrainingSet": "utils.retraining.training_set",
    "alerting_windows": "utils.retraining.training_set",
    "auc_gain": "utils.retraining.run",
    "build_training_set": "utils.retraining.training_set",
    "drift_by_reference": "utils.retraining.reference",
    "evaluate_candidate": "utils.retraining.run",
    "labelled_records": "utils.retraining.training_set",
    "reference_options": "utils.retraining.reference",
    "retrain": "utils.retraining.run",
    "stage_candidate": "utils.retraining.run",
}
__all__ = [
    "RETRAINING_AUTHOR",
    "RETRAIN_ON",
    "Retraining",
    "RetrainingError",
    "TrainingSet",
    "alerting_windows",
    "auc_gain",
    "build_training_set",
    "drift_by_reference",
    "evaluate_candidate",
    "labelled_records",
    "reference_options",
    "retrain",
    "stage_candidate",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from utils.retraining.reference import drift_by_reference, reference_options
    from utils.retraining.run import (
        RETRAINING_AUTHOR,
        Retraining,
        auc_gain,
        evaluate_candidate,
        retrain,
        stage_candidate,
    )
    from utils.retraining.training_set import (
        RETRAIN_ON,
        RetrainingError,
        TrainingSet,
        alerting_windows,
        build_training_set,
        labelled_records,
    )
