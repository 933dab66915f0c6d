"""Model checks: what a model must do before it may serve, each with a documented threshold and a verdict.

Behavioural checks of a fitted model on labelled applicants (minimum functionality, invariance, directional
expectations, robustness, per-group regression against a champion) and artifact checks of a registered version
(trusted load, schema, input errors, convergence). ``check_model`` runs them all; each check is also a function
of its own, returning a :class:`CheckResult`. Thresholds: :class:`CheckThresholds`; see ``docs/model-checks.md``.
"""

from typing import TYPE_CHECKING

from utils.lazy import lazy_exports

#: Each public name and the module defining it, imported when the name is first used (see :mod:`utils.lazy`).
_EXPORTS = {
    "CHECK_CASES": "utils.checks.functionality",
    "DEFAULT_THRESHOLDS": "utils.checks.results",
    "INVARIANT_FIELDS": "utils.checks.invariance",
    "LOSS_CURVE_KEY": "utils.checks.convergence",
    "RISING_FIELDS": "utils.checks.directional",
    "CheckReport": "utils.checks.results",
    "CheckResult": "utils.checks.results",
    "CheckThresholds": "utils.checks.results",
    "behavioural_checks": "utils.checks.suite",
    "check_model": "utils.checks.suite",
    "convergence": "utils.checks.convergence",
    "directional": "utils.checks.directional",
    "group_comparison": "utils.checks.regression",
    "input_errors": "utils.checks.artifact",
    "invariance": "utils.checks.invariance",
    "load_check_cases": "utils.checks.functionality",
    "minimum_functionality": "utils.checks.functionality",
    "per_group_regression": "utils.checks.regression",
    "robustness": "utils.checks.robustness",
    "schema": "utils.checks.artifact",
    "trusted_load": "utils.checks.artifact",
}
__all__ = [
    "CHECK_CASES",
    "DEFAULT_THRESHOLDS",
    "INVARIANT_FIELDS",
    "LOSS_CURVE_KEY",
    "RISING_FIELDS",
    "CheckReport",
    "CheckResult",
    "CheckThresholds",
    "behavioural_checks",
    "check_model",
    "convergence",
    "directional",
    "group_comparison",
    "input_errors",
    "invariance",
    "load_check_cases",
    "minimum_functionality",
    "per_group_regression",
    "robustness",
    "schema",
    "trusted_load",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from utils.checks.artifact import input_errors, schema, trusted_load
    from utils.checks.convergence import LOSS_CURVE_KEY, convergence
    from utils.checks.directional import RISING_FIELDS, directional
    from utils.checks.functionality import CHECK_CASES, load_check_cases, minimum_functionality
    from utils.checks.invariance import INVARIANT_FIELDS, invariance
    from utils.checks.regression import group_comparison, per_group_regression
    from utils.checks.results import DEFAULT_THRESHOLDS, CheckReport, CheckResult, CheckThresholds
    from utils.checks.robustness import robustness
    from utils.checks.suite import behavioural_checks, check_model
