"""The pre-production risk evaluation of a deployed candidate, against a challenger or the champion.

:func:`evaluate_deployment` sends labelled held-out data through the candidate's real endpoint (so the payload log
holds it, exactly as production traffic would), runs every monitor on that window, measures the candidate's
answers and the baseline's on the same rows, compares them by :mod:`utils.evaluation.criteria`, runs the model
checks, explains a few decisions, and gives a verdict. Everything is stored: the figures as measurements of the
evaluation, the evaluation record (:func:`utils.lifecycle.record_evaluation`), an HTML and a JSON report.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from utils import config, datamart, lifecycle
from utils.checks import CheckReport, check_model
from utils.checks.suite import check_frame
from utils.data import FEATURES, load_credit_csv
from utils.decision import risk_probability
from utils.deployment import PRODUCTION, Deployment, find_deployments, get_deployment
from utils.evaluation.criteria import DEFAULT_CRITERIA, MetricThreshold, compare
from utils.evaluation.explanations import explain_sample
from utils.evaluation.figures import model_figures, roc_points
from utils.evaluation.report import write_reports
from utils.monitoring import DeploymentMonitor, Evaluation
from utils.registry import registry_for
from utils.scoring import MAX_ROWS
from utils.times import utc_now
from utils.traffic import deployment_path, score_frame, send_feedback, service_client

#: Roles a baseline can have.
BASELINE_ROLES = ("champion", "challenger")


@dataclass
class RiskEvaluation:
    """The outcome of one risk evaluation of the model a deployment serves; ``record`` is the data mart's row.

    The evaluation's id is its monitors' evaluation id: everything it measured is stored under it."""

    deployment: Deployment
    baseline_model_id: str | None
    baseline_role: str | None
    window: tuple[datetime, datetime]
    comparison: pd.DataFrame
    checks: CheckReport
    monitoring: Evaluation
    figures: dict[str, dict[str, float]]
    roc: dict[str, pd.DataFrame]
    explanations: list[dict]
    rows: int
    expect_drift: bool = False
    record: lifecycle.EvaluationRecord | None = None

    @property
    def evaluation_id(self) -> str:
        return self.monitoring.evaluation_id

    @property
    def model_id(self) -> str:
        return self.deployment.model_id

    @property
    def reasons(self) -> list[str]:
        """Why the candidate fails (nothing: it passes)."""
        return _verdict(self.comparison, self.checks, self.monitoring, self.expect_drift)

    @property
    def verdict(self) -> str:
        return "failed" if self.reasons else "passed"

    @property
    def passed(self) -> bool:
        return not self.reasons

    def summary(self) -> dict:
        """The figures and findings behind the verdict, as JSON-ready values (stored with the record)."""
        return {
            "rows": self.rows,
            "baseline_role": self.baseline_role,
            "drift_counted": not self.expect_drift,
            "reasons": self.reasons,
            "criteria": _records(self.comparison),
            "checks": {"passed": self.checks.passed, "failed": [c.name for c in self.checks.failures]},
            "monitor_alerts": _records(self.monitoring.alerts.drop(columns="window")),
            "figures": self.figures,
        }


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as plain values, NaN as None (JSON has no NaN)."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def champion_of(name: str, *, engine: Engine) -> str | None:
    """The model version that the ``prod`` deployment named ``name`` serves, if there is one."""
    served = find_deployments(name=name, space=PRODUCTION, engine=engine)
    return served[0].model_id if served else None


def _send(url: str, deployment_id: str, test: pd.DataFrame, api_key: str | None) -> tuple[datetime, datetime, list]:
    """Score ``test`` through the endpoint and send its labels as feedback naming each transaction; the window
    that holds these records, and their transaction ids in row order."""
    base = deployment_path(deployment_id)
    start = utc_now()
    with service_client(url, api_key) as client:
        ids, _ = score_frame(client, base, test[list(FEATURES)], MAX_ROWS)
        send_feedback(client, base, test, MAX_ROWS, transaction_ids=ids)
    return start, utc_now() + timedelta(microseconds=1), ids


def _logged_risk(engine: Engine, deployment_id: str, start, end, ids: Sequence[str]) -> np.ndarray:
    """The probability of ``Risk`` the endpoint logged for each transaction, in the order of ``ids``."""
    logged = datamart.read_payload(engine, deployment_id, start=start, end=end).set_index("transaction_id")
    return logged.loc[list(ids), "probability_risk"].to_numpy(dtype=float)


def _baseline_risk(registry, baseline: str | None, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The baseline's probability of ``Risk`` on the rows, scored from the registry (nothing without one)."""
    return {baseline: risk_probability(registry.load(baseline), frame[list(FEATURES)])} if baseline else {}


def _judge(model_id: str, baseline: str | None, role: str | None, figures: dict, criteria, frame, registry):
    """The criteria compared and the model checks run: a champion's figures are bars and the reference of the
    per-group regression; a challenger's are shown beside the candidate's."""
    champion = baseline if role == "champion" else None
    comparison = compare(figures[model_id], figures.get(baseline), criteria, judge_change=champion is not None)
    return comparison, check_model(model_id, champion_id=champion, test=frame, registry=registry)


