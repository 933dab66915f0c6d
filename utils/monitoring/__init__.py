"""Model monitoring: quality, fairness and drift of a deployment over evaluation windows, with alerts.

It replaces the hosted monitoring service of the original workshop. A :class:`DeploymentMonitor` reads one
evaluation window (``start`` inclusive, ``end`` exclusive) of a deployment's payload and feedback records from the
data mart and runs three monitors on it:

- **quality** (:mod:`utils.monitoring.quality`), on labelled feedback scored by the deployed model: ROC AUC,
  accuracy, precision, recall, F1 and log loss (``Risk`` positive); alert when ROC AUC is under
  :attr:`Thresholds.min_auc_roc`;
- **fairness** (:mod:`utils.monitoring.fairness`, on :mod:`utils.fairness` and aif360) for each protected
  attribute: favourable rate per group, disparate impact and statistical parity difference of the logged
  decisions, equal opportunity and average odds differences on feedback, the perturbation check and the debiased
  companion; alert when disparate impact is under :attr:`Thresholds.min_disparate_impact` with significance (see
  :attr:`Thresholds.fairness_alpha`);
- **drift** (:mod:`utils.monitoring.drift`, on :mod:`utils.drift` and alibi-detect) against the reference
  (training) data: per-feature data drift, multivariate drift and the model-drift estimate; alert when any feature
  drifted, when the classifier tells the window from the reference, or when the estimated accuracy drop exceeds
  :attr:`Thresholds.max_accuracy_drop`.

Each monitor needs a minimum number of records before it gives a verdict; it returns a :class:`MonitorResult`
(its measurements, details, and why it gave no verdict). Every result is stored as a measurement in the data mart
(table ``measurements``); breached thresholds come back as alerts, and as the gates ``quality_ok``,
``fairness_ok`` and ``drift_detected``. Each evaluation can write a self-contained HTML report.

The package is a stack: :mod:`~utils.monitoring.results` (thresholds, measurements, evaluations) and
:mod:`~utils.monitoring.window` at the bottom, one module per monitor above them, :mod:`~utils.monitoring.monitor`
(:class:`DeploymentMonitor`) above those, and the command line (:mod:`~utils.monitoring.cli`) on top::

    python -m utils.monitoring --deployment-id ID [--start ISO] [--end ISO] [--work-dir DIR] [--reference CSV]
"""

from typing import TYPE_CHECKING

from utils.lazy import lazy_exports

#: Each public name and the module defining it, imported when the name is first used (see :mod:`utils.lazy`).
_EXPORTS = {
    "ALERT_METRICS": "utils.monitoring.results",
    "GATES": "utils.monitoring.results",
    "MONITORS": "utils.monitoring.results",
    "DeploymentMonitor": "utils.monitoring.monitor",
    "DriftMonitor": "utils.monitoring.drift",
    "Evaluation": "utils.monitoring.results",
    "FairnessMonitor": "utils.monitoring.fairness",
    "Measurements": "utils.monitoring.results",
    "MonitorResult": "utils.monitoring.results",
    "QualityMonitor": "utils.monitoring.quality",
    "Thresholds": "utils.monitoring.thresholds",
    "Window": "utils.monitoring.window",
    "combined_gates": "utils.monitoring.results",
    "evaluate_all": "utils.monitoring.evaluate",
    "main": "utils.monitoring.cli",
    "overview": "utils.monitoring.results",
    "read_window": "utils.datamart",
}
__all__ = [
    "ALERT_METRICS",
    "GATES",
    "MONITORS",
    "DeploymentMonitor",
    "DriftMonitor",
    "Evaluation",
    "FairnessMonitor",
    "Measurements",
    "MonitorResult",
    "QualityMonitor",
    "Thresholds",
    "Window",
    "combined_gates",
    "evaluate_all",
    "main",
    "overview",
    "read_window",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from utils.datamart import read_window
    from utils.monitoring.cli import main
    from utils.monitoring.drift import DriftMonitor
    from utils.monitoring.evaluate import evaluate_all
    from utils.monitoring.fairness import FairnessMonitor
    from utils.monitoring.monitor import DeploymentMonitor
    from utils.monitoring.quality import QualityMonitor
    from utils.monitoring.results import (
        ALERT_METRICS,
        GATES,
        MONITORS,
        Evaluation,
        Measurements,
        MonitorResult,
        combined_gates,
        overview,
    )
    from utils.monitoring.thresholds import Thresholds
    from utils.monitoring.window import Window
