"""The standard Open Inference Protocol client, ``tritonclient.http``, against the real server: JSON and binary
tensor data, 1-D and 2-D input shapes, and errors the client shows."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pandas as pd
import pytest

from utils import datamart
from utils.data import CATEGORIES, CLASS_ORDER, FEATURES
from utils.serving import start_server

tritonclient_http = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.slow

API_KEY = "triton-test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
OUTPUTS = ("prediction", "probability", "transaction_id")


def _auth() -> dict[str, str]:
    """A fresh header dict per call: tritonclient adds its Inference-Header-Content-Length to the dict it is given."""
    return dict(AUTH)


@pytest.fixture(scope="module")
def live(workspace):
    """The server with an API key, a tritonclient and an httpx client for it, and applicants to score."""
    with start_server(
        work=workspace.work, datamart_url=workspace.datamart_url, api_key=API_KEY, access_log=False, timeout=120
    ) as server:
        triton = tritonclient_http.InferenceServerClient(server.url.removeprefix("http://"), network_timeout=30)
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http:
            yield triton, http, workspace
        triton.close()


def _inputs(frame: pd.DataFrame, *, shape: str, binary: bool) -> list:
    """One tritonclient input per field, shaped ``[rows]`` or ``[rows, 1]``."""
    inputs = []
    for name in FEATURES:
        values = frame[name].to_numpy(dtype=object if name in CATEGORIES else np.int64)
        array = values if shape == "1-D" else values.reshape(-1, 1)
        tensor = tritonclient_http.InferInput(name, list(array.shape), "BYTES" if name in CATEGORIES else "INT64")
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return inputs


def _json_endpoint(http: httpx.Client, frame: pd.DataFrame) -> dict[str, list]:
    """What the JSON endpoint answers for ``frame``, sent as JSON with its Content-Type."""
    tensors = [
        {
            "name": name,
            "shape": [len(frame)],
            "datatype": "BYTES" if name in CATEGORIES else "INT64",
            "data": frame[name].astype(object).tolist(),
        }
        for name in FEATURES
    ]
    response = http.post("/v2/models/credit-risk/infer", json={"inputs": tensors})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return {tensor["name"]: tensor["data"] for tensor in response.json()["outputs"]}


@pytest.mark.parametrize("shape", ["1-D", "2-D"])
@pytest.mark.parametrize(
    ("binary_inputs", "binary_outputs"), [(False, False), (True, True), (False, True), (True, False)]
)
def test_tritonclient_answers_equal_the_json_endpoint(live, shape, binary_inputs, binary_outputs):
    triton, http, workspace = live
    frame = workspace.test.head(7)
    before = len(datamart.read_payload(workspace.engine, workspace.deployment.deployment_id))
    outputs = [tritonclient_http.InferRequestedOutput(name, binary_data=binary_outputs) for name in OUTPUTS]
    result = triton.infer(
        "credit-risk",
        _inputs(frame, shape=shape, binary=binary_inputs),
        outputs=outputs if not binary_outputs else None,  # none named: the client asks for binary outputs
        request_id="triton-1",
        headers=_auth(),
    )
    expected = _json_endpoint(http, frame)
    probability = result.as_numpy("probability")
    assert probability.shape == (7, len(CLASS_ORDER)) and probability.dtype == np.float64
    assert np.array_equal(probability.ravel(), np.array(expected["probability"]))
    predictions = [p.decode() if isinstance(p, bytes) else p for p in result.as_numpy("prediction")]
    assert predictions == expected["prediction"]
    assert result.get_response()["id"] == "triton-1"

    stored = datamart.read_payload(workspace.engine, workspace.deployment.deployment_id).set_index("transaction_id")
    assert len(stored) == before + 2 * 7  # the client's request and the JSON one, every record stored
    ids = [t.decode() if isinstance(t, bytes) else t for t in result.as_numpy("transaction_id")]
    assert stored.loc[ids, "Age"].tolist() == frame["Age"].tolist()


def test_tritonclient_health_metadata_and_one_output(live):
    triton, _, workspace = live
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready("credit-risk")
    metadata = triton.get_model_metadata("credit-risk", headers=_auth())
    assert [tensor["name"] for tensor in metadata["inputs"]] == list(FEATURES)
    only = [tritonclient_http.InferRequestedOutput("probability", binary_data=True)]
    result = triton.infer(
        "credit-risk", _inputs(workspace.test.head(2), shape="1-D", binary=True), outputs=only, headers=_auth()
    )
    assert [output["name"] for output in result.get_response()["outputs"]] == ["probability"]
    assert result.as_numpy("probability").shape == (2, 2)


@pytest.mark.parametrize("binary", [False, True])
def test_tritonclient_shows_what_is_wrong(live, binary):
    triton, _, workspace = live
    frame = workspace.test.head(3).copy()
    frame.loc[frame.index[2], "Age"] = 12
    with pytest.raises(InferenceServerException) as refused:
        triton.infer("credit-risk", _inputs(frame, shape="2-D", binary=binary), headers=_auth())
    assert refused.value.status() == "400"
    assert "Age" in refused.value.message() and "row 2" in refused.value.message()

    with pytest.raises(InferenceServerException) as unknown:
        triton.infer("no-such-model", _inputs(frame.head(1), shape="1-D", binary=binary), headers=_auth())
    assert unknown.value.status() == "404" and "no-such-model" in unknown.value.message()

    with pytest.raises(InferenceServerException) as anonymous:
        triton.infer("credit-risk", _inputs(frame.head(1), shape="1-D", binary=binary))
    assert anonymous.value.status() == "401" and "API key" in anonymous.value.message()


def test_a_binary_body_that_does_not_add_up_is_refused_naming_the_input(live):
    _, http, workspace = live
    before = len(datamart.read_payload(workspace.engine, workspace.deployment.deployment_id))
    tensors = [
        {"name": name, "shape": [1], "datatype": "INT64" if name not in CATEGORIES else "BYTES"} for name in FEATURES
    ]
    for tensor in tensors:
        tensor["parameters"] = {"binary_data_size": 8}
    header = json.dumps({"inputs": tensors}).encode()
    body = header + b"\x00" * 8 * (len(FEATURES) - 1)  # the last input's 8 bytes are missing
    response = http.post(
        "/v2/models/credit-risk/infer", content=body, headers={"Inference-Header-Content-Length": str(len(header))}
    )
    assert response.status_code == 400
    assert response.json()["field"] == FEATURES[-1] and "declares 8 bytes" in response.json()["error"]
    assert len(datamart.read_payload(workspace.engine, workspace.deployment.deployment_id)) == before
