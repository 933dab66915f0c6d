"""What a notebook hands to the pipeline runner, and the gates that read it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from utils import pipeline
from utils.pipeline import PipelineStopped, record_outputs
from utils.stages import STAGES, _evaluation_gate, _quality_gate, _validation_gate, steps_of

SETTINGS = {"input_csv": "/data/incoming.csv", "min_auc_roc": 0.8}


def test_record_outputs_round_trip(tmp_path):
    outputs = {
        "anomaly_status": "none",
        "anomaly_count": 0,
        "auc_roc": 0.8613,
        "training_done": True,
        "model_id": None,
        "paths": ["data/train.csv", "data/test.csv"],
        "nested": {"n_features": 60},
    }
    path = tmp_path / "step.json"
    returned = record_outputs(outputs, path)
    assert returned is outputs
    assert json.loads(path.read_text()) == outputs
    assert [p.name for p in tmp_path.iterdir()] == ["step.json"]  # no temporary file left


def test_record_outputs_creates_parent_folders(tmp_path):
    path = tmp_path / "runs" / "r1" / "deep" / "step.json"
    record_outputs({"a": 1}, str(path))
    assert json.loads(path.read_text()) == {"a": 1}


def test_record_outputs_replaces_previous_file(tmp_path):
    path = tmp_path / "step.json"
    record_outputs({"model_id": "credit-risk-v1", "extra": 1}, path)
    record_outputs({"model_id": "credit-risk-v2"}, path)
    assert json.loads(path.read_text()) == {"model_id": "credit-risk-v2"}


def test_record_outputs_writes_paths_as_text(tmp_path):
    path = tmp_path / "step.json"
    record_outputs({"schema_path": Path("work") / "schema.yaml"}, path)
    assert json.loads(path.read_text()) == {"schema_path": "work/schema.yaml"}


@pytest.mark.parametrize("where", [None, ""])
def test_record_outputs_without_path_writes_nothing(tmp_path, monkeypatch, where):
    monkeypatch.chdir(tmp_path)
    outputs = {"anomaly_status": "found"}
    assert record_outputs(outputs, where) is outputs
    assert list(tmp_path.iterdir()) == []


def test_validation_gate_passes_clean_data():
    assert _validation_gate(SETTINGS, {"anomaly_status": "none", "anomaly_count": 0, "anomaly_summary": ""}) is None


def test_validation_gate_stops_on_anomalies():
    outputs = {
        "anomaly_status": "found",
        "anomaly_count": 3,
        "anomaly_summary": "Age: out of range [19, 74] (1); Housing: null values (2)",
    }
    reason = _validation_gate(SETTINGS, outputs)
    assert reason is not None
    assert "3 anomalies" in reason
    assert "Age: out of range [19, 74] (1); Housing: null values (2)" in reason
    assert SETTINGS["input_csv"] in reason


def test_quality_gate_passes_good_model():
    assert _quality_gate(SETTINGS, {"training_done": True, "auc_roc": 0.86}) is None


def test_quality_gate_stops_weak_model():
    reason = _quality_gate(SETTINGS, {"training_done": False, "auc_roc": 0.71234})
    assert reason is not None
    assert "0.712" in reason
    assert "0.800" in reason
    assert "ROC AUC" in reason


def test_quality_gate_after_json_round_trip(tmp_path):
    """The gate reads what record_outputs wrote, not the notebook's Python objects."""
    path = tmp_path / "03.json"
    record_outputs({"training_done": False, "auc_roc": 0.7}, path)
    assert _quality_gate(SETTINGS, json.loads(path.read_text())) is not None
    record_outputs({"training_done": True, "auc_roc": 0.9}, path)
    assert _quality_gate(SETTINGS, json.loads(path.read_text())) is None


def test_evaluation_gate_stops_on_a_failed_verdict():
    passed = {"verdict": "passed", "evaluated_model_id": "credit-risk-v1"}
    assert _evaluation_gate(SETTINGS, passed) is None
    reason = _evaluation_gate(SETTINGS, {**passed, "verdict": "failed"})
    assert "evaluation of credit-risk-v1 failed" in reason


def test_each_stage_runs_its_notebooks_and_prod_checks_before_promoting():
    names = {stage: [step.name[:2] for step in steps] for stage, steps in STAGES.items()}
    assert names == {
        "dev": ["01", "02", "03", "04"],
        "preprod": ["01", "02", "03", "04", "07"],
        "prod": ["08", "05", "06"],
        "all": ["01", "02", "03", "04", "07", "08", "05", "06"],
    }
    assert STAGES["preprod"][3].parameters({"model_id": "x"}, {"model_id": "credit-risk-v3"})["SPACE"] == "preprod"
    promote = STAGES["prod"][0]
    assert promote.parameters({"model_id": "credit-risk-v2", "approver": "A"}, {})["DECISION"] is None
    assert STAGES["all"][5].parameters({"model_id": "x", "approver": "A"}, {"model_id": "v"})["DECISION"] == "approved"
    assert STAGES["all"][5].check({}, {}) is None  # the all stage records the approval itself


