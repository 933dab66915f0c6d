"""Model monitoring: quality, fairness and drift of a deployment over evaluation windows, with alerts.

It replaces the hosted monitoring service of the original workshop. A :class:`DeploymentMonitor` reads one
evaluation window (``start`` inclusive, ``end`` exclusive) of a deployment's payload and feedback records from the
data mart and runs three monitors on it:

- **quality**, on labelled feedback scored by the deployed model: ROC AUC, accuracy, precision, recall, F1 and log
  loss (``Risk`` positive); alert when ROC AUC is under :attr:`Thresholds.min_auc_roc`;
- **fairness** (:mod:`utils.fairness`, aif360) for each protected attribute: favourable rate per group, disparate
  impact and statistical parity difference of the logged decisions, equal opportunity and average odds
  differences on feedback, the perturbation check and the debiased companion; alert when disparate impact is
  under :attr:`Thresholds.min_disparate_impact` with significance (see :attr:`Thresholds.fairness_alpha`);
- **drift** (:mod:`utils.drift`, alibi-detect) against the reference (training) data: per-feature data drift,
  multivariate drift and the model-drift estimate; alert when any feature drifted, when the classifier tells the
  window from the reference, or when the estimated accuracy drop exceeds :attr:`Thresholds.max_accuracy_drop`.

Each monitor needs a minimum number of records before it gives a verdict. Every result is stored as a
measurement in the data mart (table ``measurements``); breached thresholds come back as alerts, and as the gates
``quality_ok``, ``fairness_ok`` and ``drift_detected``. Each evaluation can write a self-contained HTML report.

Command line, for scheduled runs::

    python -m utils.monitoring --deployment-id ID [--start ISO] [--end ISO] [--work-dir DIR] [--reference CSV]
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import math
import os
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from threadpoolctl import threadpool_limits

from utils import config, datamart, drift, fairness
from utils.data import CATEGORIES, CLASS_ORDER, FEATURES, LABEL, UNFAVOURABLE, load_credit_csv
from utils.deployment import get_deployment, registry_for
from utils.training import classification_metrics

MONITORS: tuple[str, ...] = ("quality", "fairness", "drift")
#: The metrics that raise alerts, and in which direction their threshold is crossed.
ALERT_METRICS: dict[tuple[str, str], str] = {
    ("quality", "auc_roc"): "below",
    ("fairness", "disparate_impact"): "below",
    ("drift", "drifted_share"): "above",
    ("drift", "classifier_drift_p_value"): "below",
    ("drift", "estimated_accuracy_drop"): "above",
}
_CHUNK_ROWS = 200_000
_GATES = ("quality_ok", "fairness_ok", "drift_detected")


@dataclass(frozen=True)
class Thresholds:
    """Thresholds and minimum record counts of the monitors (docs/monitoring.md explains each default)."""

    #: Alert when ROC AUC on feedback is below this (the original workshop's 0.80).
    min_auc_roc: float = 0.80
    #: Feedback records a window needs before quality (and feedback-based fairness) gets a verdict.
    min_feedback: int = 100
    #: Alert when disparate impact is below this (the four-fifths rule).
    min_disparate_impact: float = 0.80
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


def _utc(moment: str | datetime | pd.Timestamp | None) -> datetime | None:
    """A moment as a timezone-aware UTC datetime (text in ISO 8601; naive means UTC)."""
    if moment is None:
        return None
    stamp = pd.Timestamp(moment)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).to_pydatetime()


# ---------------------------------------------------------------- reading windows


def _window_query(table: sa.Table, time_column: str, columns: list, deployment_id: str, start, end) -> sa.Select:
    # In time order: the (deployment, time) index gives it without sorting (its entries end with the record id).
    query = sa.select(*columns).where(table.c.deployment_id == deployment_id)
    query = query.order_by(table.c[time_column], table.c.record_id)
    if start is not None:
        query = query.where(table.c[time_column] >= _utc(start))
    if end is not None:
        query = query.where(table.c[time_column] < _utc(end))
    return query


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    for name in FEATURES:
        if name in CATEGORIES:
            frame[name] = pd.Categorical(frame[name], categories=list(CATEGORIES[name]))
    return frame


def _parse_arrays(texts: tuple[str, ...]) -> pd.DataFrame | None:
    """Rows given as JSON arrays of the 20 values in contract order, parsed by pandas' C reader (None: fall back)."""
    data = "\n".join(texts).encode()
    if b"\\" in data or b"null" in data:
        return None
    dtypes = {n: pd.CategoricalDtype(list(CATEGORIES[n])) if n in CATEGORIES else "int64" for n in FEATURES}
    try:
        return pd.read_csv(io.BytesIO(data.translate(None, b'[]"')), header=None, names=list(FEATURES), dtype=dtypes)
    except (ValueError, pd.errors.ParserError):
        return None


