"""Metric-based retraining of a prod deployment's model: the alerting windows' labelled records, a new training
set, the same model type and parameters, a new registered version with its lineage, and a pre-prod candidate.

:func:`retrain` does everything up to the registered version; :func:`stage_candidate` deploys it in ``preprod``
with the prod deployment's monitor configuration; :func:`evaluate_candidate` runs the pre-prod evaluation
(:func:`utils.evaluation.evaluate_deployment`) against the champion. Nothing here deploys to ``prod``: the
candidate waits for an approved evaluation like any other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sqlalchemy.engine import Engine
from threadpoolctl import threadpool_limits

from utils import config, datamart, lifecycle
from utils.data import LABEL, UNFAVOURABLE, describe_training_data, file_sha256, load_credit_csv, write_csv
from utils.decision import risk_probability
from utils.deployment import PRODUCTION, Deployment, deploy, get_deployment
from utils.evaluation import RiskEvaluation, champion_of, evaluate_deployment
from utils.features import fit_preprocessor, save_preprocessor
from utils.registry import ModelRegistry, parse_model_id, registry_for, training_data_path
from utils.retraining.training_set import (
    RETRAIN_ON,
    RetrainingError,
    TrainingSet,
    alerting_windows,
    build_training_set,
    labelled_records,
)
from utils.serving import start_server
from utils.training import evaluate, train_model, training_metadata

#: Who the history names as having deployed a retrained candidate in preprod.
RETRAINING_AUTHOR = "retraining"
#: What a retrained version's drift monitor compares traffic with (its registry metadata's ``reference_data``).
REFERENCE_DESCRIPTION = (
    "the labelled production records of the alerting windows (learned from and held out, each distinct record "
    "once): the population the version was retrained and evaluated for"
)


@dataclass
class Retraining:
    """One retraining: where it came from, what it learned from, and the version it registered."""

    retraining_id: str
    deployment: Deployment
    parent_model_id: str
    model_id: str
    training_set: TrainingSet
    comparison: pd.DataFrame
    folder: str
    lineage: dict


def _lineage(retraining_id: str, deployment: Deployment, training_set: TrainingSet, seed: int) -> dict:
    """What the registry records about where a retrained version came from."""
    return {
        "retraining_id": retraining_id,
        "parent_model_id": deployment.model_id,
        "deployment_id": deployment.deployment_id,
        "windows": [
            {"start": row.start.isoformat(), "end": row.end.isoformat(), "alerts": row.alerts}
            for row in training_set.windows.itertuples()
        ],
        "original_rows": training_set.original_rows,
        "production_rows": training_set.production_rows,
        "held_out_rows": len(training_set.holdout),
        "reference_rows": len(training_set.reference),
        "seed": seed,
    }


def _parent_training_data(parent: dict, layout: config.WorkLayout) -> Path:
    """The data the parent version was trained on: its recorded file (a retrained parent's), else the training
    split, which must still hash to what the parent recorded."""
    recorded = parent.get("training_data", {})
    path = training_data_path(parent, layout.root)
    if not path.is_file():
        raise RetrainingError(f"the training data of {parent['model_id']} ({layout.relative(path)}) is missing")
    if recorded.get("sha256") and file_sha256(path) != recorded["sha256"]:
        raise RetrainingError(
            f"{layout.relative(path)} is not the data {parent['model_id']} was trained on (its SHA-256 differs): "
            "retraining would not extend the parent's training data"
        )
    return path


def _comparison(models: dict[str, object], data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """ROC AUC and accuracy of each model on each labelled data set."""
    rows = []
    for role, model in models.items():
        for name, frame in data.items():
            metrics, _ = evaluate(model, frame)
            rows.append({"model": role, "data": name, "auc_roc": metrics["auc_roc"], "accuracy": metrics["accuracy"]})
    return pd.DataFrame(rows).pivot(index="model", columns="data").reindex(list(models))


def auc_gain(candidate, champion, frame: pd.DataFrame, *, rounds: int = 1000, seed: int = 0) -> dict[str, float]:
    """The ROC AUC of ``candidate`` and ``champion`` on the labelled ``frame``, the candidate's gain, and a 95%
    bootstrap interval of the gain: both models judged on the same ``rounds`` resamples of its rows (seeded), so
    that the interval shows whether the gain is beyond the noise of that many records."""
    risky = (frame[LABEL] == UNFAVOURABLE).to_numpy()
    candidate_scores, champion_scores = (risk_probability(model, frame) for model in (candidate, champion))
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(rounds):
        rows = rng.integers(0, len(frame), len(frame))
        if risky[rows].any() and not risky[rows].all():
            gains.append(
                roc_auc_score(risky[rows], candidate_scores[rows]) - roc_auc_score(risky[rows], champion_scores[rows])
            )
    low, high = np.percentile(gains, [2.5, 97.5])
    figures = {"candidate": roc_auc_score(risky, candidate_scores), "champion": roc_auc_score(risky, champion_scores)}
    figures |= {"gain": figures["candidate"] - figures["champion"], "low": low, "high": high}
    return {"records": len(frame), **{name: float(value) for name, value in figures.items()}}


def retrain(
    deployment_id: str,
    *,
    monitors: tuple[str, ...] = RETRAIN_ON,
    since: str | None = None,
    holdout_share: float = 0.3,
    min_records: int = 100,
    seed: int = 42,
    engine: Engine | None = None,
    work: str | os.PathLike | None = None,
) -> Retraining:
    """Retrain the model of the prod deployment ``deployment_id`` on its training data and the labelled records of
    the windows in which ``monitors`` alerted (from ``since``), and register the new version with its lineage.

    Raises:
        RetrainingError: not a prod deployment, no alerting window, too few labelled records, or the parent's
            training data missing or changed.
    """
    layout = config.layout(work)
    engine = engine or datamart.connect(work=layout.root)
    registry = registry_for(layout.root)
    deployment = get_deployment(deployment_id, engine=engine)
    if deployment.space != PRODUCTION:
        raise RetrainingError(f"deployment {deployment.name!r} is in {deployment.space!r}; retraining starts from prod")
    parent = registry.metadata(deployment.model_id)
    original = load_credit_csv(_parent_training_data(parent, layout))
    windows = alerting_windows(engine, deployment_id, monitors=monitors, since=since)
    if windows.empty:
        raise RetrainingError(f"no window of {deployment.name!r} alerted for {', '.join(monitors)}: nothing to learn")
    production = labelled_records(engine, deployment_id, windows)
    training_set = build_training_set(
        original, production, windows, holdout_share=holdout_share, seed=seed, min_records=min_records
    )
    return _train_and_register(deployment, parent, training_set, registry, layout, seed)


def _train_and_register(
    deployment: Deployment, parent: dict, training_set: TrainingSet, registry: ModelRegistry, layout, seed: int
) -> Retraining:
    """Train the parent's model type with its parameters on the new training set (saved in its own folder, with
    the held-out records and the preprocessing), compare it with the parent, and register it with its lineage."""
    retraining_id = datamart.new_id()
    folder = layout.retraining / retraining_id
    train_path = write_csv(training_set.train, folder / "train.csv")
    write_csv(training_set.holdout, folder / "holdout.csv")
    reference_path = write_csv(training_set.reference, folder / "reference.csv")
    with threadpool_limits(limits=1):
        preprocessor = fit_preprocessor(training_set.train)
        result = train_model(
            load_credit_csv(train_path), preprocessor, parent["model_type"], parent.get("hyperparameters"), seed=seed
        )
    preprocessor_path = save_preprocessor(preprocessor, folder / "preprocessor.skops")
    data = {"test split": load_credit_csv(layout.test), "held-out production records": training_set.holdout}
    metadata = training_metadata(
        result,
        evaluate(result.model, data["test split"])[0],
        train_path=train_path,
        schema_path=layout.require(layout.schema, "01_validate_data"),
        preprocessor_path=preprocessor_path,
    )
    lineage = _lineage(retraining_id, deployment, training_set, seed)
    metadata["training_data"] |= {
        "path": layout.relative(train_path),
        "description": describe_training_data(training_set.train),
    }
    metadata["reference_data"] = {
        "path": layout.relative(reference_path),
        "sha256": file_sha256(reference_path),
        "rows": len(training_set.reference),
        "description": REFERENCE_DESCRIPTION,
    }
    metadata["lineage"] = lineage
    name, _ = parse_model_id(deployment.model_id)
    model_id = registry.register(result.model, name=name, metadata=metadata).model_id
    comparison = _comparison({deployment.model_id: registry.load(deployment.model_id), model_id: result.model}, data)
    return Retraining(
        retraining_id,
        deployment,
        deployment.model_id,
        model_id,
        training_set,
        comparison,
        layout.relative(folder),
        lineage,
    )


def stage_candidate(
    retraining: Retraining, *, engine: Engine | None = None, work: str | os.PathLike | None = None
) -> Deployment:
    """Deploy the retrained version in ``preprod`` under the prod deployment's name (replacing the version there)
    with the prod deployment's monitor configuration: ready for the pre-prod evaluation against the champion."""
    layout = config.layout(work)
    engine = engine or datamart.connect(work=layout.root)
    reason = f"retrained from {retraining.parent_model_id} on alerts of prod (retraining {retraining.retraining_id})"
    candidate = deploy(
        retraining.model_id,
        name=retraining.deployment.name,
        space="preprod",
        engine=engine,
        work=layout.root,
        deployed_by=RETRAINING_AUTHOR,
        reason=reason,
    )
    document = lifecycle.monitor_config(retraining.deployment.deployment_id, engine=engine).document
    lifecycle.set_monitor_config(candidate.deployment_id, document, updated_by=RETRAINING_AUTHOR, engine=engine)
    return candidate


