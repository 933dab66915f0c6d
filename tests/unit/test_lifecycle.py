"""The model's life across spaces: deployment history, evaluations, approvals, "Checks for Model Production",
promotion of the same registered version with its monitor configuration, and the command line."""

from __future__ import annotations

import inspect
import json
import sqlite3
from dataclasses import asdict
from pathlib import Path

import pytest

from utils import datamart
from utils.data import PROTECTED_GROUPS, generate_credit_data
from utils.datamart import lifecycle as lifecycle_rows
from utils.deployment import ProductionCheckError, delete_deployment, deploy, find_deployments
from utils.lifecycle import (
    LifecycleError,
    approve,
    decide,
    deployment_history,
    list_approvals,
    list_evaluations,
    monitor_config,
    promote,
    record_evaluation,
    reject,
    set_monitor_config,
)
from utils.lifecycle.cli import main
from utils.monitoring import DeploymentMonitor, Thresholds
from utils.registry import ModelRegistry

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "datamart-before-migrations.sql"
VALIDATOR = {"approver": "Grace Hopper", "reason": "quality, fairness and drift within thresholds"}


pytestmark = pytest.mark.datamarts


@pytest.fixture
def work(datamart_url, tmp_path) -> Path:
    """The working directory of this test, whose data mart is ``datamart_url``."""
    return tmp_path


@pytest.fixture
def engine(datamart_url):
    return datamart.connect(datamart_url)


@pytest.fixture
def registry(work, trained) -> ModelRegistry:
    """Versions 1 (logistic regression) and 2 (gradient boosting) of credit-risk, in the work dir's registry."""
    registry = ModelRegistry(work / "registry")
    for model_type in ("logistic_regression", "gradient_boosting"):
        registry.register(trained[model_type].model, name="credit-risk", metadata={"model_type": model_type})
    return registry


def _evaluate(engine, registry, model_id="credit-risk-v1", verdict="passed", space="preprod", **recorded):
    deployed = deploy(model_id, space=space, engine=engine, registry=registry)
    summary = {"auc_roc": 0.81, "checks": {"invariance": True}}
    recorded = {"engine": engine, "registry": registry, **recorded}
    return record_evaluation(deployed.deployment_id, verdict=verdict, summary=summary, **recorded)


def _in_prod(engine) -> list:
    return find_deployments(space="prod", engine=engine) + deployment_history(space="prod", engine=engine)


# ---------------------------------------------------------------- deployment history


def test_replacing_a_deployment_keeps_which_version_served_when(engine, registry):
    first = deploy("credit-risk-v1", engine=engine, registry=registry, deployed_by="alice", reason="first model")
    deploy("credit-risk-v1", engine=engine, registry=registry)  # the same version again: the same period
    second = deploy("credit-risk-v2", engine=engine, registry=registry, deployed_by="bob")
    served = deployment_history(first.deployment_id, engine=engine)
    assert [(p.model_id, p.deployed_by) for p in served] == [("credit-risk-v1", "alice"), ("credit-risk-v2", "bob")]
    assert served[0].started_at == first.updated_at and served[0].reason == "first model"
    assert served[0].ended_at == served[1].started_at == second.updated_at and served[1].ended_at is None
    delete_deployment(first.deployment_id, engine=engine)
    removed = deployment_history(first.deployment_id, engine=engine)
    assert removed[-1].ended_at is not None and removed[0] == served[0]
    with pytest.raises(LifecycleError, match="no deployment with id 'nope'"):
        deployment_history("nope", engine=engine)


def test_a_data_mart_made_before_the_history_keeps_its_deployments_and_opens_their_history(tmp_path):
    connection = sqlite3.connect(tmp_path / "old.sqlite")
    connection.executescript(FIXTURE.read_text())
    connection.close()
    engine = datamart.connect(f"sqlite:///{tmp_path / 'old.sqlite'}")
    [deployment] = datamart.read_deployments(engine)
    [period] = deployment_history(deployment["deployment_id"], engine=engine)
    assert (period.model_id, period.space, period.name) == ("credit-risk-v1", "dev", "credit-risk")
    assert period.started_at == deployment["updated_at"] and period.ended_at is None
    assert "revision 0003" in period.reason
    datamart.upsert_deployment(engine, "credit-risk", "dev", "credit-risk-v2", "ready")
    assert [p.ended_at is None for p in deployment_history(deployment["deployment_id"], engine=engine)] == [False, True]


# ---------------------------------------------------------------- checks for model production


def _nothing(engine, registry):
    return None


def _failed(engine, registry):
    return _evaluate(engine, registry, verdict="failed")


def _not_decided(engine, registry):
    return _evaluate(engine, registry)


