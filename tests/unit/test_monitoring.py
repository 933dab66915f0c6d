"""The monitors over data-mart windows: verdicts, minimums, measurements, alerts, gates, report, command line."""

from __future__ import annotations

import copy
import dataclasses
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, log_loss, precision_score, recall_score, roc_auc_score

from utils import datamart, monitoring, plotting
from utils.data import FEATURES, LABEL, generate_credit_data
from utils.datamart import columnar
from utils.decision import RISK_THRESHOLD, decide, risk_probability
from utils.monitoring import evaluate
from utils.monitoring.classifier_worker import ClassifierTestWorker
from utils.monitoring.window import no_records
from utils.traffic import applicants

pytestmark = pytest.mark.datamarts

DAY = datetime(2026, 2, 2, tzinfo=UTC)


@dataclass
class Logged:
    work: Path
    engine: object
    deployment_id: str
    model: object
    monitor: monitoring.DeploymentMonitor
    days: list[monitoring.Evaluation]
    feedback: list[pd.DataFrame]


def _log(engine, deployment_id: str, model, frame: pd.DataFrame, day: datetime, feedback_rows: int) -> pd.DataFrame:
    risk = risk_probability(model, frame)
    decisions = decide(risk)
    step = timedelta(days=1) / len(frame)
    inputs = frame[list(FEATURES)].astype(object).to_dict("records")
    datamart.insert_payload(
        engine,
        [
            {
                "transaction_id": datamart.new_id(),
                "deployment_id": deployment_id,
                "model_id": "credit-risk-v1",
                "scored_at": day + step * i,
                "inputs": inputs[i],
                "prediction": decisions[i],
                "probability_no_risk": 1 - risk[i],
                "probability_risk": risk[i],
            }
            for i in range(len(frame))
        ],
    )
    labelled = frame.iloc[:feedback_rows]
    datamart.insert_feedback(
        engine,
        [
            {
                "feedback_id": datamart.new_id(),
                "deployment_id": deployment_id,
                "recorded_at": day + step * i,
                "inputs": inputs[i],
                "label": labelled[LABEL].iloc[i],
            }
            for i in range(feedback_rows)
        ],
    )
    return labelled


@pytest.fixture(scope="module")
def logged(workspace) -> Logged:
    """Day 1 clean, day 2 drifted and biased against women, day 3 too few records; each evaluated once.

    The shared workspace's deployed model (``credit-risk-v1``), its training split as the reference.
    """
    engine, deployment_id, model = workspace.engine, workspace.deployment.deployment_id, workspace.model
    days = [
        generate_credit_data(800, 31),
        applicants(1200, 34, drift=0.3, group_drift=1.0, label_bias=0.5),
        generate_credit_data(50, 33),
    ]
    feedback = [
        _log(engine, deployment_id, model, frame, DAY + timedelta(days=i), 300) for i, frame in enumerate(days[:2])
    ]
    feedback.append(_log(engine, deployment_id, model, days[2], DAY + timedelta(days=2), 40))
    monitor = monitoring.DeploymentMonitor(deployment_id, engine=engine, work=workspace.work)
    evaluations = monitor.evaluate_days(DAY, 3)
    return Logged(workspace.work, engine, deployment_id, model, monitor, evaluations, feedback)


def test_a_clean_day_raises_no_alert(logged):
    clean = logged.days[0]
    assert (clean.payload_records, clean.feedback_records) == (800, 300)
    assert clean.alerts.empty
    assert clean.gates == {"quality_ok": True, "fairness_ok": True, "drift_detected": False}
    assert clean.statuses == {}


def test_drift_and_bias_raise_alerts(logged):
    bad = logged.days[1]
    alerts = bad.alerts
    raised = set(zip(alerts["monitor"], alerts["metric"], alerts["subject"].fillna("")))
    assert ("drift", "drifted_share", "") in raised
    assert ("drift", "classifier_drift_p_value", "") in raised
    assert ("fairness", "disparate_impact", "Sex") in raised
    assert bad.gates["fairness_ok"] is False and bad.gates["drift_detected"] is True
    row = alerts[alerts["metric"] == "disparate_impact"].iloc[0]
    assert row["value"] < row["threshold"] == 0.8 and row["window"] == "2026-02-03 .. 2026-02-04"
    assert {"LoanAmount", "Age"} <= set(bad.details["data_drift"].drifted)
    assert bad.details["fairness"].loc["Sex", "verdict"] == "ALERT"
    assert set(bad.details["companions"]) == {"Sex", "Age"}
    assert set(bad.details["perturbation"].index) == {"Sex", "Age"}
    assert "window (measured on feedback)" in bad.details["model_drift"].index


