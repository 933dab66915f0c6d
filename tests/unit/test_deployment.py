"""Deployments: deploy into a space, replace atomically, list, get and delete."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from sklearn.linear_model import LogisticRegression

from utils import datamart
from utils.data import LABEL, NUMERIC_FEATURES
from utils.deployment import (
    SPACES,
    DeploymentError,
    delete_deployment,
    deploy,
    find_deployments,
    get_deployment,
    list_deployments,
)
from utils.lifecycle import approve, record_evaluation
from utils.registry import ModelRegistry, RegistryError

pytestmark = pytest.mark.datamarts


@pytest.fixture
def engine(datamart_url):
    return datamart.connect(datamart_url)


@pytest.fixture
def registry(tmp_path, trained) -> ModelRegistry:
    """Versions 1 (logistic regression) and 2 (gradient boosting) of credit-risk."""
    registry = ModelRegistry(tmp_path / "registry")
    for model_type in ("logistic_regression", "gradient_boosting"):
        registry.register(trained[model_type].model, name="credit-risk", metadata={"model_type": model_type})
    return registry


def test_deploy_records_the_deployment(engine, registry):
    deployment = deploy("credit-risk-latest", space="preprod", engine=engine, registry=registry)
    assert uuid.UUID(deployment.deployment_id)
    assert (deployment.name, deployment.space, deployment.model_id, deployment.status) == (
        "credit-risk",
        "preprod",
        "credit-risk-v2",
        "ready",
    )
    assert deployment.created_at == deployment.updated_at
    assert deployment.created_at.tzinfo is not None
    assert get_deployment(deployment.deployment_id, engine=engine) == deployment
    assert deployment.as_dict()["created_at"] == deployment.created_at.isoformat()


def test_deploying_the_same_name_in_the_same_space_replaces_the_model(engine, registry):
    first = deploy("credit-risk-v1", engine=engine, registry=registry)
    other_space = deploy("credit-risk-v1", space="preprod", engine=engine, registry=registry)
    second = deploy("credit-risk-v2", engine=engine, registry=registry)
    assert second.deployment_id == first.deployment_id != other_space.deployment_id
    assert second.model_id == "credit-risk-v2" and second.created_at == first.created_at
    assert second.updated_at >= first.updated_at
    assert get_deployment(other_space.deployment_id, engine=engine).model_id == "credit-risk-v1"
    assert len(find_deployments(name="credit-risk", engine=engine)) == 2


def test_list_and_filter_by_space(engine, registry):
    for space in SPACES:
        deployed = deploy("credit-risk-v1", space=space, engine=engine, registry=registry)
        if space == "preprod":  # prod needs an approved pre-prod evaluation
            evaluated = record_evaluation(deployed.deployment_id, verdict="passed", summary={}, engine=engine)
            approve("credit-risk-v1", evaluated.evaluation_id, approver="validator", reason="ok", engine=engine)
    deploy("credit-risk-v2", name="challenger", space="dev", engine=engine, registry=registry)
    frame = list_deployments(engine=engine)
    assert list(frame.columns) == ["deployment_id", "name", "space", "model_id", "status", "created_at", "updated_at"]
    assert len(frame) == 4
    assert list_deployments("dev", engine=engine)["name"].tolist() == ["challenger", "credit-risk"]
    assert [d.space for d in find_deployments(name="credit-risk", engine=engine)] == sorted(SPACES)
    with pytest.raises(DeploymentError, match="unknown space"):
        list_deployments("staging", engine=engine)


def test_delete(engine, registry):
    deployment = deploy("credit-risk-v1", engine=engine, registry=registry)
    delete_deployment(deployment.deployment_id, engine=engine)
    with pytest.raises(DeploymentError, match="no deployment"):
        get_deployment(deployment.deployment_id, engine=engine)
    with pytest.raises(DeploymentError, match="no deployment"):
        delete_deployment(deployment.deployment_id, engine=engine)
    assert list_deployments(engine=engine).empty


@pytest.mark.parametrize(
    ("model_id", "kwargs", "error", "message"),
    [
        ("credit-risk-v9", {}, RegistryError, "not in the registry"),
        ("no such model", {}, RegistryError, "malformed model id"),
        ("credit-risk-v1", {"space": "staging"}, DeploymentError, "unknown space"),
        ("credit-risk-v1", {"name": ""}, DeploymentError, "name"),
    ],
)
def test_refused_deployments_record_nothing(engine, registry, model_id, kwargs, error, message):
    with pytest.raises(error, match=message):
        deploy(model_id, engine=engine, registry=registry, **kwargs)
    assert list_deployments(engine=engine).empty


def test_a_model_the_service_could_not_serve_is_refused(engine, registry, train_test):
    train, _ = train_test
    numbers_only = LogisticRegression(max_iter=2000).fit(train[list(NUMERIC_FEATURES)], train[LABEL] == "Risk")
    registry.register(numbers_only, name="odd", metadata={})
    with pytest.raises(ValueError, match="expected the classes"):
        deploy("odd-v1", engine=engine, registry=registry)
    assert list_deployments(engine=engine).empty


def test_defaults_use_the_work_dir(tmp_path, trained, monkeypatch):
    monkeypatch.delenv(datamart.DATAMART_URL_ENV, raising=False)
    work = tmp_path / "work"
    ModelRegistry(work / "registry").register(trained["logistic_regression"].model, name="credit-risk", metadata={})
    deployment = deploy("credit-risk-v1", work=work)
    assert (work / "datamart.sqlite").is_file()
    assert get_deployment(deployment.deployment_id, work=work).model_id == "credit-risk-v1"
    assert len(list_deployments(work=work)) == 1


@pytest.mark.slow
def test_readers_always_find_a_deployment_while_it_is_replaced(engine, registry):
    deployment = deploy("credit-risk-v1", engine=engine, registry=registry)
    seen: set[str] = set()
    failures: list[Exception] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                seen.add(get_deployment(deployment.deployment_id, engine=engine).model_id)
            except Exception as error:  # any failure is a test failure
                failures.append(error)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    for version in (2, 1, 2):
        deploy(f"credit-risk-v{version}", engine=engine, registry=registry)
    stop.set()
    for reader in readers:
        reader.join()
    assert not failures
    assert seen <= {"credit-risk-v1", "credit-risk-v2"}
    assert get_deployment(deployment.deployment_id, engine=engine).model_id == "credit-risk-v2"


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "X/../../../../outside",
        "a/b",
        "a\\b",
        "a\nb",
        "credit-risk\n",
        "a\x00b",
        "a" * 101,
        "..",
        "a..b",
        ".hidden",
        "-lead",
        "with space",
        "crédit",
    ],
)
def test_a_name_that_could_become_a_path_is_refused(engine, registry, name):
    with pytest.raises(DeploymentError, match="invalid deployment name .*letters, digits, '-', '_' and '.'"):
        deploy("credit-risk-v1", name=name, engine=engine, registry=registry)
    assert list_deployments(engine=engine).empty


@pytest.mark.parametrize("name", ["a", "A.b_c-1", "credit-risk-monitored", "9" * 100])
def test_names_following_the_rule_are_accepted(engine, registry, name):
    assert deploy("credit-risk-v1", name=name, engine=engine, registry=registry).name == name


@pytest.mark.parametrize("recorded_hash", [True, False])
@pytest.mark.parametrize("content", [b"not a zip file", b"PK\x03\x04 truncated", b""])
def test_a_model_file_that_is_not_a_zip_is_a_registry_error(engine, registry, content, recorded_hash):
    """Damaged after registration, or registered before hashes were recorded: refused as a RegistryError."""
    version = registry.get("credit-risk-v1")
    if not recorded_hash:
        record = json.loads(version.metadata_file.read_text())
        record.pop("model_sha256", None)  # as registered before hashes were recorded
        version.metadata_file.write_text(json.dumps(record))
    version.model_file.write_bytes(content)
    with pytest.raises(RegistryError, match="model 'credit-risk-v1': the model file is damaged"):
        deploy("credit-risk-v1", engine=engine, registry=registry)
    assert list_deployments(engine=engine).empty
