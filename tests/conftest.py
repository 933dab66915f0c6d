"""Fixtures shared by every test folder."""

from __future__ import annotations

import pytest
from threadpoolctl import threadpool_limits

from utils.workspace import Workspace, prepare_workspace


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    """A trained, registered, deployed model in a temporary working directory of this test module.

    600 generated rows split 75/25; ``credit-risk-v1`` (logistic regression, deployed as ``credit-risk`` in
    ``dev``) and ``credit-risk-v2`` (gradient boosting); the data mart is the directory's own SQLite file.
    """
    with threadpool_limits(limits=1):
        return prepare_workspace(
            tmp_path_factory.mktemp("workspace"), model_types=("logistic_regression", "gradient_boosting")
        )
