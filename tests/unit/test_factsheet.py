"""Factsheets that follow the model: what a version is for, its training data and fairness when it was made, and its
evaluations, approval decisions, deployments and monitoring status, rewritten after every change of those."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest

from utils import datamart
from utils import registry as registry_module
from utils.data import FEATURES, FOUR_FIFTHS_RULE, LABEL, file_sha256, write_csv
from utils.deployment import delete_deployment, deploy
from utils.factsheet import ALERT, NOT_MONITORED, OK, build_factsheet, limitations, render_factsheet
from utils.lifecycle import approve, record_evaluation, reject
from utils.lifecycle.cli import main
from utils.monitoring import DeploymentMonitor, Thresholds
from utils.registry import ModelRegistry, RegistryError
from utils.training import fairness_at_training

VALIDATOR = "Grace Hopper"


@pytest.fixture
def engine(tmp_path, monkeypatch):
    """The data mart of this test's working directory (``tmp_path``), whatever ``$CREDIT_DATAMART_URL`` says."""
    monkeypatch.delenv(datamart.DATAMART_URL_ENV, raising=False)
    return datamart.connect(f"sqlite:///{tmp_path / 'datamart.sqlite'}")


@pytest.fixture
def registry(tmp_path, trained, train_test) -> ModelRegistry:
    """credit-risk-v1 and -v2 (logistic regression, gradient boosting), with their training data and fairness."""
    train, test = train_test
    train_file = write_csv(train, tmp_path / "data" / "train.csv")
    registry = ModelRegistry(tmp_path / "registry")
    for model_type in ("logistic_regression", "gradient_boosting"):
        model = trained[model_type].model
        metadata = {
            "model_type": model_type,
            "features": list(FEATURES),
            "training_data": {"file": train_file.name, "sha256": file_sha256(train_file), "rows": len(train)},
            "fairness": fairness_at_training(model, train, test),
        }
        registry.register(model, name="credit-risk", metadata=metadata)
    return registry


def _files(registry, model_id="credit-risk-v1") -> tuple[dict, str]:
    version = registry.get(model_id)
    return json.loads(version.factsheet_json_file.read_text()), version.factsheet_file.read_text()


def _section(markdown: str, title: str) -> str:
    return markdown.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_a_new_version_states_its_use_limits_data_and_fairness_and_has_no_life_yet(registry, train_test):
    facts, markdown = _files(registry)
    train, _ = train_test
    assert facts["training_data"]["rows"] == len(train) and facts["training_data"]["file"] == "train.csv"
    assert "`train.csv`" in markdown and f"`{facts['training_data']['sha256']}`" in markdown
    assert facts["intended_use"] in markdown and "not validated for real lending decisions" in markdown
    women = train[train["Sex"] == "female"]
    rate = (women[LABEL] == "No Risk").mean()
    assert facts["fairness"]["training_data"]["Sex"]["favourable_rate_monitored"] == pytest.approx(rate)
    fairness = _section(markdown, "Fairness at training time")
    assert "Of the training data's outcomes:" in fairness and "Of the model's decisions on the test split:" in fairness
    assert f"| Sex | female vs male | {rate:.3f} vs " in fairness
    assert [facts[k] for k in ("evaluations", "approvals", "deployments", "monitoring")] == [[], [], [], []]
    assert _section(markdown, "Evaluations").strip() == "None yet."
    assert _section(markdown, "Deployments").strip() == "Never deployed."