def _verdict(comparison: pd.DataFrame, checks: CheckReport, monitoring: Evaluation, expect_drift: bool) -> list[str]:
    """Why the candidate fails (nothing: it passes); drift alerts do not count when drift is expected."""
    reasons = [f"{row.metric}: {row.reason}" for row in comparison.itertuples() if row.passed is False]
    reasons += [f"model check failed: {check.name}" for check in checks.failures]
    reasons += [
        f"monitor alert: {row.monitor} {row.metric}{f' ({row.subject})' if row.subject else ''} = {row.value:.3f}"
        for row in monitoring.alerts.itertuples()
        if not (expect_drift and row.monitor == "drift")
    ]
    return reasons


def _measurements(result: RiskEvaluation, window: tuple[datetime, datetime]) -> list[dict]:
    """The comparison and the checks as measurement rows of the evaluation (the monitors' rows are stored apart)."""
    common = {
        "evaluation_id": result.evaluation_id,
        "deployment_id": result.deployment.deployment_id,
        "window_start": window[0],
        "window_end": window[1],
        "evaluated_at": window[1],
        "records": result.rows,
    }

    def row(monitor, metric, value, subject=None, threshold=None, breached=None) -> dict:
        return {
            **common,
            "monitor": monitor,
            "metric": metric[:60],
            "subject": subject,
            "value": value,
            "threshold": threshold,
            "breached": breached,
        }

    rows = []
    for c in result.comparison.itertuples():
        rows.append(
            row("model_risk", c.metric, c.candidate, None, c.threshold, None if c.passed is None else not c.passed)
        )
        if c.baseline is not None:
            rows.append(row("model_risk", c.metric, c.baseline, "baseline"))
    for check in result.checks.results:
        breached = None if check.status == "skipped" else check.failed
        rows.append(row("model_checks", check.name, check.value, None, check.threshold, breached))
    return rows


def _test_data(test: pd.DataFrame | str | os.PathLike | None, layout) -> pd.DataFrame:
    """The labelled test rows, checked against the contract before anything is sent (default: the test split)."""
    return check_frame(test if isinstance(test, pd.DataFrame) else load_credit_csv(layout.resolve(test or layout.test)))


def evaluate_deployment(
    deployment_id: str,
    url: str,
    *,
    test: pd.DataFrame | str | os.PathLike | None = None,
    baseline_model_id: str | None = None,
    baseline_role: str | None = None,
    criteria: Sequence[MetricThreshold] = DEFAULT_CRITERIA,
    explain: int = 3,
    expect_drift: bool = False,
    api_key: str | None = None,
    engine: Engine | None = None,
    work: str | os.PathLike | None = None,
    seed: int = 0,
) -> RiskEvaluation:
    """Evaluate the model that ``deployment_id`` serves, through the service at ``url``; see the module's text.

    ``test``: labelled applicants the model has not seen (default: the test split); ``baseline_model_id``: the
    champion (the default ``baseline_role``, whose figures are bars) or a challenger (shown, not judged; see
    :mod:`utils.evaluation.criteria`); ``explain``: how many decisions to explain; ``expect_drift``: the test data
    are production records after a drift (a retraining's held-out records), so drift alerts are shown but do not
    fail the candidate. The monitors use the deployment's monitor configuration.

    Raises:
        DataError: test data without the contract's columns or with rows that break it.
        RegistryError: a baseline that is not in the registry.
        DeploymentError: an unknown deployment.
    """
    if baseline_role not in (None, *BASELINE_ROLES):
        raise ValueError(f"baseline_role must be one of {BASELINE_ROLES}, not {baseline_role!r}")
    layout = config.layout(work)
    engine = engine or datamart.connect(work=layout.root)
    registry = registry_for(layout.root)
    deployment = get_deployment(deployment_id, engine=engine)
    frame = _test_data(test, layout)
    baseline = registry.get(baseline_model_id).model_id if baseline_model_id else None
    monitor = DeploymentMonitor(deployment_id, engine=engine, work=layout.root)  # its stored configuration
    start, end, ids = _send(url, deployment_id, frame, api_key)
    monitoring = monitor.evaluate(start, end, store=False, report=False)
    probabilities = {deployment.model_id: _logged_risk(engine, deployment_id, start, end, ids)}
    probabilities |= _baseline_risk(registry, baseline, frame)
    figures = {model: model_figures(frame, risk) for model, risk in probabilities.items()}
    role = (baseline_role or "champion") if baseline else None
    comparison, checks = _judge(deployment.model_id, baseline, role, figures, criteria, frame, registry)
    result = RiskEvaluation(
        deployment=deployment,
        baseline_model_id=baseline,
        baseline_role=role,
        window=(start, end),
        comparison=comparison,
        checks=checks,
        monitoring=monitoring,
        figures=figures,
        roc={model: roc_points(frame, risk) for model, risk in probabilities.items()},
        explanations=explain_sample(monitor, ids, explain, seed=seed),
        expect_drift=expect_drift,
        rows=len(frame),
    )
    return _store(result, monitor, engine, layout)


def _store(result: RiskEvaluation, monitor: DeploymentMonitor, engine: Engine, layout) -> RiskEvaluation:
    """Store the measurements and the reports, then the record: a recorded evaluation has all its data."""
    monitor.store(result.monitoring)
    datamart.insert_measurements(engine, _measurements(result, result.window))
    html, as_json = (layout.resolve(path) for path in lifecycle.report_paths(result.evaluation_id))
    write_reports(result, html, as_json)
    result.record = lifecycle.record_evaluation(
        result.deployment.deployment_id,
        verdict=result.verdict,
        summary=result.summary(),
        baseline_model_id=result.baseline_model_id,
        evaluation_id=result.evaluation_id,
        engine=engine,
        work=layout.root,
    )
    return result