def _chunks(connection, query: sa.Select, raw: bool):
    """The rows of ``query`` in chunks: the driver's own tuples when ``raw`` (no column needs converting), else
    SQLAlchemy's rows."""
    if raw:
        result = connection.execute(query)
        try:
            while chunk := result.cursor.fetchmany(_CHUNK_ROWS):
                yield chunk
        finally:
            result.close()
    else:
        yield from connection.execution_options(yield_per=_CHUNK_ROWS).execute(query).partitions()


def _empty(names: list[str]) -> pd.DataFrame:
    empty = _typed(pd.DataFrame({name: pd.Series(dtype=object) for name in FEATURES}))
    for name in names:
        empty[name] = pd.Series(dtype=float) if name == "probability_risk" else pd.Categorical([], list(CLASS_ORDER))
    return empty


def read_window(engine: Engine, deployment_id: str, start=None, end=None, *, feedback: bool = False) -> pd.DataFrame:
    """The payload (or ``feedback``) records of a window, fast: one column per feature (categories as pandas
    categoricals), then ``prediction`` and ``probability_risk`` (payload) or ``Risk`` (feedback).

    On SQLite the 20 values of each record are extracted by the database into one JSON array and parsed by
    pandas' CSV reader, which reads a million records in seconds; other databases and unusual values take the
    plain JSON path. Records are read in chunks to bound memory, in the order of their time.
    """
    table = datamart.feedback_records if feedback else datamart.payload_records
    tail = ["label"] if feedback else ["prediction", "probability_risk"]
    names = [LABEL] if feedback else ["prediction", "probability_risk"]
    fast = engine.dialect.name == "sqlite"
    if fast:
        inputs = sa.func.json_extract(table.c.inputs, *[f"$.{name}" for name in FEATURES]).label("values")
    else:
        inputs = table.c.inputs
    time_column = "recorded_at" if feedback else "scored_at"
    query = _window_query(table, time_column, [inputs, *[table.c[c] for c in tail]], deployment_id, start, end)
    parts = []
    with engine.connect() as connection:
        for chunk in _chunks(connection, query, raw=fast):
            values, *rest = zip(*chunk, strict=True)
            part = _parse_arrays(values) if fast else None
            if part is None:
                records = [json.loads(v) if isinstance(v, str) else v for v in values]
                if fast:
                    records = [dict(zip(FEATURES, v, strict=True)) for v in records]
                part = _typed(pd.DataFrame.from_records(records, columns=list(FEATURES)))
            for name, column in zip(names, rest, strict=True):
                part[name] = np.asarray(column, dtype=float) if name == "probability_risk" else column
            parts.append(part)
    if not parts:
        return _empty(names)
    frame = pd.concat(parts, ignore_index=True)
    for name in (LABEL, "prediction"):
        if name in frame:
            frame[name] = pd.Categorical(frame[name], categories=list(CLASS_ORDER))
    return frame


