"""Artifact checks: the registered file loads safely, speaks the contract, and bad input gets clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd

from utils.checks.results import PASSED, CheckResult, failed, judged
from utils.data import CATEGORIES, CLASS_ORDER, FEATURES
from utils.registry import ModelRegistry, RegistryError
from utils.scoring import InputError, Scorer, parse_fields_values, wml_request

TRUSTED_LOAD = "artifact: trusted load"
_TRUSTED_LOAD_MEASURES = "the model loads from the registry: SHA-256 as registered, trusted types only"


def trusted_load(registry: ModelRegistry, model_id: str) -> tuple[CheckResult, object | None]:
    """Load ``model_id`` the registry's way; the result, and the model (``None`` when it was refused)."""
    try:
        model = registry.load(model_id)
    except RegistryError as error:
        return failed(TRUSTED_LOAD, _TRUSTED_LOAD_MEASURES, str(error)), None
    result = CheckResult(TRUSTED_LOAD, _TRUSTED_LOAD_MEASURES, None, "", None, PASSED, {"model_id": model_id})
    return result, model


def _schema_problems(model, metadata: dict, frame: pd.DataFrame) -> list[str]:
    problems = []
    inputs = getattr(model, "feature_names_in_", None)
    if inputs is None:
        problems.append("the model does not record the columns it takes (feature_names_in_)")
    elif set(inputs) != set(FEATURES):
        problems.append(f"the model takes {sorted(set(inputs) ^ set(FEATURES))} unlike the contract's features")
    if sorted(map(str, getattr(model, "classes_", []))) != sorted(CLASS_ORDER):
        problems.append(f"the model predicts {list(getattr(model, 'classes_', []))}, not {list(CLASS_ORDER)}")
    for key, expected in (("features", FEATURES), ("classes", CLASS_ORDER)):
        if key in metadata and sorted(metadata[key]) != sorted(expected):
            problems.append(f"its metadata records {key} {metadata[key]}, not the contract's")
    try:
        proba = np.asarray(model.predict_proba(frame[list(FEATURES)]), dtype=float)
    except Exception as error:  # any failure to score contract rows is the finding
        return [*problems, f"predict_proba fails on contract rows: {type(error).__name__}: {error}"]
    if proba.shape != (len(frame), 2):
        problems.append(f"predict_proba gives shape {proba.shape} for {len(frame)} rows; expected ({len(frame)}, 2)")
    elif not (np.isfinite(proba).all() and (proba >= 0).all() and np.allclose(proba.sum(axis=1), 1.0)):
        problems.append("predict_proba gives values that are not probabilities summing to 1")
    return problems


def schema(model, metadata: dict, frame: pd.DataFrame) -> CheckResult:
    """Problems with the model's inputs (the 20 contract features), classes and probabilities; none allowed."""
    problems = _schema_problems(model, metadata, frame)
    return judged(
        "artifact: schema",
        "differences from the contract in the model's inputs, classes and output",
        len(problems),
        "<=",
        0,
        problems=problems,
    )


def _wrong_type(name: str):
    return 1 if name in CATEGORIES else "many"  # a number for a category, text for a number


def _bad_requests(values: list) -> list[tuple[str, str, list]]:
    """One request per field and fault: the field null, then of the wrong type."""
    requests = []
    for position, name in enumerate(FEATURES):
        for fault, bad in (("null", None), ("wrong type", _wrong_type(name))):
            row = list(values)
            row[position] = bad
            requests.append((name, fault, row))
    return requests


def input_errors(model, model_id: str, frame: pd.DataFrame) -> CheckResult:
    """Share of requests with one null or wrongly typed field that the scoring path refuses with an
    :class:`~utils.scoring.InputError` naming that field; all of them, and a valid row scores."""
    name = "artifact: input errors"
    measures = "share of null or wrongly typed inputs refused with an error naming the field"
    values = wml_request(frame.iloc[:1])["input_data"][0]["values"][0]
    try:
        scorer = Scorer(model, model_id)
        scorer.predict(parse_fields_values(list(FEATURES), [values]))
    except (InputError, ValueError) as error:
        return failed(name, measures, f"a valid row cannot be scored: {error}")
    unclear = []
    for field, fault, row in _bad_requests(values):
        try:
            scorer.predict(parse_fields_values(list(FEATURES), [row]))
        except InputError as error:
            if error.field == field and field in error.message:
                continue
            unclear.append(f"{field} {fault}: {error.message}")
        except Exception as error:  # a crash instead of a clear refusal is the finding
            unclear.append(f"{field} {fault}: {type(error).__name__}: {error}")
        else:
            unclear.append(f"{field} {fault}: accepted")
    total = 2 * len(FEATURES)
    return judged(name, measures, (total - len(unclear)) / total, ">=", 1.0, requests=total, unclear=unclear)
