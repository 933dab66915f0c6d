"""Metric-based retraining: the labelled records of a prod deployment's alerting windows extend the parent's
training data; the new version has the parent's model type and parameters and its lineage, and waits in preprod."""

from __future__ import annotations

from datetime import timedelta

import pytest

from utils import config, datamart, lifecycle
from utils.data import FEATURES, LABEL, file_sha256, generate_credit_data
from utils.deployment import deploy, production_problem
from utils.monitoring import DeploymentMonitor
from utils.retraining import RetrainingError, evaluate_candidate, retrain, stage_candidate
from utils.retraining.cli import main as cli_main
from utils.scoring import wml_request
from utils.serving import FeedbackRequest, ScoringRequest, Service, ServiceSettings
from utils.serving import service as ops
from utils.times import utc_now
from utils.validation import infer_schema, save_schema

DRIFTED_ROWS = 300


@pytest.fixture(scope="module")
def alerted(workspace):
    """``credit-risk-v1`` in prod, scored on drifted applicants with their outcomes, one drift-alerting window."""
    save_schema(infer_schema(workspace.train), config.layout(workspace.work).schema)
    where = {"engine": workspace.engine, "work": workspace.work}
    prod = deploy("credit-risk-v1", name="credit-risk", space="prod", registry=workspace.registry, **where)
    lifecycle.set_monitor_config(prod.deployment_id, {"thresholds": {"min_auc_roc": 0.6}}, **where)
    drifted = generate_credit_data(DRIFTED_ROWS, seed=11, drift=0.8)
    service = Service(ServiceSettings(work=workspace.work, datamart_url=workspace.datamart_url, api_key="k"))
    began = utc_now()
    ops.predict(service, prod.deployment_id, ScoringRequest(**wml_request(drifted)))
    values = drifted[[*FEATURES, LABEL]].astype(object).to_numpy().tolist()
    ops.record_feedback(
        service, prod.deployment_id, FeedbackRequest(input_data=[{"fields": [*FEATURES, LABEL], "values": values}])
    )
    monitor = DeploymentMonitor(prod.deployment_id, **where)
    evaluation = monitor.evaluate(began - timedelta(minutes=1), utc_now() + timedelta(seconds=1))
    assert evaluation.gates["drift_detected"]
    return prod


def test_retraining_learns_from_the_alerting_window_with_the_parents_model_and_lineage(workspace, alerted):
    retraining = retrain(alerted.deployment_id, min_records=50, engine=workspace.engine, work=workspace.work)
    training_set = retraining.training_set
    assert len(training_set.windows) == 1 and "drift.drifted_share" in training_set.windows["alerts"].iloc[0]
    sizes = training_set.sizes()
    assert sizes.loc["original training data", "rows"] == len(workspace.train)
    production = sizes.loc["production records (training)", "rows"] + sizes.loc["production records (held out)", "rows"]
    assert production == DRIFTED_ROWS
    assert sizes.loc["new training set", "rows"] == len(workspace.train) + training_set.production_rows
    assert sizes.loc["production records (held out)", "rows"] == pytest.approx(0.3 * DRIFTED_ROWS, abs=1)

    metadata = workspace.registry.metadata(retraining.model_id)
    parent = workspace.registry.metadata("credit-risk-v1")
    assert metadata["model_type"] == parent["model_type"] == "logistic_regression"
    assert {k: metadata["hyperparameters"][k] for k in ("C", "max_iter")} == {"C": 1.0, "max_iter": 1000}
    lineage = metadata["lineage"]
    assert (lineage["parent_model_id"], lineage["deployment_id"]) == ("credit-risk-v1", alerted.deployment_id)
    assert lineage["windows"][0]["start"] == training_set.windows["start"].iloc[0].isoformat()
    stored = config.layout(workspace.work).resolve(metadata["training_data"]["path"])
    assert file_sha256(stored) == metadata["training_data"]["sha256"]
    assert metadata["training_data"]["rows"] == len(training_set.train)
    held_out = retraining.comparison["auc_roc"]["held-out production records"]
    assert list(held_out.index) == ["credit-risk-v1", retraining.model_id]

    candidate = stage_candidate(retraining, engine=workspace.engine, work=workspace.work)
    assert (candidate.space, candidate.model_id, candidate.name) == ("preprod", retraining.model_id, "credit-risk")
    copied = lifecycle.monitor_config(candidate.deployment_id, engine=workspace.engine)
    assert copied.thresholds.min_auc_roc == 0.6
    served = datamart.read_deployment(workspace.engine, alerted.deployment_id)
    assert served["model_id"] == "credit-risk-v1"  # prod untouched
    assert "no preprod evaluation" in production_problem(retraining.model_id, engine=workspace.engine)
    watched = DeploymentMonitor(candidate.deployment_id, engine=workspace.engine, work=workspace.work)
    # drift is measured against the population it was retrained for: every labelled record of the windows
    reference = metadata["reference_data"]
    assert len(watched.reference) == reference["rows"] == lineage["reference_rows"] == len(training_set.reference)
    assert len(training_set.production) == production, "every labelled record, learned from or held out"
    assert file_sha256(config.layout(workspace.work).resolve(reference["path"])) == reference["sha256"]
    as_rows = sorted(map(str, watched.reference.astype(str).to_numpy().tolist()))
    assert as_rows == sorted(map(str, training_set.production.drop_duplicates().astype(str).to_numpy().tolist()))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"monitors": ("fairness",)}, "no window of 'credit-risk' alerted for fairness"),
        ({"min_records": 10_000}, "retraining needs at least 10000"),
        ({"since": "2100-01-01"}, "no window"),
    ],
)
def test_retraining_says_why_it_cannot_go_on(workspace, alerted, options, message):
    with pytest.raises(RetrainingError, match=message):
        retrain(alerted.deployment_id, engine=workspace.engine, work=workspace.work, **options)


def test_retraining_starts_from_prod_only(workspace):
    with pytest.raises(RetrainingError, match="retraining starts from prod"):
        retrain(workspace.deployment.deployment_id, engine=workspace.engine, work=workspace.work)


def test_the_command_line_registers_a_candidate_or_says_why_not(workspace, alerted, capsys):
    work = str(workspace.work)
    args = ["--deployment-id", alerted.deployment_id, "--work-dir", work, "--min-records", "50", "--no-stage"]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert "new training set" in out and "registered credit-risk-v" in out
    assert cli_main(["--deployment-id", alerted.deployment_id, "--work-dir", work, "--monitors", "fairness"]) == 2
    assert "no window" in capsys.readouterr().err


@pytest.mark.slow
def test_the_candidate_is_evaluated_against_the_champion_and_waits_for_approval(workspace, alerted):
    where = {"engine": workspace.engine, "work": workspace.work}
    retraining = retrain(alerted.deployment_id, min_records=50, **where)
    candidate = stage_candidate(retraining, **where)
    evaluated = evaluate_candidate(retraining, candidate, **where)
    assert (evaluated.baseline_model_id, evaluated.baseline_role) == ("credit-risk-v1", "champion")
    assert evaluated.rows == len(retraining.training_set.holdout)
    [record] = lifecycle.list_evaluations(model_id=retraining.model_id, **where)
    assert (record.evaluation_id, record.space, record.verdict) == (
        evaluated.evaluation_id,
        "preprod",
        evaluated.verdict,
    )
    waiting = "is not approved" if evaluated.passed else "failed"
    assert waiting in production_problem(retraining.model_id, engine=workspace.engine)
    assert datamart.read_deployment(workspace.engine, alerted.deployment_id)["model_id"] == "credit-risk-v1"
