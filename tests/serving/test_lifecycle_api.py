"""The lifecycle endpoints of the scoring service: approvals, "Checks for Model Production" on ``POST
/ml/v4/deployments``, promotion, deployment history and monitor configuration.

The app runs in-process (Starlette's test client), with the API key and the data mart of the shared workspace.
"""

from __future__ import annotations

import warnings

import pytest

from utils import lifecycle
from utils.serving import ServiceSettings, create_app

pytestmark = pytest.mark.datamarts

with warnings.catch_warnings():  # Starlette's test client announces that it will move to httpx2
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

API_KEY = "lifecycle-test-key"
DECISION = {"approver": "Grace Hopper", "reason": "every check passed"}


@pytest.fixture(scope="module")
def client(workspace):
    settings = ServiceSettings(work=workspace.work, datamart_url=workspace.datamart_url, api_key=API_KEY)
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {API_KEY}"}) as client:
        yield client


def _deploy(client, model_id: str, space: str, name: str = "credit-risk"):
    return client.post("/ml/v4/deployments", json={"model_id": model_id, "space": space, "name": name})


def _evaluated(client, workspace, verdict: str = "passed", name: str = "credit-risk") -> lifecycle.EvaluationRecord:
    """``credit-risk-v2`` deployed in preprod over HTTP, and an evaluation of it recorded as the evaluation run does."""
    deployed = _deploy(client, "credit-risk-v2", "preprod", name)
    assert deployed.status_code == 201, deployed.text
    recorded = lifecycle.record_evaluation(
        deployed.json()["deployment_id"], verdict=verdict, summary={"auc_roc": 0.8}, engine=workspace.engine
    )
    return recorded


def _decide(client, evaluation, decision: str, **change):
    body = {"model_id": evaluation.model_id, "evaluation_id": evaluation.evaluation_id, "decision": decision}
    return client.post(f"/ml/v4/deployments/{evaluation.deployment_id}/approvals", json={**body, **DECISION, **change})


def test_prod_through_the_deployments_api_needs_an_approved_pre_prod_evaluation(client, workspace):
    refused = _deploy(client, "credit-risk-v2", "prod")
    assert refused.status_code == 409 and refused.json()["field"] == "model_id"
    assert "'credit-risk-v2' cannot be deployed to prod: it has no preprod evaluation" in refused.json()["error"]
    evaluation = _evaluated(client, workspace)
    assert "passed but is not approved" in _deploy(client, "credit-risk-v2", "prod").json()["error"]
    assert _decide(client, evaluation, "rejected", reason="bias against young applicants").status_code == 201
    rejected = _deploy(client, "credit-risk-v2", "prod")
    assert rejected.status_code == 409 and "was rejected by 'Grace Hopper'" in rejected.json()["error"]
    assert _decide(client, evaluation, "approved").status_code == 201
    accepted = _deploy(client, "credit-risk-v2", "prod")
    assert accepted.status_code == 201 and accepted.json()["space"] == "prod"
    decisions = client.get(f"/ml/v4/models/{evaluation.model_id}/approvals").json()
    assert [(d["decision"], d["superseded"]) for d in decisions] == [("rejected", True), ("approved", False)]
    assert client.get(f"/ml/v4/deployments/{evaluation.deployment_id}/approvals").json() == decisions
    evaluations = client.get(f"/ml/v4/deployments/{evaluation.deployment_id}/evaluations").json()
    assert [e["evaluation_id"] for e in evaluations] == [evaluation.evaluation_id]
    assert evaluations == client.get("/ml/v4/models/credit-risk-v2/evaluations").json()


