"""A challenger: another model type trained on the same split, to compare a candidate with when no champion serves
in production yet."""

from __future__ import annotations

import os

from threadpoolctl import threadpool_limits

from utils import config
from utils.data import load_credit_csv
from utils.features import load_preprocessor
from utils.registry import registry_for
from utils.training import evaluate, train_model, training_metadata

#: The registry name of challengers, beside the candidates' ``credit-risk``.
CHALLENGER_NAME = "credit-risk-challenger"


def train_challenger(
    model_type: str,
    *,
    hyperparameters: dict | None = None,
    seed: int = 42,
    name: str = CHALLENGER_NAME,
    work: str | os.PathLike | None = None,
) -> str:
    """Train a ``model_type`` model on the working directory's training split with its fitted preprocessing (as
    notebook 03 does), register it as ``<name>-v<N>`` with its metadata, and return its model id.

    Raises:
        FileNotFoundError: notebooks 01 and 02 have not run in the working directory (the message names them).
        ValueError: an unknown model type or hyperparameter.
    """
    layout = config.layout(work)
    train_path = layout.require(layout.train, "01_validate_data")
    preprocessor_path = layout.require(layout.preprocessor, "02_prepare_features")
    train, test = load_credit_csv(train_path), load_credit_csv(layout.require(layout.test, "01_validate_data"))
    with threadpool_limits(limits=1):
        result = train_model(train, load_preprocessor(preprocessor_path), model_type, hyperparameters, seed=seed)
        metrics, _ = evaluate(result.model, test)
    metadata = training_metadata(
        result,
        metrics,
        train_path=train_path,
        schema_path=layout.require(layout.schema, "01_validate_data"),
        preprocessor_path=preprocessor_path,
    )
    return registry_for(layout.root).register(result.model, name=name, metadata=metadata).model_id