def _rejected(engine, registry):
    evaluation = _evaluate(engine, registry)
    return reject("credit-risk-v1", evaluation.evaluation_id, engine=engine, **VALIDATOR)


def _approved_then_failed_again(engine, registry):
    approve("credit-risk-v1", _evaluate(engine, registry).evaluation_id, engine=engine, **VALIDATOR)
    return _evaluate(engine, registry, verdict="failed")


def _evaluated_in_dev_only(engine, registry):
    return _evaluate(engine, registry, space="dev")


@pytest.mark.parametrize(
    ("history", "missing"),
    [
        (_nothing, "it has no preprod evaluation"),
        (_failed, "its latest preprod evaluation '.*' failed; only a passed evaluation can be approved"),
        (_not_decided, "its latest preprod evaluation '.*' passed but is not approved"),
        (_rejected, "its latest preprod evaluation '.*' was rejected by 'Grace Hopper' .*: quality, fairness"),
        (_approved_then_failed_again, "its latest preprod evaluation '.*' failed"),
        (_evaluated_in_dev_only, "it has no preprod evaluation"),
    ],
)
def test_prod_is_refused_saying_what_is_missing(engine, registry, history, missing):
    history(engine, registry)
    with pytest.raises(ProductionCheckError, match=f"model 'credit-risk-v1' cannot be deployed to prod: {missing}"):
        deploy("credit-risk-v1", space="prod", engine=engine, registry=registry)
    with pytest.raises(ProductionCheckError, match=missing):
        promote("credit-risk-v1", engine=engine, registry=registry)
    assert _in_prod(engine) == []


def test_prod_is_accepted_once_the_pre_prod_evaluation_is_approved(engine, registry):
    evaluation = _evaluate(engine, registry)
    approve("credit-risk-v1", evaluation.evaluation_id, engine=engine, **VALIDATOR)
    deployed = deploy("credit-risk-v1", space="prod", engine=engine, registry=registry)
    assert (deployed.space, deployed.model_id) == ("prod", "credit-risk-v1")
    with pytest.raises(ProductionCheckError, match="'credit-risk-v2'.*no preprod evaluation"):
        deploy("credit-risk-v2", space="prod", engine=engine, registry=registry)  # approval is per version


# ---------------------------------------------------------------- approvals


def test_approvals_are_never_changed_only_superseded(engine, registry):
    evaluation = _evaluate(engine, registry)
    approved = approve("credit-risk-v1", evaluation.evaluation_id, engine=engine, **VALIDATOR)
    rejected = reject("credit-risk-v1", evaluation.evaluation_id, approver="Ada", reason="bias found", engine=engine)
    with pytest.raises(ProductionCheckError, match="was rejected by 'Ada'"):
        deploy("credit-risk-v1", space="prod", engine=engine, registry=registry)
    listed = list_approvals(model_id="credit-risk-v1", engine=engine)
    assert [(a.approval_id, a.decision, a.superseded) for a in listed] == [
        (approved.approval_id, "approved", True),
        (rejected.approval_id, "rejected", False),
    ]
    assert {**asdict(listed[0]), "superseded": False} == asdict(approved)  # the first record is as it was made
    approve("credit-risk-v1", evaluation.evaluation_id, engine=engine, **VALIDATOR)
    assert deploy("credit-risk-v1", space="prod", engine=engine, registry=registry).space == "prod"
    functions = [name for name, value in vars(lifecycle_rows).items() if inspect.isfunction(value)]
    writers = [name for name in functions if "approval" in name and not name.startswith(("insert", "read"))]
    assert writers == []  # no function that updates or deletes a decision


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_id": "credit-risk-v2"}, "is of model 'credit-risk-v1', not 'credit-risk-v2'"),
        ({"evaluation_id": "0190e4a4-0000-7000-8000-000000000000"}, "no evaluation with id"),
        ({"decision": "maybe"}, "unknown decision 'maybe'"),
        ({"approver": ""}, "invalid approver '': a person's name has 1 to 64 characters"),
        ({"approver": "../../etc"}, "invalid approver"),
        ({"approver": "Robert'); DROP TABLE approvals;--"}, "invalid approver"),
        ({"approver": "a" * 65}, "invalid approver"),
        ({"approver": "two  spaces"}, "invalid approver"),
        ({"reason": "   "}, "a decision needs a reason"),
        ({"reason": "bell\x07"}, "no control characters"),
    ],
)
def test_a_decision_that_does_not_fit_is_refused_and_not_recorded(engine, registry, change, message):
    evaluation = _evaluate(engine, registry)
    request = {"model_id": "credit-risk-v1", "evaluation_id": evaluation.evaluation_id, "decision": "approved"}
    request.update(VALIDATOR)
    request.update(change)
    with pytest.raises(LifecycleError, match=message):
        decide(request.pop("model_id"), request.pop("evaluation_id"), engine=engine, **request)
    assert list_approvals(engine=engine) == []