def test_quality_metrics_match_scikit_learn(logged):
    feedback = logged.feedback[0]
    model = logged.model
    risk = risk_probability(model, feedback)
    truth, predicted = feedback[LABEL] == "Risk", risk > RISK_THRESHOLD
    expected = {
        "auc_roc": roc_auc_score(truth, risk),
        "accuracy": accuracy_score(truth, predicted),
        "precision": precision_score(truth, predicted),
        "recall": recall_score(truth, predicted),
        "f1": f1_score(truth, predicted),
        "log_loss": log_loss(truth, risk),
    }
    measured = logged.days[0].measurements
    quality = measured[measured["monitor"] == "quality"].set_index("metric")["value"]
    assert quality.to_dict() == pytest.approx(expected)
    assert logged.days[0].details["quality"] == pytest.approx(expected)


def test_too_few_records_give_no_verdict(logged):
    small = logged.days[2]
    assert small.gates == {"quality_ok": None, "fairness_ok": None, "drift_detected": None}
    assert set(small.statuses) == {"quality", "fairness", "drift", "data_quality"}
    assert "40 feedback records, 100 needed" in small.statuses["quality"]
    assert small.summary()["status"].eq("no verdict").all()
    assert small.alerts.empty


def test_measurements_are_stored_per_window(logged):
    stored = datamart.read_measurements(logged.engine, logged.deployment_id)
    assert len(stored) == sum(len(e.measurements) for e in logged.days)
    assert stored["evaluation_id"].nunique() == 3
    first = stored[stored["window_start"] == pd.Timestamp(DAY)]
    assert (first["window_end"] == pd.Timestamp(DAY + timedelta(days=1))).all()
    di = stored[(stored["metric"] == "disparate_impact") & (stored["subject"] == "Sex")]
    assert di["breached"].tolist()[:2] == [False, True] and pd.isna(di["breached"].iloc[2])
    assert (
        datamart.read_measurements(logged.engine, logged.deployment_id, monitor="quality")["monitor"]
        .eq("quality")
        .all()
    )


def test_each_evaluation_writes_a_self_contained_report(logged):
    for evaluation in logged.days:
        assert evaluation.report_path.parent == logged.work / "reports"
        assert evaluation.report_path.name.startswith("monitoring-credit-risk-dev-2026020")
        assert evaluation.report_path.resolve().parent == (logged.work / "reports").resolve()
    assert logged.days[0].report_path.name == "monitoring-credit-risk-dev-20260202-20260203.html"
    page = logged.days[1].report_path.read_text()
    assert page.count("data:image/png;base64,") >= 4  # timeline, favourable rates, debiased, drift p-values
    assert 'src="http' not in page and "<link" not in page
    assert "disparate_impact" in page and "Business Source License 1.1" in page


def _monitor_of(logged, **changes) -> monitoring.DeploymentMonitor:
    """The shared monitor, as if its deployment had been recorded with ``changes`` (e.g. before names were checked)."""
    monitor = copy.copy(logged.monitor)
    monitor.deployment = dataclasses.replace(logged.monitor.deployment, **changes)
    return monitor


@pytest.mark.parametrize(
    "changes",
    [
        {"name": "X/../../../../outside"},
        {"name": "../x"},
        {"name": "a\\b"},
        {"name": "a\nb"},
        {"name": "a\x00b"},
        {"name": "/tmp/outside"},
        {"space": "../../outside"},
    ],
)
def test_a_name_that_could_become_a_path_never_does(logged, changes):
    monitor = _monitor_of(logged, **changes)
    reports = (logged.work / "reports").resolve()
    evaluation = monitor.evaluate(DAY, DAY + timedelta(days=1), monitors=("quality",), store=False)
    assert evaluation.report_path.resolve().parent == reports
    assert evaluation.report_path.name == f"monitoring-{logged.deployment_id}-20260202-20260203.html"
    assert evaluation.report_path.is_file()
    assert [p for p in logged.work.rglob("*.html") if p.resolve().parent != reports] == []
    assert not list(logged.work.parent.glob("*outside*.html"))


