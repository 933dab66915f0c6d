"""The model's life across spaces: evaluations, approvals, promotion, deployment history, monitor configuration.

A version trained and deployed in ``dev`` is deployed in ``preprod`` and evaluated there (the evaluation run calls
:func:`record_evaluation`); a model validator approves or rejects that evaluation (:func:`approve`,
:func:`reject`); :func:`promote` then deploys the same registered version to ``prod`` with the monitor configuration
of its pre-prod deployment. A prod deployment of a version without an approved pre-prod evaluation is refused
everywhere (:func:`utils.deployment.deploy` holds that rule). Parts, in the order they import each other:
``records`` (evaluations and decisions) → ``monitor_config`` (the document stored per deployment) → ``promotion``
(promotion and history) → ``cli`` (``python -m utils.lifecycle``).
"""

from utils.deployment import PERSON_RULE, ProductionCheckError, approved_evaluation, production_problem
from utils.lifecycle.monitor_config import (
    MonitorConfig,
    default_monitor_config,
    monitor_config,
    set_monitor_config,
    validate_monitor_config,
)
from utils.lifecycle.promotion import Promotion, ServicePeriod, deployment_history, promote
from utils.lifecycle.records import (
    DECISIONS,
    VERDICTS,
    ApprovalRecord,
    EvaluationRecord,
    LifecycleError,
    approve,
    decide,
    get_evaluation,
    list_approvals,
    list_evaluations,
    record_evaluation,
    reject,
    report_paths,
)

__all__ = [
    "DECISIONS",
    "PERSON_RULE",
    "VERDICTS",
    "ApprovalRecord",
    "EvaluationRecord",
    "LifecycleError",
    "MonitorConfig",
    "ProductionCheckError",
    "Promotion",
    "ServicePeriod",
    "approve",
    "approved_evaluation",
    "decide",
    "default_monitor_config",
    "deployment_history",
    "get_evaluation",
    "list_approvals",
    "list_evaluations",
    "monitor_config",
    "production_problem",
    "promote",
    "record_evaluation",
    "reject",
    "report_paths",
    "set_monitor_config",
    "validate_monitor_config",
]
