"""Subscriptions: the deployments the monitors watch, served by this project or by another engine.

A subscription names a deployment, the engine that serves it (``local`` for this project's own service,
``mlserver``, ``mlflow``, ``kserve``, ``custom``), the URL that scores it (optional: an Open Inference Protocol
``.../infer`` endpoint), its input schema (the credit contract, or a declared set of typed columns), the label and
its classes (the favourable one first), the output fields of the engine's answer, the protected attributes and
the reference (training) data. Its payload and feedback records are logged through the API under the subscription
id, validated against its schema; the monitors read them there (:mod:`utils.monitoring.subscription`).

A declared schema's protected attributes are its columns declared protected, with their groups
(:mod:`utils.subscriptions.groups`); the credit contract's are fixed. The command line is
:mod:`utils.subscriptions.cli`.

Every deployment of this project is a subscription too (engine ``local``, the deployment's id and name), made on
first use, so that the monitors have one way in.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from utils import config, datamart
from utils.contract import InputError, check_identifier, shown, valid_rows
from utils.data import CLASS_ORDER, FAVOURABLE, FEATURES, LABEL, PROTECTED_GROUPS, write_csv
from utils.datamart import subscriptions as rows
from utils.subscriptions.errors import SubscriptionError as SubscriptionError
from utils.subscriptions.groups import MAX_GROUP_TEXT as MAX_GROUP_TEXT
from utils.subscriptions.groups import MAX_GROUP_VALUES as MAX_GROUP_VALUES
from utils.subscriptions.groups import NUMERIC_TYPES, as_groups, split_schema
from utils.times import utc_now

#: The serving engines a subscription may name; ``local`` is this project's own service.
ENGINES: tuple[str, ...] = ("local", "mlserver", "mlflow", "kserve", "custom")
#: The input schema of the credit data contract (:mod:`utils.contract`).
CREDIT_CONTRACT = "credit"
#: The types a declared column may have, and the JSON values each accepts.
COLUMN_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "boolean": (bool,),
}
#: Most columns a declared schema may have, and longest column name.
MAX_COLUMNS, MAX_COLUMN_NAME = 500, 100
#: The rules as JSON Schema patterns (for the API's description): a subscription's name (the deployment name rule),
#: a column name (no control character), an identifier (labels, output fields), a scoring URL.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
COLUMN_NAME_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]+$"
IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
URL_PATTERN = r"^https?://[^\s\x00-\x1f\x7f]+$"
#: Free text a subscription names (the engine's model name, class names): no control characters, which no database
#: stores alike (PostgreSQL refuses NUL).
TEXT_PATTERN = COLUMN_NAME_PATTERN
_COLUMN_NAME, _URL = re.compile(COLUMN_NAME_PATTERN[1:-1]), re.compile(URL_PATTERN[1:-1])  # matched whole
#: Where the reference data of a subscription are kept, inside the working directory (named by its id).
REFERENCE_FOLDER = "subscriptions"
#: The payload and feedback logs' own fields, which no declared column may be named (they are read side by side).
RESERVED_COLUMNS: tuple[str, ...] = (
    "transaction_id",
    "deployment_id",
    "model_id",
    "scored_at",
    "prediction",
    "probability_no_risk",
    "probability_risk",
    "out_of_range",
    "feedback_id",
    "recorded_at",
    "label",
)
#: Fewest rows reference data may have (the drift tests compare distributions).
MIN_REFERENCE_ROWS = 50


@dataclass(frozen=True)
class Subscription:
    """A deployment the monitors watch (see the module's docstring)."""

    subscription_id: str
    name: str
    engine: str
    created_at: datetime
    scoring_url: str | None = None
    deployment_id: str | None = None
    model_id: str = ""
    input_schema: str | dict[str, str] = CREDIT_CONTRACT
    label: str = LABEL
    classes: tuple[str, ...] = CLASS_ORDER
    prediction_field: str = "prediction"
    probability_field: str = "probability"
    protected_attributes: tuple[str, ...] = ("Sex", "Age")
    #: The reference data, relative to the working directory.
    reference: str = "data/train.csv"
    #: Each protected attribute's monitored and reference group, as :mod:`utils.fairness` reads them.
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def favourable(self) -> str:
        """The favourable class: the first of ``classes``."""
        return self.classes[0]

    @property
    def credit(self) -> bool:
        """Whether the inputs follow the credit contract (and so every monitor applies)."""
        return self.input_schema == CREDIT_CONTRACT

    def as_dict(self) -> dict[str, Any]:
        """The subscription as JSON-able values (times in ISO 8601, UTC)."""
        return {**asdict(self), "created_at": self.created_at.isoformat(), "favourable": self.favourable}


_SPEC_FIELDS = (
    "model_id",
    "input_schema",
    "label",
    "classes",
    "prediction_field",
    "probability_field",
    "protected_attributes",
    "reference",
)


def _from_row(row: dict) -> Subscription:
    spec = row["spec"]
    if spec["input_schema"] == CREDIT_CONTRACT:
        groups = {a: PROTECTED_GROUPS[a] for a in spec["protected_attributes"] if a in PROTECTED_GROUPS}
    else:
        groups = as_groups(spec["input_schema"], spec.get("protected") or {})
    return Subscription(
        subscription_id=row["subscription_id"],
        name=row["name"],
        engine=row["engine"],
        created_at=row["created_at"],
        scoring_url=row["scoring_url"],
        deployment_id=row["deployment_id"],
        **{name: tuple(spec[name]) if isinstance(spec[name], list) else spec[name] for name in _SPEC_FIELDS},
        groups=groups,
    )


def _check_name(value: object, field: str) -> str:
    from utils.deployment import is_valid_name  # not at the top: the command line's --help stays light

    if not is_valid_name(value):
        raise SubscriptionError(
            f"{field} {shown(value)} is invalid: 1 to 100 characters, ASCII letters, digits, '-', '_' and '.', "
            "starting with a letter or digit",
            field=field,
        )
    return value


def _check_schema(schema: object) -> str | dict[str, str]:
    if schema == CREDIT_CONTRACT:
        return schema
    if not isinstance(schema, dict) or not schema or len(schema) > MAX_COLUMNS:
        raise SubscriptionError(
            f"input_schema is {CREDIT_CONTRACT!r} or an object of 1 to {MAX_COLUMNS} columns and their types",
            field="input_schema",
        )
    for name, kind in schema.items():
        if not isinstance(name, str) or len(name) > MAX_COLUMN_NAME or not _COLUMN_NAME.fullmatch(name):
            message = f"column name {shown(name)} is empty, too long or holds a control character"
            raise SubscriptionError(message, field="input_schema")
        if name in RESERVED_COLUMNS:
            raise SubscriptionError(f"column {name!r} is a field of the payload log itself; rename it", field=name)
        if not isinstance(kind, str) or kind not in COLUMN_TYPES:
            raise SubscriptionError(
                f"column {name!r} has type {shown(kind)}; choose from {list(COLUMN_TYPES)}", field=name
            )
    return dict(schema)


def _check_outputs(spec: dict[str, Any]) -> dict[str, Any]:
    """The label, classes, output fields and protected attributes, checked against the input schema."""
    classes = tuple(spec.get("classes") or CLASS_ORDER)
    named = all(isinstance(c, str) and 0 < len(c) <= 50 and _COLUMN_NAME.fullmatch(c) for c in classes)
    if len(classes) != 2 or len(set(classes)) != 2 or not named:
        raise SubscriptionError(
            "classes are two different names (of 1 to 50 characters, no control characters), favourable first",
            field="classes",
        )
    model_id = spec.get("model_id")
    if model_id is not None and not (
        isinstance(model_id, str) and len(model_id) <= 200 and _COLUMN_NAME.fullmatch(model_id)
    ):
        raise SubscriptionError(
            f"model_id {shown(model_id)} is invalid: 1 to 200 characters, no control characters", field="model_id"
        )
    schema = spec["input_schema"]
    protected = tuple(spec.get("protected_attributes") or ())
    if schema != CREDIT_CONTRACT and protected and protected != tuple(spec["protected"]):
        raise SubscriptionError(
            "a declared schema's protected attributes are the columns it declares protected, as "
            '{"type": ..., "protected": ...}',
            field="protected_attributes",
        )
    if schema == CREDIT_CONTRACT:
        if (spec.get("label") or LABEL) != LABEL or classes != CLASS_ORDER:
            raise SubscriptionError(
                f"the credit contract's label is {LABEL!r} with classes {list(CLASS_ORDER)} ({FAVOURABLE!r} "
                "favourable)",
                field="classes",
            )
        unknown = [a for a in protected if a not in PROTECTED_GROUPS]
    else:
        unknown = [a for a in protected if a not in schema]
    if unknown:
        raise SubscriptionError(
            f"protected attribute {unknown[0]!r} is not an input column", field="protected_attributes"
        )
    if len(set(protected)) != len(protected):
        raise SubscriptionError("protected attributes are named once each", field="protected_attributes")
    for name in ("label", "prediction_field", "probability_field"):
        if spec.get(name) is not None:
            check_identifier(spec[name], name, max_length=100)
    return {**spec, "classes": list(classes), "protected_attributes": list(protected)}


def create_subscription(
    name: str,
    *,
    engine_name: str,
    scoring_url: str | None = None,
    reference: str | os.PathLike | None = None,
    engine: Engine | None = None,
    work: str | os.PathLike | None = None,
    **spec: Any,
) -> Subscription:
    """Record a new subscription and return it.

    ``spec`` holds the fields of :class:`Subscription` after ``scoring_url`` (``input_schema``, ``label``,
    ``classes``, ``prediction_field``, ``probability_field``, ``protected_attributes``, ``model_id``); missing
    ones take the credit contract's values. A declared schema's protected attributes are the columns it declares
    protected, with their groups (:mod:`utils.subscriptions.groups`). ``reference`` is a CSV file, checked against
    the schema and copied into the working directory; by default the working directory's training split.

    Raises:
        SubscriptionError: a field at fault (named), or a name already taken (status 409).
    """
    _check_name(name, "name")
    if engine_name not in ENGINES or engine_name == "local":
        raise SubscriptionError(f"engine {shown(engine_name)} is not one of {list(ENGINES[1:])}", field="engine")
    if scoring_url is not None and not _URL.fullmatch(scoring_url):
        raise SubscriptionError(f"scoring_url {shown(scoring_url)} is no http(s) URL", field="scoring_url")
    schema, protected = spec.get("input_schema") or CREDIT_CONTRACT, None
    if isinstance(schema, dict):
        schema, protected = split_schema(schema)
    spec["input_schema"], spec["protected"] = _check_schema(schema), protected
    if protected is not None:
        spec["protected_attributes"] = spec.get("protected_attributes") or tuple(protected)
    elif spec.get("protected_attributes") is None:  # the credit contract's groups
        spec["protected_attributes"] = ("Sex", "Age")
    spec = _check_outputs(spec)
    layout = config.layout(work)
    spec["reference"] = layout.relative(layout.train)
    defaults = Subscription("", "", "", utc_now(), model_id=name)
    protected = spec["protected"]
    spec = {key: spec[key] if spec.get(key) is not None else getattr(defaults, key) for key in _SPEC_FIELDS}
    if protected is not None:  # a declared schema's protected columns and their groups
        spec["protected"] = protected
    row = {"subscription_id": datamart.new_id(), "name": name, "engine": engine_name, "scoring_url": scoring_url}
    row = {**row, "deployment_id": None, "spec": _json(spec), "created_at": utc_now()}
    if reference:  # checked and written before the subscription is stored
        spec["reference"] = _write_reference(_from_row(row), Path(reference).read_bytes(), layout)
    return _store(engine or datamart.connect(work=work), {**row, "spec": _json(spec)})


def _json(spec: dict[str, Any]) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, tuple) else value for key, value in spec.items()}


