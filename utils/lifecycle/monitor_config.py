"""The monitors' configuration of one deployment, stored in the data mart rather than passed as arguments.

The document is JSON with two keys:

- ``thresholds``: every field of :class:`utils.monitoring.Thresholds` (the alert thresholds and the minimum
  record counts ``min_records``, ``min_feedback`` and ``min_group_records``); a field left out keeps its default;
- ``protected_groups``: the protected attributes to monitor, each with its monitored and reference groups as the
  fairness monitor defines them (:data:`utils.data.PROTECTED_GROUPS`); a list of attribute names is accepted;
- ``schedule``: the length of each monitor's windows and the delay after their end
  (:func:`utils.monitoring.schedule.validate_schedule`);
- ``notifications``: the receivers of alerts and recoveries and the delivery settings
  (:func:`utils.monitoring.notifications.validate_notifications`).

A deployment without a stored document uses the monitors' defaults (:func:`default_monitor_config`). A document is
validated before it is written; promotion copies it from the pre-prod deployment to the prod one.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from datetime import datetime

from sqlalchemy.engine import Engine

from utils import datamart
from utils.data import PROTECTED_GROUPS
from utils.deployment import DeploymentError, check_person
from utils.lifecycle.records import LifecycleError
from utils.monitoring.notifications import default_notifications, validate_notifications
from utils.monitoring.results import Thresholds
from utils.monitoring.schedule import default_schedule, validate_schedule
from utils.monitoring.thresholds import thresholds_of

#: The one threshold that is not a probability or a share (the others lie in [0, 1]).
_UNBOUNDED = ("min_disparate_impact",)
_KEYS = ("thresholds", "protected_groups", "schedule", "notifications")
#: The sections validated by the monitors' own rules, with their defaults.
_SECTIONS = {
    "schedule": (validate_schedule, default_schedule),
    "notifications": (validate_notifications, default_notifications),
}


@dataclass(frozen=True)
class MonitorConfig:
    """A deployment's monitor configuration: its document and what the monitors take from it."""

    deployment_id: str
    document: dict
    stored: bool
    updated_by: str | None = None
    updated_at: datetime | None = None

    @property
    def thresholds(self) -> Thresholds:
        """The thresholds and minimum record counts, for ``DeploymentMonitor(thresholds=...)``."""
        return thresholds_of(self.document)

    @property
    def attributes(self) -> tuple[str, ...]:
        """The protected attributes, for ``DeploymentMonitor(attributes=...)``."""
        return tuple(self.document["protected_groups"])

    def as_dict(self) -> dict:
        """The configuration as JSON-able values (times in ISO 8601, UTC)."""
        record = asdict(self)
        record["updated_at"] = None if self.updated_at is None else self.updated_at.isoformat()
        return record


def _groups_document() -> dict:
    """The fairness monitor's groups as JSON (age ranges as two-element lists)."""
    return {
        attribute: {role: list(group) if isinstance(group, tuple) else group for role, group in groups.items()}
        for attribute, groups in PROTECTED_GROUPS.items()
    }


def default_monitor_config() -> dict:
    """The document of the monitors' current defaults: ``Thresholds()`` and every protected attribute."""
    return {
        "thresholds": asdict(Thresholds()),
        "protected_groups": _groups_document(),
        **{key: default() for key, (_, default) in _SECTIONS.items()},
    }


def _kinds() -> dict[str, str]:
    """Each ``Thresholds`` field's annotation: ``int`` fields count records, the others are numbers."""
    return {f.name: str(f.type) for f in fields(Thresholds)}


def _check_threshold(name: str, kind: str, value: object) -> None:
    where = f"thresholds.{name}"
    if value is None and "None" in kind:
        return
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise LifecycleError(f"{where} must be a finite number, got {value!r}")
    if kind == "int" and (not float(value).is_integer() or value < 1):
        raise LifecycleError(f"{where} counts records: a whole number of at least 1, got {value!r}")
    if kind != "int" and name not in _UNBOUNDED and not 0 <= value <= 1:
        raise LifecycleError(f"{where} is a probability or a share: it must lie in [0, 1], got {value!r}")
    if value < 0:
        raise LifecycleError(f"{where} must not be negative, got {value!r}")