def test_only_a_passed_pre_prod_evaluation_can_be_approved(engine, registry):
    failed = _evaluate(engine, registry, verdict="failed")
    with pytest.raises(LifecycleError, match=f"evaluation '{failed.evaluation_id}' failed; only a passed"):
        approve("credit-risk-v1", failed.evaluation_id, engine=engine, **VALIDATOR)
    assert reject("credit-risk-v1", failed.evaluation_id, engine=engine, **VALIDATOR).decision == "rejected"
    in_dev = _evaluate(engine, registry, space="dev")
    with pytest.raises(LifecycleError, match="was run in dev; only preprod evaluations"):
        approve("credit-risk-v1", in_dev.evaluation_id, engine=engine, **VALIDATOR)


def test_an_evaluation_record_names_its_reports_by_id_and_is_validated(engine, registry):
    evaluation = _evaluate(engine, registry, baseline_model_id="credit-risk-latest")
    assert (evaluation.space, evaluation.model_id, evaluation.baseline_model_id) == (
        "preprod",
        "credit-risk-v1",
        "credit-risk-v2",
    )
    assert evaluation.report_html == f"reports/evaluations/{evaluation.evaluation_id}.html"
    assert evaluation.report_paths("/w")[1] == Path(f"/w/reports/evaluations/{evaluation.evaluation_id}.json")
    assert list_evaluations(model_id="credit-risk-v1", engine=engine) == [evaluation]
    deployment_id = evaluation.deployment_id
    for bad, message in [
        ({"verdict": "ok"}, "unknown verdict 'ok'"),
        ({"summary": {"auc": float("nan")}}, "not JSON without NaN"),
        ({"evaluation_id": "../../outside"}, "invalid evaluation id"),
        ({"baseline_model_id": "credit-risk-v9", "registry": registry}, "baseline: .*not in the registry"),
    ]:
        with pytest.raises(LifecycleError, match=message):
            record_evaluation(deployment_id, **{"verdict": "passed", "summary": {}, "engine": engine, **bad})
    with pytest.raises(LifecycleError, match="no deployment with id 'gone'"):
        record_evaluation("gone", verdict="passed", summary={}, engine=engine)
    assert len(list_evaluations(engine=engine)) == 1


# ---------------------------------------------------------------- monitor configuration and promotion


def test_the_default_monitor_configuration_is_the_monitors_defaults(engine):
    config = monitor_config("any-deployment", engine=engine)
    assert not config.stored and config.thresholds == Thresholds()
    assert config.attributes == tuple(PROTECTED_GROUPS)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"thresholds": {"min_records": 0}}, "thresholds.min_records counts records"),
        ({"thresholds": {"min_records": 2.5}}, "thresholds.min_records counts records"),
        ({"thresholds": {"min_auc_roc": 1.5}}, r"thresholds.min_auc_roc .* \[0, 1\]"),
        ({"thresholds": {"min_auc_roc": "high"}}, "thresholds.min_auc_roc must be a finite number"),
        ({"thresholds": {"min_auc": 0.7}}, "unknown thresholds 'min_auc'"),
        ({"protected_groups": ["Race"]}, "unknown protected attribute 'Race'"),
        ({"protected_groups": []}, "protected_groups must name at least one"),
        ({"protected_groups": {"Sex": {"monitored": "male"}}}, "protected_groups.Sex must be"),
        ({"windows": 3}, "unknown key 'windows'"),
    ],
)
def test_a_monitor_configuration_is_validated_before_it_is_written(engine, registry, document, message):
    deployed = deploy("credit-risk-v1", engine=engine, registry=registry)
    with pytest.raises(LifecycleError, match=message):
        set_monitor_config(deployed.deployment_id, document, engine=engine)
    assert not monitor_config(deployed.deployment_id, engine=engine).stored


