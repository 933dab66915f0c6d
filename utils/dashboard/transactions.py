"""The transactions of a window, filtered, and the explanation of one transaction.

:func:`list_transactions` reads a window's payload records and keeps those that pass a :class:`TransactionFilter`
(the decision, a protected group, a decision that flips when the protected attribute is flipped, values outside
the training data's ranges). :func:`explain` gives one transaction's decision and probability, its shap
contributions, the top reasons in plain words and the smallest change that flips it (:mod:`utils.explain`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from utils import datamart
from utils.contract import InputError, check_identifier
from utils.data import CLASS_ORDER, FEATURES, PROTECTED_GROUPS, UNFAVOURABLE, load_credit_csv
from utils.decision import model_decisions
from utils.explain import explain_transaction
from utils.fairness import group_masks, group_names, perturb
from utils.plain_words import change_sentence, label, reasons, shown_value
from utils.times import as_utc

#: Most transactions one page of the list holds.
MAX_LIMIT = 500
#: The columns of a listed transaction beside its id, time and decision.
SHOWN_FIELDS = ("Sex", "Age", "LoanAmount", "LoanDuration", "LoanPurpose")

ModelLoader = Callable[[str], object]


def group_choices() -> list[str]:
    """The protected groups a list can be filtered by: ``Sex=female``, ``Sex=male``, ``Age=18-25``, ..."""
    return [f"{attribute}={name}" for attribute in PROTECTED_GROUPS for name in group_names(attribute)]


@dataclass(frozen=True)
class TransactionFilter:
    """Which transactions of a window to list; None leaves a criterion out.

    ``group`` is one of :func:`group_choices`; ``flips`` keeps the transactions whose decision changes when the
    group's attribute (every protected attribute when no group is given) is moved to the other group.
    """

    start: datetime | None = None
    end: datetime | None = None
    prediction: str | None = None
    group: str | None = None
    flips: bool | None = None
    out_of_range: bool | None = None
    limit: int = 100
    offset: int = 0

    def __post_init__(self) -> None:
        if self.prediction is not None and self.prediction not in CLASS_ORDER:
            raise InputError(f"prediction must be one of {list(CLASS_ORDER)}", field="prediction")
        if self.group is not None and self.group not in group_choices():
            raise InputError(f"group must be one of {group_choices()}", field="group")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InputError(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
        if self.offset < 0:
            raise InputError("offset must be 0 or more", field="offset")

    def query(self) -> dict[str, str]:
        """The filter as query parameters (criteria left out are not named)."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        shown = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items() if v is not None}
        return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in shown.items()}

    @property
    def attributes(self) -> tuple[str, ...]:
        return (self.group.partition("=")[0],) if self.group else tuple(PROTECTED_GROUPS)


def _flips(payload: pd.DataFrame, attributes: tuple[str, ...], load_model: ModelLoader) -> np.ndarray:
    """Whether each record's decision changes when one of ``attributes`` is moved to the other group (each record
    with the model that scored it)."""
    changed = np.zeros(len(payload), dtype=bool)
    for model_id, rows in payload.groupby("model_id", sort=False).groups.items():
        part = payload.loc[rows, list(FEATURES)]
        model = load_model(str(model_id))
        before = model_decisions(model, part)
        for attribute in attributes:
            changed[payload.index.get_indexer(rows)] |= model_decisions(model, perturb(part, attribute)) != before
    return changed


def _matching(payload: pd.DataFrame, chosen: TransactionFilter, load_model: ModelLoader) -> pd.DataFrame:
    keep = np.ones(len(payload), dtype=bool)
    if chosen.prediction is not None:
        keep &= (payload["prediction"] == chosen.prediction).to_numpy()
    if chosen.group is not None:
        attribute, _, name = chosen.group.partition("=")
        monitored, reference = group_masks(payload, attribute)
        keep &= monitored if name == group_names(attribute)[0] else reference
    if chosen.out_of_range is not None:
        flagged = payload["out_of_range"].map(lambda v: bool(v) if isinstance(v, list) else False).to_numpy()
        keep &= flagged == chosen.out_of_range
    found = payload[keep].copy()
    found["flips"] = _flips(found, chosen.attributes, load_model) if len(found) else np.zeros(0, dtype=bool)
    if chosen.flips is not None:
        found = found[found["flips"] == chosen.flips]
    return found