def test_retrain_closes_the_prod_and_all_stages_with_09_and_its_approver():
    assert [step.name[:2] for step in steps_of("prod", retrain=True)] == ["08", "05", "06", "09"]
    assert steps_of("all", retrain=True)[:-1] == STAGES["all"] and steps_of("dev") == STAGES["dev"]
    for stage in ("dev", "preprod"):
        with pytest.raises(ValueError, match="retraining follows a prod deployment"):
            steps_of(stage, retrain=True)
    retrain = steps_of("prod", retrain=True)[-1]
    parameters = retrain.parameters({"approver": "Ada Lovelace", "seed": 7}, {"test_path": "data/test.csv"})
    assert (parameters["APPROVER"], parameters["DECISION"], parameters["SEED"]) == ("Ada Lovelace", "approved", 7)
    assert parameters["APPLICANTS_PATH"] == "data/test.csv"
    assert retrain.parameters({"approver": "A", "seed": 1}, {})["APPLICANTS_PATH"] is None  # 09: 01's test split


def test_retrain_with_a_stage_before_prod_is_refused_by_the_command_line(capsys):
    with pytest.raises(SystemExit):
        pipeline.main(["--stage", "preprod", "--retrain"])
    assert "--retrain follows a prod deployment: use it with --stage prod or all" in capsys.readouterr().err


def test_the_summary_tells_what_retraining_did(capsys, tmp_path):
    outputs = {"model_id": "credit-risk-v1", "deployment_id": "d-prod", "space": "prod", "alerts_notified": 2}
    outputs |= {"candidate_model_id": "credit-risk-v2", "parent_model_id": "credit-risk-v1", "production_rows": 367}
    outputs |= {"training_rows": 4367, "candidate_verdict": "passed", "approver": "Ada Lovelace"}
    outputs |= {"promoted_model_id": "credit-risk-v2", "alerts_after_promotion": 0, "recoveries_notified": 2}
    outputs |= {"drifted_records": 158, "candidate_auc_drifted": 0.8741, "champion_auc_drifted": 0.8656}
    outputs |= {"auc_gain_interval": [-0.0043, 0.0228]}
    pipeline._print_summary(outputs, tmp_path, "prod")
    printed = capsys.readouterr().out
    assert "credit-risk-v2 retrained from credit-risk-v1 (367 production records among 4367 rows)" in printed
    assert "its evaluation against the champion: passed" in printed
    assert "ROC AUC on 158 held-out drifted records: candidate 0.874, champion 0.866" in printed
    assert "(95% interval of the gain -0.004 to +0.023)" in printed
    assert "approved by Ada Lovelace and promoted: credit-risk-v2 serves prod; 0 alerts" in printed
    assert "2 recoveries notified" in printed


def test_pipeline_stopped_message():
    notebook = Path("/work/runs/r1/01_validate_data.ipynb")
    stop = PipelineStopped("01_validate_data", "3 anomalies found", notebook)
    message = str(stop)
    assert "01_validate_data" in message
    assert "3 anomalies found" in message
    assert str(notebook) in message
    assert (stop.step, stop.reason, stop.notebook) == ("01_validate_data", "3 anomalies found", notebook)
    assert isinstance(stop, RuntimeError)


def test_record_outputs_keeps_numpy_values_as_json_values(tmp_path):
    import json

    import numpy as np

    path = tmp_path / "outputs.json"
    record_outputs({"training_done": np.bool_(False), "rows": np.int64(3), "auc": np.float64(0.5)}, path)

    assert json.loads(path.read_text()) == {"training_done": False, "rows": 3, "auc": 0.5}


def test_the_summary_names_the_space_of_the_deployment_each_result_concerns(capsys, tmp_path):
    trained = {"model_id": "credit-risk-v1", "auc_roc": 0.87, "factsheet_path": "registry/credit-risk/v1/factsheet.md"}
    preprod = {**trained, "deployment_id": "d-pre", "space": "preprod", "verdict": "passed"}
    preprod |= {"evaluated_model_id": "credit-risk-v1", "preprod_deployment_id": "d-pre", "baseline_model_id": "c-v1"}
    pipeline._print_summary(preprod, tmp_path, "preprod")
    printed = capsys.readouterr().out
    assert "credit-risk-v1 deployed: the preprod deployment d-pre" in printed
    assert "evaluation of credit-risk-v1 (deployment d-pre) against c-v1: passed" in printed
    prod = {"model_id": "credit-risk-v1", "deployment_id": "d-prod", "space": "prod", "quality_ok": True}
    prod |= {"fairness_ok": False, "drift_detected": True, "dashboard_url": "http://127.0.0.1:8000/dashboard/x"}
    prod |= {"rows_scored": 10, "rows_rejected": 1, "output_path": "batch/scored.csv"}
    pipeline._print_summary(prod, tmp_path, "prod")
    printed = capsys.readouterr().out
    assert "approved and promoted: the prod deployment d-prod serves it" in printed
    assert (
        "monitoring of the prod deployment d-prod" in printed and "batch job with the prod deployment d-prod" in printed
    )
