"""The notebooks run end to end as papermill steps, and the gates stop bad runs."""

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import papermill
import pytest

from utils import config, datamart, lifecycle
from utils.data import generate_credit_data, load_credit_csv, write_csv
from utils.deployment import find_deployments, get_deployment
from utils.monitoring import ALERT_METRICS
from utils.pipeline import STEPS, PipelineStopped, main, run_pipeline
from utils.registry import ModelRegistry
from utils.stages import STAGES, Step

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]


#: Rows of the test runs' input; its test split gives 05 300 applicants a day.
SAMPLE_ROWS = 1500


@pytest.fixture(scope="module")
def sample_csv(tmp_path_factory):
    """A small stand-in for the public sample (drawn to its figures with another seed than the bundled file's, and
    holding exact duplicate rows as it does): input and reference of the test runs, as `data/README.md` documents
    training on the sample."""
    path = tmp_path_factory.mktemp("data") / "sample.csv"
    write_csv(generate_credit_data(SAMPLE_ROWS, seed=2026), path)
    return path


def _scenario() -> dict[str, int]:
    """The days 05 injects drift and bias from, read from its parameters cell."""
    parameters = papermill.inspect_notebook(config.NOTEBOOKS_DIR / "05_monitor_model.ipynb")
    return {name: int(parameters[name]["default"]) for name in ("DAYS", "DRIFT_FROM_DAY", "BIAS_FROM_DAY")}


def _assert_alerts_on_the_injected_days(alert_days: dict[str, list[int]], *, fairness: bool) -> None:
    """No monitor alerts before the drift is injected, and drift alerts every day from then on; with ``fairness``,
    the fairness monitor alerts too, from the day the bias is injected on."""
    scenario = _scenario()
    early = {monitor: [day for day in days if day < scenario["DRIFT_FROM_DAY"]] for monitor, days in alert_days.items()}
    assert not any(early.values()), f"alerts before the injection: {early}"
    assert alert_days["drift"] == list(range(scenario["DRIFT_FROM_DAY"], scenario["DAYS"] + 1))
    if fairness:
        assert alert_days["fairness"] and min(alert_days["fairness"]) >= scenario["BIAS_FROM_DAY"], alert_days


def _settings(csv, **overrides):
    return {"input_csv": csv, "reference_csv": csv, "min_auc_roc": 0.70, **overrides}


def _only_run(work):
    (run_dir,) = (work / "runs").iterdir()
    return run_dir


