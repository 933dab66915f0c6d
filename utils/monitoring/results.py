"""What the monitors produce: measurements, each monitor's result, and the evaluation of a window.

The bottom of :mod:`utils.monitoring` with :mod:`~utils.monitoring.thresholds` (whose :class:`Thresholds` it
re-exports), the only part it imports. A monitor names its measurements in
a :class:`Measurements` collector and hands back a :class:`MonitorResult` (its measurements, its details and, when
it gave no verdict, why); :class:`Evaluation` gathers the results of one window and derives the alerts, gates and
summary from the measurements alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from utils.choices import ALL_MONITORS as ALL_MONITORS
from utils.choices import MONITORS as MONITORS
from utils.choices import SERVICE_MONITORS as SERVICE_MONITORS
from utils.monitoring.thresholds import Thresholds as Thresholds

#: The metrics that raise alerts, and in which direction their threshold is crossed.
ALERT_METRICS: dict[tuple[str, str], str] = {
    ("quality", "auc_roc"): "below",
    ("fairness", "disparate_impact"): "below",
    ("drift", "drifted_share"): "above",
    ("drift", "classifier_drift_p_value"): "below",
    ("drift", "estimated_accuracy_drop"): "above",
    ("data_quality", "out_of_range_share"): "above",
    ("performance", "latency_p95_seconds"): "above",
    ("performance", "rejected_request_share"): "above",
}
GATES: tuple[str, ...] = ("quality_ok", "fairness_ok", "drift_detected")
MEASUREMENT_COLUMNS: tuple[str, ...] = (
    "monitor",
    "metric",
    "subject",
    "value",
    "threshold",
    "breached",
    "records",
    "alerting",
)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def crossed(monitor: str, metric: str, value: float, threshold: float) -> bool:
    """Whether ``value`` crosses the threshold of the alerting metric, in its direction (:data:`ALERT_METRICS`)."""
    return value < threshold if ALERT_METRICS[(monitor, metric)] == "below" else value > threshold


class Measurements:
    """Collects the measurements one monitor names, in order: one row per metric (and subject)."""

    def __init__(self, monitor: str):
        self.monitor = monitor
        self.rows: list[dict] = []

    def add(self, metric, value, *, records, subject=None, threshold=None, breached=None) -> None:
        """Add a measurement; ``breached`` is its verdict (None: no verdict, or a metric without a threshold)."""
        self.rows.append(
            {
                "monitor": self.monitor,
                "metric": metric,
                "subject": subject,
                "value": None if _missing(value) else float(value),
                "threshold": threshold,
                "breached": None if breached is None else bool(breached),
                "records": int(records),
                "alerting": (self.monitor, metric) in ALERT_METRICS,
            }
        )

    def verdict(self, metric, value, threshold, *, records, enough: bool, subject=None) -> None:
        """Add an alerting metric: breached when there are enough records and the value crosses the threshold."""
        breached = None if not enough or _missing(value) else crossed(self.monitor, metric, value, threshold)
        self.add(metric, value, records=records, subject=subject, threshold=threshold, breached=breached)


@dataclass(frozen=True)
class MonitorResult:
    """What one monitor found on one window.

    ``measurements`` are its rows (see :class:`Measurements`), ``details`` its richer results by name (tables for
    the report and the notebook), ``status`` why it gave no verdict (None when it gave one).
    """

    monitor: str
    measurements: tuple[dict, ...]
    details: dict = field(default_factory=dict)
    status: str | None = None

    @property
    def verdict(self) -> bool | None:
        """Whether any of its alerting metrics is breached; None when none of them has a verdict."""
        verdicts = [row["breached"] for row in self.measurements if row["alerting"] and row["breached"] is not None]
        return any(verdicts) if verdicts else None


def measurement_frame(results: list[MonitorResult]) -> pd.DataFrame:
    """The measurements of ``results``, in order, as one table (``breached`` a nullable boolean)."""
    rows = [row for result in results for row in result.measurements]
    frame = pd.DataFrame(rows, columns=list(MEASUREMENT_COLUMNS))
    frame["breached"] = frame["breached"].astype("boolean")
    return frame


def window_text(start, end) -> str:
    """A window as text: ``2026-01-05 .. 2026-01-06`` (dates when at midnight, else times; open ends as ...)."""

    def shown(moment) -> str:
        if moment is None or pd.isna(moment):
            return "..."
        stamp = pd.Timestamp(moment)
        return stamp.strftime("%Y-%m-%d") if stamp == stamp.normalize() else stamp.strftime("%Y-%m-%d %H:%M")

    return f"{shown(start)} .. {shown(end)}"


@dataclass(repr=False)
class Evaluation:
    """The result of evaluating the monitors of a deployment over one window.

    ``measurements`` has one row per stored measurement (monitor, metric, subject, value, threshold, breached,
    records); ``details`` the richer results per monitor (tables for the report and the notebook); ``statuses``
    a line per monitor that gave no verdict, saying why.
    """

    evaluation_id: str
    deployment_id: str
    deployment_name: str
    model_id: str
    window_start: datetime | None
    window_end: datetime | None
    evaluated_at: datetime
    payload_records: int
    feedback_records: int
    measurements: pd.DataFrame
    details: dict = field(default_factory=dict)
    statuses: dict = field(default_factory=dict)
    report_path: Path | None = None

    @property
    def window(self) -> str:
        """The window as text: ``2026-01-05 .. 2026-01-06`` (:func:`window_text`)."""
        return window_text(self.window_start, self.window_end)

    @property
    def alerts(self) -> pd.DataFrame:
        """The breached thresholds: monitor, metric, subject, value, threshold, window, records."""
        breached = self.measurements["breached"].fillna(False).astype(bool)
        found = self.measurements[self.measurements["alerting"] & breached]
        table = found[["monitor", "metric", "subject", "value", "threshold", "records"]].copy()
        table.insert(5, "window", self.window)
        return table.reset_index(drop=True)

    def _monitor_verdict(self, monitor: str) -> bool | None:
        rows = self.measurements[(self.measurements["monitor"] == monitor) & self.measurements["alerting"]]
        verdicts = rows["breached"].dropna()
        return None if verdicts.empty else bool(verdicts.any())

    @property
    def gates(self) -> dict[str, bool | None]:
        """``quality_ok``, ``fairness_ok`` (no alert) and ``drift_detected`` (an alert); None: no verdict."""
        quality, fair, drifted = (self._monitor_verdict(m) for m in ("quality", "fairness", "drift"))
        return {
            "quality_ok": None if quality is None else not quality,
            "fairness_ok": None if fair is None else not fair,
            "drift_detected": drifted,
        }

    def summary(self) -> pd.DataFrame:
        """One row per alerting metric: its value, threshold and status (ok, ALERT, or no verdict)."""
        rows = self.measurements[self.measurements["alerting"]].copy()
        rows["status"] = rows["breached"].map({True: "ALERT", False: "ok"}).fillna("no verdict")
        return rows[["monitor", "metric", "subject", "value", "threshold", "records", "status"]].reset_index(drop=True)

    def __repr__(self) -> str:  # no ids or clock times: a notebook's output stays the same from run to run
        alerts = ", ".join(alert_names(self)) or "none"
        return (
            f"Evaluation({self.deployment_name}, model {self.model_id}, window {self.window}, "
            f"{self.payload_records} payload / {self.feedback_records} feedback records, alerts: {alerts})"
        )


def alert_names(evaluation: Evaluation) -> list[str]:
    """The alerts of an evaluation as ``monitor.metric`` or ``monitor.metric[subject]``."""
    return [
        f"{row.monitor}.{row.metric}" + (f"[{row.subject}]" if isinstance(row.subject, str) else "")
        for row in evaluation.alerts.itertuples()
    ]


def overview(evaluations: list[Evaluation]) -> pd.DataFrame:
    """One row per evaluated window: records, gates and the alerts raised, for a quick look over days."""
    rows = [
        {
            "window": e.window,
            "payload": e.payload_records,
            "feedback": e.feedback_records,
            **e.gates,
            "alerts": ", ".join(alert_names(e)) or "-",
        }
        for e in evaluations
    ]
    return pd.DataFrame(rows).set_index("window")


def combined_gates(evaluations: list[Evaluation]) -> dict[str, bool | None]:
    """The gates over several windows: quality and fairness ok when no window alerted, drift detected when any did.

    Windows without a verdict do not count; a gate is None when no window gave one.
    """
    values = {name: [e.gates[name] for e in evaluations if e.gates[name] is not None] for name in GATES}
    return {
        "quality_ok": all(values["quality_ok"]) if values["quality_ok"] else None,
        "fairness_ok": all(values["fairness_ok"]) if values["fairness_ok"] else None,
        "drift_detected": any(values["drift_detected"]) if values["drift_detected"] else None,
    }