def _store(engine: Engine, row: dict) -> Subscription:
    try:
        stored = rows.insert_subscription(engine, {**row, "created_at": utc_now()})
    except IntegrityError:
        raise SubscriptionError(f"a subscription named {row['name']!r} exists", field="name", status=409) from None
    return _from_row(stored)


def deployment_subscription(deployment_id: str, *, engine: Engine) -> Subscription:
    """The subscription of this project's deployment ``deployment_id`` (engine ``local``), made on first use.

    Raises:
        SubscriptionError: no such deployment (status 404).
    """
    found = rows.read_subscription(engine, deployment_id=deployment_id)
    if found is not None:
        return _from_row(found)
    from utils.deployment import DeploymentError, get_deployment

    try:
        deployment = get_deployment(deployment_id, engine=engine)
    except DeploymentError as error:
        raise SubscriptionError(str(error), field="subscription_id", status=404) from None
    spec = _json({key: getattr(Subscription("", "", "", utc_now()), key) for key in _SPEC_FIELDS})
    row = {
        "subscription_id": deployment.deployment_id,
        "name": f"{deployment.name}-{deployment.space}",
        "engine": "local",
        "scoring_url": None,
        "deployment_id": deployment.deployment_id,
        "spec": {**spec, "model_id": deployment.model_id},
    }
    try:
        return _store(engine, row)
    except SubscriptionError:  # made meanwhile by another process, or its name is taken
        found = rows.read_subscription(engine, deployment_id=deployment_id)
        if found is None:
            raise
        return _from_row(found)


