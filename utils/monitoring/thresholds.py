"""The monitors' thresholds and minimum record counts (:class:`Thresholds`), apart from the results so that the
command line builds one option per field without importing pandas, and the stored configuration of a deployment's
monitors (:func:`stored_configuration`)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from utils import datamart
from utils.choices import FOUR_FIFTHS_RULE

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

#: The protected attributes monitored when a deployment's configuration names none.
DEFAULT_ATTRIBUTES: tuple[str, ...] = ("Sex", "Age")


@dataclass(frozen=True)
class Thresholds:
    """Thresholds and minimum record counts of the monitors (docs/monitoring.md explains each default)."""

    #: Alert when ROC AUC on feedback is below this (the original workshop's 0.80).
    min_auc_roc: float = 0.80
    #: Feedback records a window needs before quality (and feedback-based fairness) gets a verdict.
    min_feedback: int = 100
    #: Alert when disparate impact is below this (the four-fifths rule).
    min_disparate_impact: float = FOUR_FIFTHS_RULE
    #: Alert only when the window gives evidence at this level that disparate impact is below the threshold
    #: (one-sided test); None alerts on the point estimate alone, as the original service did.
    fairness_alpha: float | None = 0.05
    #: Payload records a window needs before fairness and drift get a verdict.
    min_records: int = 100
    #: Records each group of a protected attribute needs before its disparate impact gets a verdict.
    min_group_records: int = 20
    #: Family-wise error rate of the per-feature drift tests (Bonferroni over the 20 features).
    drift_p_value: float = 0.01
    #: Alert when the share of drifted features is above this (0: any drifted feature).
    max_drifted_share: float = 0.0
    #: Alert when the classifier drift test's p-value is below this.
    multivariate_p_value: float = 0.01
    #: Alert when the estimated accuracy drop (without labels) is above this.
    max_accuracy_drop: float = 0.10
    #: Alert when the share of scored records with a value outside the training data's ranges is above this.
    max_out_of_range_share: float = 0.05
    #: Requests a window needs before the performance monitor gets a verdict.
    min_requests: int = 20
    #: Alert when the 95th percentile of the accepted requests' latency is above this, in seconds.
    max_latency_p95_seconds: float = 1.0
    #: Alert when the share of rejected requests is above this.
    max_rejected_request_share: float = 0.10


def thresholds_of(document: dict) -> Thresholds:
    """The :class:`Thresholds` of a monitor configuration document (a field it leaves out at its default)."""
    known = {f.name for f in fields(Thresholds)}  # a document stored before a field was added or removed reads
    return Thresholds(**{k: v for k, v in document.get("thresholds", {}).items() if k in known})


def stored_configuration(engine: Engine, deployment_id: str) -> tuple[Thresholds, tuple[str, ...], dict]:
    """The thresholds and protected attributes of a deployment's stored monitor configuration, and the document
    itself (``{}`` when none is stored; a field it leaves out is at its default)."""
    row = datamart.read_monitor_config(engine, deployment_id)
    document = (row or {}).get("config", {})
    return thresholds_of(document), tuple(document.get("protected_groups", DEFAULT_ATTRIBUTES)), document