def test_the_factsheet_follows_deployments_evaluations_and_decisions(engine, registry):
    where = {"engine": engine, "registry": registry}
    dev = deploy("credit-risk-v1", space="dev", deployed_by="alice", reason="first try", **where)
    facts, markdown = _files(registry)
    assert [(p["space"], p["ended_at"]) for p in facts["deployments"]] == [("dev", None)]
    assert facts["monitoring"][0]["status"] == NOT_MONITORED
    assert "| dev | " in _section(markdown, "Deployments") and "| serving | alice | first try |" in markdown

    preprod = deploy("credit-risk-v1", space="preprod", **where)
    facts, markdown = _files(registry)
    assert [p["space"] for p in facts["deployments"]] == ["dev", "preprod"]
    assert facts["deployments"][1]["started_at"] == preprod.updated_at.isoformat()
    assert markdown.count("| serving |") == 2

    evaluation = record_evaluation(preprod.deployment_id, verdict="passed", summary={"auc_roc": 0.81}, **where)
    facts, markdown = _files(registry)
    assert [(e["evaluation_id"], e["verdict"]) for e in facts["evaluations"]] == [(evaluation.evaluation_id, "passed")]
    assert f"| `{evaluation.evaluation_id}` | preprod | – | passed | auc_roc 0.810 |" in markdown

    rejected = reject("credit-risk-v1", evaluation.evaluation_id, approver=VALIDATOR, reason="too few rows", **where)
    assert [a["decision"] for a in _files(registry)[0]["approvals"]] == ["rejected"]
    approved = approve("credit-risk-v1", evaluation.evaluation_id, approver=VALIDATOR, reason="rows added", **where)
    facts, markdown = _files(registry)
    decisions = [(a["approval_id"], a["decision"], a["superseded"]) for a in facts["approvals"]]
    assert decisions == [(rejected.approval_id, "rejected", True), (approved.approval_id, "approved", False)]
    assert "| rejected | Grace Hopper | too few rows | superseded |" in markdown
    assert "| approved | Grace Hopper | rows added | counts |" in markdown

    delete_deployment(dev.deployment_id, engine=engine, registry=registry)
    facts, markdown = _files(registry)
    assert facts["deployments"][0]["ended_at"] is not None and facts["deployments"][1]["ended_at"] is None
    assert [s["space"] for s in facts["monitoring"]] == ["preprod"]
    assert markdown.count("| serving |") == 1


def test_replacing_a_version_rewrites_both_factsheets(engine, registry):
    first = deploy("credit-risk-v1", space="dev", engine=engine, registry=registry)
    deploy("credit-risk-v2", space="dev", engine=engine, registry=registry)
    old, old_markdown = _files(registry, "credit-risk-v1")
    new, _ = _files(registry, "credit-risk-v2")
    assert old["deployments"][0]["ended_at"] == new["deployments"][0]["started_at"]
    assert new["deployments"][0]["deployment_id"] == first.deployment_id and new["deployments"][0]["ended_at"] is None
    assert old["monitoring"] == [] and "No deployment serves this version now." in old_markdown


def _labelled(engine, deployment_id: str, frame) -> None:
    """Feedback records of a day: what the quality monitor scores with the deployed model."""
    day = datetime(2026, 3, 2, 9, tzinfo=UTC)
    rows = frame[list(FEATURES)].astype(object).to_dict("records")
    feedback = [
        {"feedback_id": datamart.new_id(), "deployment_id": deployment_id, "recorded_at": day, "inputs": inputs}
        | {"label": label}
        for inputs, label in zip(rows, frame[LABEL], strict=True)
    ]
    datamart.insert_feedback(engine, feedback)


def test_each_stored_monitoring_evaluation_updates_the_latest_status(engine, registry, tmp_path, train_test):
    train, test = train_test
    deployed = deploy("credit-risk-v1", space="dev", engine=engine, registry=registry)
    _labelled(engine, deployed.deployment_id, test.head(150))

    def evaluate(min_auc_roc: float):
        thresholds = Thresholds(min_auc_roc=min_auc_roc, min_feedback=100)
        monitor = DeploymentMonitor(
            deployed.deployment_id, reference=train, thresholds=thresholds, engine=engine, work=tmp_path
        )
        return monitor.evaluate(monitors=("quality",), report=False)

    calm = evaluate(0.5)
    facts, markdown = _files(registry)
    [status] = facts["monitoring"]
    assert status["status"] == OK and status["evaluation_id"] == calm.evaluation_id and status["alerts"] == []
    auc = calm.measurements.set_index("metric").loc["auc_roc", "value"]
    assert {(m["metric"], m["value"]) for m in status["measurements"]} >= {("auc_roc", auc)}
    assert "**ok**" in _section(markdown, "Latest monitoring status")

    strict = evaluate(0.99)
    facts, markdown = _files(registry)
    [status] = facts["monitoring"]
    assert status["status"] == ALERT and status["evaluation_id"] == strict.evaluation_id
    assert [(a["monitor"], a["metric"], a["threshold"]) for a in status["alerts"]] == [("quality", "auc_roc", 0.99)]
    monitoring = _section(markdown, "Latest monitoring status")
    assert "**alert**" in monitoring and f"| quality | auc_roc | – | {auc:.3f} | 0.990 | True |" in monitoring


def test_the_files_match_the_factsheet_rendered_fresh(engine, registry):
    deploy("credit-risk-v1", space="dev", engine=engine, registry=registry)
    facts, markdown = _files(registry)
    fresh = registry.factsheet("credit-risk-v1", engine=engine)
    assert {**fresh, "factsheet_generated_at": None} == {**facts, "factsheet_generated_at": None}
    assert render_factsheet(facts) == markdown
    assert not list(registry.root.rglob("*.tmp"))