def test_the_whole_story_runs_from_dev_to_prod_monitoring(sample_csv, tmp_path, capfd):
    outputs = run_pipeline(_settings(sample_csv, model_type="gradient_boosting"), work_dir=tmp_path, progress_bar=False)
    printed = capfd.readouterr()
    lines = (printed.out + printed.err).splitlines()
    assert [line for line in lines if "WARNING" in line.upper()] == [], "the step kernels print no warning"
    assert sum(line.endswith(" ...") for line in lines) == len(STEPS)

    assert outputs["anomaly_status"] == "none"
    duplicates = int(load_credit_csv(sample_csv).duplicated().sum())
    assert duplicates > 0 and outputs["duplicate_rows"] == duplicates, "kept with a warning, as by default"
    assert outputs["training_done"] is True
    assert outputs["model_id"] == "credit-risk-v1"
    registry = ModelRegistry(tmp_path / "registry")
    assert registry.metadata("credit-risk-v1")["model_type"] == "gradient_boosting"
    assert registry.metadata("credit-risk-v1")["metrics"]["auc_roc"] == pytest.approx(outputs["auc_roc"], abs=1e-4)
    assert len(load_credit_csv(tmp_path / outputs["train_path"])) == SAMPLE_ROWS * 0.8

    engine = datamart.connect(work=tmp_path)
    (dev,) = find_deployments(space="dev", engine=engine)
    assert len(datamart.read_payload(engine, dev.deployment_id)) == 6, "04 scores the sample applicant and five rows"
    evaluation = lifecycle.get_evaluation(outputs["evaluation_id"], engine=engine)
    assert (evaluation.verdict, evaluation.space) == ("passed", "preprod")
    assert evaluation.baseline_model_id == "credit-risk-challenger-v1"
    assert registry.metadata("credit-risk-challenger-v1")["model_type"] == "logistic_regression"
    (approval,) = lifecycle.list_approvals(model_id="credit-risk-v1", engine=engine)
    assert (approval.approver, approval.decision) == ("Workshop Validator", "approved")

    prod = get_deployment(outputs["deployment_id"], work=tmp_path)
    assert (prod.model_id, prod.space, prod.name) == ("credit-risk-v1", "prod", "credit-risk")
    history = lifecycle.deployment_history(model_id="credit-risk-v1", engine=engine)
    assert [period.space for period in history] == ["dev", "preprod", "prod"]
    assert outputs["drift_detected"] is True, "05 injects drift from day 4 into the prod deployment's traffic"
    _assert_alerts_on_the_injected_days(outputs["alert_days"], fairness=False)  # 300 applicants a day: too few
    assert outputs["dashboard_url"].startswith("http://127.0.0.1:8000/dashboard/deployments/"), "05 ends with it"
    assert isinstance(outputs["quality_ok"], bool) and isinstance(outputs["fairness_ok"], bool), "05 gave verdicts"
    payload = datamart.read_payload(engine, prod.deployment_id)
    batch = payload[payload["transaction_id"].str.startswith(outputs["job_id"])]
    assert outputs["rows_rejected"] == 3, "06 spoils three rows of its input"
    assert len(batch) == outputs["rows_scored"], "06 logs every row it scored into the prod deployment's log"
    assert len(payload) > len(batch), "05's simulated week went through the prod deployment"
    assert len(load_credit_csv(tmp_path / outputs["output_path"])) == outputs["rows_scored"]

    run_dir = _only_run(tmp_path)
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["status"] == "completed"
    assert list(summary["steps"]) == [step.name for step in STEPS]
    for step in summary["steps"]:
        assert (run_dir / f"{step}.ipynb").is_file()


def test_prod_promotes_only_the_approved_version_and_retrains_nothing(sample_csv, tmp_path):
    work = tmp_path / "work"
    preprod = run_pipeline(_settings(sample_csv, stage="preprod"), work_dir=work, progress_bar=False)
    assert preprod["verdict"] == "passed" and preprod["evaluated_model_id"] == "credit-risk-v1"
    assert preprod["space"] == "preprod", "04 records the space it deployed into (the summary names it)"
    promote = STAGES["prod"][:1]
    settings = _settings(sample_csv, stage="prod", model_id="credit-risk-v1")
    with pytest.raises(PipelineStopped) as refused:
        run_pipeline(settings, work_dir=work, steps=promote, progress_bar=False)
    assert refused.value.step == "08_promote_model" and "is not approved" in refused.value.reason
    engine = datamart.connect(work=work)
    lifecycle.approve("credit-risk-v1", preprod["evaluation_id"], approver="Grace Hopper", reason="fine", engine=engine)

    promoted = run_pipeline(settings, work_dir=work, steps=promote, progress_bar=False)
    registry = ModelRegistry(work / "registry")
    assert [v for v in registry.list()["model_id"] if v.startswith("credit-risk-v")] == ["credit-risk-v1"]
    prod = get_deployment(promoted["deployment_id"], engine=engine)
    assert (prod.space, prod.model_id) == ("prod", "credit-risk-v1")
    evaluated = get_deployment(preprod["preprod_deployment_id"], engine=engine)
    assert (
        registry.get(prod.model_id).model_file.read_bytes() == registry.get(evaluated.model_id).model_file.read_bytes()
    )
    spaces = [period.space for period in lifecycle.deployment_history(model_id="credit-risk-v1", engine=engine)]
    assert spaces == ["preprod", "prod"]
    factsheet = json.loads((registry.get("credit-risk-v1").model_file.parent / "factsheet.json").read_text())
    assert [e["evaluation_id"] for e in factsheet["evaluations"]] == [preprod["evaluation_id"]]
    assert [a["approver"] for a in factsheet["approvals"]] == ["Grace Hopper"]
    assert [d["space"] for d in factsheet["deployments"]] == ["preprod", "prod"]


