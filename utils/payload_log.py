"""Payload and feedback logging without scoring: records a subscription's engine scored, checked and stored.

A payload record holds the model's ``inputs`` (field to value), its ``prediction`` (one of the subscription's
classes), its ``probabilities`` (one per class, in the subscription's order, adding up to 1), and optionally a
``transaction_id`` (made when none is given) and the moment it was scored (``scored_at``, else now). A feedback
record holds ``inputs``, the true ``label`` and optionally the ``transaction_id`` of the prediction it labels.
Inputs are checked against the subscription's schema: the credit contract (:mod:`utils.contract`, the same
faults by field and row) or the declared columns and types. A request with any fault stores nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from utils import datamart
from utils.contract import (
    Fault,
    InputError,
    Ranges,
    check_identifier,
    contract_error,
    contract_faults,
    out_of_range,
    shown,
)
from utils.data import FEATURES
from utils.datamart.records import logged_transactions
from utils.scoring import MAX_ROWS, TRANSACTION_FIELD, check_row_count, records
from utils.subscriptions import COLUMN_TYPES, Subscription
from utils.times import as_utc, utc_now

#: How far the probabilities of a record may add up from 1.
PROBABILITY_SUM_TOLERANCE = 1e-6


def _field_faults(inputs: Sequence[Mapping], names: Sequence[str]) -> list[Fault]:
    """Missing and unknown fields, by row."""
    faults = []
    for row, record in enumerate(inputs):
        faults += [Fault(name, row, f"missing field {name!r}") for name in names if name not in record]
        faults += [Fault(shown(name), row, f"unknown field {shown(name)}") for name in record if name not in names]
    return faults


def _declared_faults(inputs: Sequence[Mapping], schema: Mapping[str, str]) -> list[Fault]:
    """Values whose JSON type is not their column's declared type (null is a fault: a value is needed)."""
    faults = []
    for row, record in enumerate(inputs):
        for name, kind in schema.items():
            value = record.get(name)
            wrong_bool = isinstance(value, bool) and kind != "boolean"
            if name in record and (wrong_bool or not isinstance(value, COLUMN_TYPES[kind])):
                faults.append(Fault(name, row, f"{name} {shown(value)} is not of type {kind}"))
            elif kind == "number" and isinstance(value, float) and not math.isfinite(value):
                faults.append(Fault(name, row, f"{name} {shown(value)} is not a finite number"))
    return faults


def check_inputs(subscription: Subscription, inputs: Sequence[Mapping]) -> tuple[list[dict], list[Fault]]:
    """The inputs as they will be stored (credit contract: fields in contract order, integers as ``int``), and
    every fault of every row against the subscription's schema."""
    if not subscription.credit:
        schema = subscription.input_schema
        faults = _field_faults(inputs, list(schema)) + _declared_faults(inputs, schema)
        return [dict(record) for record in inputs], faults
    faults = _field_faults(inputs, FEATURES)
    if faults:
        return [], faults
    columns, faults = contract_faults({name: [record[name] for record in inputs] for name in FEATURES})
    return records(columns), faults


def _output_faults(subscription: Subscription, logged: Sequence[Mapping]) -> list[Fault]:
    classes = subscription.classes
    faults = []
    for row, record in enumerate(logged):
        if record["prediction"] not in classes:
            problem = f"prediction {shown(record['prediction'])} is not one of {list(classes)}"
            faults.append(Fault("prediction", row, problem))
        p = record["probabilities"]
        valid = len(p) == len(classes) and all(math.isfinite(x) and 0 <= x <= 1 for x in p)
        if not valid or abs(sum(p) - 1) > PROBABILITY_SUM_TOLERANCE:
            problem = (
                f"probabilities {shown(p)} are not {len(classes)} numbers in [0, 1] adding up to 1 ({list(classes)})"
            )
            faults.append(Fault("probabilities", row, problem))
    return faults


def _link_faults(ids: Sequence[str | None]) -> list[Fault]:
    faults, seen = [], set()
    for row, value in enumerate(ids):
        if value is None:
            continue
        try:
            check_identifier(value, TRANSACTION_FIELD)
        except ValueError as error:
            faults.append(Fault(TRANSACTION_FIELD, row, getattr(error, "message", str(error))))
        if value in seen:
            faults.append(Fault(TRANSACTION_FIELD, row, f"{TRANSACTION_FIELD} {value!r} is given twice"))
        seen.add(value)
    return faults


