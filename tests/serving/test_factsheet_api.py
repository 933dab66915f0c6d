"""``GET /ml/v4/models/{model_id}/factsheet``: a version's factsheet rendered fresh from the registry and the data
mart, as JSON or Markdown, behind the API key.

The app runs in-process (Starlette's test client), with the API key and the data mart of the shared workspace.
"""

from __future__ import annotations

import warnings

import pytest

from utils.serving import ServiceSettings, create_app

with warnings.catch_warnings():  # Starlette's test client announces that it will move to httpx2
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

API_KEY = "factsheet-test-key"
ROUTE = "/ml/v4/models/{}/factsheet"


@pytest.fixture(scope="module")
def client(workspace):
    settings = ServiceSettings(work=workspace.work, datamart_url=workspace.datamart_url, api_key=API_KEY)
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {API_KEY}"}) as client:
        yield client


def test_the_factsheet_is_rendered_fresh_as_json(client, workspace):
    answer = client.get(ROUTE.format("credit-risk-v1"))
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    facts = answer.json()
    assert facts["model_id"] == "credit-risk-v1" and facts["intended_use"] and facts["limitations"]
    # the workspace fixture evaluated and approved v1 in preprod, and serves it in dev
    assert [e["verdict"] for e in facts["evaluations"]] == ["passed"]
    assert [(a["decision"], a["superseded"]) for a in facts["approvals"]] == [("approved", False)]
    assert {p["space"] for p in facts["deployments"]} >= {"dev", "preprod"}
    assert workspace.deployment.deployment_id in {s["deployment_id"] for s in facts["monitoring"]}

    deployed = client.post("/ml/v4/deployments", json={"model_id": "credit-risk-v2", "space": "preprod"})
    assert deployed.status_code == 201, deployed.text
    later = client.get(ROUTE.format("credit-risk-v2")).json()
    assert deployed.json()["deployment_id"] in {p["deployment_id"] for p in later["deployments"]}


def test_markdown_when_asked_by_parameter_or_accept_header(client):
    for answer in (
        client.get(ROUTE.format("credit-risk-v1"), params={"format": "markdown"}),
        client.get(ROUTE.format("credit-risk-v1"), headers={"Accept": "text/markdown"}),
    ):
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/markdown")
        assert answer.text.startswith("# Model factsheet: credit-risk-v1")
        assert "## Approval decisions" in answer.text
        assert "| approved | test-fixture | fixture | counts |" in answer.text


def test_unknown_malformed_and_unauthorised_requests_are_refused(client):
    unknown = client.get(ROUTE.format("credit-risk-v99"))
    assert unknown.status_code == 404 and unknown.json()["field"] == "model_id"
    assert unknown.json()["error"] == "no model version 'credit-risk-v99' in the registry"
    malformed = client.get(ROUTE.format("Credit Risk"))
    assert malformed.status_code == 400 and "malformed model id" in malformed.json()["error"]
    pdf = client.get(ROUTE.format("credit-risk-v1"), params={"format": "pdf"})
    assert pdf.status_code == 400 and pdf.json()["field"] == "format"
    assert client.get(ROUTE.format("credit-risk-v1"), headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_the_openapi_document_describes_the_route_with_examples(client):
    operation = client.get("/openapi.json").json()["paths"]["/ml/v4/models/{model_id}/factsheet"]["get"]
    content = operation["responses"]["200"]["content"]
    assert content["application/json"]["example"]["model_id"] == "credit-risk-v1"
    assert content["text/markdown"]["example"].startswith("# Model factsheet")
    assert {"400", "401", "404"} <= set(operation["responses"])
    assert [p["name"] for p in operation["parameters"]] == ["model_id", "format"]