def _thresholds(given: object) -> dict:
    if not isinstance(given, dict):
        raise LifecycleError("thresholds must be a JSON object of Thresholds fields")
    kinds = _kinds()
    unknown = sorted(set(given) - set(kinds))
    if unknown:
        raise LifecycleError(f"unknown thresholds {', '.join(map(repr, unknown))}; known: {', '.join(sorted(kinds))}")
    merged = {**asdict(Thresholds()), **given}
    for name, value in merged.items():
        _check_threshold(name, kinds[name], value)
    return {name: int(value) if kinds[name] == "int" else value for name, value in merged.items()}


def _protected_groups(given: object) -> dict:
    defined = _groups_document()
    chosen = list(given) if isinstance(given, list | dict) else None
    if not chosen or not all(isinstance(name, str) for name in chosen):
        raise LifecycleError(f"protected_groups must name at least one of {', '.join(defined)}")
    unknown = [name for name in chosen if name not in defined]
    if unknown:
        raise LifecycleError(f"unknown protected attribute {unknown[0]!r}; the monitors know {', '.join(defined)}")
    if isinstance(given, dict):
        for name, groups in given.items():
            if groups is not None and groups != defined[name]:
                raise LifecycleError(
                    f"protected_groups.{name} must be {defined[name]} (the fairness monitor's groups) or null"
                )
    return {name: defined[name] for name in chosen}


def validate_monitor_config(document: object) -> dict:
    """The complete document for ``document`` (defaults filled in), or a :class:`LifecycleError` naming the key."""
    if not isinstance(document, dict):
        raise LifecycleError(f"a monitor configuration is a JSON object with the keys {' and '.join(_KEYS)}")
    unknown = sorted(set(document) - set(_KEYS))
    if unknown:
        raise LifecycleError(f"unknown key {unknown[0]!r} in the monitor configuration; known: {', '.join(_KEYS)}")
    default = default_monitor_config()
    complete = {
        "thresholds": _thresholds(document.get("thresholds", default["thresholds"])),
        "protected_groups": _protected_groups(document.get("protected_groups", default["protected_groups"])),
    }
    for key, (validate, _) in _SECTIONS.items():
        try:
            complete[key] = validate(document.get(key, default[key]))
        except ValueError as error:
            raise LifecycleError(str(error)) from None
    return complete


def monitor_config(
    deployment_id: str, *, engine: Engine | None = None, work: str | os.PathLike | None = None
) -> MonitorConfig:
    """The stored monitor configuration of a deployment, or the defaults when it has none."""
    row = datamart.read_monitor_config(engine or datamart.connect(work=work), deployment_id)
    if row is None:
        return MonitorConfig(deployment_id, default_monitor_config(), stored=False)
    return MonitorConfig(deployment_id, row["config"], True, row["updated_by"], row["updated_at"])


def set_monitor_config(
    deployment_id: str,
    document: dict,
    *,
    updated_by: str | None = None,
    engine: Engine | None = None,
    work: str | os.PathLike | None = None,
) -> MonitorConfig:
    """Validate and store the monitor configuration of an existing deployment.

    Raises:
        LifecycleError: the document breaks the rules above, or there is no such deployment.
    """
    try:
        if updated_by is not None:
            check_person(updated_by, "updated_by")
    except DeploymentError as error:
        raise LifecycleError(str(error), field="updated_by") from None
    engine = engine or datamart.connect(work=work)
    if datamart.read_deployment(engine, deployment_id) is None:
        raise LifecycleError(f"no deployment with id {str(deployment_id)[:60]!r}", field="deployment_id", missing=True)
    row = datamart.write_monitor_config(engine, deployment_id, validate_monitor_config(document), updated_by)
    return MonitorConfig(deployment_id, row["config"], True, row["updated_by"], row["updated_at"])