def _retraining_scenario() -> dict:
    """Where 09's days start, how many drift, and how many follow the promotion, read from its parameters cell."""
    parameters = papermill.inspect_notebook(config.NOTEBOOKS_DIR / "09_retrain_model.ipynb")
    value = {name: parameters[name]["default"] for name in ("START", "DAYS", "NEXT_DAYS")}
    start = datetime.fromisoformat(value["START"].strip("\"'")).replace(tzinfo=UTC)
    return {"promoted_at": start + timedelta(days=int(value["DAYS"])), "next_days": int(value["NEXT_DAYS"])}


#: Rows of the retraining run's input: its test split gives 09 enough applicants kept apart for the days after the
#: promotion (a drift verdict needs 100 a window) and enough held-out records to judge the candidate on.
RETRAINING_SAMPLE_ROWS = 4000


def test_prod_with_retrain_closes_the_loop(tmp_path, capsys):
    """``--stage prod --retrain`` on an approved version: the drift alert in prod is notified, the candidate retrained
    on the alerting windows is better than the champion on held-out drifted records and passes its evaluation, is
    approved under ``--approver`` and promoted, and the scheduled windows after the promotion clear the alert (the
    recovery notified)."""
    sample = tmp_path / "sample.csv"
    write_csv(generate_credit_data(RETRAINING_SAMPLE_ROWS, seed=2026), sample)
    work = tmp_path / "work"
    preprod = run_pipeline(_settings(sample, stage="preprod"), work_dir=work, progress_bar=False)
    engine = datamart.connect(work=work)
    lifecycle.approve("credit-risk-v1", preprod["evaluation_id"], approver="Grace Hopper", reason="fine", engine=engine)
    flags = ["--stage", "prod", "--retrain", "--model-id", "credit-risk-v1", "--approver", "Ada Lovelace"]
    assert main([*flags, "--work-dir", str(work)]) == 0
    printed = capsys.readouterr().out

    prod = get_deployment(preprod["preprod_deployment_id"], engine=engine)  # its name, in prod now
    (prod,) = find_deployments(name=prod.name, space="prod", engine=engine)
    assert prod.model_id == "credit-risk-v2", "the retrained version serves the same prod deployment"
    notified = datamart.read_notifications(engine, prod.deployment_id)
    notified = [n for n in notified if n["receiver"].startswith("webhook")]
    assert all(n["status"] == "sent" for n in notified)
    by_kind = {k: {(n["monitor"], n["metric"]) for n in notified if n["kind"] == k} for k in ("alert", "recovery")}
    drift_alerts = {alert for alert in by_kind["alert"] if alert[0] == "drift"}
    assert drift_alerts and drift_alerts <= by_kind["recovery"], "each drift alert notified, then its recovery"

    lineage = ModelRegistry(work / "registry").metadata("credit-risk-v2")["lineage"]
    assert lineage["parent_model_id"] == "credit-risk-v1" and lineage["windows"]
    (evaluation,) = lifecycle.list_evaluations(model_id="credit-risk-v2", engine=engine)
    assert (evaluation.verdict, evaluation.baseline_model_id) == ("passed", "credit-risk-v1")
    (approval,) = lifecycle.list_approvals(model_id="credit-risk-v2", engine=engine)
    assert (approval.approver, approval.decision) == ("Ada Lovelace", "approved")
    spaces = [period.space for period in lifecycle.deployment_history(model_id="credit-risk-v2", engine=engine)]
    assert spaces == ["preprod", "prod"]

    scenario = _retraining_scenario()
    after = datamart.read_measurements(engine, prod.deployment_id, start=scenario["promoted_at"])
    assert after["window_start"].nunique() == scenario["next_days"], "each window after the promotion ran once"
    alerting = after[[(m, n) in ALERT_METRICS for m, n in zip(after["monitor"], after["metric"], strict=True)]]
    drift = alerting[alerting["monitor"] == "drift"]
    assert drift["breached"].notna().all(), "enough records for a drift verdict in each window"
    assert not alerting["breached"].fillna(False).any(), alerting[alerting["breached"].fillna(False)]
    assert "credit-risk-v2 retrained from credit-risk-v1" in printed
    compared = re.search(
        r"ROC AUC on (\d+) held-out drifted records: candidate (0\.\d+), champion (0\.\d+) "
        r"\(95% interval of the gain ([+-]\d\.\d+) to",
        printed,
    )
    assert compared and int(compared[1]) == lineage["held_out_rows"], "the summary compares the two on drifted records"
    assert float(compared[2]) > float(compared[3]) and float(compared[4]) > 0, "better beyond noise: outcomes changed"
    assert "approved by Ada Lovelace and promoted: credit-risk-v2 serves prod; 0 alerts" in printed


