"""The scoring service in process: its plain functions, and the app through Starlette's test client (no server)."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from utils import datamart
from utils.data import CATEGORIES, CLASS_ORDER, FEATURES, LABEL
from utils.decision import decide
from utils.deployment import deploy
from utils.scoring import InputError, frame_columns, wml_request
from utils.serving import (
    EXAMPLE,
    EXAMPLE_ROW,
    DeploymentRequest,
    FeedbackRequest,
    ModelUnavailable,
    ScoringRequest,
    Service,
    ServiceSettings,
    create_app,
    render_form,
)
from utils.serving import service as ops

with warnings.catch_warnings():  # Starlette's test client announces that it will move to httpx2
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

API_KEY = "unit-test-key"


@pytest.fixture(scope="module")
def settings(workspace) -> ServiceSettings:
    return ServiceSettings(work=workspace.work, datamart_url=workspace.datamart_url, api_key=API_KEY)


@pytest.fixture(scope="module")
def service(settings) -> Service:
    return Service(settings)


@pytest.fixture(scope="module")
def client(settings):
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {API_KEY}"}) as client:
        yield client


def _expected(workspace, frame) -> np.ndarray:
    model = workspace.model
    proba = model.predict_proba(frame[list(FEATURES)])
    return proba[:, [list(model.classes_).index(c) for c in CLASS_ORDER]]


# ---------------------------------------------------------------- the plain functions


def test_predict_scores_like_the_model_and_logs_every_record(workspace, service):
    frame = workspace.test.head(5)
    request = ScoringRequest(**wml_request(frame))
    response = ops.predict(service, workspace.deployment.deployment_id, request)
    [block] = response.predictions
    probabilities = np.array([pair for _, pair in block.values])
    assert np.abs(probabilities - _expected(workspace, frame)).max() < 1e-6
    assert [label for label, _ in block.values] == decide(probabilities[:, 1]).tolist()
    stored = datamart.read_payload(workspace.engine, workspace.deployment.deployment_id).set_index("transaction_id")
    assert stored.loc[block.transaction_ids, "Age"].tolist() == frame["Age"].tolist()
    assert stored.loc[block.transaction_ids, "model_id"].unique().tolist() == ["credit-risk-v1"]


def test_blocks_are_parsed_checked_and_answered_in_order(workspace, service):
    frame = workspace.test.head(5)
    blocks = wml_request(frame.head(2))["input_data"] + wml_request(frame.tail(3))["input_data"]
    parsed = ops.parse_blocks(ScoringRequest(input_data=blocks).input_data)
    assert [len(block["Age"]) for block in parsed] == [2, 3]
    assert ops.concat(parsed)["Age"] == frame["Age"].tolist()
    scorer = service.scorer(workspace.deployment.model_id)
    scored = ops.score(service.engine, scorer, workspace.deployment, ops.concat(parsed))
    response = ops.wml_response(workspace.deployment, parsed, scored)
    assert [len(block.transaction_ids) for block in response.predictions] == [2, 3]
    with pytest.raises(InputError) as too_many:
        ops.parse_blocks(ScoringRequest(input_data=blocks).input_data, max_rows=4)
    assert (too_many.value.status, too_many.value.field) == (413, "values")


def test_bad_records_raise_input_errors_and_log_nothing(workspace, service):
    request = ScoringRequest(**wml_request(workspace.test.head(2)))
    request.input_data[0].values[1][FEATURES.index("Age")] = 12
    before = len(datamart.read_payload(workspace.engine, workspace.deployment.deployment_id))
    with pytest.raises(InputError) as error:
        ops.predict(service, workspace.deployment.deployment_id, request)
    assert (error.value.status, error.value.field, error.value.row) == (400, "Age", 1)
    with pytest.raises(InputError) as unknown:
        ops.predict(service, "no-such-deployment", request)
    assert (unknown.value.status, unknown.value.field) == (404, "deployment_id")
    assert len(datamart.read_payload(workspace.engine, workspace.deployment.deployment_id)) == before


def test_feedback_is_recorded(workspace, service):
    frame = workspace.test.head(3)
    fields = [*FEATURES, LABEL]
    request = FeedbackRequest(input_data=[{"fields": fields, "values": frame[fields].astype(object).values.tolist()}])
    response = ops.record_feedback(service, workspace.deployment.deployment_id, request)
    stored = datamart.read_feedback(workspace.engine, workspace.deployment.deployment_id)
    assert response.records == 3 and stored["feedback_id"].tolist()[-3:] == response.feedback_ids
    assert stored["label"].tolist()[-3:] == frame[LABEL].tolist()


def test_deployments_are_created_listed_read_and_removed(workspace, service):
    created = ops.create_deployment(service, DeploymentRequest(model_id="credit-risk-v2", space="preprod"))
    assert (created.space, created.model_id, created.status) == ("preprod", "credit-risk-v2", "ready")
    listed = ops.list_deployments(service, space="preprod").resources
    assert [d.deployment_id for d in listed] == [created.deployment_id]
    assert ops.deployment_info(service, created.deployment_id) == created
    ops.remove_deployment(service, created.deployment_id)
    with pytest.raises(InputError) as gone:
        ops.deployment_info(service, created.deployment_id)
    assert gone.value.status == 404
    with pytest.raises(InputError) as refused:
        ops.create_deployment(service, DeploymentRequest(model_id="credit-risk-v7"))
    assert refused.value.field == "model_id"


@pytest.mark.parametrize("name", ["../outside", "a/b", "credit-risk\n", ".."])
def test_a_deployment_name_that_could_become_a_path_is_a_400_naming_the_field(client, name):
    response = client.post("/ml/v4/deployments", json={"model_id": "credit-risk-v1", "name": name})
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "name" and "invalid deployment name" in response.json()["error"]


def test_model_metadata_and_readiness(workspace, service):
    metadata = ops.model_metadata(service, "credit-risk")
    assert [tensor.name for tensor in metadata.inputs] == list(FEATURES)
    assert metadata.versions == [workspace.deployment.model_id]
    assert ops.readiness(service) is None


def test_readiness_names_an_unreachable_data_mart(service, tmp_path, monkeypatch):
    monkeypatch.setattr(service, "engine", create_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.sqlite'}"))
    assert ops.readiness(service) == "the data mart is not reachable: OperationalError"


def test_a_model_that_cannot_be_loaded_is_unavailable(workspace, service):
    copy = workspace.registry.register(workspace.registry.load("credit-risk-v1"), name="broken", metadata={})
    copy.model_file.write_bytes(b"not a model")
    with pytest.raises(ModelUnavailable, match="cannot be loaded"):
        service.scorer(copy.model_id)


# ---------------------------------------------------------------- the app, in process


def test_the_example_request_is_scored_over_the_app(workspace, client):
    response = client.post(f"/ml/v4/deployments/{workspace.deployment.deployment_id}/predictions", json=EXAMPLE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["deployment_id"], body["model_id"]) == (workspace.deployment.deployment_id, "credit-risk-v1")
    assert body["predictions"][0]["fields"] == ["prediction", "probability"]


def test_open_inference_protocol_over_the_app(workspace, client):
    frame = workspace.test.head(3)
    inputs = [
        {"name": name, "shape": [3], "datatype": "BYTES" if name in CATEGORIES else "INT64", "data": values}
        for name, values in frame_columns(frame).items()
    ]
    response = client.post("/v2/models/credit-risk/infer", json={"id": "r1", "inputs": inputs})
    assert response.status_code == 200, response.text
    outputs = {tensor["name"]: tensor for tensor in response.json()["outputs"]}
    probabilities = np.array(outputs["probability"]["data"]).reshape(3, 2)
    assert np.abs(probabilities - _expected(workspace, frame)).max() < 1e-6
    assert client.get("/v2/models/credit-risk/ready").json() == {"name": "credit-risk", "ready": True}


def test_errors_are_json_with_field_and_row(workspace, client):
    path = f"/ml/v4/deployments/{workspace.deployment.deployment_id}/predictions"
    malformed = client.post(path, content=b'{"input_data": [', headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["field"] == "body"
    assert "Content-Type" in client.post(path, content=b"{}").json()["error"]
    too_big = client.post(path, content=b" " * (9 * 1024 * 1024), headers={"Content-Type": "application/json"})
    assert too_big.status_code == 413 and too_big.json()["field"] == "body"
    unknown = client.post("/ml/v4/deployments/nope/predictions", json=EXAMPLE)
    assert unknown.status_code == 404 and unknown.json() == {
        "error": "no deployment with id 'nope'",
        "field": "deployment_id",
        "row": None,
    }
    bad_space = client.get("/ml/v4/deployments", params={"space": "qa"})
    assert bad_space.status_code == 400 and bad_space.json()["field"] == "space"
    assert client.get("/no/such/path").json() == {"error": "Not Found", "field": None, "row": None}


def test_the_api_key_is_a_dependency_of_the_protected_routes(workspace, settings):
    with TestClient(create_app(settings)) as anonymous:
        refused = anonymous.get("/ml/v4/deployments")
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
        assert "API key" in refused.json()["error"]
        assert anonymous.get("/v2/models/credit-risk").status_code == 401
        assert anonymous.get("/v2/health/live").json() == {"live": True}
        assert anonymous.get("/v2/health/ready").json() == {"ready": True}
        assert anonymous.get("/").status_code == 200


def test_form_docs_and_openapi(client):
    page = client.get("/")
    assert page.text == render_form(api_key_required=True)
    assert '<select id="CheckingStatus"' in page.text and 'id="apikey" type="password">' in page.text
    assert 'id="apikey" type="password" hidden>' in render_form(api_key_required=False)
    assert "${" not in page.text  # every template placeholder is filled
    assert "cdn" not in client.get("/docs").text.lower()
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths) == {
        "/ml/v4/deployments/{deployment_id}/predictions",
        "/ml/v4/deployments/{deployment_id}/feedback",
        "/ml/v4/deployments",
        "/ml/v4/deployments/{deployment_id}",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/infer",
    }


def test_the_app_holds_its_service(settings):
    app = create_app(settings)
    assert isinstance(app.state.service, Service) and isinstance(app.state.service.engine, Engine)
    assert app.state.service.registry.root == settings.work / "registry"


def test_a_data_mart_file_removed_under_the_app_gets_503s_and_no_acknowledgement(workspace, tmp_path):
    path = tmp_path / "datamart.sqlite"
    engine = datamart.connect(f"sqlite:///{path}")
    deployment = deploy("credit-risk-v1", engine=engine, registry=workspace.registry)
    settings = ServiceSettings(work=workspace.work, datamart_url=f"sqlite:///{path}")
    scoring = f"/ml/v4/deployments/{deployment.deployment_id}/predictions"
    feedback = {"input_data": [{"fields": [*FEATURES, LABEL], "values": [EXAMPLE_ROW + ["No Risk"]]}]}
    with TestClient(create_app(settings)) as client:
        assert client.post(scoring, json=EXAMPLE).status_code == 200
        assert client.get("/v2/health/ready").json() == {"ready": True}
        path.unlink()
        answers = [
            client.post(scoring, json=EXAMPLE),
            client.post("/v2/models/credit-risk/infer", json={"inputs": []}),
            client.post(f"/ml/v4/deployments/{deployment.deployment_id}/feedback", json=feedback),
            client.get(f"/ml/v4/deployments/{deployment.deployment_id}"),
            client.get("/v2/health/ready"),
        ]
        assert client.get("/v2/health/live").json() == {"live": True}
    statuses = [answer.status_code for answer in answers]
    assert statuses[0] == 503 and statuses[-1] == 503 and 200 not in statuses, statuses
    for answer in (answers[0], answers[2], answers[4]):
        assert answer.status_code == 503, answer.text
        message = answer.json()["error"]
        assert "removed or replaced" in message and "restart the service" in message
        assert str(tmp_path) not in message, "a client is not told where the server's files are"
    with pytest.raises(datamart.DatamartUnavailable):
        datamart.check(engine)


def test_readiness_that_does_not_answer_in_time_is_a_503_and_liveness_stays_instant(settings, monkeypatch):
    monkeypatch.setattr(ops, "READY_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(ops, "readiness", lambda _service: time.sleep(1.0))  # a data mart that hangs
    with TestClient(create_app(settings)) as client:
        started = time.monotonic()
        ready = client.get("/v2/health/ready")
        assert ready.status_code == 503 and "did not answer within 0.2 s" in ready.json()["error"]
        assert time.monotonic() - started < 0.9
        assert client.get("/v2/health/live").json() == {"live": True}