# ---------------------------------------------------------------- results


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
        """The window as text: ``2026-01-05 .. 2026-01-06`` (dates when at midnight, else times; open ends as ...)."""

        def shown(moment: datetime | None) -> str:
            if moment is None:
                return "..."
            stamp = pd.Timestamp(moment)
            return stamp.strftime("%Y-%m-%d") if stamp == stamp.normalize() else stamp.strftime("%Y-%m-%d %H:%M")

        return f"{shown(self.window_start)} .. {shown(self.window_end)}"

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
        quality, fair, drifted = (self._monitor_verdict(m) for m in MONITORS)
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
        alerts = ", ".join(_alert_names(self)) or "none"
        return (
            f"Evaluation({self.deployment_name}, model {self.model_id}, window {self.window}, "
            f"{self.payload_records} payload / {self.feedback_records} feedback records, alerts: {alerts})"
        )


def _alert_names(evaluation: Evaluation) -> list[str]:
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
            "alerts": ", ".join(_alert_names(e)) or "-",
        }
        for e in evaluations
    ]
    return pd.DataFrame(rows).set_index("window")


def combined_gates(evaluations: list[Evaluation]) -> dict[str, bool | None]:
    """The gates over several windows: quality and fairness ok when no window alerted, drift detected when any did.

    Windows without a verdict do not count; a gate is None when no window gave one.
    """
    values = {name: [e.gates[name] for e in evaluations if e.gates[name] is not None] for name in _GATES}
    return {
        "quality_ok": all(values["quality_ok"]) if values["quality_ok"] else None,
        "fairness_ok": all(values["fairness_ok"]) if values["fairness_ok"] else None,
        "drift_detected": any(values["drift_detected"]) if values["drift_detected"] else None,
    }


