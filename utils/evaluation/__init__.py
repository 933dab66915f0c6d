"""Pre-production risk evaluation: a deployed candidate measured through its real endpoint, beside a challenger or
the champion, with every monitor and model check, a verdict and a model-risk report (docs/evaluation.md).

Parts, in the order they import each other: ``criteria`` (the comparison bars, as MLflow's ``MetricThreshold``),
``figures`` (quality and fairness of one model's answers), ``challenger`` (another model type trained on the same
split), ``explanations`` (a sample of decisions explained),
``report`` (HTML and JSON) → ``run`` (:func:`evaluate_deployment`).
"""

from typing import TYPE_CHECKING

from utils.lazy import lazy_exports

#: Each public name and the module defining it, imported when the name is first used (see :mod:`utils.lazy`).
_EXPORTS = {
    "BASELINE_ROLES": "utils.evaluation.run",
    "CHALLENGER_NAME": "utils.evaluation.challenger",
    "DEFAULT_CRITERIA": "utils.evaluation.criteria",
    "MetricThreshold": "utils.evaluation.criteria",
    "RiskEvaluation": "utils.evaluation.run",
    "champion_of": "utils.evaluation.run",
    "compare": "utils.evaluation.criteria",
    "criteria_from": "utils.evaluation.criteria",
    "evaluate_deployment": "utils.evaluation.run",
    "model_figures": "utils.evaluation.figures",
    "train_challenger": "utils.evaluation.challenger",
}
__all__ = [
    "BASELINE_ROLES",
    "CHALLENGER_NAME",
    "DEFAULT_CRITERIA",
    "MetricThreshold",
    "RiskEvaluation",
    "champion_of",
    "compare",
    "criteria_from",
    "evaluate_deployment",
    "model_figures",
    "train_challenger",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from utils.evaluation.challenger import CHALLENGER_NAME, train_challenger
    from utils.evaluation.criteria import DEFAULT_CRITERIA, MetricThreshold, compare, criteria_from
    from utils.evaluation.figures import model_figures
    from utils.evaluation.run import BASELINE_ROLES, RiskEvaluation, champion_of, evaluate_deployment