def list_transactions(
    engine: Engine, deployment_id: str, chosen: TransactionFilter, load_model: ModelLoader
) -> tuple[int, list[dict]]:
    """The transactions of the window that pass ``chosen``, newest first: how many there are, and one page."""
    payload = datamart.read_payload(engine, deployment_id, chosen.start, chosen.end)
    found = _matching(payload, chosen, load_model).iloc[::-1]
    page = found.iloc[chosen.offset : chosen.offset + chosen.limit]
    rows = [
        {
            "transaction_id": row["transaction_id"],
            "scored_at": row["scored_at"].isoformat(),
            "model_id": row["model_id"],
            "prediction": row["prediction"],
            "probability_risk": float(row["probability_risk"]),
            "flips": bool(row["flips"]),
            "out_of_range": list(row["out_of_range"]) if isinstance(row["out_of_range"], list) else [],
            "fields": {name: _plain(row[name]) for name in SHOWN_FIELDS},
        }
        for _, row in page.iterrows()
    ]
    return len(found), rows


def _plain(value: object) -> object:
    """A numpy scalar as a plain Python value (for JSON)."""
    return value.item() if isinstance(value, np.generic) else value


@functools.lru_cache(maxsize=4)
def _background(path: str, modified: float) -> pd.DataFrame:
    return load_credit_csv(path)


def background(path: Path) -> pd.DataFrame:
    """The training data, the explanations' background, read once per file version."""
    return _background(str(path), path.stat().st_mtime)


def _number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def explain(engine: Engine, transaction_id: str, training: Path, load_model: ModelLoader) -> dict:
    """One transaction explained: decision, probabilities, shap contributions, reasons, counterfactual."""
    check_identifier(transaction_id, "transaction_id", status=404)
    try:
        explanation, change = explain_transaction(
            transaction_id, background(training), engine=engine, load_model=load_model
        )
    except KeyError:
        raise InputError(f"no transaction {transaction_id!r}", field="transaction_id", status=404) from None
    stored = datamart.read_transaction(engine, transaction_id)
    decision = str(stored["prediction"])
    risk = float(stored["probability_risk"])
    contributions = [
        {"feature": f, "label": label(f), "value": shown_value(f, r["value"]), "contribution": float(r["contribution"])}
        for f, r in explanation.contributions.iterrows()
    ]
    return {
        "transaction_id": transaction_id,
        "deployment_id": stored["deployment_id"],
        "model_id": stored["model_id"],
        "scored_at": as_utc(stored["scored_at"]).isoformat(),
        "decision": decision,
        "probability": risk if decision == UNFAVOURABLE else 1.0 - risk,
        "probability_risk": risk,
        "inputs": {name: _plain(stored[name]) for name in FEATURES},
        "explainer": explanation.explainer,
        "base_value": explanation.base_value,
        "output": explanation.output,
        "contributions": contributions,
        "reasons": [
            {**r, "contribution": float(r["contribution"])} for r in reasons(explanation.contributions, decision)
        ],
        "counterfactual": {
            "found": change.found,
            "changes": [
                {"feature": f, "label": label(f), "before": _plain(r["before"]), "after": _plain(r["after"])}
                for f, r in change.changes.iterrows()
            ],
            "text": change_sentence(change.changes) if change.found else None,
            "cost": _number(change.cost),
            "decision_after": change.decision_after,
            "probability_risk_after": change.probability_risk_after,
        },
    }