def get_subscription(subscription_id: str, *, engine: Engine) -> Subscription:
    """A subscription by id; a deployment's id gives the deployment's subscription.

    Raises:
        SubscriptionError: no subscription or deployment with that id (status 404).
    """
    try:
        check_identifier(subscription_id, "subscription_id", status=404)
    except InputError as error:
        raise SubscriptionError(error.message, field="subscription_id", status=404) from None
    found = rows.read_subscription(engine, subscription_id=subscription_id)
    return _from_row(found) if found is not None else deployment_subscription(subscription_id, engine=engine)


def reference_faults(subscription: Subscription, frame: pd.DataFrame) -> str | None:
    """What is wrong with reference data for ``subscription``, or None."""
    wanted = list(FEATURES) if subscription.credit else list(subscription.input_schema)
    missing = [name for name in (*wanted, subscription.label) if name not in frame.columns]
    if missing:
        return f"the reference data lack the column(s) {', '.join(missing[:5])}"
    if len(frame) < MIN_REFERENCE_ROWS:
        return f"the reference data hold {len(frame)} rows; at least {MIN_REFERENCE_ROWS} are needed"
    for name, kind in ({} if subscription.credit else subscription.input_schema).items():
        text = frame[name].astype(str).str.strip()
        if kind in NUMERIC_TYPES:
            wrong = pd.to_numeric(text, errors="coerce").isna()
        else:
            wrong = ~text.str.lower().isin(["true", "false"]) if kind == "boolean" else frame[name].isna()
        if wrong.any():
            return f"row {int(np.flatnonzero(wrong)[0])} of the reference data's column {name!r} is no {kind}"
    if subscription.credit and not (valid := valid_rows(frame)).all():
        return f"row {int(np.flatnonzero(~valid)[0])} of the reference data breaks the credit contract"
    unknown = set(frame[subscription.label].dropna().astype(str)) - set(subscription.classes)
    if unknown:
        return f"the reference data's {subscription.label} holds {shown(sorted(unknown)[0])}, not one of the classes"
    return None