class _Measurements:
    """Collects the measurements of one evaluation."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, monitor, metric, value, *, records, subject=None, threshold=None, breached=None) -> None:
        value = None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
        self.rows.append(
            {
                "monitor": monitor,
                "metric": metric,
                "subject": subject,
                "value": value,
                "threshold": threshold,
                "breached": None if breached is None else bool(breached),
                "records": int(records),
                "alerting": (monitor, metric) in ALERT_METRICS,
            }
        )

    def verdict(self, monitor, metric, value, threshold, *, records, enough: bool, subject=None) -> None:
        """Add an alerting metric: breached when there are enough records and the value crosses the threshold."""
        breached = None
        if enough and value is not None and not (isinstance(value, float) and math.isnan(value)):
            breached = value < threshold if ALERT_METRICS[(monitor, metric)] == "below" else value > threshold
        self.add(monitor, metric, value, records=records, subject=subject, threshold=threshold, breached=breached)

    def frame(self) -> pd.DataFrame:
        columns = ["monitor", "metric", "subject", "value", "threshold", "breached", "records", "alerting"]
        frame = pd.DataFrame(self.rows, columns=columns)
        frame["breached"] = frame["breached"].astype("boolean")
        return frame


# ---------------------------------------------------------------- the monitor


class DeploymentMonitor:
    """The monitors of one deployment, set up once (model, reference data, detectors) and run on any window.

    Args:
        deployment_id: the deployment to watch; its current model is the one monitored.
        reference: the training data (features and label), as a DataFrame or a CSV path; by default
            ``<work dir>/data/train.csv``, written by notebook 01.
        thresholds: thresholds and minimums (defaults: :class:`Thresholds`).
        attributes: the protected attributes to monitor.
        sample_size: most records used by the per-record checks (perturbation, debiased companion, model drift)
            per window, a seeded sample; fairness metrics and data drift always use every record.
        seed: seed of every sample and detector, so that the same data give the same results.
    """

    def __init__(
        self,
        deployment_id: str,
        *,
        reference: pd.DataFrame | str | os.PathLike | None = None,
        thresholds: Thresholds | None = None,
        attributes: tuple[str, ...] = ("Sex", "Age"),
        engine: Engine | None = None,
        work: str | os.PathLike | None = None,
        sample_size: int = 50_000,
        seed: int = 0,
    ):
        self.work = config.work_dir(work)
        self.engine = engine or datamart.connect(work=self.work)
        self.deployment = get_deployment(deployment_id, engine=self.engine)
        self.registry = registry_for(self.work)
        self.model = self.registry.load(self.deployment.model_id)
        if reference is None:
            reference = self.work / "data" / "train.csv"
        self.reference = reference if isinstance(reference, pd.DataFrame) else load_credit_csv(reference)
        self.thresholds = thresholds or Thresholds()
        self.attributes = tuple(attributes)
        self.sample_size = sample_size
        self.seed = seed

    @functools.cached_property
    def data_drift(self) -> drift.DataDriftDetector:
        return drift.DataDriftDetector(self.reference, p_value=self.thresholds.drift_p_value)

    @functools.cached_property
    def multivariate_drift(self) -> drift.MultivariateDriftDetector:
        return drift.MultivariateDriftDetector(
            self.reference, p_value=self.thresholds.multivariate_p_value, seed=self.seed
        )

    @functools.cached_property
    def model_drift(self) -> drift.ModelDriftEstimator:
        return drift.ModelDriftEstimator(self.model, self.reference, max_records=self.sample_size, seed=self.seed)

    def _sample(self, frame: pd.DataFrame) -> pd.DataFrame:
        if len(frame) <= self.sample_size:
            return frame
        rows = np.sort(np.random.default_rng(self.seed).choice(len(frame), self.sample_size, replace=False))
        return frame.iloc[rows].reset_index(drop=True)

    # -- the three monitors

    def _quality(self, feedback: pd.DataFrame, scored: pd.DataFrame, out: _Measurements, details: dict) -> None:
        t, n = self.thresholds, len(feedback)
        metrics = {}
        labels = feedback[LABEL].astype(str).to_numpy()
        if n and len(set(labels)) == 2:
            metrics = classification_metrics(labels, scored["prediction"], scored["probability_risk"])
        out.verdict("quality", "auc_roc", metrics.get("auc_roc"), t.min_auc_roc, records=n, enough=n >= t.min_feedback)
        for name in ("accuracy", "precision", "recall", "f1", "log_loss"):
            out.add("quality", name, metrics.get(name), records=n)
        details["quality"] = metrics
        if n < t.min_feedback:
            details.setdefault("statuses", {})["quality"] = f"{n} feedback records, {t.min_feedback} needed"

    def _fairness(
        self, payload: pd.DataFrame, feedback: pd.DataFrame, out: _Measurements, details: dict, debias: bool
    ) -> None:
        t, n, n_feedback = self.thresholds, len(payload), len(feedback)
        rows, perturbed, companions = [], [], {}
        sample = self._sample(payload)
        for attribute in self.attributes:
            found = fairness.fairness_metrics(payload, attribute)
            labelled = fairness.fairness_metrics(feedback, attribute, label=LABEL)
            di = found.get("disparate_impact", np.nan)
            low, high, p_value = fairness.disparate_impact_test(
                found.get("favourable_monitored", 0),
                found.get("records_monitored", 0),
                found.get("favourable_reference", 0),
                found.get("records_reference", 0),
                t.min_disparate_impact,
            )
            enough = (
                n >= t.min_records
                and min(found.get("records_monitored", 0), found.get("records_reference", 0)) >= t.min_group_records
            )
            significant = t.fairness_alpha is None or (not math.isnan(p_value) and p_value < t.fairness_alpha)
            breached = None
            if enough and not math.isnan(di):
                breached = bool(di < t.min_disparate_impact and significant)
            out.add(
                "fairness",
                "disparate_impact",
                di,
                records=n,
                subject=attribute,
                threshold=t.min_disparate_impact,
                breached=breached,
            )
            out.add("fairness", "disparate_impact_low", low, records=n, subject=attribute)
            out.add("fairness", "disparate_impact_high", high, records=n, subject=attribute)
            out.add("fairness", "disparate_impact_p_value", p_value, records=n, subject=attribute)
            out.add(
                "fairness",
                "statistical_parity_difference",
                found.get("statistical_parity_difference"),
                records=n,
                subject=attribute,
            )
            monitored, reference = fairness.group_names(attribute)
            for group, key in ((monitored, "monitored"), (reference, "reference")):
                out.add(
                    "fairness",
                    "favourable_rate",
                    found.get(f"favourable_rate_{key}"),
                    records=n,
                    subject=f"{attribute}={group}",
                )
            for name in ("equal_opportunity_difference", "average_odds_difference"):
                out.add("fairness", name, labelled.get(name), records=n_feedback, subject=attribute)
            rows.append(
                {
                    **found,
                    "disparate_impact_low": low,
                    "disparate_impact_high": high,
                    "p_value": p_value,
                    "equal_opportunity_difference": labelled.get("equal_opportunity_difference", np.nan),
                    "average_odds_difference": labelled.get("average_odds_difference", np.nan),
                    "verdict": {True: "ALERT", False: "ok", None: "no verdict"}[breached],
                }
            )
            if len(sample):
                check = fairness.perturbation_check(self.model, sample, attribute, seed=self.seed)
                perturbed.append(check)
                out.add(
                    "fairness",
                    "perturbation_changed_share",
                    check["changed_share"],
                    records=check["records"],
                    subject=attribute,
                )
            if debias and n_feedback >= t.min_feedback and n:
                labelled_sample = feedback.iloc[: min(n_feedback, 5000)]
                companion = fairness.debiased_companion(self.model, labelled_sample, sample, attribute)
                companions[attribute] = companion
                table = companion.comparison
                out.add(
                    "fairness",
                    "debiased_disparate_impact",
                    table.loc["debiased", "disparate_impact"],
                    records=n,
                    subject=attribute,
                )
                out.add(
                    "fairness",
                    "debiased_accuracy",
                    table.loc["debiased", "accuracy"],
                    records=len(labelled_sample),
                    subject=attribute,
                )
        details["fairness"] = pd.DataFrame(rows).set_index("attribute") if rows else pd.DataFrame()
        details["perturbation"] = pd.DataFrame(perturbed).set_index("attribute") if perturbed else pd.DataFrame()
        details["companions"] = companions
        if n < t.min_records:
            details.setdefault("statuses", {})["fairness"] = f"{n} payload records, {t.min_records} needed"

    def _drift(self, payload: pd.DataFrame, out: _Measurements, details: dict, measured_accuracy) -> None:
        t, n = self.thresholds, len(payload)
        enough = n >= t.min_records
        if n:
            data = self.data_drift.check(payload)
            for feature, row in data.features.iterrows():
                out.add(
                    "drift",
                    "p_value",
                    row["p_value"],
                    records=n,
                    subject=feature,
                    threshold=data.threshold,
                    breached=bool(row["drifted"]) if enough else None,
                )
                out.add("drift", "effect", row["effect"], records=n, subject=feature)
            out.verdict("drift", "drifted_share", data.drifted_share, t.max_drifted_share, records=n, enough=enough)
            details["data_drift"] = data
            joint = self.multivariate_drift.check(payload)
            out.verdict(
                "drift",
                "classifier_drift_p_value",
                joint.p_value,
                t.multivariate_p_value,
                records=joint.records,
                enough=enough,
            )
            out.add("drift", "classifier_drift_distance", joint.distance, records=joint.records)
            details["multivariate_drift"] = joint
            estimate = self.model_drift.estimate(payload)
            out.add("drift", "estimated_accuracy", estimate.estimated_accuracy, records=n)
            out.verdict(
                "drift",
                "estimated_accuracy_drop",
                estimate.estimated_drop,
                t.max_accuracy_drop,
                records=n,
                enough=enough,
            )
            details["model_drift"] = pd.DataFrame(
                {
                    "accuracy": {
                        "reference (measured)": estimate.reference_accuracy,
                        "reference (estimated)": estimate.reference_estimate,
                        "window (estimated, no labels)": estimate.estimated_accuracy,
                        "window (measured on feedback)": measured_accuracy,
                    }
                }
            )
        else:
            out.verdict("drift", "drifted_share", None, t.max_drifted_share, records=0, enough=False)
            out.verdict("drift", "classifier_drift_p_value", None, t.multivariate_p_value, records=0, enough=False)
            out.verdict("drift", "estimated_accuracy_drop", None, t.max_accuracy_drop, records=0, enough=False)
        if not enough:
            details.setdefault("statuses", {})["drift"] = f"{n} payload records, {t.min_records} needed"

    # -- evaluation

    def evaluate(
        self,
        start: str | datetime | None = None,
        end: str | datetime | None = None,
        *,
        monitors: tuple[str, ...] = MONITORS,
        debias: bool = True,
        store: bool = True,
        report: bool | str | os.PathLike = True,
        payload: pd.DataFrame | None = None,
        feedback: pd.DataFrame | None = None,
    ) -> Evaluation:
        """Run ``monitors`` on the window [``start``, ``end``) (None: open), store the measurements (``store``) and
        write the HTML report (``report``: True for ``<work dir>/reports/<default name>``, or a path).

        ``payload`` and ``feedback`` are the window's records as :func:`read_window` returns them, when they have
        been read already; by default the monitors that need them read them.
        """
        unknown = sorted(set(monitors) - set(MONITORS))
        if unknown:
            raise ValueError(f"unknown monitor(s) {unknown}; choose from {list(MONITORS)}")
        start, end = _utc(start), _utc(end)
        deployment_id = self.deployment.deployment_id
        if payload is None:
            payload = _empty(["prediction", "probability_risk"])
            if {"fairness", "drift"} & set(monitors):
                payload = read_window(self.engine, deployment_id, start, end)
        if feedback is None:
            feedback = _empty([LABEL])
            if {"quality", "fairness"} & set(monitors):
                feedback = read_window(self.engine, deployment_id, start, end, feedback=True)
        out, details = _Measurements(), {}
        with threadpool_limits(limits=1):
            scored = pd.DataFrame({"prediction": [], "probability_risk": []})
            if len(feedback):
                proba = self.model.predict_proba(feedback[list(FEATURES)])
                risk = proba[:, list(self.model.classes_).index(UNFAVOURABLE)]
                scored = pd.DataFrame(
                    {"prediction": np.where(risk > 0.5, UNFAVOURABLE, CLASS_ORDER[0]), "probability_risk": risk}
                )
            if "quality" in monitors:
                self._quality(feedback, scored, out, details)
            if "fairness" in monitors:
                judged = feedback.assign(prediction=scored["prediction"].to_numpy())
                self._fairness(payload, judged, out, details, debias)
            if "drift" in monitors:
                self._drift(payload, out, details, details.get("quality", {}).get("accuracy", np.nan))
        evaluation = Evaluation(
            evaluation_id=str(uuid.uuid4()),
            deployment_id=self.deployment.deployment_id,
            deployment_name=f"{self.deployment.name} ({self.deployment.space})",
            model_id=self.deployment.model_id,
            window_start=start,
            window_end=end,
            evaluated_at=datamart.utc_now(),
            payload_records=len(payload),
            feedback_records=len(feedback),
            measurements=out.frame(),
            details=details,
            statuses=details.pop("statuses", {}),
        )
        if store:
            self.store(evaluation)
        if report:
            from utils.report import write_report

            path = self.report_path(evaluation) if report is True else Path(report)
            history = self.history(end=end) if store else None
            evaluation.report_path = write_report(evaluation, path, history=history)
        return evaluation

    def evaluate_days(self, first_day: str | datetime, days: int, **options) -> list[Evaluation]:
        """Evaluate one window per day, ``days`` days from ``first_day`` (midnight UTC), oldest first."""
        first = pd.Timestamp(_utc(first_day)).normalize().to_pydatetime()
        return [self.evaluate(first + timedelta(days=i), first + timedelta(days=i + 1), **options) for i in range(days)]

    def store(self, evaluation: Evaluation) -> int:
        """Write the evaluation's measurements to the data mart; returns how many."""
        common = {
            "evaluation_id": evaluation.evaluation_id,
            "deployment_id": evaluation.deployment_id,
            "window_start": evaluation.window_start,
            "window_end": evaluation.window_end,
            "evaluated_at": evaluation.evaluated_at,
        }
        rows = evaluation.measurements.drop(columns="alerting").to_dict("records")
        return datamart.insert_measurements(
            self.engine,
            [
                {**common, **row, "breached": None if pd.isna(row["breached"]) else bool(row["breached"])}
                for row in rows
            ],
        )

    def history(self, start=None, end=None) -> pd.DataFrame:
        """The stored measurements of this deployment whose window starts in [start, end), oldest first."""
        return datamart.read_measurements(self.engine, self.deployment.deployment_id, start=start, end=end)

    def report_path(self, evaluation: Evaluation) -> Path:
        """``<work dir>/reports/monitoring-<name>-<space>-<start>-<end>.html`` (dates or times of the window)."""

        def part(moment: datetime | None) -> str:
            if moment is None:
                return "open"
            stamp = pd.Timestamp(moment)
            return stamp.strftime("%Y%m%d") if stamp == stamp.normalize() else stamp.strftime("%Y%m%dT%H%M")

        name = f"monitoring-{self.deployment.name}-{self.deployment.space}"
        return self.work / "reports" / f"{name}-{part(evaluation.window_start)}-{part(evaluation.window_end)}.html"

    def explain(self, transaction_id: str, *, seed: int | None = None):
        """shap contributions and counterfactual of a logged transaction (:func:`utils.explain.explain_transaction`)."""
        from utils.explain import explain_transaction

        return explain_transaction(
            transaction_id,
            self.reference,
            engine=self.engine,
            registry=self.registry,
            seed=self.seed if seed is None else seed,
        )


