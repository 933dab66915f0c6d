"""Fixtures shared by every test folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits

from utils import datamart, lifecycle
from utils.config import layout
from utils.deployment import delete_deployment, deploy
from utils.workspace import Workspace, prepare_workspace


def _approve_for_production(workspace: Workspace, model_id: str) -> None:
    """Give ``model_id`` a passed, approved pre-prod evaluation (its pre-prod deployment removed afterwards)."""
    where = {"engine": workspace.engine, "work": workspace.work}
    candidate = deploy(model_id, name="credit-risk-candidate", space="preprod", registry=workspace.registry, **where)
    evaluated = lifecycle.record_evaluation(candidate.deployment_id, verdict="passed", summary={}, **where)
    lifecycle.approve(model_id, evaluated.evaluation_id, approver="test-fixture", reason="fixture", **where)
    delete_deployment(candidate.deployment_id, engine=workspace.engine, registry=workspace.registry)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    """A trained, registered, deployed model in a temporary working directory of this test module.

    600 generated rows split 75/25; ``credit-risk-v1`` (logistic regression, deployed as ``credit-risk`` in
    ``dev``) and ``credit-risk-v2`` (gradient boosting); the data mart is the directory's own SQLite file.
    ``credit-risk-v1`` has a passed and approved pre-prod evaluation, so that tests may deploy it to ``prod``.
    """
    with threadpool_limits(limits=1):
        prepared = prepare_workspace(
            tmp_path_factory.mktemp("workspace"), model_types=("logistic_regression", "gradient_boosting")
        )
    _approve_for_production(prepared, "credit-risk-v1")
    return prepared


@pytest.fixture
def work(workspace, tmp_path, monkeypatch) -> Path:
    """A working directory of this test only (its own data mart and job folders, ``$CREDIT_WORKDIR``), with the
    workspace's models: credit-risk-v1 (logistic regression) and credit-risk-v2 (gradient boosting, the latest)."""
    folder = tmp_path / "work"
    shutil.copytree(layout(workspace.work).registry, layout(folder).registry)
    monkeypatch.setenv("CREDIT_WORKDIR", str(folder))
    monkeypatch.delenv(datamart.DATAMART_URL_ENV, raising=False)
    return folder
