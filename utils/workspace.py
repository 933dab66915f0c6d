"""A ready working directory: generated data split, a model trained and registered, and deployed.

What notebooks 01 to 04 leave behind, made in seconds from the data generator, for the tests, the benchmarks
and anyone who wants to try a later part (monitoring, batch scoring) without running the earlier notebooks.
The reference (training) split is written where notebook 01 writes it, so that the monitors find it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import Engine
from threadpoolctl import threadpool_limits

from utils import config, datamart
from utils.data import generate_credit_data, write_csv
from utils.deployment import Deployment, deploy
from utils.features import fit_preprocessor, stratified_split
from utils.monitoring import DeploymentMonitor
from utils.registry import ModelRegistry, registry_for
from utils.traffic import simulate_traffic
from utils.training import train_model


@dataclass
class Workspace:
    """A working directory with registered models and one deployment of the first of them."""

    work: Path
    registry: ModelRegistry
    engine: Engine
    deployment: Deployment
    train: pd.DataFrame
    test: pd.DataFrame
    model_ids: list[str] = field(default_factory=list)

    @property
    def datamart_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=False)

    @property
    def model(self):
        """The deployed model."""
        return self.registry.load(self.deployment.model_id)


def prepare_workspace(
    work: str | os.PathLike,
    *,
    rows: int = 600,
    seed: int = 5,
    model_types: tuple[str, ...] = ("logistic_regression",),
    name: str = "credit-risk",
    space: str = "dev",
    datamart_url: str | None = None,
) -> Workspace:
    """Generate ``rows`` applicants, split them 75/25, train one model of each of ``model_types`` on the split
    (registered in order as ``<name>-v1``, ``-v2``, ...), and deploy the first as ``name`` in ``space``.

    The data mart is ``datamart_url``, else the working directory's own SQLite file (``$CREDIT_DATAMART_URL`` is
    not consulted, so that a workspace never writes into someone else's data mart).
    """
    layout = config.layout(work)
    train, test = stratified_split(generate_credit_data(rows, seed=seed), 0.25, seed)
    write_csv(train, layout.train)
    write_csv(test, layout.test)
    registry = registry_for(layout.root)
    model_ids = []
    with threadpool_limits(limits=1):
        preprocessor = fit_preprocessor(train)
        for model_type in model_types:
            model = train_model(train, preprocessor, model_type, seed=seed).model
            version = registry.register(model, name=name, metadata={"model_type": model_type})
            model_ids.append(version.model_id)
    engine = datamart.connect(datamart_url or f"sqlite:///{layout.datamart}")
    deployment = deploy(model_ids[0], name=name, space=space, engine=engine, registry=registry)
    return Workspace(
        layout.root, registry, engine, deployment, train.reset_index(drop=True), test.reset_index(drop=True), model_ids
    )


def monitor_workspace(
    workspace: Workspace,
    url: str,
    *,
    first_day: str = "2026-01-05",
    days: int = 3,
    records_per_day: int = 200,
    drift: float | list[float] = 0.0,
    group_drift: float | list[float] = 0.0,
    api_key: str | None = None,
) -> list:
    """Send ``days`` days of simulated traffic with feedback to the scoring service at ``url`` (serving the
    workspace's data mart) and evaluate every monitor of the workspace's deployment once per day, stored in the
    data mart (no reports); returns the evaluations, oldest first. What notebook 05 leaves, in seconds."""
    deployment_id = workspace.deployment.deployment_id
    simulate_traffic(
        url,
        deployment_id,
        days=days,
        records_per_day=records_per_day,
        start=first_day,
        drift=drift,
        group_drift=group_drift,
        engine=workspace.engine,
        work=workspace.work,
        api_key=api_key,
        pool=workspace.test,
    )
    monitor = DeploymentMonitor(deployment_id, engine=workspace.engine, work=workspace.work, sample_size=2_000)
    return monitor.evaluate_days(first_day, days, report=False, debias=False)