def test_promotion_deploys_the_evaluated_file_and_copies_the_monitor_configuration(engine, registry, work):
    evaluation = _evaluate(engine, registry, model_id="credit-risk-v2")
    evaluated_file = registry.get(evaluation.model_id).model_file.read_bytes()
    document = {"thresholds": {"min_records": 40, "min_auc_roc": 0.75}, "protected_groups": ["Sex"]}
    set_monitor_config(evaluation.deployment_id, document, updated_by="mrm-team", engine=engine)
    approve("credit-risk-v2", evaluation.evaluation_id, engine=engine, **VALIDATOR)
    promoted = promote("credit-risk-latest", engine=engine, registry=registry, deployed_by="release-bot")
    prod = promoted.deployment
    assert (prod.space, prod.name, prod.model_id) == ("prod", "credit-risk", "credit-risk-v2")
    assert registry.get(prod.model_id).model_file.read_bytes() == evaluated_file
    assert registry.versions("credit-risk") == [1, 2]  # nothing retrained or registered again
    copied = monitor_config(prod.deployment_id, engine=engine)
    assert copied.document == monitor_config(evaluation.deployment_id, engine=engine).document
    assert (copied.thresholds.min_records, copied.thresholds.min_auc_roc, copied.attributes) == (40, 0.75, ("Sex",))
    reference = generate_credit_data(300, 3)  # the prod deployment's monitors run with the copied configuration
    monitor = DeploymentMonitor(prod.deployment_id, reference=reference, engine=engine, work=work)
    assert (monitor.thresholds.min_records, monitor.thresholds.min_auc_roc, monitor.attributes) == (40, 0.75, ("Sex",))
    given = DeploymentMonitor(
        prod.deployment_id, reference=reference, thresholds=Thresholds(), attributes=("Age",), engine=engine, work=work
    )
    assert (given.thresholds.min_records, given.attributes) == (Thresholds().min_records, ("Age",))
    assert (promoted.evaluation_id, promoted.source_deployment_id) == (
        evaluation.evaluation_id,
        evaluation.deployment_id,
    )
    [period] = deployment_history(prod.deployment_id, engine=engine)
    assert period.deployed_by == "release-bot" and evaluation.evaluation_id in period.reason
    served = [(p.space, p.model_id) for p in deployment_history(model_id="credit-risk-v2", engine=engine)]
    assert served == [("preprod", "credit-risk-v2"), ("prod", "credit-risk-v2")]


def test_promotion_into_preprod_comes_from_the_dev_deployment(engine, registry):
    dev = deploy("credit-risk-v1", engine=engine, registry=registry)
    set_monitor_config(dev.deployment_id, {"thresholds": {"min_feedback": 30}}, engine=engine)
    promoted = promote("credit-risk-v1", "preprod", engine=engine, registry=registry)
    assert (promoted.deployment.space, promoted.source_deployment_id) == ("preprod", dev.deployment_id)
    assert monitor_config(promoted.deployment.deployment_id, engine=engine).thresholds.min_feedback == 30
    with pytest.raises(LifecycleError, match="'credit-risk-v2' has no deployment in dev"):
        promote("credit-risk-v2", "preprod", engine=engine, registry=registry)
    with pytest.raises(LifecycleError, match="promoted into preprod or prod, not 'dev'"):
        promote("credit-risk-v1", "dev", engine=engine, registry=registry)


# ---------------------------------------------------------------- command line


def test_the_command_line_approves_promotes_and_reports(work, engine, registry, capsys):
    evaluation = _evaluate(engine, registry)
    run = ["--work-dir", str(work)]
    assert main([*run, "promote", "--model-id", "credit-risk-v1"]) == 1
    assert "refused: model 'credit-risk-v1' cannot be deployed to prod" in capsys.readouterr().err
    approving = ["approve", "--model-id", "credit-risk-v1", "--evaluation-id", evaluation.evaluation_id]
    assert main([*run, *approving, "--approver", "bad/name", "--reason", "ok"]) == 2
    assert "invalid approver 'bad/name'" in capsys.readouterr().err
    assert main([*run, *approving, "--approver", "Grace Hopper", "--reason", "ok"]) == 0
    assert capsys.readouterr().out.startswith(f"approved credit-risk-v1 (evaluation {evaluation.evaluation_id})")
    assert main([*run, "promote", "--model-id", "credit-risk-v1", "--by", "ops"]) == 0
    assert "promoted credit-risk-v1 to prod as credit-risk" in capsys.readouterr().out
    assert main([*run, "history", "--space", "prod"]) == 0
    assert "prod  credit-risk  credit-risk-v1" in capsys.readouterr().out
    [prod] = find_deployments(space="prod", engine=engine)
    assert main([*run, "config", "--deployment-id", prod.deployment_id, "--set", "{not json"]) == 2
    assert "--set is not JSON" in capsys.readouterr().err
    assert main([*run, "config", "--deployment-id", prod.deployment_id]) == 0
    assert json.loads(capsys.readouterr().out)["document"]["thresholds"]["min_records"] == Thresholds().min_records
    assert main([*run, "approvals", "--model-id", "credit-risk-v1"]) == 0
    assert "approved  Grace Hopper  False" in capsys.readouterr().out
