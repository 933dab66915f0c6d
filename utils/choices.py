"""The fixed choices and rules that the command lines offer and the modules below them enforce: deployment spaces
(:mod:`utils.deployment`), the rule of a person's name, the policies for duplicate rows (:mod:`utils.validation`),
the four-fifths rule (:mod:`utils.data`), the monitors (:mod:`utils.monitoring`) and those whose alerts retraining
learns from (:mod:`utils.retraining`).

Plain constants importing nothing, so that a command line builds its parser before any heavy library is imported.
"""

#: The spaces a model can be deployed into, from trying out to production.
SPACES: tuple[str, ...] = ("dev", "preprod", "prod")
#: The space whose deployments need an approved evaluation, and the space that evaluation must have been run in.
PRODUCTION, PREPRODUCTION = "prod", "preprod"
#: Longest name of a person (an approver, whoever deployed), in characters.
MAX_PERSON_LENGTH = 64
#: The rule a person's name follows, as shown in the error that refuses one.
PERSON_RULE = (
    f"a person's name has 1 to {MAX_PERSON_LENGTH} characters: ASCII letters, digits, '.', '_', '-', '@' and "
    "single spaces between words, starting with a letter"
)
#: What to do with exact duplicate rows: keep them (with a warning), drop the extra copies, or stop.
DUPLICATE_POLICIES = ("keep", "drop", "fail")
#: The four-fifths rule: a monitored group's favourable rate below this share of the reference group's (disparate
#: impact) is adverse (:mod:`utils.data` re-exports it; the monitoring command line's default).
FOUR_FIFTHS_RULE = 0.80
#: The monitors of a deployment's records, in the order they run.
MONITORS: tuple[str, ...] = ("quality", "fairness", "drift", "data_quality")
#: Monitors of the serving of a deployment rather than its records, run when asked for (or by ``ALL_MONITORS``).
SERVICE_MONITORS: tuple[str, ...] = ("performance",)
ALL_MONITORS: tuple[str, ...] = (*MONITORS, *SERVICE_MONITORS)
#: The monitors whose alerting windows retraining learns from by default (fairness alerts can come from biased
#: labels, which a model must not learn).
RETRAIN_ON: tuple[str, ...] = ("drift", "quality")
