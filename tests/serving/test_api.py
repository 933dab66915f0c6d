"""The scoring service over HTTP: the real server (uvicorn, two workers) on a free port in a temporary work dir."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from utils import datamart
from utils.data import CLASS_ORDER, FEATURES, LABEL
from utils.decision import decide
from utils.deployment import Deployment, deploy
from utils.registry import ModelRegistry
from utils.scoring import MAX_ROWS, wml_request
from utils.serving import ServerHandle, start_server

pytestmark = [pytest.mark.slow, pytest.mark.datamarts]

API_KEY = "workshop-test-key"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "serving.md"
CONTRACT_REQUEST = {
    "input_data": [
        {
            "fields": list(FEATURES),
            "values": [
                [
                    "no_checking", 13, "credits_paid_to_date", "car_new", 1343, "100_to_500", "1_to_4", 2, "female",
                    "none", 3, "savings_insurance", 46, "none", "own", 2, "skilled", 1, "none", "yes",
                ]
            ],
        }
    ]
}  # fmt: skip


@dataclass
class Service:
    server: ServerHandle
    client: httpx.Client
    engine: object
    registry: ModelRegistry
    deployment: Deployment
    applicants: pd.DataFrame

    def predictions_path(self, deployment_id: str | None = None) -> str:
        return f"/ml/v4/deployments/{deployment_id or self.deployment.deployment_id}/predictions"

    def stored(self, deployment_id: str | None = None) -> pd.DataFrame:
        return datamart.read_payload(self.engine, deployment_id or self.deployment.deployment_id)


@pytest.fixture(scope="module")
def service(workspace) -> Service:
    server = start_server(
        workers=2,
        work=workspace.work,
        datamart_url=workspace.datamart_url,
        api_key=API_KEY,
        access_log=False,
        timeout=120,
    )
    client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)
    try:
        yield Service(server, client, workspace.engine, workspace.registry, workspace.deployment, workspace.test)
    finally:
        client.close()
        server.stop()


def _expected(service: Service, frame: pd.DataFrame, model_id: str = "credit-risk-v1") -> np.ndarray:
    model = service.registry.load(model_id)
    proba = model.predict_proba(frame[list(FEATURES)])
    return proba[:, [list(model.classes_).index(c) for c in CLASS_ORDER]]


def test_the_contract_request_is_scored_and_logged(service):
    before = len(service.stored())
    response = service.client.post(service.predictions_path(), json=CONTRACT_REQUEST)
    assert response.status_code == 200, response.text
    body = response.json()
    block = body["predictions"][0]
    assert block["fields"] == ["prediction", "probability"]
    [[prediction, probability]] = block["values"]
    expected = _expected(service, pd.DataFrame(CONTRACT_REQUEST["input_data"][0]["values"], columns=list(FEATURES)))
    assert np.allclose(probability, expected[0], atol=1e-6)
    assert prediction == decide(expected[0][1])
    assert (body["deployment_id"], body["model_id"]) == (service.deployment.deployment_id, "credit-risk-v1")
    stored = service.stored()
    assert len(stored) == before + 1
    record = stored.set_index("transaction_id").loc[block["transaction_ids"][0]]
    assert (record["Age"], record["LoanPurpose"], record["prediction"]) == (46, "car_new", prediction)
    assert record["probability_risk"] == pytest.approx(probability[1], abs=1e-12)


def test_the_curl_command_in_the_docs_works_as_written(service):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    command = next(block for block in re.findall(r"```bash\n(.*?)```", DOCS.read_text(), re.S) if "curl" in block)
    payload = json.loads(re.search(r"-d '(.*)'", command, re.S).group(1))
    assert payload == CONTRACT_REQUEST
    env = {**os.environ, "DEPLOYMENT_ID": service.deployment.deployment_id, "CREDIT_API_KEY": API_KEY}
    command = command.replace("http://127.0.0.1:8000", service.server.url)
    result = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["predictions"][0]["fields"] == ["prediction", "probability"]


def test_many_rows_with_fields_in_any_order(service):
    frame = service.applicants.head(50)
    fields = list(reversed(FEATURES))
    request = {"input_data": [{"fields": fields, "values": frame[fields].astype(object).values.tolist()}]}
    response = service.client.post(service.predictions_path(), json=request)
    assert response.status_code == 200, response.text
    block = response.json()["predictions"][0]
    probabilities = np.array([pair for _, pair in block["values"]])
    assert np.abs(probabilities - _expected(service, frame)).max() < 1e-6
    assert len(set(block["transaction_ids"])) == 50


def test_several_input_blocks_get_one_predictions_block_each(service):
    frame = service.applicants.head(5)
    blocks = wml_request(frame.head(2))["input_data"] + wml_request(frame.tail(3))["input_data"]
    response = service.client.post(service.predictions_path(), json={"input_data": blocks})
    assert response.status_code == 200, response.text
    assert [len(block["values"]) for block in response.json()["predictions"]] == [2, 3]


def _row(**changes) -> list:
    row = list(CONTRACT_REQUEST["input_data"][0]["values"][0])
    for name, value in changes.items():
        row[FEATURES.index(name)] = value
    return row


def _request(values: list, fields: list | None = None) -> dict:
    return {"input_data": [{"fields": fields or list(FEATURES), "values": values}]}


@pytest.mark.parametrize(
    ("content", "status", "field", "row"),
    [
        (b'{"input_data": [{"fields": ', 400, "body", None),
        (b"[1, 2, 3]", 400, "body", None),
        (_request([_row()], [*FEATURES[:-1], "Salary"]), 400, "Salary", None),
        (_request([_row()[:-1]], list(FEATURES[:-1])), 400, "ForeignWorker", None),
        (_request([_row(), _row(Age="46")]), 400, "Age", 1),
        (_request([_row(LoanPurpose="boat")]), 400, "LoanPurpose", 0),
        (_request([_row(), _row(), _row(LoanAmount=0)]), 400, "LoanAmount", 2),
        (_request([_row(Sex=None)]), 400, "Sex", 0),
        (_request([_row(), _row()[:3]]), 400, "values", 1),
        (_request([]), 400, "input_data[0].values", None),
        ({"input_data": []}, 400, "input_data", None),
        ({"input_data": [{"fields": list(FEATURES), "values": [7]}]}, 400, "input_data[0].values", 0),
        (_request([_row()] * (MAX_ROWS + 1)), 413, "values", MAX_ROWS),
    ],
)
def test_bad_input_gets_a_4xx_naming_field_and_row_and_is_not_logged(service, content, status, field, row):
    before = len(service.stored())
    if isinstance(content, bytes):
        response = service.client.post(
            service.predictions_path(), content=content, headers={"Content-Type": "application/json"}
        )
    else:
        response = service.client.post(service.predictions_path(), json=content)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] and (body["field"], body["row"]) == (field, row)
    assert len(service.stored()) == before


def test_odd_requests_never_cause_a_500(service):
    path = service.predictions_path()
    oddities = [b"", b"null", b"{}", b'"text"', b'{"input_data": {"fields": []}}', b'{"input_data": [null]}']
    oddities += [json.dumps(_request([_row(Age=value)])).encode() for value in ("NaN", 1e400, [46], {"a": 1}, -1)]
    oddities.append(b'{"input_data": [{"fields": ["Age", "Age"], "values": [[1, 2]]}]}')
    for content in oddities:
        response = service.client.post(path, content=content, headers={"Content-Type": "application/json"})
        assert 400 <= response.status_code < 500, (content, response.text)
        assert "error" in response.json()
    no_json_header = service.client.post(path, content=json.dumps(CONTRACT_REQUEST))
    assert no_json_header.status_code == 400 and "Content-Type" in no_json_header.json()["error"]
    too_big = service.client.post(path, content=b" " * (9 * 1024 * 1024), headers={"Content-Type": "application/json"})
    assert too_big.status_code == 413 and too_big.json()["field"] == "body"
    unknown = service.client.post(service.predictions_path("no-such-deployment"), json=CONTRACT_REQUEST)
    assert unknown.status_code == 404 and unknown.json()["field"] == "deployment_id"


def test_api_key_guards_everything_but_health(service):
    anonymous = httpx.Client(base_url=service.server.url, timeout=10)
    wrong = httpx.Client(base_url=service.server.url, headers={"Authorization": "Bearer nope"}, timeout=10)
    for client in (anonymous, wrong):
        for method, path in [
            ("POST", service.predictions_path()),
            ("POST", f"/ml/v4/deployments/{service.deployment.deployment_id}/feedback"),
            ("GET", "/ml/v4/deployments"),
            ("GET", "/v2/models/credit-risk"),
            ("POST", "/v2/models/credit-risk/infer"),
        ]:
            response = client.request(method, path, json=CONTRACT_REQUEST)
            assert response.status_code == 401, (method, path, response.text)
            assert "API key" in response.json()["error"]
        assert client.get("/v2/health/live").json() == {"live": True}
        assert client.get("/v2/health/ready").json() == {"ready": True}
        assert client.get("/v2/models/credit-risk/ready").json()["ready"] is True
    anonymous.close()
    wrong.close()


def _tensors(frame: pd.DataFrame) -> list[dict]:
    return [
        {
            "name": name,
            "shape": [len(frame)],
            "datatype": "BYTES" if frame[name].dtype == object else "INT64",
            "data": frame[name].astype(object).tolist(),
        }
        for name in FEATURES
    ]


def test_open_inference_protocol(service):
    metadata = service.client.get("/v2/models/credit-risk").json()
    assert [tensor["name"] for tensor in metadata["inputs"]] == list(FEATURES)
    assert metadata["versions"] == ["credit-risk-v1"]
    frame = service.applicants.head(4)
    before = len(service.stored())
    response = service.client.post("/v2/models/credit-risk/infer", json={"id": "r1", "inputs": _tensors(frame)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("credit-risk", "credit-risk-v1", "r1")
    outputs = {tensor["name"]: tensor for tensor in body["outputs"]}
    assert outputs["probability"]["shape"] == [4, 2]
    probabilities = np.array(outputs["probability"]["data"]).reshape(4, 2)
    assert np.abs(probabilities - _expected(service, frame)).max() < 1e-6
    assert len(outputs["transaction_id"]["data"]) == len(outputs["prediction"]["data"]) == 4
    assert len(service.stored()) == before + 4
    by_id = service.client.post(
        f"/v2/models/{service.deployment.deployment_id}/infer", json={"inputs": _tensors(frame)}
    )
    assert by_id.status_code == 200


def test_open_inference_protocol_errors(service):
    tensors = _tensors(service.applicants.head(2))
    tensors[12]["data"][1] = 12  # Age
    response = service.client.post("/v2/models/credit-risk/infer", json={"inputs": tensors})
    assert response.status_code == 400
    assert (response.json()["field"], response.json()["row"]) == ("Age", 1)
    tensors[0]["datatype"] = "FP32"
    assert service.client.post("/v2/models/credit-risk/infer", json={"inputs": tensors}).json()["field"] == (
        "CheckingStatus"
    )
    assert service.client.post("/v2/models/credit-risk/infer", json={"inputs": []}).status_code == 400
    missing = service.client.post("/v2/models/no-such-model/infer", json={"inputs": _tensors(service.applicants[:1])})
    assert missing.status_code == 404 and "error" in missing.json()
    assert service.client.get("/v2/models/no-such-model/ready").status_code == 404


def test_feedback_is_stored_for_quality_monitoring(service):
    frame = service.applicants.head(3)
    fields = [*FEATURES, LABEL]
    request = {"input_data": [{"fields": fields, "values": frame[fields].astype(object).values.tolist()}]}
    path = f"/ml/v4/deployments/{service.deployment.deployment_id}/feedback"
    response = service.client.post(path, json=request)
    assert response.status_code == 200, response.text
    assert response.json()["records"] == 3
    stored = datamart.read_feedback(service.engine, service.deployment.deployment_id)
    assert stored["label"].tolist()[-3:] == frame[LABEL].tolist()
    assert stored["feedback_id"].tolist()[-3:] == response.json()["feedback_ids"]
    request["input_data"][0]["values"][1][-1] = "Maybe"
    bad = service.client.post(path, json=request)
    assert bad.status_code == 400 and (bad.json()["field"], bad.json()["row"]) == (LABEL, 1)


def test_deployments_over_http(service):
    created = service.client.post("/ml/v4/deployments", json={"model_id": "credit-risk-v2", "space": "preprod"})
    assert created.status_code == 201, created.text
    deployment = created.json()
    assert (deployment["space"], deployment["model_id"], deployment["status"]) == ("preprod", "credit-risk-v2", "ready")
    listed = service.client.get("/ml/v4/deployments", params={"space": "preprod"}).json()["resources"]
    assert [d["deployment_id"] for d in listed] == [deployment["deployment_id"]]
    path = f"/ml/v4/deployments/{deployment['deployment_id']}"
    assert service.client.get(path).json() == deployment
    scored = service.client.post(f"{path}/predictions", json=CONTRACT_REQUEST)
    assert scored.status_code == 200 and scored.json()["model_id"] == "credit-risk-v2"
    assert service.client.delete(path).status_code == 204
    assert service.client.get(path).status_code == 404
    refused = service.client.post("/ml/v4/deployments", json={"model_id": "credit-risk-v7"})
    assert refused.status_code == 404 and refused.json()["field"] == "model_id"
    bad_space = service.client.post("/ml/v4/deployments", json={"model_id": "credit-risk-v1", "space": "qa"})
    assert bad_space.status_code == 400 and bad_space.json()["field"] == "space"


def test_replacing_a_model_under_load_fails_no_request_and_loses_no_record(service):
    challenger = deploy("credit-risk-v1", name="challenger", engine=service.engine, registry=service.registry)
    path = service.predictions_path(challenger.deployment_id)
    body = json.dumps(wml_request(service.applicants.head(2))).encode()
    statuses: list[int] = []
    models: list[str] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=service.server.url, headers=service.client.headers, timeout=30) as http:
            while not stop.is_set():
                response = http.post(path, content=body, headers={"Content-Type": "application/json"})
                statuses.append(response.status_code)
                if response.status_code == 200:
                    models.append(response.json()["model_id"])

    clients = [threading.Thread(target=client) for _ in range(6)]
    for thread in clients:
        thread.start()
    time.sleep(0.5)
    replaced = deploy("credit-risk-v2", name="challenger", engine=service.engine, registry=service.registry)
    assert replaced.deployment_id == challenger.deployment_id
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and models[-20:].count("credit-risk-v2") < 20:
        time.sleep(0.1)
    stop.set()
    for thread in clients:
        thread.join()
    assert set(statuses) == {200}
    assert models[-1] == "credit-risk-v2" and "credit-risk-v1" in models
    assert len(service.stored(challenger.deployment_id)) == 2 * len(statuses)


def test_a_model_that_cannot_be_loaded_gives_a_503_and_logs_nothing(service):
    copy = service.registry.register(service.registry.load("credit-risk-v2"), name="fragile", metadata={})
    fragile = deploy(copy.model_id, name="fragile", engine=service.engine, registry=service.registry)
    copy.model_file.write_bytes(b"not a model")
    log_lines = len(service.server.log().splitlines())
    response = service.client.post(service.predictions_path(fragile.deployment_id), json=CONTRACT_REQUEST)
    assert response.status_code == 503 and "cannot be loaded" in response.json()["error"]
    assert copy.model_id in response.json()["error"]
    assert str(copy.model_file.parent) not in response.text and ".skops" not in response.text, response.text
    assert service.stored(fragile.deployment_id).empty
    written = _wait_for_log(service, log_lines)
    assert len(written) == 1 and copy.model_id in written[0], written  # one concise line, no traceback


def _wait_for_log(service: Service, known: int, seconds: float = 2.0) -> list[str]:
    """The server log's lines after the first ``known``, once it has stopped growing (or after ``seconds``)."""
    deadline = time.monotonic() + seconds
    lines = service.server.log().splitlines()[known:]
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = service.server.log().splitlines()[known:]
        if now == lines and lines:
            break
        lines = now
    return lines