def test_a_decision_needs_the_api_key_and_a_fitting_evaluation(client, workspace):
    evaluation = _evaluated(client, workspace, verdict="failed", name="failing")
    path = f"/ml/v4/deployments/{evaluation.deployment_id}/approvals"
    body = {"model_id": "credit-risk-v2", "evaluation_id": evaluation.evaluation_id, "decision": "approved", **DECISION}
    assert client.post(path, json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    cases = [
        ({}, 400, "decision", "failed; only a passed evaluation can be approved"),
        ({"model_id": "credit-risk-v1"}, 400, "model_id", "is of model 'credit-risk-v2', not 'credit-risk-v1'"),
        ({"decision": "rejected", "approver": "x/y"}, 400, "approver", "invalid approver 'x/y'"),
        ({"evaluation_id": "0190e4a4-0000-7000-8000-000000000000"}, 404, "evaluation_id", "no evaluation"),
        ({"evaluation_id": "6f1c\x00"}, 400, "evaluation_id", "should match pattern"),  # never queried
        ({"decision": "maybe"}, 400, "decision", "'approved' or 'rejected'"),
    ]
    for change, status, field, message in cases:
        answer = client.post(path, json={**body, **change})
        assert (answer.status_code, answer.json()["field"]) == (status, field), answer.text
        assert message in answer.json()["error"]
    elsewhere = client.post(f"/ml/v4/deployments/{workspace.deployment.deployment_id}/approvals", json=body)
    assert elsewhere.status_code == 400 and "was not run on this deployment" in elsewhere.json()["error"]
    assert client.get(path).json() == []


def test_history_shows_which_version_served_when(client):
    first = _deploy(client, "credit-risk-v1", "dev", "history-demo").json()
    _deploy(client, "credit-risk-v2", "dev", "history-demo")
    path = f"/ml/v4/deployments/{first['deployment_id']}/history"
    periods = client.get(path).json()["periods"]
    assert [p["model_id"] for p in periods] == ["credit-risk-v1", "credit-risk-v2"]
    assert periods[0]["ended_at"] == periods[1]["started_at"] and periods[1]["ended_at"] is None
    assert client.delete(f"/ml/v4/deployments/{first['deployment_id']}").status_code == 204
    assert client.get(path).json()["periods"][-1]["ended_at"] is not None  # kept after removal
    assert client.get("/ml/v4/deployments/never-existed/history").status_code == 404


def test_monitor_configuration_is_read_validated_and_stored(client, workspace):
    path = f"/ml/v4/deployments/{workspace.deployment.deployment_id}/monitor_config"
    default = client.get(path).json()
    assert not default["stored"] and default["document"]["thresholds"]["min_records"] == 100
    refused = client.put(path, json={"thresholds": {"min_records": -3}})
    assert refused.status_code == 400 and "thresholds.min_records counts records" in refused.json()["error"]
    stored = client.put(
        path, json={"thresholds": {"min_records": 60}, "protected_groups": ["Age"], "updated_by": "ops"}
    )
    assert stored.status_code == 200, stored.text
    assert client.get(path).json()["document"] == stored.json()["document"]
    assert list(stored.json()["document"]["protected_groups"]) == ["Age"]
    assert client.get("/ml/v4/deployments/nope/monitor_config").status_code == 404
    assert client.put("/ml/v4/deployments/nope/monitor_config", json={}).status_code == 404


def test_promotion_serves_the_evaluated_file_with_the_pre_prod_configuration(client, workspace):
    promotion = {"model_id": "credit-risk-v1", "name": "promoted", "deployed_by": "release-bot"}
    _evaluated(client, workspace, verdict="failed", name="candidate")  # v2's latest pre-prod evaluation fails
    refused = client.post("/ml/v4/promotions", json={**promotion, "model_id": "credit-risk-v2"})
    assert refused.status_code == 409 and "its latest preprod evaluation" in refused.json()["error"]
    assert "failed" in refused.json()["error"]
    [evaluation] = lifecycle.list_evaluations(model_id="credit-risk-v1", space="preprod", engine=workspace.engine)
    evaluated_file = workspace.registry.get(evaluation.model_id).model_file.read_bytes()
    promoted = client.post("/ml/v4/promotions", json=promotion)
    assert promoted.status_code == 201, promoted.text
    answer = promoted.json()
    assert (answer["deployment"]["space"], answer["deployment"]["model_id"]) == ("prod", "credit-risk-v1")
    assert answer["evaluation_id"] == evaluation.evaluation_id
    assert workspace.registry.get(answer["deployment"]["model_id"]).model_file.read_bytes() == evaluated_file
    source = lifecycle.monitor_config(answer["source_deployment_id"], engine=workspace.engine).document
    assert answer["monitor_config"]["document"] == source
    assert client.get(f"/ml/v4/deployments/{answer['deployment']['deployment_id']}").json() == answer["deployment"]