def evaluate_all(
    deployment_id: str,
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    *,
    work: str | os.PathLike | None = None,
    engine: Engine | None = None,
    reference: pd.DataFrame | str | os.PathLike | None = None,
    thresholds: Thresholds | None = None,
    store: bool = True,
    report: bool | str | os.PathLike = True,
) -> Evaluation:
    """Evaluate every monitor of a deployment over the window [``start``, ``end``): the one-call entry point."""
    monitor = DeploymentMonitor(deployment_id, reference=reference, thresholds=thresholds, engine=engine, work=work)
    return monitor.evaluate(start, end, store=store, report=report)


def main(argv: list[str] | None = None) -> int:
    """Command line: evaluate all monitors of a deployment over a window, print the alerts, write the report."""
    parser = argparse.ArgumentParser(description="Evaluate the quality, fairness and drift monitors of a deployment.")
    parser.add_argument("--deployment-id", required=True)
    parser.add_argument("--start", help="window start, ISO 8601, UTC unless a zone is given (inclusive; default: open)")
    parser.add_argument("--end", help="window end, ISO 8601 (exclusive; default: open)")
    parser.add_argument("--work-dir", help="working directory (default: $CREDIT_WORKDIR, else <project>/work)")
    parser.add_argument("--reference", help="training data CSV (default: <work dir>/data/train.csv)")
    parser.add_argument("--no-store", action="store_true", help="do not store the measurements")
    parser.add_argument("--fail-on-alert", action="store_true", help="exit with status 1 when there is an alert")
    args = parser.parse_args(argv)
    try:
        evaluation = evaluate_all(
            args.deployment_id,
            args.start,
            args.end,
            work=args.work_dir,
            reference=args.reference,
            store=not args.no_store,
        )
    except Exception as error:  # a missing deployment, reference or model: say what, not a traceback
        print(f"monitoring failed: {error}", file=sys.stderr)
        return 2
    print(
        f"deployment {evaluation.deployment_name}, model {evaluation.model_id}, window {evaluation.window}: "
        f"{evaluation.payload_records} payload and {evaluation.feedback_records} feedback records"
    )
    for monitor, status in evaluation.statuses.items():
        print(f"  {monitor}: no verdict ({status})")
    alerts = evaluation.alerts
    if alerts.empty:
        print("no alerts")
    for alert in alerts.itertuples():
        subject = f" [{alert.subject}]" if isinstance(alert.subject, str) else ""
        print(f"ALERT {alert.monitor}.{alert.metric}{subject}: {alert.value:.4g} (threshold {alert.threshold:g})")
    print("gates: " + ", ".join(f"{name}={value}" for name, value in evaluation.gates.items()))
    print(f"report: {evaluation.report_path}")
    return 1 if args.fail_on_alert and not alerts.empty else 0


if __name__ == "__main__":
    sys.exit(main())