def test_a_valid_name_names_its_report_inside_the_reports_folder(logged):
    monitor = _monitor_of(logged, name="A.b_c-1")
    evaluation = monitor.evaluate(DAY, DAY + timedelta(days=1), monitors=("quality",), store=False)
    assert evaluation.report_path == logged.work / "reports" / "monitoring-A.b_c-1-dev-20260202-20260203.html"
    assert evaluation.report_path.resolve().parent == (logged.work / "reports").resolve()
    assert evaluation.report_path.is_file()


def test_an_unsafe_deployment_id_is_refused_rather_than_used_as_a_path(logged):
    monitor = _monitor_of(logged, name="../x", deployment_id="../../outside")
    with pytest.raises(ValueError, match="would leave"):
        monitor.report_path(logged.days[0])


@pytest.mark.slow
def test_arrow_and_plain_window_readers_agree(logged, monkeypatch):
    start, end = DAY, DAY + timedelta(days=1)
    monkeypatch.setattr(columnar, "_ARROW_ROWS", 0)  # through ADBC, however small the window
    fast = monitoring.read_window(logged.engine, logged.deployment_id, start, end)
    monkeypatch.setattr(columnar, "_adbc", lambda engine: None)  # read through SQLAlchemy instead of ADBC
    plain = monitoring.read_window(logged.engine, logged.deployment_id, start, end)
    pd.testing.assert_frame_equal(fast, plain)
    stored = datamart.read_payload(logged.engine, logged.deployment_id, start, end)
    assert (fast["Age"].to_numpy() == stored["Age"].to_numpy()).all()
    assert (fast["Housing"].astype(str).to_numpy() == stored["Housing"].to_numpy()).all()
    assert np.allclose(fast["probability_risk"], stored["probability_risk"])
    feedback = monitoring.read_window(logged.engine, logged.deployment_id, start, end, feedback=True)
    assert len(feedback) == 300 and set(feedback[LABEL].unique()) == {"No Risk", "Risk"}
    empty = monitoring.read_window(logged.engine, "no-such-deployment")
    assert empty.empty and list(empty.columns) == [*FEATURES, "prediction", "probability_risk", "out_of_range"]
    pd.testing.assert_frame_equal(no_records(), empty)
    pd.testing.assert_frame_equal(no_records(feedback=True), monitoring.read_window(logged.engine, "no", feedback=True))


def test_each_monitor_returns_its_measurements_verdict_and_status(logged):
    def window(day: int) -> monitoring.Window:
        start, end = DAY + timedelta(days=day), DAY + timedelta(days=day + 1)
        payload = monitoring.read_window(logged.engine, logged.deployment_id, start, end)
        feedback = monitoring.read_window(logged.engine, logged.deployment_id, start, end, feedback=True)
        return monitoring.Window.of(logged.model, payload, feedback)

    clean, small = window(0), window(2)
    assert clean.scored["prediction"].tolist() == decide(risk_probability(logged.model, clean.feedback)).tolist()
    quality = logged.monitor.quality.run(clean)
    assert isinstance(quality, monitoring.MonitorResult)
    assert (quality.monitor, quality.verdict, quality.status) == ("quality", False, None)
    assert [row["metric"] for row in quality.measurements][0] == "auc_roc"
    assert {row["monitor"] for row in quality.measurements} == {"quality"}
    for result in (
        logged.monitor.quality.run(small),
        logged.monitor.fairness.run(small, debias=False),
        logged.monitor.drift.run(small),
    ):
        assert result.verdict is None and result.status == logged.days[2].statuses[result.monitor]
    fairness = logged.monitor.fairness.run(clean, debias=False)
    assert fairness.status is None and fairness.verdict is False and fairness.details["companions"] == {}
    expected = logged.days[0].measurements
    expected = expected[(expected["monitor"] == "fairness") & ~expected["metric"].str.startswith("debiased")]
    assert [(r["metric"], r["subject"]) for r in fairness.measurements] == list(
        zip(expected["metric"], expected["subject"])
    )


