"""The scoring service in process: its plain functions, and the app through Starlette's test client (no server)."""

from __future__ import annotations

import json
import logging
import re
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
    binary_tensors,
    create_app,
    render_form,
)
from utils.serving import service as ops
from utils.serving.direct_route import DirectPredictions
from utils.serving.routes import INFERENCE_EXAMPLE

pytestmark = pytest.mark.datamarts

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
    scored = ops.score(service.payload.commit, scorer, workspace.deployment, ops.concat(parsed))
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
    assert set(paths) >= {
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


# ---------------------------------------------------------------- the binary tensor data extension


def test_binary_tensors_are_little_endian_and_length_prefixed():
    assert binary_tensors.encode_tensor("INT64", [1, -2]) == (1).to_bytes(8, "little") + (-2).to_bytes(
        8, "little", signed=True
    )
    assert binary_tensors.encode_tensor("BYTES", ["ab", ""]) == b"\x02\x00\x00\x00ab\x00\x00\x00\x00"
    assert binary_tensors.encode_tensor("FP64", [0.25]) == np.array([0.25], dtype="<f8").tobytes()
    for datatype, data in [("BYTES", ["no_checking", "é", ""]), ("INT64", [13, 46]), ("FP32", [1.5]), ("UINT8", [7])]:
        assert binary_tensors.decode_tensor("x", datatype, binary_tensors.encode_tensor(datatype, data)) == data


@pytest.mark.parametrize(
    ("header", "binary", "length", "field", "words"),
    [
        ({"inputs": [{"name": "Age", "datatype": "INT64", "parameters": {"binary_data_size": 8}}]}, b"\x00" * 4, None,
         "Age", "declares 8 bytes"),
        ({"inputs": [{"name": "Age", "datatype": "INT64", "parameters": {"binary_data_size": 4}}]}, b"\x00" * 4, None,
         "Age", "whole number of INT64"),
        ({"inputs": [{"name": "Sex", "datatype": "BYTES", "parameters": {"binary_data_size": 6}}]},
         b"\x02\x00\x00\x00\xff\xfe", None, "Sex", "not UTF-8"),
        ({"inputs": [{"name": "Sex", "datatype": "BYTES", "parameters": {"binary_data_size": 6}}]},
         b"\x09\x00\x00\x00ab", None, "Sex", "declares 9 bytes"),
        ({"inputs": []}, b"\x00", None, binary_tensors.HEADER_LENGTH, "1 bytes of binary data"),
        ({"inputs": []}, b"", "99", binary_tensors.HEADER_LENGTH, "at most the body's"),
    ],
)  # fmt: skip
def test_binary_bodies_that_do_not_add_up_name_the_input(header, binary, length, field, words):
    head = json.dumps(header).encode()
    with pytest.raises(InputError) as refused:
        body, rest = binary_tensors.split_body(head + binary, length or str(len(head)))
        binary_tensors.attach_binary_inputs(json.loads(body), rest)
    assert refused.value.field == field and words in refused.value.message


def _binary_request(frame, *, shape_2d: bool = False) -> tuple[bytes, dict]:
    inputs, chunks = [], []
    for name, values in frame_columns(frame).items():
        datatype = "BYTES" if name in CATEGORIES else "INT64"
        raw = binary_tensors.encode_tensor(datatype, values)
        shape = [len(values), 1] if shape_2d else [len(values)]
        inputs.append(
            {"name": name, "shape": shape, "datatype": datatype, "parameters": {"binary_data_size": len(raw)}}
        )
        chunks.append(raw)
    header = json.dumps({"inputs": inputs, "parameters": {"binary_data_output": True}}).encode()
    return header + b"".join(chunks), {binary_tensors.HEADER_LENGTH: str(len(header))}


def test_infer_takes_json_without_content_type_and_binary_tensors(workspace, client):
    frame = workspace.test.head(4)
    json_body = json.dumps(INFERENCE_EXAMPLE["applicant"]["value"]).encode()
    plain = client.post("/v2/models/credit-risk/infer", content=json_body)  # no Content-Type, as tritonclient sends
    assert plain.status_code == 200, plain.text
    body, headers = _binary_request(frame, shape_2d=True)
    answer = client.post("/v2/models/credit-risk/infer", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    length = int(answer.headers[binary_tensors.HEADER_LENGTH])
    reply = json.loads(answer.content[:length])
    sizes = [output["parameters"]["binary_data_size"] for output in reply["outputs"]]
    assert all("data" not in output for output in reply["outputs"]) and sum(sizes) == len(answer.content) - length
    probability = np.frombuffer(answer.content[length + sizes[0] : length + sizes[0] + sizes[1]], dtype="<f8")
    assert np.abs(probability.reshape(4, 2) - _expected(workspace, frame)).max() < 1e-6


# ---------------------------------------------------------------- a schema as strict as the contract


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"[" * 5000 + b"]" * 5000, "deeper than the limit of 1,000 levels"),
        (b'{"input_data": "\xff"}', "not UTF-8 text: byte 0xff at byte 16"),
        (b'{"input_data": ' + b"7" * 5000 + b"}", "integer of over 4,300 digits"),
    ],
)
def test_bodies_the_parser_refuses_get_a_400_saying_what_is_wrong(workspace, client, body, words):
    for path in (
        f"/ml/v4/deployments/{workspace.deployment.deployment_id}/predictions",
        "/v2/models/credit-risk/infer",
    ):
        response = client.post(path, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, response.text
        assert response.json()["field"] == "body" and words in response.json()["error"], response.text


def test_a_405_allows_every_method_of_the_path(client):
    response = client.put("/ml/v4/deployments")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"
    assert "allowed: GET, POST" in response.json()["error"]
    assert client.patch("/ml/v4/deployments/some-id").headers["Allow"] == "DELETE, GET"


def test_the_openapi_document_is_as_strict_as_the_answers(client):
    spec = client.get("/openapi.json").json()
    assert '"422"' not in json.dumps(spec), "validation errors are answered 400, never 422"
    schemas = spec["components"]["schemas"]
    assert schemas["InputData"]["properties"]["fields"]["minItems"] == 1
    assert schemas["InputData"]["properties"]["values"]["minItems"] == 1
    assert "BYTES" in schemas["Tensor"]["properties"]["datatype"]["enum"]
    infer = spec["paths"]["/v2/models/{name}/infer"]["post"]
    assert infer["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/InferenceRequest"
    }
    assert "InferenceRequest" in schemas
    live = spec["paths"]["/v2/health/live"]["get"]["responses"]
    assert set(live) == {"200"}
    empty_fields = {"input_data": [{"fields": [], "values": [[1]]}]}
    refused = client.post("/ml/v4/deployments/any/predictions", json=empty_fields)
    assert refused.status_code == 400 and refused.json()["field"] == "input_data[0].fields"


def test_every_documented_example_is_answered_with_success(workspace, client):
    """What "Try it out" sends from the docs is a valid request, for every operation that has a body."""
    spec = client.get("/openapi.json").json()["paths"]
    deployment_id = workspace.deployment.deployment_id  # a deployment is a subscription too
    path_values = {"deployment_id": deployment_id, "name": "credit-risk", "subscription_id": deployment_id}
    tried = set()
    for path, operations in spec.items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            for example in content.get("examples", {}).values():
                response = client.request(method, path.format(**path_values), json=example["value"])
                assert response.status_code in (200, 201), (method, path, response.text)
                tried.add(path)
    assert {
        "/ml/v4/deployments/{deployment_id}/predictions",
        "/ml/v4/deployments/{deployment_id}/feedback",
        "/ml/v4/deployments",
        "/v2/models/{name}/infer",
    } <= tried


# ---------------------------------------------------------------- what open routes and errors reveal


def test_open_model_readiness_names_no_deployment_without_the_key(workspace, settings):
    twins = [
        deploy("credit-risk-v1", name="twin", space=space, engine=workspace.engine, registry=workspace.registry)
        for space in ("dev", "prod")
    ]
    with TestClient(create_app(settings)) as anonymous:
        answer = anonymous.get("/v2/models/twin/ready")
        with_key = anonymous.get("/v2/models/twin/ready", headers={"Authorization": f"Bearer {API_KEY}"})
        assert anonymous.get(f"/v2/models/{twins[0].deployment_id}/ready").json()["ready"] is True
    assert answer.status_code == 400 and answer.json()["field"] == "name"
    assert not any(twin.deployment_id in answer.text for twin in twins), answer.text
    assert with_key.status_code == 400 and all(twin.deployment_id in with_key.text for twin in twins)


def test_a_failed_call_logs_one_line_and_names_no_server_file(workspace, client, caplog):
    copy = workspace.registry.register(workspace.registry.load("credit-risk-v1"), name="leaky", metadata={})
    leaky = deploy(copy.model_id, name="leaky", engine=workspace.engine, registry=workspace.registry)
    copy.model_file.unlink()
    failures = [
        ("post", f"/ml/v4/deployments/{leaky.deployment_id}/predictions", 503),
        ("post", "/ml/v4/deployments/no-such-deployment/predictions", 404),
        ("post", f"/ml/v4/deployments/{workspace.deployment.deployment_id}/predictions", 400),
    ]
    for method, path, status in failures:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            body = EXAMPLE if status != 400 else {"input_data": [{"fields": ["Age"], "values": [[12]]}]}
            response = client.request(method, path, json=body)
        assert response.status_code == status, response.text
        assert str(workspace.work) not in response.text and ".skops" not in response.text, response.text
        served = [record for record in caplog.records if record.name.startswith(("utils", "uvicorn", "fastapi"))]
        lines = [line for record in served for line in record.getMessage().splitlines()]
        assert len(lines) <= 1 and not any(record.exc_info for record in served), caplog.text


def test_a_data_mart_error_is_one_log_line_and_a_503(workspace, settings, tmp_path, monkeypatch, caplog):
    app = create_app(settings)
    unreachable = create_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.sqlite'}")
    with TestClient(app, headers={"Authorization": f"Bearer {API_KEY}"}) as client:
        monkeypatch.setattr(app.state.service, "engine", unreachable)  # after start-up: the data mart goes away
        caplog.clear()
        with caplog.at_level(logging.INFO):
            response = client.get("/ml/v4/deployments")
    assert response.status_code == 503 and "cannot be written or read (OperationalError)" in response.json()["error"]
    assert str(tmp_path) not in response.text
    served = [record for record in caplog.records if record.name.startswith("utils.serving")]
    assert len(served) == 1 and not served[0].exc_info and len(served[0].getMessage().splitlines()) == 1, caplog.text
    assert "GET /ml/v4/deployments" in served[0].getMessage()


# ---------------------------------------------------------------- the direct route of predictions

#: A transaction id in an answer (a UUID in the version 7 layout).
_TRANSACTION_ID = re.compile(rb'"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}"')


def _fastapi_only(settings: ServiceSettings):
    """The app without its direct route of predictions: every request answered by FastAPI's route."""
    app = create_app(settings)
    app.user_middleware = [middleware for middleware in app.user_middleware if middleware.cls is not DirectPredictions]
    return app


def _scoring_requests(workspace) -> list[tuple[str, bytes, dict[str, str]]]:
    """Good and bad scoring requests: (deployment id, body, headers)."""
    deployment_id, json_type = workspace.deployment.deployment_id, {"Content-Type": "application/json"}
    rows = wml_request(workspace.test.head(12))["input_data"][0]["values"]
    block = {"fields": list(FEATURES), "values": rows[:1]}
    reordered = {"fields": list(reversed(FEATURES)), "values": [list(reversed(row)) for row in rows[1:3]]}
    bad_age = {
        "fields": list(FEATURES),
        "values": [[*rows[0][:12], "old", *rows[0][13:]], [*rows[1][:5], -1, *rows[1][6:]]],
    }
    bodies = [
        {"input_data": [block]},  # scored on the event loop
        {"input_data": [block, reordered], "extra": 1},
        {"input_data": [{"fields": list(FEATURES), "values": rows}]},  # over LOOP_ROWS: in a worker thread
        {"input_data": [bad_age]},  # the contract's faults
        {"input_data": [{"fields": ["Age"], "values": [[30]]}]},
        {"input_data": [{"fields": list(FEATURES), "values": rows[:1] * 1001}]},  # over the row limit
        {"input_data": []},  # refused by the body model
    ]
    requests = [(deployment_id, json.dumps(body).encode(), json_type) for body in bodies]
    one = requests[0][1]
    return [
        *requests,
        (deployment_id, b'{"input_data": [', json_type),
        (deployment_id, one, {"Content-Type": "text/plain"}),
        (deployment_id, one, {**json_type, "Authorization": ""}),
        (deployment_id, one, {**json_type, "Authorization": "Bearer wrong-key"}),
        (deployment_id, one, {"Content-Type": "Application/JSON; charset=utf-8", "Authorization": f"bearer {API_KEY}"}),
        ("nope", one, json_type),
    ]


def test_the_direct_route_answers_what_fastapis_route_answers_and_stores_every_record(workspace, settings, client):
    stored_before = len(datamart.read_payload(workspace.engine, workspace.deployment.deployment_id))
    answered = 0
    with TestClient(_fastapi_only(settings), headers={"Authorization": f"Bearer {API_KEY}"}) as fastapi_route:
        for deployment_id, body, headers in _scoring_requests(workspace):
            path = f"/ml/v4/deployments/{deployment_id}/predictions"
            direct, expected = (app.post(path, content=body, headers=headers) for app in (client, fastapi_route))
            seen = [
                (r.status_code, r.headers.items(), _TRANSACTION_ID.sub(b'"id"', r.content)) for r in (direct, expected)
            ]
            assert seen[0] == seen[1], (body[:60], headers)
            if direct.status_code == 200:  # both stored their records
                answered += sum(len(b["transaction_ids"]) for r in (direct, expected) for b in r.json()["predictions"])
    assert len(datamart.read_payload(workspace.engine, workspace.deployment.deployment_id)) == stored_before + answered