def test_monitoring_on_other_data_alerts_only_on_the_injected_days(tmp_path):
    """05 on a model trained on data generated differently (another seed, a drifted population): its simulated
    week comes from that model's own test split, so the clean days stay clean."""
    other = tmp_path / "other.csv"
    write_csv(generate_credit_data(5000, 11, drift=0.5).drop_duplicates(), other)
    monitor = Step(
        "05_monitor_model.ipynb", lambda s, o: {"MODEL_ID": o["model_id"], "APPLICANTS_PATH": o["test_path"]}
    )
    steps = (*STAGES["dev"][:3], monitor)
    outputs = run_pipeline(_settings(other), work_dir=tmp_path / "work", steps=steps, progress_bar=False)
    assert outputs["training_done"] is True
    _assert_alerts_on_the_injected_days(outputs["alert_days"], fairness=True)


def test_bad_input_stops_the_pipeline_at_validation(sample_csv, tmp_path):
    bad = load_credit_csv(sample_csv).head(300).rename(columns={"Telephone": "Phone"})
    bad["LoanAmount"] = bad["LoanAmount"].astype(object)
    bad.loc[3, "LoanAmount"] = "twelve hundred"
    bad.loc[4, "LoanPurpose"] = "spaceship"
    bad.loc[5, "Age"] = 200
    bad.loc[[6, 7], "Housing"] = None
    bad_csv = tmp_path / "bad.csv"
    bad.to_csv(bad_csv, index=False)
    work = tmp_path / "work"

    completed = subprocess.run(
        [sys.executable, "-m", "utils.pipeline", "--input", str(bad_csv), "--reference", str(sample_csv)],
        env={**os.environ, config.WORK_DIR_ENV: str(work)},
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert completed.returncode == 1
    message = completed.stderr
    assert "pipeline stopped at 01_validate_data" in message
    for expected in (
        "Telephone: missing column",
        "Phone: unexpected column",
        "LoanAmount: wrong type",
        "LoanPurpose: unseen category",
        "Age: out of range",
        "Housing: null values (2)",
    ):
        assert expected in message
    assert not (work / "registry").exists(), "no model may be trained on bad data"
    summary = json.loads((_only_run(work) / "run.json").read_text())
    assert summary["status"] == "stopped"
    assert summary["stopped_at"] == "01_validate_data"
    assert list(summary["steps"]) == ["01_validate_data"]


def test_quality_gate_keeps_a_weak_model_out_of_the_registry(sample_csv, tmp_path):
    with pytest.raises(PipelineStopped) as stopped:
        run_pipeline(_settings(sample_csv, min_auc_roc=0.99), work_dir=tmp_path, progress_bar=False)

    assert stopped.value.step == "03_train_model"
    assert "under the minimum 0.990" in stopped.value.reason
    assert ModelRegistry(tmp_path / "registry").list().empty


def test_a_failing_notebook_names_the_step_and_the_error(sample_csv, tmp_path):
    with pytest.raises(PipelineStopped) as stopped:
        run_pipeline(_settings(sample_csv, model_type="random_forest"), work_dir=tmp_path, progress_bar=False)

    assert stopped.value.step == "03_train_model"
    assert "unknown model type 'random_forest'" in stopped.value.reason
    assert stopped.value.notebook.is_file(), "the failed notebook is kept for inspection"