def test_client_errors_write_nothing_to_the_server_log(service):
    log_lines = len(service.server.log().splitlines())
    for path, body in [
        (service.predictions_path("no-such-deployment"), CONTRACT_REQUEST),
        (service.predictions_path(), _request([_row(Age=12)])),
        ("/v2/models/no-such-model/infer", {"inputs": []}),
    ]:
        assert 400 <= service.client.post(path, json=body).status_code < 500
    time.sleep(0.5)
    assert service.server.log().splitlines()[log_lines:] == []


def test_open_routes_reveal_only_liveness_and_readiness(service):
    twins = [
        deploy("credit-risk-v1", name="twin", space=space, engine=service.engine, registry=service.registry)
        for space in ("dev", "prod")
    ]
    with httpx.Client(base_url=service.server.url, timeout=10) as anonymous:
        ready = anonymous.get("/v2/models/twin/ready")
        assert ready.status_code == 400 and not any(twin.deployment_id in ready.text for twin in twins), ready.text
        assert anonymous.get(f"/v2/models/{twins[1].deployment_id}/ready").json()["ready"] is True
        for path in ("/v2/models/twin", "/ml/v4/deployments", f"/ml/v4/deployments/{twins[0].deployment_id}"):
            assert anonymous.get(path).status_code == 401, path
    with_key = service.client.get("/v2/models/twin/ready")
    assert with_key.status_code == 400 and all(twin.deployment_id in with_key.text for twin in twins)