def log_payload(
    engine: Engine,
    subscription: Subscription,
    logged: Sequence[Mapping[str, Any]],
    *,
    max_rows: int = MAX_ROWS,
    observed: Ranges | None = None,
) -> list[str]:
    """Check and store payload records for a subscription in one transaction; returns their transaction ids.

    ``observed`` (credit contract): the training data's ranges, by which records are flagged ``out_of_range``.

    Raises:
        InputError: every fault of the rows at fault (nothing is stored); status 409 when a transaction id is
            logged already.
    """
    check_row_count(len(logged), max_rows, field="records")
    inputs, faults = check_inputs(subscription, [record["inputs"] for record in logged])
    given = [record.get(TRANSACTION_FIELD) for record in logged]
    faults += _output_faults(subscription, logged) + _link_faults(given)
    if faults:
        raise contract_error(faults, rule=f"the schema of subscription {subscription.name!r}")
    flags = [None] * len(logged)
    if subscription.credit and observed:
        flags = out_of_range({name: [r[name] for r in inputs] for name in FEATURES}, observed)
    now = utc_now()
    ids = [value or datamart.new_id() for value in given]
    rows = [
        {
            "transaction_id": transaction_id,
            "deployment_id": subscription.subscription_id,
            "model_id": subscription.model_id,
            "scored_at": as_utc(record.get("scored_at") or now),
            "inputs": fields,
            "prediction": record["prediction"],
            "probability_no_risk": float(record["probabilities"][0]),
            "probability_risk": float(record["probabilities"][1]),
            "out_of_range": flagged,
        }
        for transaction_id, record, fields, flagged in zip(ids, logged, inputs, flags, strict=True)
    ]
    try:
        datamart.insert_payload(engine, rows)
    except IntegrityError:
        raise _taken(engine, subscription, [i for i in given if i]) from None
    return ids


def _taken(engine: Engine, subscription: Subscription, ids: list[str]) -> InputError:
    known = logged_transactions(engine, subscription.subscription_id, ids)
    which = f" ({', '.join(sorted(known)[:5])})" if known else ""
    return InputError(
        f"a transaction id is logged already{which}: nothing was stored", field=TRANSACTION_FIELD, status=409
    )


def log_feedback(
    engine: Engine, subscription: Subscription, labelled: Sequence[Mapping[str, Any]], *, max_rows: int = MAX_ROWS
) -> list[str]:
    """Check and store labelled records for a subscription in one transaction; returns their feedback ids.

    A record names the ``transaction_id`` of the logged prediction it labels; it must, for a subscription
    without a scoring URL (whose predictions cannot be made again) and other than a local deployment, and for a
    declared schema (whose monitors judge its logged predictions only).

    Raises:
        InputError: every fault of the rows at fault (nothing is stored).
    """
    check_row_count(len(labelled), max_rows, field="records")
    inputs, faults = check_inputs(subscription, [record["inputs"] for record in labelled])
    links = [record.get(TRANSACTION_FIELD) for record in labelled]
    faults += _link_faults(links)
    for row, record in enumerate(labelled):
        if record["label"] not in subscription.classes:
            problem = f"label {shown(record['label'])} is not one of {list(subscription.classes)}"
            faults.append(Fault("label", row, problem))
        if links[row] is None and not subscription.credit:
            problem = f"{TRANSACTION_FIELD} is needed: a declared schema's quality is judged on its logged predictions"
            faults.append(Fault(TRANSACTION_FIELD, row, problem))
        elif links[row] is None and subscription.scoring_url is None and subscription.engine != "local":
            problem = f"{TRANSACTION_FIELD} is needed: the subscription has no scoring URL to predict the record again"
            faults.append(Fault(TRANSACTION_FIELD, row, problem))
    named = {link for link in links if link is not None}
    known = logged_transactions(engine, subscription.subscription_id, named) if named and not faults else named
    faults += [
        Fault(TRANSACTION_FIELD, row, f"{TRANSACTION_FIELD} {link!r} is no logged prediction of this subscription")
        for row, link in enumerate(links)
        if link is not None and link not in known
    ]
    if faults:
        raise contract_error(faults, rule=f"the schema of subscription {subscription.name!r}")
    now = utc_now()
    rows = [
        {
            "feedback_id": datamart.new_id(),
            "deployment_id": subscription.subscription_id,
            "recorded_at": now,
            "inputs": fields,
            "label": record["label"],
            "transaction_id": link,
        }
        for record, fields, link in zip(labelled, inputs, links, strict=True)
    ]
    datamart.insert_feedback(engine, rows)
    return [row["feedback_id"] for row in rows]
