"""Pre-production risk evaluation: a deployed candidate measured through its real endpoint, beside a challenger or
the champion, with every monitor and model check, a verdict and a model-risk report (docs/evaluation.md).

Parts, in the order they import each other: ``criteria`` (the comparison bars, as MLflow's ``MetricThreshold``),
``figures`` (quality and fairness of one model's answers), ``challenger`` (another model type trained on the same
split), ``explanations`` (a sample of decisions explained),
``report`` (HTML and JSON) → ``run`` (:func:`evaluate_deployment`).
"""

from utils.evaluation.challenger import CHALLENGER_NAME, train_challenger
from utils.evaluation.criteria import DEFAULT_CRITERIA, MetricThreshold, compare, criteria_from
from utils.evaluation.figures import model_figures
from utils.evaluation.run import BASELINE_ROLES, RiskEvaluation, champion_of, evaluate_deployment

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