def test_text_from_people_cannot_break_the_markdown(engine, registry):
    preprod = deploy("credit-risk-v1", space="preprod", engine=engine, registry=registry)
    evaluation = record_evaluation(
        preprod.deployment_id, verdict="passed", summary={}, engine=engine, registry=registry
    )
    reason = "fine | <script>alert(1)</script>\nsecond line"
    approve(
        "credit-risk-v1", evaluation.evaluation_id, approver=VALIDATOR, reason=reason, engine=engine, registry=registry
    )
    _, markdown = _files(registry)
    assert "| fine \\| &lt;script&gt;alert(1)&lt;/script&gt; second line | counts |" in markdown
    assert "<script>" not in markdown


def test_a_version_outside_the_registry_has_no_factsheet_to_write(engine, registry):
    assert registry.write_factsheet("credit-risk-v9", engine=engine) is None
    with pytest.raises(RegistryError, match="credit-risk-v9"):
        registry.factsheet("credit-risk-v9", engine=engine)


def test_a_factsheet_that_cannot_be_written_keeps_the_old_file_and_the_change(engine, registry, monkeypatch, caplog):
    before = _files(registry)

    def full_disk(path, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(registry_module, "write_text_atomically", full_disk)
    with caplog.at_level(logging.WARNING, logger="utils.registry"):
        deployed = deploy("credit-risk-v1", space="dev", engine=engine, registry=registry)
    assert datamart.read_deployment(engine, deployed.deployment_id) is not None
    assert _files(registry) == before
    assert "the factsheet of credit-risk-v1 was not written: [Errno 28] No space left on device" in caplog.text


def test_limitations_are_computed_from_the_recorded_figures():
    unfair = {"test_decisions": {"Age": {"monitored": "18-25", "reference": "26-75", "disparate_impact": 0.62}}}
    found = limitations({"features": list(FEATURES), "fairness": unfair, "training_data": {"rows": 1200}})
    assert any("1,200 training rows" in item for item in found)
    assert any("`Sex` and `Age` as inputs" in item for item in found)
    assert any(
        "the model's decisions on the test split, applicants of Age 18-25" in item and "0.62 times" in item
        for item in found
    )
    fair = {
        "test_decisions": {"Age": {"monitored": "18-25", "reference": "26-75", "disparate_impact": FOUR_FIFTHS_RULE}}
    }
    assert not any("four-fifths" in item for item in limitations({"fairness": fair}))
    assert any("not recorded" in item for item in limitations({}))
    assert "## Limitations" in render_factsheet(build_factsheet({"model_id": "x-v1"}))


def test_the_command_line_prints_the_factsheet_and_rewrites_it(engine, registry, tmp_path, capsys):
    deployed = deploy("credit-risk-v1", space="dev", engine=engine, registry=registry)
    run = ["--work-dir", str(tmp_path), "factsheet", "--model-id", "credit-risk-v1"]
    assert main(run) == 0
    assert capsys.readouterr().out.startswith("# Model factsheet: credit-risk-v1")
    assert main([*run, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["deployments"][0]["deployment_id"] == deployed.deployment_id
    stale = registry.get("credit-risk-v1").factsheet_json_file
    stale.write_text("{}")  # a factsheet written before this version's records changed
    assert main([*run, "--write"]) == 0 and json.loads(stale.read_text())["deployments"]
    assert main(["--work-dir", str(tmp_path), "factsheet", "--model-id", "credit-risk-v9"]) == 2
    assert "credit-risk-v9" in capsys.readouterr().err


def test_measurements_taken_before_a_version_served_are_not_its_status(engine, registry):
    deployed = deploy("credit-risk-v1", space="dev", engine=engine, registry=registry)
    measured = {"deployment_id": deployed.deployment_id, "evaluation_id": datamart.new_id(), "records": 100}
    measured |= {"monitor": "quality", "metric": "auc_roc", "value": 0.6, "threshold": 0.8, "breached": True}
    datamart.insert_measurements(engine, [{**measured, "evaluated_at": deployed.updated_at}])
    assert [s["status"] for s in registry.factsheet("credit-risk-v1", engine=engine)["monitoring"]] == [ALERT]
    deploy("credit-risk-v2", space="dev", engine=engine, registry=registry)
    assert [s["status"] for s in _files(registry, "credit-risk-v2")[0]["monitoring"]] == [NOT_MONITORED]