def set_reference(
    subscription_id: str, data: bytes, *, engine: Engine, work: str | os.PathLike | None = None
) -> Subscription:
    """Replace a subscription's reference data with the CSV text ``data`` (UTF-8, a header line), checked against
    its schema and stored in the working directory under the subscription's id.

    Raises:
        SubscriptionError: no such subscription (404), a deployment's own (its reference is its training split),
            or data that do not fit the schema (naming what is wrong).
    """
    found = get_subscription(subscription_id, engine=engine)
    if found.engine == "local":
        raise SubscriptionError("a deployment's reference data are its training split", field="subscription_id")
    reference = _write_reference(found, data, config.layout(work))
    spec = rows.read_subscription(engine, subscription_id=found.subscription_id)["spec"]
    rows.update_subscription_spec(engine, found.subscription_id, {**spec, "reference": reference})
    return get_subscription(found.subscription_id, engine=engine)


def _write_reference(subscription: Subscription, data: bytes, layout: config.WorkLayout) -> str:
    """Check CSV text as the subscription's reference data and write it, named by the subscription's id; returns
    its path relative to the working directory."""
    try:
        frame = pd.read_csv(io.BytesIO(data), skipinitialspace=True)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as error:
        problem = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise SubscriptionError(f"the reference data are no CSV text: {problem}", field="reference") from None
    problem = reference_faults(subscription, frame)
    if problem:
        raise SubscriptionError(problem, field="reference")
    path = write_csv(frame, layout.root / REFERENCE_FOLDER / f"{subscription.subscription_id}.csv")
    return layout.relative(path)


def list_subscriptions(*, engine: Engine, name: str | None = None) -> list[Subscription]:
    """The recorded subscriptions, oldest first (a deployment's appears once it has been used)."""
    return [_from_row(row) for row in rows.read_subscriptions(engine, name=name)]