def test_thresholds_are_parameters(logged):
    measured = logged.days[0].measurements.set_index(["metric", "subject"])["value"]
    above = min(measured[("disparate_impact", "Sex")] + 0.01, 2.0)  # a threshold the clean day's value is under
    strict = monitoring.DeploymentMonitor(
        logged.deployment_id,
        engine=logged.engine,
        work=logged.work,
        thresholds=monitoring.Thresholds(min_auc_roc=0.99, min_disparate_impact=above, fairness_alpha=None),
    )
    evaluation = strict.evaluate(
        DAY, DAY + timedelta(days=1), monitors=("quality", "fairness"), store=False, report=False, debias=False
    )
    raised = set(zip(evaluation.alerts["metric"], evaluation.alerts["subject"].fillna("")))
    assert ("auc_roc", "") in raised and ("disparate_impact", "Sex") in raised
    assert evaluation.gates["drift_detected"] is None
    with pytest.raises(ValueError, match="unknown monitor"):
        strict.evaluate(monitors=("latency",))


def test_command_line_prints_alerts_and_writes_the_report(logged, capsys, monkeypatch):
    arguments = ["--deployment-id", logged.deployment_id, "--start", "2026-02-03", "--end", "2026-02-04T00:00:00Z"]
    arguments += ["--work-dir", str(logged.work), "--no-store"]
    assert monitoring.main(arguments) == 0
    out = capsys.readouterr().out
    assert "ALERT fairness.disparate_impact [Sex]" in out and "ALERT drift.drifted_share" in out
    assert "drift_detected=True" in out and "report: " in out
    assert monitoring.main([*arguments, "--fail-on-alert"]) == 1
    assert monitoring.main(["--deployment-id", "nope", "--work-dir", str(logged.work)]) == 2
    assert "monitoring failed" in capsys.readouterr().err


@pytest.mark.slow  # starts the worker process, which imports alibi-detect
def test_every_monitor_at_once_with_the_classifier_test_in_a_worker(logged, monkeypatch):
    monkeypatch.setattr(evaluate, "_classifier_worker", ClassifierTestWorker)  # however this process stands
    start = DAY + timedelta(days=1)
    found = monitoring.evaluate_all(
        logged.deployment_id, start, start + timedelta(days=1), engine=logged.engine, work=logged.work, store=False
    )
    pd.testing.assert_frame_equal(found.measurements, logged.days[1].measurements)
    assert found.alerts["metric"].eq("classifier_drift_p_value").any()


def test_monitoring_plots_render_without_pyplot(logged):
    before = plt.get_fignums()
    bad = logged.days[1]
    explanation, _ = logged.monitor.explain(
        datamart.read_payload(logged.engine, logged.deployment_id)["transaction_id"].iloc[0]
    )
    figures = [
        plotting.monitoring_timeline(logged.monitor.history()),
        plotting.drift_p_values(bad.details["data_drift"].features, bad.details["data_drift"].threshold),
        plotting.favourable_rates(bad.details["fairness"]),
        plotting.feature_contributions(explanation.contributions),
        plotting.debiased_comparison({k: c.comparison for k, c in bad.details["companions"].items()}),
    ]
    for figure in figures:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        assert buffer.getvalue().startswith(b"\x89PNG")
    assert len(figures[0].axes) == 3
    assert plt.get_fignums() == before


def test_overview_and_gates_over_days(logged):
    table = monitoring.overview(logged.days)
    assert list(table.index) == ["2026-02-02 .. 2026-02-03", "2026-02-03 .. 2026-02-04", "2026-02-04 .. 2026-02-05"]
    assert table["alerts"].iloc[0] == "-" and "fairness.disparate_impact[Sex]" in table["alerts"].iloc[1]
    assert table["payload"].tolist() == [800, 1200, 50]
    assert monitoring.combined_gates(logged.days) == {"quality_ok": True, "fairness_ok": False, "drift_detected": True}
    assert set(monitoring.combined_gates(logged.days[2:]).values()) == {None}
    shown = repr(logged.days[1])
    assert logged.days[1].evaluation_id not in shown and logged.deployment_id not in shown
    assert "window 2026-02-03 .. 2026-02-04" in shown and "drift.drifted_share" in shown


def test_an_empty_window_is_no_verdict_not_an_error(logged, tmp_path):
    empty = logged.monitor.evaluate("2030-01-01", "2030-01-02", store=False, report=tmp_path / "empty.html")
    assert (empty.payload_records, empty.feedback_records) == (0, 0)
    assert set(empty.gates.values()) == {None} and empty.alerts.empty
    assert "no verdict" in empty.report_path.read_text()
