"""The monitors of a subscription whose inputs are declared columns and types, not the credit contract.

A declared schema names its columns and their types, its label and two classes (the favourable one first), its
protected attributes with their monitored and reference groups, and its reference data. :class:`DeclaredMonitor`
runs the credit monitors themselves on those columns, with the same thresholds, alerts, stored measurements and
report; the classes map onto the monitors' favourable and unfavourable outcomes, and the probability logged for
the second class is the score:

- quality: ROC AUC, accuracy, precision, recall, F1 and log loss on the feedback that names a logged prediction
  (by transaction id), against the probability logged with it; feedback naming none is not counted;
- fairness: per protected attribute, favourable rate per group, disparate impact with its interval and test,
  statistical parity, and on feedback equal opportunity and average odds (no model to score: no perturbation
  check or debiased companion);
- drift: per column, the Kolmogorov-Smirnov (``integer``, ``number``) or chi-square (``string``, ``boolean``,
  the categories the reference data hold) test with the effect-size rule, and the classifier test; a string column
  with more than :data:`MAX_CATEGORIES` distinct reference values is left out (an identifier, not a category);
- data quality: the share of records with a number outside the reference data's range or a category the
  reference data never hold.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from utils import config, datamart
from utils.data import CLASS_ORDER, FAVOURABLE, FEATURES, LABEL, UNFAVOURABLE
from utils.datamart.subscriptions import read_linked_feedback
from utils.deployment import Deployment
from utils.monitoring.drift import DriftMonitor
from utils.monitoring.fairness import FairnessMonitor
from utils.monitoring.monitor import _READS, DeploymentMonitor
from utils.monitoring.results import MONITORS
from utils.monitoring.window import no_records
from utils.subscriptions import Subscription, SubscriptionError, reference_faults
from utils.subscriptions.groups import NUMERIC_TYPES

#: Most distinct reference values a string column may have to be tested for drift as a category.
MAX_CATEGORIES = 100


def _outcomes(values: pd.Series, subscription: Subscription) -> pd.Categorical:
    """The subscription's classes as the monitors' outcomes: its favourable class as favourable, else not."""
    outcome = np.where(values.astype(str).to_numpy() == subscription.favourable, FAVOURABLE, UNFAVOURABLE)
    return pd.Categorical(outcome, categories=list(CLASS_ORDER))


def _typed(frame: pd.DataFrame, schema: dict[str, str]) -> pd.DataFrame:
    """The declared columns of ``frame`` in their types: numbers as floats, strings as text, booleans as bool."""
    typed = {}
    for name, kind in schema.items():
        values = frame[name]
        if kind in NUMERIC_TYPES:
            typed[name] = pd.to_numeric(values, errors="coerce").astype(float)
        elif kind == "boolean" and values.dtype != bool:
            typed[name] = values.astype(str).str.strip().str.lower().map({"true": True, "false": False})
        else:
            typed[name] = values.astype(str) if kind == "string" else values
    return frame.assign(**typed)


def read_reference(subscription: Subscription, work: str | os.PathLike | None = None) -> pd.DataFrame:
    """The subscription's reference data: its declared columns in their types and the label as an outcome.

    Raises:
        SubscriptionError: reference data that do not fit the schema (:func:`utils.subscriptions.reference_faults`;
            a subscription given none has the credit data's training split, which lacks its columns).
    """
    schema = subscription.input_schema
    path = config.layout(work).require(subscription.reference)
    raw = pd.read_csv(path, dtype={name: str for name, kind in schema.items() if kind == "string"})
    problem = reference_faults(subscription, raw)
    if problem:
        raise SubscriptionError(
            f"{problem}: give subscription {subscription.name!r} its reference data (PUT "
            f"/ml/v4/subscriptions/{subscription.subscription_id}/reference, or --reference when creating it)",
            field="reference",
        )
    frame = _typed(raw[[*schema, subscription.label]], schema)
    return frame[list(schema)].assign(**{LABEL: _outcomes(frame[subscription.label], subscription)})


def drift_columns(subscription: Subscription, reference: pd.DataFrame) -> dict[str, tuple | None]:
    """The columns the drift monitor compares, each with its categories (None: numeric), from the reference data."""
    columns: dict[str, tuple | None] = {}
    for name, kind in subscription.input_schema.items():
        if kind in NUMERIC_TYPES:
            columns[name] = None
            continue
        domain = tuple(sorted(reference[name].unique().tolist()))
        if kind == "boolean" or len(domain) <= MAX_CATEGORIES:
            columns[name] = (False, True) if kind == "boolean" else domain
    return columns


def _out_of_range(frame: pd.DataFrame, reference: pd.DataFrame, columns: dict[str, tuple | None]) -> np.ndarray:
    """Whether each record holds a number outside the reference's range or a category the reference never holds."""
    flagged = np.zeros(len(frame), dtype=bool)
    for name, categories in columns.items():
        if categories is None:
            low, high = reference[name].min(), reference[name].max()
            flagged |= ~frame[name].between(low, high).to_numpy()
        else:
            flagged |= ~frame[name].isin(categories).to_numpy()
    return flagged


class DeclaredMonitor(DeploymentMonitor):
    """The monitors of a subscription with a declared schema (see the module's docstring).

    Args:
        subscription: the subscription (its ``input_schema`` a mapping of columns to types).
        deployment: the record shown for it (its name, its engine, its model).
        options: as for :class:`DeploymentMonitor` (thresholds, attributes, sample size, seed).
    """

    def __init__(
        self,
        subscription: Subscription,
        deployment: Deployment,
        *,
        engine: Engine | None = None,
        work: str | os.PathLike | None = None,
        **options,
    ):
        if subscription.credit:
            raise SubscriptionError(f"subscription {subscription.name!r} follows the credit contract")
        self.subscription = subscription
        reference = read_reference(subscription, work)
        self.columns = drift_columns(subscription, reference)
        super().__init__(
            subscription.subscription_id,
            engine=engine,
            work=work,
            reference=reference,
            deployment=deployment,
            model=None,
            **options,
        )
        self.fairness = FairnessMonitor(
            None,
            self.thresholds,
            self.attributes,
            sample_size=self.sample_size,
            seed=self.seed,
            groups=subscription.groups,
        )
        self.drift = DriftMonitor(
            None, reference, self.thresholds, sample_size=self.sample_size, seed=self.seed, columns=self.columns
        )

    def records(self, start=None, end=None, *, feedback: bool = False, monitors: tuple[str, ...] = MONITORS):
        """The payload (or ``feedback``) records of the window [``start``, ``end``) as the monitors read them:
        the declared columns in their types; payload with ``prediction`` (an outcome), ``probability_risk`` and
        ``out_of_range``; feedback that names a logged prediction, with the label (an outcome, as ``Risk``) and
        ``logged_probability_risk``. Read when one of ``monitors`` needs them, else none."""
        needed = bool(_READS["feedback" if feedback else "payload"] & set(monitors))
        schema, sub = self.subscription.input_schema, self.subscription
        if feedback:
            found = read_linked_feedback(self.engine, sub.subscription_id, start, end) if needed else None
            if found is None or found.empty:
                return self._empty(feedback=True)
            typed = _typed(found, schema)[list(schema)]
            return typed.assign(
                **{LABEL: _outcomes(found["label"], sub), "logged_probability_risk": found["logged_probability_risk"]}
            )
        found = datamart.read_payload(self.engine, sub.subscription_id, start, end) if needed else None
        if found is None or found.empty:
            return self._empty(feedback=False)
        typed = _typed(found, schema)[list(schema)]
        return typed.assign(
            prediction=_outcomes(found["prediction"], sub),
            probability_risk=found["probability_risk"].astype(float),
            out_of_range=_out_of_range(typed, self.reference, self.columns),
        )

    def _empty(self, *, feedback: bool) -> pd.DataFrame:
        """No records, with the columns and types of :meth:`records`."""
        columns = pd.DataFrame({name: self.reference[name].iloc[:0] for name in self.subscription.input_schema})
        outputs = no_records(feedback=feedback).drop(columns=list(FEATURES))
        return pd.concat([columns, outputs], axis=1)

    def explain(self, transaction_id: str, *, seed: int | None = None):
        """Not available: explanations score changed records of the credit contract through the engine's URL."""
        raise SubscriptionError(
            f"subscription {self.subscription.name!r} declares its own columns: its decisions are not explained here",
            field="input_schema",
        )