def evaluate_candidate(
    retraining: Retraining,
    candidate: Deployment,
    *,
    test: pd.DataFrame | None = None,
    url: str | None = None,
    seed: int = 0,
    engine: Engine | None = None,
    work: str | os.PathLike | None = None,
) -> RiskEvaluation:
    """The pre-prod evaluation of the staged ``candidate`` against the champion (the version serving the prod
    deployment now), on ``test`` (default: the held-out production records, the data it has to serve), through the
    scoring service at ``url`` (default: one started for it and stopped afterwards). The verdict is recorded and
    waits for a model validator's decision."""
    layout = config.layout(work)
    engine = engine or datamart.connect(work=layout.root)
    champion = champion_of(retraining.deployment.name, engine=engine) or retraining.parent_model_id
    options = {
        "test": retraining.training_set.holdout if test is None else test,
        "baseline_model_id": champion,
        "baseline_role": "champion",
        "expect_drift": True,  # the held-out production records drifted: the reason the candidate exists
        "seed": seed,
        "engine": engine,
        "work": layout.root,
    }
    if url is not None:
        return evaluate_deployment(candidate.deployment_id, url, **options)
    datamart_url = engine.url.render_as_string(hide_password=False)
    with start_server(work=layout.root, datamart_url=datamart_url, access_log=False) as server:
        return evaluate_deployment(candidate.deployment_id, server.url, **options)
