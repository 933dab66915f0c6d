"""The notebooks run end to end as papermill steps, and the gates stop bad runs."""

import json
import os
import subprocess
import sys

import papermill
import pytest

from utils import config, datamart
from utils.data import generate_credit_data, load_credit_csv, write_csv
from utils.deployment import get_deployment
from utils.pipeline import STEPS, PipelineStopped, run_pipeline
from utils.registry import ModelRegistry

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


def test_pipeline_trains_and_registers_a_model(sample_csv, tmp_path, capfd):
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

    deployment = get_deployment(outputs["deployment_id"], work=tmp_path)
    assert (deployment.model_id, deployment.space) == ("credit-risk-v1", "dev")
    assert outputs["scoring_url"].endswith(f"/ml/v4/deployments/{deployment.deployment_id}/predictions")
    payload = datamart.read_payload(datamart.connect(work=tmp_path), deployment.deployment_id)
    assert outputs["drift_detected"] is True, "05 injects drift from day 4"
    _assert_alerts_on_the_injected_days(outputs["alert_days"], fairness=False)  # 300 applicants a day: too few
    assert isinstance(outputs["quality_ok"], bool) and isinstance(outputs["fairness_ok"], bool), "05 gave verdicts"
    assert outputs["rows_rejected"] == 3, "06 spoils three rows of its input"
    online = payload[~payload["transaction_id"].str.startswith(outputs["job_id"])]
    assert len(online) == 6, "04 scores the sample applicant and five test rows, and logs them"
    assert len(payload) - len(online) == outputs["rows_scored"], "06 logs every row it scored"
    assert len(load_credit_csv(tmp_path / outputs["output_path"])) == outputs["rows_scored"]

    run_dir = _only_run(tmp_path)
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["status"] == "completed"
    assert list(summary["steps"]) == [step.name for step in STEPS]
    for step in summary["steps"]:
        assert (run_dir / f"{step}.ipynb").is_file()


def test_monitoring_on_other_data_alerts_only_on_the_injected_days(tmp_path):
    """05 on a model trained on data generated differently (another seed, a drifted population): its simulated
    week comes from that model's own test split, so the clean days stay clean."""
    other = tmp_path / "other.csv"
    write_csv(generate_credit_data(5000, 11, drift=0.5).drop_duplicates(), other)
    outputs = run_pipeline(_settings(other), work_dir=tmp_path / "work", steps=STEPS[:5], progress_bar=False)
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
