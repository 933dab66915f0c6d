"""All the model checks on one registered model, against its champion when there is one."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from utils import config
from utils.checks.artifact import input_errors, schema, trusted_load
from utils.checks.convergence import convergence
from utils.checks.directional import RISING_FIELDS, directional
from utils.checks.functionality import minimum_functionality
from utils.checks.invariance import INVARIANT_FIELDS, invariance
from utils.checks.regression import per_group_regression
from utils.checks.results import DEFAULT_THRESHOLDS, CheckReport, CheckResult, CheckThresholds, failed
from utils.checks.robustness import robustness
from utils.data import DataError, load_credit_csv
from utils.features import split_features_label
from utils.registry import ModelRegistry, registry_for
from utils.scoring import valid_rows


def behavioural_checks(
    model,
    frame: pd.DataFrame,
    *,
    champion=None,
    cases: pd.DataFrame | None = None,
    thresholds: CheckThresholds = DEFAULT_THRESHOLDS,
) -> list[CheckResult]:
    """The checks of what a fitted model does (any classifier with ``predict_proba`` and ``classes_``) on the
    labelled applicants of ``frame``: minimum functionality, invariance, directions, robustness, and per-group
    regression against ``champion`` (skipped when it is ``None``)."""
    results = [minimum_functionality(model, cases, thresholds)]
    results += [invariance(model, frame, field, thresholds) for field in INVARIANT_FIELDS]
    for field in RISING_FIELDS:
        results += directional(model, frame, field, thresholds)
    results.append(robustness(model, frame, thresholds))
    results += per_group_regression(model, champion, frame, thresholds)
    return results


def check_frame(frame: pd.DataFrame, what: str = "test data") -> pd.DataFrame:
    """``frame`` if it holds the 20 features and the label, every row within the contract.

    Raises:
        DataError: missing columns, no rows, or rows that break the contract (the first ones are named).
    """
    try:
        split_features_label(frame)
    except DataError as error:
        raise DataError(f"{what}: {error}") from None
    if frame.empty:
        raise DataError(f"{what}: no rows")
    bad = np.flatnonzero(~valid_rows(frame))
    if bad.size:
        first = ", ".join(map(str, bad[:5]))
        raise DataError(f"{what}: {bad.size} rows break the data contract (rows {first}); validate the data first")
    return frame.reset_index(drop=True)


def check_model(
    model_id: str,
    *,
    champion_id: str | None = None,
    work: str | os.PathLike | None = None,
    test: pd.DataFrame | None = None,
    cases: pd.DataFrame | None = None,
    thresholds: CheckThresholds = DEFAULT_THRESHOLDS,
    registry: ModelRegistry | None = None,
) -> CheckReport:
    """Run every model check on the registered ``model_id`` (``<name>-latest``: its newest version).

    ``test`` defaults to the working directory's held-out split (``config.WorkLayout.test``); ``registry`` to the
    working directory's; ``cases`` to ``data/model_checks.csv``. Without ``champion_id`` the per-group regression
    is skipped. A model that cannot be loaded, or whose schema breaks the contract, fails without its behaviour
    being checked.

    Raises:
        RegistryError: a malformed or unknown model id, or a champion that cannot be loaded.
        DataError: test data without the contract's columns, or with rows that break it.
    """
    registry = registry or registry_for(work)
    model_id = registry.get(model_id).model_id  # a malformed or unknown id is bad input; "-latest" resolved
    metadata = registry.metadata(model_id)
    champion_id = registry.get(champion_id).model_id if champion_id else None
    champion = registry.load(champion_id) if champion_id else None
    frame = check_frame(load_credit_csv(config.layout(work).test) if test is None else test)
    loaded, model = trusted_load(registry, model_id)
    results = [loaded]
    if model is not None:
        results.append(schema(model, metadata, frame))
        if results[-1].passed:
            results += [input_errors(model, model_id, frame), convergence(model, metadata, thresholds)]
            results += behavioural_checks(model, frame, champion=champion, cases=cases, thresholds=thresholds)
        else:
            results.append(failed("behaviour", "the behavioural checks", "not run: the model's schema is wrong"))
    return CheckReport(model_id, champion_id, len(frame), tuple(results))