def test_documentation_and_form_are_served(service):
    docs = service.client.get("/docs")
    assert docs.status_code == 200
    assert "cdn" not in docs.text.lower(), "the documentation page must work offline"
    assert service.client.get("/static/swagger/swagger-ui-bundle.js").status_code == 200
    paths = service.client.get("/openapi.json").json()["paths"]
    assert {"/ml/v4/deployments/{deployment_id}/predictions", "/v2/models/{name}/infer", "/v2/health/ready"} <= set(
        paths
    )
    page = service.client.get("/")
    assert page.status_code == 200 and '<select id="CheckingStatus"' in page.text
    assert 'id="apikey" type="password">' in page.text  # the server has a key: the form asks for it


def test_starting_a_second_server_on_a_taken_port_is_refused(service, tmp_path):
    port = int(service.server.url.rsplit(":", 1)[1])
    with pytest.raises(RuntimeError, match="is taken"):
        start_server(port, work=tmp_path)


def test_a_real_server_flags_plausible_applicants_and_names_every_fault(service):
    values = CONTRACT_REQUEST["input_data"][0]["values"][0]
    plausible = [*values[:12], 99, *values[13:]]  # Age 99: inside the contract, outside the training data
    wrong = [*values[:4], 0, *values[5:12], 7, *values[13:]]  # LoanAmount 0 and Age 7: outside the contract
    body = {"input_data": [{"fields": list(FEATURES), "values": [plausible, wrong, wrong]}]}
    refused = service.client.post(service.predictions_path(), json=body)
    assert refused.status_code == 400
    assert [(f["field"], f["row"]) for f in refused.json()["faults"]] == [
        ("LoanAmount", 1),
        ("Age", 1),
        ("LoanAmount", 2),
        ("Age", 2),
    ]
    body["input_data"][0]["values"] = [plausible]
    scored = service.client.post(service.predictions_path(), json=body)
    assert scored.status_code == 200, scored.text
    (transaction_id,) = scored.json()["predictions"][0]["transaction_ids"]
    assert service.stored().set_index("transaction_id").loc[transaction_id, "out_of_range"] == ["Age"]


def test_a_real_server_takes_feedback_as_csv_linked_to_its_transaction(service):
    scored = service.client.post(service.predictions_path(), json=CONTRACT_REQUEST)
    (transaction_id,) = scored.json()["predictions"][0]["transaction_ids"]
    row = CONTRACT_REQUEST["input_data"][0]["values"][0]
    text = ",".join([*FEATURES, LABEL, "transaction_id"]) + "\n" + ",".join(map(str, [*row, "Risk", transaction_id]))
    path = service.predictions_path().replace("/predictions", "/feedback")
    sent = service.client.post(path, content=text.encode(), headers={"Content-Type": "text/csv"})
    assert sent.status_code == 200, sent.text
    stored = datamart.read_feedback(service.engine, service.deployment.deployment_id).set_index("feedback_id")
    assert stored.loc[sent.json()["feedback_ids"][0], "transaction_id"] == transaction_id
