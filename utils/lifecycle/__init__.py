"""The model's life across spaces: evaluations, approvals, promotion, deployment history, monitor configuration.

A version trained and deployed in ``dev`` is deployed in ``preprod`` and evaluated there (the evaluation run calls
:func:`record_evaluation`); a model validator approves or rejects that evaluation (:func:`approve`,
:func:`reject`); :func:`promote` then deploys the same registered version to ``prod`` with the monitor configuration
of its pre-prod deployment. A prod deployment of a version without an approved pre-prod evaluation is refused
everywhere (:func:`utils.deployment.deploy` holds that rule). Parts, in the order they import each other:
``records`` (evaluations and decisions) → ``monitor_config`` (the document stored per deployment) → ``promotion``
(promotion and history) → ``cli`` (``python -m utils.lifecycle``).
"""

from typing import TYPE_CHECKING

from utils.lazy import lazy_exports

#: Each public name and the module defining it, imported when the name is first used (see :mod:`utils.lazy`).
_EXPORTS = {
    "DECISIONS": "utils.lifecycle.records",
    "PERSON_RULE": "utils.choices",
    "VERDICTS": "utils.lifecycle.records",
    "ApprovalRecord": "utils.lifecycle.records",
    "EvaluationRecord": "utils.lifecycle.records",
    "LifecycleError": "utils.lifecycle.records",
    "MonitorConfig": "utils.lifecycle.monitor_config",
    "ProductionCheckError": "utils.deployment",
    "Promotion": "utils.lifecycle.promotion",
    "ServicePeriod": "utils.lifecycle.promotion",
    "approve": "utils.lifecycle.records",
    "approved_evaluation": "utils.deployment",
    "decide": "utils.lifecycle.records",
    "default_monitor_config": "utils.lifecycle.monitor_config",
    "deployment_history": "utils.lifecycle.promotion",
    "get_evaluation": "utils.lifecycle.records",
    "list_approvals": "utils.lifecycle.records",
    "list_evaluations": "utils.lifecycle.records",
    "monitor_config": "utils.lifecycle.monitor_config",
    "production_problem": "utils.deployment",
    "promote": "utils.lifecycle.promotion",
    "record_evaluation": "utils.lifecycle.records",
    "reject": "utils.lifecycle.records",
    "report_paths": "utils.lifecycle.records",
    "set_monitor_config": "utils.lifecycle.monitor_config",
    "validate_monitor_config": "utils.lifecycle.monitor_config",
}
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
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from utils.choices import PERSON_RULE
    from utils.deployment import ProductionCheckError, approved_evaluation, production_problem
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
